//! Quality gates through the real CLI, with ONNX models built in the test: a model whose output is all NaN and
//! one whose output is all zero are never published (exit 1, the first bad frame named, a report that says
//! `quality_failed`, and a rerun that tries again); an exact model passes with every frame checked; the gates can
//! be turned off; the bicubic reference is recorded. Also: the output bytes do not depend on the CPU threads, and
//! (ignored, on a GPU) the same gates on the GPU path.

mod common;

use common::{ffmpeg, onnx};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_videoforge"));
    c.env("VIDEOFORGE_NO_GPU", "1").env("ORT_DYLIB_PATH", common::ort_library());
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// 12 frames of a moving test pattern (not flat), H.264.
fn clip(dir: &Path) -> PathBuf {
    let p = dir.join("in.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=24",
        "-frames:v",
        "12",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        &p.to_string_lossy(),
    ]);
    p
}

/// A job over `input` with `model`, extra TOML appended.
fn job(dir: &Path, input: &Path, model: &Path, extra: &str) -> PathBuf {
    let q = |p: &Path| serde_json::to_string(&p.to_string_lossy()).expect("json string");
    let text = format!(
        "version = 1\n[model]\npath = {}\n[device]\ngpus = \"cpu\"\n[[input]]\npath = {}\n[output]\ndir = \"out\"\n\
         container = \"mkv\"\n[encode]\ncodec = \"ffv1\"\n{extra}",
        q(model),
        q(input)
    );
    let p = dir.join("job.toml");
    std::fs::write(&p, text).expect("job written");
    p
}

fn report(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("out/in.x2.mkv.report.json")).expect("report written");
    serde_json::from_str(&text).expect("report is JSON")
}

#[test]
fn a_model_that_outputs_nan_is_never_published_and_is_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = clip(dir.path());
    let model = onnx::write(dir.path(), "nan.onnx", &onnx::conv_depth_to_space(2, |_, _| f32::NAN));
    let job = job(dir.path(), &input, &model, "");
    let o = bin().arg("run").arg(&job).output().expect("runs");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("frame 1: the model's output holds") && t.contains("non-finite"), "{t}");
    assert!(!dir.path().join("out/in.x2.mkv").exists(), "nothing published");
    let r = report(dir.path());
    assert_eq!(r["status"], "quality_failed", "{r}");
    assert!(r["error"].as_str().is_some_and(|e| e.contains("not published")), "{r}");
    let left = common::dir_entries(&dir.path().join("out"));
    assert!(!left.iter().any(|n| n.contains(".partial-")), "{left:?}");
    // A rerun does not skip it: it is tried again (and fails again).
    let o = bin().arg("run").arg(&job).output().expect("runs");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("0 done, 0 skipped, 1 failed"), "{}", text(&o));
}

#[test]
fn a_model_that_outputs_zero_fails_the_flat_gate_unless_gates_are_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = clip(dir.path());
    let model = onnx::write(dir.path(), "zero.onnx", &onnx::conv_depth_to_space(2, |_, _| 0.0));
    let job_file = job(dir.path(), &input, &model, "");
    // The single-file form too.
    let out = dir.path().join("single.mkv");
    let o =
        bin().arg("-i").arg(&input).arg("-o").arg(&out).arg("-m").arg(&model).arg("-d").arg("cpu").output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("frame 1: the output is flat"), "{t}");
    assert!(!out.exists());
    let o = bin().arg("run").arg(&job_file).output().expect("runs");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(report(dir.path())["status"], "quality_failed");
    // [quality] gates = false publishes what the model makes.
    let job_file = job(dir.path(), &input, &model, "[quality]\ngates = false\n");
    let o = bin().arg("run").arg(&job_file).output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(dir.path().join("out/in.x2.mkv").exists());
    assert_eq!(report(dir.path())["pipeline"]["quality"]["gates"], false);
}

#[test]
fn an_exact_model_passes_every_frame_and_records_the_reference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = clip(dir.path());
    let model = onnx::write(dir.path(), "nearest.onnx", &onnx::nearest(2));
    let job = job(dir.path(), &input, &model, "[quality]\nreference = \"bicubic\"\nreference_every = 4\n");
    let o = bin().arg("run").arg(&job).output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let q = &report(dir.path())["pipeline"]["quality"];
    assert_eq!(q["frames_checked"], 12, "{q}");
    let r = &q["reference"];
    assert_eq!(r["frames"], 3, "frames 1, 5 and 9: {q}");
    // Nearest upscaling downscaled again is close to the input, though not exact (the filter spreads).
    assert!(r["psnr_db"].as_f64().is_some_and(|p| p > 25.0), "{q}");
    assert!(r["ssim"].as_f64().is_some_and(|s| s > 0.8), "{q}");
}

#[test]
fn output_bytes_do_not_depend_on_the_inference_threads() {
    use videoforge::backend::ModelOptions;
    let dir = tempfile::tempdir().expect("tempdir");
    let model = common::root().join("models/realesr-animevideov3-x2.onnx");
    let plugin = common::plugin();
    let (w, h) = (48, 32);
    let input = common::pattern(w, h);
    let run = |threads: u32| {
        let mut m = plugin.open_model(&ModelOptions { threads, ..ModelOptions::cpu(&model) }).expect("opens");
        let mut out = Vec::new();
        videoforge::backend::FrameModel::upscale(&mut m, &input, w, h, &mut out).expect("runs");
        out.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()
    };
    let one = run(1);
    for threads in [2, 4, 7] {
        assert!(run(threads) == one, "{threads} threads gave other bytes than 1");
    }
    drop(dir);
}

/// On the lent GPU: the same gates on the GPU path, where the non-finite count and the flatness statistics are
/// reductions on the device, fused with the output conversion. Run with `-- --ignored` and `ORT_DYLIB_PATH` at ONNX
/// Runtime's CUDA build (and `VIDEOFORGE_BIN` at the binary where the test binary was carried).
#[test]
#[ignore = "needs an NVIDIA GPU and ONNX Runtime's CUDA build (ORT_DYLIB_PATH)"]
fn the_gates_hold_on_the_gpu_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Made through the library (the GPU machine has no ffmpeg CLI): a moving pattern, not flat.
    let input = dir.path().join("in.mp4");
    videoforge::video::write_synthetic_clip(&input, 64, 48, 12).expect("clip written");
    let on_gpu = |model: &Path, name: &str| {
        let out = dir.path().join(name);
        let o = Command::new(common::videoforge_bin())
            .arg("-i")
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .arg("-m")
            .arg(model)
            .args(["-d", "0"])
            .output()
            .expect("runs");
        let report = std::fs::read_to_string(format!("{}.report.json", out.display())).expect("report written");
        (o, out, serde_json::from_str::<serde_json::Value>(&report).expect("report is JSON"))
    };
    let nan = onnx::write(dir.path(), "nan.onnx", &onnx::conv_depth_to_space(2, |_, _| f32::NAN));
    let (o, out, r) = on_gpu(&nan, "nan.mkv");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("frame 1: the model's output holds") && text(&o).contains("non-finite"), "{}", text(&o));
    assert!(!out.exists(), "nothing published");
    assert_eq!(r["status"], "quality_failed", "{r}");
    let zero = onnx::write(dir.path(), "zero.onnx", &onnx::conv_depth_to_space(2, |_, _| 0.0));
    let (o, out, r) = on_gpu(&zero, "zero.mkv");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("frame 1: the output is flat"), "{}", text(&o));
    assert!(!out.exists(), "nothing published");
    assert_eq!(r["status"], "quality_failed", "{r}");
    let exact = onnx::write(dir.path(), "nearest.onnx", &onnx::nearest(2));
    let (o, out, r) = on_gpu(&exact, "nearest.mkv");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.exists());
    assert_eq!(r["status"], "complete", "{r}");
    // The frames went through the GPU stage (NVDEC or upload), where the gates are device reductions.
    assert!(["nvdec", "upload"].contains(&r["pipeline"]["frame_path"].as_str().unwrap_or("")), "{r}");
}
