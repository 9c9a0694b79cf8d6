//! videoforge backend plugin `fused-cuda`: our own NVRTC-compiled tensor-core kernels for the super-resolution
//! conv nets we ship (SRVGGNetCompact, RRDBNet).
//!
//! Data flow: ONNX file (`onnx`) → matched into an IR of fused layers (`graph`) → weights packed for the kernels
//! (`pack`) → kernels compiled to CUBIN with NVRTC (`nvrtc`, `kernels`, cached on disk by `cache`) → run on the
//! host's CUDA stream as one CUDA graph per input size (`runtime`), behind the C ABI (`plugin`). `reference` runs
//! the same IR on the CPU, for tests and as the kernels' ground truth.

pub mod error;
pub mod graph;
pub mod onnx;

pub use error::{Error, Result};
pub mod cache;
pub mod kernels;
pub mod nvrtc;
pub mod pack;
pub mod plugin;
pub mod reference;
pub mod runtime;
