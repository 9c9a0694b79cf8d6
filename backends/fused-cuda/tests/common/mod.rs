//! Shared test helpers: where the models and ONNX Runtime are, a deterministic test image, ONNX Runtime runs,
//! error measures, and a small ONNX graph builder for synthetic models.
#![allow(dead_code)]

pub mod build;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use half::f16;
use ort::session::Session;
use ort::value::Tensor;
use videoforge_backend_fused_cuda::graph::IoType;
use videoforge_backend_fused_cuda::reference::Planar;

/// The repository root: the source tree the test was built from, or (a test binary carried to another machine)
/// the current directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .or_else(|_| std::env::current_dir())
        .expect("a repository root")
}

/// A model by file name: the repository's `models/`, the shared models folder beside the checkout, or
/// `.deps/models/` (where `get-x4plus.sh` puts realesrgan-x4plus). None, with a message, when absent.
pub fn model(name: &str) -> Option<PathBuf> {
    let root = repo_root();
    let found = [root.join("models"), root.join("../shared/models"), root.join(".deps/models")]
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!("skipped: model {name} not found (models/, ../shared/models/ or .deps/models/)");
    }
    found
}

/// The ONNX Runtime environment from `.deps/onnxruntime/` (scripts/setup.sh), or None with a message.
pub fn ort_env() -> Option<&'static ort::environment::Environment> {
    static ENV: OnceLock<Option<ort::environment::Environment>> = OnceLock::new();
    ENV.get_or_init(|| {
        // ORT_DYLIB_PATH first: the GPU machine has its own CPU build of ONNX Runtime.
        let lib = std::env::var_os("ORT_DYLIB_PATH")
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .unwrap_or_else(|| repo_root().join(".deps/onnxruntime/libonnxruntime.so"));
        if !lib.is_file() {
            eprintln!("skipped: {} is missing (run scripts/setup.sh)", lib.display());
            return None;
        }
        let env = ort::init_from(&lib).expect("load ONNX Runtime").with_name("fused-cuda-tests").build();
        Some(env.expect("ONNX Runtime environment"))
    })
    .as_ref()
}

/// A deterministic image with edges, gradients and fine detail, values in [0, 1].
pub fn test_image(h: usize, w: usize) -> Planar {
    let mut img = Planar::zeros(h, w);
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let gx = x as f32 / w.max(2) as f32;
                let gy = y as f32 / h.max(2) as f32;
                let edge = if (x / 5 + y / 7 + c) % 3 == 0 { 0.6 } else { 0.0 };
                let ring = ((x as f32 - w as f32 / 2.0).hypot(y as f32 - h as f32 / 2.0) * 0.9).sin() * 0.15;
                let v = 0.15 + 0.4 * gx * (1.0 - gy) + 0.2 * gy * c as f32 / 2.0 + edge * 0.5 + ring;
                img.data[(c * h + y) * w + x] = v.clamp(0.0, 1.0);
            }
        }
    }
    img
}

/// Rounds every value through f16 (what an f16 model's input really holds).
pub fn round_f16(img: &Planar) -> Planar {
    Planar { h: img.h, w: img.w, data: img.data.iter().map(|&v| f16::from_f32(v).to_f32()).collect() }
}

/// Runs a model file with ONNX Runtime CPU (every core, deterministic kernels) on one image.
pub fn ort_run(env: &ort::environment::Environment, path: &Path, io: IoType, img: &Planar) -> Planar {
    let mut s = Session::builder(env)
        .expect("session builder")
        .with_intra_threads(std::thread::available_parallelism().map_or(2, |n| n.get().min(16)))
        .expect("threads")
        .with_deterministic_compute(true)
        .expect("deterministic")
        .commit_from_file(path)
        .expect("ONNX Runtime loads the model");
    let shape = [1i64, 3, img.h as i64, img.w as i64];
    let input = match io {
        IoType::F32 => Tensor::from_array((shape, img.data.clone())).expect("tensor").into_dyn(),
        IoType::F16 => {
            let v: Vec<f16> = img.data.iter().map(|&x| f16::from_f32(x)).collect();
            Tensor::from_array((shape, v)).expect("tensor").into_dyn()
        }
    };
    let name = s.inputs()[0].name().to_string();
    let out = s.run(ort::inputs![name.as_str() => input]).expect("ONNX Runtime runs");
    let (shape, data): (Vec<i64>, Vec<f32>) = match out[0].try_extract_tensor::<f32>() {
        Ok((s, v)) => (s.iter().copied().collect(), v.to_vec()),
        Err(_) => {
            let (s, v) = out[0].try_extract_tensor::<f16>().expect("f32 or f16 output");
            (s.iter().copied().collect(), v.iter().map(|x| x.to_f32()).collect())
        }
    };
    Planar { h: shape[2] as usize, w: shape[3] as usize, data }
}

/// Largest absolute difference.
pub fn max_abs(a: &Planar, b: &Planar) -> f32 {
    assert_eq!((a.h, a.w), (b.h, b.w), "image sizes differ");
    a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// PSNR in dB of `a` against `b`, both in [0, 1] (clamped first, as the host does).
pub fn psnr(a: &Planar, b: &Planar) -> f64 {
    let mse: f64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x.clamp(0.0, 1.0) as f64 - y.clamp(0.0, 1.0) as f64).powi(2))
        .sum::<f64>()
        / a.data.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (1.0 / mse).log10()
    }
}

/// Real frames: `.deps/frames/*_WxH_*.rgb` (scripts/extract-frames.sh), else decoded now with the ffmpeg CLI from
/// jobs/media/sample.mp4, else None.
pub fn frames() -> Option<Vec<(String, Planar)>> {
    let dir = repo_root().join(".deps/frames");
    if !dir.is_dir() {
        let script = repo_root().join("backends/fused-cuda/scripts/extract-frames.sh");
        let ok = std::process::Command::new("bash").arg(&script).output().is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!("no frames: .deps/frames/ is absent and ffmpeg could not make it");
            return None;
        }
    }
    let mut v = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir).ok()?.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name()?.to_string_lossy().into_owned();
        let Some(size) = name.split('_').find(|s| s.contains('x')) else { continue };
        let Some((w, h)) = size.split_once('x') else { continue };
        let (Ok(w), Ok(h)) = (w.parse::<usize>(), h.parse::<usize>()) else { continue };
        let bytes = std::fs::read(&p).ok()?;
        if bytes.len() != w * h * 3 {
            continue;
        }
        let mut img = Planar::zeros(h, w);
        for (i, px) in bytes.chunks_exact(3).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                img.data[c * h * w + i] = v as f32 / 255.0;
            }
        }
        v.push((name, img));
    }
    (!v.is_empty()).then_some(v)
}

/// An f16 model rewritten with f32 IO and f32 copies of its (f16-rounded) weights, so ONNX Runtime runs it in FP32:
/// the exact reference for kernels that use those same f16 weights.
pub fn f16_model_as_f32(path: &Path) -> (tempfile::TempDir, PathBuf) {
    use videoforge_backend_fused_cuda::onnx::proto::tensor_proto::DataType;
    use videoforge_backend_fused_cuda::onnx::{decode, proto, tensor_f32};
    let mut m = decode(&std::fs::read(path).expect("read model")).expect("decode");
    let g = m.graph.as_mut().expect("graph");
    for t in &mut g.initializer {
        if t.data_type() == DataType::Float16 as i32 {
            let v = tensor_f32(t).expect("f16 tensor");
            *t = proto::TensorProto {
                name: t.name.clone(),
                dims: t.dims.clone(),
                data_type: Some(DataType::Float as i32),
                float_data: v,
                ..Default::default()
            };
        }
    }
    for v in g.input.iter_mut().chain(g.output.iter_mut()) {
        if let Some(proto::type_proto::Value::TensorType(t)) = v.r#type.as_mut().and_then(|t| t.value.as_mut()) {
            t.elem_type = Some(DataType::Float as i32);
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().join("as-f32.onnx");
    std::fs::write(&p, prost::Message::encode_to_vec(&m)).expect("write");
    (dir, p)
}
