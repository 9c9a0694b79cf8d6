//! The vocabulary every layer shares: output codecs and containers, numeric precision, and devices. Plain data;
//! imports nothing of ours, so any module may use it without creating an import cycle.

use serde::{Deserialize, Serialize};

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

/// Numeric precision of a model's inputs/outputs or of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Precision {
    /// Half precision.
    F16,
    /// Single precision.
    F32,
    /// Whatever the model's IO type is.
    Auto,
}

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Device {
    /// The CPU.
    Cpu,
    /// A CUDA GPU by index.
    Cuda(u32),
}

/// The inference runtime's execution provider (ONNX Runtime's notion; other backends map onto it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionProvider {
    /// The CPU.
    Cpu,
    /// CUDA.
    Cuda,
    /// TensorRT.
    Tensorrt,
}

impl ExecutionProvider {
    /// The lower-case name used in reports and job files.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "cpu",
            ExecutionProvider::Cuda => "cuda",
            ExecutionProvider::Tensorrt => "tensorrt",
        }
    }
}

impl std::fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// x264/x265 preset names, fastest first.
pub const X26X_PRESETS: [&str; 10] =
    ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"];

/// File extensions taken from a directory input.
pub const VIDEO_EXTENSIONS: [&str; 15] =
    ["mp4", "mkv", "mov", "webm", "avi", "m4v", "ts", "mts", "m2ts", "y4m", "flv", "wmv", "mpg", "mpeg", "nut"];

impl Codec {
    /// Name used in output file names and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Hevc => "hevc",
            Codec::Av1 => "av1",
            Codec::Ffv1 => "ffv1",
        }
    }

    /// Valid CRF range, or `None` when the codec takes no CRF (lossless).
    pub fn crf_range(self) -> Option<(u32, u32)> {
        match self {
            Codec::H264 | Codec::Hevc => Some((0, 51)),
            Codec::Av1 => Some((0, 63)),
            Codec::Ffv1 => None,
        }
    }

    /// The CRF used when the job gives none.
    pub fn default_crf(self) -> Option<u32> {
        match self {
            Codec::H264 => Some(18),
            Codec::Hevc => Some(20),
            Codec::Av1 => Some(30),
            Codec::Ffv1 => None,
        }
    }

    /// The preset used when the job gives none.
    pub fn default_preset(self) -> Option<&'static str> {
        match self {
            Codec::H264 | Codec::Hevc => Some("medium"),
            Codec::Av1 => Some("8"),
            Codec::Ffv1 => None,
        }
    }

    /// Profile names the codec's encoder accepts.
    pub fn profiles(self) -> &'static [&'static str] {
        match self {
            Codec::H264 => &["baseline", "main", "high", "high10", "high422", "high444"],
            Codec::Hevc => &["main", "main10", "main12", "main422-10", "main444-8", "main444-10"],
            Codec::Av1 => &["main", "high", "professional"],
            Codec::Ffv1 => &[],
        }
    }

    /// The FFmpeg encoder that writes it.
    pub fn encoder(self) -> &'static str {
        match self {
            Codec::H264 => "libx264",
            Codec::Hevc => "libx265",
            Codec::Av1 => "libsvtav1",
            Codec::Ffv1 => "ffv1",
        }
    }
}

impl Container {
    /// File extension for the container; `None` for [`Container::Same`].
    pub fn extension(self) -> Option<&'static str> {
        match self {
            Container::Mp4 => Some("mp4"),
            Container::Mkv => Some("mkv"),
            Container::Mov => Some("mov"),
            Container::Same => None,
        }
    }
}

impl Precision {
    /// Bytes per element (`Auto` counts as f32, the larger).
    pub fn bytes(self) -> u64 {
        match self {
            Precision::F16 => 2,
            Precision::F32 | Precision::Auto => 4,
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}
