//! The engine's error type and the documented process exit codes.
//!
//! Every failure is classified as *permanent* (bad job, bad model, unsupported media, no permission: retrying
//! will not help) or *retriable* (out of memory, a full disk, I/O, interrupted: a scheduler should retry), and
//! maps to one exit code. Each layer has its own error type; this one gathers them at the pipeline and runner.

use crate::backend::BackendError;
use crate::gpu::nvdec::NvdecError;
use crate::gpu::stage::StageError;
use crate::gpu::GpuError;
use crate::manifest::ManifestError;
use crate::plan::Problem;
use crate::video::{errno, VideoError};
use std::path::PathBuf;

pub use crate::retry::{panic_message, Retry};

/// Documented process exit codes. Schedulers key their retry policy on these.
pub mod exit_codes {
    /// Every file done (or skipped because it was already done).
    pub const SUCCESS: i32 = 0;
    /// The job ran but at least one file failed; the others completed.
    pub const SOME_FILES_FAILED: i32 = 1;
    /// Command-line usage error (clap's own code).
    pub const USAGE: i32 = 2;
    /// The job file, model or an input is invalid or unsupported, or the output folder is not writable. Do not
    /// retry without changing the job.
    pub const BAD_JOB: i32 = 3;
    /// A backend plugin or library could not be loaded or is incompatible. Fix the installation.
    pub const ENVIRONMENT: i32 = 4;
    /// A transient failure: out of memory, a full disk, I/O error, device lost, or interrupted by SIGINT/SIGTERM
    /// (preempted). Retry: finished files are kept and will be skipped.
    pub const TRANSIENT: i32 = 75;
    /// An internal bug (a recovered panic). Report it.
    pub const INTERNAL: i32 = 70;
}

/// Any failure the engine reports.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The job file could not be read or parsed.
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    /// Validation found problems; all of them are listed.
    #[error("{}", crate::plan::format_problems(.0))]
    Invalid(Vec<Problem>),
    /// A backend plugin failed to load or run.
    #[error("{0}")]
    Backend(#[from] BackendError),
    /// Reading, decoding or encoding media failed.
    #[error("{0}")]
    Video(#[from] VideoError),
    /// A GPU could not be used.
    #[error("{0}")]
    Gpu(#[from] GpuError),
    /// The GPU stage failed on a frame.
    #[error("{0}")]
    GpuStage(#[from] StageError),
    /// NVDEC failed.
    #[error("{0}")]
    Nvdec(#[from] NvdecError),
    /// A pipeline stage failed; the cause says how.
    #[error("stage {stage}: {source}")]
    InStage {
        /// The stage's name (decode, infer, encode, setup).
        stage: &'static str,
        /// What went wrong.
        source: Box<EngineError>,
    },
    /// A frame failed a quality gate (NaN in the model's output, a flat output): the file is not published.
    #[error("quality gate failed: {reason}; the output is not published")]
    Quality {
        /// 1-based number of the first bad frame.
        frame: u64,
        /// What was wrong with it.
        reason: String,
    },
    /// Another worker took this file over while it was processed here (this worker had been silent for longer
    /// than the claim's stale interval): the output is not published here; the other worker publishes it.
    #[error("{path}: {why}; the output is not published by this worker")]
    Superseded {
        /// The output.
        path: PathBuf,
        /// Who took it over.
        why: String,
    },
    /// Something the pipeline guarantees did not hold (frames in != frames out): a bug or a broken stream.
    #[error("{0}")]
    Invariant(String),
    /// Writing an output (or its temporary file) failed. The message names the path once.
    #[error("{}", output_message(path, *errno, detail, *need_bytes))]
    Output {
        /// The output being written.
        path: PathBuf,
        /// The OS error number, when known.
        errno: Option<i32>,
        /// What failed, in the lower layer's words.
        detail: String,
        /// For a full disk: about how many bytes the file still needed.
        need_bytes: Option<u64>,
    },
    /// The job's output folder cannot be written at all: no file can succeed.
    #[error("output folder {path} is not writable: {source}")]
    OutputFolder {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A panic was caught (in a stage or a plugin) and turned into an error.
    #[error("panic recovered in {origin}: {message}")]
    PanicRecovered {
        /// Where it happened.
        origin: String,
        /// The panic's message.
        message: String,
    },
    /// Input/output failure on a path (reports, summaries, claims).
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A thread could not be started (the process or machine is out of resources).
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// Which thread or pool.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The run was interrupted by a signal.
    #[error("interrupted")]
    Interrupted,
}

/// The one line an output fault gets: what happened, the path once, what to do.
fn output_message(path: &std::path::Path, errno: Option<i32>, detail: &str, need: Option<u64>) -> String {
    let p = path.display();
    match errno {
        Some(errno::ENOSPC | errno::EDQUOT) => match need {
            Some(n) => format!("disk full: {p} needs about {} MiB more ({detail})", mib(n)),
            None => format!("disk full: {p} does not fit in the space left ({detail})"),
        },
        Some(errno::ENOENT) => format!("the output folder of {p} vanished; it is not re-created ({detail})"),
        Some(errno::EACCES | errno::EPERM) => format!("no permission to write {p} ({detail})"),
        Some(errno::EROFS) => format!("cannot write {p}: the file system is read-only ({detail})"),
        Some(errno::EIO) => format!("I/O error writing {p} ({detail})"),
        _ => format!("cannot write {p}: {detail}"),
    }
}

/// Mebibytes for a person: one decimal under 10 MiB (a small output that did not fit is not "1 MiB" short), whole
/// ones above.
fn mib(bytes: u64) -> String {
    let m = bytes as f64 / f64::from(1 << 20);
    if m < 10.0 {
        format!("{:.1}", (m * 10.0).ceil().max(1.0) / 10.0)
    } else {
        format!("{}", m.round() as u64)
    }
}

impl EngineError {
    /// Shorthand for an I/O error on a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EngineError::Io { path: path.into(), source }
    }

    /// Wraps an error with the stage it happened in.
    pub fn in_stage(stage: &'static str, e: impl Into<EngineError>) -> Self {
        EngineError::InStage { stage, source: Box::new(e.into()) }
    }

    /// An output write error on `path` (from the muxer, or from publishing the file).
    pub fn output(path: impl Into<PathBuf>, errno: Option<i32>, detail: impl Into<String>) -> Self {
        EngineError::Output { path: path.into(), errno, detail: detail.into(), need_bytes: None }
    }

    /// The innermost error (through stage wrappers).
    pub fn root(&self) -> &EngineError {
        match self {
            EngineError::InStage { source, .. } => source.root(),
            e => e,
        }
    }

    /// Whether a scheduler should retry.
    pub fn retry(&self) -> Retry {
        match self {
            EngineError::Manifest(_) | EngineError::Invalid(_) | EngineError::OutputFolder { .. } => Retry::Permanent,
            EngineError::Backend(e) => e.retry(),
            EngineError::Video(e) => e.retry(),
            EngineError::InStage { source, .. } => source.retry(),
            EngineError::Invariant(_)
            | EngineError::PanicRecovered { .. }
            | EngineError::Quality { .. }
            | EngineError::Superseded { .. } => Retry::Permanent,
            EngineError::Output { errno, .. } => match errno {
                Some(errno::EACCES | errno::EPERM | errno::EROFS) => Retry::Permanent,
                _ => Retry::Retriable,
            },
            EngineError::Gpu(_)
            | EngineError::GpuStage(_)
            | EngineError::Nvdec(_)
            | EngineError::Io { .. }
            | EngineError::Spawn { .. }
            | EngineError::Interrupted => Retry::Retriable,
        }
    }

    /// Whether the device ran out of memory (the plan may retry the file with smaller tiles).
    pub fn is_out_of_memory(&self) -> bool {
        match self.root() {
            EngineError::GpuStage(e) => e.is_out_of_memory(),
            EngineError::Gpu(e) => e.is_out_of_memory(),
            EngineError::Backend(BackendError::OutOfMemory { .. }) => true,
            _ => false,
        }
    }

    /// Whether the device itself failed (lost, reset, a driver error): its worker stops and hands the file on.
    /// Running out of memory is not: another process may hold it for now, and the file can be retried with smaller
    /// tiles ([`EngineError::is_out_of_memory`]).
    pub fn is_device_failure(&self) -> bool {
        !self.is_out_of_memory()
            && (matches!(self.root(), EngineError::Gpu(_) | EngineError::GpuStage(_) | EngineError::Nvdec(_))
                || matches!(self.root(), EngineError::Backend(b) if b.retry() == Retry::Retriable))
    }

    /// The process exit code this error maps to when it ends the run.
    pub fn exit_code(&self) -> i32 {
        match self.root() {
            EngineError::Manifest(_) | EngineError::Invalid(_) | EngineError::OutputFolder { .. } => {
                exit_codes::BAD_JOB
            }
            EngineError::Video(VideoError::Input { retry: Retry::Permanent, .. }) => exit_codes::BAD_JOB,
            // A plugin's panic is a bug, like a panic in a stage.
            EngineError::Backend(BackendError::PanicRecovered { .. }) | EngineError::PanicRecovered { .. } => {
                exit_codes::INTERNAL
            }
            EngineError::Backend(e) if e.retry() == Retry::Permanent => {
                if e.is_environment() {
                    exit_codes::ENVIRONMENT
                } else {
                    exit_codes::BAD_JOB
                }
            }
            e => match e.retry() {
                Retry::Permanent => exit_codes::BAD_JOB,
                Retry::Retriable => exit_codes::TRANSIENT,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every classified OS error of an output: its one line (the path once) and its exit code when it ends the run.
    #[test]
    fn output_faults_by_os_error() {
        let p = std::path::Path::new("/out/a.mp4");
        let cases = [
            (errno::ENOSPC, Some(310 << 20), "disk full: /out/a.mp4 needs about 310 MiB more (x)", Retry::Retriable),
            (errno::EDQUOT, Some(300 << 10), "disk full: /out/a.mp4 needs about 0.3 MiB more (x)", Retry::Retriable),
            (errno::ENOSPC, None, "disk full: /out/a.mp4 does not fit in the space left (x)", Retry::Retriable),
            (
                errno::ENOENT,
                None,
                "the output folder of /out/a.mp4 vanished; it is not re-created (x)",
                Retry::Retriable,
            ),
            (errno::EIO, None, "I/O error writing /out/a.mp4 (x)", Retry::Retriable),
            (errno::EACCES, None, "no permission to write /out/a.mp4 (x)", Retry::Permanent),
            (errno::EPERM, None, "no permission to write /out/a.mp4 (x)", Retry::Permanent),
            (errno::EROFS, None, "cannot write /out/a.mp4: the file system is read-only (x)", Retry::Permanent),
            (21, None, "cannot write /out/a.mp4: x", Retry::Retriable),
        ];
        for (n, need, line, retry) in cases {
            let e = EngineError::Output { path: p.into(), errno: Some(n), detail: "x".into(), need_bytes: need };
            assert_eq!(e.to_string(), line);
            assert_eq!(e.retry(), retry, "{line}");
            let code = if retry == Retry::Retriable { exit_codes::TRANSIENT } else { exit_codes::BAD_JOB };
            assert_eq!(EngineError::in_stage("encode", e).exit_code(), code, "{line}");
        }
        assert_eq!(mib(5 << 20), "5.0");
        assert_eq!(mib(1), "0.1");
        assert_eq!(mib(12 << 20), "12");
    }

    #[test]
    fn running_out_of_device_memory_is_not_a_lost_device() {
        let oom = EngineError::Backend(BackendError::OutOfMemory { plugin: "ort".into(), message: "m".into() });
        assert!(oom.is_out_of_memory() && !oom.is_device_failure());
        assert_eq!(oom.exit_code(), exit_codes::TRANSIENT);
        let lost = EngineError::Gpu(GpuError { device: 0, message: "CUDA_ERROR_ILLEGAL_ADDRESS".into() });
        assert!(lost.is_device_failure() && !lost.is_out_of_memory());
        assert_eq!(lost.exit_code(), exit_codes::TRANSIENT);
    }
}
