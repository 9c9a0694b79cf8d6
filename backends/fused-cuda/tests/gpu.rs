//! GPU tests (ignored on CI; run on the H200 with `cargo test -p videoforge-backend-fused-cuda --release --test
//! gpu -- --ignored --nocapture --test-threads=1`). Everything goes through the plugin's C ABI, as the host uses
//! it. References are ONNX Runtime CPU FP32 (f16 models: their f16 weights run in FP32).

mod common;

use std::ffi::{c_char, CString};
use std::path::{Path, PathBuf};

use common::*;
use half::f16;
use videoforge_backend_abi::*;
use videoforge_backend_fused_cuda::graph::IoType;
use videoforge_backend_fused_cuda::plugin::videoforge_backend_entry;
use videoforge_backend_fused_cuda::reference::Planar;
use videoforge_backend_fused_cuda::runtime::driver::{self, DeviceBuffer};

fn vt() -> &'static VfBackendVTable {
    // SAFETY: null out-pointer allowed; the table is static.
    unsafe { videoforge_backend_entry(VF_ABI_VERSION, std::ptr::null_mut()).as_ref() }.expect("vtable")
}

struct Model {
    ptr: *mut VfModel,
    info: VfModelInfo,
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: made by model_create, freed once.
        unsafe { vt().model_destroy.expect("fn")(self.ptr) };
    }
}

fn cache_dir() -> PathBuf {
    repo_root().join("target/fused-cuda-kernel-cache")
}

fn create(path: &Path) -> Model {
    let p = CString::new(path.to_string_lossy().as_bytes()).expect("path");
    let c = CString::new(cache_dir().to_string_lossy().as_bytes()).expect("cache");
    let mut o = VfModelOptions::new_zeroed();
    o.device_kind = VF_DEVICE_CUDA;
    o.precision = VF_PRECISION_AUTO;
    o.model_path = p.as_ptr();
    o.cache_dir = c.as_ptr();
    let mut info = VfModelInfo::new_zeroed();
    let mut ptr = std::ptr::null_mut();
    let mut buf = [0 as c_char; 2048];
    let mut e = VfErrorBuf::new_zeroed();
    e.capacity = buf.len() as u32;
    e.data = buf.as_mut_ptr();
    let t = std::time::Instant::now();
    // SAFETY: valid pointers for the call.
    let st = unsafe { vt().model_create.expect("fn")(&o, &mut ptr, &mut info, &mut e) };
    assert_eq!(st, VF_STATUS_OK, "model_create: {}", read_fixed(&buf));
    println!("loaded {} in {:.2?} (kernels compiled or read from the cache)", path.display(), t.elapsed());
    Model { ptr, info }
}

fn to_bytes(img: &Planar, f16_io: bool) -> Vec<u8> {
    if f16_io {
        img.data.iter().flat_map(|&v| f16::from_f32(v).to_bits().to_le_bytes()).collect()
    } else {
        img.data.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}

fn from_bytes(b: &[u8], h: usize, w: usize, f16_io: bool) -> Planar {
    let data = if f16_io {
        b.chunks_exact(2).map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()).collect()
    } else {
        b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    };
    Planar { h, w, data }
}

fn tensor(memory: u32, dtype: u32, h: usize, w: usize, data: *mut std::ffi::c_void, pitch: u64) -> VfTensor {
    let mut t = VfTensor::new_zeroed();
    (t.memory, t.dtype, t.n, t.c, t.h, t.w, t.data, t.pitch_bytes) =
        (memory, dtype, 1, 3, h as u32, w as u32, data, pitch);
    t
}

fn call_run(m: &Model, i: &VfTensor, o: &VfTensor) {
    let mut buf = [0 as c_char; 1024];
    let mut e = VfErrorBuf::new_zeroed();
    e.capacity = buf.len() as u32;
    e.data = buf.as_mut_ptr();
    // SAFETY: valid pointers for the call.
    let st = unsafe { vt().model_run.expect("fn")(m.ptr, i, o, &mut e) };
    assert_eq!(st, VF_STATUS_OK, "model_run: {}", read_fixed(&buf));
}

/// Runs one image through host memory; returns the output as f32 and its raw bytes.
fn run_host(m: &Model, img: &Planar) -> (Planar, Vec<u8>) {
    let f16_io = m.info.dtype == VF_DTYPE_F16;
    let s = m.info.scale as usize;
    let mut input = to_bytes(img, f16_io);
    let eb = if f16_io { 2 } else { 4 };
    let mut out = vec![0u8; 3 * img.h * s * img.w * s * eb];
    let i = tensor(VF_MEMORY_HOST, m.info.dtype, img.h, img.w, input.as_mut_ptr().cast(), 0);
    let o = tensor(VF_MEMORY_HOST, m.info.dtype, img.h * s, img.w * s, out.as_mut_ptr().cast(), 0);
    call_run(m, &i, &o);
    (from_bytes(&out, img.h * s, img.w * s, f16_io), out)
}

/// ONNX Runtime CPU FP32 reference for a model file (f16 files run as FP32 with their f16 weights).
fn reference(path: &Path, img: &Planar) -> Option<Planar> {
    let env = ort_env()?;
    let net = videoforge_backend_fused_cuda::graph::load(path).expect("matches");
    if net.io == IoType::F16 {
        let (_d, p) = f16_model_as_f32(path);
        Some(ort_run(env, &p, IoType::F32, &round_f16(img)))
    } else {
        Some(ort_run(env, path, IoType::F32, img))
    }
}

fn images() -> Vec<(String, Planar)> {
    let mut v = frames().unwrap_or_default();
    v.push(("synthetic 96x80".into(), test_image(80, 96)));
    v
}

fn against_ort(name: &str, min_psnr: f64, imgs: &[(String, Planar)]) {
    let Some(path) = model(name) else { return };
    let m = create(&path);
    for (label, img) in imgs {
        let img = if m.info.dtype == VF_DTYPE_F16 { round_f16(img) } else { img.clone() };
        let (ours, _) = run_host(&m, &img);
        let Some(theirs) = reference(&path, &img) else { return };
        let (p, e) = (psnr(&ours, &theirs), max_abs(&ours, &theirs));
        println!("{name} {label}: PSNR {p:.1} dB, max abs {e:.2e}");
        assert!(p >= min_psnr, "{name} {label}: PSNR {p:.1} dB < {min_psnr}");
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn compact_models_match_onnx_runtime_on_real_frames() {
    let imgs = images();
    for name in [
        "realesr-animevideov3-x2.onnx",
        "realesr-animevideov3-x2-fp16.onnx",
        "realesr-animevideov3-x3.onnx",
        "realesr-animevideov3-x4.onnx",
        "realesr-animevideov3-x4-fp16.onnx",
    ] {
        against_ort(name, 50.0, &imgs);
    }
}

#[test]
#[ignore = "needs a CUDA GPU and .deps/models/realesrgan-x4plus*.onnx (get-x4plus.sh)"]
fn x4plus_matches_onnx_runtime() {
    let imgs: Vec<_> = images().into_iter().take(2).collect();
    against_ort("realesrgan-x4plus-fp16.onnx", 45.0, &imgs);
    against_ort("realesrgan-x4plus.onnx", 45.0, &imgs);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn odd_sizes_match_onnx_runtime() {
    let imgs: Vec<_> =
        [(178, 318), (64, 64), (1, 1), (3, 5)].iter().map(|&(h, w)| (format!("{w}x{h}"), test_image(h, w))).collect();
    against_ort("realesr-animevideov3-x2.onnx", 50.0, &imgs);
    against_ort("realesr-animevideov3-x3.onnx", 50.0, &imgs);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn runs_are_deterministic_and_device_memory_matches_host_memory() {
    let Some(path) = model("realesr-animevideov3-x2-fp16.onnx") else { return };
    let m = create(&path);
    let img = round_f16(&test_image(135, 240));
    let (_, a) = run_host(&m, &img);
    let (_, b) = run_host(&m, &img);
    assert!(a == b, "two runs differ");
    // Device memory with padded row pitches, on the legacy default stream.
    let (h, w) = (img.h, img.w);
    let (in_pitch, out_pitch) = ((w * 2).next_multiple_of(256), (w * 4).next_multiple_of(256));
    let din = DeviceBuffer::new(3 * h * in_pitch).expect("alloc");
    let dout = DeviceBuffer::new(3 * 2 * h * out_pitch).expect("alloc");
    let src = to_bytes(&img, true);
    let mut padded = vec![0u8; 3 * h * in_pitch];
    for r in 0..3 * h {
        padded[r * in_pitch..r * in_pitch + w * 2].copy_from_slice(&src[r * w * 2..(r + 1) * w * 2]);
    }
    driver::upload(driver::StreamRef::null(), din.ptr, &padded).expect("upload");
    let i = tensor(VF_MEMORY_CUDA, VF_DTYPE_F16, h, w, din.ptr as *mut _, in_pitch as u64);
    let o = tensor(VF_MEMORY_CUDA, VF_DTYPE_F16, 2 * h, 2 * w, dout.ptr as *mut _, out_pitch as u64);
    call_run(&m, &i, &o);
    let mut got = vec![0u8; 3 * 2 * h * out_pitch];
    driver::download(driver::StreamRef::null(), &mut got, dout.ptr).expect("download");
    let packed: Vec<u8> =
        (0..3 * 2 * h).flat_map(|r| got[r * out_pitch..r * out_pitch + 4 * w].iter().copied()).collect();
    assert!(packed == a, "device-memory output differs from host-memory output");
}

/// A tile cut from the frame, run alone, agrees with the same region of the whole-frame output away from the
/// tile's border (where the receptive field reaches outside the tile).
#[test]
#[ignore = "needs a CUDA GPU"]
fn tiles_agree_with_the_whole_frame() {
    for name in ["realesr-animevideov3-x2.onnx", "realesr-animevideov3-x3.onnx"] {
        let Some(path) = model(name) else { continue };
        let m = create(&path);
        let s = m.info.scale as usize;
        let img = test_image(120, 160);
        let (whole, _) = run_host(&m, &img);
        let (ty, tx, th, tw, margin) = (30, 50, 64, 64, 20);
        let mut tile = Planar::zeros(th, tw);
        for c in 0..3 {
            for y in 0..th {
                for x in 0..tw {
                    tile.data[(c * th + y) * tw + x] = img.data[(c * img.h + ty + y) * img.w + tx + x];
                }
            }
        }
        let (part, _) = run_host(&m, &tile);
        let mut err = 0.0f32;
        for c in 0..3 {
            for y in margin * s..(th - margin) * s {
                for x in margin * s..(tw - margin) * s {
                    let a = part.data[(c * th * s + y) * tw * s + x];
                    let b = whole.data[(c * whole.h + ty * s + y) * whole.w + tx * s + x];
                    err = err.max((a - b).abs());
                }
            }
        }
        println!("{name}: tile vs whole frame, interior max abs {err:.2e}");
        // x3 ends in a bicubic resize whose source coordinates are computed in f32 from the absolute output position:
        // the tile's origin changes their rounding (seen: 4.3e-6, far below one 8-bit step of 3.9e-3).
        assert!(err <= 1e-5, "{name}: tile interior differs by {err}");
    }
}

/// Programmatic dependent launch (sm_90: each kernel's CTAs start, and load their weights, while the previous
/// kernel finishes) changes when kernels start, never what they read: the same output bytes with it and without,
/// five frames in a row on the engine's own stream, for x2 (a resize after the tail) and realesrgan-x4plus when
/// built (350 convs, concat slices read and written by neighbouring kernels).
#[test]
#[ignore = "needs a CUDA GPU"]
fn dependent_launch_gives_the_same_bytes() {
    use videoforge_backend_fused_cuda::runtime::{Engine, Memory, MemoryMut};
    let nvrtc = videoforge_backend_fused_cuda::nvrtc::Nvrtc::load(None).expect("NVRTC");
    for name in ["realesr-animevideov3-x2.onnx", "realesrgan-x4plus-fp16.onnx"] {
        let Some(path) = model(name) else { continue };
        let net = videoforge_backend_fused_cuda::graph::load(&path).expect("matches");
        let (s, f16_io) = (net.scale as usize, net.io == IoType::F16);
        let mut e = Engine::new(net, 0, &nvrtc, Some(cache_dir()), None).expect("engine");
        if e.sm() < 90 {
            println!("sm_{}: no programmatic dependent launch to compare", e.sm());
            return;
        }
        let img = test_image(90, 160);
        let input = to_bytes(&img, f16_io);
        let mut outs = Vec::new();
        for on in [false, true] {
            e.set_dependent_launch(on).expect("set");
            let mut frames = Vec::new();
            for _ in 0..5 {
                let mut out = vec![0u8; input.len() * s * s];
                e.run(1, img.h, img.w, Memory::Host(&input), MemoryMut::Host(&mut out), driver::StreamRef::null())
                    .expect("run");
                frames.push(out);
            }
            assert!(frames.windows(2).all(|w| w[0] == w[1]), "{name}: frames differ with dependent launch {on}");
            outs.push(frames.swap_remove(0));
        }
        assert!(outs[0] == outs[1], "{name}: dependent launch changed the output");
        println!("{name}: the same bytes with and without dependent launch, 5 frames each");
    }
}
