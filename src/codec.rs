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
    /// Apple ProRes through prores_ks (in .mov).
    Prores,
    /// Avid DNxHR through the dnxhd encoder (in .mov).
    Dnxhr,
}

/// Chroma subsampling of a picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Chroma {
    /// 4:2:0: chroma at half width and half height.
    #[serde(rename = "420")]
    C420,
    /// 4:2:2: chroma at half width.
    #[serde(rename = "422")]
    C422,
    /// 4:4:4: chroma at full resolution.
    #[serde(rename = "444")]
    C444,
}

impl Chroma {
    /// `4:2:0`, `4:2:2`, `4:4:4`.
    pub fn label(self) -> &'static str {
        match self {
            Chroma::C420 => "4:2:0",
            Chroma::C422 => "4:2:2",
            Chroma::C444 => "4:4:4",
        }
    }

    /// `420`, `422`, `444`: as job files and FFmpeg's pixel format names write it.
    pub fn digits(self) -> &'static str {
        match self {
            Chroma::C420 => "420",
            Chroma::C422 => "422",
            Chroma::C444 => "444",
        }
    }

    /// log2 of the horizontal and vertical chroma divisors.
    pub fn shifts(self) -> (u32, u32) {
        match self {
            Chroma::C420 => (1, 1),
            Chroma::C422 => (1, 0),
            Chroma::C444 => (0, 0),
        }
    }

    /// The planar Y'CbCr pixel format FFmpeg names for this chroma and bit depth (`yuv422p10le`).
    pub fn pixel_format(self, bit_depth: u8) -> String {
        match bit_depth {
            d if d <= 8 => format!("yuv{}p", self.digits()),
            d => format!("yuv{}p{d}le", self.digits()),
        }
    }
}

/// What the decoded frames go through before the model: deinterlacing and inverse telecine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Deinterlace {
    /// Deinterlace streams flagged or detected as interlaced (one frame per frame); leave progressive ones.
    #[default]
    Auto,
    /// Never: interlaced frames are upscaled as they are (with a warning).
    Off,
    /// Always, one frame per frame (libavfilter's bwdif on the CPU; NVDEC's adaptive deinterlacer on NVDEC).
    Bwdif,
    /// Always, one frame per field: twice the frame rate.
    BwdifDouble,
    /// Inverse telecine of 3:2-pulldown film (fieldmatch + decimate on the CPU): 29.97i becomes 23.976p.
    Ivtc,
}

impl Deinterlace {
    /// The job file's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Deinterlace::Auto => "auto",
            Deinterlace::Off => "off",
            Deinterlace::Bwdif => "bwdif",
            Deinterlace::BwdifDouble => "bwdif-double",
            Deinterlace::Ivtc => "ivtc",
        }
    }
}

/// The chroma layouts and bit depths a codec (or one of its profiles) can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carries {
    /// Chroma layouts, smallest first.
    pub chroma: &'static [Chroma],
    /// Bit depths, smallest first.
    pub depths: &'static [u8],
}

impl Carries {
    /// Whether both fit.
    pub fn fits(&self, chroma: Chroma, depth: u8) -> bool {
        self.chroma.contains(&chroma) && self.depths.contains(&depth)
    }
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
            Codec::Prores => "prores",
            Codec::Dnxhr => "dnxhr",
        }
    }

    /// Valid CRF range, or `None` when the codec takes no CRF (lossless).
    pub fn crf_range(self) -> Option<(u32, u32)> {
        match self {
            Codec::H264 | Codec::Hevc => Some((0, 51)),
            Codec::Av1 => Some((0, 63)),
            Codec::Ffv1 | Codec::Prores | Codec::Dnxhr => None,
        }
    }

    /// The CRF used when the job gives none.
    pub fn default_crf(self) -> Option<u32> {
        match self {
            Codec::H264 => Some(18),
            Codec::Hevc => Some(20),
            Codec::Av1 => Some(30),
            Codec::Ffv1 | Codec::Prores | Codec::Dnxhr => None,
        }
    }

    /// The preset used when the job gives none.
    pub fn default_preset(self) -> Option<&'static str> {
        match self {
            Codec::H264 | Codec::Hevc => Some("medium"),
            Codec::Av1 => Some("8"),
            Codec::Ffv1 | Codec::Prores | Codec::Dnxhr => None,
        }
    }

    /// Profile names the job file may give, smallest first.
    pub fn profiles(self) -> &'static [&'static str] {
        match self {
            Codec::H264 => &["baseline", "main", "high", "high10", "high422", "high444"],
            Codec::Hevc => {
                &["main", "main10", "main12", "main422-10", "main422-12", "main444-8", "main444-10", "main444-12"]
            }
            Codec::Av1 => &["main", "high", "professional"],
            Codec::Ffv1 => &[],
            Codec::Prores => &["proxy", "lt", "standard", "hq", "4444", "4444xq"],
            Codec::Dnxhr => &["lb", "sq", "hq", "hqx", "444"],
        }
    }

    /// What the codec's encoder here can carry with `profile` (`None`: with any of its profiles). AV1 is written by
    /// SVT-AV1, which encodes 4:2:0 only; ProRes is 10-bit (prores_ks takes 10-bit samples); DNxHR LB/SQ/HQ are
    /// 8-bit 4:2:2, HQX 10-bit 4:2:2, 444 10-bit 4:4:4 (FFmpeg's dnxhd encoder has no 12-bit input).
    pub fn carries(self, profile: Option<&str>) -> Carries {
        const C420: &[Chroma] = &[Chroma::C420];
        const UP_TO_422: &[Chroma] = &[Chroma::C420, Chroma::C422];
        const ALL: &[Chroma] = &[Chroma::C420, Chroma::C422, Chroma::C444];
        const C422_ONLY: &[Chroma] = &[Chroma::C422];
        const C444_ONLY: &[Chroma] = &[Chroma::C444];
        const PRORES: &[Chroma] = &[Chroma::C422, Chroma::C444];
        let c = |chroma, depths| Carries { chroma, depths };
        match (self, profile) {
            (Codec::H264, Some("baseline" | "main" | "high")) => c(C420, &[8]),
            (Codec::H264, Some("high10")) => c(C420, &[8, 10]),
            (Codec::H264, Some("high422")) => c(UP_TO_422, &[8, 10]),
            (Codec::H264, _) => c(ALL, &[8, 10]),
            (Codec::Hevc, Some("main")) => c(C420, &[8]),
            (Codec::Hevc, Some("main10")) => c(C420, &[8, 10]),
            (Codec::Hevc, Some("main12")) => c(C420, &[8, 10, 12]),
            (Codec::Hevc, Some("main422-10")) => c(UP_TO_422, &[8, 10]),
            (Codec::Hevc, Some("main422-12")) => c(UP_TO_422, &[8, 10, 12]),
            (Codec::Hevc, Some("main444-8")) => c(ALL, &[8]),
            (Codec::Hevc, Some("main444-10")) => c(ALL, &[8, 10]),
            (Codec::Hevc, _) => c(ALL, &[8, 10, 12]),
            (Codec::Av1, _) => c(C420, &[8, 10]),
            (Codec::Ffv1, _) => c(ALL, &[8, 10, 12]),
            (Codec::Prores, Some("4444" | "4444xq")) => c(C444_ONLY, &[10]),
            (Codec::Prores, Some(_)) => c(C422_ONLY, &[10]),
            (Codec::Prores, None) => c(PRORES, &[10]),
            (Codec::Dnxhr, Some("hqx")) => c(C422_ONLY, &[10]),
            (Codec::Dnxhr, Some("444")) => c(C444_ONLY, &[10]),
            (Codec::Dnxhr, Some(_)) => c(C422_ONLY, &[8]),
            (Codec::Dnxhr, None) => c(PRORES, &[8, 10]),
        }
    }

    /// The profile written when the job names none, for the chroma and bit depth the file plan chose (which the
    /// codec carries); `None` where the encoder takes no profile.
    pub fn default_profile(self, chroma: Chroma, depth: u8) -> Option<&'static str> {
        use Chroma::*;
        Some(match self {
            Codec::H264 => match (chroma, depth) {
                (C420, 8) => "high",
                (C420, _) => "high10",
                (C422, _) => "high422",
                (C444, _) => "high444",
            },
            Codec::Hevc => match (chroma, depth) {
                (C420, 8) => "main",
                (C420, 10) => "main10",
                (C420, _) => "main12",
                (C422, 12) => "main422-12",
                (C422, _) => "main422-10",
                (C444, 8) => "main444-8",
                (C444, 10) => "main444-10",
                (C444, _) => "main444-12",
            },
            Codec::Prores if chroma == C444 => "4444",
            Codec::Prores => "hq",
            Codec::Dnxhr if chroma == C444 => "444",
            Codec::Dnxhr if depth > 8 => "hqx",
            Codec::Dnxhr => "hq",
            Codec::Av1 | Codec::Ffv1 => return None,
        })
    }

    /// The smallest profile that carries this chroma and bit depth, if the codec has profiles.
    pub fn smallest_profile_for(self, chroma: Chroma, depth: u8) -> Option<&'static str> {
        self.profiles().iter().copied().find(|p| self.carries(Some(p)).fits(chroma, depth))
    }

    /// The containers the output can be written to (`None`: any but the listed exceptions of
    /// [`Codec::refuses`]).
    pub fn only_in(self) -> Option<Container> {
        matches!(self, Codec::Prores | Codec::Dnxhr).then_some(Container::Mov)
    }

    /// Whether the codec cannot be stored in `container`.
    pub fn refuses(self, container: Container) -> bool {
        match self.only_in() {
            Some(only) => container != only,
            None => self == Codec::Ffv1 && container == Container::Mp4,
        }
    }

    /// The FFmpeg encoder that writes it.
    pub fn encoder(self) -> &'static str {
        match self {
            Codec::H264 => "libx264",
            Codec::Hevc => "libx265",
            Codec::Av1 => "libsvtav1",
            Codec::Ffv1 => "ffv1",
            Codec::Prores => "prores_ks",
            Codec::Dnxhr => "dnxhd",
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
