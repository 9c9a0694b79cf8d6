//! `#[repr(C)]` mirrors of the kernels' by-value argument structs (`conv_mma.cu`, `head.cu`, `downscale.cu`,
//! `common.cu`). Field order and types must match the CUDA structs exactly; the size tests pin them.

/// `struct IoTable` in `common.cu`: where this frame's planar input and output are.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoTable {
    /// Input device address.
    pub input: u64,
    /// Output device address.
    pub output: u64,
    /// Input row pitch in elements.
    pub in_pitch: i64,
    /// Output row pitch in elements.
    pub out_pitch: i64,
}

/// `struct ConvArgs` in `conv_mma.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(missing_docs)]
pub struct ConvArgs {
    pub input: u64,
    pub wt: u64,
    pub bias: u64,
    pub slope: u64,
    pub res0: u64,
    pub res1: u64,
    pub out: u64,
    pub io: u64,
    pub h: i32,
    pub w: i32,
    pub up_shift: i32,
    pub cin: i32,
    pub cout: i32,
    pub cout_pad: i32,
    pub in_stride: i32,
    pub in_off: i32,
    pub res0_stride: i32,
    pub res0_off: i32,
    pub res1_stride: i32,
    pub res1_off: i32,
    pub out_stride: i32,
    pub out_off: i32,
    pub scale0: f32,
    pub scale1: f32,
    pub nres: i32,
    pub shuffle: i32,
    pub crd: i32,
    pub base: i32,
    pub bilinear: i32,
    pub base_factor: i32,
    pub img_h: i32,
    pub img_w: i32,
    pub clip: i32,
    pub out_f16: i32,
    pub clip_lo: f32,
    pub clip_hi: f32,
    pub out_pitch: i64,
    /// `conv_wgmma_k`: the device address of the input slice's TMA descriptor (`driver::nhwc_tensor_map`), or 0.
    pub tmap: u64,
}

/// `struct HeadArgs` in `head.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(missing_docs)]
pub struct HeadArgs {
    pub io: u64,
    pub wt: u64,
    pub bias: u64,
    pub slope: u64,
    pub out: u64,
    pub h: i32,
    pub w: i32,
    pub cout: i32,
    pub out_stride: i32,
    pub out_off: i32,
}

/// `struct DownArgs` in `downscale.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(missing_docs)]
pub struct DownArgs {
    pub src: u64,
    pub io: u64,
    pub src_h: i32,
    pub src_w: i32,
    pub dst_h: i32,
    pub dst_w: i32,
    pub clip: i32,
    pub scale: f32,
    pub coeff_a: f32,
    pub clip_lo: f32,
    pub clip_hi: f32,
    pub src_pitch: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_cuda_structs() {
        // 8 pointers, 28 four-byte fields, one i64, one pointer: no padding anywhere.
        assert_eq!(std::mem::size_of::<ConvArgs>(), 8 * 8 + 28 * 4 + 8 + 8);
        assert_eq!(std::mem::offset_of!(ConvArgs, out_pitch), 176);
        assert_eq!(std::mem::offset_of!(ConvArgs, tmap), 184);
        assert_eq!(std::mem::size_of::<HeadArgs>(), 64);
        assert_eq!(std::mem::offset_of!(DownArgs, src_pitch), 56);
        assert_eq!(std::mem::size_of::<IoTable>(), 32);
    }
}
