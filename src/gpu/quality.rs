//! The quality-gate reductions of `kernels/quality.cu` on the device: non-finite values in the model's output, and
//! luma sums of an NVDEC picture (whose input never reaches the host). Their plain-Rust twins are in
//! `crate::pipeline::quality`.

use super::kernels::{arg, compiled_ptx, launch, RgbType};
use super::{GpuContext, GpuError};
use cudarc::driver::{CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, LaunchConfig};
use std::sync::Arc;

/// The kernel source, embedded at build time (its hash is part of every fingerprint).
pub const QUALITY_SRC: &str = include_str!("../../kernels/quality.cu");

/// Bytes of the device scratch the reductions write: a `u32` count, then three `u64` luma sums.
pub const SCRATCH_BYTES: usize = 32;

/// What the device reduced for one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Values of the model's output that were NaN or infinite.
    pub non_finite: u32,
    /// Luma samples summed, their sum and the sum of their squares (codes), for an NVDEC input.
    pub input_luma: Option<[u64; 3]>,
}

impl DeviceStats {
    /// From the scratch bytes the kernels wrote.
    pub fn read(bytes: &[u8; SCRATCH_BYTES], with_input: bool) -> DeviceStats {
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[8 + 8 * i..16 + 8 * i]);
            u64::from_le_bytes(b)
        };
        DeviceStats {
            non_finite: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            input_luma: with_input.then(|| [u64_at(0), u64_at(1), u64_at(2)]),
        }
    }
}

/// The compiled reductions of one context.
pub struct QualityKernels {
    count_f32: CudaFunction,
    count_f16: CudaFunction,
    sums_u8: CudaFunction,
    sums_u16: CudaFunction,
}

impl QualityKernels {
    /// Compiles the kernels for `gpu`'s architecture.
    pub fn compile(gpu: &GpuContext) -> Result<QualityKernels, GpuError> {
        let ctx = gpu.context();
        let err = |m: String| GpuError { device: ctx.ordinal() as u32, message: m };
        let (major, minor) = ctx.compute_capability().map_err(|e| err(format!("{e:?}")))?;
        let ptx = compiled_ptx("quality.cu", QUALITY_SRC, major, minor).map_err(|e| err(e.to_string()))?;
        let module = ctx.load_module(ptx).map_err(|e| err(format!("loading the quality kernels: {e:?}")))?;
        let f = |name: &str| module.load_function(name).map_err(|e| err(format!("kernel {name}: {e:?}")));
        Ok(QualityKernels {
            count_f32: f("count_non_finite_f32")?,
            count_f16: f("count_non_finite_f16")?,
            sums_u8: f("luma_sums_u8")?,
            sums_u16: f("luma_sums_u16")?,
        })
    }

    /// Adds the number of non-finite values among the first `values` elements of `rgb` to the scratch's count.
    pub fn count_non_finite(
        &self,
        stream: &Arc<CudaStream>,
        rgb: &CudaSlice<u8>,
        ty: RgbType,
        values: u64,
        scratch: &mut CudaSlice<u8>,
    ) -> Result<(), GpuError> {
        let f = match ty {
            RgbType::F32 => &self.count_f32,
            RgbType::F16 => &self.count_f16,
        };
        let cfg = LaunchConfig { grid_dim: (264, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        let (v, _gv) = rgb.device_ptr(stream);
        let (c, _gc) = scratch.device_ptr_mut(stream);
        let (mut v, mut n, mut c) = (v, values, c);
        let mut args = [arg(&mut v), arg(&mut n), arg(&mut c)];
        // SAFETY: the arguments match `count_non_finite_*` (kernels/quality.cu); `rgb` holds at least `values`
        // elements of `ty` and the scratch at least `SCRATCH_BYTES`, both borrowed until the guards record the launch.
        unsafe { launch(stream, f, cfg, &mut args) }
    }

    /// Adds the luma sums of every `step`th sample of a pitched plane (`wide`: 16-bit words, code above `shift`
    /// bits) to the scratch's sums.
    #[allow(clippy::too_many_arguments)]
    pub fn luma_sums(
        &self,
        stream: &Arc<CudaStream>,
        y: &CudaSlice<u8>,
        pitch: usize,
        (width, height): (usize, usize),
        step: i32,
        wide: bool,
        shift: i32,
        scratch: &mut CudaSlice<u8>,
    ) -> Result<(), GpuError> {
        let f = if wide { &self.sums_u16 } else { &self.sums_u8 };
        let cfg = LaunchConfig { grid_dim: (132, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        let (yp, _gy) = y.device_ptr(stream);
        let (s, _gs) = scratch.device_ptr_mut(stream);
        // The sums start 8 bytes into the scratch (after the 4-byte count and its padding).
        let (mut yp, mut pitch, mut w, mut h, mut step, mut shift, mut s) =
            (yp, pitch as u64, width as i32, height as i32, step, shift, s + 8);
        let mut args =
            [arg(&mut yp), arg(&mut pitch), arg(&mut w), arg(&mut h), arg(&mut step), arg(&mut shift), arg(&mut s)];
        // SAFETY: the arguments match `luma_sums_*`; the plane holds `height` rows of `pitch` bytes and the scratch
        // `SCRATCH_BYTES`, both borrowed until the guards record the launch.
        unsafe { launch(stream, f, cfg, &mut args) }
    }
}
