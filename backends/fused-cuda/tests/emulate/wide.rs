//! `stmatrix.trans`, and `conv_wgmma_wide.cu` transcribed over it and the `wgmma` emulation.

use half::f16;

use crate::wgmma::{get16, put16, smem_desc, wg_load_weights, wgmma, wgmma_rs};
use crate::{check, check_against, h, r16, Problem, Reg};

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
