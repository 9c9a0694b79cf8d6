//! Weights in the layout the kernels read. The conv kernel's B operand is `[tap][cin][cout_pad]` f16 (K = tap ×
//! cin rows, output channels contiguous, so one 16-byte cp.async moves 8 output channels and `ldmatrix.trans`
//! yields the mma.sync B fragments); bias and activation slope are f32 per padded output channel (the slope
//! encodes every activation: 1 for none, 0 for ReLU, alpha for leaky, per channel for PReLU). The head keeps its
//! 27 × cout weights in f32 (it runs on CUDA cores from the f32 or f16 input). `conv_wgmma_k` copies its weights
//! straight into shared memory, so they are stored in that layout (`kernel_weights`).

use half::f16;

use crate::graph::{Act, Layer};
use crate::kernels::Kernel;

/// Output channels rounded up to the kernel's granularity (two mma n8 blocks).
pub fn pad_cout(cout: usize) -> usize {
    cout.div_ceil(16) * 16
}

/// The per-channel negative slope that reproduces an activation.
pub fn slopes(act: &Act, n: usize) -> Vec<f32> {
    (0..n)
        .map(|c| match act {
            Act::None => 1.0,
            Act::Relu => 0.0,
            Act::Leaky(a) => *a,
            Act::Prelu(s) => s.get(c).copied().unwrap_or(1.0),
        })
        .collect()
}

/// A conv layer packed for `conv_mma`.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedConv {
    /// Kernel size.
    pub k: usize,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Output channels padded with zero weights.
    pub cout_pad: usize,
    /// `[k*k][cin][cout_pad]`.
    pub weight: Vec<f16>,
    /// `[cout_pad]`.
    pub bias: Vec<f32>,
    /// `[cout_pad]`.
    pub slope: Vec<f32>,
}

/// Packs a layer for the tensor-core conv.
pub fn pack_conv(l: &Layer) -> PackedConv {
    let (k, cin, cout) = (l.k, l.cin, l.cout);
    let cout_pad = pad_cout(cout);
    let mut weight = vec![f16::ZERO; k * k * cin * cout_pad];
    for co in 0..cout {
        for ci in 0..cin {
            for t in 0..k * k {
                weight[(t * cin + ci) * cout_pad + co] = f16::from_f32(l.weight[(co * cin + ci) * k * k + t]);
            }
        }
    }
    let mut bias = l.bias.clone();
    bias.resize(cout_pad, 0.0);
    PackedConv { k, cin, cout, cout_pad, weight, bias, slope: slopes(&l.act, cout_pad) }
}

/// The weights of a packed conv as `kernel` reads them, f16 bits. `conv_wgmma_k` takes blocks of BN output
/// channels, each stored as its CTA's shared memory holds it: for each 8 consecutive K (K = tap × cin + input
/// channel), the block's BN channels' 8 values (16 bytes each), so a CTA copies one contiguous run. Every other
/// kernel reads `[k*k][cin][cout_pad]`.
pub fn kernel_weights(kernel: &Kernel, p: &PackedConv) -> Vec<u16> {
    let Kernel::WgmmaK { bn, .. } = *kernel else {
        return p.weight.iter().map(|h| h.to_bits()).collect();
    };
    let (bn, kc) = (bn as usize, p.k * p.k * p.cin / 8);
    let mut out = Vec::with_capacity(p.weight.len());
    for n0 in (0..p.cout_pad).step_by(bn) {
        for c in 0..kc {
            for n in n0..n0 + bn {
                out.extend((0..8).map(|e| p.weight[(c * 8 + e) * p.cout_pad + n].to_bits()));
            }
        }
    }
    out
}

/// The first conv (3 input channels) packed for `head_conv`.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedHead {
    /// Output channels.
    pub cout: usize,
    /// `[27][cout]`, tap-major then input channel (`(ky*3 + kx)*3 + c`).
    pub weight: Vec<f32>,
    /// `[cout]`.
    pub bias: Vec<f32>,
    /// `[cout]`.
    pub slope: Vec<f32>,
}

/// Packs the head layer (3x3, 3 input channels).
pub fn pack_head(l: &Layer) -> PackedHead {
    let cout = l.cout;
    let mut weight = vec![0.0; 27 * cout];
    for co in 0..cout {
        for c in 0..3 {
            for t in 0..9 {
                weight[(t * 3 + c) * cout + co] = l.weight[(co * 3 + c) * 9 + t];
            }
        }
    }
    PackedHead { cout, weight, bias: l.bias.clone(), slope: slopes(&l.act, cout) }
}

/// A plain-Rust conv (bias and activation, no residuals) that reads the *packed* layout exactly as the kernel
/// indexes it: GEMM row = pixel, K = tap × cin, column = output channel. NHWC in and out (`cout` channels out).
pub fn conv_packed_cpu(p: &PackedConv, input: &[f32], h: usize, w: usize) -> Vec<f32> {
    let pad = (p.k / 2) as isize;
    let mut out = vec![0.0; h * w * p.cout];
    for m in 0..h * w {
        let (y, x) = ((m / w) as isize, (m % w) as isize);
        for n in 0..p.cout {
            let mut acc = 0.0f32;
            for kk in 0..p.k * p.k * p.cin {
                let (tap, ci) = (kk / p.cin, kk % p.cin);
                let (yy, xx) = (y + (tap / p.k) as isize - pad, x + (tap % p.k) as isize - pad);
                if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
                    continue;
                }
                let a = input[(yy as usize * w + xx as usize) * p.cin + ci];
                acc += a * p.weight[kk * p.cout_pad + n].to_f32();
            }
            let v = acc + p.bias[n];
            out[m * p.cout + n] = if v < 0.0 { v * p.slope[n] } else { v };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Input, Output, Slice};
    use crate::reference::activate;

    /// Direct conv from ONNX-order weights rounded to f16 (what the kernel multiplies), NHWC.
    fn direct(l: &Layer, input: &[f32], h: usize, w: usize) -> Vec<f32> {
        let (k, cin, cout) = (l.k, l.cin, l.cout);
        let pad = (k / 2) as isize;
        let mut out = vec![0.0; h * w * cout];
        for y in 0..h as isize {
            for x in 0..w as isize {
                for co in 0..cout {
                    let mut acc = 0.0f32;
                    for ci in 0..cin {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (yy, xx) = (y + ky as isize - pad, x + kx as isize - pad);
                                if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
                                    continue;
                                }
                                let wv = f16::from_f32(l.weight[((co * cin + ci) * k + ky) * k + kx]).to_f32();
                                acc += wv * input[(yy as usize * w + xx as usize) * cin + ci];
                            }
                        }
                    }
                    out[(y as usize * w + x as usize) * cout + co] = activate(&l.act, co, acc + l.bias[co]);
                }
            }
        }
        out
    }

    fn layer(k: usize, cin: usize, cout: usize, act: Act, seed: u64) -> Layer {
        let mut s = seed;
        let mut r = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let weight = (0..cout * cin * k * k).map(|_| r()).collect();
        let bias = (0..cout).map(|_| r()).collect();
        let slice = Slice { buffer: 0, offset: 0, channels: cin };
        Layer {
            name: "t".into(),
            k,
            cin,
            cout,
            weight,
            bias,
            act,
            residuals: vec![],
            input: Input::Act { slice, upsample: 1 },
            output: Output::Act(Slice { channels: cout, ..slice }),
            factor: 1,
        }
    }

    fn check(l: &Layer, h: usize, w: usize) {
        let input: Vec<f32> = (0..h * w * l.cin).map(|i| ((i * 7919) % 101) as f32 / 101.0 - 0.3).collect();
        let p = pack_conv(l);
        assert_eq!(p.weight.len(), l.k * l.k * l.cin * p.cout_pad);
        let got = conv_packed_cpu(&p, &input, h, w);
        let want = direct(l, &input, h, w);
        let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 1e-4, "{}: packed conv differs by {err}", l.name);
    }

    #[test]
    fn packed_layout_reproduces_the_conv() {
        check(&layer(3, 16, 16, Act::Prelu((0..16).map(|i| i as f32 / 16.0).collect()), 1), 5, 7);
        check(&layer(3, 32, 3, Act::None, 2), 4, 3);
        check(&layer(1, 16, 48, Act::Leaky(0.2), 3), 3, 6);
        check(&layer(3, 16, 8, Act::Relu, 4), 1, 1);
    }

    #[test]
    fn shipped_model_layers_pack_exactly() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/realesr-animevideov3-x2.onnx");
        let Ok(net) = crate::graph::load(&root) else {
            eprintln!("skipped: {} not found", root.display());
            return;
        };
        for l in net.layers.iter().skip(1).step_by(5) {
            check(l, 4, 5);
        }
        let head = pack_head(&net.layers[0]);
        let l0 = &net.layers[0];
        assert_eq!(head.weight[(4 * 3 + 1) * l0.cout + 7], l0.weight[(7 * 3 + 1) * 9 + 4]);
    }

    #[test]
    fn slopes_encode_every_activation() {
        assert_eq!(slopes(&Act::None, 2), [1.0, 1.0]);
        assert_eq!(slopes(&Act::Relu, 1), [0.0]);
        assert_eq!(slopes(&Act::Leaky(0.2), 1), [0.2]);
        assert_eq!(slopes(&Act::Prelu(vec![0.1, 0.3]), 3), [0.1, 0.3, 1.0]);
        assert_eq!(pad_cout(3), 16);
        assert_eq!(pad_cout(48), 48);
    }
}
