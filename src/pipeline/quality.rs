//! Quality gates: every frame's model output is checked before the file can be published — no NaN or infinity,
//! and not flat (one colour) where the input frame is not — on statistics the stages already compute cheaply
//! (the GPU stage reduces them on the device). Optionally, sampled frames are measured against the input (the
//! output downscaled with a bicubic filter: PSNR and SSIM of luma) and recorded, never failed on.

use crate::manifest::{QualitySection, Reference};
use serde::Serialize;

/// Luma statistics of one frame (values in 0–1), and how many of its values were not finite.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FrameStats {
    /// Mean luma.
    pub mean: f64,
    /// Standard deviation of luma.
    pub std: f64,
    /// Values (any channel) that were NaN or infinite.
    pub non_finite: u64,
}

impl FrameStats {
    /// From a count and the sums of values and squared values.
    pub fn from_sums(n: u64, sum: f64, sum_sq: f64, non_finite: u64) -> FrameStats {
        if n == 0 {
            return FrameStats { mean: 0.0, std: 0.0, non_finite };
        }
        let mean = sum / n as f64;
        let var = (sum_sq / n as f64 - mean * mean).max(0.0);
        FrameStats { mean, std: var.sqrt(), non_finite }
    }
}

/// Rec. 709 luma weights: flatness does not depend on the matrix, only on a fixed mix of the channels.
const LUMA: [f32; 3] = [0.2126, 0.7152, 0.0722];

/// Statistics of a planar RGB `f32` frame: every value is checked for NaN/infinity; luma from the clamped values.
pub fn rgb_stats(rgb: &[f32], width: usize, height: usize) -> FrameStats {
    let n = width * height;
    let non_finite = rgb.iter().filter(|v| !v.is_finite()).count() as u64;
    if rgb.len() < 3 * n {
        return FrameStats { non_finite, ..Default::default() };
    }
    let (r, g, b) = (&rgb[..n], &rgb[n..2 * n], &rgb[2 * n..3 * n]);
    let (mut sum, mut sum_sq) = (0f64, 0f64);
    for i in 0..n {
        let y = LUMA[0] * clamp01(r[i]) + LUMA[1] * clamp01(g[i]) + LUMA[2] * clamp01(b[i]);
        sum += f64::from(y);
        sum_sq += f64::from(y) * f64::from(y);
    }
    FrameStats::from_sums(n as u64, sum, sum_sq, non_finite)
}

/// Luma of a planar RGB `f32` frame, clamped (for the reference measurement).
pub fn rgb_luma(rgb: &[f32], width: usize, height: usize, out: &mut Vec<f32>) {
    let n = width * height;
    out.clear();
    if rgb.len() < 3 * n {
        return;
    }
    out.extend(
        (0..n).map(|i| LUMA[0] * clamp01(rgb[i]) + LUMA[1] * clamp01(rgb[n + i]) + LUMA[2] * clamp01(rgb[2 * n + i])),
    );
}

/// Statistics of a luma plane of codes (`y_off`, `y_scale` map codes to 0–1), every `step`th sample in each
/// direction (a 4K plane sampled every 4th pixel still has half a million samples).
pub fn luma_stats(
    plane: &[u8],
    wide: bool,
    width: usize,
    height: usize,
    y_off: f32,
    y_scale: f32,
    step: usize,
) -> FrameStats {
    let step = step.max(1);
    let (mut n, mut sum, mut sum_sq) = (0u64, 0f64, 0f64);
    for y in (0..height).step_by(step) {
        for x in (0..width).step_by(step) {
            let code = sample(plane, wide, width, x, y);
            let v = f64::from(((code - y_off) / y_scale).clamp(0.0, 1.0));
            n += 1;
            sum += v;
            sum_sq += v * v;
        }
    }
    FrameStats::from_sums(n, sum, sum_sq, 0)
}

/// A luma plane of codes as values in 0–1 (for the reference measurement).
pub fn luma_values(
    plane: &[u8],
    wide: bool,
    width: usize,
    height: usize,
    y_off: f32,
    y_scale: f32,
    out: &mut Vec<f32>,
) {
    out.clear();
    for y in 0..height {
        for x in 0..width {
            out.push(((sample(plane, wide, width, x, y) - y_off) / y_scale).clamp(0.0, 1.0));
        }
    }
}

fn sample(plane: &[u8], wide: bool, width: usize, x: usize, y: usize) -> f32 {
    if wide {
        let i = 2 * (y * width + x);
        f32::from(u16::from_le_bytes([plane[i], plane[i + 1]]))
    } else {
        f32::from(plane[y * width + x])
    }
}

fn clamp01(v: f32) -> f32 {
    if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// Why a file failed its gates.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QualityFailure {
    /// The model's output held NaN or infinity.
    #[error("frame {frame}: the model's output holds {count} non-finite values (NaN or infinity)")]
    NonFinite {
        /// 1-based frame number.
        frame: u64,
        /// How many values.
        count: u64,
    },
    /// The output was flat where the input was not.
    #[error("frame {frame}: the output is flat (luma {mean:.3} ± {std:.4}) where the input is not (± {input_std:.4})")]
    Flat {
        /// 1-based frame number.
        frame: u64,
        /// The output's mean luma.
        mean: f64,
        /// The output's luma deviation.
        std: f64,
        /// The input's luma deviation.
        input_std: f64,
    },
}

/// What the gates saw over a file (in its report).
#[derive(Debug, Clone, Default, Serialize)]
pub struct QualityReport {
    /// Whether the gates ran.
    pub gates: bool,
    /// Frames checked.
    pub frames_checked: u64,
    /// Lowest luma deviation of an output frame whose input was not flat.
    pub min_output_std: Option<f64>,
    /// The reference measurement, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferenceReport>,
}

/// PSNR and SSIM of the output (downscaled, bicubic) against the input, over sampled frames.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReferenceReport {
    /// Frames measured.
    pub frames: u64,
    /// Mean PSNR of luma, dB.
    pub psnr_db: f64,
    /// Lowest PSNR of a frame, dB.
    pub min_psnr_db: f64,
    /// Mean SSIM of luma (8×8 windows).
    pub ssim: f64,
    /// Why frames were not measured, when some were not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The gates of one file.
pub struct Gates {
    cfg: QualitySection,
    report: QualityReport,
    /// Scratch for the reference measurement, made once.
    scratch: (Vec<f32>, Vec<f32>, Vec<f32>),
}

impl Gates {
    /// Gates as the job configured them.
    pub fn new(cfg: &QualitySection) -> Gates {
        let report = QualityReport { gates: cfg.gates, ..Default::default() };
        Gates { cfg: cfg.clone(), report, scratch: Default::default() }
    }

    /// Checks frame `frame` (1-based): its input's and output's statistics.
    pub fn check(&mut self, frame: u64, input: Option<FrameStats>, output: FrameStats) -> Result<(), QualityFailure> {
        if !self.cfg.gates {
            return Ok(());
        }
        self.report.frames_checked += 1;
        if self.cfg.non_finite && output.non_finite > 0 {
            return Err(QualityFailure::NonFinite { frame, count: output.non_finite });
        }
        let Some(input) = input else { return Ok(()) };
        // An input at least five times as varied as the flat threshold is a picture, not a flat frame.
        if input.std >= 5.0 * self.cfg.flat_below {
            let m = self.report.min_output_std.get_or_insert(output.std);
            *m = m.min(output.std);
            if self.cfg.flat && output.std < self.cfg.flat_below {
                return Err(QualityFailure::Flat { frame, mean: output.mean, std: output.std, input_std: input.std });
            }
        }
        Ok(())
    }

    /// Whether frame `frame` (1-based) is one the reference measurement samples.
    pub fn samples(&self, frame: u64) -> bool {
        self.cfg.reference == Reference::Bicubic && (frame - 1) % u64::from(self.cfg.reference_every.max(1)) == 0
    }

    /// Scratch buffers for the caller to fill with the input's and output's luma.
    pub fn scratch(&mut self) -> (&mut Vec<f32>, &mut Vec<f32>) {
        (&mut self.scratch.0, &mut self.scratch.1)
    }

    /// Measures one sampled frame from the luma the caller put in [`Gates::scratch`]: the input (`w`×`h`) and
    /// the output (`w·s`×`h·s`).
    pub fn measure(&mut self, w: usize, h: usize, s: usize) {
        let (input, output, down) = (&self.scratch.0, &self.scratch.1, &mut self.scratch.2);
        if input.len() != w * h || output.len() != w * h * s * s {
            return;
        }
        downscale_bicubic(output, w * s, h * s, s, down);
        let (psnr, ssim) = (psnr(input, down), ssim(input, down, w, h));
        let r =
            self.report.reference.get_or_insert(ReferenceReport { min_psnr_db: f64::INFINITY, ..Default::default() });
        let n = r.frames as f64;
        r.psnr_db = (r.psnr_db * n + psnr) / (n + 1.0);
        r.ssim = (r.ssim * n + ssim) / (n + 1.0);
        r.min_psnr_db = r.min_psnr_db.min(psnr);
        r.frames += 1;
    }

    /// Notes why the reference could not be measured on this file.
    pub fn reference_unavailable(&mut self, why: &str) {
        if self.cfg.reference == Reference::Bicubic {
            let r = self.report.reference.get_or_insert_with(Default::default);
            r.note = Some(why.into());
        }
    }

    /// The report.
    pub fn finish(self) -> QualityReport {
        let mut r = self.report;
        if let Some(rf) = r.reference.as_mut() {
            if rf.frames == 0 {
                rf.min_psnr_db = 0.0;
            }
        }
        r
    }
}

/// Keys' cubic kernel with a = -0.5 (what FFmpeg's and most bicubic scalers use).
fn cubic(x: f32) -> f32 {
    let (a, x) = (-0.5f32, x.abs());
    if x <= 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    } else {
        0.0
    }
}

/// Downscales a `w`×`h` plane by the integer factor `s` with a bicubic filter stretched over the factor
/// (antialiased, as a resampler reducing size does), edges clamped.
fn downscale_bicubic(src: &[f32], w: usize, h: usize, s: usize, out: &mut Vec<f32>) {
    let (ow, oh) = (w / s, h / s);
    let taps = 2 * s as isize;
    let weights: Vec<f32> = (-taps + 1..=taps).map(|k| cubic((k as f32 - 0.5) / s as f32)).collect();
    let norm: f32 = weights.iter().sum();
    let mut rows = vec![0f32; ow * h];
    for y in 0..h {
        for ox in 0..ow {
            let centre = (ox * s + s / 2) as isize;
            let mut acc = 0f32;
            for (i, k) in (-taps + 1..=taps).enumerate() {
                let x = (centre + k - 1).clamp(0, w as isize - 1) as usize;
                acc += weights[i] * src[y * w + x];
            }
            rows[y * ow + ox] = acc / norm;
        }
    }
    out.clear();
    out.resize(ow * oh, 0.0);
    for oy in 0..oh {
        let centre = (oy * s + s / 2) as isize;
        for ox in 0..ow {
            let mut acc = 0f32;
            for (i, k) in (-taps + 1..=taps).enumerate() {
                let y = (centre + k - 1).clamp(0, h as isize - 1) as usize;
                acc += weights[i] * rows[y * ow + ox];
            }
            out[oy * ow + ox] = (acc / norm).clamp(0.0, 1.0);
        }
    }
}

fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let mse = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>() / a.len().max(1) as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (1.0 / mse).log10()
    }
}

/// Mean SSIM over non-overlapping 8×8 windows.
fn ssim(a: &[f32], b: &[f32], w: usize, h: usize) -> f64 {
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let (mut total, mut windows) = (0f64, 0u64);
    for wy in (0..h.saturating_sub(7)).step_by(8) {
        for wx in (0..w.saturating_sub(7)).step_by(8) {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0f64, 0f64, 0f64, 0f64, 0f64);
            for y in wy..wy + 8 {
                for x in wx..wx + 8 {
                    let (p, q) = (f64::from(a[y * w + x]), f64::from(b[y * w + x]));
                    sa += p;
                    sb += q;
                    saa += p * p;
                    sbb += q * q;
                    sab += p * q;
                }
            }
            let n = 64.0;
            let (ma, mb) = (sa / n, sb / n);
            let (va, vb, cov) = (saa / n - ma * ma, sbb / n - mb * mb, sab / n - ma * mb);
            total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            windows += 1;
        }
    }
    if windows == 0 {
        1.0
    } else {
        total / windows as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Vec<f32> {
        let mut v = vec![0f32; 3 * w * h];
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    v[(c * h + y) * w + x] = (x + y) as f32 / (w + h) as f32;
                }
            }
        }
        v
    }

    #[test]
    fn non_finite_and_flat_outputs_fail_and_name_the_frame() {
        let cfg = QualitySection::default();
        let input = rgb_stats(&ramp(16, 8), 16, 8);
        let mut g = Gates::new(&cfg);
        assert_eq!(g.check(1, Some(input), rgb_stats(&ramp(16, 8), 16, 8)), Ok(()));
        let mut nan = ramp(16, 8);
        nan[5] = f32::NAN;
        nan[7] = f32::INFINITY;
        assert_eq!(
            g.check(2, Some(input), rgb_stats(&nan, 16, 8)),
            Err(QualityFailure::NonFinite { frame: 2, count: 2 })
        );
        let black = vec![0f32; 3 * 16 * 8];
        let e = g.check(3, Some(input), rgb_stats(&black, 16, 8)).expect_err("flat output");
        assert!(matches!(e, QualityFailure::Flat { frame: 3, .. }), "{e}");
        // A flat input may give a flat output.
        assert_eq!(g.check(4, Some(rgb_stats(&black, 16, 8)), rgb_stats(&black, 16, 8)), Ok(()));
        let off = QualitySection { gates: false, ..cfg };
        assert_eq!(Gates::new(&off).check(1, Some(input), rgb_stats(&nan, 16, 8)), Ok(()));
    }

    #[test]
    fn the_reference_of_an_exact_upscale_is_near_perfect() {
        let (w, h, s) = (32, 24, 2);
        let input: Vec<f32> = (0..w * h).map(|i| ((i * 37) % 101) as f32 / 100.0 * 0.2 + 0.4).collect();
        // A smooth picture upscaled by replication: downscaling brings it back closely.
        let smooth: Vec<f32> = (0..w * h).map(|i| (i % w) as f32 / w as f32).collect();
        let up: Vec<f32> = (0..w * s * h * s).map(|i| smooth[(i / (w * s) / s) * w + (i % (w * s)) / s]).collect();
        let mut g = Gates::new(&QualitySection { reference: Reference::Bicubic, ..Default::default() });
        assert!(g.samples(1) && !g.samples(2) && g.samples(31));
        let (a, b) = g.scratch();
        a.clone_from(&smooth);
        b.clone_from(&up);
        g.measure(w, h, s);
        let (a, b) = g.scratch();
        a.clone_from(&input);
        b.clone_from(&up);
        g.measure(w, h, s);
        let r = g.finish().reference.expect("measured");
        assert_eq!(r.frames, 2);
        assert!(r.min_psnr_db < r.psnr_db, "{r:?}");
        assert!(r.psnr_db > 20.0 && r.ssim > 0.3, "{r:?}");
    }
}
