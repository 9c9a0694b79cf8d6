//! The manifest's sections as serde types (`deny_unknown_fields`): what the user wrote, before validation. Their
//! doc comments are the JSON Schema's descriptions.

use super::values::{ByteSize, Gpus};
use crate::codec::{Chroma, Codec, Container, Deinterlace};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A videoforge job: what to upscale, with which model, where the results go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "videoforge job manifest")]
pub struct Manifest {
    /// Manifest format version; must be 1.
    pub version: u32,
    /// The super-resolution model.
    pub model: ModelSection,
    /// Which devices to run on and how much of them to use.
    #[serde(default)]
    pub device: DeviceSection,
    /// The inputs: files, directories or glob patterns. At least one.
    pub input: Vec<InputSection>,
    /// Where outputs go and how they are named.
    pub output: OutputSection,
    /// Video encoder settings for every output (inputs may override some).
    #[serde(default)]
    pub encode: EncodeSection,
    /// Pipeline tuning; the plan chooses what is left out.
    #[serde(default)]
    pub pipeline: PipelineSection,
    /// The gates every output passes before it is published.
    #[serde(default)]
    pub quality: super::quality::QualitySection,
    /// What decoded frames go through before the model (deinterlacing, inverse telecine).
    #[serde(default)]
    pub filter: FilterSection,
    /// How the job is split across the tasks of a scheduler array.
    #[serde(default)]
    pub farm: FarmSection,
}

/// `[farm]`: all optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FarmSection {
    /// The planned number of shards (the size of the scheduler array the job is submitted as). A task takes its shard
    /// from the scheduler's variables; where the array's task count differs (a resubmitted task, a stepped array),
    /// this count still decides the split and the task steals unclaimed files. `--shard-count` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub shards: Option<u32>,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Path to the ONNX model; relative paths resolve against the manifest's folder.
    pub path: String,
    /// Inference backend: `auto`, `onnxruntime`, `tensorrt` or `fused-cuda`.
    #[serde(default)]
    pub backend: BackendChoice,
    /// Numeric precision to run the model in.
    #[serde(default)]
    pub precision: PrecisionChoice,
    /// Path to the backend's runtime library (e.g. libonnxruntime.so); default: searched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

/// Which inference backend to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// ONNX Runtime (CPU, CUDA and TensorRT execution providers).
    Onnxruntime,
    /// TensorRT (through ONNX Runtime's TensorRT execution provider).
    Tensorrt,
    /// videoforge's own fused CUDA kernels (NVRTC, SM 8.0 and newer, SRVGGNetCompact and RRDBNet graphs, FP16).
    #[serde(rename = "fused-cuda")]
    FusedCuda,
    /// The best available for the device: fused-cuda where it runs the model on this GPU, else ONNX Runtime.
    #[default]
    Auto,
}

/// Model precision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    /// Half precision.
    F16,
    /// Single precision.
    F32,
    /// The model's own precision.
    #[default]
    Auto,
}

/// `[device]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceSection {
    /// `"auto"` (every GPU, else CPU), `"cpu"`, or a list of GPU indices (`[0, 1]`; repeat an index for two
    /// workers on one GPU).
    #[serde(default)]
    pub gpus: Gpus,
    /// Upper bound on the device memory videoforge may use per GPU, e.g. `"8GiB"` or a number of bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vram_limit: Option<ByteSize>,
    /// Files processed at once per worker (several NVDEC engines can decode at once). Default: the plan decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_at_once: Option<u32>,
}

/// One `[[input]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSection {
    /// A file, a directory or a glob pattern (`clips/*.mp4`); relative to the manifest's folder.
    pub path: String,
    /// Descend into subdirectories when `path` is a directory.
    #[serde(default)]
    pub recursive: bool,
    /// Encoder settings for the files of this input only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encode: Option<EncodeOverride>,
}

/// Per-input encoder overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EncodeOverride {
    /// Constant rate factor for these files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crf: Option<u32>,
    /// Encoder preset for these files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
}

/// `[output]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// Output folder; relative to the manifest's folder; created when missing.
    pub dir: String,
    /// File name template: `{stem}` (input name without extension), `{ext}` (the output container's extension),
    /// `{scale}` (the model's scale), `{codec}`, `{index}` (position in the sorted work list).
    #[serde(default = "default_name")]
    pub name: String,
    /// Output container.
    #[serde(default = "default_container")]
    pub container: Container,
}

fn default_name() -> String {
    "{stem}.x{scale}.{ext}".into()
}

fn default_container() -> Container {
    Container::Mp4
}

/// `[encode]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EncodeSection {
    /// Output video codec.
    #[serde(default = "default_codec")]
    pub codec: Codec,
    /// Constant rate factor (0–51 for h264/hevc, 0–63 for av1; not for ffv1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crf: Option<u32>,
    /// Encoder preset (x264/x265 names like `medium`; 0–13 for av1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Encoder profile (h264 `high`, `high10`, `high422`, `high444`; hevc `main10`, `main422-10`, `main444-12`...;
    /// prores `proxy`, `lt`, `standard`, `hq`, `4444`, `4444xq`; dnxhr `lb`, `sq`, `hq`, `hqx`, `444`). Default:
    /// the smallest that carries the output's chroma and bit depth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Output bit depth, 8, 10 or 12 (as the codec and profile can carry: prores 10, dnxhr 8 or 10, h264 and av1
    /// 8 or 10, hevc and ffv1 up to 12); default: the input's, where the codec can carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bit_depth: Option<u8>,
    /// Chroma subsampling of the output: `"420"`, `"422"`, `"444"`, or `"same"` (default): the input's where the
    /// codec and profile can carry it, else the closest they can (the report names what was lost).
    #[serde(default, skip_serializing_if = "ChromaChoice::is_same")]
    pub chroma: ChromaChoice,
    /// Copy audio streams unchanged.
    #[serde(default = "yes")]
    pub copy_audio: bool,
    /// Copy subtitle and attachment streams unchanged.
    #[serde(default = "yes")]
    pub copy_subtitles: bool,
    /// Encoder threads; 0 lets the encoder decide.
    #[serde(default)]
    pub threads: u32,
    /// x264/x265 instances encoding consecutive segments of each file at once (each segment starts with a
    /// keyframe; the segments are joined into one stream). Default: automatic, 2–3 for HEVC outputs of 1440p and
    /// up on machines with 8 or more cores (one x265 instance cannot use them), otherwise 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 8))]
    pub segments: Option<u32>,
}

/// `encode.chroma`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ChromaChoice {
    /// 4:2:0.
    #[serde(rename = "420")]
    C420,
    /// 4:2:2.
    #[serde(rename = "422")]
    C422,
    /// 4:4:4.
    #[serde(rename = "444")]
    C444,
    /// The input's.
    #[default]
    #[serde(rename = "same")]
    Same,
}

impl ChromaChoice {
    /// The chroma asked for; `None` for "same".
    pub fn fixed(self) -> Option<Chroma> {
        match self {
            ChromaChoice::C420 => Some(Chroma::C420),
            ChromaChoice::C422 => Some(Chroma::C422),
            ChromaChoice::C444 => Some(Chroma::C444),
            ChromaChoice::Same => None,
        }
    }

    fn is_same(&self) -> bool {
        *self == ChromaChoice::Same
    }
}

/// `[filter]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterSection {
    /// Deinterlacing: `"auto"` (default: only streams flagged or detected as interlaced, one frame per frame),
    /// `"off"`, `"bwdif"` (always, one frame per frame), `"bwdif-double"` (always, one frame per field: twice the
    /// frame rate), `"ivtc"` (inverse telecine of 3:2-pulldown film: 29.97i to 23.976p, on the CPU).
    #[serde(default)]
    pub deinterlace: Deinterlace,
}

fn default_codec() -> Codec {
    Codec::H264
}

fn yes() -> bool {
    true
}

impl Default for EncodeSection {
    fn default() -> Self {
        EncodeSection {
            codec: default_codec(),
            crf: None,
            preset: None,
            profile: None,
            bit_depth: None,
            chroma: ChromaChoice::Same,
            copy_audio: true,
            copy_subtitles: true,
            threads: 0,
            segments: None,
        }
    }
}

/// `[pipeline]`: all optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Frames in flight between two stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// Frames per inference call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// Tile edge in input pixels; 0 = the whole frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile: Option<u32>,
    /// Overlap between tiles in input pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile_overlap: Option<u32>,
}
