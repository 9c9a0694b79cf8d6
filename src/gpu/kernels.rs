//! The colour kernels of `kernels/colour.cu`, compiled with NVRTC for the device's architecture the first time a
//! context needs them, and launched on a stream: planar 4:2:0, 4:2:2 and 4:4:4 (and NVDEC's semi-planar 4:2:0) at
//! 8 to 12 bits, both directions. Their plain-Rust twins are `yuv_to_rgb_planar` and `rgb_planar_to_yuv` in
//! `crate::video`.

use super::{GpuContext, GpuError};
use crate::codec::Chroma;
use crate::video::{Matrix, Quant, Range};
use cudarc::driver::{CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, LaunchConfig};
use std::ffi::c_void;
use std::sync::Arc;

/// The kernel source, embedded at build time (its hash is part of every fingerprint).
pub const COLOUR_SRC: &str = include_str!("../../kernels/colour.cu");

/// The kernels' `Colour` argument: matrix and quantisation, as `video::color` computes them.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Colour {
    kr: f32,
    kb: f32,
    kg: f32,
    cr_r: f32,
    cb_b: f32,
    y_off: f32,
    y_scale: f32,
    c_off: f32,
    c_scale: f32,
    max: f32,
}

impl Colour {
    /// For a matrix, range and bit depth (8..=16).
    pub fn new(matrix: Matrix, range: Range, bit_depth: u8) -> Colour {
        let (kr, kb) = matrix.coefficients();
        let q = Quant::new(bit_depth, range);
        Colour {
            kr,
            kb,
            kg: 1.0 - kr - kb,
            cr_r: 2.0 * (1.0 - kr),
            cb_b: 2.0 * (1.0 - kb),
            y_off: q.y_off,
            y_scale: q.y_scale,
            c_off: q.c_off,
            c_scale: q.c_scale,
            max: q.max,
        }
    }
}

// SAFETY: a plain `#[repr(C)]` struct of f32, passed by value as a kernel argument.
unsafe impl DeviceRepr for Colour {}

/// NVRTC refused the kernel source.
#[derive(Debug, thiserror::Error)]
#[error("NVRTC could not compile kernels/{0}: {1}")]
pub struct NvrtcError(&'static str, String);

/// NVRTC output of the kernel source `name` per architecture, compiled once per process (compiling takes a few
/// hundred milliseconds).
pub(crate) fn compiled_ptx(
    name: &'static str,
    src: &'static str,
    major: i32,
    minor: i32,
) -> Result<cudarc::nvrtc::Ptx, NvrtcError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Cache = Mutex<HashMap<(&'static str, i32, i32), String>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(src) = cache.lock().ok().and_then(|c| c.get(&(name, major, minor)).cloned()) {
        return Ok(cudarc::nvrtc::Ptx::from_src(src));
    }
    let arch: &'static str = Box::leak(format!("sm_{major}{minor}").into_boxed_str());
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(
        src,
        cudarc::nvrtc::CompileOptions { arch: Some(arch), ..Default::default() },
    )
    .map_err(|e| NvrtcError(name, format!("{e:?}")))?;
    if let Ok(mut c) = cache.lock() {
        c.insert((name, major, minor), ptx.to_src());
    }
    Ok(ptx)
}

/// The compiled colour kernels of one context.
pub struct ColourKernels {
    yuv_u8_f32: CudaFunction,
    yuv_u16_f32: CudaFunction,
    yuv_u8_f16: CudaFunction,
    yuv_u16_f16: CudaFunction,
    rgb_f32_u8: CudaFunction,
    rgb_f32_u16: CudaFunction,
    rgb_f16_u8: CudaFunction,
    rgb_f16_u16: CudaFunction,
}

/// Element type of planar RGB on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RgbType {
    /// f32.
    F32,
    /// f16 (stored as u16 bits).
    F16,
}

/// A Y'CbCr frame on the device: planes with pitches, 8-bit or 16-bit samples, any chroma layout (semi-planar only
/// for 4:2:0).
pub struct DeviceYuv<'a> {
    /// Luma plane.
    pub y: &'a CudaSlice<u8>,
    /// Luma pitch in bytes.
    pub y_pitch: usize,
    /// Cb plane, or the interleaved CbCr plane when `semi_planar`.
    pub u: &'a CudaSlice<u8>,
    /// Cb (or CbCr) pitch in bytes.
    pub u_pitch: usize,
    /// Cr plane (ignored when `semi_planar`).
    pub v: &'a CudaSlice<u8>,
    /// Cr pitch in bytes.
    pub v_pitch: usize,
    /// NV12/P010/P016 layout.
    pub semi_planar: bool,
    /// Chroma layout.
    pub chroma: Chroma,
    /// 16-bit samples.
    pub wide: bool,
    /// Right shift that brings a sample to its code value (6 for P010, 0 for yuv420p10le).
    pub shift: i32,
}

impl ColourKernels {
    /// Compiles the kernels for `gpu`'s architecture.
    pub fn compile(gpu: &GpuContext) -> Result<ColourKernels, GpuError> {
        let ctx = gpu.context();
        let err = |m: String| GpuError { device: ctx.ordinal() as u32, message: m };
        let (major, minor) = ctx.compute_capability().map_err(|e| err(format!("{e:?}")))?;
        let ptx = compiled_ptx("colour.cu", COLOUR_SRC, major, minor).map_err(|e| err(e.to_string()))?;
        let module = ctx.load_module(ptx).map_err(|e| err(format!("loading the colour kernels: {e:?}")))?;
        let f = |name: &str| module.load_function(name).map_err(|e| err(format!("kernel {name}: {e:?}")));
        Ok(ColourKernels {
            yuv_u8_f32: f("yuv_u8_to_rgb_f32")?,
            yuv_u16_f32: f("yuv_u16_to_rgb_f32")?,
            yuv_u8_f16: f("yuv_u8_to_rgb_f16")?,
            yuv_u16_f16: f("yuv_u16_to_rgb_f16")?,
            rgb_f32_u8: f("rgb_f32_to_yuv_u8")?,
            rgb_f32_u16: f("rgb_f32_to_yuv_u16")?,
            rgb_f16_u8: f("rgb_f16_to_yuv_u8")?,
            rgb_f16_u16: f("rgb_f16_to_yuv_u16")?,
        })
    }

    /// Y'CbCr → planar RGB (`out` holds 3 × w × h elements of `ty`, as raw bytes).
    #[allow(clippy::too_many_arguments)]
    pub fn yuv_to_rgb(
        &self,
        stream: &Arc<CudaStream>,
        src: &DeviceYuv<'_>,
        c: Colour,
        ty: RgbType,
        out: &mut CudaSlice<u8>,
        width: u32,
        height: u32,
    ) -> Result<(), GpuError> {
        let f = match (src.wide, ty) {
            (false, RgbType::F32) => &self.yuv_u8_f32,
            (true, RgbType::F32) => &self.yuv_u16_f32,
            (false, RgbType::F16) => &self.yuv_u8_f16,
            (true, RgbType::F16) => &self.yuv_u16_f16,
        };
        let cfg = LaunchConfig {
            grid_dim: (width.div_ceil(32), height.div_ceil(8), 1),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        let semi = i32::from(src.semi_planar);
        let (w, h) = (width as i32, height as i32);
        let (sx, sy) = src.chroma.shifts();
        let (mut sx, mut sy) = (sx as i32, sy as i32);
        // The guards order the launch after the buffers' last writes and record its reads/writes on drop.
        let (y, _gy) = src.y.device_ptr(stream);
        let (u, _gu) = src.u.device_ptr(stream);
        let (v, _gv) = src.v.device_ptr(stream);
        let (o, _go) = out.device_ptr_mut(stream);
        let mut c = c;
        let (mut yp, mut up, mut vp) = (src.y_pitch, src.u_pitch, src.v_pitch);
        let (mut y, mut u, mut v, mut o, mut semi, mut shift, mut w, mut h) = (y, u, v, o, semi, src.shift, w, h);
        let mut args = [
            arg(&mut y),
            arg(&mut yp),
            arg(&mut u),
            arg(&mut up),
            arg(&mut v),
            arg(&mut vp),
            arg(&mut semi),
            arg(&mut shift),
            arg(&mut sx),
            arg(&mut sy),
            arg(&mut c),
            arg(&mut o),
            arg(&mut w),
            arg(&mut h),
        ];
        // SAFETY: the argument list matches the kernel signature (see kernels/colour.cu); the buffers hold the
        // sizes the caller described and stay alive (borrowed) until the guards record the launch.
        unsafe { launch(stream, f, cfg, &mut args) }
    }

    /// Planar RGB → planar Y'CbCr of `chroma` (8-bit or 16-bit codes).
    #[allow(clippy::too_many_arguments)]
    pub fn rgb_to_yuv(
        &self,
        stream: &Arc<CudaStream>,
        src: &CudaSlice<u8>,
        ty: RgbType,
        width: u32,
        height: u32,
        chroma: Chroma,
        c: Colour,
        wide: bool,
        planes: [(&mut CudaSlice<u8>, usize); 3],
    ) -> Result<(), GpuError> {
        let f = match (ty, wide) {
            (RgbType::F32, false) => &self.rgb_f32_u8,
            (RgbType::F32, true) => &self.rgb_f32_u16,
            (RgbType::F16, false) => &self.rgb_f16_u8,
            (RgbType::F16, true) => &self.rgb_f16_u16,
        };
        let (sx, sy) = chroma.shifts();
        let cfg = LaunchConfig {
            grid_dim: (width.div_ceil(1 << sx).div_ceil(32), height.div_ceil(1 << sy).div_ceil(8), 1),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        let (mut sx, mut sy) = (sx as i32, sy as i32);
        let [(y, yp), (u, up), (v, vp)] = planes;
        let (i, _gi) = src.device_ptr(stream);
        let (y, _gy) = y.device_ptr_mut(stream);
        let (u, _gu) = u.device_ptr_mut(stream);
        let (v, _gv) = v.device_ptr_mut(stream);
        let (mut c, mut w, mut h) = (c, width as i32, height as i32);
        let (mut i, mut y, mut yp, mut u, mut up, mut v, mut vp) = (i, y, yp, u, up, v, vp);
        let mut args = [
            arg(&mut i),
            arg(&mut w),
            arg(&mut h),
            arg(&mut sx),
            arg(&mut sy),
            arg(&mut c),
            arg(&mut y),
            arg(&mut yp),
            arg(&mut u),
            arg(&mut up),
            arg(&mut v),
            arg(&mut vp),
        ];
        // SAFETY: as in `yuv_to_rgb`.
        unsafe { launch(stream, f, cfg, &mut args) }
    }
}

/// A kernel argument for `cuLaunchKernel`: the address of the value.
pub(crate) fn arg<T>(v: &mut T) -> *mut c_void {
    (v as *mut T).cast()
}

/// Launches `f` on `stream`. Not cudarc's launch builder: it collects the arguments and events in `Vec`s, host
/// allocations on every launch, and the pipeline's steady state allocates nothing.
///
/// # Safety
/// `args` must point at values matching the kernel's parameters, in order, alive for the call.
pub(crate) unsafe fn launch(
    stream: &Arc<CudaStream>,
    f: &CudaFunction,
    cfg: LaunchConfig,
    args: &mut [*mut c_void],
) -> Result<(), GpuError> {
    let err = |e: cudarc::driver::DriverError| GpuError {
        device: stream.context().ordinal() as u32,
        message: format!("{e:?}"),
    };
    stream.context().bind_to_thread().map_err(err)?;
    // SAFETY: the caller's contract; the function belongs to a module loaded in this stream's context.
    unsafe {
        cudarc::driver::result::launch_kernel(
            f.cu_function(),
            cfg.grid_dim,
            cfg.block_dim,
            cfg.shared_mem_bytes,
            stream.cu_stream(),
            args,
        )
    }
    .map_err(err)
}
