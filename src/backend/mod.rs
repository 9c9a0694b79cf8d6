//! Host side of the backend plugin ABI: finding, loading and calling inference plugins.
//! (Skeleton: being filled in.)

use crate::error::Retry;

/// A backend plugin failed to load or run.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Placeholder.
    #[error("{0}")]
    Other(String),
}

impl BackendError {
    /// Whether retrying can help.
    pub fn retry(&self) -> Retry {
        Retry::Permanent
    }
    /// Whether this is an installation problem (library missing) rather than a bad model.
    pub fn is_environment(&self) -> bool {
        false
    }
}
