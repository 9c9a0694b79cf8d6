//! The tensor-core conv kernels' index arithmetic, emulated on the CPU: a line-by-line transcription of
//! `conv_halo.cu` and `conv_mma.cu` (tile walk, shared-memory layout, cp.async zero fill, double buffering and
//! pipeline stages, ldmatrix addresses) over an emulation of `ldmatrix` and `mma.sync.m16n8k16` written from the
//! PTX ISA's fragment layouts, and of `conv_wgmma.cu` (patch planes, descriptors and their offsets, the accumulator
//! layout, the staged NHWC and tail epilogues) and `conv_wgmma_wide.cu` (row ring, strip segments, `stmatrix.trans`
//! staging) over an emulation of `wgmma` with no-swizzle K-major shared-memory operands, and `head.cu`'s
//! `head_mma` over the `mma.sync` emulation, compared with the plain convs that read the packed weights. It cannot find what only hardware shows
//! (timing, races, alignment faults), but it does find a wrong offset, stride or fragment mapping without a GPU.

// Loops over lanes and warps index by lane and warp on purpose: they mirror the CUDA code they transcribe.
#![allow(clippy::needless_range_loop)]

use half::f16;
use videoforge_backend_fused_cuda::graph::{Act, Input, Layer, Output, Slice};
use videoforge_backend_fused_cuda::pack::{conv_packed_cpu, pack_conv, pack_head, PackedConv, PackedHead};

/// Two halves in one 32-bit register: (low, high).
type Reg = (f32, f32);

fn h(v: u16) -> f32 {
    f16::from_bits(v).to_f32()
}

/// `ldmatrix.x4` (optionally `.trans`): lane `8j + r` gives the address of row `r` of matrix `j`; lane `i` gets, in
/// register `j`, row `i / 4`, columns `2 (i % 4)` and `+1` of matrix `j` (transposed: column `i / 4`, rows `2 (i % 4)`
/// and `+1`).
fn ldmatrix(smem: &[u16], addrs: &[usize; 32], trans: bool) -> [[Reg; 4]; 32] {
    let mut out = [[(0.0, 0.0); 4]; 32];
    for (i, regs) in out.iter_mut().enumerate() {
        for (j, reg) in regs.iter_mut().enumerate() {
            let at = |row: usize, col: usize| h(smem[addrs[8 * j + row] + col]);
            *reg = if trans {
                (at(2 * (i % 4), i / 4), at(2 * (i % 4) + 1, i / 4))
            } else {
                (at(i / 4, 2 * (i % 4)), at(i / 4, 2 * (i % 4) + 1))
            };
        }
    }
    out
}

/// `mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32` over a warp's registers (PTX fragment layouts: group
/// g = lane / 4, thread t = lane % 4).
fn mma(acc: &mut [[f32; 4]; 32], a: &[[Reg; 4]; 32], b: &[[Reg; 2]; 32]) {
    let mut am = [[0.0f32; 16]; 16];
    let mut bm = [[0.0f32; 8]; 16];
    for l in 0..32 {
        let (g, t) = (l / 4, l % 4);
        let put = |m: &mut [[f32; 16]; 16], r: usize, c: usize, v: Reg| {
            m[r][c] = v.0;
            m[r][c + 1] = v.1;
        };
        put(&mut am, g, 2 * t, a[l][0]);
        put(&mut am, g + 8, 2 * t, a[l][1]);
        put(&mut am, g, 2 * t + 8, a[l][2]);
        put(&mut am, g + 8, 2 * t + 8, a[l][3]);
        bm[2 * t][g] = b[l][0].0;
        bm[2 * t + 1][g] = b[l][0].1;
        bm[2 * t + 8][g] = b[l][1].0;
        bm[2 * t + 9][g] = b[l][1].1;
    }
    for l in 0..32 {
        let (g, t) = (l / 4, l % 4);
        for (e, (r, c)) in [(g, 2 * t), (g, 2 * t + 1), (g + 8, 2 * t), (g + 8, 2 * t + 1)].into_iter().enumerate() {
            acc[l][e] += (0..16).map(|k| am[r][k] * bm[k][c]).sum::<f32>();
        }
    }
}

/// The layer the emulations run: a 3x3 conv with PReLU.
fn layer(cin: usize, cout: usize) -> Layer {
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
struct Problem {
    h: usize,
    w: usize,
    up_shift: usize,
    input: Vec<u16>,
    stride: usize,
    off: usize,
    p: PackedConv,
}

impl Problem {
    fn new(h: usize, w: usize, up_shift: usize, cin: usize, cout: usize) -> Problem {
        let (stride, off) = (cin + 16, 8);
        let (ih, iw) = (h >> up_shift, w >> up_shift);
        let input =
            (0..ih * iw * stride).map(|i| f16::from_f32(((i * 7919) % 211) as f32 / 211.0 - 0.4).to_bits()).collect();
        Problem { h, w, up_shift, input, stride, off, p: pack_conv(&layer(cin, cout)) }
    }

    /// The expected output (NHWC, cout channels) from the plain packed-layout conv.
    fn expected(&self) -> Vec<f32> {
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
    fn copy_pixel(&self, smem: &mut [u16], dst: usize, yy: isize, xx: isize, ch: usize) {
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
    fn store(&self, out: &mut [f32], acc: [f32; 2], m: usize, n: usize) {
        for (e, v) in acc.into_iter().enumerate() {
            let nn = n + e;
            if nn < self.p.cout {
                let v = v + self.p.bias[nn];
                out[m * self.p.cout + nn] = if v < 0.0 { v * self.p.slope[nn] } else { v };
            }
        }
    }
}

/// Loads a B fragment pair like the kernels: `ldmatrix.x4.trans` at rows `krow0 + (lane & 15)`, columns
/// `ncol0 + (lane >> 4) * 8` of a `[rows][bs]` tile.
fn load_b(smem: &[u16], base: usize, bs: usize, krow0: usize, ncol0: usize) -> ([[Reg; 2]; 32], [[Reg; 2]; 32]) {
    let mut addrs = [0usize; 32];
    for (lane, a) in addrs.iter_mut().enumerate() {
        *a = base + (krow0 + (lane & 15)) * bs + ncol0 + (lane >> 4) * 8;
    }
    let r = ldmatrix(smem, &addrs, true);
    let mut b0 = [[(0.0, 0.0); 2]; 32];
    let mut b1 = [[(0.0, 0.0); 2]; 32];
    for l in 0..32 {
        b0[l] = [r[l][0], r[l][1]];
        b1[l] = [r[l][2], r[l][3]];
    }
    (b0, b1)
}

/// `conv_halo.cu`, transcribed. BM = 16·TH, CIN = the layer's cin, persistent over `resident` CTAs.
fn emulate_halo(pr: &Problem, bm: usize, warps_m: usize, warps_n: usize, bn: usize, resident: usize) -> Vec<f32> {
    let (cin, cout_pad) = (pr.p.cin, pr.p.cout_pad);
    let (tw, th) = (16, bm / 16);
    let pw = tw + 2;
    let ppix = (th + 2) * pw;
    let (wm_sz, wn_sz) = (bm / warps_m, bn / warps_n);
    let (mi_n, ni_n) = (wm_sz / 16, wn_sz / 8);
    let (ps, bs) = (cin + 8, bn + 8);
    let w_elems = 9 * cin * bs;
    let p_elems = ppix * ps;
    let tiles_x = pr.w.div_ceil(tw);
    let ntiles = tiles_x * pr.h.div_ceil(th);
    let mut out = vec![f32::NAN; pr.h * pr.w * pr.p.cout];
    for by in 0..cout_pad / bn {
        let n0 = by * bn;
        for bx in 0..resident.min(ntiles) {
            let mut smem = vec![0xffffu16; w_elems + 2 * p_elems];
            for row in 0..9 * cin {
                for col in (0..bn).step_by(8) {
                    for e in 0..8 {
                        smem[row * bs + col + e] = pr.p.weight[row * cout_pad + n0 + col + e].to_bits();
                    }
                }
            }
            let load_patch = |smem: &mut [u16], stage: usize, t: usize| {
                let ty0 = (t / tiles_x) as isize * th as isize - 1;
                let tx0 = (t % tiles_x) as isize * tw as isize - 1;
                for c in 0..ppix * (cin / 8) {
                    let (p, col) = (c / (cin / 8), (c % (cin / 8)) * 8);
                    let (yy, xx) = (ty0 + (p / pw) as isize, tx0 + (p % pw) as isize);
                    pr.copy_pixel(smem, w_elems + stage * p_elems + p * ps + col, yy, xx, col);
                }
            };
            let mut t = bx;
            load_patch(&mut smem, 0, t);
            let mut it = 0;
            while t < ntiles {
                let next = t + resident;
                if next < ntiles {
                    load_patch(&mut smem, (it + 1) & 1, next);
                }
                let pbase = w_elems + (it & 1) * p_elems;
                for warp in 0..warps_m * warps_n {
                    let (wm, wn) = (warp % warps_m, warp / warps_m);
                    let mut acc = vec![[[0.0f32; 4]; 32]; mi_n * ni_n];
                    for tap in 0..9 {
                        let toff = (tap / 3) * pw + tap % 3;
                        for kk in (0..cin).step_by(16) {
                            let mut af = Vec::new();
                            for mi in 0..mi_n {
                                let mut addrs = [0usize; 32];
                                for (lane, a) in addrs.iter_mut().enumerate() {
                                    let r = wm * wm_sz + mi * 16 + (lane & 15);
                                    let prow = (r / tw) * pw + (r % tw);
                                    *a = pbase + (prow + toff) * ps + kk + (lane >> 4) * 8;
                                }
                                af.push(ldmatrix(&smem, &addrs, false));
                            }
                            for ni in (0..ni_n).step_by(2) {
                                let (b0, b1) = load_b(&smem, 0, bs, tap * cin + kk, wn * wn_sz + ni * 8);
                                for mi in 0..mi_n {
                                    mma(&mut acc[mi * ni_n + ni], &af[mi], &b0);
                                    mma(&mut acc[mi * ni_n + ni + 1], &af[mi], &b1);
                                }
                            }
                        }
                    }
                    let (ty0, tx0) = ((t / tiles_x) * th, (t % tiles_x) * tw);
                    for mi in 0..mi_n {
                        for ni in 0..ni_n {
                            for lane in 0..32 {
                                for hf in 0..2 {
                                    let r = wm * wm_sz + mi * 16 + (lane >> 2) + hf * 8;
                                    let (y, x) = (ty0 + r / tw, tx0 + r % tw);
                                    if y >= pr.h || x >= pr.w {
                                        continue;
                                    }
                                    let n = n0 + wn * wn_sz + ni * 8 + (lane & 3) * 2;
                                    let a = acc[mi * ni_n + ni][lane];
                                    pr.store(&mut out, [a[hf * 2], a[hf * 2 + 1]], y * pr.w + x, n);
                                }
                            }
                        }
                    }
                }
                t += resident;
                it += 1;
            }
        }
    }
    out
}

/// `conv_mma.cu`, transcribed (KSIZE 3), with its STAGES-deep stage ring.
#[allow(clippy::too_many_arguments)]
fn emulate_mma(
    pr: &Problem,
    bm: usize,
    warps_m: usize,
    warps_n: usize,
    bn: usize,
    kc: usize,
    stages: usize,
) -> Vec<f32> {
    let (cin, cout_pad) = (pr.p.cin, pr.p.cout_pad);
    let (wm_sz, wn_sz) = (bm / warps_m, bn / warps_n);
    let (mi_n, ni_n) = (wm_sz / 16, wn_sz / 8);
    let (a_s, bs) = (kc + 8, bn + 8);
    let (a_stage, b_stage) = (bm * a_s, kc * bs);
    let m_total = pr.h * pr.w;
    let kchunks = cin / kc;
    let kt_n = 9 * kchunks;
    let mut out = vec![f32::NAN; pr.h * pr.w * pr.p.cout];
    for by in 0..cout_pad / bn {
        let n0 = by * bn;
        for bx in 0..m_total.div_ceil(bm) {
            let m0 = bx * bm;
            let mut smem = vec![0xffffu16; stages * (a_stage + b_stage)];
            let b_base = stages * a_stage;
            let load_stage = |smem: &mut [u16], stage: usize, kt: usize| {
                let tap = kt / kchunks;
                let ci0 = (kt - tap * kchunks) * kc;
                let (ky, kx) = (tap / 3, tap % 3);
                for c in 0..bm * kc / 8 {
                    let (row, col) = (c / (kc / 8), (c % (kc / 8)) * 8);
                    let m = m0 + row;
                    let dst = stage * a_stage + row * a_s + col;
                    if m < m_total {
                        let (y, x) = ((m / pr.w) as isize, (m % pr.w) as isize);
                        pr.copy_pixel(smem, dst, y + ky as isize - 1, x + kx as isize - 1, ci0 + col);
                    } else {
                        smem[dst..dst + 8].fill(0);
                    }
                }
                for c in 0..kc * bn / 8 {
                    let (row, col) = (c / (bn / 8), (c % (bn / 8)) * 8);
                    for e in 0..8 {
                        smem[b_base + stage * b_stage + row * bs + col + e] =
                            pr.p.weight[(tap * cin + ci0 + row) * cout_pad + n0 + col + e].to_bits();
                    }
                }
            };
            for s in 0..stages - 1 {
                if s < kt_n {
                    load_stage(&mut smem, s, s);
                }
            }
            let mut acc = vec![vec![[[0.0f32; 4]; 32]; mi_n * ni_n]; warps_m * warps_n];
            for kt in 0..kt_n {
                let nk = kt + stages - 1;
                if nk < kt_n {
                    load_stage(&mut smem, nk % stages, nk);
                }
                let (ta, tb) = ((kt % stages) * a_stage, b_base + (kt % stages) * b_stage);
                for warp in 0..warps_m * warps_n {
                    let (wm, wn) = (warp % warps_m, warp / warps_m);
                    for kk in (0..kc).step_by(16) {
                        let mut af = Vec::new();
                        for mi in 0..mi_n {
                            let mut addrs = [0usize; 32];
                            for (lane, a) in addrs.iter_mut().enumerate() {
                                *a = ta + (wm * wm_sz + mi * 16 + (lane & 15)) * a_s + kk + (lane >> 4) * 8;
                            }
                            af.push(ldmatrix(&smem, &addrs, false));
                        }
                        for ni in (0..ni_n).step_by(2) {
                            let (b0, b1) = load_b(&smem, tb, bs, kk, wn * wn_sz + ni * 8);
                            for mi in 0..mi_n {
                                mma(&mut acc[warp][mi * ni_n + ni], &af[mi], &b0);
                                mma(&mut acc[warp][mi * ni_n + ni + 1], &af[mi], &b1);
                            }
                        }
                    }
                }
            }
            for warp in 0..warps_m * warps_n {
                let (wm, wn) = (warp % warps_m, warp / warps_m);
                for mi in 0..mi_n {
                    for ni in 0..ni_n {
                        for lane in 0..32 {
                            for hf in 0..2 {
                                let m = m0 + wm * wm_sz + mi * 16 + (lane >> 2) + hf * 8;
                                let n = n0 + wn * wn_sz + ni * 8 + (lane & 3) * 2;
                                if m >= m_total {
                                    continue;
                                }
                                let a = acc[warp][mi * ni_n + ni][lane];
                                pr.store(&mut out, [a[hf * 2], a[hf * 2 + 1]], m, n);
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

fn max_err(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| if x.is_nan() { f32::INFINITY } else { (x - y).abs() }).fold(0.0, f32::max)
}

#[test]
fn halo_kernel_indexing_reproduces_the_conv() {
    // 13x21 (partial tiles both ways), 2 N-blocks, 3 persistent CTAs over 8 tiles (both patch buffers in use).
    let pr = Problem::new(13, 21, 0, 32, 64);
    let err = max_err(&emulate_halo(&pr, 64, 2, 2, 32, 3), &pr.expected());
    assert!(err < 1e-4, "halo: max error {err}");
    // Upsampled input (RRDB's upsampling convs) and one warp column.
    let pr = Problem::new(10, 18, 1, 16, 32);
    let err = max_err(&emulate_halo(&pr, 32, 2, 1, 32, 2), &pr.expected());
    assert!(err < 1e-4, "halo, upsampled: max error {err}");
}

#[test]
fn streaming_kernel_indexing_reproduces_the_conv() {
    let pr = Problem::new(11, 13, 0, 32, 64);
    let err = max_err(&emulate_mma(&pr, 64, 2, 2, 32, 16, 3), &pr.expected());
    assert!(err < 1e-4, "mma: max error {err}");
    let pr = Problem::new(6, 10, 1, 32, 16);
    let err = max_err(&emulate_mma(&pr, 32, 2, 1, 16, 32, 2), &pr.expected());
    assert!(err < 1e-4, "mma, upsampled: max error {err}");
}

/// Shared memory as bytes, f16 values little-endian.
fn put16(smem: &mut [u8], at: usize, v: u16) {
    smem[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn get16(smem: &[u8], at: usize) -> f32 {
    h(u16::from_le_bytes([smem[at], smem[at + 1]]))
}

/// `smem_desc` of `conv_wgmma.cu`: start address, LBO and SBO in 16-byte units, no swizzle.
fn smem_desc(addr: usize, lbo: usize, sbo: usize) -> u64 {
    ((addr as u64 & 0x3FFFF) >> 4) | (((lbo as u64 >> 4) & 0x3FFF) << 16) | (((sbo as u64 >> 4) & 0x3FFF) << 32)
}

/// `wgmma.mma_async ... m64nNk16.f32.f16.f16` with both operands K-major from shared memory, no swizzle: element
/// (row, k) of an operand lies at start + (k / 8)·LBO + (row / 8)·SBO + (row % 8)·16 + (k % 8)·2 (the PTX ISA's
/// canonical layout, the one the H200 agreed with). D is handed out in the accumulator fragment layout: thread t of
/// the warpgroup holds, in register 4j + 2hf + e, row 16 (t / 32) + (t % 32) / 4 + 8 hf, column 8j + 2 (t % 4) + e.
fn wgmma(acc: &mut [Vec<f32>], smem: &[u8], da: u64, db: u64, n: usize, accumulate: bool) {
    let decode = |d: u64| {
        (((d & 0x3FFF) << 4) as usize, (((d >> 16) & 0x3FFF) << 4) as usize, (((d >> 32) & 0x3FFF) << 4) as usize)
    };
    let ((a0, alb, asb), (b0, blb, bsb)) = (decode(da), decode(db));
    let at = |base: usize, lbo: usize, sbo: usize, row: usize, k: usize| {
        get16(smem, base + (k / 8) * lbo + (row / 8) * sbo + (row % 8) * 16 + (k % 8) * 2)
    };
    for (t, regs) in acc.iter_mut().enumerate() {
        for j in 0..n / 8 {
            for hf in 0..2 {
                for e in 0..2 {
                    let (m, c) = (16 * (t / 32) + (t % 32) / 4 + 8 * hf, 8 * j + 2 * (t % 4) + e);
                    let d: f32 = (0..16).map(|k| at(a0, alb, asb, m, k) * at(b0, blb, bsb, c, k)).sum();
                    let r = &mut regs[4 * j + 2 * hf + e];
                    *r = if accumulate { *r + d } else { d };
                }
            }
        }
    }
}

/// `wgmma.mma_async ... m64nNk16` with A from registers: thread t's register r holds row
/// `16 (t / 32) + (t % 32) / 4 + 8 (r % 2)`, K columns `2 (t % 4) + 8 (r / 2)` and the next one (the mma.sync
/// m16n8k16 A fragment, one per warp); B K-major from shared memory as in [`wgmma`].
fn wgmma_rs(acc: &mut [Vec<f32>], a: &[[Reg; 4]], smem: &[u8], db: u64, n: usize, accumulate: bool) {
    let mut am = [[f32::NAN; 16]; 64];
    for (t, regs) in a.iter().enumerate() {
        for (r, &(lo, hi)) in regs.iter().enumerate() {
            let (row, k) = (16 * (t / 32) + (t % 32) / 4 + 8 * (r % 2), 2 * (t % 4) + 8 * (r / 2));
            am[row][k] = lo;
            am[row][k + 1] = hi;
        }
    }
    let (b0, blb, bsb) =
        (((db & 0x3FFF) << 4) as usize, (((db >> 16) & 0x3FFF) << 4) as usize, (((db >> 32) & 0x3FFF) << 4) as usize);
    let bat = |row: usize, k: usize| get16(smem, b0 + (k / 8) * blb + (row / 8) * bsb + (row % 8) * 16 + (k % 8) * 2);
    for (t, regs) in acc.iter_mut().enumerate() {
        for j in 0..n / 8 {
            for hf in 0..2 {
                for e in 0..2 {
                    let (m, c) = (16 * (t / 32) + (t % 32) / 4 + 8 * hf, 8 * j + 2 * (t % 4) + e);
                    let d: f32 = (0..16).map(|k| am[m][k] * bat(c, k)).sum();
                    let r = &mut regs[4 * j + 2 * hf + e];
                    *r = if accumulate { *r + d } else { d };
                }
            }
        }
    }
}

/// `wg_load_weights` of `wgmma_common.cu`, transcribed: BN output channels from `n0` of all input channels into
/// K-major core matrices at the start of shared memory.
fn wg_load_weights(pr: &Problem, smem: &mut [u8], n0: usize, bn: usize) {
    let w_plane = bn * 16;
    for i in 0..9 * (pr.p.cin / 8) * bn {
        let (kc, n) = (i / bn, i % bn);
        for e in 0..8 {
            let v = pr.p.weight[(kc * 8 + e) * pr.p.cout_pad + n0 + n].to_bits();
            put16(smem, kc * w_plane + n * 16 + e * 2, v);
        }
    }
}

/// `wg_load_planes<np>` of `wgmma_common.cu`, transcribed: planes [0, np) (input channels c0 + 8 p) of tile t's
/// (rows + 2) x 66 patch into `dst`, one plane `plane` bytes.
#[allow(clippy::too_many_arguments)]
fn wg_load_planes(pr: &Problem, smem: &mut [u8], dst: usize, np: usize, rows: usize, t: usize, c0: usize) {
    let (tw, pw) = (64, 66);
    let plane = (rows + 2) * pw * 16 + 16;
    let tiles_x = pr.w.div_ceil(tw);
    let (ty0, tx0) = (((t / tiles_x) * rows) as isize - 1, ((t % tiles_x) * tw) as isize - 1);
    for wt in 0..128 {
        let (ch, px0) = (wt % np, wt / np);
        let d0 = dst + ch * plane;
        for py in 0..rows + 2 {
            for px in (px0..pw).step_by(128 / np) {
                let mut tmp = [0u16; 8];
                pr.copy_pixel(&mut tmp, 0, ty0 + py as isize, tx0 + px as isize, c0 + ch * 8);
                for (e, v) in tmp.into_iter().enumerate() {
                    put16(smem, d0 + (py * pw + px) * 16 + e * 2, v);
                }
            }
        }
    }
}

/// One warpgroup tile as `conv_wgmma.cu` leaves it for its epilogue: shared memory, the tile's patch buffer
/// (reused as staging), its origin, the N block, and the accumulators `[row][thread][register]`.
struct WgTile<'a> {
    smem: &'a mut [u8],
    p: usize,
    ty0: usize,
    tx0: usize,
    n0: usize,
    acc: &'a [Vec<Vec<f32>>],
}

/// `conv_wgmma.cu`'s main loop, transcribed (CIN 64): resident K-major weights, each warpgroup's persistent walk
/// over `rows` x 64 tiles with its double-buffered patch planes, the MMAs through descriptors; `epilogue` gets each
/// tile.
fn wgmma_tiles(pr: &Problem, groups: usize, rows: usize, bn: usize, resident: usize, mut epilogue: impl FnMut(WgTile)) {
    let (cin, cout_pad) = (pr.p.cin, pr.p.cout_pad);
    let (tw, pw, ch_n) = (64, 66, cin / 8);
    let plane = (rows + 2) * pw * 16 + 16;
    let patch_bytes = ch_n * plane;
    let w_plane = bn * 16;
    let w_bytes = 9 * ch_n * w_plane;
    let tiles_x = pr.w.div_ceil(tw);
    let ntiles = tiles_x * pr.h.div_ceil(rows);
    for by in 0..cout_pad / bn {
        let n0 = by * bn;
        let blocks = ntiles.div_ceil(groups).min(resident);
        for bx in 0..blocks {
            let mut smem = vec![0xAAu8; w_bytes + groups * 2 * patch_bytes];
            wg_load_weights(pr, &mut smem, n0, bn);
            let wdesc = smem_desc(0, w_plane, 128);
            let nworkers = blocks * groups;
            for wg in 0..groups {
                let sp = w_bytes + wg * 2 * patch_bytes;
                let load_patch = |smem: &mut Vec<u8>, stage: usize, t: usize| {
                    wg_load_planes(pr, smem, sp + stage * patch_bytes, ch_n, rows, t, 0)
                };
                let mut t = bx * groups + wg;
                if t < ntiles {
                    load_patch(&mut smem, 0, t);
                }
                let mut it = 0;
                while t < ntiles {
                    let p = sp + (it & 1) * patch_bytes;
                    let pdesc = smem_desc(p, plane, 128);
                    let mut acc = vec![vec![vec![0.0f32; bn / 2]; 128]; rows];
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        for tap in 0..9 {
                            for ks in 0..cin / 16 {
                                let da = pdesc + (((r + tap / 3) * pw + tap % 3) + ks * 2 * (plane / 16)) as u64;
                                let db = wdesc + ((tap * ch_n + ks * 2) * (w_plane / 16)) as u64;
                                wgmma(acc_r, &smem, da, db, bn, (tap | ks) != 0);
                            }
                        }
                    }
                    let next = t + nworkers;
                    if next < ntiles {
                        load_patch(&mut smem, (it + 1) & 1, next);
                    }
                    let (ty0, tx0) = ((t / tiles_x) * rows, (t % tiles_x) * tw);
                    epilogue(WgTile { smem: &mut smem, p, ty0, tx0, n0, acc: &acc });
                    t += nworkers;
                    it += 1;
                }
            }
        }
    }
}

/// The `EPI 0` epilogue of both wgmma kernels, transcribed: bias and PReLU from registers, f16 into the staging
/// buffer, 16-byte chunks out (`out` as f32, NHWC with cout channels).
fn wgmma_epilogue_nhwc(pr: &Problem, rows: usize, bn: usize, t: WgTile, out: &mut [f32]) {
    let (tw, cout, srow) = (64, pr.p.cout, bn * 2 + 16);
    for (r, acc_r) in t.acc.iter().enumerate() {
        for (wt, regs) in acc_r.iter().enumerate() {
            let (warp, lane) = (wt / 32, wt % 32);
            for hf in 0..2 {
                let px = r * tw + warp * 16 + (lane >> 2) + hf * 8;
                for j in 0..bn / 8 {
                    for e in 0..2 {
                        let n = t.n0 + j * 8 + (lane & 3) * 2 + e;
                        let v = regs[j * 4 + hf * 2 + e] + pr.p.bias[n];
                        let v = if v < 0.0 { v * pr.p.slope[n] } else { v };
                        let at = t.p + px * srow + (j * 8 + (lane & 3) * 2 + e) * 2;
                        put16(t.smem, at, f16::from_f32(v).to_bits());
                    }
                }
            }
        }
    }
    for wt in 0..128 {
        for c in (wt..rows * tw * (bn / 8)).step_by(128) {
            let (px, ch) = (c / (bn / 8), c % (bn / 8));
            let (y, x, n) = (t.ty0 + px / tw, t.tx0 + px % tw, t.n0 + ch * 8);
            if y < pr.h && x < pr.w && n < cout {
                for e in 0..8 {
                    out[(y * pr.w + x) * cout + n + e] = get16(t.smem, t.p + px * srow + ch * 16 + e * 2);
                }
            }
        }
    }
}

/// `conv_wgmma.cu` with `EPI 0` (NHWC f16 through the staging buffer), transcribed; the output as f32.
fn emulate_wgmma(pr: &Problem, groups: usize, rows: usize, bn: usize, resident: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; pr.h * pr.w * pr.p.cout];
    wgmma_tiles(pr, groups, rows, bn, resident, |t| wgmma_epilogue_nhwc(pr, rows, bn, t, &mut out));
    out
}

/// `conv_wgmma_k.cu`, transcribed: resident weights for all input channels, each tile's patch streamed in
/// `chunk`-channel pieces through two buffers per warpgroup (the next piece, or the next tile's first, copied
/// after the current piece's MMAs are issued), the accumulators carried across a tile's pieces.
fn emulate_wgmma_k(pr: &Problem, groups: usize, rows: usize, chunk: usize, bn: usize, resident: usize) -> Vec<f32> {
    let (cin, cout_pad) = (pr.p.cin, pr.p.cout_pad);
    let (tw, pw, ch_n, nch) = (64, 66, chunk / 8, cin / chunk);
    let plane = (rows + 2) * pw * 16 + 16;
    let buf_bytes = ch_n * plane;
    let w_plane = bn * 16;
    let w_bytes = 9 * (cin / 8) * w_plane;
    let tiles_x = pr.w.div_ceil(tw);
    let ntiles = tiles_x * pr.h.div_ceil(rows);
    let mut out = vec![f32::NAN; pr.h * pr.w * pr.p.cout];
    for by in 0..cout_pad / bn {
        let n0 = by * bn;
        let blocks = ntiles.div_ceil(groups).min(resident);
        for bx in 0..blocks {
            let mut smem = vec![0xAAu8; w_bytes + groups * 2 * buf_bytes];
            wg_load_weights(pr, &mut smem, n0, bn);
            let wdesc = smem_desc(0, w_plane, 128);
            let nworkers = blocks * groups;
            for wg in 0..groups {
                let sb = w_bytes + wg * 2 * buf_bytes;
                let load_chunk = |smem: &mut Vec<u8>, stage: usize, t: usize, q: usize| {
                    wg_load_planes(pr, smem, sb + stage * buf_bytes, ch_n, rows, t, q * chunk)
                };
                let mut t = bx * groups + wg;
                if t < ntiles {
                    load_chunk(&mut smem, 0, t, 0);
                }
                let mut stage = 0;
                while t < ntiles {
                    let mut acc = vec![vec![vec![0.0f32; bn / 2]; 128]; rows];
                    let mut p = sb;
                    for q in 0..nch {
                        p = sb + stage * buf_bytes;
                        let pdesc = smem_desc(p, plane, 128);
                        for (r, acc_r) in acc.iter_mut().enumerate() {
                            for tap in 0..9 {
                                for ks in 0..chunk / 16 {
                                    let da = pdesc + (((r + tap / 3) * pw + tap % 3) + ks * 2 * (plane / 16)) as u64;
                                    let db = wdesc + ((tap * (cin / 8) + q * ch_n + ks * 2) * (w_plane / 16)) as u64;
                                    wgmma(acc_r, &smem, da, db, bn, true);
                                }
                            }
                        }
                        let tn = if q + 1 < nch { t } else { t + nworkers };
                        if tn < ntiles {
                            load_chunk(&mut smem, stage ^ 1, tn, (q + 1) % nch);
                        }
                        stage ^= 1;
                    }
                    let (ty0, tx0) = ((t / tiles_x) * rows, (t % tiles_x) * tw);
                    let tile = WgTile { smem: &mut smem, p, ty0, tx0, n0, acc: &acc };
                    wgmma_epilogue_nhwc(pr, rows, bn, tile, &mut out);
                    t += nworkers;
                }
            }
        }
    }
    out
}

/// `conv_wgmma.cu` with `EPI 1` (the tail: pixel shuffle by `s`, the nearest-upsampled `image` added, clamp to
/// [0, 1], planar f32 output), transcribed: the per-thread staging offsets, the staging pass, the row-wise copy.
fn emulate_wgmma_tail(pr: &Problem, rows: usize, s: usize, crd: bool, image: &[f32]) -> Vec<f32> {
    let (tw, cout, bn) = (64, pr.p.cout, pr.p.cout_pad);
    let (srows, cols, oh, ow) = (rows * s, tw * s, pr.h * s, pr.w * s);
    let mut out = vec![f32::NAN; 3 * oh * ow];
    wgmma_tiles(pr, 2, rows, bn, 2, |t| {
        let mut st = vec![f32::NAN; 3 * srows * cols];
        for (r, acc_r) in t.acc.iter().enumerate() {
            for (wt, regs) in acc_r.iter().enumerate() {
                let (warp, lane) = (wt / 32, wt % 32);
                // The thread's staging offsets and colours (-1: a padding channel), and whether each of its pairs
                // lands on two neighbouring, 8-byte aligned sub-columns.
                let place = |j: usize, e: usize| {
                    let n = t.n0 + j * 8 + (lane & 3) * 2 + e;
                    if n >= cout {
                        return (-1, 0);
                    }
                    let (c, dy, dx) = unshuffle(n, s, crd);
                    (((c * srows + dy) * cols + dx) as isize, c)
                };
                let pairs = s % 2 == 0
                    && (0..bn / 8).all(|j| {
                        let (o0, o1) = (place(j, 0).0, place(j, 1).0);
                        o0 >= 0 && o1 == o0 + 1 && o0 % 2 == 0
                    });
                for hf in 0..2 {
                    let px = warp * 16 + (lane >> 2) + hf * 8;
                    let at = (r * s * cols + px * s) as isize;
                    let (y, x) = ((t.ty0 + r).min(pr.h - 1), (t.tx0 + px).min(pr.w - 1));
                    let b: Vec<f32> = (0..3).map(|c| image[(c * pr.h + y) * pr.w + x]).collect();
                    for j in 0..bn / 8 {
                        let v: Vec<f32> = (0..2)
                            .map(|e| {
                                let n = (t.n0 + j * 8 + (lane & 3) * 2 + e).min(cout - 1);
                                let v = regs[j * 4 + hf * 2 + e] + pr.p.bias[n];
                                let v = if v < 0.0 { v * pr.p.slope[n] } else { v };
                                (v + b[place(j, e).1]).clamp(0.0, 1.0)
                            })
                            .collect();
                        if pairs {
                            let o = (place(j, 0).0 + at) as usize;
                            st[o] = v[0];
                            st[o + 1] = v[1];
                        } else {
                            for e in 0..2 {
                                if place(j, e).0 >= 0 {
                                    st[(place(j, e).0 + at) as usize] = v[e];
                                }
                            }
                        }
                    }
                }
            }
        }
        // The copy, a quad of sub-columns at a time, each thread's (quad, sub-row, colour) carried as in the kernel.
        let qpr = cols / 4;
        let (drow, dq) = (128 / qpr, 128 % qpr);
        let mut visits = vec![0; 3 * srows * qpr];
        for wt in 0..128 {
            let (mut q, mut rr, mut c) = (wt % qpr, wt / qpr, 0);
            while rr >= srows {
                rr -= srows;
                c += 1;
            }
            while c < 3 {
                let (oy, ox) = (t.ty0 * s + rr, t.tx0 * s + 4 * q);
                visits[(c * srows + rr) * qpr + q] += 1;
                if oy < oh {
                    for e in 0..4 {
                        if ox + e < ow {
                            out[(c * oh + oy) * ow + ox + e] = st[(c * srows + rr) * cols + 4 * q + e];
                        }
                    }
                }
                q += dq;
                rr += drow;
                if q >= qpr {
                    q -= qpr;
                    rr += 1;
                }
                while rr >= srows {
                    rr -= srows;
                    c += 1;
                }
            }
        }
        assert!(visits.iter().all(|&v| v == 1), "every quad is copied once");
    });
    out
}

/// A value as the kernels hand it to the tensor cores: rounded to f16.
fn r16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

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

/// `stmatrix.sync.aligned.m8n8.x4.trans.shared.b16` over a warp: lane `l`'s register `q` holds row `l / 4`,
/// columns `2 (l % 4)` and `+1` of matrix `q` (low half first), stored transposed: as column `l / 4` of rows
/// `2 (l % 4)` and `+1`, at the row addresses lanes `8q .. 8q + 7` give.
fn stmatrix_trans(smem: &mut [u8], addrs: &[usize; 32], regs: &[[(u16, u16); 4]; 32]) {
    for (l, r) in regs.iter().enumerate() {
        for (q, &(lo, hi)) in r.iter().enumerate() {
            put16(smem, addrs[8 * q + 2 * (l % 4)] + (l / 4) * 2, lo);
            put16(smem, addrs[8 * q + 2 * (l % 4) + 1] + (l / 4) * 2, hi);
        }
    }
}

/// `conv_wgmma_wide.cu`, transcribed: resident weights as the A operand, each warpgroup's strip segments with
/// their ring of four input rows as B (row y + 2 copied after row y's MMAs), the output row staged by
/// `stmatrix.trans` into the spent slot of row y - 1 with the pixel XOR swizzle, then 16-byte NHWC stores.
fn emulate_wgmma_wide(pr: &Problem, groups: usize, npx: usize, blocks: usize, regs: bool) -> Vec<f32> {
    emulate_wgmma_wide_res(pr, groups, npx, blocks, regs, None)
}

/// One residual step `v = v * scale + r` of the wide kernel's store phase: r NHWC f16 bits, channels `stride`, the
/// slice at `off`.
struct Residual<'a> {
    r: &'a [u16],
    stride: usize,
    off: usize,
    scale: f32,
}

/// [`emulate_wgmma_wide`] with a residual step (`nres = 1`), applied to the staged f16 values as they are stored.
fn emulate_wgmma_wide_res(
    pr: &Problem,
    groups: usize,
    npx: usize,
    blocks: usize,
    regs: bool,
    res: Option<&Residual>,
) -> Vec<f32> {
    let (h, w, cout) = (pr.h, pr.w, pr.p.cout);
    let splane = (npx + 2) * 16;
    let slot = 8 * splane;
    let w_plane = 64 * 16;
    let w_bytes = if regs { 0 } else { 9 * 8 * 64 * 16 };
    // WRS: each thread's A fragments of the weights, [thread][tap][ks][register] as (low, high) halves.
    let wa: Vec<Vec<[[Reg; 4]; 4]>> = (0..if regs { 128 } else { 0 })
        .map(|tt| {
            let (warp, lane) = (tt / 32, tt % 32);
            (0..9)
                .map(|tap| {
                    let mut f = [[(0.0, 0.0); 4]; 4];
                    for (ks, regs) in f.iter_mut().enumerate() {
                        for (r, reg) in regs.iter_mut().enumerate() {
                            let m = warp * 16 + (lane >> 2) + 8 * (r & 1);
                            let k = tap * 64 + ks * 16 + 2 * (lane & 3) + 8 * (r >> 1);
                            let wv = |k: usize| pr.p.weight[k * pr.p.cout_pad + m].to_f32();
                            *reg = (wv(k), wv(k + 1));
                        }
                    }
                    f
                })
                .collect()
        })
        .collect();
    let staged = |p: usize, c: usize| p * 128 + ((c ^ (p & 7)) << 4);
    let ring_slot = |y: isize| y.rem_euclid(4) as usize;
    let workers = blocks * groups;
    let strips = w.div_ceil(npx);
    let per_strip = (workers / strips).max(1);
    let seg = h.div_ceil(per_strip);
    let items = strips * h.div_ceil(seg);
    let mut out = vec![f32::NAN; h * w * cout];
    for bx in 0..blocks {
        let mut smem = vec![0xAAu8; w_bytes + groups * 4 * slot];
        if !regs {
            wg_load_weights(pr, &mut smem, 0, 64);
        }
        let wdesc = smem_desc(0, w_plane, 128);
        for wg in 0..groups {
            let sr = w_bytes + wg * 4 * slot;
            let load_row = |smem: &mut Vec<u8>, y: isize, x0: usize| {
                let dst = sr + ring_slot(y) * slot;
                for wt in 0..128 {
                    for px in ((wt >> 3)..npx + 2).step_by(16) {
                        let mut tmp = [0u16; 8];
                        pr.copy_pixel(&mut tmp, 0, y, x0 as isize - 1 + px as isize, (wt & 7) * 8);
                        for (e, v) in tmp.into_iter().enumerate() {
                            put16(smem, dst + (wt & 7) * splane + px * 16 + e * 2, v);
                        }
                    }
                }
            };
            for item in (bx * groups + wg..items).step_by(workers) {
                let (x0, y0) = ((item % strips) * npx, (item / strips) * seg);
                let y1 = (y0 + seg).min(h);
                for y in [y0 as isize - 1, y0 as isize, y0 as isize + 1] {
                    load_row(&mut smem, y, x0);
                }
                for y in y0..y1 {
                    let yi = y as isize;
                    let mut acc = vec![vec![0.0f32; npx / 2]; 128];
                    for tap in 0..9 {
                        let rdesc = smem_desc(sr + ring_slot(yi - 1 + tap as isize / 3) * slot, splane, 128);
                        for ks in 0..4 {
                            let db = rdesc + (tap % 3 + ks * 2 * (splane / 16)) as u64;
                            if regs {
                                let a: Vec<[Reg; 4]> = wa.iter().map(|t| t[tap][ks]).collect();
                                wgmma_rs(&mut acc, &a, &smem, db, npx, (tap | ks) != 0);
                            } else {
                                let da = wdesc + ((tap * 8 + ks * 2) * (w_plane / 16)) as u64;
                                wgmma(&mut acc, &smem, da, db, npx, (tap | ks) != 0);
                            }
                        }
                    }
                    if y + 2 <= y1 {
                        load_row(&mut smem, yi + 2, x0);
                    }
                    let st = sr + ring_slot(yi - 1) * slot;
                    for warp in 0..4 {
                        let m0 = warp * 16;
                        for j in (0..npx / 8).step_by(2) {
                            let mut addrs = [0usize; 32];
                            let mut regs = [[(0u16, 0u16); 4]; 32];
                            for lane in 0..32 {
                                let a = &acc[warp * 32 + lane];
                                let m = m0 + (lane >> 2);
                                let act = |i: usize, n: usize| {
                                    let v = a[i] + pr.p.bias[n];
                                    f16::from_f32(if v < 0.0 { v * pr.p.slope[n] } else { v }).to_bits()
                                };
                                regs[lane] = [
                                    (act(j * 4, m), act(j * 4 + 1, m)),
                                    (act(j * 4 + 2, m + 8), act(j * 4 + 3, m + 8)),
                                    (act(j * 4 + 4, m), act(j * 4 + 5, m)),
                                    (act(j * 4 + 6, m + 8), act(j * 4 + 7, m + 8)),
                                ];
                                let q = lane >> 3;
                                let p = (j + (q >> 1)) * 8 + (lane & 7);
                                addrs[lane] = st + staged(p, warp * 2 + (q & 1));
                            }
                            stmatrix_trans(&mut smem, &addrs, &regs);
                        }
                    }
                    for wt in 0..128 {
                        for i in (wt..npx * 8).step_by(128) {
                            let (p, c) = (i >> 3, i & 7);
                            let x = x0 + p;
                            if x < w && c * 8 < cout {
                                for e in 0..8 {
                                    let mut v = get16(&smem, st + staged(p, c) + e * 2);
                                    if let Some(r) = res {
                                        let m = y * w + x;
                                        v = r16(v * r.scale
                                            + f16::from_bits(r.r[m * r.stride + r.off + c * 8 + e]).to_f32());
                                    }
                                    out[(y * w + x) * cout + c * 8 + e] = v;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// The wgmma kernels' output is f16: compares it with the expected values rounded the same way (one f16 step of
/// slack for the summation order).
fn check(pr: &Problem, got: Vec<f32>, what: &str) {
    let want: Vec<f32> = pr.expected().iter().map(|&v| f16::from_f32(v).to_f32()).collect();
    check_against(&got, &want, what);
}

/// Largest error relative to max(|want|, 1) is under 2e-3 (a missing value, NaN, fails).
fn check_against(got: &[f32], want: &[f32], what: &str) {
    let err = got
        .iter()
        .zip(want)
        .map(|(g, w)| if g.is_nan() { f32::INFINITY } else { (g - w).abs() / w.abs().max(1.0) })
        .fold(0.0, f32::max);
    assert!(err < 2e-3, "{what}: max error {err}");
}

#[test]
fn wgmma_wide_kernel_indexing_reproduces_the_conv() {
    // 5x70 in 64-pixel strips (the second one 6 pixels wide), 2 CTAs of 2 warpgroups: segments of 3 and 2 rows.
    let pr = Problem::new(5, 70, 0, 64, 64);
    check(&pr, emulate_wgmma_wide(&pr, 2, 64, 2, false), "wide g2 n64");
    check(&pr, emulate_wgmma_wide(&pr, 2, 64, 2, true), "wide g2 n64, weights in registers");
    // 128-pixel strips over 130 columns, one CTA of 2 warpgroups: one 4-row segment each, the ring wraps.
    let pr = Problem::new(4, 130, 0, 64, 64);
    check(&pr, emulate_wgmma_wide(&pr, 2, 128, 1, false), "wide g2 n128");
    // An upsampled input in one 256-pixel strip, three single-warpgroup CTAs: segments of 2 rows.
    let pr = Problem::new(6, 36, 1, 64, 64);
    check(&pr, emulate_wgmma_wide(&pr, 1, 256, 3, false), "wide g1 n256, upsampled");
    // A residual step (RRDB's trunk add, v = v * 0.5 + r here) on the staged f16 values, both weight placements.
    let pr = Problem::new(3, 70, 0, 64, 64);
    let (stride, off) = (80, 8);
    let r: Vec<u16> =
        (0..3 * 70 * stride).map(|i| f16::from_f32(((i * 31) % 97) as f32 / 97.0 - 0.5).to_bits()).collect();
    let res = Residual { r: &r, stride, off, scale: 0.5 };
    let want: Vec<f32> = pr
        .expected()
        .iter()
        .enumerate()
        .map(|(i, &v)| r16(r16(v) * 0.5 + h(r[(i / 64) * stride + off + i % 64])))
        .collect();
    for regs in [false, true] {
        let got = emulate_wgmma_wide_res(&pr, 2, 64, 1, regs, Some(&res));
        check_against(&got, &want, &format!("wide with a residual (weights in registers: {regs})"));
    }
}

#[test]
fn wgmma_kernel_indexing_reproduces_the_conv() {
    // 5x70: partial tiles both ways (3 tile rows of 2, 2 tile columns of 64); 2 CTAs of 2 warpgroups over 6 tiles,
    // so both patch buffers of a warpgroup are used.
    let pr = Problem::new(5, 70, 0, 64, 64);
    check(&pr, emulate_wgmma(&pr, 2, 2, 64, 2), "wgmma g2 r2");
    // 32 output channels in 2 N blocks, one warpgroup, single-row tiles, an upsampled input (RRDB's up convs).
    let pr = Problem::new(4, 66, 1, 64, 64);
    check(&pr, emulate_wgmma(&pr, 1, 1, 32, 3), "wgmma g1 r1 bn32, upsampled");
    // conv_wgmma_k: RRDB's widest dense conv (192 -> 32) in six 32-channel pieces; 96 -> 64 in two N blocks of
    // 32 with 2-row tiles; an upsampled 128-channel input in two 64-channel pieces.
    let pr = Problem::new(3, 70, 0, 192, 32);
    check(&pr, emulate_wgmma_k(&pr, 2, 1, 32, 32, 2), "wgmma_k 192 -> 32, k32");
    let pr = Problem::new(3, 66, 0, 96, 64);
    check(&pr, emulate_wgmma_k(&pr, 2, 2, 32, 32, 1), "wgmma_k 96 -> 64, k32, r2");
    let pr = Problem::new(4, 70, 1, 128, 32);
    check(&pr, emulate_wgmma_k(&pr, 3, 1, 64, 32, 2), "wgmma_k 128 -> 32, k64, upsampled");
}

#[test]
fn wgmma_tail_indexing_reproduces_shuffle_add_and_clamp() {
    use videoforge_backend_fused_cuda::graph::ShuffleMode;
    use videoforge_backend_fused_cuda::reference::shuffle_channel;
    // 3x70 (partial tiles both ways), both shuffle orders, at x4 (48 channels: whole-pair stores with CRD), x3 (27
    // channels padded to 32: the copy's quads carry across staged rows), x2 (12 channels padded to 16) and x1
    // (RRDB's 3-channel tail).
    for (cout, s) in [(48, 4), (27, 3), (12, 2), (3, 1)] {
        let pr = Problem::new(3, 70, 0, 64, cout);
        let (h, w) = (pr.h, pr.w);
        let image: Vec<f32> = (0..3 * h * w).map(|i| ((i * 37) % 101) as f32 / 101.0).collect();
        let conv = pr.expected();
        for (mode, crd) in [(ShuffleMode::Dcr, false), (ShuffleMode::Crd, true)] {
            let got = emulate_wgmma_tail(&pr, 2, s, crd, &image);
            let mut err = 0.0f32;
            for c in 0..3 {
                for oy in 0..h * s {
                    for ox in 0..w * s {
                        let n = shuffle_channel(mode, s, c, oy % s, ox % s);
                        let (y, x) = (oy / s, ox / s);
                        let want = (conv[(y * w + x) * cout + n] + image[(c * h + y) * w + x]).clamp(0.0, 1.0);
                        let g = got[(c * h * s + oy) * w * s + ox];
                        err = err.max(if g.is_nan() { f32::INFINITY } else { (g - want).abs() });
                    }
                }
            }
            assert!(err < 1e-4, "{cout} channels x{s} {mode:?}: max error {err}");
        }
    }
}

/// `unshuffle` of `common.cu`, transcribed: channel → (colour, dy, dx).
fn unshuffle(n: usize, r: usize, crd: bool) -> (usize, usize, usize) {
    if crd {
        let c = n / (r * r);
        let s = n - c * r * r;
        (c, s / r, s - (s / r) * r)
    } else {
        let s = n / 3;
        (n - s * 3, s / r, s - (s / r) * r)
    }
}

#[test]
fn tail_unshuffle_inverts_the_reference_shuffle() {
    use videoforge_backend_fused_cuda::graph::ShuffleMode;
    use videoforge_backend_fused_cuda::reference::shuffle_channel;
    for r in 1..=4 {
        for (mode, crd) in [(ShuffleMode::Crd, true), (ShuffleMode::Dcr, false)] {
            for n in 0..3 * r * r {
                let (c, dy, dx) = unshuffle(n, r, crd);
                assert_eq!(shuffle_channel(mode, r, c, dy, dx), n, "r {r} {mode:?} n {n}");
            }
        }
    }
}

/// `cubic_w` of `downscale.cu`, transcribed.
fn cubic_w(a: f32, t: f32) -> [f32; 4] {
    let (x0, x1, x2, x3) = (t + 1.0, t, 1.0 - t, 2.0 - t);
    [
        ((a * x0 - 5.0 * a) * x0 + 8.0 * a) * x0 - 4.0 * a,
        ((a + 2.0) * x1 - (a + 3.0)) * x1 * x1 + 1.0,
        ((a + 2.0) * x2 - (a + 3.0)) * x2 * x2 + 1.0,
        ((a * x3 - 5.0 * a) * x3 + 8.0 * a) * x3 - 4.0 * a,
    ]
}

#[test]
fn downscale_weights_match_the_reference() {
    for i in 0..=16 {
        let t = i as f32 / 16.0;
        let (k, r) = (cubic_w(-0.75, t), videoforge_backend_fused_cuda::reference::cubic_weights(-0.75, t));
        for j in 0..4 {
            assert!((k[j] - r[j]).abs() < 1e-6, "t {t}: {k:?} vs {r:?}");
        }
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
