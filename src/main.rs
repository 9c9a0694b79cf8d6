//! The `videoforge` command line: a thin clap front end over the library.

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use videoforge::error::EngineError;
use videoforge::exit_codes;
use videoforge::manifest::{self, JobSpec};
use videoforge::runner::{self, RunOptions, Shard};

/// Counts host allocations for `--audit` (a thin wrapper over the system allocator).
#[global_allocator]
static ALLOC: videoforge::audit::CountingAlloc = videoforge::audit::CountingAlloc;

/// AI video upscaling from declarative job files.
///
/// Run a job file:            videoforge run job.toml
/// Upscale one clip:          videoforge -i in.mp4 -o out.mp4 -m model.onnx
/// See what would run:        videoforge plan job.toml
/// Check this machine:        videoforge doctor
///
/// Exit codes:
///   0   success (every file done or already complete)
///   1   some files failed; the others are done
///   2   usage error
///   3   bad job file, model or input: do not retry
///   4   backend plugin or runtime library missing: fix the installation
///   70  internal error (a recovered panic)
///   75  transient failure or interrupted: retry (finished files are skipped)
#[derive(Parser, Debug)]
#[command(name = "videoforge", version, verbatim_doc_comment, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    single: SingleFile,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Args, Debug)]
struct LogArgs {
    /// Show debug messages.
    #[arg(long, global = true)]
    debug: bool,
    /// Show every message, including per-frame tracing.
    #[arg(long, global = true)]
    trace: bool,
    /// Only errors (no progress bar).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

/// The single-file form: builds the same job in memory as a job file would.
#[derive(Args, Debug)]
struct SingleFile {
    /// Input video.
    #[arg(short = 'i', long = "input", value_name = "FILE", requires_all = ["output", "model"])]
    input: Option<PathBuf>,
    /// Output video; the container follows its extension (mp4, mkv, mov).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// ONNX super-resolution model.
    #[arg(short = 'm', long = "model", value_name = "FILE")]
    model: Option<PathBuf>,
    /// Precision: f16, f32 or auto.
    #[arg(short = 'p', long, value_name = "PRECISION", default_value = "auto")]
    precision: String,
    /// Device: a GPU index, "cpu" or "auto".
    #[arg(short = 'd', long, value_name = "DEVICE", default_value = "auto")]
    device: String,
    /// Limit on device memory, e.g. 8GiB.
    #[arg(long, value_name = "SIZE")]
    vram_limit: Option<String>,
    /// Output codec: h264, hevc, av1, ffv1.
    #[arg(long, value_name = "CODEC")]
    codec: Option<String>,
    /// Constant rate factor.
    #[arg(long)]
    crf: Option<u32>,
    /// Encoder preset.
    #[arg(long)]
    preset: Option<String>,
    /// Run the audit and print its table (into the report too).
    #[arg(long)]
    audit: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a job: upscale every input, skipping files already done.
    Run(RunArgs),
    /// Check job files without running anything; every problem is listed.
    Validate {
        /// Job files.
        #[arg(required = true)]
        jobs: Vec<PathBuf>,
    },
    /// Print the EnginePlan a job would run on this machine.
    Plan {
        /// Job file.
        job: PathBuf,
        /// Print JSON (the full plan) instead of a summary.
        #[arg(long)]
        json: bool,
        /// Print the task list for N shards (for array-job submitters).
        #[arg(long, value_name = "N")]
        shards: Option<u32>,
    },
    /// Print the job file JSON Schema.
    Schema,
    /// Benchmarks (figures for bench/RESULTS.md): model inference alone on a W x H frame.
    Bench(BenchArgs),
    /// Probe this machine: GPUs, NVDEC/NVENC, backend plugins, and the plan it would get.
    Doctor {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// ONNX model.
    #[arg(short = 'm', long)]
    model: PathBuf,
    /// Input frame size, WxH.
    #[arg(long, default_value = "1920x1080")]
    size: String,
    /// Timed frames.
    #[arg(long, default_value_t = 50)]
    frames: usize,
    /// Device: a GPU index or "cpu".
    #[arg(short = 'd', long, default_value = "cpu")]
    device: String,
    /// Precision: f16, f32 or auto.
    #[arg(short = 'p', long, default_value = "auto")]
    precision: String,
    /// Execution provider: cpu, cuda, tensorrt (default: best for the device).
    #[arg(long)]
    ep: Option<String>,
    /// Tile edge in input pixels (0: whole frame).
    #[arg(long, default_value_t = 0)]
    tile: u32,
    /// On a GPU: time the model on device buffers and the whole GPU stage instead of host buffers.
    #[arg(long)]
    device_io: bool,
    /// Stress test: generate a --size clip of --frames frames, run it through the whole pipeline on -d with the
    /// audit, check frames in == out, VRAM back, pool hit rate and stage overlap; non-zero exit on a failure.
    #[arg(long, conflicts_with = "device_io")]
    synthetic: bool,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Job file.
    job: PathBuf,
    /// Run only shard I of N (1-based, e.g. 2/8). Default: from SLURM_ARRAY_TASK_ID/COUNT,
    /// JOB_COMPLETION_INDEX (+ --shard-count), AWS_BATCH_JOB_ARRAY_INDEX/SIZE.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Number of shards when the scheduler gives only an index (Kubernetes Indexed Jobs).
    #[arg(long, value_name = "N", env = "VIDEOFORGE_SHARD_COUNT")]
    shard_count: Option<u32>,
    /// Redo files even when a matching completed output exists.
    #[arg(long)]
    force: bool,
    /// Plan and list what would run, without running it.
    #[arg(long)]
    dry_run: bool,
    /// Run the audit and print its table (into the report too).
    #[arg(long)]
    audit: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit_codes::USAGE as u8 } else { 0 });
        }
    };
    init_logging(&cli.log);
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            let code = err.downcast_ref::<EngineError>().map(EngineError::exit_code).unwrap_or(exit_codes::BAD_JOB);
            eprintln!("error: {err:#}");
            code
        }
    };
    ExitCode::from(code as u8)
}

fn init_logging(log: &LogArgs) {
    let level = if log.trace {
        "trace"
    } else if log.debug {
        "debug"
    } else if log.quiet {
        "error"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIDEOFORGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("videoforge={level},ffmpeg={level},warn")));
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if log.log_format == LogFormat::Json {
        b.json().init();
    } else {
        b.without_time().with_target(false).init();
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let quiet = cli.log.quiet;
    let json_logs = cli.log.log_format == LogFormat::Json;
    match cli.command {
        Some(Command::Run(a)) => {
            let spec = manifest::load(&a.job).map_err(EngineError::from)?;
            let shard = resolve_shard(a.shard.as_deref(), a.shard_count)?;
            let opts = RunOptions {
                shard,
                force: a.force,
                dry_run: a.dry_run,
                audit: a.audit,
                progress: !quiet && !json_logs,
            };
            Ok(runner::run_job(&spec, &opts)?.exit_code())
        }
        Some(Command::Validate { jobs }) => validate(&jobs),
        Some(Command::Plan { job, json, shards }) => {
            let spec = manifest::load(&job).map_err(EngineError::from)?;
            let planned = runner::plan_job(&spec)?;
            let mut out = std::io::stdout().lock();
            if let Some(n) = shards {
                if n == 0 {
                    anyhow::bail!("--shards must be at least 1");
                }
                let tasks = runner::shard_tasks(&planned.plan, n);
                writeln!(out, "{}", serde_json::to_string_pretty(&tasks)?)?;
            } else if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&planned.plan)?)?;
            } else {
                write!(out, "{}", runner::describe_plan(&planned))?;
            }
            Ok(exit_codes::SUCCESS)
        }
        Some(Command::Bench(b)) => {
            let (w, h) = b
                .size
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?)))
                .with_context(|| format!("--size {}: expected WxH, e.g. 1920x1080", b.size))?;
            let device = match b.device.as_str() {
                "cpu" => videoforge::backend::Device::Cpu,
                n => {
                    videoforge::backend::Device::Cuda(n.parse().with_context(|| format!("-d {n}: a GPU index or cpu"))?)
                }
            };
            let precision = match b.precision.as_str() {
                "f16" => videoforge::backend::Precision::F16,
                "f32" => videoforge::backend::Precision::F32,
                "auto" => videoforge::backend::Precision::Auto,
                p => anyhow::bail!("-p {p}: expected f16, f32 or auto"),
            };
            if b.synthetic {
                let (width, height) = (u32::try_from(w)?, u32::try_from(h)?);
                let r = videoforge::bench::stress_test_synthetic(&videoforge::bench::SyntheticBench {
                    model: b.model,
                    device,
                    precision,
                    width,
                    height,
                    frames: b.frames.max(1) as u64,
                })?;
                println!("{}", serde_json::to_string(&r)?);
                return Ok(if r.passed { exit_codes::SUCCESS } else { exit_codes::SOME_FILES_FAILED });
            }
            let bench = videoforge::bench::InferenceBench {
                model: b.model,
                width: w,
                height: h,
                frames: b.frames.max(1),
                device,
                precision,
                execution_provider: b.ep,
                tile: b.tile,
            };
            match (b.device_io, device) {
                (true, videoforge::backend::Device::Cuda(i)) => {
                    println!("{}", serde_json::to_string(&videoforge::bench::device(&bench, i)?)?)
                }
                (true, videoforge::backend::Device::Cpu) => anyhow::bail!("--device-io needs a GPU (-d N)"),
                (false, _) => println!("{}", serde_json::to_string(&videoforge::bench::inference(&bench)?)?),
            }
            Ok(exit_codes::SUCCESS)
        }
        Some(Command::Schema) => {
            print!("{}", manifest::json_schema_text());
            Ok(exit_codes::SUCCESS)
        }
        Some(Command::Doctor { json }) => {
            let report = runner::doctor();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
            Ok(exit_codes::SUCCESS)
        }
        None => single_file(cli.single, quiet || json_logs),
    }
}

fn validate(jobs: &[PathBuf]) -> anyhow::Result<i32> {
    let mut code = exit_codes::SUCCESS;
    for job in jobs {
        match manifest::load(job) {
            Err(e) => {
                eprintln!("{e}");
                code = exit_codes::BAD_JOB;
            }
            Ok(spec) => {
                let problems = videoforge::plan::validate(&spec);
                if problems.is_empty() {
                    println!("{}: ok", job.display());
                } else {
                    for p in &problems {
                        eprintln!("{}: {}", job.display(), videoforge::plan::format_problems(std::slice::from_ref(p)));
                    }
                    code = exit_codes::BAD_JOB;
                }
            }
        }
    }
    Ok(code)
}

fn resolve_shard(flag: Option<&str>, count: Option<u32>) -> anyhow::Result<Option<Shard>> {
    if let Some(s) = flag {
        return Ok(Some(Shard::parse(s).map_err(|e| anyhow::anyhow!("--shard: {e}"))?));
    }
    let env: Vec<(String, String)> = std::env::vars().collect();
    Shard::from_env(&env, count).map_err(|e| anyhow::anyhow!(e))
}

/// `-i in -o out -m model`: the same JobSpec a job file gives, built in memory.
fn single_file(s: SingleFile, quiet: bool) -> anyhow::Result<i32> {
    let (Some(input), Some(output), Some(model)) = (s.input, s.output, s.model) else {
        use clap::CommandFactory;
        Cli::command().print_help()?;
        return Ok(exit_codes::USAGE);
    };
    let abs = |p: &Path| -> anyhow::Result<PathBuf> {
        Ok(if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir()?.join(p) })
    };
    let out = abs(&output)?;
    let container = match out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("mp4") | Some("m4v") => "mp4",
        Some("mkv") => "mkv",
        Some("mov") => "mov",
        _ => anyhow::bail!("{}: unknown output container (use .mp4, .mkv or .mov)", output.display()),
    };
    let gpus = match s.device.as_str() {
        "auto" | "cpu" => format!("{:?}", s.device),
        n => format!("[{}]", n.parse::<u32>().with_context(|| format!("-d {n}: expected a GPU index, cpu or auto"))?),
    };
    let q = |p: &Path| toml_string(&p.to_string_lossy());
    let mut text = format!(
        "version = 1\n[model]\npath = {}\nprecision = {}\n[device]\ngpus = {gpus}\n",
        q(&abs(&model)?),
        toml_string(&s.precision)
    );
    if let Some(v) = &s.vram_limit {
        text += &format!("vram_limit = {}\n", toml_string(v));
    }
    text += &format!(
        "[[input]]\npath = {}\n[output]\ndir = {}\nname = {}\ncontainer = \"{container}\"\n[encode]\n",
        q(&abs(&input)?),
        q(out.parent().unwrap_or(Path::new("."))),
        toml_string(&out.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()),
    );
    if let Some(c) = &s.codec {
        text += &format!("codec = {}\n", toml_string(c));
    }
    if let Some(c) = s.crf {
        text += &format!("crf = {c}\n");
    }
    if let Some(p) = &s.preset {
        text += &format!("preset = {}\n", toml_string(p));
    }
    let source = PathBuf::from("<command line>");
    let manifest = manifest::parse(&text, &source).map_err(EngineError::from)?;
    let spec = JobSpec { source, base_dir: std::env::current_dir()?, manifest };
    let opts = RunOptions { shard: None, force: true, dry_run: false, audit: s.audit, progress: !quiet };
    Ok(runner::run_job(&spec, &opts)?.exit_code())
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}
