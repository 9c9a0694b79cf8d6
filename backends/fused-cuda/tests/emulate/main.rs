//! The tensor-core kernels' index arithmetic, emulated on the CPU: line-by-line transcriptions of the CUDA
//! kernels over emulations of the tensor-core instructions written from the PTX ISA's fragment layouts, compared
//! with the plain convs that read the packed weights. It cannot find what only hardware shows (timing, races,
//! alignment faults), but it does find a wrong offset, stride or fragment mapping without a GPU.
//!
//! - `mma`: `ldmatrix` and `mma.sync.m16n8k16`; `conv_halo.cu` and `conv_mma.cu` (tile walk, shared-memory layout,
//!   cp.async zero fill, double buffering and pipeline stages, ldmatrix addresses).
//! - `wgmma`: `wgmma` with no-swizzle K-major shared-memory operands (and A from registers); `conv_wgmma.cu` and
//!   `conv_wgmma_k.cu` (patch planes, descriptors and their offsets, the accumulator layout, the staged NHWC and
//!   tail epilogues).
//! - `wide`: `stmatrix.trans`; `conv_wgmma_wide.cu` (row ring, strip segments, staging, residuals).
//! - `head`: `head.cu`'s `head_mma` over the `mma.sync` emulation.
//! - `tail`: the tail's unshuffle and the downscale's cubic weights.

// Loops over lanes and warps index by lane and warp on purpose: they mirror the CUDA code they transcribe.
#![allow(clippy::needless_range_loop)]

mod head;
mod mma;
mod tail;
mod wgmma;
mod wide;

use half::f16;
use videoforge_backend_fused_cuda::graph::{Act, Input, Layer, Output, Slice};
use videoforge_backend_fused_cuda::pack::{conv_packed_cpu, pack_conv, PackedConv};

/// Two halves in one 32-bit register: (low, high).
pub(crate) type Reg = (f32, f32);

pub(crate) fn h(v: u16) -> f32 {
    f16::from_bits(v).to_f32()
}

/// The layer the emulations run: a 3x3 conv with PReLU.
pub(crate) fn layer(cin: usize, cout: usize) -> Layer {
    let mut s = 7u64;
    let mut r = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let slice = Slice { buffer: 0, offset: 0, channels: cin };
    Layer {
        name: "emulated".into(),
        k: 3,
        cin,
        cout,
        weight: (0..cout * cin * 9).map(|_| r() * 0.3).collect(),
        bias: (0..cout).map(|_| r()).collect(),
        act: Act::Prelu((0..cout).map(|_| r()).collect()),
        residuals: vec![],
        input: Input::Act { slice, upsample: 1 },
        output: Output::Act(Slice { channels: cout, ..slice }),
        factor: 1,
    }
}

/// What both kernels share: sizes, the input (NHWC f16 bits, `stride` channels, slice at `off`), packed weights.
pub(crate) struct Problem {
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) up_shift: usize,
    pub(crate) input: Vec<u16>,
    pub(crate) stride: usize,
    pub(crate) off: usize,
    pub(crate) p: PackedConv,
}

impl Problem {
    pub(crate) fn new(h: usize, w: usize, up_shift: usize, cin: usize, cout: usize) -> Problem {
        let (stride, off) = (cin + 16, 8);
        let (ih, iw) = (h >> up_shift, w >> up_shift);
        let input =
            (0..ih * iw * stride).map(|i| f16::from_f32(((i * 7919) % 211) as f32 / 211.0 - 0.4).to_bits()).collect();
        Problem { h, w, up_shift, input, stride, off, p: pack_conv(&layer(cin, cout)) }
    }

    /// The expected output (NHWC, cout channels) from the plain packed-layout conv.
    pub(crate) fn expected(&self) -> Vec<f32> {
        let cin = self.p.cin;
        let iw = self.w >> self.up_shift;
        let mut x = vec![0.0; self.h * self.w * cin];
        for y in 0..self.h {
            for xx in 0..self.w {
                let src = ((y >> self.up_shift) * iw + (xx >> self.up_shift)) * self.stride + self.off;
                for c in 0..cin {
                    x[(y * self.w + xx) * cin + c] = h(self.input[src + c]);
                }
            }
        }
        conv_packed_cpu(&self.p, &x, self.h, self.w)
    }

    /// `cp_async16`: 8 halves of the input at an output-space pixel, or zeros outside the image.
    pub(crate) fn copy_pixel(&self, smem: &mut [u16], dst: usize, yy: isize, xx: isize, ch: usize) {
        let ok = yy >= 0 && yy < self.h as isize && xx >= 0 && xx < self.w as isize;
        for e in 0..8 {
            smem[dst + e] = if ok {
                let iw = self.w >> self.up_shift;
                let px = ((yy as usize) >> self.up_shift) * iw + ((xx as usize) >> self.up_shift);
                self.input[px * self.stride + self.off + ch + e]
            } else {
                0
            };
        }
    }

    /// `store_pair` for EPI 0 with bias and PReLU (the slope array).
    pub(crate) fn store(&self, out: &mut [f32], acc: [f32; 2], m: usize, n: usize) {
        for (e, v) in acc.into_iter().enumerate() {
            let nn = n + e;
            if nn < self.p.cout {
                let v = v + self.p.bias[nn];
                out[m * self.p.cout + nn] = if v < 0.0 { v * self.p.slope[nn] } else { v };
            }
        }
    }
}

pub(crate) fn max_err(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| if x.is_nan() { f32::INFINITY } else { (x - y).abs() }).fold(0.0, f32::max)
}

/// A value as the kernels hand it to the tensor cores: rounded to f16.
pub(crate) fn r16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// The wgmma kernels' output is f16: compares it with the expected values rounded the same way (one f16 step of
/// slack for the summation order).
pub(crate) fn check(pr: &Problem, got: Vec<f32>, what: &str) {
    let want: Vec<f32> = pr.expected().iter().map(|&v| f16::from_f32(v).to_f32()).collect();
    check_against(&got, &want, what);
}

/// Largest error relative to max(|want|, 1) is under 2e-3 (a missing value, NaN, fails).
pub(crate) fn check_against(got: &[f32], want: &[f32], what: &str) {
    let err = got
        .iter()
        .zip(want)
        .map(|(g, w)| if g.is_nan() { f32::INFINITY } else { (g - w).abs() / w.abs().max(1.0) })
        .fold(0.0, f32::max);
    assert!(err < 2e-3, "{what}: max error {err}");
}
