//! The ONNX Runtime plugin on a GPU: the CUDA execution provider on host buffers, and `LoadedModel::run_device` on
//! CUDA device buffers through IO binding.
//!
//! Run on a machine with an NVIDIA GPU and the onnxruntime-gpu build:
//! `ORT_DYLIB_PATH=/path/to/onnxruntime-gpu/libonnxruntime.so cargo test --test backend_gpu -- --ignored`
//! (the CUDA and cuDNN libraries it needs on `LD_LIBRARY_PATH`). Tolerances are stated per test.
//!
//! Last run: all pass on an NVIDIA H200 (driver 580.159.04) with onnxruntime-gpu 1.31.1, with the plugin's CUDA EP
//! defaults and with `VIDEOFORGE_ORT_CUDA_OPTIONS=cudnn_conv_algo_search=HEURISTIC,prefer_nhwc=0`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use half::f16;
use videoforge::backend::{
    find_plugin, BackendError, Device, DeviceTensor, ExecutionProvider, FrameModel, LoadedModel, ModelOptions, Plugin,
    Precision,
};
use videoforge::gpu::GpuContext;

const FP16: &str = "models/realesr-animevideov3-x2-fp16.onnx";
const FP32: &str = "models/realesr-animevideov3-x2.onnx";

mod common;
use common::{pattern, root};

/// The plugin file, building the plugin crate once if it is not there yet.
fn plugin_path() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    if let Ok(p) = find_plugin("onnxruntime", &[]) {
        return p;
    }
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(root())
            .args(["build", "-p", "videoforge-backend-onnxruntime"])
            .status()
            .expect("run cargo to build the plugin");
        assert!(status.success(), "building the plugin failed");
    });
    find_plugin("onnxruntime", &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn ort() -> &'static Plugin {
    static P: OnceLock<Plugin> = OnceLock::new();
    P.get_or_init(|| Plugin::load_with(&plugin_path(), Some(&common::ort_library())).unwrap_or_else(|e| panic!("{e}")))
}

fn gpu() -> GpuContext {
    GpuContext::new(0).unwrap_or_else(|e| panic!("{e}"))
}

fn open_cpu(model: &str) -> LoadedModel {
    ort().open_model(&ModelOptions::cpu(root().join(model))).unwrap_or_else(|e| panic!("{model}: {e}"))
}

/// The model on cuda:0 with the CUDA execution provider; `stream` is its compute stream (0: ORT's own).
fn open_cuda(model: &str, stream: usize) -> LoadedModel {
    let opts = ModelOptions {
        device: Device::Cuda(0),
        execution_provider: Some(ExecutionProvider::Cuda),
        cuda_stream: stream,
        ..ModelOptions::cpu(root().join(model))
    };
    let m = ort().open_model(&opts).unwrap_or_else(|e| panic!("{model} on cuda:0: {e}"));
    assert_eq!(m.info().execution_provider, ExecutionProvider::Cuda);
    m
}

fn stream_handle(s: &Arc<CudaStream>) -> usize {
    s.cu_stream() as usize
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn to_bytes(v: &[f32], dtype: Precision) -> Vec<u8> {
    match dtype {
        Precision::F16 => v.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect(),
        _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn from_bytes(b: &[u8], dtype: Precision) -> Vec<f32> {
    match dtype {
        Precision::F16 => b.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        _ => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
    }
}

fn elem(dtype: Precision) -> usize {
    if dtype == Precision::F16 {
        2
    } else {
        4
    }
}

/// Uploads `input` (as `dtype`) on `stream`, runs `m` on device buffers whose tensors say `tensor_stream` and
/// `pitch` (0: packed) for the input, and downloads the output bytes on `stream` (which waits for `stream`).
#[allow(clippy::too_many_arguments)]
fn run_on_device(
    m: &mut LoadedModel,
    stream: &Arc<CudaStream>,
    input: &[f32],
    w: usize,
    h: usize,
    dtype: Precision,
    tensor_stream: usize,
    pitch: usize,
) -> Result<Vec<u8>, BackendError> {
    let s = m.info().scale as usize;
    let d_in: CudaSlice<u8> = stream.clone_htod(&to_bytes(input, dtype)).unwrap();
    let mut d_out: CudaSlice<u8> = stream.alloc_zeros::<u8>(3 * w * s * h * s * elem(dtype)).unwrap();
    {
        let (pi, _gi) = d_in.device_ptr(stream);
        let (po, _go) = d_out.device_ptr_mut(stream);
        let t =
            |ptr, shape, pitch_bytes| DeviceTensor { ptr, dtype, shape, pitch_bytes, stream: tensor_stream, device: 0 };
        m.run_device(t(pi, [1, 3, h as i64, w as i64], pitch), t(po, [1, 3, (h * s) as i64, (w * s) as i64], 0))?;
    }
    Ok(stream.clone_dtoh(&d_out).unwrap())
}

/// (a) The CUDA EP on host buffers agrees with the CPU EP: FP16 model, 64x48, max abs difference < 2e-2 (two
/// different f16 convolution implementations, each rounding in f16). Loading with the tuned defaults gives no
/// warnings.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn cuda_ep_on_host_buffers_agrees_with_cpu() {
    let (w, h) = (64, 48);
    let input = pattern(w, h);
    let (mut cpu, mut cuda) = (Vec::new(), Vec::new());
    open_cpu(FP16).upscale(&input, w, h, &mut cpu).unwrap();
    let mut m = open_cuda(FP16, 0);
    assert_eq!(m.info().dtype, Precision::F16);
    if std::env::var_os("VIDEOFORGE_ORT_CUDA_OPTIONS").is_none() {
        assert!(m.info().warnings.is_empty(), "{:?}", m.info().warnings);
    }
    m.upscale(&input, w, h, &mut cuda).unwrap();
    assert_eq!(cuda.len(), 3 * 128 * 96);
    let d = max_diff(&cpu, &cuda);
    assert!(d < 2e-2, "CUDA and CPU differ by up to {d}");
}

/// (b) `run_device` with f16 device buffers gives what the host path on CUDA gives, within 1e-3 (the same f16
/// input bits either way; the host path only adds the f32<->f16 conversions on the CPU). Both orderings: tensors
/// on another stream than the EP's (the plugin synchronises), and on the EP's own stream (no synchronisation; the
/// download on that stream waits for the run).
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn run_device_f16_matches_the_host_path() {
    let gpu = gpu();
    let (w, h) = (64, 48);
    let input = pattern(w, h);

    let mut host = Vec::new();
    open_cuda(FP16, 0).upscale(&input, w, h, &mut host).unwrap();

    // ORT's own stream; the tensors are on gpu.compute.
    let mut m = open_cuda(FP16, 0);
    let out = run_on_device(&mut m, &gpu.compute, &input, w, h, Precision::F16, stream_handle(&gpu.compute), 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let d = max_diff(&host, &from_bytes(&out, Precision::F16));
    assert!(d < 1e-3, "device (other stream) and host paths differ by up to {d}");

    // The EP computes on gpu.compute, the tensors are on it too.
    let mut m = open_cuda(FP16, stream_handle(&gpu.compute));
    for _ in 0..3 {
        let out = run_on_device(&mut m, &gpu.compute, &input, w, h, Precision::F16, stream_handle(&gpu.compute), 0)
            .unwrap_or_else(|e| panic!("{e}"));
        let d = max_diff(&host, &from_bytes(&out, Precision::F16));
        assert!(d < 1e-3, "device (EP stream) and host paths differ by up to {d}");
    }

    // The legacy default stream (0) as the tensors' stream also works (the plugin synchronises it).
    let out = run_on_device(&mut m, &gpu.compute, &input, w, h, Precision::F16, 0, 0).unwrap_or_else(|e| panic!("{e}"));
    let d = max_diff(&host, &from_bytes(&out, Precision::F16));
    assert!(d < 1e-3, "device (null stream) and host paths differ by up to {d}");
}

/// (c) The f32 model on f32 device buffers, against the host path on CUDA, within 1e-3.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn run_device_f32_matches_the_host_path() {
    let gpu = gpu();
    let (w, h) = (40, 24);
    let input = pattern(w, h);
    let mut host = Vec::new();
    let mut m = open_cuda(FP32, stream_handle(&gpu.compute));
    assert_eq!(m.info().dtype, Precision::F32);
    m.upscale(&input, w, h, &mut host).unwrap();
    let out = run_on_device(&mut m, &gpu.compute, &input, w, h, Precision::F32, stream_handle(&gpu.compute), 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let d = max_diff(&host, &from_bytes(&out, Precision::F32));
    assert!(d < 1e-3, "device and host paths differ by up to {d}");
}

/// (d) What the device path refuses, with messages that say why: a row pitch other than packed, an element type
/// other than the model's, a tensor on another device, a wrong output shape.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn run_device_refuses_what_it_cannot_run() {
    let gpu = gpu();
    let (w, h) = (32, 16);
    let input = pattern(w, h);
    let s = stream_handle(&gpu.compute);
    let mut m = open_cuda(FP16, s);

    let pitched = w * 2 + 64;
    let e = run_on_device(&mut m, &gpu.compute, &input, w, h, Precision::F16, s, pitched).unwrap_err();
    assert!(matches!(e, BackendError::Unsupported { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("pitch of {pitched} bytes")) && msg.contains("tightly packed"), "{msg}");

    let e = run_on_device(&mut m, &gpu.compute, &input, w, h, Precision::F32, s, 0).unwrap_err();
    assert!(matches!(e, BackendError::InvalidArgument { .. }), "{e:?}");
    assert!(e.to_string().contains("f32 in device memory") && e.to_string().contains("f16"), "{e}");

    // Checked before any memory is touched, so dummy pointers are fine here.
    let t = |shape, device| DeviceTensor { ptr: 256, dtype: Precision::F16, shape, pitch_bytes: 0, stream: s, device };
    let e = m.run_device(t([1, 3, 16, 32], 1), t([1, 3, 32, 64], 1)).unwrap_err();
    assert!(e.to_string().contains("cuda:1") && e.to_string().contains("cuda:0"), "{e}");
    let e = m.run_device(t([1, 3, 16, 32], 0), t([1, 3, 32, 32], 0)).unwrap_err();
    assert!(matches!(e, BackendError::InvalidArgument { .. }) && e.to_string().contains("scale 2"), "{e}");

    // The model still runs after the refusals.
    run_on_device(&mut m, &gpu.compute, &input, w, h, Precision::F16, s, 0).unwrap_or_else(|e| panic!("{e}"));
}

/// The same frame gives the same bytes twice on CUDA: within one session (cuDNN forward algorithms are
/// deterministic and ORT caches its choice per shape), for the host and the device paths.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn same_frame_gives_same_bytes_on_cuda() {
    let gpu = gpu();
    let (w, h) = (48, 32);
    let input = pattern(w, h);
    let s = stream_handle(&gpu.compute);
    let mut m = open_cuda(FP16, s);
    let a = run_on_device(&mut m, &gpu.compute, &input, w, h, Precision::F16, s, 0).unwrap();
    let b = run_on_device(&mut m, &gpu.compute, &input, w, h, Precision::F16, s, 0).unwrap();
    assert!(a == b, "two device runs of one session gave different bytes");
    let (mut x, mut y) = (Vec::new(), Vec::new());
    m.upscale(&input, w, h, &mut x).unwrap();
    m.upscale(&input, w, h, &mut y).unwrap();
    assert!(x == y, "two host runs of one session gave different values");
}

/// Fresh sessions (each runs its own EXHAUSTIVE cuDNN algorithm search, as two processes would) give the same bytes
/// for the same frame. Holds at this size on the H200; see `device.rs` (`cuda_ep`) for what is and is not known.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn fresh_sessions_give_same_bytes_on_cuda() {
    let gpu = gpu();
    let (w, h) = (64, 48);
    let input = pattern(w, h);
    let s = stream_handle(&gpu.compute);
    let run = || {
        let mut m = open_cuda(FP16, s);
        run_on_device(&mut m, &gpu.compute, &input, w, h, Precision::F16, s, 0).unwrap()
    };
    let first = run();
    for i in 0..3 {
        let again = run();
        let d = max_diff(&from_bytes(&first, Precision::F16), &from_bytes(&again, Precision::F16));
        assert!(first == again, "session {} gave different bytes from the first (max abs difference {d})", i + 2);
    }
}
