//! Runs a plan over many files: sharding across machines, skip/resume, workers per device, atomic publish of
//! outputs and reports, the run summary and its exit code. Knows nothing about CUDA.

use crate::backend::{self, Device, ModelOptions, Plugin, Precision};
use crate::error::{exit_codes, EngineError, Retry};
use crate::fingerprint::EngineFingerprint;
use crate::manifest::JobSpec;
use crate::pipeline::{self, Cancel};
use crate::plan::{self, EnginePlan, ModelFacts, WorkItem};
use crate::probe::MachineProbe;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
}

/// One shard of a job: `index` of `count`, 0-based internally (`--shard 1/4` is index 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based shard index.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Shard {
    /// Parses the 1-based `I/N` form of `--shard`.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("{s:?}: expected I/N, e.g. 2/8"))?;
        let i: u32 = i.trim().parse().map_err(|_| format!("{s:?}: shard index is not a number"))?;
        let n: u32 = n.trim().parse().map_err(|_| format!("{s:?}: shard count is not a number"))?;
        if n == 0 || i == 0 || i > n {
            return Err(format!("{s:?}: expected 1 <= I <= N (shards are numbered from 1)"));
        }
        Ok(Shard { index: i - 1, count: n })
    }

    /// The shard a scheduler asked for through its environment: Slurm job arrays
    /// (`SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_MIN`, `SLURM_ARRAY_TASK_COUNT`), Kubernetes Indexed Jobs
    /// (`JOB_COMPLETION_INDEX` plus a count from `--shard-count`), AWS Batch array jobs
    /// (`AWS_BATCH_JOB_ARRAY_INDEX`, `AWS_BATCH_JOB_ARRAY_SIZE` or `--shard-count`). `Ok(None)` when none is set.
    pub fn from_env(env: &[(String, String)], count: Option<u32>) -> Result<Option<Shard>, String> {
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim().to_string());
        let num = |k: &str, v: String| v.parse::<u32>().map_err(|_| format!("{k}={v:?} is not a number"));
        let make = |index: u32, count: u32, from: &str| {
            if count == 0 || index >= count {
                Err(format!("{from}: shard index {index} is outside 0..{count}"))
            } else {
                Ok(Some(Shard { index, count }))
            }
        };
        if let Some(id) = get("SLURM_ARRAY_TASK_ID") {
            let id = num("SLURM_ARRAY_TASK_ID", id)?;
            let min = get("SLURM_ARRAY_TASK_MIN").map(|v| num("SLURM_ARRAY_TASK_MIN", v)).transpose()?.unwrap_or(0);
            let n = match (get("SLURM_ARRAY_TASK_COUNT"), count) {
                (Some(v), _) => num("SLURM_ARRAY_TASK_COUNT", v)?,
                (None, Some(c)) => c,
                (None, None) => return Err("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not".into()),
            };
            return make(id.saturating_sub(min), n, "Slurm");
        }
        if let Some(i) = get("JOB_COMPLETION_INDEX") {
            let i = num("JOB_COMPLETION_INDEX", i)?;
            let n = count.ok_or("JOB_COMPLETION_INDEX is set: give the number of shards with --shard-count or VIDEOFORGE_SHARD_COUNT (the Job's completions)")?;
            return make(i, n, "Kubernetes");
        }
        if let Some(i) = get("AWS_BATCH_JOB_ARRAY_INDEX") {
            let i = num("AWS_BATCH_JOB_ARRAY_INDEX", i)?;
            let n = match (get("AWS_BATCH_JOB_ARRAY_SIZE"), count) {
                (Some(v), _) => num("AWS_BATCH_JOB_ARRAY_SIZE", v)?,
                (None, Some(c)) => c,
                (None, None) => {
                    return Err("AWS_BATCH_JOB_ARRAY_INDEX is set: give the array size with --shard-count or AWS_BATCH_JOB_ARRAY_SIZE".into())
                }
            };
            return make(i, n, "AWS Batch");
        }
        Ok(None)
    }
}

/// Splits the work list into `count` shards balanced by input size (largest first onto the lightest shard;
/// ties go to the lower shard), deterministic: every file lands in exactly one shard. Returns the work-item
/// indices of each shard, in work-list order.
pub fn shard_assignment(work: &[WorkItem], count: u32) -> Vec<Vec<usize>> {
    let count = count.max(1) as usize;
    let mut order: Vec<usize> = (0..work.len()).collect();
    order.sort_by(|&a, &b| work[b].size.cmp(&work[a].size).then(work[a].input.cmp(&work[b].input)));
    let mut load = vec![0u64; count];
    let mut shards = vec![Vec::new(); count];
    for i in order {
        let s = (0..count).min_by_key(|&s| (load[s], s)).unwrap_or(0);
        load[s] += work[i].size.max(1);
        shards[s].push(i);
    }
    for s in &mut shards {
        s.sort_unstable();
    }
    shards
}

/// One shard's task, as `plan --shards N` prints it for submitters.
#[derive(Debug, Clone, Serialize)]
pub struct ShardTask {
    /// 1-based shard number, as `--shard I/N` takes it.
    pub shard: String,
    /// Total input bytes.
    pub bytes: u64,
    /// Inputs and outputs.
    pub files: Vec<WorkItem>,
}

/// The task list for `count` shards.
pub fn shard_tasks(plan: &EnginePlan, count: u32) -> Vec<ShardTask> {
    shard_assignment(&plan.work, count)
        .into_iter()
        .enumerate()
        .map(|(i, idx)| ShardTask {
            shard: format!("{}/{}", i + 1, count.max(1)),
            bytes: idx.iter().map(|&j| plan.work[j].size).sum(),
            files: idx.iter().map(|&j| plan.work[j].clone()).collect(),
        })
        .collect()
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

/// Validates, probes, loads the model once to read its facts, and plans.
pub fn plan_job(spec: &JobSpec) -> Result<Planned, EngineError> {
    let problems = plan::validate(spec);
    if !problems.is_empty() {
        return Err(EngineError::Invalid(problems));
    }
    let probe = if spec.manifest.device.gpus == crate::manifest::Gpus::Cpu {
        MachineProbe::cpu_only(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    } else {
        MachineProbe::detect()
    };
    let plugin = Plugin::load(&backend::find_plugin("onnxruntime")?)?;
    let runtime = spec.manifest.model.runtime.as_ref().map(|r| spec.resolve(r));
    let model = plugin.open_model(&ModelOptions {
        model_path: spec.resolve(&spec.manifest.model.path),
        precision: Precision::Auto,
        device: Device::Cpu,
        execution_provider: Some("cpu".into()),
        tile: 0,
        tile_overlap: 0,
        batch: 1,
        runtime_library: runtime,
        cache_dir: None,
        cuda_stream: 0,
        threads: 1,
    })?;
    let info = plugin.info();
    let facts = ModelFacts {
        scale: model.info().scale,
        io_precision: model.info().dtype,
        execution_providers: info.execution_providers.clone(),
        backend: info.name.clone(),
        plugin: info.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    let warnings = model.info().warnings.clone();
    let plan = plan::build(spec, &probe, &facts).map_err(EngineError::Invalid)?;
    let fingerprint =
        EngineFingerprint::new(&plan, &probe, &format!("{} {}", info.name, info.version), &info.library_version);
    drop(model); // the planning session is not needed by the run
    Ok(Planned { plan, fingerprint, probe, plugin, warnings })
}

/// A person-readable summary of a plan.
pub fn describe_plan(p: &Planned) -> String {
    let plan = &p.plan;
    let mut s = String::new();
    let devices: Vec<String> = plan.workers.iter().map(|w| format!("{:?}", w.device)).collect();
    s += &format!("job:        {}\n", plan.job.display());
    s += &format!(
        "model:      {} (x{}, {:?}, {} via {} {})\n",
        plan.model.path.display(),
        plan.model.scale,
        plan.model.precision,
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
        "encode:     {} crf {} preset {} -> {:?} ({}: {})\n",
        plan.encode.encoder,
        plan.encode.crf.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
        plan.encode.preset.as_deref().unwrap_or("-"),
        plan.container,
        plan.encoder_path,
        plan.encoder_reason
    );
    for r in &plan.reasons {
        s += &format!("why:        {r}\n");
    }
    s += &format!("fingerprint {}\n", p.fingerprint.id());
    s += &format!("files:      {}\n", plan.work.len());
    for w in &plan.work {
        s += &format!("  {} -> {}\n", w.input.display(), w.output.display());
    }
    s
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    /// Upscaled and published.
    Complete,
    /// Already complete with the same input and fingerprint.
    Skipped,
    /// Failed; see the error.
    Failed,
    /// Not started or abandoned because the run was interrupted.
    Interrupted,
}

/// A file's report, written beside its output as `<output>.report.json`; a `complete` report whose input hash
/// and fingerprint match is the completion record that makes a rerun skip the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRecord {
    /// Input file.
    pub input: PathBuf,
    /// Output file.
    pub output: PathBuf,
    /// What happened.
    pub status: FileStatus,
    /// SHA-256 of the input file.
    pub input_sha256: String,
    /// The fingerprint's short id.
    pub fingerprint_id: String,
    /// The whole fingerprint.
    pub fingerprint: EngineFingerprint,
    /// Worker and device that processed it.
    pub worker: Option<String>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The pipeline's report (frames, per-stage timings, peak memory, warnings).
    pub pipeline: Option<serde_json::Value>,
    /// The error, when it failed.
    pub error: Option<String>,
    /// Whether a retry may help, when it failed.
    pub retriable: Option<bool>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The job file.
    pub job: PathBuf,
    /// The shard run, if any.
    pub shard: Option<Shard>,
    /// Fingerprint id.
    pub fingerprint_id: String,
    /// Files complete in this run.
    pub done: usize,
    /// Files skipped as already complete.
    pub skipped: usize,
    /// Files that failed.
    pub failed: usize,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Every file of this shard.
    pub files: Vec<FileRecord>,
}

impl RunSummary {
    /// The process exit code: 0 all done; 75 interrupted, or only retriable failures; 1 some files failed.
    pub fn exit_code(&self) -> i32 {
        if self.interrupted {
            return exit_codes::TRANSIENT;
        }
        let failed: Vec<&FileRecord> = self.files.iter().filter(|f| f.status == FileStatus::Failed).collect();
        if failed.is_empty() {
            exit_codes::SUCCESS
        } else if failed.iter().all(|f| f.retriable == Some(true)) {
            exit_codes::TRANSIENT
        } else {
            exit_codes::SOME_FILES_FAILED
        }
    }

    /// A readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        for f in &self.files {
            let status = match f.status {
                FileStatus::Complete => "done",
                FileStatus::Skipped => "skipped",
                FileStatus::Failed => "FAILED",
                FileStatus::Interrupted => "interrupted",
            };
            s += &format!("{status:<11} {:>7.1}s  {}", f.seconds, f.input.display());
            if let Some(e) = &f.error {
                s += &format!("\n            {e}");
            } else if f.status != FileStatus::Interrupted {
                s += &format!(" -> {}", f.output.display());
            }
            s.push('\n');
        }
        s += &format!(
            "{} done, {} skipped, {} failed{} in {:.1}s (fingerprint {})\n",
            self.done,
            self.skipped,
            self.failed,
            if self.interrupted { ", interrupted" } else { "" },
            self.seconds,
            self.fingerprint_id
        );
        s
    }
}

/// Path of a file's report.
pub fn report_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().map(|f| f.to_os_string()).unwrap_or_default();
    name.push(".report.json");
    output.with_file_name(name)
}

/// Writes a file atomically: a temporary name in the same folder, fsync, rename, fsync the folder.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), EngineError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        EngineError::io(path, e)
    })
}

/// Whether `item` is already complete for this input and fingerprint.
fn is_complete(item: &WorkItem, input_sha256: &str, fingerprint_id: &str) -> bool {
    if !item.output.is_file() {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(report_path(&item.output)) else { return false };
    let Ok(rec) = serde_json::from_str::<FileRecord>(&text) else { return false };
    rec.status == FileStatus::Complete && rec.input_sha256 == input_sha256 && rec.fingerprint_id == fingerprint_id
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
                    tracing::warn!("signal {sig}: stopping; in-flight files are abandoned, nothing partial is published (again to abort at once)");
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

/// Runs a job: plan, shard, skip what is complete, process the rest on the plan's workers, publish each output
/// and report atomically, write the run summary. Job-level failures (bad job, missing backend) are errors;
/// per-file failures are recorded in the summary and do not stop the other files.
pub fn run_job(spec: &JobSpec, opts: &RunOptions) -> Result<RunSummary, EngineError> {
    let started = Instant::now();
    let planned = plan_job(spec)?;
    for w in &planned.warnings {
        tracing::warn!("{w}");
    }
    let plan = Arc::new(planned.plan);
    let fp = Arc::new(planned.fingerprint);
    let fp_id = fp.id();
    let indices: Vec<usize> = match opts.shard {
        Some(s) => shard_assignment(&plan.work, s.count).swap_remove(s.index as usize),
        None => (0..plan.work.len()).collect(),
    };
    tracing::info!(
        "{} file(s){} on {}; fingerprint {fp_id}",
        indices.len(),
        opts.shard.map(|s| format!(" (shard {}/{})", s.index + 1, s.count)).unwrap_or_default(),
        plan.workers.iter().map(|w| format!("{:?}", w.device)).collect::<Vec<_>>().join(", ")
    );
    if opts.dry_run {
        for &i in &indices {
            let w = &plan.work[i];
            println!("{} -> {}", w.input.display(), w.output.display());
        }
        return Ok(RunSummary {
            job: spec.source.clone(),
            shard: opts.shard,
            fingerprint_id: fp_id,
            done: 0,
            skipped: 0,
            failed: 0,
            interrupted: false,
            seconds: started.elapsed().as_secs_f64(),
            files: Vec::new(),
        });
    }
    let out_dirs: std::collections::BTreeSet<PathBuf> =
        indices.iter().filter_map(|&i| plan.work[i].output.parent().map(Path::to_path_buf)).collect();
    for d in out_dirs {
        std::fs::create_dir_all(&d).map_err(|e| EngineError::io(&d, e))?;
    }

    let cancel = Cancel::new();
    install_signals(&cancel);
    let progress = crate::pipeline::ProgressSink::new(opts.progress, indices.len(), !opts.audit);
    let plugin = Arc::new(planned.plugin);
    let records: Arc<Mutex<Vec<(usize, FileRecord)>>> = Arc::new(Mutex::new(Vec::new()));
    // One shared queue: a worker whose device fails puts its file back (once) and stops; the others go on.
    let queue: Mutex<std::collections::VecDeque<(usize, u32)>> = Mutex::new(indices.iter().map(|&i| (i, 0)).collect());
    let inject = std::env::var("VIDEOFORGE_FAIL_SLOT").ok();

    std::thread::scope(|scope| {
        for worker in &plan.workers {
            for slot in 0..plan.files_at_once.max(1) {
                let (plan, fp, records, cancel, plugin, progress, queue) =
                    (&plan, &fp, &records, &cancel, &plugin, &progress, &queue);
                let name = format!("worker {} ({:?}) slot {slot}", worker.id, worker.device);
                let device = worker.device;
                let fp_id = fp_id.clone();
                let mut fail_injected = inject.as_deref() == Some(&format!("{}/{slot}", worker.id));
                scope.spawn(move || {
                    while let Some((i, attempts)) = pop(queue) {
                        let item = &plan.work[i];
                        let out = if cancel.is_stopped() {
                            Outcome {
                                rec: record(item, FileStatus::Interrupted, String::new(), fp, None, 0.0),
                                device_failed: None,
                            }
                        } else if std::mem::take(&mut fail_injected) {
                            Outcome {
                                rec: record(item, FileStatus::Failed, String::new(), fp, None, 0.0),
                                device_failed: Some("injected device failure (VIDEOFORGE_FAIL_SLOT)".into()),
                            }
                        } else {
                            process_one(i, item, plan, fp, &fp_id, device, &name, plugin, cancel, progress, opts)
                        };
                        if let Some(why) = &out.device_failed {
                            if attempts == 0 {
                                tracing::error!(
                                    "{name} stopped: {why}; {} goes back to the queue for the other workers",
                                    item.input.display()
                                );
                                if let Ok(mut q) = queue.lock() {
                                    q.push_back((i, attempts + 1));
                                }
                                break;
                            }
                        }
                        if let Ok(mut r) = records.lock() {
                            r.push((i, out.rec));
                        }
                    }
                });
            }
        }
    });
    // Files left when every worker stopped.
    if let Ok(mut q) = queue.lock() {
        for (i, _) in q.drain(..) {
            let mut rec = record(&plan.work[i], FileStatus::Failed, String::new(), &fp, None, 0.0);
            rec.error = Some("no worker left: every device failed".into());
            rec.retriable = Some(true);
            if let Ok(mut r) = records.lock() {
                r.push((i, rec));
            }
        }
    }
    progress.finish();
    let mut files: Vec<(usize, FileRecord)> = records.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default();
    files.sort_by_key(|(i, _)| *i);
    let files: Vec<FileRecord> = files.into_iter().map(|(_, r)| r).collect();
    let count = |s: FileStatus| files.iter().filter(|f| f.status == s).count();
    let summary = RunSummary {
        job: spec.source.clone(),
        shard: opts.shard,
        fingerprint_id: fp_id,
        done: count(FileStatus::Complete),
        skipped: count(FileStatus::Skipped),
        failed: count(FileStatus::Failed),
        interrupted: cancel.is_stopped(),
        seconds: started.elapsed().as_secs_f64(),
        files,
    };
    if let Some(dir) = summary.files.first().and_then(|f| f.output.parent()) {
        let name = match opts.shard {
            Some(s) => format!("videoforge-run.shard-{}-of-{}.json", s.index + 1, s.count),
            None => "videoforge-run.json".into(),
        };
        let path = dir.join(name);
        let json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
        write_atomic(&path, &json)?;
        eprint!("{}", summary.table());
        eprintln!("summary: {}", path.display());
    } else {
        eprint!("{}", summary.table());
    }
    Ok(summary)
}

fn record(
    item: &WorkItem,
    status: FileStatus,
    input_sha256: String,
    fp: &EngineFingerprint,
    worker: Option<String>,
    seconds: f64,
) -> FileRecord {
    FileRecord {
        input: item.input.clone(),
        output: item.output.clone(),
        status,
        input_sha256,
        fingerprint_id: fp.id(),
        fingerprint: fp.clone(),
        worker,
        seconds,
        pipeline: None,
        error: None,
        retriable: None,
    }
}

/// Takes the next file off the shared queue (the lock is released before the file is processed).
fn pop(queue: &Mutex<std::collections::VecDeque<(usize, u32)>>) -> Option<(usize, u32)> {
    queue.lock().ok().and_then(|mut q| q.pop_front())
}

/// A file's record, and whether its worker's device failed (the worker then stops).
struct Outcome {
    rec: FileRecord,
    device_failed: Option<String>,
}

/// Errors that mean the device is gone rather than the file being bad.
fn is_device_failure(device: Device, e: &EngineError) -> bool {
    matches!(device, Device::Cuda(_))
        && matches!(e, EngineError::Device(_)) | matches!(e, EngineError::Backend(b) if b.retry() == Retry::Retriable)
}

#[allow(clippy::too_many_arguments)]
fn process_one(
    index: usize,
    item: &WorkItem,
    plan: &EnginePlan,
    fp: &EngineFingerprint,
    fp_id: &str,
    device: Device,
    worker: &str,
    plugin: &Plugin,
    cancel: &Cancel,
    progress: &crate::pipeline::ProgressSink,
    opts: &RunOptions,
) -> Outcome {
    let done = |rec: FileRecord| Outcome { rec, device_failed: None };
    let started = Instant::now();
    let input_sha256 = match plan::sha256_file(&item.input) {
        Ok(h) => h,
        Err(e) => {
            let mut r = record(item, FileStatus::Failed, String::new(), fp, Some(worker.into()), 0.0);
            r.error = Some(format!("{}: {e}", item.input.display()));
            r.retriable = Some(true);
            return done(r);
        }
    };
    if !opts.force && is_complete(item, &input_sha256, fp_id) {
        tracing::info!("skip {}: complete with the same input and fingerprint", item.input.display());
        progress.file_skipped();
        return done(record(item, FileStatus::Skipped, input_sha256, fp, None, 0.0));
    }
    // A stale report must not vouch for a new output: remove it before the output is replaced.
    let _ = std::fs::remove_file(report_path(&item.output));
    let result = run_pipeline(index, item, plan, fp, device, plugin, cancel, progress, opts);
    let seconds = started.elapsed().as_secs_f64();
    let mut rec = record(item, FileStatus::Complete, input_sha256, fp, Some(worker.into()), seconds);
    match result {
        Ok(report) => {
            rec.pipeline = Some(report);
            let json = serde_json::to_vec_pretty(&rec).unwrap_or_default();
            if let Err(e) = write_atomic(&report_path(&item.output), &json) {
                rec.status = FileStatus::Failed;
                rec.error = Some(e.to_string());
                rec.retriable = Some(true);
            }
            progress.file_done();
        }
        Err(EngineError::Interrupted) => {
            rec.status = FileStatus::Interrupted;
            progress.file_done();
        }
        Err(e) if is_device_failure(device, &e) => {
            return Outcome { rec, device_failed: Some(e.to_string()) };
        }
        Err(e) => {
            // Media errors name the file already.
            let (input, message) = (item.input.display().to_string(), e.to_string());
            if message.starts_with(&input) {
                tracing::error!("{message}");
            } else {
                tracing::error!("{input}: {message}");
            }
            rec.status = FileStatus::Failed;
            rec.retriable = Some(e.retry() == Retry::Retriable);
            rec.error = Some(e.to_string());
            progress.file_done();
        }
    }
    done(rec)
}

#[allow(clippy::too_many_arguments)]
fn run_pipeline(
    index: usize,
    item: &WorkItem,
    plan: &EnginePlan,
    fp: &EngineFingerprint,
    device: Device,
    plugin: &Plugin,
    cancel: &Cancel,
    progress: &crate::pipeline::ProgressSink,
    opts: &RunOptions,
) -> Result<serde_json::Value, EngineError> {
    let options = |cuda_stream: usize| ModelOptions {
        model_path: plan.model.path.clone(),
        precision: plan.model.precision,
        device,
        execution_provider: Some(plan.model.execution_provider.clone()),
        tile: plan.pipeline.tile,
        tile_overlap: plan.pipeline.tile_overlap,
        batch: plan.pipeline.batch as u32,
        runtime_library: plan.model.runtime_library.clone(),
        // TensorRT engines depend on everything in the fingerprint: one cache folder per fingerprint.
        cache_dir: (plan.model.execution_provider == "tensorrt").then(|| engine_cache_dir(&fp.id())),
        cuda_stream,
        threads: 0,
    };
    // One context per file; the audit reads device memory through it before the model and after the stage.
    let gpu = match device {
        Device::Cpu => None,
        Device::Cuda(i) => {
            Some(Arc::new(crate::gpu::GpuContext::new(i).map_err(|e| EngineError::Device(e.to_string()))?))
        }
    };
    let free_before =
        if opts.audit { gpu.as_ref().and_then(|g| g.settled_mem_info().ok()).map(|(f, _)| f) } else { None };
    let make_model = || -> Result<Box<dyn crate::backend::FrameModel>, EngineError> {
        Ok(match (device, &gpu) {
            (Device::Cuda(i), Some(gpu)) => {
                // The model runs on the GPU stage's compute stream, so kernels and inference need no host sync.
                let model = plugin.open_model(&options(gpu.compute.cu_stream() as usize))?;
                let budget =
                    plan.workers.iter().find(|w| w.device == device).and_then(|w| w.vram_budget).unwrap_or(8 << 30);
                // Half the worker's budget for frame buffers; the rest is the runtime's (weights, workspace).
                Box::new(crate::gpu::stage::GpuStage::new(gpu.clone(), i, model, budget / 2)?)
            }
            _ => Box::new(plugin.open_model(&options(0))?),
        })
    };
    let job = |output, model, audit, progress| pipeline::FileJob {
        input: &item.input,
        output,
        container: plan.container,
        encode: plan.encode_for(index),
        pipeline: &plan.pipeline,
        model,
        cancel,
        progress,
        metadata: fp.container_metadata(),
        audit,
        digest_frames: opts.audit,
        decode: &plan.decode,
    };
    let mut report = pipeline::upscale_file(job(&item.output, make_model()?, opts.audit, progress.file(&item.input)))?;
    if let Some(audit) = report.audit.as_mut() {
        // The stage and the model are dropped by now: device memory should be back where it started.
        let free_after = gpu.as_ref().and_then(|g| g.settled_mem_info().ok()).map(|(f, _)| f);
        audit.vram = free_before.zip(free_after).map(|(before, after)| crate::audit::VramAudit {
            free_before: before,
            free_after: after,
            delta_bytes: before as i64 - after as i64,
            second_run_delta_bytes: None,
        });
        let tmp = audit_path(&item.output);
        let second = make_model()
            .and_then(|m| pipeline::upscale_file(job(&tmp, m, false, crate::pipeline::FileProgress::none())));
        let frames = (report.frames_sha256.clone(), second.as_ref().ok().and_then(|r| r.frames_sha256.clone()));
        let free_after_second = gpu.as_ref().and_then(|g| g.settled_mem_info().ok()).map(|(f, _)| f);
        if let (Some(v), Some(a)) = (audit.vram.as_mut(), free_after_second) {
            v.second_run_delta_bytes = Some(v.free_after as i64 - a as i64);
        }
        let compared = second.and_then(|_| compare_outputs(&item.output, &tmp, frames));
        let _ = std::fs::remove_file(&tmp);
        audit.determinism = Some(compared?);
        audit.evaluate();
        eprint!("{}: {}", item.input.display(), audit.table());
    }
    let stages: Vec<String> = report.stages.iter().map(|s| format!("{} {:.2}s busy", s.name, s.busy_s)).collect();
    tracing::info!(
        "{}: {} frames at {:.1} fps ({}); peak RSS {} MiB",
        item.input.display(),
        report.frames_encoded,
        report.fps,
        stages.join(", "),
        report.peak_rss_bytes.unwrap_or(0) >> 20
    );
    Ok(serde_json::to_value(&report).unwrap_or_default())
}

/// Where the audit's second run writes: `.<name>.audit-<pid>` beside the output (removed afterwards).
fn audit_path(output: &Path) -> PathBuf {
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    output.with_file_name(format!(".{name}.audit-{}", std::process::id()))
}

/// SHA-256 of both outputs of the audit, with the digests of the frames each run sent to its encoder.
fn compare_outputs(
    first: &Path,
    second: &Path,
    frames: (Option<String>, Option<String>),
) -> Result<crate::audit::Determinism, EngineError> {
    let a = plan::sha256_file(first).map_err(|e| EngineError::io(first, e))?;
    let b = plan::sha256_file(second).map_err(|e| EngineError::io(second, e))?;
    Ok(crate::audit::Determinism {
        identical: a == b,
        first_sha256: a,
        second_sha256: b,
        frames_identical: frames.0.is_some() && frames.0 == frames.1,
        first_frames_sha256: frames.0.unwrap_or_default(),
        second_frames_sha256: frames.1.unwrap_or_default(),
    })
}

/// `$XDG_CACHE_HOME/videoforge/engines/<fingerprint>` (or `~/.cache/...`, or the temp folder).
fn engine_cache_dir(fingerprint_id: &str) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("videoforge/engines").join(fingerprint_id)
}

/// What `videoforge doctor` reports.
#[derive(Debug, Serialize)]
pub struct DoctorReport {
    /// videoforge version and commit.
    pub videoforge: String,
    /// The machine.
    pub machine: MachineProbe,
    /// Backend plugins found and loaded (or why not).
    pub plugins: Vec<serde_json::Value>,
    /// The device plan this machine gets for `gpus = "auto"`.
    pub plan: String,
    /// Kernel sources hash, part of every fingerprint.
    pub kernels_hash: String,
}

/// Probes the machine and the plugins.
pub fn doctor() -> DoctorReport {
    let machine = MachineProbe::detect();
    let mut plugins = Vec::new();
    let mut has_cuda_ep = false;
    for path in backend::discover_plugins() {
        match Plugin::load(&path) {
            Ok(p) => {
                has_cuda_ep |= p.info().execution_providers.iter().any(|e| e == "cuda" || e == "tensorrt");
                plugins.push(serde_json::to_value(p.info()).unwrap_or_default());
            }
            Err(e) => plugins.push(serde_json::json!({ "path": path, "error": e.to_string() })),
        }
    }
    let plan = if machine.gpus.is_empty() {
        format!(
            "CPU: decode, inference and encode on {} core(s) ({})",
            machine.cpu_cores,
            machine.notes.first().map(String::as_str).unwrap_or("no GPU")
        )
    } else if !has_cuda_ep {
        format!(
            "CPU: {} GPU(s) found, but no backend plugin offers a CUDA or TensorRT execution provider",
            machine.gpus.len()
        )
    } else {
        let nvenc = machine.gpus.iter().any(|g| g.nvenc.available);
        format!(
            "GPU: {} worker(s), CUDA inference, {} encode",
            machine.gpus.len(),
            if nvenc { "NVENC available, CPU" } else { "CPU (no NVENC)" }
        )
    };
    DoctorReport {
        videoforge: format!("{} ({})", crate::VERSION, crate::GIT_HASH),
        machine,
        plugins,
        plan,
        kernels_hash: crate::KERNELS_HASH.into(),
    }
}

impl DoctorReport {
    /// Text for a person.
    pub fn to_text(&self) -> String {
        let m = &self.machine;
        let mut s = format!("videoforge {}\n", self.videoforge);
        s += &format!("cpu:        {} core(s)\n", m.cpu_cores);
        s += &format!(
            "driver:     {}   cuda: {}\n",
            m.driver_version.as_deref().unwrap_or("none"),
            m.cuda_version.as_deref().unwrap_or("none")
        );
        s += &format!(
            "cudnn:      {}   tensorrt: {}\n",
            m.cudnn_version.as_deref().unwrap_or("none"),
            m.tensorrt_version.as_deref().unwrap_or("none")
        );
        if m.gpus.is_empty() {
            s += "gpus:       none\n";
        }
        for g in &m.gpus {
            s += &format!(
                "gpu {}:      {} ({}), sm {}, {:.1} GiB ({:.1} GiB free)\n",
                g.index,
                g.name,
                g.uuid,
                g.compute_capability,
                g.vram_total as f64 / (1u64 << 30) as f64,
                g.vram_free as f64 / (1u64 << 30) as f64
            );
            let dec: Vec<String> = g
                .nvdec
                .iter()
                .map(|c| format!("{}/{}bit:{}", c.codec, c.bit_depth, if c.supported { "yes" } else { "no" }))
                .collect();
            s += &format!("  nvdec:    {}\n", dec.join(" "));
            s += &format!("  nvenc:    {} ({})\n", if g.nvenc.available { "yes" } else { "no" }, g.nvenc.detail);
        }
        for n in &m.notes {
            s += &format!("note:       {n}\n");
        }
        if self.plugins.is_empty() {
            s += "plugins:    none found (searched: VIDEOFORGE_PLUGIN_DIR, next to the executable)\n";
        }
        for p in &self.plugins {
            if let Some(e) = p.get("error") {
                s += &format!("plugin:     {} FAILED: {}\n", p["path"], e.as_str().unwrap_or_default());
            } else {
                s += &format!(
                    "plugin:     {} {} ({}), execution providers: {}\n",
                    p["name"].as_str().unwrap_or("?"),
                    p["version"].as_str().unwrap_or("?"),
                    p["library_version"].as_str().unwrap_or("?"),
                    p["execution_providers"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default()
                );
            }
        }
        s += &format!("plan:       {}\n", self.plan);
        s += &format!("kernels:    {}\n", self.kernels_hash);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(sizes: &[u64]) -> Vec<WorkItem> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| WorkItem {
                input: PathBuf::from(format!("in{i}.mp4")),
                output: PathBuf::from(format!("out{i}.mp4")),
                size,
            })
            .collect()
    }

    #[test]
    fn every_file_in_exactly_one_shard() {
        let work = items(&[5, 1, 9, 3, 3, 7, 2]);
        for n in 1..=9 {
            let shards = shard_assignment(&work, n);
            let mut all: Vec<usize> = shards.concat();
            all.sort_unstable();
            assert_eq!(all, (0..work.len()).collect::<Vec<_>>(), "n = {n}");
        }
    }

    #[test]
    fn shards_are_balanced_by_size() {
        let work = items(&[100, 1, 1, 1, 1, 100]);
        let shards = shard_assignment(&work, 2);
        let load: Vec<u64> = shards.iter().map(|s| s.iter().map(|&i| work[i].size).sum()).collect();
        assert_eq!(load, vec![102, 102]);
    }

    #[test]
    fn shard_flag() {
        assert_eq!(Shard::parse("2/8"), Ok(Shard { index: 1, count: 8 }));
        assert!(Shard::parse("0/8").is_err());
        assert!(Shard::parse("9/8").is_err());
        assert!(Shard::parse("x").is_err());
    }

    #[test]
    fn shard_env() {
        let env = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        assert_eq!(
            Shard::from_env(
                &env(&[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "4")]),
                None
            ),
            Ok(Some(Shard { index: 2, count: 4 }))
        );
        assert_eq!(
            Shard::from_env(&env(&[("JOB_COMPLETION_INDEX", "0")]), Some(3)),
            Ok(Some(Shard { index: 0, count: 3 }))
        );
        assert!(Shard::from_env(&env(&[("JOB_COMPLETION_INDEX", "0")]), None).is_err());
        assert_eq!(
            Shard::from_env(&env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "1"), ("AWS_BATCH_JOB_ARRAY_SIZE", "2")]), None),
            Ok(Some(Shard { index: 1, count: 2 }))
        );
        assert_eq!(Shard::from_env(&env(&[]), None), Ok(None));
        assert!(Shard::from_env(&env(&[("JOB_COMPLETION_INDEX", "5")]), Some(3)).is_err());
    }
}
