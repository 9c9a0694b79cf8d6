//! NVDEC's errors.

/// NVDEC could not be used or failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NvdecError {
    /// `libnvcuvid` is missing or incomplete.
    #[error("NVDEC unavailable: {0}")]
    Unavailable(String),
    /// This stream is not one NVDEC takes here (codec, size, chroma, bit depth).
    #[error("{0}")]
    Unsupported(String),
    /// The driver refused a call while decoding.
    #[error("NVDEC: {0}")]
    Failed(String),
    /// A CUDA call around the decoder failed.
    #[error("NVDEC: CUDA: {0}")]
    Cuda(String),
}

impl NvdecError {
    /// Wraps a CUDA driver error.
    pub(crate) fn cuda(e: cudarc::driver::DriverError) -> NvdecError {
        NvdecError::Cuda(format!("{e:?}"))
    }
}
