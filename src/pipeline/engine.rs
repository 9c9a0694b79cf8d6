//! What runs the model for a file, built as the plan says: the backend's model on host frames (on the CPU), or
//! the GPU stage on a device (colour kernels, the model on device buffers, NVDEC frames). One constructor for
//! both, so the runner never touches CUDA.

use crate::backend::{FrameModel, ModelOptions, Plugin};
use crate::codec::{Device, ExecutionProvider};
use crate::error::EngineError;
use crate::gpu::stage::GpuStage;
use crate::gpu::{GpuContext, PoolStats};
use crate::plan::EnginePlan;
use std::path::PathBuf;
use std::sync::Arc;

/// The model of one file's run.
pub enum Engine {
    /// A model on planar RGB host frames.
    Host(Box<dyn FrameModel>),
    /// The GPU stage: 4:2:0 frames in, the encoder's 4:2:0 frames out, host RGB frames too.
    Gpu(Box<GpuStage>),
}

impl Engine {
    /// The model's scale.
    pub fn scale(&self) -> u32 {
        match self {
            Engine::Host(m) => m.scale(),
            Engine::Gpu(g) => g.scale(),
        }
    }

    /// The model on host RGB frames (the GPU stage runs them through its model too).
    pub fn host(&mut self) -> &mut dyn FrameModel {
        match self {
            Engine::Host(m) => m.as_mut(),
            Engine::Gpu(g) => g.as_mut(),
        }
    }

    /// The GPU stage, when there is one.
    pub fn gpu(&mut self) -> Option<&mut GpuStage> {
        match self {
            Engine::Host(_) => None,
            Engine::Gpu(g) => Some(g),
        }
    }

    /// The GPU stage's pool counters, for the audit.
    pub fn pool_stats(&self) -> Option<PoolStats> {
        match self {
            Engine::Host(_) => None,
            Engine::Gpu(g) => Some(g.pool_stats()),
        }
    }
}

/// Opens the engines of one worker: one per file (a file's engine is dropped with it, so device memory is back
/// where it started between files).
pub struct EngineBuilder<'a> {
    plan: &'a EnginePlan,
    plugin: &'a Plugin,
    device: Device,
    gpu: Option<Arc<GpuContext>>,
    cache_dir: Option<PathBuf>,
    /// Tile and overlap instead of the plan's (the retry of a file that ran out of device memory).
    tile: Option<(u32, u32)>,
}

impl<'a> EngineBuilder<'a> {
    /// A builder for `device`; on a GPU this opens its context. `cache_dir`: where backends keep compiled engines
    /// (TensorRT), one folder per fingerprint.
    pub fn new(
        plan: &'a EnginePlan,
        plugin: &'a Plugin,
        device: Device,
        cache_dir: Option<PathBuf>,
    ) -> Result<EngineBuilder<'a>, EngineError> {
        let gpu = match device {
            Device::Cpu => None,
            Device::Cuda(i) => Some(Arc::new(GpuContext::new(i)?)),
        };
        Ok(EngineBuilder { plan, plugin, device, gpu, cache_dir, tile: None })
    }

    /// Opens models cut into tiles of `tile` px overlapping by `overlap` instead of the plan's tiling: the one
    /// retry of a file that ran out of device memory (`crate::plan::oom_retry_tile`).
    pub fn with_tile(mut self, tile: u32, overlap: u32) -> Self {
        self.tile = Some((tile, overlap));
        self
    }

    /// The device's context (GPU workers): the audit reads device memory through it.
    pub fn gpu(&self) -> Option<&Arc<GpuContext>> {
        self.gpu.as_ref()
    }

    fn options(&self, cuda_stream: usize) -> ModelOptions {
        let plan = self.plan;
        ModelOptions {
            model_path: plan.model.path.clone(),
            precision: plan.model.precision,
            device: self.device,
            execution_provider: Some(plan.model.execution_provider),
            tile: self.tile.map_or(plan.pipeline.tile, |t| t.0),
            tile_overlap: self.tile.map_or(plan.pipeline.tile_overlap, |t| t.1),
            batch: plan.pipeline.batch as u32,
            runtime_library: plan.model.runtime_library.clone(),
            // Compiled TensorRT engines and fused-cuda kernels are cached; ONNX Runtime's CUDA provider has none.
            cache_dir: (plan.model.execution_provider == ExecutionProvider::Tensorrt
                || plan.model.backend == crate::plan::FUSED_CUDA)
                .then(|| self.cache_dir.clone())
                .flatten(),
            cuda_stream,
            threads: plan.pipeline.inference_threads,
            provider_options: plan.model.provider_options.clone(),
        }
    }

    /// Opens the model (and on a GPU the stage around it).
    pub fn open(&self) -> Result<Engine, EngineError> {
        match (&self.gpu, self.device) {
            (Some(gpu), Device::Cuda(i)) => {
                // The model runs on the GPU stage's compute stream, so kernels and inference need no host sync.
                let model = self.plugin.open_model(&self.options(gpu.compute.cu_stream() as usize))?;
                let budget = self.plan.worker_on(self.device).and_then(|w| w.frame_pool_budget).ok_or_else(|| {
                    EngineError::Invariant(format!("the plan has no frame pool budget for {}", self.device))
                })?;
                let stage = GpuStage::new(gpu.clone(), i, model, budget, self.plan.pipeline.pin_host_frames)?;
                Ok(Engine::Gpu(Box::new(stage)))
            }
            _ => Ok(Engine::Host(Box::new(self.plugin.open_model(&self.options(0))?))),
        }
    }
}

impl From<Box<dyn FrameModel>> for Engine {
    fn from(m: Box<dyn FrameModel>) -> Engine {
        Engine::Host(m)
    }
}
