//! The audit (`--audit`) and the synthetic stress test on the CPU, through the real ONNX Runtime plugin with
//! `nearest2x.onnx`. This test binary registers the counting allocator, as the `videoforge` binary does.
//! Needs the plugin (`cargo build --workspace`), ONNX Runtime (`ORT_DYLIB_PATH`) and the `ffmpeg` CLI.

mod common;

use common::{ffmpeg, root};
use std::sync::Mutex;
use videoforge::audit::CountingAlloc;
use videoforge::manifest::{self, JobSpec};
use videoforge::runner::{self, RunOptions};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The allocation window is process-wide and counts every thread: one test at a time in this binary.
static SERIAL: Mutex<()> = Mutex::new(());

/// An audited, forced run with the tests' ONNX Runtime.
fn audited() -> RunOptions {
    RunOptions { force: true, audit: true, env: common::env(), ..Default::default() }
}

/// 60 frames of 96x64 H.264 (`in.mp4` in `dir`).
fn h264_clip(dir: &std::path::Path) -> std::path::PathBuf {
    let input = dir.join("in.mp4");
    let i = input.to_string_lossy();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=96x64:rate=25",
        "-frames:v",
        "60",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        &i,
    ]);
    input
}

fn job(input: &std::path::Path, out_dir: &std::path::Path) -> JobSpec {
    job_on(input, out_dir, &root().join("tests/fixtures/models/nearest2x.onnx"), "\"cpu\"")
}

fn job_on(input: &std::path::Path, out_dir: &std::path::Path, model: &std::path::Path, gpus: &str) -> JobSpec {
    let q = |p: &std::path::Path| serde_json::to_string(&p.to_string_lossy()).expect("json string");
    let text = format!(
        "version = 1\n[model]\npath = {}\n[device]\ngpus = {gpus}\n[[input]]\npath = {}\n[output]\ndir = {}\n\
         name = \"out.mp4\"\ncontainer = \"mp4\"\n[encode]\ncodec = \"h264\"\npreset = \"veryfast\"\nthreads = 1\n",
        q(model),
        q(input),
        q(out_dir)
    );
    let source = std::path::PathBuf::from("<test>");
    let manifest = manifest::parse(&text, &source).expect("manifest parses");
    JobSpec::new(source, out_dir.to_path_buf(), manifest)
}

#[test]
fn audit_counts_no_steady_state_allocations_and_same_bytes_twice() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let input = h264_clip(dir.path());
    let summary = runner::run_job(&job(&input, dir.path()), &audited()).expect("job runs");
    assert_eq!(summary.failed, 0, "{:?}", summary.files.first().map(|f| &f.error));
    let rec = summary.files.first().expect("one file");
    let report = rec.pipeline.as_ref().expect("pipeline report");
    let audit = &report["audit"];
    eprintln!("{}", serde_json::to_string_pretty(audit).unwrap_or_default());

    let steady = &audit["steady_state"];
    assert_eq!(steady["counted"], true, "CountingAlloc is this binary's allocator");
    assert_eq!(steady["from_frame"], 10);
    assert_eq!(steady["to_frame"], 40);
    assert_eq!(steady["allocations"], 0, "no host allocation between frames 10 and 40: {steady}");

    // The engine (decode, conversion, inference) must hand the encoder the same frames twice; with one encoder
    // thread x264 must then write the same bytes (frame-threaded x264 is not guaranteed to).
    let det = &audit["determinism"];
    assert_eq!(det["frames_identical"], true, "same input twice gives the same frames: {det}");
    assert_eq!(det["first_frames_sha256"].as_str().map(str::len), Some(64));
    assert_eq!(det["identical"], true, "same input twice gives the same bytes: {det}");
    assert_eq!(det["first_sha256"].as_str().map(str::len), Some(64));
    assert_ne!(det["first_sha256"], det["first_frames_sha256"], "the frame digest is not the file's");
    let busy = audit["busy_sum_s"].as_f64().expect("busy");
    let wall = audit["wall_s"].as_f64().expect("wall");
    assert!(busy > 0.0 && wall > 0.0);
    assert!(audit.get("vram").is_none() && audit.get("pool").is_none(), "CPU run: no device figures");

    let checks = audit["checks"].as_array().expect("checks");
    let status =
        |name: &str| checks.iter().find(|c| c["name"] == name).map(|c| c["status"].clone()).unwrap_or_default();
    assert_eq!(status("same input twice, same frames"), "pass");
    assert_eq!(status("same input twice, same bytes"), "pass");
    assert_eq!(status("VRAM back to start"), "skip");
    assert_eq!(status("GPU pool hit rate"), "skip");
    // The temporary output of the second run is gone; only the output, its report and the run summary remain.
    let left = common::dir_entries(dir.path());
    assert!(!left.iter().any(|n| n.contains(".audit-") || n.contains(".partial-")), "{left:?}");
}

/// `--audit` of a real upscale on GPU 0 (NVDEC → colour kernels → the demo model on the CUDA EP → x264 on the
/// CPU): no host allocation between frames 10 and 60, device memory back where it started for a second file,
/// pooled buffers reused, the same frames and bytes twice. Needs the plugin built against onnxruntime-gpu.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn audit_passes_on_the_gpu() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    // Written with libavcodec (the GPU machine has no ffmpeg CLI): 90 frames of H.264, decoded by NVDEC.
    let input = dir.path().join("in.mp4");
    videoforge::video::write_synthetic_clip_with(&input, 640, 360, 90, Some("libx264"), 8).expect("H.264 clip");
    let model = root().join("models/realesr-animevideov3-x2-fp16.onnx");
    // A steady-state allocation here has been seen once and not since (bench/RESULTS.md, GPU session 10): the
    // backtraces of the first ones go to stderr when the window closes, so a failure says where they came from.
    let opts = RunOptions { env: runner::Environment { audit_traces: 10, ..common::env() }, ..audited() };
    let summary = runner::run_job(&job_on(&input, dir.path(), &model, "[0]"), &opts).expect("job runs");
    assert_eq!(summary.failed, 0, "{:?}", summary.files.first().map(|f| &f.error));
    let report = summary.files.first().and_then(|f| f.pipeline.as_ref()).expect("pipeline report");
    let audit = &report["audit"];
    eprintln!("{}", serde_json::to_string_pretty(audit).unwrap_or_default());
    assert_eq!(report["decoder"], "nvdec", "decoded on the GPU");
    assert_eq!(audit["steady_state"]["counted"], true);
    // The window spans two thirds of the clip's estimated length (89–90 frames, by container).
    assert_eq!(audit["steady_state"]["complete"], true, "window closed at its planned frame");
    assert!(audit["steady_state"]["to_frame"].as_u64().is_some_and(|f| f >= 50), "{}", audit["steady_state"]);
    assert_eq!(audit["steady_state"]["allocations"], 0, "steady-state host allocations: {}", audit["steady_state"]);
    let checks = audit["checks"].as_array().expect("checks");
    let failed: Vec<_> = checks.iter().filter(|c| c["status"] != "pass").collect();
    assert!(failed.is_empty(), "every check passes on the GPU: {failed:?}");
}

#[test]
fn synthetic_stress_test_on_cpu() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = common::bench_synthetic("cpu", "128x72", 48, &root().join("tests/fixtures/models/nearest2x.onnx"));
    assert_eq!((r["frames_decoded"].as_u64(), r["frames_encoded"].as_u64()), (Some(48), Some(48)));
    let checks = r["checks"].as_array().expect("checks");
    assert!(checks.iter().all(|c| c["status"] != "fail"), "{checks:?}");
    assert_eq!(r["passed"], true);
    assert!(r["busy_sum_s"].as_f64() > r["wall_s"].as_f64());
    assert_eq!(r["deterministic"], true);
    assert_eq!(r["steady_state_allocations"], 0);
    assert!(r["pool"].is_null() && r["vram_delta_bytes"].is_null());
}

#[test]
fn synthetic_clip_rejects_odd_sizes_and_writes_10_bit_hevc() {
    // Not beside an audited run: the window counts every thread's allocations.
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let err = videoforge::video::write_synthetic_clip(&dir.path().join("x.mkv"), 33, 20, 2).expect_err("odd width");
    assert!(err.to_string().contains("even"), "{err}");
    // The 10-bit HEVC clip the NVDEC test decodes on the GPU: really HEVC, really 10-bit, every frame there.
    let path = dir.path().join("hevc10.mkv");
    videoforge::video::write_synthetic_clip_with(&path, 256, 144, 12, Some("libx265"), 10).expect("x265 clip");
    let mut src = videoforge::video::Source::open(&path, 2).expect("decodable");
    let info = src.info().clone();
    assert_eq!((info.codec.as_str(), info.bit_depth, info.width, info.height), ("hevc", 10, 256, 144));
    let mut frames = 0;
    while let Some(item) = src.next_item().expect("decodes") {
        if let videoforge::video::Item::Frame(f) = item {
            assert_eq!(f.pixel_format(), "yuv420p10le");
            frames += 1;
        }
    }
    assert_eq!(frames, 12);
}

/// Segment-parallel encoding allocates nothing per frame or per segment either: three x264 instances on
/// 8-frame segments, so encoders open and close inside the window (frames 10 to 40).
#[test]
fn segment_parallel_encoding_allocates_nothing_in_the_steady_state() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let input = h264_clip(dir.path());
    let out = dir.path().join("out.mp4");
    let encode = videoforge::plan::EncodePlan { segments: 3, segment_frames: 8, ..common::x264(18) };
    let r = common::run(
        &input,
        &out,
        videoforge::codec::Container::Mp4,
        &encode,
        Box::new(common::Nearest(2)),
        &videoforge::pipeline::Cancel::new(),
    )
    .expect("upscales");
    assert_eq!((r.encoder_instances, r.frames_encoded), (3, 60));
    let steady = r.audit.and_then(|a| a.steady_state).expect("window");
    assert!(steady.counted && steady.complete, "{steady:?}");
    assert_eq!(steady.allocations, 0, "{steady:?}");
}

/// Buffers coming back to a pool or a free list allocate nothing, however many come back at once: the list is
/// sized when a buffer is made, not when a return first outgrows it (a timing-dependent allocation that an audit's
/// window could catch).
#[test]
fn pooled_buffers_come_back_without_allocating() {
    use videoforge::gpu::pool::{HostAllocator, Pool};
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = Pool::new("frames", 64 << 20, HostAllocator);
    // Warm-up: 16 buffers of one bucket and 3 of another in use at once (the pool allocates them).
    let held: Vec<_> = (0..16)
        .map(|_| pool.acquire(1 << 20).expect("buffer"))
        .chain((0..3).map(|_| pool.acquire(3 << 20).expect("buffer")))
        .collect();
    let mut held = Some(held);
    assert!(videoforge::audit::open_window(5), "no other window open");
    // Steady state: all of them come back at once, are taken again, and come back again.
    for _ in 0..2 {
        let mut v = held.take().expect("held");
        while let Some(b) = v.pop() {
            drop(b);
        }
        for _ in 0..16 {
            v.push(pool.acquire(1 << 20).expect("cached buffer"));
        }
        for _ in 0..3 {
            v.push(pool.acquire(3 << 20).expect("cached buffer"));
        }
        held = Some(v);
    }
    let (allocations, bytes) = videoforge::audit::close_window();
    assert_eq!((allocations, bytes), (0, 0), "returning and reusing pooled buffers");
    assert_eq!(pool.stats().misses, 19, "only the warm-up allocated");

    // NVDEC's free list of picture buffers: made one at a time as pictures need them, handed back all at once.
    let free = videoforge::gpu::pool::FreeList::default();
    let made: Vec<Vec<u8>> = (0..12)
        .map(|_| {
            free.made();
            vec![0u8; 64]
        })
        .collect();
    assert!(videoforge::audit::open_window(5), "no other window open");
    for b in made {
        free.give(b);
    }
    let back = std::iter::from_fn(|| free.take()).count();
    let (allocations, bytes) = videoforge::audit::close_window();
    assert_eq!(back, 12);
    assert_eq!((allocations, bytes), (0, 0), "handing buffers back to a free list");
}
