//! Helpers for the studio and archive tests: raw planes at any chroma layout and depth, plane-level nearest-x2
//! references, per-plane PSNR, ffprobe as JSON, an interlaced clip, and the pipeline run with a deinterlace choice.

use super::{ffmpeg, ffprobe, pipe, raw_frames};
use std::path::Path;
use videoforge::backend::FrameModel;
use videoforge::codec::{Container, Deinterlace, Device};
use videoforge::pipeline::{self, Cancel, Engine, FileJob, FileProgress, FileReport};
use videoforge::plan::{EncodePlan, FileSettings, PipelinePlan};
use videoforge::EngineError;

/// A raw planar layout: luma size, chroma shifts, bytes per sample.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub width: usize,
    pub height: usize,
    /// log2 of the horizontal and vertical chroma divisors.
    pub shifts: (u32, u32),
    /// 8 or more.
    pub bits: u8,
}

impl Layout {
    pub fn new(width: usize, height: usize, chroma: &str, bits: u8) -> Layout {
        let shifts = match chroma {
            "420" => (1, 1),
            "422" => (1, 0),
            _ => (0, 0),
        };
        Layout { width, height, shifts, bits }
    }

    pub fn chroma_size(&self) -> (usize, usize) {
        (self.width.div_ceil(1 << self.shifts.0), self.height.div_ceil(1 << self.shifts.1))
    }

    /// Samples per frame.
    pub fn frame_samples(&self) -> usize {
        let (cw, ch) = self.chroma_size();
        self.width * self.height + 2 * cw * ch
    }

    /// The same layout at twice the size.
    pub fn doubled(&self) -> Layout {
        Layout { width: 2 * self.width, height: 2 * self.height, ..*self }
    }

    /// The pixel format name (`yuv422p10le`).
    pub fn pix_fmt(&self) -> String {
        let c = match self.shifts {
            (1, 1) => "420",
            (1, 0) => "422",
            _ => "444",
        };
        if self.bits > 8 {
            format!("yuv{c}p{}le", self.bits)
        } else {
            format!("yuv{c}p")
        }
    }
}

/// A file's video decoded to `layout`'s pixel format, one sample per `u16`.
pub fn samples(path: &Path, layout: &Layout) -> Vec<u16> {
    let raw = raw_frames(path, &layout.pix_fmt());
    if layout.bits > 8 {
        raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
    } else {
        raw.into_iter().map(u16::from).collect()
    }
}

/// Plane-level nearest-neighbour x2 of every frame: what the exact nearest-x2 model gives after the colour
/// round trip (each output chroma sample covers output pixels that all came from one input pixel).
pub fn nearest2(frames: &[u16], l: &Layout) -> Vec<u16> {
    let (cw, ch) = l.chroma_size();
    let mut out = Vec::with_capacity(frames.len() * 4);
    for f in frames.chunks_exact(l.frame_samples()) {
        let mut at = 0;
        for (pw, ph) in [(l.width, l.height), (cw, ch), (cw, ch)] {
            let p = &f[at..at + pw * ph];
            for y in 0..2 * ph {
                for x in 0..2 * pw {
                    out.push(p[(y / 2) * pw + x / 2]);
                }
            }
            at += pw * ph;
        }
    }
    out
}

/// PSNR (dB) of each plane (Y, Cb, Cr) over all frames, for `bits`-bit samples.
pub fn plane_psnr(a: &[u16], b: &[u16], l: &Layout) -> [f64; 3] {
    assert_eq!(a.len(), b.len(), "raw sizes differ (frame count or size)");
    let (cw, ch) = l.chroma_size();
    let sizes = [l.width * l.height, cw * ch, cw * ch];
    let peak = f64::from((1u32 << l.bits) - 1);
    let mut sse = [0f64; 3];
    let mut n = [0usize; 3];
    for (fa, fb) in a.chunks_exact(l.frame_samples()).zip(b.chunks_exact(l.frame_samples())) {
        let mut at = 0;
        for (i, s) in sizes.iter().enumerate() {
            for (x, y) in fa[at..at + s].iter().zip(&fb[at..at + s]) {
                sse[i] += (f64::from(*x) - f64::from(*y)).powi(2);
            }
            n[i] += s;
            at += s;
        }
    }
    std::array::from_fn(
        |i| if sse[i] == 0.0 { f64::INFINITY } else { 10.0 * (peak * peak * n[i] as f64 / sse[i]).log10() },
    )
}

/// `ffprobe -show_streams -show_format` as JSON.
pub fn probe_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&ffprobe(path, &["-show_streams", "-show_format", "-of", "json"])).expect("ffprobe JSON")
}

/// The first video frame's description (with its side data) as JSON.
pub fn first_frame_json(path: &Path) -> serde_json::Value {
    let out = ffprobe(path, &["-select_streams", "v:0", "-read_intervals", "%+#1", "-show_frames", "-of", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ffprobe JSON");
    v["frames"][0].clone()
}

/// Every video frame's pts_time as a number.
pub fn times(path: &Path) -> Vec<f64> {
    super::frame_times(path).iter().map(|t| t.parse().expect("a time")).collect()
}

/// Runs one file through the pipeline on the CPU with a deinterlace choice.
pub fn run_filtered(
    input: &Path,
    output: &Path,
    container: Container,
    encode: &EncodePlan,
    deinterlace: Deinterlace,
    model: Box<dyn FrameModel>,
) -> Result<FileReport, EngineError> {
    run_settings(input, output, container, encode, &pipe(), deinterlace, model, &Cancel::new())
}

/// Runs one file through the pipeline on the CPU with these stage sizes and deinterlace choice.
#[allow(clippy::too_many_arguments)]
pub fn run_settings(
    input: &Path,
    output: &Path,
    container: Container,
    encode: &EncodePlan,
    pipeline: &PipelinePlan,
    deinterlace: Deinterlace,
    model: Box<dyn FrameModel>,
    cancel: &Cancel,
) -> Result<FileReport, EngineError> {
    let scale = model.scale();
    pipeline::upscale_file(FileJob {
        settings: FileSettings {
            input,
            output,
            device: Device::Cpu,
            container,
            encode,
            pipeline,
            decode: &[],
            scale,
            frame_pool_budget: None,
            quality: &Default::default(),
            deinterlace,
        },
        engine: Engine::Host(model),
        cancel,
        progress: FileProgress::none(),
        metadata: vec![("videoforge_fingerprint".into(), "test-fp".into())],
        audit: Some(0),
        digest_frames: false,
        before_publish: None,
    })
}

/// What [`interlaced_h264`] weaves: 80 progressive frames at 59.94 fps.
const WOVEN_SOURCE: [&str; 6] = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=60000/1001", "-frames:v", "80"];

/// An interlaced H.264 clip at `path` (MBAFF, top field first, BT.601 limited range, 320x240, 40 frames woven from
/// 80: the top field of frame 2k, the bottom of 2k + 1) made with the `ffmpeg` CLI; `pre` is a filter chain run
/// before the interlacing (e.g. `"hue=s=0.6,"`).
pub fn interlaced_h264(path: &Path, pre: &str) {
    let (vf, out) = (format!("{pre}tinterlace=mode=interleave_top"), path.to_string_lossy());
    let rest = ["-vf", &vf, "-frames:v", "40", "-colorspace", "smpte170m", "-color_range", "tv", "-c:v", "libx264"];
    let x264 = ["-flags", "+ildct+ilme", "-x264-params", "tff=1", "-crf", "12", &out];
    ffmpeg(&[&WOVEN_SOURCE[..4], &rest[..], &x264[..]].concat());
}

/// The progressive frames [`interlaced_h264`] weaves (the same `pre` chain), losslessly (FFV1, 4:2:0): what a
/// perfect deinterlacer at one frame per field would give back.
pub fn interlaced_h264_truth(path: &Path, pre: &str) {
    let vf = pre.trim_end_matches(',');
    let vf = if vf.is_empty() { "null" } else { vf };
    let out = path.to_string_lossy();
    ffmpeg(&[&WOVEN_SOURCE[..], &["-vf", vf, "-pix_fmt", "yuv420p", "-c:v", "ffv1", &out]].concat());
}
