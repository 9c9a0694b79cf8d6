//! `wgmma` with shared-memory operands (and A from registers), and `conv_wgmma.cu` and `conv_wgmma_k.cu`
//! transcribed over it.

use half::f16;

use videoforge_backend_fused_cuda::kernels::{Kernel, Wg};
use videoforge_backend_fused_cuda::pack::kernel_weights;

use crate::tail::unshuffle;
use crate::{check, h, Problem, Reg};

/// Shared memory as bytes, f16 values little-endian.
pub(crate) fn put16(smem: &mut [u8], at: usize, v: u16) {
    smem[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn get16(smem: &[u8], at: usize) -> f32 {
    h(u16::from_le_bytes([smem[at], smem[at + 1]]))
}

/// `smem_desc` of `conv_wgmma.cu`: start address, LBO and SBO in 16-byte units, no swizzle.
pub(crate) fn smem_desc(addr: usize, lbo: usize, sbo: usize) -> u64 {
    ((addr as u64 & 0x3FFFF) >> 4) | (((lbo as u64 >> 4) & 0x3FFF) << 16) | (((sbo as u64 >> 4) & 0x3FFF) << 32)
}

/// `wgmma.mma_async ... m64nNk16.f32.f16.f16` with both operands K-major from shared memory, no swizzle: element
/// (row, k) of an operand lies at start + (k / 8)·LBO + (row / 8)·SBO + (row % 8)·16 + (k % 8)·2 (the PTX ISA's
/// canonical layout, the one the H200 agreed with). D is handed out in the accumulator fragment layout: thread t of
/// the warpgroup holds, in register 4j + 2hf + e, row 16 (t / 32) + (t % 32) / 4 + 8 hf, column 8j + 2 (t % 4) + e.
pub(crate) fn wgmma(acc: &mut [Vec<f32>], smem: &[u8], da: u64, db: u64, n: usize, accumulate: bool) {
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
pub(crate) fn wgmma_rs(acc: &mut [Vec<f32>], a: &[[Reg; 4]], smem: &[u8], db: u64, n: usize, accumulate: bool) {
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
pub(crate) fn wg_load_weights(pr: &Problem, smem: &mut [u8], n0: usize, bn: usize) {
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
/// (rows + 2) x 66 patch into `dst`, in planes of `(rows + 2) · 66 · 16 + 16` bytes.
#[allow(clippy::too_many_arguments)]
fn wg_load_planes(pr: &Problem, smem: &mut [u8], dst: usize, np: usize, rows: usize, t: usize, c0: usize) {
    wg_load_patch(pr, smem, dst, np, rows, t, c0, false);
}

/// `swizzle_rows<np>` of `wgmma_common.cu`: a 16-byte chunk's offset in pixel rows of 16 np bytes.
pub(crate) fn swizzle_rows(np: usize, off: usize) -> usize {
    off ^ (((off >> 7) & (np - 1)) << 4)
}

/// `wg_load_planes<np, row_px>`, transcribed: with `pixel_rows` (ROW_PX 72), plane p of patch pixel (py, px)
/// lands at `dst + swizzle_rows((72 py + px) · 16 np + 16 p)` (as `conv_wgmma_k`'s TMA boxes land), else in planes.
#[allow(clippy::too_many_arguments)]
fn wg_load_patch(
    pr: &Problem,
    smem: &mut [u8],
    dst: usize,
    np: usize,
    rows: usize,
    t: usize,
    c0: usize,
    pixel_rows: bool,
) {
    let (tw, pw) = (64, 66);
    let plane = (rows + 2) * pw * 16 + 16;
    let tiles_x = pr.w.div_ceil(tw);
    let (ty0, tx0) = (((t / tiles_x) * rows) as isize - 1, ((t % tiles_x) * tw) as isize - 1);
    for wt in 0..128 {
        let (ch, px0) = (wt % np, wt / np);
        for py in 0..rows + 2 {
            for px in (px0..pw).step_by(128 / np) {
                let mut tmp = [0u16; 8];
                pr.copy_pixel(&mut tmp, 0, ty0 + py as isize, tx0 + px as isize, c0 + ch * 8);
                let at = if pixel_rows {
                    dst + swizzle_rows(np, (py * 72 + px) * np * 16 + ch * 16)
                } else {
                    dst + ch * plane + (py * pw + px) * 16
                };
                for (e, v) in tmp.into_iter().enumerate() {
                    put16(smem, at + e * 2, v);
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

/// `conv_wgmma_k.cu`, transcribed: resident weights for all input channels (copied from `kernel_weights`), each tile's patch streamed in
/// `chunk`-channel pieces through two buffers per warpgroup (the next piece, or the next tile's first, copied
/// after the current piece's MMAs are issued), the accumulators carried across a tile's pieces. With `arf` (ARF 1
/// or 2), A from registers: each patch row's fragment at each tap column loaded once (`ldmatrix.x4`) for every
/// output row that reads it, in steps of all three tap columns (1) or one (2), the next piece copied first.
#[allow(clippy::too_many_arguments)]
fn emulate_wgmma_k(
    pr: &Problem,
    groups: usize,
    rows: usize,
    chunk: usize,
    bn: usize,
    resident: usize,
    arf: u32,
) -> Vec<f32> {
    let (cin, cout_pad) = (pr.p.cin, pr.p.cout_pad);
    let (tw, pw, ch_n, nch) = (64, 66, chunk / 8, cin / chunk);
    let plane = (rows + 2) * pw * 16 + 16;
    // With A from registers: swizzled pixel rows of the chunk's channels, each buffer 1024-aligned.
    let row_bytes = chunk * 2;
    let buf_bytes = if arf > 0 { ((rows + 2) * 72 * row_bytes).div_ceil(1024) * 1024 } else { ch_n * plane };
    let w_plane = bn * 16;
    let w_bytes = 9 * (cin / 8) * w_plane;
    let tiles_x = pr.w.div_ceil(tw);
    let ntiles = tiles_x * pr.h.div_ceil(rows);
    let wg =
        Wg { groups: groups as u32, rows: rows as u32, chunk: chunk as u32, wide: 0, wide_regs: false, a_regs: arf };
    let image = kernel_weights(&Kernel::WgmmaK { wg, bn: bn as u32, cin: cin as u32 }, &pr.p);
    let mut out = vec![f32::NAN; pr.h * pr.w * pr.p.cout];
    for by in 0..cout_pad / bn {
        let n0 = by * bn;
        let blocks = ntiles.div_ceil(groups).min(resident);
        for bx in 0..blocks {
            let mut smem = vec![0xAAu8; w_bytes + groups * 2 * buf_bytes];
            // The CTA's block of the stored weights, copied as it is.
            for (i, &v) in image[by * w_bytes / 2..(by + 1) * w_bytes / 2].iter().enumerate() {
                put16(&mut smem, i * 2, v);
            }
            let wdesc = smem_desc(0, w_plane, 128);
            let nworkers = blocks * groups;
            for wg in 0..groups {
                let sb = w_bytes + wg * 2 * buf_bytes;
                let load_chunk = |smem: &mut Vec<u8>, stage: usize, t: usize, q: usize| {
                    wg_load_patch(pr, smem, sb + stage * buf_bytes, ch_n, rows, t, q * chunk, arf > 0)
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
                        let tn = if q + 1 < nch { t } else { t + nworkers };
                        // With A from registers the next chunk is copied into the other buffer before this one's
                        // fragments load; else after this one's MMAs.
                        if arf > 0 && tn < ntiles {
                            load_chunk(&mut smem, stage ^ 1, tn, (q + 1) % nch);
                        }
                        if arf > 0 {
                            // ldmatrix.x4: lane i's register j is row i / 4 (whose address lane 8 j + i / 4 gives:
                            // pixel 16 warp + 8 (j % 2) + i / 4, channels 8 (2 ks + j / 2) + [0, 8), swizzled as
                            // the kernel's per-thread table does), columns 2 (i % 4) and + 1.
                            let frag = |smem: &[u8], prow: usize, dx: usize, ks: usize| -> Vec<[Reg; 4]> {
                                (0..128)
                                    .map(|t| {
                                        let (warp, lane) = (t / 32, t % 32);
                                        std::array::from_fn(|j| {
                                            let l = 8 * j + lane / 4;
                                            let m = l >> 3;
                                            let p0 = p + (warp * 16 + (m & 1) * 8 + (l & 7)) * row_bytes;
                                            let swz = (((((l & 7) + dx) * row_bytes) >> 7) & (ch_n - 1)) << 4;
                                            let c = (2 * ks + (m >> 1)) << 4;
                                            let at = p0 + (prow * 72 + dx) * row_bytes + (c ^ swz) + (lane % 4) * 4;
                                            (get16(smem, at), get16(smem, at + 2))
                                        })
                                    })
                                    .collect()
                            };
                            // Steps of `adx` tap columns of one 16-channel slice.
                            let adx = if arf == 2 { 1 } else { 3 };
                            for ks in 0..chunk / 16 {
                                for dg in 0..3 / adx {
                                    for prow in 0..rows + 2 {
                                        for dx in dg * adx..(dg + 1) * adx {
                                            let fa = frag(&smem, prow, dx, ks);
                                            for (r, acc_r) in acc.iter_mut().enumerate() {
                                                let Some(dy) = prow.checked_sub(r).filter(|&d| d <= 2) else {
                                                    continue;
                                                };
                                                let tap = dy * 3 + dx;
                                                let db = wdesc
                                                    + ((tap * (cin / 8) + q * ch_n + ks * 2) * (w_plane / 16)) as u64;
                                                wgmma_rs(acc_r, &fa, &smem, db, bn, true);
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        let pdesc = smem_desc(p, plane, 128);
                        for (r, acc_r) in acc.iter_mut().enumerate().filter(|_| arf == 0) {
                            for tap in 0..9 {
                                for ks in 0..chunk / 16 {
                                    let da = pdesc + (((r + tap / 3) * pw + tap % 3) + ks * 2 * (plane / 16)) as u64;
                                    let db = wdesc + ((tap * (cin / 8) + q * ch_n + ks * 2) * (w_plane / 16)) as u64;
                                    wgmma(acc_r, &smem, da, db, bn, true);
                                }
                            }
                        }
                        if arf == 0 && tn < ntiles {
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
    check(&pr, emulate_wgmma_k(&pr, 2, 1, 32, 32, 2, 0), "wgmma_k 192 -> 32, k32");
    let pr = Problem::new(3, 66, 0, 96, 64);
    check(&pr, emulate_wgmma_k(&pr, 2, 2, 32, 32, 1, 0), "wgmma_k 96 -> 64, k32, r2");
    let pr = Problem::new(4, 70, 1, 128, 32);
    check(&pr, emulate_wgmma_k(&pr, 3, 1, 64, 32, 2, 0), "wgmma_k 128 -> 32, k64, upsampled");
    // A from registers: four-row tiles over 7 rows (a partial tile), 96 -> 32 in three pieces; 2-row tiles of
    // 128 -> 64 in two N blocks, upsampled; three-row tiles of 192 -> 32 loaded a tap column at a time; three
    // warpgroups of 2-row tiles of 64 -> 32.
    let pr = Problem::new(7, 70, 0, 96, 32);
    check(&pr, emulate_wgmma_k(&pr, 2, 4, 32, 32, 2, 1), "wgmma_k 96 -> 32, k32, r4, A from registers");
    let pr = Problem::new(4, 66, 1, 128, 64);
    check(&pr, emulate_wgmma_k(&pr, 2, 2, 32, 32, 1, 1), "wgmma_k 128 -> 64, k32, r2, A from registers");
    let pr = Problem::new(8, 70, 0, 192, 32);
    check(&pr, emulate_wgmma_k(&pr, 2, 3, 32, 32, 1, 2), "wgmma_k 192 -> 32, k32, r3, A a tap column at a time");
    let pr = Problem::new(6, 130, 1, 64, 32);
    check(&pr, emulate_wgmma_k(&pr, 3, 2, 32, 32, 1, 2), "wgmma_k 64 -> 32, g3, r2, A a tap column at a time");
}

#[test]
fn swizzled_pixel_rows_give_conflict_free_ldmatrix_phases() {
    // An ldmatrix phase reads one 16-byte chunk of 8 consecutive patch pixels (the first a multiple of 8, then the
    // tap column's shift, the patch row's 72 pixels): all 8 must fall in distinct 16-byte bank groups.
    for np in [2, 4, 8] {
        for (pr, dx, c) in (0..6).flat_map(|pr| (0..3).flat_map(move |dx| (0..np).map(move |c| (pr, dx, c)))) {
            for base in [0, 8, 16, 56] {
                let mut groups: Vec<usize> =
                    (0..8).map(|i| swizzle_rows(np, (base + i + pr * 72 + dx) * np * 16 + c * 16) / 16 % 8).collect();
                groups.sort();
                groups.dedup();
                assert_eq!(groups.len(), 8, "np {np}, row {pr}, dx {dx}, chunk {c}");
            }
        }
    }
}

#[test]
fn stored_wgmma_k_weights_are_the_shared_memory_layout() {
    // Each BN block of conv_wgmma_k's stored weights is what conv_wgmma's transposing loader builds in shared
    // memory for that block (192 -> 64 in two blocks of 32; 96 -> 32 in one).
    for (cin, cout, bn) in [(192, 64, 32), (96, 32, 32), (128, 64, 64)] {
        let pr = Problem::new(1, 1, 0, cin, cout);
        let wg = Wg { groups: 2, rows: 3, chunk: 32, wide: 0, wide_regs: false, a_regs: 1 };
        let image = kernel_weights(&Kernel::WgmmaK { wg, bn: bn as u32, cin: cin as u32 }, &pr.p);
        assert_eq!(image.len(), pr.p.weight.len());
        let w_bytes = 9 * (cin / 8) * bn * 16;
        for by in 0..cout / bn {
            let mut smem = vec![0u8; w_bytes];
            wg_load_weights(&pr, &mut smem, by * bn, bn);
            let block: Vec<u8> =
                image[by * w_bytes / 2..(by + 1) * w_bytes / 2].iter().flat_map(|v| v.to_le_bytes()).collect();
            assert!(block == smem, "{cin} -> {cout}, block {by} of {bn}");
        }
    }
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
