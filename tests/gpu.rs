//! GPU tests: run on a machine with an NVIDIA GPU with `cargo test --test gpu -- --ignored`.
//! Each kernel is compared with its plain-Rust reference (every chroma layout, 8 to 12 bits); tolerances are
//! stated per test.

use videoforge::codec::Chroma;
use videoforge::gpu::kernels::{Colour, ColourKernels, DeviceYuv, RgbType};
mod common;
use common::root;
use videoforge::gpu::{DeviceAllocator, GpuContext, Pool};
use videoforge::video::{rgb_planar_to_yuv, yuv_to_rgb_planar, Matrix, Plane, PlaneMut, Range, Subsampling, YuvFormat};
use videoforge::EngineError;

/// Random planes of `bits`-bit codes (seeded) in a chroma layout.
fn planes(w: usize, h: usize, bits: u8, chroma: Chroma, seed: u32) -> (Vec<u16>, Vec<u16>, Vec<u16>) {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (s >> 8) % (1u32 << bits)
    };
    let (cw, ch) = Subsampling::from(chroma).chroma_size(w, h);
    let y = (0..w * h).map(|_| next() as u16).collect();
    let u = (0..cw * ch).map(|_| next() as u16).collect();
    let v = (0..cw * ch).map(|_| next() as u16).collect();
    (y, u, v)
}

fn bytes(plane: &[u16], wide: bool) -> Vec<u8> {
    if wide {
        plane.iter().flat_map(|v| v.to_le_bytes()).collect()
    } else {
        plane.iter().map(|&v| v as u8).collect()
    }
}

fn fmt(w: usize, h: usize, bits: u8, chroma: Chroma, matrix: Matrix, range: Range) -> YuvFormat {
    YuvFormat { width: w, height: h, subsampling: chroma.into(), bit_depth: bits, matrix, range }
}

/// The CPU reference on u8 or u16 planes.
fn reference_rgb(f: &YuvFormat, y: &[u16], u: &[u16], v: &[u16]) -> Vec<f32> {
    let mut out = vec![0f32; 3 * f.width * f.height];
    let (cw, _) = f.subsampling.chroma_size(f.width, f.height);
    if f.bit_depth > 8 {
        yuv_to_rgb_planar(
            f,
            Plane { data: y, stride: f.width },
            Plane { data: u, stride: cw },
            Plane { data: v, stride: cw },
            &mut out,
        );
    } else {
        let n = |p: &[u16]| p.iter().map(|&x| x as u8).collect::<Vec<u8>>();
        let (y8, u8_, v8) = (n(y), n(u), n(v));
        yuv_to_rgb_planar(
            f,
            Plane { data: &y8, stride: f.width },
            Plane { data: &u8_, stride: cw },
            Plane { data: &v8, stride: cw },
            &mut out,
        );
    }
    out
}

const MATRICES: [Matrix; 3] = [Matrix::Bt601, Matrix::Bt709, Matrix::Bt2020Ncl];
const LAYOUTS: [Chroma; 3] = [Chroma::C420, Chroma::C422, Chroma::C444];

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn yuv_to_rgb_kernels_match_the_reference() {
    let gpu = GpuContext::new(0).expect("GPU 0");
    let k = ColourKernels::compile(&gpu).expect("NVRTC compiles kernels/colour.cu");
    let s = &gpu.compute;
    for ((w, h), chroma) in [(64usize, 36usize), (33, 17)].into_iter().flat_map(|s| LAYOUTS.map(|c| (s, c))) {
        for bits in [8u8, 10, 12] {
            for m in MATRICES {
                for range in [Range::Limited, Range::Full] {
                    let f = fmt(w, h, bits, chroma, m, range);
                    let (py, pu, pv) = planes(w, h, bits, chroma, (w * 31 + usize::from(bits)) as u32);
                    let want = reference_rgb(&f, &py, &pu, &pv);
                    let wide = bits > 8;
                    let e = if wide { 2 } else { 1 };
                    let (cw, _) = f.subsampling.chroma_size(w, h);
                    let (y, u, v) = (
                        s.clone_htod(&bytes(&py, wide)).unwrap(),
                        s.clone_htod(&bytes(&pu, wide)).unwrap(),
                        s.clone_htod(&bytes(&pv, wide)).unwrap(),
                    );
                    let src = DeviceYuv {
                        y: &y,
                        y_pitch: w * e,
                        u: &u,
                        u_pitch: cw * e,
                        v: &v,
                        v_pitch: cw * e,
                        semi_planar: false,
                        chroma,
                        wide,
                        shift: 0,
                    };
                    for ty in [RgbType::F32, RgbType::F16] {
                        let n = 3 * w * h * if ty == RgbType::F32 { 4 } else { 2 };
                        let mut out = s.alloc_zeros::<u8>(n).unwrap();
                        k.yuv_to_rgb(s, &src, Colour::new(m, range, bits), ty, &mut out, w as u32, h as u32).unwrap();
                        let got_b = s.clone_dtoh(&out).unwrap();
                        let got: Vec<f32> = match ty {
                            RgbType::F32 => {
                                got_b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
                            }
                            RgbType::F16 => {
                                got_b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
                            }
                        };
                        // f32: the same arithmetic up to FMA contraction (1e-5); f16: half-precision rounding (1e-3).
                        let tol = if ty == RgbType::F32 { 1e-5 } else { 1e-3 };
                        let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                        assert!(worst <= tol, "{w}x{h} {chroma:?} {bits}-bit {m:?} {range:?} {ty:?}: off by {worst}");
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
    for ((w, h), chroma) in [(64usize, 36usize), (33, 17)].into_iter().flat_map(|s| LAYOUTS.map(|c| (s, c))) {
        // Slightly outside [0, 1] on purpose: models overshoot and both sides must clamp.
        let rgb: Vec<f32> = (0..3 * w * h).map(|i| ((i * 7919) % 1000) as f32 / 900.0 - 0.05).collect();
        for bits in [8u8, 10, 12] {
            for m in MATRICES {
                for range in [Range::Limited, Range::Full] {
                    let f = fmt(w, h, bits, chroma, m, range);
                    let (cw, ch) = f.subsampling.chroma_size(w, h);
                    let (mut ry, mut ru, mut rv) = (vec![0u16; w * h], vec![0u16; cw * ch], vec![0u16; cw * ch]);
                    if bits > 8 {
                        rgb_planar_to_yuv(
                            &f,
                            &rgb,
                            PlaneMut { data: &mut ry, stride: w },
                            PlaneMut { data: &mut ru, stride: cw },
                            PlaneMut { data: &mut rv, stride: cw },
                        );
                    } else {
                        let (mut y8, mut u8_, mut v8) = (vec![0u8; w * h], vec![0u8; cw * ch], vec![0u8; cw * ch]);
                        rgb_planar_to_yuv(
                            &f,
                            &rgb,
                            PlaneMut { data: &mut y8, stride: w },
                            PlaneMut { data: &mut u8_, stride: cw },
                            PlaneMut { data: &mut v8, stride: cw },
                        );
                        ry = y8.into_iter().map(u16::from).collect();
                        ru = u8_.into_iter().map(u16::from).collect();
                        rv = v8.into_iter().map(u16::from).collect();
                    }
                    let wide = bits > 8;
                    let e = if wide { 2 } else { 1 };
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
                        chroma,
                        Colour::new(m, range, bits),
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
                    // A code may differ by one where a value sits on a rounding boundary (the GPU contracts
                    // multiply-adds into FMAs): one code, on at most 1 % of the samples (seen on the H200: 1 of 561).
                    for (name, a, b) in [("y", &ry, back(&y)), ("u", &ru, back(&u)), ("v", &rv, back(&v))] {
                        let worst = a.iter().zip(&b).map(|(p, q)| p.abs_diff(*q)).max().unwrap_or(0);
                        let off = a.iter().zip(&b).filter(|(p, q)| p != q).count();
                        assert!(
                            worst <= 1 && off * 100 <= a.len(),
                            "{name} {w}x{h} {chroma:?} {bits}-bit {m:?} {range:?}: {off} codes off, worst {worst}"
                        );
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
    let p = videoforge::probe::detect(videoforge::probe::ProbeOptions::default());
    assert!(!p.gpus.is_empty(), "{:?}", p.notes);
    let g = &p.gpus[0];
    assert!(g.vram_total > 0);
    assert!(g.nvdec.iter().any(|c| c.codec == "hevc" && c.supported), "{:?}", g.nvdec);
    eprintln!("{}", serde_json::to_string_pretty(&p).unwrap());
}

/// Frames with their timestamps, as planar samples.
type Frames = Vec<(Option<i64>, Vec<u8>)>;

/// Frames of `path` decoded by libavcodec: (pts, planar 4:2:0 samples in `YuvFrame` layout).
fn cpu_frames(path: &std::path::Path) -> Frames {
    let mut src = videoforge::video::Source::open(path, 4).expect("decodable");
    let info = src.info().clone();
    let mut out = Vec::new();
    while let Some(item) = src.next_item().unwrap() {
        if let videoforge::video::Item::Frame(f) = item {
            let mut y = videoforge::video::YuvFrame::new(0, 0, info.bit_depth, info.color.matrix, info.color.range);
            y.read_from(&f, info.color.matrix, info.color.range).unwrap();
            out.push((f.pts(), y.data));
        }
    }
    out
}

/// Frames of `path` decoded by NVDEC (deinterlaced as `kind` says), downloaded in the same layout, with the
/// stream's description.
fn nvdec_frames(
    gpu: &std::sync::Arc<GpuContext>,
    path: &std::path::Path,
    kind: videoforge::plan::FilterKind,
) -> (Frames, videoforge::video::VideoInfo) {
    let mut src = videoforge::video::Source::open(path, 4).expect("decodable");
    let info = src.info().clone();
    let mut dec = videoforge::gpu::nvdec::NvDecoder::new(gpu.clone(), &info, kind).expect("NVDEC takes it");
    let mut feed = videoforge::video::DecoderFeed::new(&src).expect("bitstream filter");
    src.hand_out_video_packets();
    let mut out = Vec::new();
    loop {
        let item = src.next_item().unwrap();
        let end = item.is_none();
        match item {
            Some(videoforge::video::Item::VideoPacket(p)) => {
                feed.push(Some(p), |d, pts, dur| dec.send(d, pts, dur).map_err(EngineError::from)).unwrap()
            }
            None => {
                feed.push(None, |d, pts, dur| dec.send(d, pts, dur).map_err(EngineError::from)).unwrap();
                dec.finish().unwrap()
            }
            _ => {}
        }
        while let Some((f, _)) = dec.receive() {
            assert_eq!((f.width, f.height, f.bit_depth), (info.width as usize, info.height as usize, info.bit_depth));
            out.push((f.pts, f.to_host_planar(&gpu.decode).unwrap()));
            f.recycle();
        }
        if end {
            break;
        }
    }
    assert_eq!(dec.frames_out(), out.len() as u64);
    if kind == videoforge::plan::FilterKind::None {
        assert_eq!(dec.frames(), out.len() as u64);
    }
    (out, info)
}

/// NVDEC's pictures equal libavcodec's, bit for bit and timestamp for timestamp: H.264 in Matroska and in MP4
/// (both through the Annex-B filter), and 10-bit HEVC (P016 brought back to 10-bit codes).
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn nvdec_frames_equal_the_cpu_decoder() {
    let gpu = std::sync::Arc::new(GpuContext::new(0).expect("GPU 0"));
    let dir = tempfile::tempdir().unwrap();
    let h264 = dir.path().join("h264.mkv");
    videoforge::video::write_synthetic_clip(&h264, 320, 240, 30).unwrap();
    let hevc10 = dir.path().join("hevc10.mkv");
    videoforge::video::write_synthetic_clip_with(&hevc10, 256, 144, 24, Some("libx265"), 10).unwrap();
    for clip in [h264, root().join("jobs/media/sample.mp4"), hevc10] {
        let cpu = cpu_frames(&clip);
        let (gpu_frames, _) = nvdec_frames(&gpu, &clip, videoforge::plan::FilterKind::None);
        assert_eq!(cpu.len(), gpu_frames.len(), "{}: frame counts", clip.display());
        assert!(!cpu.is_empty());
        for (i, (a, b)) in cpu.iter().zip(&gpu_frames).enumerate() {
            assert_eq!(a.0, b.0, "{}: frame {i} timestamp", clip.display());
            let diff = a.1.iter().zip(&b.1).filter(|(x, y)| x != y).count();
            assert!(a.1 == b.1, "{}: frame {i} differs in {diff} of {} bytes", clip.display(), a.1.len());
        }
        eprintln!("{}: {} frames bit-exact", clip.display(), cpu.len());
    }
}

/// Decoded 8-bit 4:2:0 frames of a video, planes packed.
fn decode_all(path: &std::path::Path) -> Vec<Vec<u8>> {
    let mut src = videoforge::video::Source::open(path, 4).expect("decodable output");
    let info = src.info().clone();
    let mut out = Vec::new();
    while let Some(item) = src.next_item().unwrap() {
        if let videoforge::video::Item::Frame(f) = item {
            let mut y = videoforge::video::YuvFrame::new(0, 0, 8, info.color.matrix, info.color.range);
            y.read_from(&f, info.color.matrix, info.color.range).unwrap();
            out.push(y.data);
        }
    }
    out
}

/// The whole GPU path (upload, colour kernels, device inference, download, encode) against the CPU path on the
/// same clip, both written losslessly (FFV1): they must agree within 40 dB PSNR (fp16 inference on the GPU and
/// fp16 on the CPU differ in accumulation order; both convert colour with the same arithmetic).
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_upscale_matches_the_cpu_path() {
    let dir = tempfile::tempdir().unwrap();
    let sample = root().join("jobs/media/sample.mp4");
    let model = root().join("models/realesr-animevideov3-x2-fp16.onnx");
    let run = |gpus: &str, name: &str| {
        let text = format!(
            "version = 1\n[model]\npath = {model:?}\n[device]\ngpus = {gpus}\n[[input]]\npath = {sample:?}\n\
             [output]\ndir = {:?}\nname = \"{name}\"\ncontainer = \"mkv\"\n[encode]\ncodec = \"ffv1\"\n",
            dir.path()
        );
        let spec = videoforge::manifest::JobSpec::new(
            "gpu-test.toml".into(),
            dir.path().to_path_buf(),
            videoforge::manifest::parse(&text, std::path::Path::new("gpu-test.toml")).unwrap(),
        );
        let opts = videoforge::runner::RunOptions { force: true, env: common::env(), ..Default::default() };
        let summary = videoforge::runner::run_job(&spec, &opts).unwrap();
        assert_eq!(summary.done, 1, "{}", summary.table());
        let report = &summary.files[0];
        eprintln!("{gpus}: {}", serde_json::to_string(&report.pipeline).unwrap());
        let decoder = report.pipeline.as_ref().map(|p| p["decoder"].clone()).unwrap_or_default();
        assert_eq!(decoder, if gpus == "[0]" { "nvdec" } else { "cpu" }, "where {gpus} decoded");
        dir.path().join(name)
    };
    let cpu = decode_all(&run("\"cpu\"", "cpu.mkv"));
    let gpu = decode_all(&run("[0]", "gpu.mkv"));
    assert_eq!(cpu.len(), gpu.len(), "frame counts");
    assert_eq!(cpu.len(), 48);
    let worst = cpu.iter().zip(&gpu).map(|(a, b)| common::psnr8(a, b)).fold(f64::INFINITY, f64::min);
    eprintln!("worst frame PSNR GPU vs CPU: {worst:.2} dB");
    assert!(worst > 40.0, "GPU and CPU outputs differ: {worst:.2} dB");
}

/// The synthetic stress test on GPU 0 (`videoforge bench --synthetic -d 0`): frames in == out, device memory
/// back to its start after the stage is dropped, pool hit rate ≥ 90 %, stages overlapped. Needs the plugin
/// built with the CUDA execution provider (onnxruntime-gpu) and `tests/fixtures/models/nearest2x.onnx`.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn synthetic_stress_test_on_gpu() {
    let r = common::bench_synthetic("0", "640x360", 120, &root().join("tests/fixtures/models/nearest2x.onnx"));
    assert_eq!((r["frames_decoded"].as_u64(), r["frames_encoded"].as_u64()), (Some(120), Some(120)));
    assert!(r["pool_hit_rate"].as_f64().is_some_and(|h| h >= 0.9), "pool {}", r["pool"]);
    let tolerance = videoforge::audit::VRAM_TOLERANCE;
    assert!(r["vram_delta_bytes"].as_i64().is_some_and(|d| d.abs() <= tolerance), "{}", r["vram_delta_bytes"]);
    assert!(r["busy_sum_s"].as_f64() > r["wall_s"].as_f64(), "stages did not overlap: {r}");
    assert_eq!(r["passed"], true, "{}", r["checks"]);
}

/// An interlaced H.264 clip (MBAFF, top field first, 320x240, 20 frames): made with the `ffmpeg` CLI where there
/// is one, else the file `VIDEOFORGE_INTERLACED_CLIP` names (the lent GPU machine has no ffmpeg CLI).
fn interlaced_h264(dir: &std::path::Path) -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("VIDEOFORGE_INTERLACED_CLIP") {
        return p.into();
    }
    let path = dir.join("interlaced.mkv");
    common::media::interlaced_h264(&path, "");
    path
}

/// Frames of `path` through libavfilter's bwdif on the CPU as the file plan builds it: (pts in the filter's time
/// base, planar samples).
fn cpu_bwdif(path: &std::path::Path, choice: videoforge::codec::Deinterlace) -> (Frames, (i32, i32)) {
    use videoforge::plan::{plan_file, EncodePlan, FileSettings};
    let mut src = videoforge::video::Source::open(path, 4).expect("decodable");
    let info = src.info().clone();
    let encode = EncodePlan::with_defaults(videoforge::codec::Codec::Ffv1);
    let pipeline = common::pipe();
    let settings = FileSettings {
        input: path,
        output: std::path::Path::new("unused.mkv"),
        device: videoforge::codec::Device::Cpu,
        container: videoforge::codec::Container::Mkv,
        encode: &encode,
        pipeline: &pipeline,
        decode: &[],
        scale: 1,
        frame_pool_budget: None,
        quality: &Default::default(),
        deinterlace: choice,
    };
    let plan = plan_file(&settings, &videoforge::pipeline::input_facts(&src));
    let mut filter = videoforge::video::FrameFilter::new(&plan.filter, &info).expect("bwdif configures");
    let mut out = Vec::new();
    let take = |f: &mut videoforge::video::FrameFilter, out: &mut Frames| {
        while let Some(g) = f.pull().unwrap() {
            let mut y = videoforge::video::YuvFrame::new(0, 0, 8, info.color.matrix, info.color.range);
            y.read_from(&g, info.color.matrix, info.color.range).unwrap();
            out.push((g.pts(), y.data));
        }
    };
    while let Some(item) = src.next_item().unwrap() {
        if let videoforge::video::Item::Frame(f) = item {
            filter.push(f).unwrap();
            take(&mut filter, &mut out);
        }
    }
    filter.flush().unwrap();
    take(&mut filter, &mut out);
    (out, plan.filter.time_base)
}

/// The luma plane of a frame of [`interlaced_h264`]'s clip (320x240).
fn luma(f: &(Option<i64>, Vec<u8>)) -> &[u8] {
    &f.1[..320 * 240]
}

/// The interlaced clip deinterlaced both ways: libavfilter's bwdif on the CPU as `choice` plans it (frames, time
/// base), and NVDEC's deinterlacer as `kind` (frames, stream info), with the same frame count.
fn bwdif_and_nvdec(
    choice: videoforge::codec::Deinterlace,
    kind: videoforge::plan::FilterKind,
) -> ((Frames, (i32, i32)), (Frames, videoforge::video::VideoInfo)) {
    let gpu = std::sync::Arc::new(GpuContext::new(0).expect("GPU 0"));
    let dir = tempfile::tempdir().unwrap();
    let clip = interlaced_h264(dir.path());
    let cpu = cpu_bwdif(&clip, choice);
    let nv = nvdec_frames(&gpu, &clip, kind);
    assert!(nv.1.interlacing.is_interlaced(), "{:?}", nv.1.interlacing);
    assert_eq!(nv.0.len(), cpu.0.len(), "{choice:?}: frame counts");
    (cpu, nv)
}

/// NVDEC's adaptive deinterlacer at one frame per picture against libavfilter's bwdif on the CPU on an interlaced
/// H.264 clip: the same frame count, the same timestamps (in seconds: bwdif halves the time base, NVDEC keeps it),
/// and pictures close (two deinterlacers, not one: luma above 30 dB).
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn nvdec_deinterlacing_matches_libavfilter_s_bwdif() {
    use videoforge::codec::Deinterlace;
    use videoforge::plan::FilterKind;
    let ((cpu, cpu_tb), (nv, info)) = bwdif_and_nvdec(Deinterlace::Bwdif, FilterKind::NvdecAdaptive);
    let secs = |p: Option<i64>, (n, d): (i32, i32)| p.map(|p| p as f64 * f64::from(n) / f64::from(d));
    let mut worst = f64::INFINITY;
    for (i, (a, b)) in cpu.iter().zip(&nv).enumerate() {
        let (ta, tb) = (secs(a.0, cpu_tb), secs(b.0, info.time_base));
        assert!(ta.zip(tb).is_some_and(|(x, y)| (x - y).abs() < 1e-6), "frame {i}: {ta:?} vs {tb:?}");
        worst = worst.min(common::psnr8(luma(a), luma(b)));
    }
    eprintln!("{} frames; NVDEC adaptive vs bwdif, worst luma PSNR {worst:.1} dB", nv.len());
    assert!(worst > 30.0, "{worst:.1} dB");
}

/// NVDEC's adaptive deinterlacer at one frame per field against libavfilter's bwdif: NVDEC hands each field out
/// one field late, and the decoder's `FieldSlots` undo that (the stream's first map given back, each first map
/// filling the previous picture's second-field slot, the last field doubled from the woven picture). The same
/// frame count and timestamps (in seconds), and each frame nearer bwdif's frame of the same index than its
/// neighbours (a driver that stops the lag makes NVDEC's frames one field early and fails this), luma above 30 dB
/// but for the last, whose field lines are doubled rather than interpolated (above 25 dB).
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn nvdec_one_frame_per_field_matches_libavfilter_s_bwdif() {
    use videoforge::codec::Deinterlace;
    use videoforge::plan::FilterKind;
    let ((cpu, cpu_tb), (nv, info)) = bwdif_and_nvdec(Deinterlace::BwdifDouble, FilterKind::NvdecAdaptiveDouble);
    let secs = |p: Option<i64>, (n, d): (i32, i32)| p.map(|p| p as f64 * f64::from(n) / f64::from(d));
    let nv_tb = (info.time_base.0, 2 * info.time_base.1);
    let last = nv.len() - 1;
    let mut worst = f64::INFINITY;
    for (i, (a, b)) in cpu.iter().zip(&nv).enumerate() {
        let (ta, tb) = (secs(a.0, cpu_tb), secs(b.0, nv_tb));
        assert!(ta.zip(tb).is_some_and(|(x, y)| (x - y).abs() < 1e-6), "frame {i}: {ta:?} vs {tb:?}");
        let db = |j: usize| common::psnr8(luma(&cpu[j]), luma(b));
        let same = db(i);
        let before = i.checked_sub(1).map(db);
        let after = (i < last).then(|| db(i + 1));
        eprintln!("frame {i}: {same:.1} dB to bwdif's frame {i}; before {before:.1?}, after {after:.1?}");
        for n in before.into_iter().chain(after) {
            assert!(same > n, "frame {i}: {same:.1} dB to bwdif's frame {i}, {n:.1} to a neighbour");
        }
        if i < last {
            worst = worst.min(same);
        } else {
            assert!(same > 25.0, "the last frame: {same:.1} dB");
        }
    }
    eprintln!("{} frames; NVDEC adaptive at one frame per field vs bwdif, worst luma PSNR {worst:.1} dB", nv.len());
    assert!(worst > 30.0, "{worst:.1} dB");
}
