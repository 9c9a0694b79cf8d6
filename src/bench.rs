//! Benchmarks run by `videoforge bench`: figures for `bench/RESULTS.md`, never pass/fail tests.

use crate::backend::{self, Device, FrameModel, ModelOptions, Plugin, Precision};
use crate::error::EngineError;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// What to measure.
#[derive(Debug, Clone)]
pub struct InferenceBench {
    /// The model.
    pub model: PathBuf,
    /// Input frame size.
    pub width: usize,
    /// Input frame height.
    pub height: usize,
    /// Timed frames (after 3 warm-up frames).
    pub frames: usize,
    /// Where to run.
    pub device: Device,
    /// Precision.
    pub precision: Precision,
    /// Execution provider (`None` = best for the device).
    pub execution_provider: Option<String>,
    /// Tile edge (0 = whole frame).
    pub tile: u32,
}

/// Figures of one inference benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct InferenceResult {
    /// What ran.
    pub what: String,
    /// Input width.
    pub width: usize,
    /// Input height.
    pub height: usize,
    /// Upscale factor.
    pub scale: u32,
    /// Frames per second over the timed frames.
    pub fps: f64,
    /// Milliseconds per frame.
    pub ms_per_frame: f64,
    /// Timed frames.
    pub frames: usize,
    /// Execution provider that ran.
    pub execution_provider: String,
    /// Model IO type.
    pub dtype: String,
    /// Device memory in use on the GPU after the run minus before the model was loaded (device-wide), in bytes.
    pub vram_delta: Option<u64>,
}

/// Times `FrameModel::upscale` on a fixed pseudo-random frame: host buffers in and out, so the figure includes
/// the upload, the download and the host-side type conversion the backend does.
pub fn inference(b: &InferenceBench) -> Result<InferenceResult, EngineError> {
    let gpu = match b.device {
        Device::Cuda(i) => Some(crate::gpu::GpuContext::new(i).map_err(|e| EngineError::Device(e.to_string()))?),
        Device::Cpu => None,
    };
    let free_before = gpu.as_ref().and_then(|g| g.mem_info().ok()).map(|(f, _)| f);
    let plugin = Plugin::load(&backend::find_plugin("onnxruntime")?)?;
    let mut model = plugin.open_model(&ModelOptions {
        model_path: b.model.clone(),
        precision: b.precision,
        device: b.device,
        execution_provider: b.execution_provider.clone(),
        tile: b.tile,
        tile_overlap: if b.tile > 0 { 16 } else { 0 },
        batch: 1,
        runtime_library: None,
        cache_dir: None,
        cuda_stream: 0,
        threads: 0,
    })?;
    let mut seed = 0x1234_5678u32;
    let input: Vec<f32> = (0..3 * b.width * b.height)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32
        })
        .collect();
    let mut output = Vec::new();
    for _ in 0..3 {
        model.upscale(&input, b.width, b.height, &mut output)?;
    }
    let t = Instant::now();
    for _ in 0..b.frames {
        model.upscale(&input, b.width, b.height, &mut output)?;
    }
    let secs = t.elapsed().as_secs_f64();
    let free_after = gpu.as_ref().and_then(|g| g.mem_info().ok()).map(|(f, _)| f);
    let info = model.info().clone();
    Ok(InferenceResult {
        what: format!("videoforge inference ({}, host buffers)", plugin.info().library_version),
        width: b.width,
        height: b.height,
        scale: model.scale(),
        fps: b.frames as f64 / secs,
        ms_per_frame: secs * 1000.0 / b.frames as f64,
        frames: b.frames,
        execution_provider: info.execution_provider,
        dtype: format!("{:?}", info.dtype),
        vram_delta: free_before.zip(free_after).map(|(a, b)| a.saturating_sub(b)),
    })
}
