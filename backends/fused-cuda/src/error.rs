//! The crate's error type: what went wrong, with the node, file or library named, so the plugin can map it to an
//! ABI status and the user can act on the message.

use std::path::PathBuf;

/// Everything that can fail in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file could not be read.
    #[error("cannot read model {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The model file is not a valid ONNX protobuf.
    #[error("{path} is not an ONNX model: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The protobuf error.
        source: prost::DecodeError,
    },
    /// The model keeps weights in external files, which this backend does not read.
    #[error("tensor \"{tensor}\" keeps its data in an external file; save the model with the weights inside it")]
    ExternalData {
        /// The initializer.
        tensor: String,
    },
    /// A node the backend cannot run (refused at load).
    #[error("node \"{node}\" (op {op}): {reason}")]
    Unsupported {
        /// The node's name (or its first output where it has no name).
        node: String,
        /// Its operator.
        op: String,
        /// What exactly is not supported.
        reason: String,
    },
    /// The graph as a whole does not fit the IO contract or the families we run.
    #[error("model graph: {0}")]
    Graph(String),
    /// NVRTC could not be found or loaded.
    #[error("NVRTC not found: {0}")]
    NvrtcMissing(String),
    /// NVRTC failed to compile a kernel.
    #[error("NVRTC failed to compile {kernel} for sm_{sm}: {log}")]
    Compile {
        /// Kernel variant name.
        kernel: String,
        /// Target SM (e.g. 90).
        sm: u32,
        /// Compiler log.
        log: String,
    },
    /// An NVRTC call failed.
    #[error("NVRTC {call} failed with code {code}")]
    Nvrtc {
        /// The function.
        call: &'static str,
        /// Its nvrtcResult.
        code: i32,
    },
    /// The CUDA driver is missing.
    #[error("CUDA driver not available: {0}")]
    DriverMissing(String),
    /// A CUDA driver call failed.
    #[error("CUDA {call} failed: {message}")]
    Cuda {
        /// The function.
        call: &'static str,
        /// The driver's error name and text.
        message: String,
        /// True when the driver reported out of memory.
        oom: bool,
    },
    /// A run was asked with tensors that do not fit the model.
    #[error("{0}")]
    BadTensor(String),
    /// The on-disk kernel cache could not be used.
    #[error("kernel cache {path}: {source}")]
    Cache {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Shorthand.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An [`Error::Unsupported`] for a node.
pub(crate) fn unsupported(node: &str, op: &str, reason: impl Into<String>) -> Error {
    Error::Unsupported { node: node.to_string(), op: op.to_string(), reason: reason.into() }
}
