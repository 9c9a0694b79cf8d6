//! GPU tests: run on a machine with an NVIDIA GPU with `cargo test --test gpu -- --ignored`.
//! Each kernel is compared with its plain-Rust reference; tolerances are stated per test.

use videoforge::gpu::kernels::{ColourKernels, DeviceYuv, RgbType};
use videoforge::gpu::reference::{rgb_to_yuv420, yuv420_to_rgb, Coeffs, InvCoeffs, Matrix, Yuv420};
use videoforge::gpu::{DeviceAllocator, GpuContext, Pool};

fn pattern(w: usize, h: usize, bits: u32, seed: u32) -> Yuv420 {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        s >> 8
    };
    let max = (1u32 << bits) - 1;
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    Yuv420 {
        width: w,
        height: h,
        y: (0..w * h).map(|_| (next() % (max + 1)) as u16).collect(),
        u: (0..cw * ch).map(|_| (next() % (max + 1)) as u16).collect(),
        v: (0..cw * ch).map(|_| (next() % (max + 1)) as u16).collect(),
    }
}

fn bytes(plane: &[u16], wide: bool) -> Vec<u8> {
    if wide {
        plane.iter().flat_map(|v| v.to_le_bytes()).collect()
    } else {
        plane.iter().map(|&v| v as u8).collect()
    }
}

fn f16_to_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn yuv_to_rgb_kernels_match_the_reference() {
    let gpu = GpuContext::new(0).expect("GPU 0");
    let k = ColourKernels::compile(&gpu).expect("NVRTC compiles kernels/colour.cu");
    let s = &gpu.compute;
    for (w, h) in [(64usize, 36usize), (33, 17)] {
        for bits in [8u32, 10] {
            for m in [Matrix::Bt601, Matrix::Bt709, Matrix::Bt2020] {
                for full in [false, true] {
                    let f = pattern(w, h, bits, (w * 31 + bits as usize) as u32);
                    let wide = bits > 8;
                    let e = if wide { 2 } else { 1 };
                    let c = Coeffs::new(m, full, bits);
                    let want = yuv420_to_rgb(&f, &c);
                    let y = s.clone_htod(&bytes(&f.y, wide)).unwrap();
                    let u = s.clone_htod(&bytes(&f.u, wide)).unwrap();
                    let v = s.clone_htod(&bytes(&f.v, wide)).unwrap();
                    let src = DeviceYuv {
                        y: &y,
                        y_pitch: w * e,
                        u: &u,
                        u_pitch: f.chroma_width() * e,
                        v: &v,
                        v_pitch: f.chroma_width() * e,
                        semi_planar: false,
                        wide,
                        shift: 0,
                    };
                    for ty in [RgbType::F32, RgbType::F16] {
                        let n = 3 * w * h * if ty == RgbType::F32 { 4 } else { 2 };
                        let mut out = s.alloc_zeros::<u8>(n).unwrap();
                        k.yuv_to_rgb(s, &src, c, ty, &mut out, w as u32, h as u32).unwrap();
                        let got_b = s.clone_dtoh(&out).unwrap();
                        let got: Vec<f32> = match ty {
                            RgbType::F32 => {
                                got_b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
                            }
                            RgbType::F16 => f16_to_f32(&got_b),
                        };
                        // f32: same arithmetic up to FMA contraction (1e-5); f16: half-precision rounding (2e-3 rel).
                        let tol = |x: f32| if ty == RgbType::F32 { 1e-5 } else { 2e-3 * x.abs().max(1.0) };
                        let bad = want.iter().zip(&got).filter(|(a, b)| (*a - *b).abs() > tol(**a)).count();
                        assert_eq!(bad, 0, "{w}x{h} {bits}-bit {m:?} full={full} {ty:?}");
                    }
                }
            }
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn rgb_to_yuv_kernels_match_the_reference() {
    let gpu = GpuContext::new(0).expect("GPU 0");
    let k = ColourKernels::compile(&gpu).expect("NVRTC compiles kernels/colour.cu");
    let s = &gpu.compute;
    for (w, h) in [(64usize, 36usize), (33, 17)] {
        let rgb: Vec<f32> = (0..3 * w * h).map(|i| ((i * 7919) % 1000) as f32 / 900.0 - 0.05).collect();
        for bits in [8u32, 10] {
            for m in [Matrix::Bt601, Matrix::Bt709] {
                for full in [false, true] {
                    let c = InvCoeffs::new(m, full, bits);
                    let want = rgb_to_yuv420(&rgb, w, h, &c);
                    let wide = bits > 8;
                    let e = if wide { 2 } else { 1 };
                    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
                    let src = s.clone_htod(&rgb.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
                    let mut y = s.alloc_zeros::<u8>(w * h * e).unwrap();
                    let mut u = s.alloc_zeros::<u8>(cw * ch * e).unwrap();
                    let mut v = s.alloc_zeros::<u8>(cw * ch * e).unwrap();
                    k.rgb_to_yuv(
                        s,
                        &src,
                        RgbType::F32,
                        w as u32,
                        h as u32,
                        c,
                        wide,
                        [(&mut y, w * e), (&mut u, cw * e), (&mut v, cw * e)],
                    )
                    .unwrap();
                    let back = |d: &cudarc::driver::CudaSlice<u8>| -> Vec<u16> {
                        let b = s.clone_dtoh(d).unwrap();
                        if wide {
                            b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
                        } else {
                            b.into_iter().map(u16::from).collect()
                        }
                    };
                    // Codes may differ by one where a value sits on a rounding boundary (FMA contraction).
                    for (name, a, b) in [("y", &want.y, back(&y)), ("u", &want.u, back(&u)), ("v", &want.v, back(&v))] {
                        let worst = a.iter().zip(&b).map(|(p, q)| p.abs_diff(*q)).max().unwrap_or(0);
                        assert!(worst <= 1, "{name} {w}x{h} {bits}-bit {m:?} full={full}: off by {worst}");
                    }
                }
            }
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn device_pool_returns_vram_and_reuses_buffers() {
    let gpu = GpuContext::new(0).expect("GPU 0");
    let (free0, _) = gpu.mem_info().unwrap();
    {
        let pool = Pool::new("frames", 1 << 30, DeviceAllocator::new(gpu.compute.clone()));
        for _ in 0..50 {
            let _a = pool.acquire(3840 * 2160 * 3 / 2).unwrap();
            let _b = pool.acquire(3 * 3840 * 2160 * 2).unwrap();
        }
        let st = pool.stats();
        assert!(st.hit_rate() >= 0.9, "{st:?}");
        assert_eq!(st.in_use, 0);
    }
    gpu.compute.synchronize().unwrap();
    let (free1, _) = gpu.mem_info().unwrap();
    let leaked = free0.saturating_sub(free1);
    assert!(leaked < 4 << 20, "VRAM back to its starting value (leaked {leaked} bytes)");
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn probe_sees_the_gpu_and_nvdec() {
    let p = videoforge::probe::MachineProbe::detect();
    assert!(!p.gpus.is_empty(), "{:?}", p.notes);
    let g = &p.gpus[0];
    assert!(g.vram_total > 0);
    assert!(g.nvdec.iter().any(|c| c.codec == "hevc" && c.supported), "{:?}", g.nvdec);
    eprintln!("{}", serde_json::to_string_pretty(&p).unwrap());
}
