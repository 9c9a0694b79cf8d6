//! Counting host allocations for the audit.
//!
//! Host allocations are counted by [`CountingAlloc`], a global allocator over [`std::alloc::System`] that the
//! `videoforge` binary registers (a test binary registers it itself). It counts every Rust heap allocation of
//! every thread; memory that C/C++ libraries (FFmpeg, x264, ONNX Runtime, the CUDA driver) take with their own
//! `malloc` does not pass through it and is not counted. The pipeline opens a process-wide *window* after frame N
//! and closes it at frame M; what was allocated in between is the steady-state figure.
//!
//! With a trace count N (`VIDEOFORGE_AUDIT_TRACE=N` at the CLI), the backtraces of the first N allocations inside
//! the window are printed to stderr when it closes: the way to find what still allocates (the traces themselves
//! are not counted).

use serde::Serialize;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// A global allocator that counts allocations (and reallocations) and their bytes, in total and inside the
/// open window. Register with `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.
pub struct CountingAlloc;

static INSTALLED: AtomicBool = AtomicBool::new(false);
static TOTAL_ALLOCS: AtomicU64 = AtomicU64::new(0);
static TOTAL_BYTES: AtomicU64 = AtomicU64::new(0);
static WINDOW_OPEN: AtomicBool = AtomicBool::new(false);
static WINDOW_ALLOCS: AtomicU64 = AtomicU64::new(0);
static WINDOW_BYTES: AtomicU64 = AtomicU64::new(0);

/// Backtraces still to take inside the window.
static TRACE_LEFT: AtomicU64 = AtomicU64::new(0);
/// The backtraces taken, printed when the window closes.
static TRACES: Mutex<Vec<String>> = Mutex::new(Vec::new());

thread_local! {
    /// Set while this thread takes a backtrace: its own allocations are neither counted nor traced.
    static TRACING: Cell<bool> = const { Cell::new(false) };
}

#[inline]
fn count(bytes: usize) {
    if TRACING.try_with(Cell::get).unwrap_or(true) {
        return;
    }
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
    TOTAL_ALLOCS.fetch_add(1, Ordering::Relaxed);
    TOTAL_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    if WINDOW_OPEN.load(Ordering::Relaxed) {
        WINDOW_ALLOCS.fetch_add(1, Ordering::Relaxed);
        WINDOW_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
        if TRACE_LEFT.load(Ordering::Relaxed) > 0 {
            trace(bytes);
        }
    }
}

/// Records where this allocation comes from (cold: only when traces were asked for).
#[cold]
fn trace(bytes: usize) {
    let took = TRACE_LEFT.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if !took || TRACING.try_with(|t| t.replace(true)).unwrap_or(true) {
        return;
    }
    let text = format!("allocation of {bytes} bytes:\n{}", std::backtrace::Backtrace::force_capture());
    if let Ok(mut t) = TRACES.lock() {
        t.push(text);
    }
    // Fails only while the thread is being torn down, when nothing is traced any more.
    TRACING.try_with(|t| t.set(false)).ok();
}

// SAFETY: every call is forwarded unchanged to `System`; the counters are atomics and never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Whether [`CountingAlloc`] is this process's global allocator (it has seen an allocation).
pub fn is_installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Allocations and bytes counted so far by [`CountingAlloc`] (0 when it is not installed).
pub fn totals() -> (u64, u64) {
    (TOTAL_ALLOCS.load(Ordering::Relaxed), TOTAL_BYTES.load(Ordering::Relaxed))
}

/// Opens the process-wide window (resetting its counters), tracing the first `traces` allocations in it. `false`
/// when a window is already open: only one audited pipeline at a time is measured.
pub fn open_window(traces: u64) -> bool {
    if WINDOW_OPEN.load(Ordering::SeqCst) {
        return false;
    }
    WINDOW_ALLOCS.store(0, Ordering::SeqCst);
    WINDOW_BYTES.store(0, Ordering::SeqCst);
    TRACE_LEFT.store(traces, Ordering::SeqCst);
    WINDOW_OPEN.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).is_ok()
}

/// Closes the window and returns (allocations, bytes) counted while it was open.
pub fn close_window() -> (u64, u64) {
    WINDOW_OPEN.store(false, Ordering::SeqCst);
    TRACE_LEFT.store(0, Ordering::SeqCst);
    let counted = (WINDOW_ALLOCS.load(Ordering::SeqCst), WINDOW_BYTES.load(Ordering::SeqCst));
    let traces = TRACES.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
    for t in &traces {
        eprintln!("audit trace: {t}");
    }
    counted
}

/// The window of one pipeline run: opened by the decode thread after frame `from`, closed at frame `to` (or at
/// the end of the run, if the stream is shorter than expected). Never allocates while open.
#[derive(Debug)]
pub struct AllocWindow {
    /// Window opens when frame `from + 1` is decoded.
    pub from: u64,
    /// Window closes when frame `to + 1` is decoded.
    pub to: u64,
    traces: u64,
    owned: AtomicBool,
    result: Mutex<Option<SteadyAllocs>>,
}

impl AllocWindow {
    /// The window for a clip of `frames` frames (estimated; `None` when unknown): from frame 10 (a third of the
    /// clip for clips under 30 frames) to two thirds of the clip (frame 110 when the length is unknown), tracing
    /// the first `traces` allocations inside it.
    pub fn for_clip(frames: Option<u64>, traces: u64) -> AllocWindow {
        let (from, to) = match frames {
            Some(n) if n >= 30 => (10, (n * 2 / 3).max(11)),
            Some(n) => (n / 3, (n * 2 / 3).max(n / 3 + 1)),
            None => (10, 110),
        };
        AllocWindow { from, to, traces, owned: AtomicBool::new(false), result: Mutex::new(None) }
    }

    /// Call with the number of frames decoded so far, before the frame is processed.
    pub fn on_frame(&self, decoded: u64) {
        if decoded == self.from + 1 {
            if open_window(self.traces) {
                self.owned.store(true, Ordering::SeqCst);
            }
        } else if decoded == self.to + 1 {
            self.close(decoded - 1, true);
        }
    }

    fn close(&self, at_frame: u64, complete: bool) {
        if self.owned.swap(false, Ordering::SeqCst) {
            let (allocations, bytes) = close_window();
            if let Ok(mut r) = self.result.lock() {
                *r = Some(SteadyAllocs {
                    counted: is_installed(),
                    from_frame: self.from,
                    to_frame: at_frame,
                    complete,
                    allocations,
                    bytes,
                });
            }
        }
    }

    /// Closes the window if it is still open (at `frames`, the end of the run) and returns what it counted;
    /// `None` when it never opened (clip too short, or another window was open).
    pub fn finish(&self, frames: u64) -> Option<SteadyAllocs> {
        self.close(frames, false);
        self.result.lock().ok().and_then(|r| r.clone())
    }
}

/// Host allocations counted in the steady state.
#[derive(Debug, Clone, Serialize)]
pub struct SteadyAllocs {
    /// Whether [`CountingAlloc`] is the global allocator (otherwise the figures are zero and mean nothing).
    pub counted: bool,
    /// First frame after which the window opened.
    pub from_frame: u64,
    /// Frame at which it closed.
    pub to_frame: u64,
    /// Whether it closed at the planned frame (false: the stream ended first, end-of-stream work included).
    pub complete: bool,
    /// Allocations (and reallocations) of every thread inside the window.
    pub allocations: u64,
    /// Their bytes.
    pub bytes: u64,
}
