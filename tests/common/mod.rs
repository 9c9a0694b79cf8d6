//! Shared helpers for the media/pipeline tests: real input files made with the `ffmpeg` CLI, ffprobe queries,
//! raw-frame comparison (PSNR), test-local models and the real ONNX plugin.
#![allow(dead_code)]

pub mod media;
pub mod onnx;

use std::path::{Path, PathBuf};
use std::process::Command;
use videoforge::backend::{BackendError, FrameModel};
use videoforge::codec::{Codec, Container};
use videoforge::pipeline::{Cancel, FileReport};
use videoforge::plan::{EncodePlan, PipelinePlan};
use videoforge::EngineError;

/// The repository root (models, fixtures, .deps). `VIDEOFORGE_ROOT` overrides it: a test binary carried to a GPU
/// machine runs from a checkout at another path.
pub fn root() -> PathBuf {
    std::env::var_os("VIDEOFORGE_ROOT").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

/// The videoforge binary: `VIDEOFORGE_BIN` where a test binary was carried to a GPU machine (Cargo's path of it is
/// the build machine's), else the one Cargo built.
pub fn videoforge_bin() -> PathBuf {
    std::env::var_os("VIDEOFORGE_BIN").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_BIN_EXE_videoforge").into())
}

/// A smooth gradient with some texture: planar RGB in [0, 1].
pub fn pattern(w: usize, h: usize) -> Vec<f32> {
    let mut v = vec![0f32; 3 * w * h];
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let g = (x as f32 / w as f32 + y as f32 / h as f32) / 2.0;
                let t = if (x / 4 + y / 4 + c) % 2 == 0 { 0.15 } else { -0.15 };
                v[(c * h + y) * w + x] = (0.2 + 0.6 * g + t).clamp(0.0, 1.0);
            }
        }
    }
    v
}

/// Run `ffmpeg -y -v error <args>` and panic with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg").args(["-y", "-nostdin", "-v", "error"]).args(args).output().expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `ffprobe -v error <args> path` stdout.
pub fn ffprobe(path: &Path, args: &[&str]) -> String {
    let out = Command::new("ffprobe").args(["-v", "error"]).args(args).arg(path).output().expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One field of the first video stream (`width`, `pix_fmt`, `color_space`...).
pub fn video_field(path: &Path, field: &str) -> String {
    let out = ffprobe(path, &["-select_streams", "v:0", "-show_entries", &format!("stream={field}"), "-of", "csv=p=0"]);
    out.lines().next().unwrap_or("").trim_end_matches(',').to_string()
}

/// Every video frame's pts_time, in presentation order.
pub fn frame_times(path: &Path) -> Vec<String> {
    ffprobe(path, &["-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .lines()
        .filter_map(|l| l.split(',').next().filter(|t| !t.is_empty()).map(str::to_string))
        .collect()
}

/// md5 of a stream selection copied unchanged (`0:a`, `0:s`).
pub fn stream_md5(path: &Path, map: &str) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-map", map, "-c", "copy", "-f", "md5", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "md5 of {map}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Decode a file's video to raw planes in `pix_fmt` (no colour conversion when it is the stream's own format).
pub fn raw_frames(path: &Path, pix_fmt: &str) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// PSNR in dB of two equally long 8-bit sample sequences (infinite when identical).
pub fn psnr8(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "sizes differ");
    let mse = a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum::<f64>() / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// Per-plane PSNR (Y, U, V) of two yuv420p raw streams of `w`×`h` frames.
pub fn psnr_yuv420(a: &[u8], b: &[u8], w: usize, h: usize) -> (f64, f64, f64) {
    assert_eq!(a.len(), b.len(), "raw sizes differ (frame count or size)");
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let fs = w * h + 2 * cw * ch;
    let (mut ya, mut yb, mut ua, mut ub, mut va, mut vb) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (fa, fb) in a.chunks(fs).zip(b.chunks(fs)) {
        ya.extend_from_slice(&fa[..w * h]);
        yb.extend_from_slice(&fb[..w * h]);
        ua.extend_from_slice(&fa[w * h..w * h + cw * ch]);
        ub.extend_from_slice(&fb[w * h..w * h + cw * ch]);
        va.extend_from_slice(&fa[w * h + cw * ch..]);
        vb.extend_from_slice(&fb[w * h + cw * ch..]);
    }
    (psnr8(&ya, &yb), psnr8(&ua, &ub), psnr8(&va, &vb))
}

/// Exact nearest-neighbour upscaling in Rust (a test-local model, for tests that are not about inference).
pub struct Nearest(pub u32);

impl FrameModel for Nearest {
    fn scale(&self) -> u32 {
        self.0
    }
    fn upscale(&mut self, input: &[f32], w: usize, h: usize, out: &mut Vec<f32>) -> Result<(), BackendError> {
        let s = self.0 as usize;
        let (ow, oh) = (w * s, h * s);
        out.clear();
        out.resize(3 * ow * oh, 0.0);
        for p in 0..3 {
            for y in 0..oh {
                for x in 0..ow {
                    out[p * ow * oh + y * ow + x] = input[p * w * h + (y / s) * w + x / s];
                }
            }
        }
        Ok(())
    }
}

/// A model that panics on its `n`th frame.
pub struct PanicsAt(pub u32);

impl FrameModel for PanicsAt {
    fn scale(&self) -> u32 {
        2
    }
    fn upscale(&mut self, input: &[f32], w: usize, h: usize, out: &mut Vec<f32>) -> Result<(), BackendError> {
        assert!(self.0 > 0, "model exploded");
        self.0 -= 1;
        Nearest(2).upscale(input, w, h, out)
    }
}

/// The ONNX Runtime library the tests use: `ORT_DYLIB_PATH`, else the checkout's `.deps/onnxruntime/`.
pub fn ort_library() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".deps/onnxruntime/libonnxruntime.so"))
}

/// The environment a test run gets: the CLI's defaults, with the tests' ONNX Runtime.
pub fn env() -> videoforge::runner::Environment {
    videoforge::runner::Environment { runtime_library: Some(ort_library()), ..Default::default() }
}

/// The real ONNX Runtime plugin.
pub fn plugin() -> videoforge::backend::Plugin {
    let path = videoforge::backend::find_plugin("onnxruntime", &[]).expect("plugin built (cargo build --workspace)");
    videoforge::backend::Plugin::load_with(&path, Some(&ort_library())).expect("plugin loads")
}

/// Load a model through the real ONNX Runtime plugin (CPU).
pub fn onnx_model(model: &Path) -> Box<dyn FrameModel> {
    let plugin = plugin();
    let m = plugin.open_model(&videoforge::backend::ModelOptions::cpu(model)).expect("model opens");
    Box::new(m)
}

/// Lossless FFV1 encoding, streams copied.
pub fn ffv1() -> EncodePlan {
    EncodePlan { segments: 1, ..EncodePlan::with_defaults(Codec::Ffv1) }
}

/// x264 at a given crf, fast preset.
pub fn x264(crf: u32) -> EncodePlan {
    EncodePlan {
        codec: Codec::H264,
        encoder: "libx264".into(),
        crf: Some(crf),
        preset: Some("veryfast".into()),
        ..ffv1()
    }
}

/// Small queues, two CPU threads.
pub fn pipe() -> PipelinePlan {
    PipelinePlan {
        depth: 2,
        batch: 1,
        tile: 0,
        tile_overlap: 0,
        cpu_threads: 2,
        inference_threads: 2,
        pin_host_frames: true,
    }
}

/// Run one file through the pipeline.
pub fn run(
    input: &Path,
    output: &Path,
    container: Container,
    encode: &EncodePlan,
    model: Box<dyn FrameModel>,
    cancel: &Cancel,
) -> Result<FileReport, EngineError> {
    run_with(input, output, container, encode, &pipe(), model, cancel)
}

/// Run one file through the pipeline with these stage sizes.
pub fn run_with(
    input: &Path,
    output: &Path,
    container: Container,
    encode: &EncodePlan,
    pipeline: &PipelinePlan,
    model: Box<dyn FrameModel>,
    cancel: &Cancel,
) -> Result<FileReport, EngineError> {
    media::run_settings(input, output, container, encode, pipeline, videoforge::codec::Deinterlace::Auto, model, cancel)
}

/// `videoforge bench --synthetic -d DEVICE --size SIZE --frames N -m MODEL`, as a user runs it (the binary
/// registers its own counting allocator): its one JSON result.
pub fn bench_synthetic(device: &str, size: &str, frames: u32, model: &Path) -> serde_json::Value {
    let frames = frames.to_string();
    let out = Command::new(videoforge_bin())
        .args(["bench", "--synthetic", "-d", device, "--size", size, "--frames", &frames, "-m"])
        .arg(model)
        .env("ORT_DYLIB_PATH", ort_library())
        .output()
        .expect("videoforge runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON result");
    eprintln!("{r}");
    r
}

/// Files left in a directory (to check that nothing partial remains).
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}
