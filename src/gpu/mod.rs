//! GPU resources: a CUDA context per device (cudarc, loaded at run time), device memory pools accounted against
//! the plan's VRAM budget, the NVRTC-compiled colour kernels of `kernels/`, NVDEC, and the GPU stage that runs a
//! frame from a decoded picture to the encoder's format. Nothing here is touched unless the plan says GPU.

mod context;
pub mod kernels;
pub mod nvdec;
pub mod pool;
pub mod quality;
pub mod stage;

pub use context::{DeviceAllocator, GpuContext, GpuError};
pub use pool::{AllocError, Allocator, HostAllocator, Pool, PoolError, PoolStats, Pooled};
