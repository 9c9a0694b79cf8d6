//! The engine's error type and the documented process exit codes.
//!
//! Every failure is classified as *permanent* (bad job, bad model, unsupported media: retrying will not help) or
//! *retriable* (out of memory, I/O, interrupted: a scheduler should retry), and maps to one exit code.

use std::path::PathBuf;

/// Documented process exit codes. Schedulers key their retry policy on these.
pub mod exit_codes {
    /// Every file done (or skipped because it was already done).
    pub const SUCCESS: i32 = 0;
    /// The job ran but at least one file failed; the others completed.
    pub const SOME_FILES_FAILED: i32 = 1;
    /// Command-line usage error (clap's own code).
    pub const USAGE: i32 = 2;
    /// The job file, model or an input is invalid or unsupported. Do not retry without changing the job.
    pub const BAD_JOB: i32 = 3;
    /// A backend plugin or library could not be loaded or is incompatible. Fix the installation.
    pub const ENVIRONMENT: i32 = 4;
    /// A transient failure: out of memory, I/O error, device lost, or interrupted by SIGINT/SIGTERM (preempted).
    /// Retry: finished files are kept and will be skipped.
    pub const TRANSIENT: i32 = 75;
    /// An internal bug (a recovered panic). Report it.
    pub const INTERNAL: i32 = 70;
}

/// Whether retrying the same job can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The input must change first.
    Permanent,
    /// The same command may succeed later.
    Retriable,
}

/// Any failure the engine reports.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The job file could not be read or parsed, or failed validation.
    #[error("{0}")]
    Manifest(#[from] crate::manifest::ManifestError),
    /// Validation found problems; all of them are listed.
    #[error("{}", crate::plan::format_problems(.0))]
    Invalid(Vec<crate::plan::Problem>),
    /// A backend plugin failed to load or run.
    #[error("{0}")]
    Backend(#[from] crate::backend::BackendError),
    /// An input video could not be read or is unsupported.
    #[error("{path}: {message}")]
    Media {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
        /// Whether retrying can help (a read error) or not (an unsupported codec).
        retry: Retry,
    },
    /// A pipeline stage failed.
    #[error("stage {stage}: {message}")]
    Stage {
        /// The stage's name (decode, infer, encode, ...).
        stage: &'static str,
        /// What went wrong.
        message: String,
        /// Whether retrying can help.
        retry: Retry,
    },
    /// A panic was caught (in a stage or a plugin) and turned into an error.
    #[error("panic recovered in {origin}: {message}")]
    PanicRecovered {
        /// Where it happened.
        origin: String,
        /// The panic's message.
        message: String,
    },
    /// Input/output failure on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A device (GPU) failure.
    #[error("device: {0}")]
    Device(String),
    /// The run was interrupted by a signal.
    #[error("interrupted")]
    Interrupted,
}

impl EngineError {
    /// Shorthand for an I/O error on a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EngineError::Io { path: path.into(), source }
    }

    /// Whether a scheduler should retry.
    pub fn retry(&self) -> Retry {
        match self {
            EngineError::Manifest(_) | EngineError::Invalid(_) => Retry::Permanent,
            EngineError::Backend(e) => e.retry(),
            EngineError::Media { retry, .. } | EngineError::Stage { retry, .. } => *retry,
            EngineError::PanicRecovered { .. } => Retry::Permanent,
            EngineError::Io { .. } | EngineError::Device(_) | EngineError::Interrupted => Retry::Retriable,
        }
    }

    /// The process exit code this error maps to when it ends the run.
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Manifest(_) | EngineError::Invalid(_) | EngineError::Media { .. } => exit_codes::BAD_JOB,
            // A plugin's panic is a bug, like a panic in a stage.
            EngineError::Backend(crate::backend::BackendError::PanicRecovered { .. }) => exit_codes::INTERNAL,
            EngineError::Backend(e) if e.retry() == Retry::Permanent => {
                if e.is_environment() {
                    exit_codes::ENVIRONMENT
                } else {
                    exit_codes::BAD_JOB
                }
            }
            EngineError::PanicRecovered { .. } => exit_codes::INTERNAL,
            _ => match self.retry() {
                Retry::Permanent => exit_codes::BAD_JOB,
                Retry::Retriable => exit_codes::TRANSIENT,
            },
        }
    }
}

/// Turn a caught panic's payload into its message.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}
