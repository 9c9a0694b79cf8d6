//! Host side of the backend plugin ABI: finding, loading and calling inference plugins.
//!
//! A plugin is a shared library that speaks `videoforge-backend-abi`; the host loads it with libloading, checks its
//! ABI version, and sees models only as [`FrameModel`]s over planar RGB f32 frames. Frames larger than the tile are
//! cut, run and blended here ([`tile`]), so every backend gets tiling for free.

mod error;
mod plugin;
pub mod tile;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use error::BackendError;
pub use plugin::{discover_plugins, find_plugin, plugin_file_name, plugin_search_dirs, LoadedModel, Plugin};

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
    /// Execution providers the runtime offers (`cpu`, `cuda`, `tensorrt`).
    pub execution_providers: Vec<String>,
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
    /// `cpu`, `cuda` or `tensorrt`; `None` = best for the device.
    pub execution_provider: Option<String>,
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
    /// Intra-op threads (0: the backend's fixed default).
    pub threads: u32,
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
    pub execution_provider: String,
    /// Things the user should know (precision not honoured, runtime already loaded from elsewhere).
    pub warnings: Vec<String>,
}
