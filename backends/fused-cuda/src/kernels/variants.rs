//! Which variants exist beyond a network's own: the tiles the sweep example times, and the variants CI compiles
//! for each SM (every table shape, and on sm_90 the sweep's).

use super::{conv_smem, halo_smem, tile_for, tile_for_sm, wgmma_smem, wgmma_wide_smem, Kernel, Tile, Wg, MAX_SMEM};

/// The configurations the sweep example times (each one valid for a 64 -> 64 conv).
pub fn sweep_tiles() -> Vec<Tile> {
    let mut v = Vec::new();
    for bm in [64, 128, 256] {
        for (warps_m, warps_n) in [(2, 2), (4, 2), (8, 1)] {
            for kc in [32, 64] {
                for stages in [3, 4] {
                    let t = Tile { bm, warps_m, warps_n, kc, stages, halo: false, wgmma: None, tc_head: false };
                    if t.bm % (16 * t.warps_m) == 0 && conv_smem(t, 64) <= MAX_SMEM && t.bm / t.warps_m <= 64 {
                        v.push(t);
                    }
                }
            }
        }
    }
    for bm in [64, 128, 256] {
        for (warps_m, warps_n) in [(2, 2), (4, 2), (8, 1)] {
            let t = Tile { bm, warps_m, warps_n, kc: 64, stages: 2, halo: true, wgmma: None, tc_head: false };
            if t.bm % (16 * t.warps_m) == 0 && halo_smem(t, 64, 64) <= MAX_SMEM && t.bm / t.warps_m <= 64 {
                v.push(t);
            }
        }
    }
    let base = Tile { wgmma: None, tc_head: false, ..tile_for_sm(90) };
    for (groups, rows) in [(1, 2), (1, 4), (2, 1), (2, 2), (3, 1)] {
        let wg = Wg { groups, rows, chunk: 0, wide: 0, wide_regs: false, a_regs: 0 };
        if wgmma_smem(wg, 64, 64) <= MAX_SMEM {
            v.push(Tile { wgmma: Some(wg), ..base });
        }
    }
    // The table's shape with RRDB's wide convs on conv_wgmma_k (not measured yet: the sweep times them first).
    for (groups, rows, chunk) in [(2, 1, 32), (2, 1, 64), (3, 1, 32)] {
        v.push(Tile { wgmma: Some(Wg { groups, rows, chunk, wide: 0, wide_regs: false, a_regs: 0 }), ..base });
    }
    // RRDB's dense convs with A from registers, each patch row's fragments serving the rows that read it, the
    // 64 -> 64 convs on conv_wgmma_wide: fragments loaded a 16-channel slice at a time (1) or a tap column at a
    // time (2, fewer registers). 3 rows: a 270p conv is 720 tiles, 2.7 waves of 264 warpgroups; 2 rows: 4.1.
    // (Four rows, or three warpgroups, leave no room for 192 -> 32's padded pixel rows.)
    for (groups, rows, a_regs) in [(2, 2, 1), (2, 3, 1), (2, 2, 2), (2, 3, 2)] {
        v.push(Tile { wgmma: Some(Wg { groups, rows, chunk: 32, wide: 128, wide_regs: false, a_regs }), ..base });
    }
    // The table's shape with the 64 -> 64 layers on conv_wgmma_wide (not measured yet), and other widths.
    for (groups, wide) in [(2, 128), (1, 256), (2, 64), (3, 64)] {
        if wgmma_wide_smem(groups, wide, false) <= MAX_SMEM {
            v.push(Tile { wgmma: Some(Wg { groups, rows: 2, chunk: 0, wide, wide_regs: false, a_regs: 0 }), ..base });
        }
    }
    // The weights in registers: two warpgroups of 254 registers a thread (64-pixel rows; at 128 ptxas spills).
    v.push(Tile { wgmma: Some(Wg { groups: 2, rows: 2, chunk: 0, wide: 64, wide_regs: true, a_regs: 0 }), ..base });
    // Both for RRDB: its wide dense convs chunked, its 64 -> 64 convs on conv_wgmma_wide.
    v.push(Tile { wgmma: Some(Wg { groups: 2, rows: 1, chunk: 32, wide: 128, wide_regs: false, a_regs: 0 }), ..base });
    // The head on tensor cores, with conv_wgmma and with the wide convs (the sm_90 table).
    v.push(Tile {
        wgmma: Some(Wg { groups: 2, rows: 2, chunk: 0, wide: 0, wide_regs: false, a_regs: 0 }),
        tc_head: true,
        ..base
    });
    let wide = Wg { groups: 2, rows: 2, chunk: 0, wide: 128, wide_regs: false, a_regs: 0 };
    v.push(Tile { wgmma: Some(wide), tc_head: true, ..base });
    v
}

/// Every variant CI compiles for an SM: the SM's table configuration for each layer shape of the shipped models
/// (64 -> 64, the dense block's 64..192 -> 32 and 192 -> 64, the tails to 48 and 3 channels), halo and streaming
/// alike, 1x1 convs, both heads and the downscale for both IO types, and on sm_90 (where the sweep runs) the whole
/// sweep list with the tails its wgmma tiles take.
pub fn ci_variants(sm: u32) -> Vec<Kernel> {
    let mut v = table_variants(sm);
    // Both heads on every SM, whichever the table picks.
    for io_f16 in [false, true] {
        for mma in [false, true] {
            v.push(Kernel::Head { io_f16, mma });
        }
    }
    if sm >= 90 {
        for s in sweep_tiles() {
            // The 64 -> 64 layer every tile is timed on, and RRDB's wide dense convs for the chunked ones.
            let shapes = if s.wgmma.is_some_and(|w| w.chunk > 0) {
                &[(64, 64), (96, 32), (128, 32), (160, 32), (192, 32), (192, 64)][..]
            } else {
                &[(64, 64)][..]
            };
            v.extend(shapes.iter().filter_map(|&(cin, cout)| Kernel::for_layer(sm, s, cin, cout, 3, false, false)));
            // The tails the sweep's whole-model runs take with a wgmma tile (48 channels: x2/x4; 16: RRDB), so
            // the carried kernel cache spares the device their compiles.
            if s.wgmma.is_some() {
                let tails = [(48, false), (48, true), (16, false), (16, true)];
                v.extend(
                    tails.iter().filter_map(|&(cout, io_f16)| Kernel::for_layer(sm, s, 64, cout, 3, true, io_f16)),
                );
            }
        }
    }
    // Each distinct source once, in first-seen order: repeats of a kernel, and tiles that differ only in what a
    // kernel does not compile in (a wgmma tail's chunk or width), give the same code.
    let mut seen = std::collections::HashSet::new();
    v.retain(|k| seen.insert((k.name(), k.source())));
    v
}

/// The variants the shipped models' shapes need on an SM with its table configurations, the plain one and the
/// dense networks' (see [`ci_variants`]).
pub fn table_variants(sm: u32) -> Vec<Kernel> {
    let mut v = Vec::new();
    let mut push = |k: Option<Kernel>| {
        if let Some(k) = k {
            if !v.contains(&k) {
                v.push(k);
            }
        }
    };
    for t in [tile_for(sm, false), tile_for(sm, true)] {
        let no_halo = Tile { halo: false, wgmma: None, ..t };
        for cin in [64, 96, 128, 160, 192] {
            for cout in [32, 64] {
                push(Kernel::for_layer(sm, t, cin, cout, 3, false, false));
                push(Kernel::conv(no_halo, cin, cout, 3, false, false));
            }
        }
        push(Kernel::for_layer(sm, t, 64, 64, 1, false, false));
        for io_f16 in [false, true] {
            for cout in [48, 16] {
                push(Kernel::for_layer(sm, t, 64, cout, 3, true, io_f16));
                push(Kernel::conv(no_halo, 64, cout, 3, true, io_f16));
            }
            push(Some(Kernel::Head { io_f16, mma: t.tc_head }));
            push(Some(Kernel::Downscale { io_f16 }));
        }
    }
    v
}
