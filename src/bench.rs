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

/// Figures of the device paths on one GPU: the model alone on device buffers, and the whole GPU stage (upload a
/// 4:2:0 frame, colour kernels, model, kernels, download the encoder-format frame).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceResult {
    /// What ran.
    pub what: String,
    /// Input width.
    pub width: usize,
    /// Input height.
    pub height: usize,
    /// Model alone, device buffers, on the GPU stage's stream (synchronised once per frame).
    pub model_fps: f64,
    /// The whole GPU stage per frame.
    pub stage_fps: f64,
    /// Timed frames of each.
    pub frames: usize,
    /// Model IO type.
    pub dtype: String,
    /// Device memory in use after the run minus before (device-wide), in bytes.
    pub vram_delta: Option<u64>,
    /// The stage's buffer pool counters.
    pub pool: crate::gpu::PoolStats,
}

/// Times the device paths on GPU `device` (see [`DeviceResult`]).
pub fn device(b: &InferenceBench, device: u32) -> Result<DeviceResult, EngineError> {
    use crate::backend::DeviceTensor;
    use crate::video::{Matrix, Range, YuvFrame, YuvUpscaler};
    use cudarc::driver::DevicePtr;
    let dev_err = |e: String| EngineError::Device(e);
    let gpu = std::sync::Arc::new(crate::gpu::GpuContext::new(device).map_err(|e| dev_err(e.to_string()))?);
    let free_before = gpu.mem_info().ok().map(|(f, _)| f);
    let plugin = Plugin::load(&backend::find_plugin("onnxruntime")?)?;
    let mut model = plugin.open_model(&ModelOptions {
        model_path: b.model.clone(),
        precision: b.precision,
        device: Device::Cuda(device),
        execution_provider: b.execution_provider.clone(),
        tile: 0,
        tile_overlap: 0,
        batch: 1,
        runtime_library: None,
        cache_dir: None,
        cuda_stream: gpu.compute.cu_stream() as usize,
        threads: 0,
    })?;
    let (w, h, s) = (b.width, b.height, model.scale() as usize);
    let (dtype, elem) = match model.info().dtype {
        Precision::F16 => (Precision::F16, 2usize),
        _ => (Precision::F32, 4usize),
    };
    let stream = gpu.compute.clone();
    let zeros = |n: usize| stream.alloc_zeros::<u8>(n).map_err(|e| dev_err(format!("{e:?}")));
    let input = zeros(3 * w * h * elem)?;
    let output = zeros(3 * w * h * s * s * elem)?;
    let run = |model: &mut crate::backend::LoadedModel| -> Result<(), EngineError> {
        let (ip, _g1) = input.device_ptr(&stream);
        let (op, _g2) = output.device_ptr(&stream);
        let t = |ptr, ww: usize, hh: usize| DeviceTensor {
            ptr,
            dtype,
            shape: [1, 3, hh as i64, ww as i64],
            pitch_bytes: ww * elem,
            stream: stream.cu_stream() as usize,
            device,
        };
        model.run_device(t(ip, w, h), t(op, w * s, h * s))?;
        Ok(())
    };
    for _ in 0..3 {
        run(&mut model)?;
    }
    stream.synchronize().map_err(|e| dev_err(format!("{e:?}")))?;
    let t = Instant::now();
    for _ in 0..b.frames {
        run(&mut model)?;
        stream.synchronize().map_err(|e| dev_err(format!("{e:?}")))?;
    }
    let model_fps = b.frames as f64 / t.elapsed().as_secs_f64();
    let dtype_name = format!("{:?}", model.info().dtype);

    let mut stage = crate::gpu::stage::GpuStage::new(gpu.clone(), device, model, 8 << 30)?;
    let mut frame = YuvFrame::new(w, h, 8, Matrix::Bt709, Range::Limited);
    for (i, v) in frame.data.iter_mut().enumerate() {
        *v = (i * 7 % 220 + 16) as u8;
    }
    let mut out = YuvFrame::new(w * s, h * s, 8, Matrix::Bt709, Range::Limited);
    for _ in 0..3 {
        stage.upscale_yuv(&frame, &mut out)?;
    }
    let t = Instant::now();
    for _ in 0..b.frames {
        stage.upscale_yuv(&frame, &mut out)?;
    }
    let stage_fps = b.frames as f64 / t.elapsed().as_secs_f64();
    let free_after = gpu.mem_info().ok().map(|(f, _)| f);
    Ok(DeviceResult {
        what: format!("videoforge device paths ({})", plugin.info().library_version),
        width: w,
        height: h,
        model_fps,
        stage_fps,
        frames: b.frames,
        dtype: dtype_name,
        vram_delta: free_before.zip(free_after).map(|(a, b)| a.saturating_sub(b)),
        pool: stage.pool_stats(),
    })
}
