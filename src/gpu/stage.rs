//! The GPU middle of the pipeline: take a planar Y'CbCr frame (4:2:0, 4:2:2 or 4:4:4 at 8 to 12 bits, uploaded from
//! the host; or 4:2:0 decoded by NVDEC and still on the device), convert it to planar RGB in the model's type with
//! the colour kernels, run the model on device buffers on the same stream, convert back to the encoder's format,
//! and download only that, into page-locked host memory. Every device buffer comes from a budgeted [`Pool`]. The
//! stage also runs the model on host RGB frames (tiled plans, formats that are not planar Y'CbCr), as a
//! [`FrameModel`].

use super::kernels::{Colour, ColourKernels, DeviceYuv, RgbType};
use super::nvdec::{DeviceFrame, NvDecoder, NvdecError};
use super::pool::Pooled;
use super::quality::{DeviceStats, QualityKernels, SCRATCH_BYTES};
use super::{DeviceAllocator, GpuContext, GpuError, Pool, PoolStats};
use crate::backend::{BackendError, DeviceTensor, FrameModel, LoadedModel};
use crate::codec::Precision;
use crate::video::{VideoInfo, YuvFrame};
use cudarc::driver::DevicePtr;
use std::sync::Arc;

/// Colour conversion and inference on one GPU, for one worker.
pub struct GpuStage {
    gpu: Arc<GpuContext>,
    kernels: ColourKernels,
    quality: QualityKernels,
    /// Where the quality reductions write (`SCRATCH_BYTES`), zeroed before each frame.
    scratch: Pooled<cudarc::driver::CudaSlice<u8>>,
    model: LoadedModel,
    pool: Pool<DeviceAllocator>,
    device: u32,
    /// Page-lock the host frames for the copies (the plan can turn it off, for comparison).
    pin_host: bool,
}

/// A host allocation page-locked for this context (`cuMemHostRegister`), so downloads into it run at full DMA
/// speed with no staging copy in the driver; unregistered on drop.
struct HostRegistration {
    ctx: Arc<cudarc::driver::CudaContext>,
    ptr: usize,
}

impl HostRegistration {
    /// Registers the whole allocation behind `buf`, or says why it could not.
    fn new(ctx: &Arc<cudarc::driver::CudaContext>, buf: &mut Vec<u8>) -> Result<HostRegistration, GpuError> {
        use cudarc::driver::sys;
        let err = |message: String| GpuError { device: ctx.ordinal() as u32, message };
        if buf.capacity() == 0 {
            return Err(err("cannot page-lock an empty buffer".into()));
        }
        ctx.bind_to_thread().map_err(|e| err(format!("{e:?}")))?;
        let ptr = buf.as_mut_ptr();
        // SAFETY: `ptr` is a live allocation of `capacity` bytes; the frame drops this registration before the
        // allocation is freed or moved (`YuvFrame::set_pin`).
        let rc = unsafe { sys::cuMemHostRegister_v2(ptr.cast(), buf.capacity(), 0) };
        if rc != sys::CUresult::CUDA_SUCCESS {
            return Err(err(format!("cuMemHostRegister: {rc:?}")));
        }
        Ok(HostRegistration { ctx: ctx.clone(), ptr: ptr as usize })
    }
}

impl Drop for HostRegistration {
    fn drop(&mut self) {
        // Unbound, the call below fails and the pages stay locked until the process ends: nothing better to do in a
        // drop.
        self.ctx.bind_to_thread().ok();
        // SAFETY: unregistering the pointer registered in `new`, once, while the allocation is still live.
        unsafe { cudarc::driver::sys::cuMemHostUnregister(self.ptr as *mut std::ffi::c_void) };
    }
}

/// A frame could not be run on the GPU.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// A CUDA call, a kernel or a copy failed.
    #[error("{step}: {source}")]
    Gpu {
        /// Which step (`upload`, `preprocess`, `download`...).
        step: &'static str,
        /// What failed.
        source: GpuError,
    },
    /// The frame buffer pool could not serve a buffer (over budget, or out of device memory).
    #[error("{0}")]
    Pool(#[from] super::PoolError),
    /// The model failed.
    #[error("{0}")]
    Model(#[from] BackendError),
    /// NVDEC failed.
    #[error("{0}")]
    Nvdec(#[from] NvdecError),
    /// A frame of another size than the stage was given.
    #[error("output frame {got} is not {want}")]
    Geometry {
        /// What the frame is.
        got: String,
        /// What the model makes.
        want: String,
    },
}

impl StageError {
    /// Whether the device ran out of memory (another process may hold it): the file may succeed later, or with
    /// smaller tiles.
    pub fn is_out_of_memory(&self) -> bool {
        match self {
            StageError::Gpu { source, .. } => source.is_out_of_memory(),
            StageError::Pool(super::PoolError::Alloc { message, .. }) => message.contains("OUT_OF_MEMORY"),
            StageError::Model(BackendError::OutOfMemory { .. }) => true,
            _ => false,
        }
    }
}

/// A model failure on device buffers. When the context is broken afterwards (a lost or reset device, a sticky
/// launch failure), the device failed, not the model: that is a GPU error (its worker stops and hands the file on),
/// not a runtime error that would fail the file for good.
fn model_failure(gpu: &GpuContext, device: u32, e: BackendError) -> StageError {
    if matches!(e, BackendError::Runtime { .. }) {
        if let Err(sync) = gpu.context().synchronize() {
            let message = format!("{sync:?} after the model failed ({e})");
            return StageError::Gpu { step: "infer", source: GpuError { device, message } };
        }
    }
    StageError::Model(e)
}

fn gpu_err(step: &'static str, device: u32) -> impl Fn(String) -> StageError {
    move |message| StageError::Gpu { step, source: GpuError { device, message } }
}

impl GpuStage {
    /// Compiles the kernels and sets up a pool of `budget` bytes. `model` must have been opened on this GPU's
    /// compute stream (`ModelOptions::cuda_stream`). `pin_host`: page-lock host frames (off only to compare).
    pub fn new(
        gpu: Arc<GpuContext>,
        device: u32,
        model: LoadedModel,
        budget: u64,
        pin_host: bool,
    ) -> Result<GpuStage, GpuError> {
        let kernels = ColourKernels::compile(&gpu)?;
        let quality = QualityKernels::compile(&gpu)?;
        let pool = Pool::new(format!("gpu{device} frames"), budget, DeviceAllocator::new(gpu.compute.clone()));
        // Held for the stage's life: the reductions write into it every frame.
        let scratch = pool
            .acquire(SCRATCH_BYTES as u64)
            .map_err(|e| GpuError { device, message: format!("quality scratch: {e}") })?;
        Ok(GpuStage { gpu, kernels, quality, scratch, model, pool, device, pin_host })
    }

    /// Pool counters (hit rate, peak bytes) for the report.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// The loaded model.
    pub fn model(&self) -> &LoadedModel {
        &self.model
    }
}

impl GpuStage {
    /// Sizes `frame` and page-locks its buffer, once per buffer (the pipeline recycles its frames and prepares
    /// them all before the run, so neither the steady state nor a late first use pays for it). If the driver
    /// refuses, this stage copies through pageable memory from then on.
    pub fn prepare_frame(&mut self, frame: &mut YuvFrame) {
        frame.fit();
        if self.pin_host && !frame.is_pinned() {
            match HostRegistration::new(self.gpu.context(), &mut frame.data) {
                Ok(r) => frame.set_pin(Box::new(r)),
                Err(e) => {
                    tracing::debug!("host frames stay pageable: {e}");
                    self.pin_host = false;
                }
            }
        }
    }

    /// Planar RGB of `src` (w × h) in the model's type → the model → the encoder's 4:2:0 in `output`, all on the
    /// compute stream; only `output` and the quality reductions are downloaded. `input_luma`: also sum the input's
    /// luma on the device (NVDEC pictures, which the host never sees).
    fn upscale_from(
        &mut self,
        src: &DeviceYuv<'_>,
        colour: Colour,
        w: usize,
        h: usize,
        output: &mut YuvFrame,
        input_luma: bool,
    ) -> Result<DeviceStats, StageError> {
        let s = self.gpu.compute.clone();
        let scale = self.model.info().scale as usize;
        let (ow, oh) = (w * scale, h * scale);
        if (output.width, output.height) != (ow, oh) {
            let got = format!("{}x{}", output.width, output.height);
            return Err(StageError::Geometry { got, want: format!("{ow}x{oh}") });
        }
        self.prepare_frame(output);
        let device = self.device;
        let (ty, elem, prec) = match self.model.info().dtype {
            Precision::F16 => (RgbType::F16, 2usize, Precision::F16),
            _ => (RgbType::F32, 4usize, Precision::F32),
        };
        let bytes = |r: &std::ops::Range<usize>| r.len() as u64;
        s.memset_zeros(self.scratch.get_mut()).map_err(|e| gpu_err("quality", device)(format!("{e:?}")))?;
        if input_luma {
            // Every 4th sample each way: flatness needs the spread, not every pixel.
            let shift = if src.wide { src.shift } else { 0 };
            self.quality
                .luma_sums(&s, src.y, src.y_pitch, (w, h), 4, src.wide, shift, self.scratch.get_mut())
                .map_err(|source| StageError::Gpu { step: "quality", source })?;
        }
        // YUV -> RGB in the model's type.
        let mut rgb_in = self.pool.acquire((3 * w * h * elem) as u64)?;
        self.kernels
            .yuv_to_rgb(&s, src, colour, ty, rgb_in.get_mut(), w as u32, h as u32)
            .map_err(|source| StageError::Gpu { step: "preprocess", source })?;
        // The model, on device buffers, on the same stream.
        let rgb_out = self.pool.acquire((3 * ow * oh * elem) as u64)?;
        {
            let (in_ptr, _g1) = rgb_in.get().device_ptr(&s);
            let (out_ptr, _g2) = rgb_out.get().device_ptr(&s);
            let stream = s.cu_stream() as usize;
            let t = |ptr, ww: usize, hh: usize| DeviceTensor {
                ptr,
                dtype: prec,
                shape: [1, 3, hh as i64, ww as i64],
                pitch_bytes: ww * elem,
                stream,
                device: self.device,
            };
            let gpu = &self.gpu;
            self.model.run_device(t(in_ptr, w, h), t(out_ptr, ow, oh)).map_err(|e| model_failure(gpu, device, e))?;
        }
        // Every value of the model's output is checked: a few NaNs would be clamped to black unseen.
        self.quality
            .count_non_finite(&s, rgb_out.get(), ty, (3 * ow * oh) as u64, self.scratch.get_mut())
            .map_err(|source| StageError::Gpu { step: "quality", source })?;
        // RGB -> the encoder's format.
        let oe = output.sample_bytes();
        let op = output.planes();
        let (ocw, _) = output.chroma_size();
        let acquire = |r: &std::ops::Range<usize>| self.pool.acquire(bytes(r));
        let mut outs = [acquire(&op[0])?, acquire(&op[1])?, acquire(&op[2])?];
        {
            let [y, u, v] = &mut outs;
            self.kernels
                .rgb_to_yuv(
                    &s,
                    rgb_out.get(),
                    ty,
                    ow as u32,
                    oh as u32,
                    output.chroma,
                    Colour::new(output.matrix, output.range, output.bit_depth),
                    oe == 2,
                    [(y.get_mut(), ow * oe), (u.get_mut(), ocw * oe), (v.get_mut(), ocw * oe)],
                )
                .map_err(|source| StageError::Gpu { step: "postprocess", source })?;
        }
        // Download only the encoder-format planes.
        for (r, b) in op.iter().zip(&outs) {
            s.memcpy_dtoh(&b.get().slice(0..r.len()), &mut output.data[r.clone()])
                .map_err(|e| gpu_err("download", device)(format!("{e:?}")))?;
        }
        let mut stats = [0u8; SCRATCH_BYTES];
        // The pool's buffer may be larger than asked for: download exactly the scratch.
        s.memcpy_dtoh(&self.scratch.get().slice(0..SCRATCH_BYTES), &mut stats[..])
            .map_err(|e| gpu_err("download", device)(format!("{e:?}")))?;
        s.synchronize().map_err(|e| gpu_err("download", device)(format!("{e:?}")))?;
        Ok(DeviceStats::read(&stats, input_luma))
    }
}

impl GpuStage {
    /// Runs one planar host frame: upload, colour conversion, model, conversion, download into `output`.
    pub fn upscale_yuv(&mut self, input: &YuvFrame, output: &mut YuvFrame) -> Result<DeviceStats, StageError> {
        let s = self.gpu.compute.clone();
        let device = self.device;
        // Upload the three planes.
        // Fixed-size arrays, not Vecs: the steady state allocates nothing on the host.
        let ip = input.planes();
        let upload = |r: &std::ops::Range<usize>| -> Result<_, StageError> {
            let mut b = self.pool.acquire(r.len() as u64)?;
            s.memcpy_htod(&input.data[r.clone()], &mut b.get_mut().slice_mut(0..r.len()))
                .map_err(|e| gpu_err("upload", device)(format!("{e:?}")))?;
            Ok(b)
        };
        let planes_in = [upload(&ip[0])?, upload(&ip[1])?, upload(&ip[2])?];
        let ie = input.sample_bytes();
        let (icw, _) = input.chroma_size();
        let src = DeviceYuv {
            y: planes_in[0].get(),
            y_pitch: input.width * ie,
            u: planes_in[1].get(),
            u_pitch: icw * ie,
            v: planes_in[2].get(),
            v_pitch: icw * ie,
            semi_planar: false,
            chroma: input.chroma,
            wide: ie == 2,
            shift: 0,
        };
        let colour = Colour::new(input.matrix, input.range, input.bit_depth);
        self.upscale_from(&src, colour, input.width, input.height, output, false)
    }

    /// Runs one frame NVDEC decoded on this stage's device; its luma sums are reduced on the device.
    pub fn upscale_device(&mut self, input: &DeviceFrame, output: &mut YuvFrame) -> Result<DeviceStats, StageError> {
        let e = input.sample_bytes();
        let src = DeviceYuv {
            y: &input.y,
            y_pitch: input.width * e,
            u: &input.uv,
            u_pitch: input.width * e,
            v: &input.uv,
            v_pitch: input.width * e,
            semi_planar: true,
            chroma: crate::codec::Chroma::C420,
            wide: e == 2,
            shift: input.shift(),
        };
        // The input's colour description is the output's (the encoder keeps the source's tags).
        let colour = Colour::new(output.matrix, output.range, input.bit_depth);
        self.upscale_from(&src, colour, input.width, input.height, output, true)
    }

    /// An NVDEC decoder for the stream `info` describes, on this stage's device, so decoded frames never leave
    /// it; an error says why this stream cannot use one.
    /// `filter` says whether NVDEC deinterlaces (the file plan's filter kind).
    pub fn decoder(&self, info: &VideoInfo, filter: crate::plan::FilterKind) -> Result<NvDecoder, NvdecError> {
        NvDecoder::new(self.gpu.clone(), info, filter)
    }

    /// The device the stage runs on.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.gpu
    }
}

/// The host path of the same model (frames that are not 4:2:0, or tiled plans): inference still on the GPU.
impl FrameModel for GpuStage {
    fn scale(&self) -> u32 {
        self.model.scale()
    }

    fn upscale(
        &mut self,
        input: &[f32],
        width: usize,
        height: usize,
        output: &mut Vec<f32>,
    ) -> Result<(), BackendError> {
        self.model.upscale(input, width, height, output)
    }
}
