//! The CUDA C kernel sources (embedded) and their variants: tile configurations per SM and the exact set of
//! variants a network needs (the sweep's list and what CI compiles: `variants`). Parameters are `#define`s
//! prepended to the source, so a variant's source text (and its cache key) says everything about it.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

pub mod variants;

const COMMON: &str = include_str!("common.cu");
const CONV_COMMON: &str = include_str!("conv_common.cu");
const CONV: &str = include_str!("conv_mma.cu");
const HALO: &str = include_str!("conv_halo.cu");
const WGMMA_COMMON: &str = include_str!("wgmma_common.cu");
const WGMMA: &str = include_str!("conv_wgmma.cu");
const WGMMA_K: &str = include_str!("conv_wgmma_k.cu");
const WGMMA_WIDE: &str = include_str!("conv_wgmma_wide.cu");
const HEAD: &str = include_str!("head.cu");
const DOWN: &str = include_str!("downscale.cu");

/// The first 16 hex digits of SHA-256 over every kernel source: part of the engine fingerprint, so changed kernels
/// redo finished files.
pub fn sources_hash() -> String {
    let all = [COMMON, CONV_COMMON, CONV, HALO, WGMMA_COMMON, WGMMA, WGMMA_K, WGMMA_WIDE, HEAD, DOWN].join("\0");
    source_hash(&all, &[])[..16].to_string()
}

/// SHA-256 of a kernel's source and compile options, hex: the cache key of its CUBIN.
pub fn source_hash(source: &str, options: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    for o in options {
        h.update([0u8]);
        h.update(o.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Largest dynamic shared memory a CTA may ask for on any SM we target (sm_90's 227 KB).
pub const MAX_SMEM: u32 = 227 * 1024;

/// Largest dynamic shared memory a CTA may ask for on an SM (the opt-in limit).
pub fn max_smem(sm: u32) -> u32 {
    match sm {
        80 | 87 => 163 * 1024,
        90.. => MAX_SMEM,
        _ => 99 * 1024,
    }
}

/// A conv tile configuration: pixels per CTA (`bm`), warps along M and N, input channels per pipeline stage
/// (`kc`), pipeline depth; `halo` prefers the resident-weight halo-tile kernel where its shared memory fits (then
/// `kc` and `stages` are unused: it takes all input channels at once, double-buffered); `wgmma` prefers the
/// Hopper warpgroup-MMA conv for the 3x3 layers it takes (sm_90 only), the other fields then serve the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tile {
    /// Output pixels per CTA.
    pub bm: u32,
    /// Warps along the pixels.
    pub warps_m: u32,
    /// Warps along the output channels.
    pub warps_n: u32,
    /// Input channels per K step.
    pub kc: u32,
    /// cp.async pipeline stages.
    pub stages: u32,
    /// Prefer `conv_halo`.
    pub halo: bool,
    /// Prefer `conv_wgmma` with this shape.
    pub wgmma: Option<Wg>,
    /// The head on tensor cores (`head_mma` in `head.cu`) where it has at most 64 output channels; else
    /// `head_conv` on CUDA cores.
    pub tc_head: bool,
}

/// The shape of a `conv_wgmma` CTA: warpgroups, each walking its own tiles of `rows` output rows x 64 pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Wg {
    /// Warpgroups (128 threads each) per CTA.
    pub groups: u32,
    /// Output rows per warpgroup tile.
    pub rows: u32,
    /// Input channels per streamed patch chunk for the layers with more than 64 (`conv_wgmma_k`); 0: those layers
    /// stay on the mma.sync kernels.
    pub chunk: u32,
    /// Pixels per MMA (64, 128 or 256) of `conv_wgmma_wide` for the 64 -> 64 layers (weights as the M operand, a
    /// row of pixels as N); 0: those layers stay on `conv_wgmma`.
    pub wide: u32,
    /// `conv_wgmma_wide` keeps the weights in registers (wgmma's A from registers) instead of shared memory.
    pub wide_regs: bool,
    /// `conv_wgmma_k` loads each patch row's A fragments into registers once for the output rows that read it,
    /// instead of every MMA reading its A from shared memory (0). They load in steps while the previous steps'
    /// MMAs run: 1, a 16-channel slice at all three tap columns (two register sets); 2, at one tap column (three
    /// smaller sets).
    pub a_regs: u32,
}

impl std::fmt::Display for Tile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(wg) = self.wgmma {
            write!(f, "wgmma_g{}_r{}", wg.groups, wg.rows)?;
            if wg.chunk > 0 {
                write!(f, "_k{}{}", wg.chunk, a_suffix(wg.a_regs))?;
            }
            if wg.wide > 0 {
                write!(f, "_w{}{}", wg.wide, if wg.wide_regs { "r" } else { "" })?;
            }
        } else if self.halo {
            write!(f, "halo_bm{}_w{}x{}", self.bm, self.warps_m, self.warps_n)?;
        } else {
            write!(f, "bm{}_w{}x{}_kc{}_s{}", self.bm, self.warps_m, self.warps_n, self.kc, self.stages)?;
        }
        if self.tc_head {
            write!(f, "_th")?;
        }
        Ok(())
    }
}

/// The name suffix of a chunked tile's A operand (see [`Wg::a_regs`]).
fn a_suffix(a_regs: u32) -> &'static str {
    match a_regs {
        0 => "",
        1 => "a",
        _ => "t",
    }
}

/// The tuned configuration for an SM (8.0, 8.6, 8.9, 9.0; others take the nearest lower row).
pub fn tile_for_sm(sm: u32) -> Tile {
    match sm {
        0..=85 => Tile { bm: 128, warps_m: 4, warps_n: 2, kc: 32, stages: 4, halo: true, wgmma: None, tc_head: false },
        86..=88 => Tile { bm: 64, warps_m: 2, warps_n: 2, kc: 32, stages: 3, halo: true, wgmma: None, tc_head: false },
        89 => Tile { bm: 128, warps_m: 4, warps_n: 2, kc: 32, stages: 3, halo: true, wgmma: None, tc_head: false },
        // Hopper: the 64 -> 64 layers on conv_wgmma_wide (128-pixel rows), the tail on conv_wgmma, the head on
        // tensor cores, halo_bm64_w4x2 (the fastest mma.sync configuration on the H200) for the rest: the
        // fastest whole x2 model in the sweep (bench/RESULTS.md).
        90 => Tile {
            bm: 64,
            warps_m: 4,
            warps_n: 2,
            kc: 64,
            stages: 4,
            halo: true,
            wgmma: Some(Wg { groups: 2, rows: 2, chunk: 0, wide: 128, wide_regs: false, a_regs: 0 }),
            tc_head: true,
        },
        _ => Tile { bm: 64, warps_m: 4, warps_n: 2, kc: 64, stages: 4, halo: true, wgmma: None, tc_head: false },
    }
}

/// The tuned configuration for a network on an SM: `dense` networks (convs of more than 64 input channels, RRDBNet's
/// dense blocks) take, on Hopper, their 3x3 convs other than 64 -> 64 on `conv_wgmma_k` with A from registers and
/// the patch chunks copied with TMA (two warpgroups of 3-row tiles: the fastest whole realesrgan-x4plus on the
/// H200) and the 64 -> 64 ones on `conv_wgmma_wide` (bench/RESULTS.md); every other network takes [`tile_for_sm`].
pub fn tile_for(sm: u32, dense: bool) -> Tile {
    let t = tile_for_sm(sm);
    if dense && sm >= 90 {
        let wg = Wg { groups: 2, rows: 3, chunk: 32, wide: 128, wide_regs: false, a_regs: 1 };
        return Tile { wgmma: Some(wg), tc_head: false, ..t };
    }
    t
}

/// Bytes of one warpgroup patch buffer of `planes` 8-channel planes: (rows + 2) x 66 pixels of 16 bytes a plane,
/// each plane padded by 16 bytes (see `conv_wgmma.cu`).
fn wg_buffer(rows: u32, planes: u32) -> u32 {
    planes * ((rows + 2) * 66 * 16 + 16)
}

/// Dynamic shared memory of a wgmma variant: resident weights and two input patches per warpgroup.
pub fn wgmma_smem(wg: Wg, cin: u32, bn: u32) -> u32 {
    9 * (cin / 8) * bn * 16 + wg.groups * 2 * wg_buffer(wg.rows, cin / 8)
}

/// Bytes of one `conv_wgmma_k` patch chunk buffer: 8-channel planes, or with A from registers pixel rows of the
/// chunk's channels, patch rows 72 pixels apart, 1024-aligned (see `conv_wgmma_k.cu`).
fn wgmma_k_buffer(wg: Wg) -> u32 {
    if wg.a_regs > 0 {
        ((wg.rows + 2) * 72 * wg.chunk * 2).div_ceil(1024) * 1024
    } else {
        wg_buffer(wg.rows, wg.chunk / 8)
    }
}

/// Dynamic shared memory of a chunked wgmma variant: resident weights and two `chunk`-channel patch buffers per
/// warpgroup (see `conv_wgmma_k.cu`); with A from registers also 1 KB to align them and their two mbarriers.
pub fn wgmma_k_smem(wg: Wg, cin: u32, bn: u32) -> u32 {
    let tma = if wg.a_regs > 0 { 1024 + 16 * wg.groups } else { 0 };
    9 * (cin / 8) * bn * 16 + wg.groups * 2 * wgmma_k_buffer(wg) + tma
}

/// Dynamic shared memory of a `conv_wgmma_wide` variant: resident 64 -> 64 weights (unless they are in registers)
/// and, per warpgroup, a ring of four input rows of `npx + 2` pixels x 64 channels.
pub fn wgmma_wide_smem(groups: u32, npx: u32, regs: bool) -> u32 {
    let weights = if regs { 0 } else { 9 * 8 * 64 * 16 };
    weights + groups * 4 * 8 * (npx + 2) * 16
}

/// Dynamic shared memory of a halo variant: resident weights and two input patches.
pub fn halo_smem(t: Tile, cin: u32, bn: u32) -> u32 {
    let patch = (t.bm / 16 + 2) * 18;
    (9 * cin * (bn + 8) + 2 * patch * (cin + 8)) * 2
}

/// Dynamic shared memory of a conv variant.
pub fn conv_smem(t: Tile, bn: u32) -> u32 {
    t.stages * (t.bm * (t.kc + 8) + t.kc * (bn + 8)) * 2
}

/// One compiled unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// The tensor-core conv (`conv_mma.cu`).
    Conv {
        /// Tile configuration (warps_n already fitted to `bn`).
        tile: Tile,
        /// Output channels per CTA.
        bn: u32,
        /// Kernel size (1 or 3).
        ksize: u32,
        /// Tail epilogue (pixel shuffle, input add, clamp, planar store) instead of an NHWC slice store.
        tail: bool,
        /// The model's IO is f16 (matters for the tail's reads of the input and its final store).
        io_f16: bool,
    },
    /// The resident-weight halo-tile conv (`conv_halo.cu`), 3x3 only, persistent CTAs.
    Halo {
        /// Tile configuration (`kc`, `stages` unused).
        tile: Tile,
        /// Output channels per CTA.
        bn: u32,
        /// Input channels (all resident).
        cin: u32,
        /// Tail epilogue.
        tail: bool,
        /// IO is f16 (tail only).
        io_f16: bool,
    },
    /// The Hopper warpgroup-MMA conv (`conv_wgmma.cu`), 3x3, 64 input channels, persistent CTAs; sm_90a.
    Wgmma {
        /// CTA shape.
        wg: Wg,
        /// Output channels per CTA (16, 32, 48 or 64).
        bn: u32,
        /// Input channels (all resident).
        cin: u32,
        /// Tail epilogue.
        tail: bool,
        /// IO is f16 (tail only).
        io_f16: bool,
    },
    /// The Hopper warpgroup-MMA conv with the patch streamed in `kch`-channel chunks (`conv_wgmma_k.cu`), 3x3,
    /// NHWC output; sm_90a.
    WgmmaK {
        /// CTA shape.
        wg: Wg,
        /// Output channels per CTA (32 or 64).
        bn: u32,
        /// Input channels (the weights are resident).
        cin: u32,
    },
    /// The Hopper warpgroup-MMA conv with the weights as M and rows of `npx` pixels as N
    /// (`conv_wgmma_wide.cu`), 3x3, 64 -> 64 channels, NHWC output; sm_90a.
    WgmmaWide {
        /// Warpgroups (128 threads each) per CTA.
        groups: u32,
        /// Pixels per MMA row (64, 128 or 256; 64 with `regs`).
        npx: u32,
        /// The weights in registers (wgmma's A from registers).
        regs: bool,
    },
    /// The fused head (`head.cu`).
    Head {
        /// IO is f16.
        io_f16: bool,
        /// `head_mma` (tensor cores, at most 64 output channels) instead of `head_conv`.
        mma: bool,
    },
    /// The final bicubic resize (`downscale.cu`).
    Downscale {
        /// IO is f16.
        io_f16: bool,
    },
}

impl Kernel {
    /// The conv variant for a layer shape, or None when the shape does not fit the kernel (channels not a
    /// multiple of 16).
    pub fn conv(tile: Tile, cin: u32, cout_pad: u32, ksize: u32, tail: bool, io_f16: bool) -> Option<Kernel> {
        if cin % 16 != 0 || cout_pad % 16 != 0 {
            return None;
        }
        let kc = [tile.kc, 64, 32, 16].into_iter().find(|&kc| kc <= tile.kc && cin % kc == 0)?;
        let bn = if cout_pad <= 64 { cout_pad } else { [64, 32, 16].into_iter().find(|b| cout_pad % b == 0)? };
        let mut warps_n = tile.warps_n;
        while warps_n > 1 && bn % (16 * warps_n) != 0 {
            warps_n /= 2;
        }
        let tile = Tile { kc, warps_n, halo: false, wgmma: None, tc_head: false, ..tile };
        // The IO type only matters to the tail's epilogue: one NHWC variant serves both.
        Some(Kernel::Conv { tile, bn, ksize, tail, io_f16: io_f16 && tail })
    }

    /// The variant for a layer on an SM: the halo kernel when the tile asks for it and it fits the SM's shared
    /// memory, else the streaming conv.
    pub fn for_layer(
        sm: u32,
        tile: Tile,
        cin: u32,
        cout_pad: u32,
        ksize: u32,
        tail: bool,
        io_f16: bool,
    ) -> Option<Kernel> {
        let Kernel::Conv { tile: t, bn, .. } = Kernel::conv(tile, cin, cout_pad, ksize, tail, io_f16)? else {
            return None;
        };
        if let Some(wg) = tile.wgmma.filter(|w| w.wide > 0) {
            let npx_ok = if wg.wide_regs { wg.wide == 64 } else { matches!(wg.wide, 64 | 128 | 256) };
            let fits = wgmma_wide_smem(wg.groups, wg.wide, wg.wide_regs) <= max_smem(sm) && npx_ok;
            if sm == 90 && ksize == 3 && cin == 64 && cout_pad == 64 && !tail && fits {
                return Some(Kernel::WgmmaWide { groups: wg.groups, npx: wg.wide, regs: wg.wide_regs });
            }
        }
        // The chunked kernel takes the convs wider than 64 input channels and, with A from registers, every other
        // 3x3 conv the wide kernel does not (RRDB's 64 -> 32 dense convs: N = 32 is where A's reads dominate).
        let chunked = |wg: Wg| -> Option<Kernel> {
            if wg.chunk == 0
                || cin % wg.chunk != 0
                || (cin <= 64 && wg.a_regs == 0)
                || (sm, ksize, tail) != (90, 3, false)
            {
                return None;
            }
            // Two CTAs along N when all 64 output channels' weights would not leave room for the patch chunks.
            let fits = |bn: u32| {
                wgmma_k_smem(wg, cin, bn) <= max_smem(sm) && wg.rows * 64 * (bn * 2 + 16) <= wgmma_k_buffer(wg)
            };
            let bn = [bn, 32].into_iter().find(|&b| matches!(b, 32 | 64) && bn % b == 0 && fits(b))?;
            Some(Kernel::WgmmaK { wg, bn, cin })
        };
        if let Some(k) = tile.wgmma.filter(|w| w.a_regs > 0).and_then(chunked) {
            return Some(k);
        }
        if let Some(wg) = tile.wgmma {
            let fits = wgmma_smem(wg, cin, bn) <= max_smem(sm) && cin == 64 && matches!(bn, 16 | 32 | 48 | 64);
            // The tail stages its f32 outputs in a patch buffer.
            let staged = !tail || wg.rows * 64 * bn * 4 <= wg_buffer(wg.rows, cin / 8);
            if sm == 90 && ksize == 3 && fits && staged {
                return Some(Kernel::Wgmma { wg, bn, cin, tail, io_f16: io_f16 && tail });
            }
        }
        if let Some(k) = tile.wgmma.and_then(chunked) {
            return Some(k);
        }
        if tile.halo && ksize == 3 && halo_smem(tile, cin, bn) <= max_smem(sm) {
            let tile = Tile { halo: true, wgmma: None, tc_head: false, kc: 0, stages: 2, ..t };
            return Some(Kernel::Halo { tile, bn, cin, tail, io_f16: io_f16 && tail });
        }
        Kernel::conv(tile, cin, cout_pad, ksize, tail, io_f16)
    }

    /// Launch grid for a conv over `h × w` output pixels (`resident`: CTAs the device holds at once, for the
    /// persistent halo kernel).
    pub fn grid(&self, h: usize, w: usize, cout_pad: usize, resident: u32) -> (u32, u32) {
        match self {
            Kernel::Conv { tile, bn, .. } => ((h * w).div_ceil(tile.bm as usize) as u32, cout_pad as u32 / bn),
            Kernel::Halo { tile, bn, .. } => {
                let tiles = (w.div_ceil(16) * h.div_ceil(tile.bm as usize / 16)) as u32;
                (tiles.min(resident.max(1)), cout_pad as u32 / bn)
            }
            // Persistent CTAs: every N block's at once (one wave: both halves of a 64-channel output read the same
            // patches while they are in L2, and no second wave repeats the first one's ramp and tail).
            Kernel::Wgmma { wg, bn, .. } | Kernel::WgmmaK { wg, bn, .. } => {
                let tiles = (w.div_ceil(64) * h.div_ceil(wg.rows as usize)) as u32;
                let ny = cout_pad as u32 / bn;
                (tiles.div_ceil(wg.groups).min((resident / ny).max(1)), ny)
            }
            // Every resident warpgroup takes one strip segment (the kernel sizes them from the grid), at least one
            // output row each.
            Kernel::WgmmaWide { groups, npx, .. } => {
                let rows = (w.div_ceil(*npx as usize) * h) as u32;
                (rows.div_ceil(*groups).min(resident.max(1)), 1)
            }
            // head_mma: 16-pixel row tiles, a warp about four of them.
            Kernel::Head { mma: true, .. } => ((h * w.div_ceil(16)).div_ceil(16) as u32, 1),
            Kernel::Head { .. } => ((h * w).div_ceil(256) as u32, 1),
            Kernel::Downscale { .. } => ((h * w).div_ceil(256) as u32, 1),
        }
    }

    /// The box [channels, pixels, rows] a kernel copies its input patches in with TMA (`conv_wgmma_k` with A from
    /// registers: one patch row of a chunk), which `driver::nhwc_tensor_map` describes; None for the others.
    pub fn tma_box(&self) -> Option<[u32; 3]> {
        match self {
            Kernel::WgmmaK { wg, .. } if wg.a_regs > 0 => Some([wg.chunk, 66, 1]),
            _ => None,
        }
    }

    /// Whether the kernel uses Hopper-only instructions: compiled for `sm_90a`, which runs on sm_90 devices only.
    pub fn arch_specific(&self) -> bool {
        matches!(self, Kernel::Wgmma { .. } | Kernel::WgmmaK { .. } | Kernel::WgmmaWide { .. })
    }

    /// The `extern "C"` entry point.
    pub fn entry(&self) -> &'static str {
        match self {
            Kernel::Conv { .. } => "conv_mma",
            Kernel::Halo { .. } => "conv_halo",
            Kernel::Wgmma { .. } => "conv_wgmma",
            Kernel::WgmmaK { .. } => "conv_wgmma_k",
            Kernel::WgmmaWide { .. } => "conv_wgmma_wide",
            Kernel::Head { mma: true, .. } => "head_mma",
            Kernel::Head { .. } => "head_conv",
            Kernel::Downscale { .. } => "downscale_cubic",
        }
    }

    /// A readable unique name (also the cache file's stem).
    pub fn name(&self) -> String {
        let io = |f: bool| if f { "f16" } else { "f32" };
        match self {
            Kernel::Conv { tile, bn, ksize, tail, io_f16 } => {
                let epi = if *tail { format!("tail_{}", io(*io_f16)) } else { "nhwc".to_string() };
                format!("conv{ksize}x{ksize}_{tile}_bn{bn}_{epi}")
            }
            Kernel::Halo { tile, bn, cin, tail, io_f16 } => {
                let epi = if *tail { format!("tail_{}", io(*io_f16)) } else { "nhwc".to_string() };
                format!("conv3x3_{tile}_cin{cin}_bn{bn}_{epi}")
            }
            Kernel::Wgmma { wg, bn, cin, tail, io_f16 } => {
                let epi = if *tail { format!("tail_{}", io(*io_f16)) } else { "nhwc".to_string() };
                format!("conv3x3_wgmma_g{}_r{}_cin{cin}_bn{bn}_{epi}", wg.groups, wg.rows)
            }
            Kernel::WgmmaK { wg, bn, cin } => {
                let a = a_suffix(wg.a_regs);
                format!("conv3x3_wgmmak_g{}_r{}_k{}{a}_cin{cin}_bn{bn}_nhwc", wg.groups, wg.rows, wg.chunk)
            }
            Kernel::WgmmaWide { groups, npx, regs } => {
                format!("conv3x3_wgmmaw_g{groups}_n{npx}{}_cin64_bn64_nhwc", if *regs { "_regs" } else { "" })
            }
            Kernel::Head { io_f16, mma } => format!("head{}_{}", if *mma { "_mma" } else { "" }, io(*io_f16)),
            Kernel::Downscale { io_f16 } => format!("downscale_{}", io(*io_f16)),
        }
    }

    /// Threads per CTA.
    pub fn threads(&self) -> u32 {
        match self {
            Kernel::Conv { tile, .. } | Kernel::Halo { tile, .. } => tile.warps_m * tile.warps_n * 32,
            Kernel::Wgmma { wg, .. } | Kernel::WgmmaK { wg, .. } => wg.groups * 128,
            Kernel::WgmmaWide { groups, .. } => groups * 128,
            Kernel::Head { .. } => 128,
            Kernel::Downscale { .. } => 256,
        }
    }

    /// Dynamic shared memory in bytes (`cout` for the head's weights).
    pub fn smem(&self, cout: u32) -> u32 {
        match self {
            Kernel::Conv { tile, bn, .. } => conv_smem(*tile, *bn),
            Kernel::Halo { tile, bn, cin, .. } => halo_smem(*tile, *cin, *bn),
            Kernel::Wgmma { wg, bn, cin, .. } => wgmma_smem(*wg, *cin, *bn),
            Kernel::WgmmaK { wg, bn, cin } => wgmma_k_smem(*wg, *cin, *bn),
            Kernel::WgmmaWide { groups, npx, regs } => wgmma_wide_smem(*groups, *npx, *regs),
            Kernel::Head { mma: true, .. } => 0,
            Kernel::Head { .. } => (27 + 2) * cout * 4,
            Kernel::Downscale { .. } => 0,
        }
    }

    /// The full CUDA C source: defines, common helpers, the kernel.
    pub fn source(&self) -> String {
        let mut s = String::new();
        let io_f16 = match self {
            Kernel::Conv { io_f16, .. }
            | Kernel::Halo { io_f16, .. }
            | Kernel::Head { io_f16, .. }
            | Kernel::Downscale { io_f16 }
            | Kernel::Wgmma { io_f16, .. } => *io_f16,
            Kernel::WgmmaK { .. } | Kernel::WgmmaWide { .. } => false,
        };
        let _ = writeln!(s, "// videoforge fused-cuda kernel {}", self.name());
        let _ = writeln!(s, "#define IO_F16 {}", io_f16 as u32);
        let body = match self {
            Kernel::Conv { tile, bn, ksize, tail, .. } => {
                let _ = writeln!(
                    s,
                    "#define BM {}\n#define BN {bn}\n#define WARPS_M {}\n#define WARPS_N {}\n#define KC {}\n\
                     #define STAGES {}\n#define KSIZE {ksize}\n#define EPI {}",
                    tile.bm, tile.warps_m, tile.warps_n, tile.kc, tile.stages, *tail as u32
                );
                CONV
            }
            Kernel::Halo { tile, bn, cin, tail, .. } => {
                let _ = writeln!(
                    s,
                    "#define BM {}\n#define BN {bn}\n#define WARPS_M {}\n#define WARPS_N {}\n#define CIN {cin}\n\
                     #define EPI {}",
                    tile.bm, tile.warps_m, tile.warps_n, *tail as u32
                );
                HALO
            }
            Kernel::Wgmma { wg, bn, cin, tail, .. } => {
                let _ = writeln!(
                    s,
                    "#define BN {bn}\n#define NWG {}\n#define TR {}\n#define CIN {cin}\n#define EPI {}",
                    wg.groups, wg.rows, *tail as u32
                );
                WGMMA
            }
            Kernel::WgmmaK { wg, bn, cin } => {
                let _ = writeln!(
                    s,
                    "#define BN {bn}\n#define NWG {}\n#define TR {}\n#define CIN {cin}\n#define KCH {}\n#define ARF {}\n\
                     #define EPI 0",
                    wg.groups,
                    wg.rows,
                    wg.chunk,
                    wg.a_regs
                );
                WGMMA_K
            }
            Kernel::WgmmaWide { groups, npx, regs } => {
                let _ = writeln!(
                    s,
                    "#define BN 64\n#define NWG {groups}\n#define TR 1\n#define CIN 64\n#define NPX {npx}\n\
                     #define WRS {}\n#define EPI 0",
                    *regs as u32
                );
                WGMMA_WIDE
            }
            Kernel::Head { mma, .. } => {
                let _ = writeln!(s, "#define HEAD_MMA {}", *mma as u32);
                HEAD
            }
            Kernel::Downscale { .. } => DOWN,
        };
        s.push_str(COMMON);
        s.push('\n');
        if !matches!(self, Kernel::Head { .. } | Kernel::Downscale { .. }) {
            s.push_str(CONV_COMMON);
            s.push('\n');
        }
        if self.arch_specific() {
            s.push_str(WGMMA_COMMON);
            s.push('\n');
        }
        s.push_str(body);
        s
    }
}
