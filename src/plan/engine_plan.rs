//! The plan's data: what will run, as an immutable, serialisable value. `videoforge plan job.toml --json` prints
//! it; its canonical JSON is hashed into every fingerprint.

use crate::codec::{Chroma, Codec, Container, Deinterlace, Device, ExecutionProvider, Precision};
use crate::digest::sha256_hex;
use crate::manifest::QualitySection;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the encoder stage will do. Resolved: encoder names are real FFmpeg encoder names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodePlan {
    /// The output codec.
    pub codec: Codec,
    /// FFmpeg encoder name (`libx264`, `libx265`, `libsvtav1`, `libaom-av1`, `ffv1`, `prores_ks`, `dnxhd`).
    pub encoder: String,
    /// Constant rate factor; `None` for lossless codecs.
    pub crf: Option<u32>,
    /// Encoder preset (`medium`, or a number for SVT-AV1); `None` = encoder default.
    pub preset: Option<String>,
    /// Encoder profile as the job names it; `None` = chosen per file from the output's chroma and bit depth (a
    /// file plan's is always resolved).
    pub profile: Option<String>,
    /// Output bit depth; `None` = the input's, where the codec carries it.
    pub bit_depth: Option<u8>,
    /// Output chroma subsampling; `None` = the input's, where the codec and profile carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chroma: Option<Chroma>,
    /// Threads the encoder may use (0 = FFmpeg's choice).
    pub threads: u32,
    /// Copy audio streams unchanged.
    pub copy_audio: bool,
    /// Copy subtitle and attachment streams unchanged.
    pub copy_subtitles: bool,
    /// Encoder instances on consecutive segments of a file: 0 = decided per file (see
    /// [`super::file_plan::segments_for`]), 1 = one instance, N = N instances.
    #[serde(default)]
    pub segments: u32,
    /// Frames per segment (0 = about two seconds of the file's frame rate).
    #[serde(default)]
    pub segment_frames: u32,
    /// Frames in flight per segment encoder (0 = the default of 8).
    #[serde(default)]
    pub segment_queue: u32,
}

impl EncodePlan {
    /// What a job that names only `codec` gets: the codec's encoder, default CRF and preset, everything else
    /// following the input.
    pub fn with_defaults(codec: Codec) -> EncodePlan {
        EncodePlan {
            codec,
            encoder: codec.encoder().into(),
            crf: codec.default_crf(),
            preset: codec.default_preset().map(str::to_string),
            profile: None,
            bit_depth: None,
            chroma: None,
            threads: 0,
            copy_audio: true,
            copy_subtitles: true,
            segments: 0,
            segment_frames: 0,
            segment_queue: 0,
        }
    }
}

/// Sizes the pipeline stages use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelinePlan {
    /// Capacity of each bounded queue between stages (frames in flight per queue).
    pub depth: usize,
    /// Frames per inference call.
    pub batch: usize,
    /// Tile edge in input pixels; 0 = whole frame.
    pub tile: u32,
    /// Overlap between neighbouring tiles in input pixels.
    pub tile_overlap: u32,
    /// Threads for colour conversion and decoding on the CPU (per stage pool).
    pub cpu_threads: usize,
    /// Intra-op threads of CPU inference (0 on GPU plans: the backend's default). The output bytes do not depend
    /// on it, so the fingerprint leaves it out.
    pub inference_threads: u32,
    /// Page-lock host frames for copies to and from the GPU (off only to measure what it gains).
    pub pin_host_frames: bool,
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

/// Facts about the model and its backend, read by loading it (see `crate::backend`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFacts {
    /// Integer upscale factor, read from the model.
    pub scale: u32,
    /// The model's input/output element type.
    pub io_precision: Precision,
    /// Execution providers the backend's runtime library offers.
    pub execution_providers: Vec<ExecutionProvider>,
    /// Backend plugin name (`onnxruntime`).
    pub backend: String,
    /// Backend plugin file name.
    pub plugin: String,
}

/// The model as it will run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPlan {
    /// The model file.
    pub path: PathBuf,
    /// SHA-256 of the model file.
    pub sha256: String,
    /// Backend plugin name.
    pub backend: String,
    /// Backend plugin file name.
    pub plugin: String,
    /// Execution provider.
    pub execution_provider: ExecutionProvider,
    /// Precision the model runs in.
    pub precision: Precision,
    /// Upscale factor.
    pub scale: u32,
    /// Runtime library the backend loads (the job's, else the one the CLI found).
    pub runtime_library: Option<PathBuf>,
    /// Execution provider options passed to the backend (`VIDEOFORGE_ORT_CUDA_OPTIONS`); part of the fingerprint,
    /// since they may change the output bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_options: Option<String>,
}

/// Where frames of one codec and bit depth are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decoder {
    /// NVDEC: frames stay on the GPU.
    Nvdec,
    /// libavcodec on the CPU.
    Cpu,
}

/// How frames of one codec and bit depth are decoded, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodeRoute {
    /// Codec name.
    pub codec: String,
    /// Bit depth.
    pub bit_depth: u8,
    /// Where.
    pub decoder: Decoder,
    /// Why.
    pub reason: String,
    /// Smallest and largest coded sizes NVDEC takes (`[min_w, min_h, max_w, max_h]`), for NVDEC routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<[u32; 4]>,
}

/// One worker: a device and its share of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerPlan {
    /// Worker number.
    pub id: u32,
    /// Where it runs.
    pub device: Device,
    /// Device memory this worker may use (GPU workers only).
    pub vram_budget: Option<u64>,
    /// Of that, the bytes the GPU stage's frame pool may hold (the rest is the inference runtime's: weights,
    /// workspace).
    pub frame_pool_budget: Option<u64>,
}

/// What will run: the immutable result of planning. `videoforge plan job.toml` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnginePlan {
    /// Format version of this structure.
    pub plan_version: u32,
    /// The job file.
    pub job: PathBuf,
    /// The model.
    pub model: ModelPlan,
    /// Workers, one per device slot.
    pub workers: Vec<WorkerPlan>,
    /// Files processed at once per worker.
    pub files_at_once: u32,
    /// Decode routes by codec and bit depth.
    pub decode: Vec<DecodeRoute>,
    /// Where encoding happens and why (on the CPU: the lent GPUs have no NVENC).
    pub encoder_reason: String,
    /// Encoder settings.
    pub encode: EncodePlan,
    /// Per-input encoder overrides (by work item index).
    pub encode_overrides: BTreeMap<usize, EncodePlan>,
    /// Output container.
    pub container: Container,
    /// Deinterlacing asked for (each file's plan says what it does with it).
    #[serde(default)]
    pub deinterlace: Deinterlace,
    /// Stage sizes.
    pub pipeline: PipelinePlan,
    /// The files, sorted, with their outputs.
    pub work: Vec<WorkItem>,
    /// The quality gates every output passes before it is published.
    pub quality: QualitySection,
    /// Choices the planner made and why, one line each.
    pub reasons: Vec<String>,
}

impl EnginePlan {
    /// The canonical JSON the plan hash is taken over.
    pub fn canonical_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// SHA-256 of the canonical JSON. Serialising a plan (plain data: strings, numbers, maps with string keys)
    /// cannot fail, so a failure would be a bug: it hashes the error's text rather than panic.
    pub fn hash(&self) -> String {
        match self.canonical_json() {
            Ok(json) => sha256_hex(json.as_bytes()),
            Err(e) => sha256_hex(format!("unserialisable plan: {e}").as_bytes()),
        }
    }

    /// Encoder settings for one work item.
    pub fn encode_for(&self, index: usize) -> &EncodePlan {
        self.encode_overrides.get(&index).unwrap_or(&self.encode)
    }

    /// Whether any worker runs on a GPU.
    pub fn uses_gpu(&self) -> bool {
        self.workers.iter().any(|w| matches!(w.device, Device::Cuda(_)))
    }

    /// The worker plan of a device.
    pub fn worker_on(&self, device: Device) -> Option<&WorkerPlan> {
        self.workers.iter().find(|w| w.device == device)
    }
}
