//! The run audit (`--audit`): host allocations in the steady state ([`alloc`]), device memory, determinism and
//! stage overlap, as a pass/fail table on stderr and a structured [`AuditReport`] in the file report.

mod alloc;

pub use alloc::{close_window, is_installed, open_window, totals, AllocWindow, CountingAlloc, SteadyAllocs};

use crate::gpu::PoolStats;
use serde::Serialize;

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
