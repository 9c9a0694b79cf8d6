//! The run audit (`--audit`): host allocations in the steady state, device memory, determinism and stage
//! overlap, as a pass/fail table on stderr and a structured [`AuditReport`] in the file report.
//!
//! Host allocations are counted by [`CountingAlloc`], a global allocator over [`std::alloc::System`] that the
//! `videoforge` binary registers (a test binary registers it itself). It counts every Rust heap allocation of
//! every thread; memory that C/C++ libraries (FFmpeg, x264, ONNX Runtime, the CUDA driver) take with their own
//! `malloc` does not pass through it and is not counted. The pipeline opens a process-wide *window* after frame N
//! and closes it at frame M; what was allocated in between is the steady-state figure.
//!
//! `VIDEOFORGE_AUDIT_TRACE=N` prints the backtraces of the first N allocations inside the window to stderr when it
//! closes: the way to find what still allocates (the traces themselves are not counted).

use crate::gpu::PoolStats;
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

/// Backtraces still to take inside the window (`VIDEOFORGE_AUDIT_TRACE`).
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

/// Records where this allocation comes from (cold: only with `VIDEOFORGE_AUDIT_TRACE`).
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
    let _ = TRACING.try_with(|t| t.set(false));
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

/// Opens the process-wide window (resetting its counters). `false` when a window is already open: only one
/// audited pipeline at a time is measured.
pub fn open_window() -> bool {
    if WINDOW_OPEN.load(Ordering::SeqCst) {
        return false;
    }
    WINDOW_ALLOCS.store(0, Ordering::SeqCst);
    WINDOW_BYTES.store(0, Ordering::SeqCst);
    let traces = std::env::var("VIDEOFORGE_AUDIT_TRACE").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
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
    owned: AtomicBool,
    result: Mutex<Option<SteadyAllocs>>,
}

impl AllocWindow {
    /// The window for a clip of `frames` frames (estimated; `None` when unknown): from frame 10 (a third of the
    /// clip for clips under 30 frames) to two thirds of the clip (frame 110 when the length is unknown).
    pub fn for_clip(frames: Option<u64>) -> AllocWindow {
        let (from, to) = match frames {
            Some(n) if n >= 30 => (10, (n * 2 / 3).max(11)),
            Some(n) => (n / 3, (n * 2 / 3).max(n / 3 + 1)),
            None => (10, 110),
        };
        AllocWindow { from, to, owned: AtomicBool::new(false), result: Mutex::new(None) }
    }

    /// Call with the number of frames decoded so far, before the frame is processed.
    pub fn on_frame(&self, decoded: u64) {
        if decoded == self.from + 1 {
            if open_window() {
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

/// Device memory around one file (GPU runs).
#[derive(Debug, Clone, Serialize)]
pub struct VramAudit {
    /// Device-wide free bytes before the model was loaded.
    pub free_before: u64,
    /// Device-wide free bytes after the file, with the stage and the model dropped.
    pub free_after: u64,
    /// `free_before - free_after` (negative: more free than before), bytes.
    pub delta_bytes: i64,
    /// Device memory lost over the audit's second run of the same file (free after the first run minus free
    /// after the second): what a leak would add per file, apart from what the runtime keeps once per process.
    /// The "VRAM back to start" check is judged on this figure when it is there.
    pub second_run_delta_bytes: Option<i64>,
}

/// Whether a second run of the same input gave the same bytes.
#[derive(Debug, Clone, Serialize)]
pub struct Determinism {
    /// SHA-256 of the published output.
    pub first_sha256: String,
    /// SHA-256 of the second run's output (written to a temporary file, then removed).
    pub second_sha256: String,
    /// Whether they are equal.
    pub identical: bool,
    /// SHA-256 of the frames the first run sent to its encoder (the engine's output before encoding).
    pub first_frames_sha256: String,
    /// The same for the second run.
    pub second_frames_sha256: String,
    /// Whether the engine gave the encoder the same frames both times.
    pub frames_identical: bool,
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Met.
    Pass,
    /// Not met.
    Fail,
    /// Not measured (no GPU, allocator not registered, clip too short...).
    Skip,
}

/// One row of the audit table.
#[derive(Debug, Clone, Serialize)]
pub struct AuditCheck {
    /// What was checked.
    pub name: String,
    /// Pass, fail or skip.
    pub status: Status,
    /// The figure behind it.
    pub detail: String,
}

/// The audit of one file.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AuditReport {
    /// Steady-state host allocations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steady_state: Option<SteadyAllocs>,
    /// Sum of the stages' busy seconds.
    pub busy_sum_s: f64,
    /// Wall-clock seconds of the pipeline.
    pub wall_s: f64,
    /// Device memory (GPU runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vram: Option<VramAudit>,
    /// The GPU stage's buffer pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolStats>,
    /// Same input twice → same bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub determinism: Option<Determinism>,
    /// The per-stage timing table (text).
    pub stage_table: String,
    /// The pass/fail rows, filled by [`AuditReport::evaluate`].
    pub checks: Vec<AuditCheck>,
}

/// VRAM must come back within this many bytes.
pub const VRAM_TOLERANCE: i64 = 16 << 20;
/// Minimum pool hit rate.
pub const MIN_POOL_HIT_RATE: f64 = 0.9;

impl AuditReport {
    /// Fills `checks` from the figures (call after every figure is in).
    pub fn evaluate(&mut self) {
        let mut c = Vec::new();
        let row = |name: &str, status, detail: String| AuditCheck { name: name.into(), status, detail };
        c.push(match &self.steady_state {
            Some(s) if s.counted => row(
                "steady-state host allocations",
                if s.allocations == 0 { Status::Pass } else { Status::Fail },
                format!(
                    "{} allocations, {} bytes between frames {} and {}{}",
                    s.allocations,
                    s.bytes,
                    s.from_frame,
                    s.to_frame,
                    if s.complete { "" } else { " (window closed at end of stream)" }
                ),
            ),
            Some(_) => row("steady-state host allocations", Status::Skip, "CountingAlloc not registered".into()),
            None => row("steady-state host allocations", Status::Skip, "clip too short for a window".into()),
        });
        c.push(row(
            "stages overlap",
            if self.busy_sum_s > self.wall_s { Status::Pass } else { Status::Fail },
            format!("sum of busy {:.3} s vs wall {:.3} s", self.busy_sum_s, self.wall_s),
        ));
        c.push(match &self.vram {
            // Per file: measured over the second run of the same file, once what the process sets up a single
            // time (the runtimes' module code and library handles, loaded lazily by the first file) is in place.
            Some(v) => {
                let mib = |b: i64| b as f64 / f64::from(1 << 20);
                let per_file = v.second_run_delta_bytes.unwrap_or(v.delta_bytes);
                let first = format!(
                    "first file of the process {:+.1} MiB{}",
                    mib(v.delta_bytes),
                    if v.delta_bytes.abs() > VRAM_TOLERANCE && v.second_run_delta_bytes.is_some() {
                        " (kept once per process by the runtimes, not per file)"
                    } else {
                        ""
                    }
                );
                row(
                    "VRAM back to start",
                    if per_file.abs() <= VRAM_TOLERANCE { Status::Pass } else { Status::Fail },
                    match v.second_run_delta_bytes {
                        Some(d) => format!("per file {:+.1} MiB (tolerance 16 MiB); {first}", mib(d)),
                        None => format!("{:+.1} MiB (tolerance 16 MiB)", mib(v.delta_bytes)),
                    },
                )
            }
            None => row("VRAM back to start", Status::Skip, "CPU run".into()),
        });
        c.push(match &self.pool {
            Some(p) => row(
                "GPU pool hit rate",
                if p.hit_rate() >= MIN_POOL_HIT_RATE { Status::Pass } else { Status::Fail },
                format!(
                    "{:.1} % ({} hits, {} misses, peak {} MiB)",
                    100.0 * p.hit_rate(),
                    p.hits,
                    p.misses,
                    p.peak >> 20
                ),
            ),
            None => row("GPU pool hit rate", Status::Skip, "no device stage".into()),
        });
        c.push(match &self.determinism {
            Some(d) => row(
                "same input twice, same frames",
                if d.frames_identical { Status::Pass } else { Status::Fail },
                if d.frames_identical {
                    format!("frames sha256 {}", d.first_frames_sha256)
                } else {
                    format!(
                        "frames sha256 {} vs {}: decode, conversion or inference is not deterministic",
                        d.first_frames_sha256, d.second_frames_sha256
                    )
                },
            ),
            None => row("same input twice, same frames", Status::Skip, "second run not made".into()),
        });
        c.push(match &self.determinism {
            Some(d) => row(
                "same input twice, same bytes",
                if d.identical { Status::Pass } else { Status::Fail },
                if d.identical {
                    format!("sha256 {}", d.first_sha256)
                } else {
                    format!(
                        "sha256 {} vs {}{}",
                        d.first_sha256,
                        d.second_sha256,
                        if d.frames_identical {
                            " from the same frames: the encoder is not bit-reproducible with these settings \
                             (encode.threads = 1 makes x264/x265 reproducible)"
                        } else {
                            ""
                        }
                    )
                },
            ),
            None => row("same input twice, same bytes", Status::Skip, "second run not made".into()),
        });
        self.checks = c;
    }

    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// The table for stderr.
    pub fn table(&self) -> String {
        let mut s = String::from("audit\n");
        for c in &self.checks {
            let st = match c.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            s.push_str(&format!("  {st:<4}  {:<30} {}\n", c.name, c.detail));
        }
        for line in self.stage_table.lines() {
            s.push_str(&format!("  {line}\n"));
        }
        s
    }
}
