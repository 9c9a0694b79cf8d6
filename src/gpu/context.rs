//! A CUDA device: its context (cudarc, loaded at run time) and the streams of the plan's layout, the error every
//! GPU call reports, and device memory for the buffer pools.

use super::pool::{AllocError, Allocator};
use std::sync::Arc;

/// A CUDA device: context plus the streams of the plan's layout (decode, compute, copy).
pub struct GpuContext {
    ctx: Arc<cudarc::driver::CudaContext>,
    /// Stream for uploads of decoded frames.
    pub decode: Arc<cudarc::driver::CudaStream>,
    /// Stream for pre/post-processing and inference.
    pub compute: Arc<cudarc::driver::CudaStream>,
    /// Stream for downloads to the encoder.
    pub copy: Arc<cudarc::driver::CudaStream>,
}

/// The GPU could not be used, or a call on it failed.
#[derive(Debug, thiserror::Error)]
#[error("GPU {device}: {message}")]
pub struct GpuError {
    /// Ordinal.
    pub device: u32,
    /// What failed.
    pub message: String,
}

impl GpuError {
    /// Whether the device ran out of memory (another process may have taken it): the file can be retried.
    pub fn is_out_of_memory(&self) -> bool {
        self.message.contains("OUT_OF_MEMORY")
    }
}

impl GpuContext {
    /// Opens device `ordinal`. Checks the driver library first: cudarc panics when it is missing.
    pub fn new(ordinal: u32) -> Result<GpuContext, GpuError> {
        let err = |m: String| GpuError { device: ordinal, message: m };
        // SAFETY: only tries to dlopen the driver library.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(err("no NVIDIA driver (libcuda.so not found)".into()));
        }
        let ctx = cudarc::driver::CudaContext::new(ordinal as usize).map_err(|e| err(format!("{e:?}")))?;
        let stream = || ctx.new_stream().map_err(|e| err(format!("cannot create a stream: {e:?}")));
        Ok(GpuContext { decode: stream()?, compute: stream()?, copy: stream()?, ctx })
    }

    /// The cudarc context.
    pub fn context(&self) -> &Arc<cudarc::driver::CudaContext> {
        &self.ctx
    }

    /// [`GpuContext::mem_info`] once every stream is idle and the device's stream-ordered pool has handed its
    /// cached blocks back: buffers freed with `cuMemFreeAsync` stay in that pool until then, and would read as
    /// memory still held.
    pub fn settled_mem_info(&self) -> Result<(u64, u64), GpuError> {
        let err = |m: String| GpuError { device: self.ctx.ordinal() as u32, message: m };
        self.ctx.synchronize().map_err(|e| err(format!("{e:?}")))?;
        let mut pool = std::ptr::null_mut();
        // SAFETY: plain driver queries on this context's device; trimming only releases unused cached blocks.
        unsafe {
            use cudarc::driver::sys;
            if sys::cuDeviceGetDefaultMemPool(&mut pool, self.ctx.cu_device()) == sys::CUresult::CUDA_SUCCESS {
                sys::cuMemPoolTrimTo(pool, 0);
            }
        }
        self.mem_info()
    }

    /// (free, total) device memory in bytes, device-wide (includes other libraries' allocations, e.g. the
    /// inference runtime's arena).
    pub fn mem_info(&self) -> Result<(u64, u64), GpuError> {
        self.ctx
            .mem_get_info()
            .map(|(f, t)| (f as u64, t as u64))
            .map_err(|e| GpuError { device: self.ctx.ordinal() as u32, message: format!("{e:?}") })
    }
}

/// Device memory for [`Pool`]: raw bytes on a stream.
pub struct DeviceAllocator {
    stream: Arc<cudarc::driver::CudaStream>,
}

impl DeviceAllocator {
    /// Allocates on `stream`'s device.
    pub fn new(stream: Arc<cudarc::driver::CudaStream>) -> Self {
        DeviceAllocator { stream }
    }
}

impl Allocator for DeviceAllocator {
    type Buffer = cudarc::driver::CudaSlice<u8>;
    fn alloc(&self, bytes: usize) -> Result<Self::Buffer, AllocError> {
        // SAFETY: the buffer is written by a kernel or a copy before it is read.
        unsafe { self.stream.alloc::<u8>(bytes) }.map_err(|e| AllocError(format!("{e:?}")))
    }
}
