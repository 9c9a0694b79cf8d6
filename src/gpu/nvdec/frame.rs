//! A picture NVDEC decoded, in pooled device buffers that go back to their decoder's free list when a stage is
//! done with them.

use super::error::NvdecError;
use crate::gpu::pool::FreeList;
use cudarc::driver::CudaSlice;
use std::sync::Arc;

/// A picture decoded by NVDEC, in device memory on the decoder's GPU: `y` holds `height` rows of
/// `width × sample_bytes` bytes, `uv` holds `height / 2` rows of interleaved Cb/Cr of the same width in bytes.
/// 10-bit pictures are P016: the code sits in the top bits of each 16-bit word. [`DeviceFrame::recycle`] hands
/// the buffers back to the decoder once a stage is done with them.
pub struct DeviceFrame {
    /// Luma.
    pub y: CudaSlice<u8>,
    /// Interleaved chroma.
    pub uv: CudaSlice<u8>,
    /// Display width.
    pub width: usize,
    /// Display height.
    pub height: usize,
    /// 8 or 10.
    pub bit_depth: u8,
    /// Presentation timestamp (stream time base), when the packets had one.
    pub pts: Option<i64>,
    /// Whether the picture is progressive (NVDEC's flag).
    pub progressive: bool,
    /// Duration in the output time base (0 when unknown).
    pub(super) duration: i64,
    pub(super) home: FreeList<(CudaSlice<u8>, CudaSlice<u8>)>,
}

impl DeviceFrame {
    /// Gives the buffers back to the decoder for a later picture (the caller's work on them must be complete).
    pub fn recycle(self) {
        // A decoder already gone frees them with its list, when the last frame has come back.
        self.home.give((self.y, self.uv));
    }

    /// Bytes per sample (1 for NV12, 2 for P016).
    pub fn sample_bytes(&self) -> usize {
        if self.bit_depth > 8 {
            2
        } else {
            1
        }
    }

    /// Right shift that brings a sample to its code (6 for 10-bit P016, 0 for NV12).
    pub fn shift(&self) -> i32 {
        if self.bit_depth > 8 {
            16 - i32::from(self.bit_depth)
        } else {
            0
        }
    }

    /// The picture on the host as planar Y, Cb, Cr codes (one byte per 8-bit sample, little-endian 16-bit words
    /// holding the code in the low bits otherwise): the layout of [`crate::video::YuvFrame`] (tests compare the
    /// two decoders with it).
    pub fn to_host_planar(&self, stream: &Arc<cudarc::driver::CudaStream>) -> Result<Vec<u8>, NvdecError> {
        let y = stream.clone_dtoh(&self.y).map_err(NvdecError::cuda)?;
        let uv = stream.clone_dtoh(&self.uv).map_err(NvdecError::cuda)?;
        let e = self.sample_bytes();
        let shift = self.shift();
        let fix = |b: &[u8]| -> Vec<u8> {
            if e == 1 {
                return b.to_vec();
            }
            b.chunks_exact(2).flat_map(|w| (u16::from_le_bytes([w[0], w[1]]) >> shift).to_le_bytes()).collect()
        };
        let mut out = fix(&y);
        let (mut cb, mut cr) = (Vec::new(), Vec::new());
        for pair in uv.chunks_exact(2 * e) {
            cb.extend_from_slice(&pair[..e]);
            cr.extend_from_slice(&pair[e..]);
        }
        out.extend(fix(&cb));
        out.extend(fix(&cr));
        Ok(out)
    }
}
