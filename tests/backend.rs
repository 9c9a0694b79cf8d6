//! Backend plugins through the real ABI: the ONNX Runtime plugin with the shipped model and the fixtures, the
//! panicking test plugin, and every loader error.
//!
//! Flow: `cargo build --workspace && cargo test --workspace` (the plugins are cdylibs in `target/<profile>/`; this
//! test builds them itself when they are missing). ONNX Runtime comes from `ORT_DYLIB_PATH` or
//! `.deps/onnxruntime/` (`scripts/setup.sh`).

use std::path::PathBuf;
use std::sync::OnceLock;

use videoforge::backend::{
    discover_plugins, find_plugin, plugin_file_name, BackendError, Device, ExecutionProvider, FrameModel, LoadedModel,
    ModelOptions, Plugin, Precision,
};

mod common;
use common::{pattern, root};

/// The plugin file, building the plugin crates once if they are not there yet.
fn plugin_path(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    if let Ok(p) = find_plugin(name, &[]) {
        return p;
    }
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(root())
            .args(["build", "-p", "videoforge-backend-onnxruntime", "-p", "videoforge-backend-test-panic"])
            .status()
            .expect("run cargo to build the plugins");
        assert!(status.success(), "building the plugins failed");
    });
    find_plugin(name, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn ort() -> &'static Plugin {
    static P: OnceLock<Plugin> = OnceLock::new();
    P.get_or_init(|| {
        Plugin::load_with(&plugin_path("onnxruntime"), Some(&common::ort_library())).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn model(path: &str) -> PathBuf {
    root().join(path)
}

fn open(path: &str) -> LoadedModel {
    ort().open_model(&ModelOptions::cpu(model(path))).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn mean(v: &[f32]) -> f32 {
    v.iter().sum::<f32>() / v.len() as f32
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let mse = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (1.0 / mse.max(1e-20)).log10()
}

#[test]
fn plugin_reports_itself_and_its_runtime() {
    let info = ort().info();
    assert_eq!(info.name, "onnxruntime");
    assert_eq!(info.abi_version, videoforge_backend_abi::VF_ABI_VERSION);
    assert!(info.library_version.starts_with("ONNX Runtime 1."), "{info:?}");
    assert!(info.execution_providers.contains(&ExecutionProvider::Cpu), "{info:?}");
    assert!(info.library_error.is_none(), "{info:?}");
    let json = serde_json::to_value(info).unwrap();
    assert_eq!(json["name"], "onnxruntime");
    assert_eq!(plugin_file_name("onnxruntime"), "libvideoforge_backend_onnxruntime.so");
    let found = discover_plugins(&[]);
    for name in ["onnxruntime", "test_panic"] {
        let file = format!("libvideoforge_backend_{name}.so");
        assert!(found.iter().any(|p| p.file_name().unwrap() == file.as_str()), "{file} not in {found:?}");
    }
}

#[test]
fn realesr_x2_upscales_on_cpu() {
    let mut m = open("models/realesr-animevideov3-x2.onnx");
    let info = m.info().clone();
    assert_eq!((info.scale, info.dtype, info.fixed_size), (2, Precision::F32, None));
    assert_eq!((info.input_name.as_str(), info.output_name.as_str()), ("input", "output"));
    assert_eq!(info.execution_provider, ExecutionProvider::Cpu);
    let (w, h) = (64, 48);
    let input = pattern(w, h);
    let mut out = Vec::new();
    m.upscale(&input, w, h, &mut out).unwrap();
    assert_eq!(out.len(), 3 * 128 * 96);
    let sane = out.iter().filter(|v| (-0.1..=1.1).contains(*v)).count() as f32 / out.len() as f32;
    assert!(sane > 0.99, "only {sane} of the values are in [-0.1, 1.1]");
    let (mi, mo) = (mean(&input), mean(&out));
    assert!((mi - mo).abs() < 0.03, "mean brightness changed from {mi} to {mo}");
}

#[test]
fn fp16_model_agrees_with_f32() {
    let (w, h) = (32, 24);
    let input = pattern(w, h);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    open("models/realesr-animevideov3-x2.onnx").upscale(&input, w, h, &mut a).unwrap();
    let mut m16 = open("models/realesr-animevideov3-x2-fp16.onnx");
    assert_eq!(m16.info().dtype, Precision::F16);
    m16.upscale(&input, w, h, &mut b).unwrap();
    let d = max_diff(&a, &b);
    assert!(d < 2e-2, "f16 and f32 differ by up to {d}");
    assert!(psnr(&a, &b) > 40.0, "PSNR {}", psnr(&a, &b));
}

#[test]
fn same_frame_gives_same_bytes() {
    let (w, h) = (24, 16);
    let input = pattern(w, h);
    let run = || {
        let mut out = Vec::new();
        open("models/realesr-animevideov3-x2.onnx").upscale(&input, w, h, &mut out).unwrap();
        out.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()
    };
    let first = run();
    assert_eq!(first, run(), "two runs gave different bytes");
}

#[test]
fn nearest2x_fixture_is_exact_nearest_neighbour() {
    let mut m = open("tests/fixtures/models/nearest2x.onnx");
    assert_eq!(m.scale(), 2);
    let (w, h) = (7, 5);
    let input = pattern(w, h);
    let mut out = Vec::new();
    m.upscale(&input, w, h, &mut out).unwrap();
    for c in 0..3 {
        for y in 0..2 * h {
            for x in 0..2 * w {
                assert_eq!(out[(c * 2 * h + y) * 2 * w + x], input[(c * h + y / 2) * w + x / 2]);
            }
        }
    }
}

#[test]
fn tiled_equals_untiled() {
    // Pointwise model: equal up to float rounding.
    let (w, h) = (37, 29);
    let input = pattern(w, h);
    let mut whole = Vec::new();
    open("tests/fixtures/models/nearest2x.onnx").upscale(&input, w, h, &mut whole).unwrap();
    let mut opts = ModelOptions::cpu(model("tests/fixtures/models/nearest2x.onnx"));
    (opts.tile, opts.tile_overlap) = (16, 8);
    let mut tiled = Vec::new();
    ort().open_model(&opts).unwrap().upscale(&input, w, h, &mut tiled).unwrap();
    assert!(max_diff(&whole, &tiled) < 1e-6, "nearest2x: tiled differs by {}", max_diff(&whole, &tiled));

    // The real model (receptive field ~17 px): no visible seams.
    let (w, h) = (64, 48);
    let input = pattern(w, h);
    let mut whole = Vec::new();
    open("models/realesr-animevideov3-x2.onnx").upscale(&input, w, h, &mut whole).unwrap();
    let mut opts = ModelOptions::cpu(model("models/realesr-animevideov3-x2.onnx"));
    (opts.tile, opts.tile_overlap) = (40, 24);
    let mut tiled = Vec::new();
    ort().open_model(&opts).unwrap().upscale(&input, w, h, &mut tiled).unwrap();
    let (d, p) = (max_diff(&whole, &tiled), psnr(&whole, &tiled));
    eprintln!("realesr tiled vs whole: max abs diff {d}, PSNR {p:.1} dB");
    assert!(d < 2e-2 && p > 45.0, "realesr: tiled differs by up to {d}, PSNR {p:.1} dB");
}

#[test]
fn contract_violations_are_named() {
    let cases = [
        ("bad_rank.onnx", "rank 3"),
        ("nhwc.onnx", "NHWC"),
        ("two_inputs.onnx", "2 inputs ('input', 'noise')"),
        ("resize_1_5.onnx", "scale 1.500x1.500"),
        ("uint8_input.onnx", "element type Uint8"),
    ];
    for (file, want) in cases {
        let path = format!("tests/fixtures/models/{file}");
        let err = ort().open_model(&ModelOptions::cpu(model(&path))).expect_err(file);
        let msg = err.to_string();
        assert!(matches!(err, BackendError::Contract { .. }), "{file}: {err:?}");
        assert!(msg.contains(want) && msg.contains(file), "{file}: `{msg}` does not say `{want}`");
        assert!(!err.is_environment());
    }
}

#[test]
fn missing_model_and_unknown_provider_are_reported() {
    let err = ort().open_model(&ModelOptions::cpu(model("models/nope.onnx"))).unwrap_err();
    assert!(matches!(err, BackendError::ModelNotFound { .. }) && err.to_string().contains("nope.onnx"), "{err}");
    let mut o = ModelOptions::cpu(model("tests/fixtures/models/nearest2x.onnx"));
    o.execution_provider = Some(ExecutionProvider::Tensorrt);
    let err = ort().open_model(&o).unwrap_err();
    assert!(err.to_string().contains("needs a CUDA device"), "{err}");
    o.device = Device::Cuda(0);
    let err = ort().open_model(&o).unwrap_err();
    assert!(matches!(err, BackendError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("TensorRT"), "{err}");
}

#[test]
fn missing_runtime_library_says_where_and_how_to_install() {
    let mut o = ModelOptions::cpu(model("tests/fixtures/models/nearest2x.onnx"));
    o.runtime_library = Some(PathBuf::from("/nonexistent/libonnxruntime.so"));
    let err = ort().open_model(&o).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BackendError::LibraryMissing { .. }), "{err:?}");
    assert!(msg.contains("/nonexistent/libonnxruntime.so") && msg.contains("scripts/setup.sh"), "{msg}");
    assert!(err.is_environment());
}

#[test]
fn plugin_panics_become_panic_recovered() {
    let plugin = Plugin::load(&plugin_path("test-panic")).unwrap();
    assert_eq!(plugin.info().name, "test-panic");
    let err = plugin.open_model(&ModelOptions::cpu("whatever.onnx")).unwrap_err();
    match &err {
        BackendError::PanicRecovered { plugin, message } => {
            assert_eq!(plugin, "test-panic");
            assert!(message.contains("deliberate panic in model_create"), "{message}");
        }
        other => panic!("expected PanicRecovered, got {other:?}"),
    }
    let engine: videoforge::EngineError = err.into();
    assert_eq!(engine.exit_code(), videoforge::exit_codes::INTERNAL);

    let mut m = plugin.open_model(&ModelOptions::cpu("x.panic-in-run")).unwrap();
    let mut out = Vec::new();
    let err = m.upscale(&[0.5; 12], 2, 2, &mut out).unwrap_err();
    assert!(
        matches!(&err, BackendError::PanicRecovered { message, .. } if message.contains("deliberate panic in model_run")),
        "{err:?}"
    );
    drop(plugin); // the model keeps the library loaded
    drop(m);
}

#[test]
fn loader_errors_name_the_path() {
    let dir = std::env::temp_dir().join(format!("vf-backend-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let missing = dir.join("libvideoforge_backend_missing.so");
    let err = Plugin::load(&missing).unwrap_err();
    assert!(matches!(err, BackendError::NotFound { .. }) && err.to_string().contains(&*missing.to_string_lossy()));

    let text = dir.join("libvideoforge_backend_text.so");
    std::fs::write(&text, "not a library\n").unwrap();
    let err = Plugin::load(&text).unwrap_err();
    assert!(matches!(err, BackendError::Dlopen { .. }), "{err:?}");
    assert!(err.to_string().contains(&*text.to_string_lossy()), "{err}");

    // A real shared library that is not a plugin: ONNX Runtime itself.
    let ort_lib = ort().info().library_path.clone().expect("runtime loaded");
    let err = Plugin::load(&ort_lib).unwrap_err();
    assert!(matches!(err, BackendError::MissingSymbol { .. }), "{err:?}");
    assert!(err.to_string().contains("videoforge_backend_entry"), "{err}");

    let err = Plugin::load_with_abi(&plugin_path("test-panic"), 999).unwrap_err();
    assert!(matches!(err, BackendError::BadVersion { found: 1, expected: 999, .. }), "{err:?}");
    assert!(err.to_string().contains("ABI version 1") && err.to_string().contains("expects 999"), "{err}");
    assert!(err.is_environment());

    let err = find_plugin("no-such-backend", &[]).unwrap_err();
    assert!(err.to_string().contains("libvideoforge_backend_no_such_backend.so"), "{err}");
    assert!(err.to_string().contains("VIDEOFORGE_PLUGIN_DIR"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn loaded_model_can_move_to_another_thread() {
    fn is_send<T: Send>() {}
    is_send::<LoadedModel>();
    let mut m = open("tests/fixtures/models/nearest2x.onnx");
    let out = std::thread::spawn(move || {
        let mut out = Vec::new();
        m.upscale(&[0.25; 12], 2, 2, &mut out).unwrap();
        out
    })
    .join()
    .unwrap();
    assert_eq!(out, vec![0.25; 48]);
}
