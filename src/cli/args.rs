//! The command line as clap types: what was typed. `dispatch` in `main.rs` turns it into library calls.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

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
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) single: SingleFile,
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

#[derive(Args, Debug)]
pub(crate) struct LogArgs {
    /// Show debug messages.
    #[arg(long, global = true)]
    pub(crate) debug: bool,
    /// Show every message, including per-frame tracing.
    #[arg(long, global = true)]
    pub(crate) trace: bool,
    /// Only errors (no progress bar).
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// The single-file form: builds the same job in memory as a job file would.
#[derive(Args, Debug)]
pub(crate) struct SingleFile {
    /// Input video.
    #[arg(short = 'i', long = "input", value_name = "FILE", requires_all = ["output", "model"])]
    pub(crate) input: Option<PathBuf>,
    /// Output video; the container follows its extension (mp4, mkv, mov).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// ONNX super-resolution model.
    #[arg(short = 'm', long = "model", value_name = "FILE")]
    pub(crate) model: Option<PathBuf>,
    /// Precision: f16, f32 or auto.
    #[arg(short = 'p', long, value_name = "PRECISION", default_value = "auto")]
    pub(crate) precision: String,
    /// Device: a GPU index, "cpu" or "auto".
    #[arg(short = 'd', long, value_name = "DEVICE", default_value = "auto")]
    pub(crate) device: String,
    /// Inference backend: auto, onnxruntime or fused-cuda (our NVRTC kernels, on SM 8.0+ GPUs).
    #[arg(long, value_name = "BACKEND", default_value = "auto", value_parser = ["auto", "onnxruntime", "fused-cuda"])]
    pub(crate) backend: String,
    /// Limit on device memory, e.g. 8GiB.
    #[arg(long, value_name = "SIZE")]
    pub(crate) vram_limit: Option<String>,
    /// Output codec: h264, hevc, av1, ffv1.
    #[arg(long, value_name = "CODEC")]
    pub(crate) codec: Option<String>,
    /// Constant rate factor.
    #[arg(long)]
    pub(crate) crf: Option<u32>,
    /// Encoder preset.
    #[arg(long)]
    pub(crate) preset: Option<String>,
    /// Run the audit and print its table (into the report too).
    #[arg(long)]
    pub(crate) audit: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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
    /// Rebuild the run report (videoforge-run.html) of an output folder from its JSON reports.
    Report {
        /// The output folder (where videoforge-run*.json are).
        dir: PathBuf,
    },
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
pub(crate) struct BenchArgs {
    /// ONNX model.
    #[arg(short = 'm', long)]
    pub(crate) model: PathBuf,
    /// Input frame size, WxH.
    #[arg(long, default_value = "1920x1080")]
    pub(crate) size: String,
    /// Timed frames.
    #[arg(long, default_value_t = 50)]
    pub(crate) frames: usize,
    /// Device: a GPU index or "cpu".
    #[arg(short = 'd', long, default_value = "cpu")]
    pub(crate) device: String,
    /// Precision: f16, f32 or auto.
    #[arg(short = 'p', long, default_value = "auto")]
    pub(crate) precision: String,
    /// Execution provider: cpu, cuda, tensorrt (default: best for the device).
    #[arg(long)]
    pub(crate) ep: Option<String>,
    /// Tile edge in input pixels (0: whole frame).
    #[arg(long, default_value_t = 0)]
    pub(crate) tile: u32,
    /// Backend plugin: onnxruntime, or fused-cuda (our NVRTC kernels; a GPU and f16).
    #[arg(long, default_value = "onnxruntime", value_parser = ["onnxruntime", "fused-cuda"])]
    pub(crate) backend: String,
    /// On a GPU: time the model on device buffers and the whole GPU stage instead of host buffers.
    #[arg(long)]
    pub(crate) device_io: bool,
    /// Stress test: generate a --size clip of --frames frames, run it through the whole pipeline on -d with the
    /// audit, check frames in == out, VRAM back, pool hit rate and stage overlap; non-zero exit on a failure.
    #[arg(long, conflicts_with = "device_io")]
    pub(crate) synthetic: bool,
}

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// Job file.
    pub(crate) job: PathBuf,
    /// Run only shard I of N (1-based, e.g. 2/8). Default: from SLURM_ARRAY_TASK_ID/COUNT,
    /// JOB_COMPLETION_INDEX (+ --shard-count), AWS_BATCH_JOB_ARRAY_INDEX/SIZE.
    #[arg(long, value_name = "I/N")]
    pub(crate) shard: Option<String>,
    /// Number of shards when the scheduler gives only an index (Kubernetes Indexed Jobs).
    #[arg(long, value_name = "N", env = "VIDEOFORGE_SHARD_COUNT")]
    pub(crate) shard_count: Option<u32>,
    /// Redo files even when a matching completed output exists.
    #[arg(long)]
    pub(crate) force: bool,
    /// Plan and list what would run, without running it.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Run the audit and print its table (into the report too).
    #[arg(long)]
    pub(crate) audit: bool,
    /// After this task's shard, take unclaimed files of other shards (default: on when the scheduler's task
    /// count differs from the planned shard count).
    #[arg(long, overrides_with = "no_steal")]
    pub(crate) steal: bool,
    /// Never take files of other shards.
    #[arg(long)]
    pub(crate) no_steal: bool,
}
