//! Plain-Rust references for the kernels in `kernels/colour.cu`: the same arithmetic, pixel by pixel. The GPU
//! tests run both and compare; the CPU tests pin the references' own behaviour (black, white, round trips).

/// A YUV matrix (non-constant luminance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Matrix {
    /// ITU-R BT.601 (SD).
    Bt601,
    /// ITU-R BT.709 (HD).
    Bt709,
    /// ITU-R BT.2020 non-constant luminance (UHD).
    Bt2020,
}

impl Matrix {
    /// (Kr, Kb).
    fn kr_kb(self) -> (f32, f32) {
        match self {
            Matrix::Bt601 => (0.299, 0.114),
            Matrix::Bt709 => (0.2126, 0.0722),
            Matrix::Bt2020 => (0.2627, 0.0593),
        }
    }
}

/// YUV → RGB coefficients, laid out as the kernels' `Coeffs` struct.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coeffs {
    /// Row-major: rgb = m · (y', cb', cr').
    pub m: [f32; 9],
    /// Code value of black.
    pub y_off: f32,
    /// Code value of zero chroma.
    pub c_off: f32,
    /// 1 / luma excursion.
    pub y_scale: f32,
    /// 1 / chroma excursion.
    pub c_scale: f32,
}

/// RGB → YUV coefficients, laid out as the kernels' `InvCoeffs` struct.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InvCoeffs {
    /// Row-major: (y', cb', cr') = m · rgb.
    pub m: [f32; 9],
    /// Code of black.
    pub y_off: f32,
    /// Code of zero chroma.
    pub c_off: f32,
    /// Luma excursion in codes.
    pub y_range: f32,
    /// Chroma excursion in codes.
    pub c_range: f32,
    /// Largest code (255 or 1023).
    pub max_code: f32,
}

fn offsets(full_range: bool, bits: u32) -> (f32, f32, f32, f32) {
    let k = (1u32 << (bits - 8)) as f32;
    let max = ((1u32 << bits) - 1) as f32;
    if full_range {
        (0.0, (1u32 << (bits - 1)) as f32, max, max)
    } else {
        (16.0 * k, 128.0 * k, 219.0 * k, 224.0 * k)
    }
}

impl Coeffs {
    /// Coefficients for a matrix, range and bit depth.
    pub fn new(matrix: Matrix, full_range: bool, bits: u32) -> Coeffs {
        let (kr, kb) = matrix.kr_kb();
        let kg = 1.0 - kr - kb;
        let (y_off, c_off, y_range, c_range) = offsets(full_range, bits);
        Coeffs {
            m: [
                1.0,
                0.0,
                2.0 * (1.0 - kr),
                1.0,
                -2.0 * kb * (1.0 - kb) / kg,
                -2.0 * kr * (1.0 - kr) / kg,
                1.0,
                2.0 * (1.0 - kb),
                0.0,
            ],
            y_off,
            c_off,
            y_scale: 1.0 / y_range,
            c_scale: 1.0 / c_range,
        }
    }
}

impl InvCoeffs {
    /// Coefficients for a matrix, range and bit depth.
    pub fn new(matrix: Matrix, full_range: bool, bits: u32) -> InvCoeffs {
        let (kr, kb) = matrix.kr_kb();
        let kg = 1.0 - kr - kb;
        let (y_off, c_off, y_range, c_range) = offsets(full_range, bits);
        let cb = 1.0 / (2.0 * (1.0 - kb));
        let cr = 1.0 / (2.0 * (1.0 - kr));
        InvCoeffs {
            m: [kr, kg, kb, -kr * cb, -kg * cb, (1.0 - kb) * cb, (1.0 - kr) * cr, -kg * cr, -kb * cr],
            y_off,
            c_off,
            y_range,
            c_range,
            max_code: ((1u32 << bits) - 1) as f32,
        }
    }
}

/// A planar YUV 4:2:0 frame of `u16` codes (8-bit codes widen losslessly).
#[derive(Debug, Clone, PartialEq)]
pub struct Yuv420 {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Luma, width × height.
    pub y: Vec<u16>,
    /// Cb, ceil(w/2) × ceil(h/2).
    pub u: Vec<u16>,
    /// Cr, ceil(w/2) × ceil(h/2).
    pub v: Vec<u16>,
}

impl Yuv420 {
    /// Chroma plane width.
    pub fn chroma_width(&self) -> usize {
        self.width.div_ceil(2)
    }
}

/// Reference of `yuv420_*_to_rgb_*`: planar RGB f32, 3 × h × w.
pub fn yuv420_to_rgb(f: &Yuv420, c: &Coeffs) -> Vec<f32> {
    let (w, h) = (f.width, f.height);
    let cw = f.chroma_width();
    let mut out = vec![0f32; 3 * w * h];
    for yy in 0..h {
        for x in 0..w {
            let y = (f32::from(f.y[yy * w + x]) - c.y_off) * c.y_scale;
            let ci = (yy / 2) * cw + x / 2;
            let u = (f32::from(f.u[ci]) - c.c_off) * c.c_scale;
            let v = (f32::from(f.v[ci]) - c.c_off) * c.c_scale;
            let i = yy * w + x;
            out[i] = c.m[0] * y + c.m[1] * u + c.m[2] * v;
            out[w * h + i] = c.m[3] * y + c.m[4] * u + c.m[5] * v;
            out[2 * w * h + i] = c.m[6] * y + c.m[7] * u + c.m[8] * v;
        }
    }
    out
}

/// Reference of `rgb_*_to_yuv420_*`: RGB clamped to [0, 1], chroma from the 2×2 block's mean RGB.
pub fn rgb_to_yuv420(rgb: &[f32], w: usize, h: usize, c: &InvCoeffs) -> Yuv420 {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let code = |v: f32| v.round().clamp(0.0, c.max_code) as u16;
    let mut f = Yuv420 { width: w, height: h, y: vec![0; w * h], u: vec![0; cw * ch], v: vec![0; cw * ch] };
    let px = |i: usize| (rgb[i].clamp(0.0, 1.0), rgb[w * h + i].clamp(0.0, 1.0), rgb[2 * w * h + i].clamp(0.0, 1.0));
    for by in 0..ch {
        for bx in 0..cw {
            let (mut sr, mut sg, mut sb, mut n) = (0f32, 0f32, 0f32, 0f32);
            for dy in 0..2 {
                for dx in 0..2 {
                    let (x, yy) = (bx * 2 + dx, by * 2 + dy);
                    if x >= w || yy >= h {
                        continue;
                    }
                    let (r, g, b) = px(yy * w + x);
                    let luma = c.m[0] * r + c.m[1] * g + c.m[2] * b;
                    f.y[yy * w + x] = code(c.y_off + luma * c.y_range);
                    sr += r;
                    sg += g;
                    sb += b;
                    n += 1.0;
                }
            }
            let inv = 1.0 / n;
            let (r, g, b) = (sr * inv, sg * inv, sb * inv);
            f.u[by * cw + bx] = code(c.c_off + (c.m[3] * r + c.m[4] * g + c.m[5] * b) * c.c_range);
            f.v[by * cw + bx] = code(c.c_off + (c.m[6] * r + c.m[7] * g + c.m[8] * b) * c.c_range);
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(w: usize, h: usize, y: u16, u: u16, v: u16) -> Yuv420 {
        let c = w.div_ceil(2) * h.div_ceil(2);
        Yuv420 { width: w, height: h, y: vec![y; w * h], u: vec![u; c], v: vec![v; c] }
    }

    #[test]
    fn black_and_white_in_every_matrix_and_range() {
        for m in [Matrix::Bt601, Matrix::Bt709, Matrix::Bt2020] {
            for (full, bits, black, white, mid) in
                [(false, 8, 16, 235, 128), (true, 8, 0, 255, 128), (false, 10, 64, 940, 512), (true, 10, 0, 1023, 512)]
            {
                let c = Coeffs::new(m, full, bits);
                let k = yuv420_to_rgb(&flat(4, 2, black, mid, mid), &c);
                assert!(k.iter().all(|v| v.abs() < 1e-6), "{m:?} {full} {bits}: {k:?}");
                let wh = yuv420_to_rgb(&flat(4, 2, white, mid, mid), &c);
                assert!(wh.iter().all(|v| (v - 1.0).abs() < 1e-6), "{m:?} {full} {bits}: {wh:?}");
            }
        }
    }

    #[test]
    fn round_trip_is_within_one_code() {
        let (w, h) = (7, 5); // odd on purpose
        let mut rng = 12345u32;
        let mut next = || {
            rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            rng >> 8
        };
        for m in [Matrix::Bt601, Matrix::Bt709, Matrix::Bt2020] {
            for (full, bits) in [(false, 8), (true, 8), (false, 10)] {
                let max = (1u32 << bits) - 1;
                let lo = if full { 0 } else { 16 << (bits - 8) };
                let hi = if full { max } else { 235 << (bits - 8) };
                // Chroma constant per 2x2 block so the 4:2:0 round trip can be exact.
                let mut f = flat(w, h, 0, 0, 0);
                // Mid-grey luma and mild chroma keep every pixel inside the RGB gamut (no clamping).
                let (lo, hi) = (lo + (hi - lo) / 4, hi - (hi - lo) / 4);
                for v in f.y.iter_mut() {
                    *v = (lo + next() % (hi - lo)) as u16;
                }
                let mid = 1u32 << (bits - 1);
                let span = 40 << (bits - 8);
                for v in f.u.iter_mut().chain(f.v.iter_mut()) {
                    *v = (mid - span / 2 + next() % span) as u16;
                }
                let rgb = yuv420_to_rgb(&f, &Coeffs::new(m, full, bits));
                let back = rgb_to_yuv420(&rgb, w, h, &InvCoeffs::new(m, full, bits));
                let d = |a: &[u16], b: &[u16]| a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0);
                assert!(d(&f.y, &back.y) <= 1, "{m:?} full={full} bits={bits}: luma off by {}", d(&f.y, &back.y));
                assert!(d(&f.u, &back.u) <= 1 && d(&f.v, &back.v) <= 1, "{m:?} full={full} bits={bits}");
            }
        }
    }
}
