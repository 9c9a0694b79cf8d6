//! The CLI as a user meets it: help text, validate, plan, schema and doctor, with snapshots of their output.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn vf(args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_videoforge"));
    c.current_dir(root()).args(args).env("VIDEOFORGE_NO_GPU", "1").env("NO_COLOR", "1");
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        c.env("ORT_DYLIB_PATH", root().join(".deps/onnxruntime/libonnxruntime.so"));
    }
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_teaches_the_commands_and_exit_codes() {
    let o = vf(&["--help"]);
    assert!(o.status.success());
    insta::assert_snapshot!("help", stdout(&o));
}

#[test]
fn run_help() {
    let o = vf(&["run", "--help"]);
    assert!(o.status.success());
    insta::assert_snapshot!("run_help", stdout(&o));
}

#[test]
fn validate_lists_every_problem_with_file_and_key() {
    let o = vf(&["validate", "jobs/invalid/many_problems.toml", "jobs/invalid/bad_precision.toml", "jobs/demo.toml"]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o).replace(&root().display().to_string(), "<root>");
    insta::assert_snapshot!("validate_problems", err);
    assert_eq!(stdout(&o), "jobs/demo.toml: ok\n");
}

#[test]
fn usage_errors_exit_2() {
    let o = vf(&["run"]);
    assert_eq!(o.status.code(), Some(2));
    let o = vf(&["-i", "x.mp4"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn schema_command_prints_the_checked_in_schema() {
    let o = vf(&["schema"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), std::fs::read_to_string(root().join("schemas/job.schema.json")).unwrap());
}

#[test]
fn doctor_without_a_gpu_prints_a_cpu_plan_and_exits_0() {
    let o = vf(&["doctor"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("plan:       CPU"), "{out}");
    assert!(out.contains("gpus:       none"), "{out}");
    assert!(out.contains("plugin:     onnxruntime"), "the ONNX Runtime plugin is found: {out}");
    let o = vf(&["doctor", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["plan"].as_str().unwrap().starts_with("CPU"));
    assert!(v["machine"]["gpus"].as_array().unwrap().is_empty());
    assert!(!v["machine"]["notes"].as_array().unwrap().is_empty(), "says why there is no GPU");
}

/// Without ONNX Runtime nothing can run: doctor says which plugin cannot run and why, and exits 4.
#[test]
fn doctor_without_onnx_runtime_says_so_and_exits_4() {
    let o = Command::new(env!("CARGO_BIN_EXE_videoforge"))
        .current_dir(root())
        .arg("doctor")
        .env("VIDEOFORGE_NO_GPU", "1")
        .env("ORT_DYLIB_PATH", root().join("no/such/libonnxruntime.so"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("plugin:     onnxruntime 0.1.0 CANNOT RUN:") && out.contains("no/such/libonnxruntime.so"),
        "{out}"
    );
    assert!(stderr(&o).contains("nothing can run"), "{}", stderr(&o));
}

#[test]
fn plan_prints_the_full_engine_plan_as_json_deterministically() {
    let a = vf(&["plan", "jobs/demo.toml", "--json"]);
    assert!(a.status.success(), "{}", stderr(&a));
    let b = vf(&["plan", "jobs/demo.toml", "--json"]);
    assert_eq!(a.stdout, b.stdout, "the same inputs give the same plan, byte for byte");
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(v["model"]["scale"], 2, "scale read from the model");
    assert_eq!(v["model"]["execution_provider"], "cpu");
    assert_eq!(v["workers"][0]["device"], "Cpu");
    assert_eq!(v["encode"]["encoder"], "libx264");
    assert_eq!(v["work"].as_array().unwrap().len(), 1);
    assert!(v["work"][0]["output"].as_str().unwrap().ends_with("sample.x2.mp4"));
    let text = vf(&["plan", "jobs/demo.toml"]);
    assert!(stdout(&text).contains("fingerprint "), "{}", stdout(&text));
}

/// A damaged input fails with the file named once and exit 1; with `--debug`, FFmpeg's own message about the
/// damage is shown too (through tracing, target `ffmpeg`), and without it FFmpeg prints nothing.
#[test]
fn a_corrupt_input_names_the_file_and_debug_shows_ffmpeg_s_message() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.ts");
    let status = Command::new("ffmpeg")
        .args(["-y", "-v", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=2"])
        .args(["-c:v", "libx264", "-g", "5"])
        .arg(&good)
        .status()
        .unwrap();
    assert!(status.success());
    let mut bytes = std::fs::read(&good).unwrap();
    let (a, b) = (bytes.len() / 3, 2 * bytes.len() / 3);
    for (i, x) in bytes[a..b].iter_mut().enumerate() {
        *x = (i * 7919 % 251) as u8;
    }
    let bad = dir.path().join("corrupt.ts");
    std::fs::write(&bad, &bytes).unwrap();
    let (input, output) = (bad.to_string_lossy(), dir.path().join("out.mkv").to_string_lossy().into_owned());
    let model = root().join("tests/fixtures/models/nearest2x.onnx").to_string_lossy().into_owned();
    let args = ["-i", &input, "-o", &output, "-m", &model, "-d", "cpu"];
    let quiet = vf(&args);
    assert_eq!(quiet.status.code(), Some(1), "{}", stderr(&quiet));
    let err = stderr(&quiet);
    assert!(err.contains("frames decoded before the stream broke"), "{err}");
    assert!(!err.contains(&format!("{input}: {input}")), "the file is named once: {err}");
    assert!(!err.contains("[h264 @"), "FFmpeg is quiet without --debug: {err}");
    let debug = vf(&[&["--debug"][..], &args].concat());
    let err = stderr(&debug);
    assert!(err.contains("[h264 @") && err.contains("error while decoding MB"), "{err}");
}
