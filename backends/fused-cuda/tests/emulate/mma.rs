//! `ldmatrix` and `mma.sync`, and the two mma.sync convs transcribed over them: `conv_halo.cu` and `conv_mma.cu`.

use crate::{h, max_err, Problem, Reg};

/// `ldmatrix.x4` (optionally `.trans`): lane `8j + r` gives the address of row `r` of matrix `j`; lane `i` gets, in
/// register `j`, row `i / 4`, columns `2 (i % 4)` and `+1` of matrix `j` (transposed: column `i / 4`, rows `2 (i % 4)`
/// and `+1`).
pub(crate) fn ldmatrix(smem: &[u16], addrs: &[usize; 32], trans: bool) -> [[Reg; 4]; 32] {
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
pub(crate) fn mma(acc: &mut [[f32; 4]; 32], a: &[[Reg; 4]; 32], b: &[[Reg; 2]; 32]) {
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

/// Loads a B fragment pair like the kernels: `ldmatrix.x4.trans` at rows `krow0 + (lane & 15)`, columns
/// `ncol0 + (lane >> 4) * 8` of a `[rows][bs]` tile.
pub(crate) fn load_b(
    smem: &[u16],
    base: usize,
    bs: usize,
    krow0: usize,
    ncol0: usize,
) -> ([[Reg; 2]; 32], [[Reg; 2]; 32]) {
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
