//! Job manifest. (Skeleton: being filled in.)
/// Placeholder.
#[derive(Debug, thiserror::Error)]
#[error("manifest")]
pub struct ManifestError;
