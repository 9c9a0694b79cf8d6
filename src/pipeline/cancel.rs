//! Cancellation: a token every stage polls between frames, set by the signal handler (or any thread).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// A cheap, clonable cancellation token: 0 running, 1 stop gracefully, 2 abort now.
///
/// Signal handlers (or any thread) set it; every stage polls it between frames. Either level abandons the file
/// being processed (nothing partial is published); `abort` additionally tells callers not to start anything.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicU8>);

impl Cancel {
    /// A token in the running state.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// A token sharing an existing flag (e.g. one registered with `signal_hook::flag`).
    pub fn from_flag(flag: Arc<AtomicU8>) -> Cancel {
        Cancel(flag)
    }

    /// The shared flag (0 running, 1 stop, 2 abort).
    pub fn flag(&self) -> Arc<AtomicU8> {
        self.0.clone()
    }

    /// Ask for a graceful stop (never lowers an abort).
    pub fn request_stop(&self) {
        // Fails only when a stop or an abort is already set, which is what is wanted then.
        self.0.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst).ok();
    }

    /// Ask to abort at once.
    pub fn request_abort(&self) {
        self.0.store(2, Ordering::SeqCst);
    }

    /// Whether a stop or an abort was requested.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst) >= 1
    }

    /// Whether an abort was requested.
    pub fn is_aborted(&self) -> bool {
        self.0.load(Ordering::SeqCst) >= 2
    }
}
