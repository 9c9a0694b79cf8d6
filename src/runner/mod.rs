//! Runs a plan over many files: [`shard`] (which files this task takes), [`resume`] (skip what is complete),
//! [`workers`] (the worker slots per device), [`report`] (the run summary and its exit code). It plans through
//! `crate::plan` and runs each file through `crate::pipeline`; it never touches CUDA itself.

mod backend_choice;
pub mod claim;
pub mod html;
mod report;
mod resume;
pub mod scheduler;
mod shard;
mod workers;

pub use report::RunSummary;
pub use resume::{report_path, write_atomic, FileRecord, FileStatus};
pub use shard::{shard_assignment, shard_tasks, Shard, ShardError, ShardTask};

use crate::backend::{find_plugin, plugin_file_name, ModelOptions, Plugin};
use crate::codec::{ExecutionProvider, Precision};
use crate::error::{exit_codes, EngineError};
use crate::fingerprint::EngineFingerprint;
use crate::machine::MachineProbe;
use crate::manifest::{Gpus, JobSpec};
use crate::pipeline::{Cancel, ProgressSink};
use crate::plan::{self, EnginePlan, ModelFacts, Overrides};
use crate::probe::ProbeOptions;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// What the environment says, read once at the CLI edge: where the engine's parts are, what to probe, and the
/// switches for benchmarks and tests. The defaults are a plain run.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// Folders searched for backend plugins before the ones beside the executable (`VIDEOFORGE_PLUGIN_DIR`).
    pub plugin_dirs: Vec<PathBuf>,
    /// The inference runtime library (ONNX Runtime) when the job does not name one: `ORT_DYLIB_PATH`, the
    /// bundle's `lib/`, or the checkout's `.deps/`.
    pub runtime_library: Option<PathBuf>,
    /// Where backends cache compiled engines and kernels (one folder per fingerprint below it).
    pub cache_dir: Option<PathBuf>,
    /// What to probe (`VIDEOFORGE_NO_GPU`, `VIDEOFORGE_NO_NVDEC`).
    pub probe: ProbeOptions,
    /// Plan settings for benchmarks (`VIDEOFORGE_SEGMENT_FRAMES`, `VIDEOFORGE_SEGMENT_QUEUE`, `VIDEOFORGE_NO_PIN`).
    pub overrides: Overrides,
    /// Backtraces of the first N steady-state allocations of an audited run (`VIDEOFORGE_AUDIT_TRACE`).
    pub audit_traces: u64,
    /// Fail slot S of worker W once, as if its device had (`VIDEOFORGE_FAIL_SLOT=W/S`, for tests).
    pub fail_slot: Option<String>,
}

impl Environment {
    /// The runtime library to load the plugin at `plugin` with: the one this environment found is ONNX Runtime's,
    /// for the ONNX Runtime plugin only (fused-cuda's runtime is NVRTC, which it finds itself).
    pub fn runtime_for(&self, plugin: &Path) -> Option<&Path> {
        let ort = plugin.file_name() == Some(std::ffi::OsStr::new(&plugin_file_name(plan::ONNXRUNTIME)));
        self.runtime_library.as_deref().filter(|_| ort)
    }
}

/// How to run a job.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Only this shard of the work list.
    pub shard: Option<Shard>,
    /// Redo files even when they are complete.
    pub force: bool,
    /// Plan and list, run nothing.
    pub dry_run: bool,
    /// Run the audit.
    pub audit: bool,
    /// Show progress bars (on a terminal) or JSON progress lines (otherwise).
    pub progress: bool,
    /// After this task's shard, take unclaimed files of the other shards.
    pub steal: bool,
    /// Claim timings (heartbeat, stale interval).
    pub claims: claim::ClaimConfig,
    /// Where the shard came from, for the log and the summary.
    pub shard_source: Option<scheduler::Selection>,
    /// What the environment says.
    pub env: Environment,
}

/// A plan with what it was made from.
#[derive(Debug)]
pub struct Planned {
    /// The plan.
    pub plan: EnginePlan,
    /// Its fingerprint on this machine.
    pub fingerprint: EngineFingerprint,
    /// The machine.
    pub probe: MachineProbe,
    /// The backend plugin, loaded once for planning and kept for the run (`plugin.info()` describes it).
    pub plugin: Plugin,
    /// Warnings from loading the model.
    pub warnings: Vec<String>,
}

/// Reads a job file with every problem at once: what the parser found (wrong types, unknown keys and values) and,
/// where a job could still be read, what validation finds, each with its file, line, column and key.
pub fn load_job(path: &Path) -> Result<JobSpec, EngineError> {
    let parsed = crate::manifest::load_all(path)?;
    let mut problems: Vec<plan::Problem> = parsed.problems.iter().map(|p| plan::Problem::parsed(p, path)).collect();
    match parsed.spec {
        Some(spec) => {
            problems.extend(plan::locate(&spec, plan::validate(&spec)));
            if problems.is_empty() {
                Ok(spec)
            } else {
                Err(EngineError::Invalid(problems))
            }
        }
        None => Err(EngineError::Invalid(problems)),
    }
}

/// Validates, probes, loads the model once to read its facts, and plans.
pub fn plan_job(spec: &JobSpec, env: &Environment) -> Result<Planned, EngineError> {
    let problems = plan::validate(spec);
    if !problems.is_empty() {
        return Err(EngineError::Invalid(plan::locate(spec, problems)));
    }
    let probe = if spec.manifest.device.gpus == Gpus::Cpu {
        MachineProbe::cpu_only(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    } else {
        crate::probe::detect(env.probe)
    };
    let plugin = Plugin::load_with(&find_plugin(plan::ONNXRUNTIME, &env.plugin_dirs)?, env.runtime_library.as_deref())?;
    let runtime = spec.manifest.model.runtime.as_ref().map(|r| spec.resolve(r)).or(env.runtime_library.clone());
    let model = plugin.open_model(&ModelOptions {
        execution_provider: Some(ExecutionProvider::Cpu),
        runtime_library: runtime.clone(),
        threads: 1,
        ..ModelOptions::cpu(spec.resolve(&spec.manifest.model.path))
    })?;
    let (scale, io_precision) = (model.info().scale, model.info().dtype);
    let warnings = model.info().warnings.clone();
    drop(model); // the planning session is not needed by the run
                 // The backend that runs it: fused-cuda where it can (or must), else ONNX Runtime.
    let (plugin, why) = match backend_choice::fused(spec, &probe, &env.plugin_dirs) {
        backend_choice::Fused::Chosen(fused, why) => (fused, format!("backend: {why}")),
        backend_choice::Fused::Not(why) if spec.manifest.model.backend == crate::manifest::BackendChoice::FusedCuda => {
            return Err(EngineError::Invalid(plan::locate(spec, vec![backend_choice::problem(&why)])));
        }
        backend_choice::Fused::Not(why) => {
            (plugin, format!("backend: ONNX Runtime, because fused-cuda is not used: {why}"))
        }
    };
    let info = plugin.info();
    let fused = info.name == plan::FUSED_CUDA;
    let facts = ModelFacts {
        scale,
        io_precision,
        execution_providers: info.execution_providers.clone(),
        backend: info.name.clone(),
        plugin: info.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    let mut plan = plan::build(spec, &probe, &facts, &env.overrides)
        .map_err(|problems| EngineError::Invalid(plan::locate(spec, problems)))?;
    // The fused plugin's runtime is NVRTC, which it finds itself; ONNX Runtime's library is not for it.
    plan.model.runtime_library = if fused { None } else { runtime };
    plan.reasons.insert(0, why);
    let fingerprint =
        EngineFingerprint::new(&plan, &probe, &format!("{} {}", info.name, info.version), &info.library_version);
    Ok(Planned { plan, fingerprint, probe, plugin, warnings })
}

/// A person-readable summary of a plan.
pub fn describe_plan(p: &Planned) -> String {
    let plan = &p.plan;
    let mut s = String::new();
    let devices: Vec<String> = plan.workers.iter().map(|w| w.device.to_string()).collect();
    let precision = match plan.model.precision {
        Precision::F16 => "f16",
        Precision::F32 => "f32",
        Precision::Auto => "auto",
    };
    s += &format!("job:        {}\n", plan.job.display());
    s += &format!(
        "model:      {} (x{}, {precision}, {} via {} {})\n",
        plan.model.path.display(),
        plan.model.scale,
        plan.model.execution_provider,
        p.plugin.info().name,
        p.plugin.info().library_version
    );
    s += &format!("workers:    {} ({} file(s) at once each)\n", devices.join(", "), plan.files_at_once);
    s += &format!(
        "pipeline:   depth {}, batch {}, tile {}\n",
        plan.pipeline.depth,
        plan.pipeline.batch,
        if plan.pipeline.tile == 0 { "whole frame".to_string() } else { plan.pipeline.tile.to_string() }
    );
    s += &format!(
        "encode:     {} crf {} preset {} -> {:?} ({})\n",
        plan.encode.encoder,
        plan.encode.crf.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
        plan.encode.preset.as_deref().unwrap_or("-"),
        plan.container,
        plan.encoder_reason
    );
    for r in &plan.reasons {
        s += &format!("why:        {r}\n");
    }
    s += &format!("fingerprint {}\n", p.fingerprint.id());
    s += &format!("files:      {}\n", plan.work.len());
    for index in 0..plan.work.len() {
        s += &crate::pipeline::describe_file(plan, index);
    }
    s
}

/// Installs SIGINT/SIGTERM handling: the first signal stops gracefully (finish or abandon the current
/// files, publish nothing partial), the second aborts in-flight work at once, a third exits immediately.
fn install_signals(cancel: &Cancel) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else { return };
    let cancel = cancel.clone();
    std::thread::spawn(move || {
        let mut n = 0;
        for sig in signals.forever() {
            n += 1;
            match n {
                1 => {
                    tracing::warn!(
                        "signal {sig}: stopping; in-flight files are abandoned, nothing partial is published (again to \
                         abort at once)"
                    );
                    cancel.request_stop();
                }
                2 => {
                    tracing::warn!("signal {sig}: aborting");
                    cancel.request_abort();
                }
                _ => std::process::exit(exit_codes::TRANSIENT),
            }
        }
    });
}

/// Creates the job's output folder and checks that it takes a file, before any work: a folder that cannot be
/// written (no permission, read-only file system, immutable) fails the whole job with a permanent error, since no
/// file could succeed. It is created here only: one that vanishes mid-run fails the files that follow, it is not
/// re-created.
fn check_output_dir(dir: &Path) -> Result<(), EngineError> {
    let folder_error = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            EngineError::OutputFolder { path: dir.to_path_buf(), source }
        }
        _ => EngineError::io(dir, source),
    };
    std::fs::create_dir_all(dir).map_err(folder_error)?;
    let probe = dir.join(format!(".videoforge-write-test-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(folder_error)?;
    crate::pipeline::publish::discard(&probe);
    Ok(())
}

/// The files this task works on, in order: its own shard, then (when stealing) the other shards', the next shard
/// first and each from its end, so that a thief and the shard's owner meet in the middle.
fn work_order(plan: &EnginePlan, opts: &RunOptions) -> (Vec<usize>, Vec<usize>) {
    let Some(s) = opts.shard else { return ((0..plan.work.len()).collect(), Vec::new()) };
    let mut all = shard_assignment(&plan.work, s.count);
    let own = std::mem::take(&mut all[s.index as usize]);
    if !opts.steal {
        return (own, Vec::new());
    }
    let n = all.len();
    let others = (1..n).flat_map(|k| all[(s.index as usize + k) % n].iter().rev().copied().collect::<Vec<_>>());
    (own, others.collect())
}

/// Runs a job: plan, shard, skip what is complete, process the rest on the plan's workers, publish each output
/// and report atomically, write the run summary. Job-level failures (bad job, missing backend, an output folder
/// that cannot be written) are errors; per-file failures are recorded in the summary and do not stop the other
/// files.
pub fn run_job(spec: &JobSpec, opts: &RunOptions) -> Result<RunSummary, EngineError> {
    let started = Instant::now();
    let planned = plan_job(spec, &opts.env)?;
    for w in &planned.warnings {
        tracing::warn!("{w}");
    }
    let plan = &planned.plan;
    let fp = &planned.fingerprint;
    let fp_id = fp.id();
    let (indices, stolen) = work_order(plan, opts);
    tracing::info!(
        "{} file(s){} on {}; fingerprint {fp_id}",
        indices.len(),
        opts.shard.map(|s| format!(" (shard {}/{})", s.index + 1, s.count)).unwrap_or_default(),
        plan.workers.iter().map(|w| w.device.to_string()).collect::<Vec<_>>().join(", ")
    );
    let summary = |files: Vec<FileRecord>, interrupted: bool| {
        let mut s = RunSummary::new(spec.source.clone(), opts.shard, fp_id.clone(), files, interrupted, started);
        s.shard_source = opts.shard_source.clone();
        s
    };
    if opts.dry_run {
        let mut s = summary(Vec::new(), false);
        s.planned = indices.iter().map(|&i| plan.work[i].clone()).collect();
        return Ok(s);
    }
    let output_dir = spec.resolve(&spec.manifest.output.dir);
    check_output_dir(&output_dir)?;
    let cancel = Cancel::new();
    install_signals(&cancel);
    let progress = ProgressSink::new(opts.progress, indices.len(), !opts.audit);
    let shared = workers::Shared {
        plan,
        fp,
        plugin: &planned.plugin,
        cancel: &cancel,
        progress: &progress,
        opts,
        queue: Mutex::new(indices.iter().chain(&stolen).map(|&i| (i, 0)).collect::<VecDeque<_>>()),
        stolen: stolen.into_iter().collect(),
        records: Mutex::new(Vec::new()),
    };
    let files = workers::run_all(&shared);
    progress.finish();
    let mut summary = summary(files, cancel.is_stopped());
    match summary.write(&output_dir, opts.shard) {
        Ok(()) if summary.summary_path.is_some() => {
            if let Err(e) = html::write_report(&output_dir) {
                tracing::warn!("the run report was not written: {e}");
            }
        }
        Ok(()) => {}
        Err(e) => {
            // The files' own reports are written; the exit code says that the run's record is missing.
            tracing::error!("the run summary was not written: {e}");
            summary.not_written(&e);
        }
    }
    Ok(summary)
}
