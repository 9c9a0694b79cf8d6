//! What the host and its plugins exchange, in host terms: models over host frames ([`FrameModel`]), tensors on
//! a device, how to open a model and what a loaded one is. No ABI types: `plugin` translates.

use super::error::BackendError;
use crate::codec::{Device, ExecutionProvider, Precision};
use serde::Serialize;
use std::path::PathBuf;

/// A loaded model that upscales whole frames.
pub trait FrameModel: Send {
    /// Integer upscale factor.
    fn scale(&self) -> u32;
    /// `input`: planar RGB f32, 3*height*width, values in [0,1]. `output` is resized to 3*(h*s)*(w*s); values NOT
    /// clamped (caller clamps).
    fn upscale(
        &mut self,
        input: &[f32],
        width: usize,
        height: usize,
        output: &mut Vec<f32>,
    ) -> Result<(), BackendError>;
}

/// A tensor in CUDA device memory, for `LoadedModel::run_device`: NCHW with C = 3, element type F16 or F32.
///
/// The memory must be a live device allocation on `device` holding the whole tensor, and stay alive (and not be
/// written by anyone else) until the run's work is done; see `LoadedModel::run_device` for when that is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceTensor {
    /// The `CUdeviceptr` of element [0, 0, 0, 0].
    pub ptr: u64,
    /// Element type: F16 or F32, exactly the model's (no conversion happens on the device).
    pub dtype: Precision,
    /// NCHW.
    pub shape: [i64; 4],
    /// Bytes between rows: 0 or `W * element size` (tightly packed; the ONNX Runtime plugin refuses other
    /// pitches for now).
    pub pitch_bytes: usize,
    /// The `cudaStream_t`/`CUstream` the data is ordered on (0: the legacy default stream).
    pub stream: usize,
    /// CUDA device index; must be the model's.
    pub device: u32,
}

/// What the plugin is and what its runtime can do (`videoforge doctor`, the fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    /// Short name (`onnxruntime`).
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// The runtime library and its version (`ONNX Runtime 1.32.0`), or empty when it could not be loaded.
    pub library_version: String,
    /// Where the runtime library was loaded from.
    pub library_path: Option<PathBuf>,
    /// Why the runtime library could not be loaded (models cannot be opened then, unless they name one).
    pub library_error: Option<String>,
    /// Execution providers the runtime offers.
    pub execution_providers: Vec<ExecutionProvider>,
    /// ABI version the plugin speaks.
    pub abi_version: u32,
    /// The plugin file.
    pub path: PathBuf,
}

/// How to open a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelOptions {
    /// The model file.
    pub model_path: PathBuf,
    /// Precision to run in.
    pub precision: Precision,
    /// Device to run on.
    pub device: Device,
    /// The execution provider; `None` = best for the device.
    pub execution_provider: Option<ExecutionProvider>,
    /// Tile edge in input pixels (0: whole frames).
    pub tile: u32,
    /// Overlap between neighbouring tiles in input pixels.
    pub tile_overlap: u32,
    /// Frames per run (a hint).
    pub batch: u32,
    /// Runtime library to load (the job's `model.runtime`), or `None` to search.
    pub runtime_library: Option<PathBuf>,
    /// Folder for compiled engines (TensorRT).
    pub cache_dir: Option<PathBuf>,
    /// `cudaStream_t` to run on (0: the default stream).
    pub cuda_stream: usize,
    /// Intra-op threads of CPU inference (0: the backend's default).
    pub threads: u32,
    /// Execution provider options, `key=value` pairs separated by commas (`VIDEOFORGE_ORT_CUDA_OPTIONS`).
    pub provider_options: Option<String>,
}

impl ModelOptions {
    /// CPU, automatic precision, whole frames: the options a test or a one-off tool wants.
    pub fn cpu(model_path: impl Into<PathBuf>) -> Self {
        ModelOptions {
            model_path: model_path.into(),
            precision: Precision::Auto,
            device: Device::Cpu,
            execution_provider: None,
            tile: 0,
            tile_overlap: 0,
            batch: 1,
            runtime_library: None,
            cache_dir: None,
            cuda_stream: 0,
            threads: 0,
            provider_options: None,
        }
    }
}

/// A loaded model as the plugin checked it against the IO contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// Input name.
    pub input_name: String,
    /// Output name.
    pub output_name: String,
    /// Element type of the model's IO (F16 or F32).
    pub dtype: Precision,
    /// Integer upscale factor, read from the model.
    pub scale: u32,
    /// Fixed input size (width, height), or `None` when H/W are dynamic.
    pub fixed_size: Option<(u32, u32)>,
    /// The execution provider that runs it.
    pub execution_provider: ExecutionProvider,
    /// Things the user should know (precision not honoured, runtime already loaded from elsewhere).
    pub warnings: Vec<String>,
}
