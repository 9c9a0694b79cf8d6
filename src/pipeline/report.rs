//! What a file's run reports: per-stage timing, queue depths, frames, memory and CPU time, warnings, and the
//! audit when asked for. Written into `<output>.report.json` by the runner.

use crate::codec::Chroma;
use crate::plan::{FilterPlan, FramePath};
use crate::video::VideoInfo;
use serde::Serialize;
use std::path::PathBuf;

/// Timing of one stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageReport {
    /// decode, infer or encode.
    pub name: &'static str,
    /// Seconds spent working.
    pub busy_s: f64,
    /// Seconds spent waiting on a queue (input empty or output full).
    pub wait_s: f64,
    /// Frames handled.
    pub frames: u64,
}

/// One point of a file's timeline: seconds since the stages started, frames encoded so far, and each stage's
/// busy seconds so far (decode, infer, encode). The run report draws fps and stage use over time from these.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TimelinePoint {
    /// Seconds since the stages started.
    pub t_s: f64,
    /// Frames encoded so far.
    pub frames: u64,
    /// Busy seconds so far of decode, infer and encode.
    pub busy_s: [f64; 3],
}

/// Points kept per file: a point every quarter second, thinned by half whenever the buffer fills (so a long file
/// keeps its whole span at a coarser step, and nothing is allocated after the start).
pub const TIMELINE_POINTS: usize = 2048;

/// A queue's capacity and the most items it held.
#[derive(Debug, Clone, Serialize)]
pub struct QueueReport {
    /// `decode→infer` or `infer→encode`.
    pub name: &'static str,
    /// Capacity (the plan's depth).
    pub capacity: usize,
    /// Most items seen in it.
    pub max_depth: usize,
}

/// What happened to one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The input.
    pub input: PathBuf,
    /// The published output.
    pub output: PathBuf,
    /// The input video stream.
    pub video: VideoInfo,
    /// Model scale.
    pub scale: u32,
    /// Encoded width.
    pub output_width: u32,
    /// Encoded height.
    pub output_height: u32,
    /// Encoded bit depth.
    pub output_bit_depth: u8,
    /// Encoded chroma subsampling.
    pub output_chroma: Chroma,
    /// The encoder's pixel format.
    pub output_pixel_format: String,
    /// What the decoded frames went through before the model (deinterlacing, inverse telecine): what was done,
    /// the field order read and where, and the output's time base and frame rate.
    pub filter: FilterPlan,
    /// FFmpeg encoder.
    pub encoder: String,
    /// The encoder profile written (the job's, or the smallest that carries the output's format).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder_profile: Option<String>,
    /// Encoder instances that worked on consecutive segments at once (1: one instance for the whole file).
    pub encoder_instances: u32,
    /// Frames per segment when `encoder_instances` > 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_frames: Option<u32>,
    /// Where the video was decoded: `nvdec` (frames stayed on the GPU) or `cpu`.
    pub decoder: String,
    /// How frames travelled (the file's plan), and why.
    pub frame_path: FramePath,
    /// Why that frame path.
    pub frame_path_reason: String,
    /// libavformat muxer.
    pub container: String,
    /// Frames decoded.
    pub frames_decoded: u64,
    /// Frames encoded: equal to `frames_decoded`, or to the frames the filter made of them (one per field, four in
    /// five after inverse telecine); a mismatch fails the file.
    pub frames_encoded: u64,
    /// Packets of other streams copied.
    pub packets_copied: u64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Frames per second end to end.
    pub fps: f64,
    /// Per-stage timing.
    pub stages: Vec<StageReport>,
    /// Per-queue depth.
    pub queues: Vec<QueueReport>,
    /// Peak resident memory of the process (VmHWM), bytes.
    pub peak_rss_bytes: Option<u64>,
    /// CPU seconds (user + system, every thread of the process, decoders and encoders included) over the file;
    /// divided by `wall_s`, the cores kept busy. Process-wide: other files running at once count too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_s: Option<f64>,
    /// What was assumed, skipped or adapted.
    pub warnings: Vec<String>,
    /// The audit (when asked for): steady-state allocations, stage overlap, the GPU pool; the runner adds
    /// device memory and determinism.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<crate::audit::AuditReport>,
    /// SHA-256 of the frames the encoder received (when the job asked for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames_sha256: Option<String>,
    /// What the quality gates saw (every frame passed them, or the file would have failed).
    pub quality: super::quality::QualityReport,
    /// Frames and stage use over the run (see [`TimelinePoint`]).
    pub timeline: Vec<TimelinePoint>,
    /// The tile (px) of the one retry this file got after running out of device memory with the plan's tiling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retried_with_tile: Option<u32>,
}

/// CPU time of this process so far (user + system), seconds, from `/proc/self/stat` (Linux; its clock ticks are
/// `USER_HZ`, 100 per second on every Linux ABI).
pub fn process_cpu_s() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3 on: utime and stime are fields 14, 15.
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split_whitespace().skip(11);
    let (user, sys): (u64, u64) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?);
    Some((user + sys) as f64 / 100.0)
}

/// Peak resident set size of this process, from `/proc/self/status` (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The stage table the audit prints.
pub(crate) fn audit_table(stages: &[StageReport], queues: &[QueueReport]) -> String {
    let mut s = String::from("stage    busy_s   wait_s   frames\n");
    for st in stages {
        s.push_str(&format!("{:<8} {:>7.3} {:>8.3} {:>8}\n", st.name, st.busy_s, st.wait_s, st.frames));
    }
    for q in queues {
        s.push_str(&format!("queue {:<14} max {}/{}\n", q.name, q.max_depth, q.capacity));
    }
    s
}
