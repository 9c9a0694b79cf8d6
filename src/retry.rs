//! Whether a failure is worth retrying, and turning a caught panic into a message: shared by every layer's error
//! type, so it imports nothing of ours.

/// Whether retrying the same job can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The input must change first.
    Permanent,
    /// The same command may succeed later.
    Retriable,
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
