//! `head.cu`'s `head_mma`, transcribed over the `mma.sync` emulation.

use crate::mma::mma;
use crate::{layer, r16};
use videoforge_backend_fused_cuda::pack::{pack_head, PackedHead};

/// `head_mma` of `head.cu`, transcribed: the weights as B fragments (K = 27 padded to 32), each thread's eight K
/// indices as image offsets, 16-pixel row tiles whose A fragments come straight from the planar image (`pitch`
/// elements a row), two `mma.sync` K steps per 8-channel block, bias and PReLU, NHWC output (as f32).
fn emulate_head_mma(p: &PackedHead, img: &[f32], pitch: usize, h: usize, w: usize) -> Vec<f32> {
    let (cout, nb) = (p.cout, p.cout / 8);
    let wt = |k: usize, n: usize| if k < 27 { r16(p.weight[k * cout + n]) } else { 0.0 };
    let mut b = vec![[[[(0.0, 0.0); 2]; 32]; 2]; nb];
    for (j, bj) in b.iter_mut().enumerate() {
        for (s, bs) in bj.iter_mut().enumerate() {
            for (lane, regs) in bs.iter_mut().enumerate() {
                let (g, t) = (lane >> 2, lane & 3);
                let n = (8 * j + g).min(cout - 1);
                for (r, reg) in regs.iter_mut().enumerate() {
                    let k = 16 * s + 8 * r + 2 * t;
                    *reg = (wt(k, n), wt(k + 1, n));
                }
            }
        }
    }
    // (dy, dx, offset) of K index i of thread t; padding indices never inside the image.
    let koff = |t: usize, i: usize| -> (isize, isize, isize) {
        let k = 16 * (i >> 2) + 8 * ((i >> 1) & 1) + 2 * t + (i & 1);
        if k >= 27 {
            return (-(1 << 20), 0, 0);
        }
        let (tap, c) = (k / 3, k % 3);
        let (dy, dx) = ((tap / 3) as isize - 1, (tap % 3) as isize - 1);
        (dy, dx, (c as isize * h as isize + dy) * pitch as isize + dx)
    };
    let mut out = vec![f32::NAN; h * w * cout];
    let tiles_x = w.div_ceil(16);
    for tile in 0..h * tiles_x {
        let (y, x0) = (tile / tiles_x, (tile % tiles_x) * 16);
        let mut af = [[[(0.0, 0.0); 4]; 32]; 2];
        for lane in 0..32 {
            let (g, t) = (lane >> 2, lane & 3);
            for s in 0..2 {
                for r in 0..2 {
                    for q in 0..2 {
                        let x = x0 + g + 8 * q;
                        let v: Vec<f32> = (0..2)
                            .map(|e| {
                                let (dy, dx, off) = koff(t, 4 * s + 2 * r + e);
                                let (yy, xx) = (y as isize + dy, x as isize + dx);
                                let ok = yy >= 0 && yy < h as isize && xx >= 0 && xx < w as isize;
                                if ok {
                                    r16(img[(off + (y * pitch + x) as isize) as usize])
                                } else {
                                    0.0
                                }
                            })
                            .collect();
                        af[s][lane][r * 2 + q] = (v[0], v[1]);
                    }
                }
            }
        }
        for j in 0..nb {
            let mut acc = [[0.0f32; 4]; 32];
            mma(&mut acc, &af[0], &b[j][0]);
            mma(&mut acc, &af[1], &b[j][1]);
            for lane in 0..32 {
                let (g, t) = (lane >> 2, lane & 3);
                for q in 0..2 {
                    let x = x0 + g + 8 * q;
                    if x >= w {
                        continue;
                    }
                    for e in 0..2 {
                        let n = (8 * j + 2 * t + e).min(cout - 1);
                        let v = acc[lane][2 * q + e] + p.bias[n];
                        let v = if v < 0.0 { v * p.slope[n] } else { v };
                        out[(y * w + x) * cout + 8 * j + 2 * t + e] = r16(v);
                    }
                }
            }
        }
    }
    out
}

#[test]
fn head_mma_indexing_reproduces_the_head_conv() {
    for (h, w, cout) in [(5, 37, 64), (3, 16, 32), (1, 9, 48)] {
        let mut l = layer(3, cout);
        l.weight.iter_mut().for_each(|v| *v *= 3.0);
        let p = pack_head(&l);
        let pitch = w + 5;
        let img: Vec<f32> = (0..3 * h * pitch).map(|i| ((i * 7919) % 211) as f32 / 211.0).collect();
        let got = emulate_head_mma(&p, &img, pitch, h, w);
        let mut err = 0.0f32;
        for y in 0..h {
            for x in 0..w {
                for n in 0..cout {
                    let mut v = p.bias[n];
                    for c in 0..3 {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (yy, xx) = (y as isize + ky - 1, x as isize + kx - 1);
                                if yy >= 0 && yy < h as isize && xx >= 0 && xx < w as isize {
                                    let px = img[(c * h + yy as usize) * pitch + xx as usize];
                                    v += px * p.weight[((ky * 3 + kx) as usize * 3 + c) * cout + n];
                                }
                            }
                        }
                    }
                    let want = if v < 0.0 { v * p.slope[n] } else { v };
                    let g = got[(y * w + x) * cout + n];
                    err = err.max(if g.is_nan() { f32::INFINITY } else { (g - want).abs() / want.abs().max(1.0) });
                }
            }
        }
        assert!(err < 4e-3, "{h}x{w} to {cout}: max error {err}");
    }
}
