//! Errors from loading and calling backend plugins.

use std::path::PathBuf;

use crate::retry::Retry;

/// A backend plugin failed to load or run. Loader errors carry the plugin's path.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No plugin file at the path, or none of that name in the search folders.
    #[error("backend plugin {path} not found{searched}")]
    NotFound {
        /// The path (or file name) looked for.
        path: PathBuf,
        /// `; searched: ...` when it was looked up by name.
        searched: String,
    },
    /// The file exists but the dynamic loader refused it (not a shared library, wrong architecture, a dependency
    /// missing).
    #[error("cannot load backend plugin {path}: {message}")]
    Dlopen {
        /// The plugin file.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// A shared library without the entry symbol: not a videoforge plugin.
    #[error("{path} is not a videoforge backend plugin: it does not export `{symbol}`")]
    MissingSymbol {
        /// The library.
        path: PathBuf,
        /// The symbol looked for.
        symbol: String,
    },
    /// The plugin speaks another ABI version.
    #[error(
        "backend plugin {path} speaks ABI version {found}, this videoforge expects {expected}; rebuild the plugin \
         against this videoforge"
    )]
    BadVersion {
        /// The plugin file.
        path: PathBuf,
        /// What the plugin speaks.
        found: u32,
        /// What the host speaks.
        expected: u32,
    },
    /// A library the plugin needs (its runtime) is missing or cannot be loaded.
    #[error("backend {plugin}: {message}")]
    LibraryMissing {
        /// Plugin name.
        plugin: String,
        /// What is missing, where it was looked for and how to install it.
        message: String,
    },
    /// The model file does not exist.
    #[error("backend {plugin}: {message}")]
    ModelNotFound {
        /// Plugin name.
        plugin: String,
        /// The message.
        message: String,
    },
    /// The model does not fit the IO contract.
    #[error("backend {plugin}: model does not fit the IO contract: {message}")]
    Contract {
        /// Plugin name.
        plugin: String,
        /// What does not fit (name, shape, dtype, layout).
        message: String,
    },
    /// The request is valid but unsupported here (device, execution provider, device buffers).
    #[error("backend {plugin}: unsupported: {message}")]
    Unsupported {
        /// Plugin name.
        plugin: String,
        /// What and why.
        message: String,
    },
    /// The runtime failed, or the plugin broke the ABI contract.
    #[error("backend {plugin}: {message}")]
    Runtime {
        /// Plugin name.
        plugin: String,
        /// The message.
        message: String,
    },
    /// Out of memory in the backend.
    #[error("backend {plugin}: out of memory: {message}")]
    OutOfMemory {
        /// Plugin name.
        plugin: String,
        /// The message.
        message: String,
    },
    /// The host passed something invalid (a frame of the wrong size): a bug in the caller.
    #[error("backend {plugin}: invalid argument: {message}")]
    InvalidArgument {
        /// Plugin name.
        plugin: String,
        /// The message.
        message: String,
    },
    /// The plugin panicked; the panic was caught at the ABI boundary.
    #[error("backend {plugin} panicked: {message}")]
    PanicRecovered {
        /// Plugin name.
        plugin: String,
        /// The panic's message.
        message: String,
    },
}

impl BackendError {
    /// Whether retrying can help.
    pub fn retry(&self) -> Retry {
        match self {
            BackendError::OutOfMemory { .. } => Retry::Retriable,
            _ => Retry::Permanent,
        }
    }

    /// Whether this is an installation problem (library missing) rather than a bad model.
    pub fn is_environment(&self) -> bool {
        matches!(
            self,
            BackendError::NotFound { .. }
                | BackendError::Dlopen { .. }
                | BackendError::MissingSymbol { .. }
                | BackendError::BadVersion { .. }
                | BackendError::LibraryMissing { .. }
                | BackendError::Unsupported { .. }
        )
    }
}
