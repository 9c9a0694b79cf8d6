//! The video layer's errors. Write errors keep FFmpeg's error (and so the OS error number), because a full disk,
//! a vanished folder and a read-only mount need different answers from a scheduler.

use crate::retry::Retry;
use ffmpeg_next as ff;
use std::path::PathBuf;

/// A media failure.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The input cannot be read, demuxed or decoded.
    #[error("{path}: {message}")]
    Input {
        /// The input file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
        /// A read error may pass; a damaged or unsupported stream will not.
        retry: Retry,
    },
    /// Writing the output (the muxer's I/O) failed.
    #[error("{what}: {source}")]
    Write {
        /// What was being written (`header`, `video packet`, `trailer`).
        what: &'static str,
        /// FFmpeg's error, holding the OS error number where there is one.
        source: ff::Error,
    },
    /// The output could not be created.
    #[error("cannot create the output: {source}")]
    Create {
        /// FFmpeg's error.
        source: ff::Error,
    },
    /// An encoder could not be opened or failed.
    #[error("{what}: {source}")]
    Encoder {
        /// Which step (`open libx264`, `encode`, `flush`).
        what: String,
        /// FFmpeg's error.
        source: ff::Error,
    },
    /// A frame, format or stream layout this build cannot handle.
    #[error("{0}")]
    Unsupported(String),
    /// Frames, packets or timestamps broke an invariant the output needs (e.g. segments that do not join).
    #[error("{0}")]
    Stream(String),
}

/// OS error numbers a write can fail with (Linux values, as FFmpeg's `AVERROR(e)` carries them).
pub mod errno {
    /// No such file or directory: the output folder vanished.
    pub const ENOENT: i32 = 2;
    /// I/O error: the storage failed.
    pub const EIO: i32 = 5;
    /// Permission denied.
    pub const EACCES: i32 = 13;
    /// Operation not permitted.
    pub const EPERM: i32 = 1;
    /// No space left on the device.
    pub const ENOSPC: i32 = 28;
    /// Read-only file system.
    pub const EROFS: i32 = 30;
    /// Disk quota exceeded.
    pub const EDQUOT: i32 = 122;
}

impl VideoError {
    /// Shorthand for an input problem.
    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>, retry: Retry) -> VideoError {
        VideoError::Input { path: path.into(), message: message.into(), retry }
    }

    /// Shorthand for an encoder failure.
    pub fn encoder(what: impl Into<String>, source: ff::Error) -> VideoError {
        VideoError::Encoder { what: what.into(), source }
    }

    /// The OS error number behind a failed write or create, if FFmpeg reported one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            VideoError::Write { source, .. } | VideoError::Create { source } => match source {
                ff::Error::Other { errno } => Some(*errno),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether retrying can help: a full disk, a storage error or a vanished folder may pass; a permission
    /// problem, an unsupported stream or a broken input will not.
    pub fn retry(&self) -> Retry {
        match self {
            VideoError::Input { retry, .. } => *retry,
            VideoError::Write { .. } | VideoError::Create { .. } => match self.errno() {
                Some(errno::EACCES | errno::EPERM | errno::EROFS) => Retry::Permanent,
                _ => Retry::Retriable,
            },
            VideoError::Encoder { .. } | VideoError::Unsupported(_) | VideoError::Stream(_) => Retry::Permanent,
        }
    }
}
