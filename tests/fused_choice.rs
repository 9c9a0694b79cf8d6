//! Choosing the backend: `fused-cuda` asked for where it cannot run is a problem naming `model.backend` and why;
//! `auto` says in the plan why it took ONNX Runtime. (On a GPU of SM 8.0+ with NVRTC, `auto` takes fused-cuda: the
//! GPU tests of `backends/fused-cuda` cover that machine.)

mod common;

use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_videoforge"));
    c.env("ORT_DYLIB_PATH", common::ort_library());
    c
}

fn job(dir: &std::path::Path, backend: &str, gpus: &str) -> std::path::PathBuf {
    let text = format!(
        "version = 1\n[model]\npath = {:?}\nbackend = \"{backend}\"\n[device]\ngpus = {gpus}\n[[input]]\npath = {:?}\n\
         [output]\ndir = \"out\"\n",
        common::root().join("models/realesr-animevideov3-x2.onnx").to_string_lossy(),
        common::root().join("jobs/media/sample.mp4").to_string_lossy(),
    );
    let p = dir.join(format!("{backend}.toml"));
    std::fs::write(&p, text).expect("job");
    p
}

#[test]
fn fused_cuda_asked_for_where_it_cannot_run_is_a_problem_and_auto_says_why_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = bin().arg("plan").arg(job(dir.path(), "fused-cuda", "\"cpu\"")).output().expect("runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("model.backend: fused-cuda cannot run this job: the job runs on the CPU"), "{err}");
    assert!(err.contains("fused-cuda.toml:4:"), "located at the key: {err}");

    let o = bin().arg("plan").arg(job(dir.path(), "auto", "\"cpu\"")).output().expect("runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("why:        backend: ONNX Runtime, because fused-cuda is not used: the job runs on the CPU"),
        "{out}"
    );

    // No GPU on this machine (or GPUs switched off): auto on "every GPU" says so too.
    let o = bin()
        .arg("plan")
        .arg(job(dir.path(), "auto", "\"auto\""))
        .env("VIDEOFORGE_NO_GPU", "1")
        .output()
        .expect("runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("because fused-cuda is not used: no GPU here"), "{out}");
}

/// The single-file form and `bench` take `--backend`: asked for fused-cuda without a GPU they stop with the reason
/// and write nothing.
#[test]
fn the_command_line_forms_take_the_backend_and_say_why_it_cannot_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.mp4");
    let o = bin()
        .args(["-i", &common::root().join("jobs/media/sample.mp4").to_string_lossy()])
        .args(["-o", &out.to_string_lossy()])
        .args(["-m", &common::root().join("models/realesr-animevideov3-x2.onnx").to_string_lossy()])
        .args(["-d", "cpu", "--backend", "fused-cuda"])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("model.backend: fused-cuda cannot run this job: the job runs on the CPU"), "{err}");
    assert!(!out.exists(), "nothing written");

    let o = bin()
        .args(["bench", "--backend", "fused-cuda", "--size", "64x48", "--frames", "1"])
        .args(["-m", &common::root().join("models/realesr-animevideov3-x2.onnx").to_string_lossy()])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("fused-cuda runs on CUDA GPUs only"), "{err}");
}
