//! Validation and planning: a parsed job plus the machine probe become an immutable [`EnginePlan`].
//! (Being filled in: the types below are the contract the pipeline and runner build against.)

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One validation problem, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Dotted key path in the manifest (`model.path`), or empty for the whole job.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// All problems, one per line.
pub fn format_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| if p.key.is_empty() { p.message.clone() } else { format!("{}: {}", p.key, p.message) })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Video codec of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// H.264 through libx264.
    H264,
    /// HEVC through libx265.
    Hevc,
    /// AV1 through libsvtav1 (or libaom-av1 when SVT is missing).
    Av1,
    /// Lossless FFV1.
    Ffv1,
}

/// Output container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    /// MPEG-4 Part 14.
    Mp4,
    /// Matroska.
    Mkv,
    /// QuickTime.
    Mov,
    /// The same container as the input file.
    Same,
}

/// What the encoder stage will do. Resolved: encoder names are real FFmpeg encoder names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodePlan {
    /// The output codec.
    pub codec: Codec,
    /// FFmpeg encoder name (`libx264`, `libx265`, `libsvtav1`, `libaom-av1`, `ffv1`).
    pub encoder: String,
    /// Constant rate factor; `None` for lossless codecs.
    pub crf: Option<u32>,
    /// Encoder preset (`medium`, or a number for SVT-AV1); `None` = encoder default.
    pub preset: Option<String>,
    /// Encoder profile; `None` = chosen from the bit depth.
    pub profile: Option<String>,
    /// Output bit depth; `None` = the same as the input (8 or 10).
    pub bit_depth: Option<u8>,
    /// Threads the encoder may use (0 = FFmpeg's choice).
    pub threads: u32,
    /// Copy audio streams unchanged.
    pub copy_audio: bool,
    /// Copy subtitle and attachment streams unchanged.
    pub copy_subtitles: bool,
}

/// Sizes the pipeline stages use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelinePlan {
    /// Capacity of each bounded channel between stages (frames in flight per queue).
    pub depth: usize,
    /// Frames per inference call.
    pub batch: usize,
    /// Tile edge in input pixels; 0 = whole frame.
    pub tile: u32,
    /// Overlap between neighbouring tiles in input pixels.
    pub tile_overlap: u32,
    /// Threads for pre/post-processing (rayon pool).
    pub cpu_threads: usize,
}

/// Where a file's output goes, decided at plan time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    /// Input file.
    pub input: PathBuf,
    /// Final output path.
    pub output: PathBuf,
    /// Size of the input in bytes (used to balance shards).
    pub size: u64,
}
