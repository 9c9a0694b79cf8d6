//! Colour: which matrix/range a stream uses (read from the stream, or assumed the way players do), and the
//! plain-Rust reference conversions between Y'CbCr planes and planar RGB `f32` in [0, 1].
//!
//! These two functions, [`yuv_to_rgb_planar`] and [`rgb_planar_to_yuv`], are the reference that GPU kernels are
//! tested against; they are pure (no FFmpeg), parallel over rows with rayon, and exact inverses of each other up to
//! rounding when chroma is not subsampled.
//!
//! **Chroma siting.** Subsampled chroma is treated as *box-sited*: each chroma sample covers its 2x1 (4:2:2) or
//! 2x2 (4:2:0) block of luma samples. Upsampling replicates the chroma sample over its block (nearest), and
//! downsampling averages the block in floating point and rounds once (round half up). The pair is therefore an
//! exact round trip for chroma, which matters more for a reference than a sharper filter. The stream's
//! `chroma_location` (left for MPEG-2/H.264 4:2:0 by default, top-left for BT.2020) is not used: the difference
//! is at most a quarter of a chroma sample and the output is written back with the same siting convention.
//! Odd widths/heights are allowed: the last chroma sample then covers a partial block.

use rayon::prelude::*;
use serde::Serialize;

/// Y'CbCr matrix coefficients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Matrix {
    /// ITU-R BT.601 (SMPTE 170M / BT.470BG): Kr 0.299, Kb 0.114.
    Bt601,
    /// ITU-R BT.709: Kr 0.2126, Kb 0.0722.
    Bt709,
    /// ITU-R BT.2020 non-constant luminance: Kr 0.2627, Kb 0.0593.
    Bt2020Ncl,
}

impl Matrix {
    /// (Kr, Kb).
    pub fn coefficients(self) -> (f32, f32) {
        match self {
            Matrix::Bt601 => (0.299, 0.114),
            Matrix::Bt709 => (0.2126, 0.0722),
            Matrix::Bt2020Ncl => (0.2627, 0.0593),
        }
    }
}

/// Quantisation range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Range {
    /// "TV"/MPEG range: Y in [16, 235]·2^(n-8), Cb/Cr in [16, 240]·2^(n-8).
    Limited,
    /// "PC"/JPEG range: [0, 2^n - 1]; chroma centred on 2^(n-1).
    Full,
}

/// Chroma subsampling of a planar Y'CbCr layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Subsampling {
    /// Half width, half height.
    S420,
    /// Half width.
    S422,
    /// Full resolution.
    S444,
}

impl From<crate::codec::Chroma> for Subsampling {
    fn from(c: crate::codec::Chroma) -> Subsampling {
        match c {
            crate::codec::Chroma::C420 => Subsampling::S420,
            crate::codec::Chroma::C422 => Subsampling::S422,
            crate::codec::Chroma::C444 => Subsampling::S444,
        }
    }
}

impl Subsampling {
    /// log2 of the horizontal and vertical chroma divisors.
    pub fn shifts(self) -> (u32, u32) {
        match self {
            Subsampling::S420 => (1, 1),
            Subsampling::S422 => (1, 0),
            Subsampling::S444 => (0, 0),
        }
    }

    /// Chroma plane size for a luma size (rounded up, as FFmpeg does).
    pub fn chroma_size(self, width: usize, height: usize) -> (usize, usize) {
        let (sx, sy) = self.shifts();
        (width.div_ceil(1 << sx), height.div_ceil(1 << sy))
    }
}

/// Everything the conversion needs to know about a Y'CbCr frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YuvFormat {
    /// Luma width in samples.
    pub width: usize,
    /// Luma height in samples.
    pub height: usize,
    /// Chroma layout.
    pub subsampling: Subsampling,
    /// Bits per sample (8..=16); samples are stored in the low bits.
    pub bit_depth: u8,
    /// Matrix coefficients.
    pub matrix: Matrix,
    /// Quantisation range.
    pub range: Range,
}

/// A plane sample type: `u8` for 8-bit, `u16` for 9..16-bit (native endianness, value in the low bits).
pub trait Sample: Copy + Send + Sync + 'static {
    /// The value as a float.
    fn to_f32(self) -> f32;
    /// From an already rounded and clamped value.
    fn from_u32(v: u32) -> Self;
}

impl Sample for u8 {
    #[inline]
    fn to_f32(self) -> f32 {
        f32::from(self)
    }
    #[inline]
    fn from_u32(v: u32) -> Self {
        v as u8
    }
}

impl Sample for u16 {
    #[inline]
    fn to_f32(self) -> f32 {
        f32::from(self)
    }
    #[inline]
    fn from_u32(v: u32) -> Self {
        v as u16
    }
}

/// A read-only image plane: `stride` is in samples, not bytes.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a, T> {
    /// At least `stride * (rows - 1) + row_width` samples.
    pub data: &'a [T],
    /// Samples from one row to the next.
    pub stride: usize,
}

/// A writable image plane: `stride` is in samples.
#[derive(Debug)]
pub struct PlaneMut<'a, T> {
    /// At least `stride * (rows - 1) + row_width` samples.
    pub data: &'a mut [T],
    /// Samples from one row to the next.
    pub stride: usize,
}

/// Scale and offset that map code values to normalised values: `y' = (Y - y_off) / y_scale`,
/// `c' = (C - c_off) / c_scale`.
/// The GPU colour kernels take the same values (`gpu::kernels::Colour`), so both paths quantise alike.
#[derive(Debug, Clone, Copy)]
pub struct Quant {
    /// Code value of black.
    pub y_off: f32,
    /// Luma excursion in codes.
    pub y_scale: f32,
    /// Code value of zero chroma.
    pub c_off: f32,
    /// Chroma excursion in codes.
    pub c_scale: f32,
    /// Largest code.
    pub max: f32,
}

impl Quant {
    /// For a bit depth (8..=16) and range.
    pub fn new(bit_depth: u8, range: Range) -> Quant {
        let k = f32::from(1u16 << (bit_depth.clamp(8, 16) - 8));
        let max = ((1u32 << bit_depth.clamp(8, 16)) - 1) as f32;
        match range {
            Range::Limited => Quant { y_off: 16.0 * k, y_scale: 219.0 * k, c_off: 128.0 * k, c_scale: 224.0 * k, max },
            Range::Full => Quant { y_off: 0.0, y_scale: max, c_off: 128.0 * k, c_scale: max, max },
        }
    }
}

#[inline]
fn quantise(v: f32, max: f32) -> u32 {
    // Round half up, then clamp to the code range.
    (v + 0.5).floor().clamp(0.0, max) as u32
}

/// Y'CbCr planes → planar RGB `f32` (`out` is `[R plane, G plane, B plane]`, each `width*height`, row-major),
/// clamped to [0, 1]. Chroma is upsampled by replication (box siting, see the module docs).
///
/// Panics if `out` or a plane is too small for `fmt` (a programming error, not a data error).
pub fn yuv_to_rgb_planar<T: Sample>(
    fmt: &YuvFormat,
    y: Plane<'_, T>,
    u: Plane<'_, T>,
    v: Plane<'_, T>,
    out: &mut [f32],
) {
    let (w, h) = (fmt.width, fmt.height);
    let n = w * h;
    assert!(out.len() >= 3 * n, "rgb buffer too small");
    let (kr, kb) = fmt.matrix.coefficients();
    let kg = 1.0 - kr - kb;
    let (cr_r, cb_b) = (2.0 * (1.0 - kr), 2.0 * (1.0 - kb));
    let q = Quant::new(fmt.bit_depth, fmt.range);
    let (sx, sy) = fmt.subsampling.shifts();
    let (r_plane, rest) = out[..3 * n].split_at_mut(n);
    let (g_plane, b_plane) = rest.split_at_mut(n);
    r_plane.par_chunks_mut(w).zip(g_plane.par_chunks_mut(w)).zip(b_plane.par_chunks_mut(w)).enumerate().for_each(
        |(row, ((r, g), b))| {
            let yr = &y.data[row * y.stride..row * y.stride + w];
            let crow = row >> sy;
            let ur = &u.data[crow * u.stride..];
            let vr = &v.data[crow * v.stride..];
            for x in 0..w {
                let yn = (yr[x].to_f32() - q.y_off) / q.y_scale;
                let cb = (ur[x >> sx].to_f32() - q.c_off) / q.c_scale;
                let cr = (vr[x >> sx].to_f32() - q.c_off) / q.c_scale;
                let rr = yn + cr_r * cr;
                let bb = yn + cb_b * cb;
                let gg = (yn - kr * rr - kb * bb) / kg;
                r[x] = rr.clamp(0.0, 1.0);
                g[x] = gg.clamp(0.0, 1.0);
                b[x] = bb.clamp(0.0, 1.0);
            }
        },
    );
}

/// Planar RGB `f32` → Y'CbCr planes. RGB is clamped to [0, 1] first (models are not clamped). Chroma is the
/// float average of each 2x2 (4:2:0) or 2x1 (4:2:2) block, rounded once (round half up).
///
/// Panics if `rgb` or a plane is too small for `fmt`.
pub fn rgb_planar_to_yuv<T: Sample>(
    fmt: &YuvFormat,
    rgb: &[f32],
    y: PlaneMut<'_, T>,
    u: PlaneMut<'_, T>,
    v: PlaneMut<'_, T>,
) {
    let (w, h) = (fmt.width, fmt.height);
    let n = w * h;
    assert!(rgb.len() >= 3 * n, "rgb buffer too small");
    let (kr, kb) = fmt.matrix.coefficients();
    let kg = 1.0 - kr - kb;
    let (cr_r, cb_b) = (2.0 * (1.0 - kr), 2.0 * (1.0 - kb));
    let q = Quant::new(fmt.bit_depth, fmt.range);
    let (sx, sy) = fmt.subsampling.shifts();
    let (cw, ch) = fmt.subsampling.chroma_size(w, h);
    let (rp, gp, bp) = (&rgb[..n], &rgb[n..2 * n], &rgb[2 * n..3 * n]);
    let px = |i: usize| -> (f32, f32, f32) {
        let (r, g, b) = (rp[i].clamp(0.0, 1.0), gp[i].clamp(0.0, 1.0), bp[i].clamp(0.0, 1.0));
        let yn = kr * r + kg * g + kb * b;
        (yn, (b - yn) / cb_b, (r - yn) / cr_r)
    };
    let ys = y.stride;
    y.data.par_chunks_mut(ys).take(h).enumerate().for_each(|(row, out)| {
        for (x, o) in out[..w].iter_mut().enumerate() {
            let (yn, _, _) = px(row * w + x);
            *o = T::from_u32(quantise(yn * q.y_scale + q.y_off, q.max));
        }
    });
    let (us, vs) = (u.stride, v.stride);
    u.data.par_chunks_mut(us).zip(v.data.par_chunks_mut(vs)).take(ch).enumerate().for_each(|(crow, (uo, vo))| {
        let y0 = crow << sy;
        let y1 = ((crow + 1) << sy).min(h);
        for cx in 0..cw {
            let x0 = cx << sx;
            let x1 = ((cx + 1) << sx).min(w);
            let (mut sb, mut sr, mut cnt) = (0.0f32, 0.0f32, 0.0f32);
            for yy in y0..y1 {
                for xx in x0..x1 {
                    let (_, cb, cr) = px(yy * w + xx);
                    sb += cb;
                    sr += cr;
                    cnt += 1.0;
                }
            }
            uo[cx] = T::from_u32(quantise(sb / cnt * q.c_scale + q.c_off, q.max));
            vo[cx] = T::from_u32(quantise(sr / cnt * q.c_scale + q.c_off, q.max));
        }
    });
}

/// Planar GBR (FFmpeg's `gbrp`, `gbrp10le`...: planes G, B, R, codes `0..=2^bit_depth - 1`) → planar RGB `f32`.
pub fn gbr_to_rgb_planar<T: Sample>(
    width: usize,
    height: usize,
    bit_depth: u8,
    g: Plane<'_, T>,
    b: Plane<'_, T>,
    r: Plane<'_, T>,
    out: &mut [f32],
) {
    let n = width * height;
    let max = ((1u32 << bit_depth.clamp(8, 16)) - 1) as f32;
    for (dst, src) in out[..3 * n].chunks_mut(n).zip([r, g, b]) {
        dst.par_chunks_mut(width).enumerate().for_each(|(row, d)| {
            for (x, o) in d.iter_mut().enumerate() {
                *o = src.data[row * src.stride + x].to_f32() / max;
            }
        });
    }
}

/// Planar 8-bit GBR (FFmpeg's `gbrp`: planes G, B, R) → planar RGB `f32`.
pub fn gbr8_to_rgb_planar(
    width: usize,
    height: usize,
    g: Plane<'_, u8>,
    b: Plane<'_, u8>,
    r: Plane<'_, u8>,
    out: &mut [f32],
) {
    gbr_to_rgb_planar(width, height, 8, g, b, r, out);
}

/// What players assume for an untagged stream: BT.601 for SD (width <= 1024 and height <= 576), else BT.709.
pub fn assumed_matrix(width: u32, height: u32) -> Matrix {
    if width <= 1024 && height <= 576 {
        Matrix::Bt601
    } else {
        Matrix::Bt709
    }
}

/// Resolve a stream's tagged matrix/range (`None` = unspecified) into what is used, and the warnings to record.
/// `unsupported` names a tagged matrix that has no conversion here (e.g. `ycgco`): it is treated as unspecified
/// with a warning.
pub fn resolve(
    matrix: Option<Matrix>,
    unsupported: Option<&str>,
    range: Option<Range>,
    width: u32,
    height: u32,
) -> (Matrix, Range, Vec<String>) {
    let mut warnings = Vec::new();
    let m = match (matrix, unsupported) {
        (Some(m), _) => m,
        (None, other) => {
            let m = assumed_matrix(width, height);
            let label = if m == Matrix::Bt601 { "BT.601" } else { "BT.709" };
            warnings.push(match other {
                Some(name) if name != "rgb" => format!(
                    "matrix {name} has no conversion here: converted as {label} both ways (as players do for \
                     {width}x{height}); the output keeps the {name} tag"
                ),
                Some(name) => format!(
                    "matrix {name} is not supported: assumed {label} for {width}x{height} (as players do); the output is \
                     tagged {label} explicitly"
                ),
                None => format!(
                    "colour matrix unspecified: assumed {label} for {width}x{height} (as players do; an upscaled output \
                     may cross the SD/HD line, where players guess differently); the output is tagged {label} explicitly"
                ),
            });
            m
        }
    };
    let r = match range {
        Some(r) => r,
        None => {
            warnings.push("colour range unspecified: assumed limited (TV) range; the output is tagged limited".into());
            Range::Limited
        }
    };
    (m, r, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(sub: Subsampling, depth: u8, matrix: Matrix, range: Range) -> YuvFormat {
        YuvFormat { width: 5, height: 3, subsampling: sub, bit_depth: depth, matrix, range }
    }

    #[test]
    fn limited_black_white_and_primaries() {
        let f = YuvFormat { width: 1, height: 1, ..fmt(Subsampling::S444, 8, Matrix::Bt709, Range::Limited) };
        let mut out = vec![0.0; 3];
        let p = |v: &'static [u8]| Plane { data: v, stride: 1 };
        yuv_to_rgb_planar(&f, p(&[235]), p(&[128]), p(&[128]), &mut out);
        assert_eq!(out, vec![1.0, 1.0, 1.0]);
        yuv_to_rgb_planar(&f, p(&[16]), p(&[128]), p(&[128]), &mut out);
        assert_eq!(out, vec![0.0, 0.0, 0.0]);
        // BT.709 pure red in limited range is (63, 102, 240).
        let (mut y, mut u, mut v) = ([0u8], [0u8], [0u8]);
        rgb_planar_to_yuv(
            &f,
            &[1.0, 0.0, 0.0],
            PlaneMut { data: &mut y, stride: 1 },
            PlaneMut { data: &mut u, stride: 1 },
            PlaneMut { data: &mut v, stride: 1 },
        );
        assert_eq!((y[0], u[0], v[0]), (63, 102, 240));
    }

    /// Every layout (4:2:0, 4:2:2, 4:4:4) at every depth (8, 10, 12), both directions, every matrix and range:
    /// in-gamut samples come back exactly.
    #[test]
    fn round_trip_is_exact_for_every_layout_and_depth() {
        for sub in [Subsampling::S420, Subsampling::S422, Subsampling::S444] {
            for depth in [8u8, 10, 12] {
                for matrix in [Matrix::Bt601, Matrix::Bt709, Matrix::Bt2020Ncl] {
                    for range in [Range::Limited, Range::Full] {
                        let f = fmt(sub, depth, matrix, range);
                        let (cw, ch) = sub.chroma_size(f.width, f.height);
                        // Grey-ish values are in gamut for any chroma, so the round trip must be exact.
                        let mid = 1u32 << (depth - 1);
                        let k = 1u32 << (depth - 8);
                        let yv: Vec<u16> = (0..15).map(|i| (mid - 40 * k + i * 5 * k) as u16).collect();
                        let uv: Vec<u16> = (0..cw * ch).map(|i| (mid - 3 * k + (i as u32 % 7) * k) as u16).collect();
                        let vv: Vec<u16> = (0..cw * ch).map(|i| (mid + 2 * k - (i as u32 % 5) * k) as u16).collect();
                        let mut rgb = vec![0.0; 45];
                        yuv_to_rgb_planar(
                            &f,
                            Plane { data: &yv, stride: 5 },
                            Plane { data: &uv, stride: cw },
                            Plane { data: &vv, stride: cw },
                            &mut rgb,
                        );
                        let (mut y2, mut u2, mut v2) = (vec![0u16; 15], vec![0u16; cw * ch], vec![0u16; cw * ch]);
                        rgb_planar_to_yuv(
                            &f,
                            &rgb,
                            PlaneMut { data: &mut y2, stride: 5 },
                            PlaneMut { data: &mut u2, stride: cw },
                            PlaneMut { data: &mut v2, stride: cw },
                        );
                        assert_eq!((&y2, &u2, &v2), (&yv, &uv, &vv), "{sub:?} {depth} {matrix:?} {range:?}");
                        if depth == 8 {
                            // The u8 path gives the same codes.
                            let b = |v: &[u16]| v.iter().map(|x| *x as u8).collect::<Vec<u8>>();
                            let mut rgb8 = vec![0.0; 45];
                            let (y8, u8_, v8) = (b(&yv), b(&uv), b(&vv));
                            yuv_to_rgb_planar(
                                &f,
                                Plane { data: &y8, stride: 5 },
                                Plane { data: &u8_, stride: cw },
                                Plane { data: &v8, stride: cw },
                                &mut rgb8,
                            );
                            assert_eq!(rgb8, rgb, "{sub:?} u8 and u16 agree");
                        }
                    }
                }
            }
        }
    }

    /// Known codes: BT.709 red in limited range at 8, 10 and 12 bits, and white, for each layout.
    #[test]
    fn red_and_white_codes_at_every_depth() {
        for sub in [Subsampling::S420, Subsampling::S422, Subsampling::S444] {
            for (depth, red) in [(8u8, (63u16, 102u16, 240u16)), (10, (250, 409, 960)), (12, (1001, 1637, 3840))] {
                let f = YuvFormat { width: 2, height: 2, ..fmt(sub, depth, Matrix::Bt709, Range::Limited) };
                let (cw, ch) = sub.chroma_size(2, 2);
                let rgb = [[1.0f32; 4], [0.0; 4], [0.0; 4]].concat();
                let (mut y, mut u, mut v) = (vec![0u16; 4], vec![0u16; cw * ch], vec![0u16; cw * ch]);
                rgb_planar_to_yuv(
                    &f,
                    &rgb,
                    PlaneMut { data: &mut y, stride: 2 },
                    PlaneMut { data: &mut u, stride: cw },
                    PlaneMut { data: &mut v, stride: cw },
                );
                assert!(y.iter().all(|c| *c == red.0) && u.iter().all(|c| *c == red.1), "{sub:?} {depth}: {y:?} {u:?}");
                assert!(v.iter().all(|c| *c == red.2), "{sub:?} {depth}: {v:?}");
                let k = 1u16 << (depth - 8);
                let white = (vec![235 * k; 4], vec![128 * k; cw * ch]);
                let mut out = vec![0.0; 12];
                let (y, c) = (Plane { data: &white.0[..], stride: 2 }, Plane { data: &white.1[..], stride: cw });
                yuv_to_rgb_planar(&f, y, c, c, &mut out);
                assert_eq!(out, vec![1.0; 12], "{sub:?} {depth}");
            }
        }
    }

    /// 4:2:2 averages chroma over horizontal pairs only and replicates it over the pair; 4:4:4 keeps every sample.
    #[test]
    fn chroma_is_box_sited_per_layout() {
        // A 2x2 picture: left column red, right column blue.
        let rgb = [[1.0f32, 0.0, 1.0, 0.0], [0.0; 4], [0.0, 1.0, 0.0, 1.0]].concat();
        let cb = |sub: Subsampling| {
            let f = YuvFormat { width: 2, height: 2, ..fmt(sub, 8, Matrix::Bt709, Range::Full) };
            let (cw, ch) = sub.chroma_size(2, 2);
            let (mut y, mut u, mut v) = (vec![0u8; 4], vec![0u8; cw * ch], vec![0u8; cw * ch]);
            rgb_planar_to_yuv(
                &f,
                &rgb,
                PlaneMut { data: &mut y, stride: 2 },
                PlaneMut { data: &mut u, stride: cw },
                PlaneMut { data: &mut v, stride: cw },
            );
            let mut back = vec![0.0; 12];
            yuv_to_rgb_planar(
                &f,
                Plane { data: &y, stride: 2 },
                Plane { data: &u, stride: cw },
                Plane { data: &v, stride: cw },
                &mut back,
            );
            (u, back)
        };
        let (u444, back444) = cb(Subsampling::S444);
        assert_eq!(u444.len(), 4);
        assert!((back444[0] - 1.0).abs() < 0.01 && back444[8..].iter().step_by(2).all(|b| *b < 0.01));
        let (u422, back422) = cb(Subsampling::S422);
        assert_eq!(u422.len(), 2, "one chroma sample per row");
        assert_eq!(u422[0], u422[1], "both rows have the same pair");
        assert!((f32::from(u422[0]) - (f32::from(u444[0]) + f32::from(u444[1])) / 2.0).abs() <= 0.5);
        assert!(back422[0] < 0.9 && back422[8] > 0.1, "the pair shares one chroma: red and blue bleed into each other");
        assert_eq!((back422[0], back422[9]), (back422[2], back422[11]), "rows alike");
        let (u420, _) = cb(Subsampling::S420);
        assert_eq!(u420, vec![u422[0]], "the 2x2 block's average");
    }

    #[test]
    fn gbr_at_ten_bits() {
        let (g, b, r) = ([0u16, 1023], [512u16, 0], [1023u16, 0]);
        let mut out = vec![0.0; 6];
        let (g, b, r) =
            (Plane { data: &g[..], stride: 2 }, Plane { data: &b[..], stride: 2 }, Plane { data: &r[..], stride: 2 });
        gbr_to_rgb_planar(2, 1, 10, g, b, r, &mut out);
        assert_eq!(out, vec![1.0, 0.0, 0.0, 1.0, 512.0 / 1023.0, 0.0]);
    }

    #[test]
    fn unspecified_is_assumed_by_size_with_a_warning() {
        let (m, r, w) = resolve(None, None, None, 720, 576);
        assert_eq!((m, r), (Matrix::Bt601, Range::Limited));
        assert_eq!(w.len(), 2);
        let (m, _, _) = resolve(None, None, Some(Range::Full), 1280, 720);
        assert_eq!(m, Matrix::Bt709);
        let (m, _, w) = resolve(Some(Matrix::Bt2020Ncl), None, Some(Range::Full), 64, 48);
        assert_eq!((m, w.len()), (Matrix::Bt2020Ncl, 0));
    }
}
