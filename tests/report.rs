//! The run report (`videoforge-run.html`): written at the end of a run, rebuilt by `videoforge report DIR`,
//! self-contained (no network fetch), and rendered by a real headless browser (Debian's chromium; the test says so
//! and skips that part when chromium is not installed).

mod common;

use common::{ffmpeg, onnx};
use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_videoforge"));
    c.env("VIDEOFORGE_NO_GPU", "1").env("ORT_DYLIB_PATH", common::ort_library());
    c
}

fn clip(path: &Path, source: &str) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        source,
        "-frames:v",
        "24",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        &path.to_string_lossy(),
    ]);
}

#[test]
fn a_run_writes_a_self_contained_report_that_a_browser_renders() {
    let dir = tempfile::tempdir().expect("tempdir");
    clip(&dir.path().join("bars.mp4"), "testsrc2=size=96x64:rate=24");
    clip(&dir.path().join("fractal.mp4"), "mandelbrot=size=96x64:rate=24");
    let model = onnx::write(dir.path(), "nearest.onnx", &onnx::nearest(2));
    let job = format!(
        "version = 1\n[model]\npath = {:?}\n[device]\ngpus = \"cpu\"\n[[input]]\npath = \"*.mp4\"\n[output]\ndir = \"out\"\n\
         [encode]\npreset = \"ultrafast\"\n[quality]\nreference = \"bicubic\"\n",
        model.to_string_lossy()
    );
    std::fs::write(dir.path().join("job.toml"), job).expect("job");
    let o = bin().arg("run").arg(dir.path().join("job.toml")).output().expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path().join("out");
    let html_path = out.join("videoforge-run.html");
    let first = std::fs::read_to_string(&html_path).expect("the run wrote its report");
    for name in ["bars.mp4", "fractal.mp4", "Frames per second", "Stage busy", "Quality gates", "reference (bicubic)"] {
        assert!(first.contains(name), "the report shows {name}");
    }
    assert_eq!(first.matches("data:image/png;base64,").count(), 2, "a before/after picture per file");
    assert!(out.join("bars.x2.mp4.report.png").is_file());
    // Self-contained: nothing is fetched (no scripts, stylesheets or images from elsewhere).
    for needle in ["http://", "https://", "<script", "<link"] {
        assert!(!first.contains(needle), "the report must not contain {needle}");
    }
    // `videoforge report DIR` rebuilds it from the JSON reports alone.
    std::fs::remove_file(&html_path).expect("removed");
    let o = bin().arg("report").arg(&out).output().expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(&html_path).expect("rebuilt"), first);

    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| Path::new(p).exists())
    else {
        eprintln!("SKIPPED the browser part: chromium is not installed (apt install chromium)");
        return;
    };
    let shot = dir.path().join("shot.png");
    let profile = dir.path().join("chromium-profile");
    let st = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--window-size=1280,1600"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html_path.display()))
        .output()
        .expect("chromium runs");
    assert!(st.status.success() && shot.is_file(), "{}", String::from_utf8_lossy(&st.stderr));
    // The page really rendered: read the screenshot back and find the pictures' colours and the green badges.
    let img = videoforge::video::still(&shot, 0.0, None).expect("a PNG screenshot");
    assert_eq!((img.width, img.height), (1280, 1600));
    let px = img.rgb.chunks_exact(3);
    let not_white = px.clone().filter(|p| p.iter().any(|&c| c < 200)).count();
    let green = px.filter(|p| p[1] > 140 && p[0] < 80 && p[2] < 80).count();
    eprintln!("screenshot: {not_white} non-white pixels, {green} green");
    assert!(not_white > 1280 * 1600 / 20, "mostly blank: {not_white} non-white pixels");
    assert!(green > 200, "no status badge or chart drawn: {green} green pixels");
}
