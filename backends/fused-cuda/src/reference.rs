//! The plain-Rust executor of the IR (f32, NHWC activations): the ground truth the kernels are tested against
//! and what the tests compare with ONNX Runtime. Parallel over rows with rayon; the result does not depend on the
//! thread count (each output value is summed in one fixed order).

use rayon::prelude::*;

use crate::graph::{Act, BaseMode, Cubic, Input, Layer, Network, Output, ShuffleMode, Tail};

/// A planar RGB image (3 × h × w, f32).
#[derive(Debug, Clone, PartialEq)]
pub struct Planar {
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// `3 * h * w` values, plane after plane.
    pub data: Vec<f32>,
}

impl Planar {
    /// A zeroed image.
    pub fn zeros(h: usize, w: usize) -> Planar {
        Planar { h, w, data: vec![0.0; 3 * h * w] }
    }

    fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.h + y) * self.w + x]
    }
}

/// Applies the activation of output channel `co`.
pub fn activate(act: &Act, co: usize, v: f32) -> f32 {
    match act {
        Act::None => v,
        Act::Relu => v.max(0.0),
        Act::Leaky(a) => {
            if v < 0.0 {
                v * a
            } else {
                v
            }
        }
        Act::Prelu(s) => {
            if v < 0.0 {
                v * s[co]
            } else {
                v
            }
        }
    }
}

/// Weights reordered to `[ky][kx][ci][co]`, the order the reference's inner loop reads.
fn taps_major(l: &Layer) -> Vec<f32> {
    let (k, cin, cout) = (l.k, l.cin, l.cout);
    let mut w = vec![0.0; k * k * cin * cout];
    for co in 0..cout {
        for ci in 0..cin {
            for t in 0..k * k {
                w[(t * cin + ci) * cout + co] = l.weight[(co * cin + ci) * k * k + t];
            }
        }
    }
    w
}

/// Runs one layer's convolution, bias, activation and residual steps: `h × w × cout` NHWC values.
fn conv(net_in: &Planar, bufs: &[Vec<f32>], net: &Network, l: &Layer, h: usize, w: usize) -> Vec<f32> {
    let (oh, ow) = (h * l.factor, w * l.factor);
    let wt = taps_major(l);
    let (k, cin, cout) = (l.k, l.cin, l.cout);
    let pad = (k / 2) as isize;
    let mut out = vec![0.0f32; oh * ow * cout];
    out.par_chunks_mut(ow * cout).enumerate().for_each(|(y, row)| {
        let mut acc = vec![0.0f32; cout];
        let mut pix = vec![0.0f32; cin];
        for x in 0..ow {
            acc.copy_from_slice(&l.bias);
            for ky in 0..k {
                for kx in 0..k {
                    let sy = y as isize + ky as isize - pad;
                    let sx = x as isize + kx as isize - pad;
                    if sy < 0 || sx < 0 || sy >= oh as isize || sx >= ow as isize {
                        continue;
                    }
                    let (sy, sx) = (sy as usize, sx as usize);
                    match l.input {
                        Input::Image => {
                            for (c, p) in pix.iter_mut().enumerate() {
                                *p = net_in.at(c, sy, sx);
                            }
                        }
                        Input::Act { slice, upsample } => {
                            let b = net.buffers[slice.buffer];
                            let iw = ow / upsample;
                            let base = ((sy / upsample) * iw + sx / upsample) * b.channels + slice.offset;
                            pix.copy_from_slice(&bufs[slice.buffer][base..base + cin]);
                        }
                    }
                    let t = ky * k + kx;
                    for (ci, &a) in pix.iter().enumerate() {
                        let wrow = &wt[(t * cin + ci) * cout..(t * cin + ci + 1) * cout];
                        for (s, &wv) in acc.iter_mut().zip(wrow) {
                            *s += a * wv;
                        }
                    }
                }
            }
            let o = &mut row[x * cout..(x + 1) * cout];
            for co in 0..cout {
                let mut v = activate(&l.act, co, acc[co]);
                for r in &l.residuals {
                    v *= r.scale;
                    if let Some(s) = r.add {
                        let b = net.buffers[s.buffer];
                        v += bufs[s.buffer][(y * ow + x) * b.channels + s.offset + co];
                    }
                }
                o[co] = v;
            }
        }
    });
    out
}

/// Index of shuffled channel for colour `c`, sub-position `(dy, dx)`.
pub fn shuffle_channel(mode: ShuffleMode, r: usize, c: usize, dy: usize, dx: usize) -> usize {
    match mode {
        ShuffleMode::Crd => c * r * r + dy * r + dx,
        ShuffleMode::Dcr => (dy * r + dx) * 3 + c,
    }
}

/// The input image upsampled by `s` at output pixel `(oy, ox)`, colour `c`.
pub fn base_sample(img: &Planar, mode: BaseMode, s: usize, c: usize, oy: usize, ox: usize) -> f32 {
    match mode {
        BaseMode::Nearest => img.at(c, oy / s, ox / s),
        BaseMode::Bilinear => {
            let coord = |o: usize, n: usize| {
                let v = ((o as f32 + 0.5) / s as f32 - 0.5).clamp(0.0, (n - 1) as f32);
                let i0 = v.floor() as usize;
                (i0, (i0 + 1).min(n - 1), v - i0 as f32)
            };
            let (y0, y1, fy) = coord(oy, img.h);
            let (x0, x1, fx) = coord(ox, img.w);
            let top = img.at(c, y0, x0) * (1.0 - fx) + img.at(c, y0, x1) * fx;
            let bot = img.at(c, y1, x0) * (1.0 - fx) + img.at(c, y1, x1) * fx;
            top * (1.0 - fy) + bot * fy
        }
    }
}

/// The four cubic weights for fractional offset `t` (ONNX Resize, coefficient `a`).
pub fn cubic_weights(a: f32, t: f32) -> [f32; 4] {
    let near = |x: f32| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Taps and weights of output coordinate `o` of a cubic resize by `scale` of a length-`n` axis.
pub fn cubic_taps(c: Cubic, o: usize, n: usize) -> ([usize; 4], [f32; 4]) {
    let x = (o as f32 + 0.5) / c.scale - 0.5;
    let xi = x.floor();
    let w = cubic_weights(c.coeff_a, x - xi);
    let mut idx = [0usize; 4];
    for (i, d) in idx.iter_mut().enumerate() {
        *d = (xi as isize + i as isize - 1).clamp(0, n as isize - 1) as usize;
    }
    (idx, w)
}

/// Bicubic resize of a planar image (rows first, then columns).
pub fn cubic_resize(img: &Planar, c: Cubic) -> Planar {
    let oh = (img.h as f32 * c.scale).floor() as usize;
    let ow = (img.w as f32 * c.scale).floor() as usize;
    let mut out = Planar::zeros(oh, ow);
    out.data.par_chunks_mut(ow).enumerate().for_each(|(row, dst)| {
        let (ch, oy) = (row / oh, row % oh);
        let (ty, wy) = cubic_taps(c, oy, img.h);
        for (ox, d) in dst.iter_mut().enumerate() {
            let (tx, wx) = cubic_taps(c, ox, img.w);
            let mut v = 0.0;
            for j in 0..4 {
                let mut r = 0.0;
                for i in 0..4 {
                    r += wx[i] * img.at(ch, ty[j], tx[i]);
                }
                v += wy[j] * r;
            }
            *d = v;
        }
    });
    out
}

fn tail(net_in: &Planar, t: &Tail, conv_out: &[f32], h: usize, w: usize, cout: usize) -> Planar {
    let r = t.shuffle;
    let (ph, pw) = (h * r, w * r);
    let s = ph / net_in.h;
    let mut pre = Planar::zeros(ph, pw);
    pre.data.par_chunks_mut(pw).enumerate().for_each(|(row, dst)| {
        let (c, oy) = (row / ph, row % ph);
        for (ox, d) in dst.iter_mut().enumerate() {
            let (y, x) = (oy / r, ox / r);
            let ch = shuffle_channel(t.mode, r, c, oy % r, ox % r);
            let mut v = conv_out[(y * w + x) * cout + ch];
            if let Some(b) = t.base {
                v += base_sample(net_in, b, s, c, oy, ox);
            }
            if let Some((lo, hi)) = t.clip {
                v = v.clamp(lo, hi);
            }
            *d = v;
        }
    });
    match t.downscale {
        None => pre,
        Some(c) => {
            let mut out = cubic_resize(&pre, c);
            if let Some((lo, hi)) = t.clip_after {
                out.data.iter_mut().for_each(|v| *v = v.clamp(lo, hi));
            }
            out
        }
    }
}

/// Runs the network on a planar RGB image.
pub fn run(net: &Network, input: &Planar) -> Planar {
    let (h, w) = (input.h, input.w);
    let mut bufs: Vec<Vec<f32>> =
        net.buffers.iter().map(|b| vec![0.0; h * b.factor * w * b.factor * b.channels]).collect();
    for l in &net.layers {
        let out = conv(input, &bufs, net, l, h, w);
        match &l.output {
            Output::Act(s) => {
                let b = net.buffers[s.buffer];
                let dst = &mut bufs[s.buffer];
                for (p, src) in out.chunks_exact(l.cout).enumerate() {
                    let o = p * b.channels + s.offset;
                    dst[o..o + l.cout].copy_from_slice(src);
                }
            }
            Output::Image(t) => return tail(input, t, &out, h * l.factor, w * l.factor, l.cout),
        }
    }
    unreachable!("a matched network ends with an image output")
}
