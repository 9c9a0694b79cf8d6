//! Benchmarks run by `videoforge bench`: figures for `bench/RESULTS.md`, never pass/fail tests.

use crate::backend::{self, Device, FrameModel, ModelOptions, Plugin, Precision};
use crate::error::EngineError;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// What to measure.
#[derive(Debug, Clone)]
pub struct InferenceBench {
    /// The model.
    pub model: PathBuf,
    /// Input frame size.
    pub width: usize,
    /// Input frame height.
    pub height: usize,
    /// Timed frames (after 3 warm-up frames).
    pub frames: usize,
    /// Where to run.
    pub device: Device,
    /// Precision.
    pub precision: Precision,
    /// Execution provider (`None` = best for the device).
    pub execution_provider: Option<String>,
    /// Tile edge (0 = whole frame).
    pub tile: u32,
}

/// Figures of one inference benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct InferenceResult {
    /// What ran.
    pub what: String,
    /// Input width.
    pub width: usize,
    /// Input height.
    pub height: usize,
    /// Upscale factor.
    pub scale: u32,
    /// Frames per second over the timed frames.
    pub fps: f64,
    /// Milliseconds per frame.
    pub ms_per_frame: f64,
    /// Timed frames.
    pub frames: usize,
    /// Execution provider that ran.
    pub execution_provider: String,
    /// Model IO type.
    pub dtype: String,
    /// Device memory in use on the GPU after the run minus before the model was loaded (device-wide), in bytes.
    pub vram_delta: Option<u64>,
}

/// Times `FrameModel::upscale` on a fixed pseudo-random frame: host buffers in and out, so the figure includes
/// the upload, the download and the host-side type conversion the backend does.
pub fn inference(b: &InferenceBench) -> Result<InferenceResult, EngineError> {
    let gpu = match b.device {
        Device::Cuda(i) => Some(crate::gpu::GpuContext::new(i).map_err(|e| EngineError::Device(e.to_string()))?),
        Device::Cpu => None,
    };
    let free_before = gpu.as_ref().and_then(|g| g.mem_info().ok()).map(|(f, _)| f);
    let plugin = Plugin::load(&backend::find_plugin("onnxruntime")?)?;
    let mut model = plugin.open_model(&ModelOptions {
        model_path: b.model.clone(),
        precision: b.precision,
        device: b.device,
        execution_provider: b.execution_provider.clone(),
        tile: b.tile,
        tile_overlap: if b.tile > 0 { 16 } else { 0 },
        batch: 1,
        runtime_library: None,
        cache_dir: None,
        cuda_stream: 0,
        threads: 0,
    })?;
    let mut seed = 0x1234_5678u32;
    let input: Vec<f32> = (0..3 * b.width * b.height)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32
        })
        .collect();
    let mut output = Vec::new();
    for _ in 0..3 {
        model.upscale(&input, b.width, b.height, &mut output)?;
    }
    let t = Instant::now();
    for _ in 0..b.frames {
        model.upscale(&input, b.width, b.height, &mut output)?;
    }
    let secs = t.elapsed().as_secs_f64();
    let free_after = gpu.as_ref().and_then(|g| g.mem_info().ok()).map(|(f, _)| f);
    let info = model.info().clone();
    Ok(InferenceResult {
        what: format!("videoforge inference ({}, host buffers)", plugin.info().library_version),
        width: b.width,
        height: b.height,
        scale: model.scale(),
        fps: b.frames as f64 / secs,
        ms_per_frame: secs * 1000.0 / b.frames as f64,
        frames: b.frames,
        execution_provider: info.execution_provider,
        dtype: format!("{:?}", info.dtype),
        vram_delta: free_before.zip(free_after).map(|(a, b)| a.saturating_sub(b)),
    })
}

/// Figures of the device paths on one GPU: the model alone on device buffers, and the whole GPU stage (upload a
/// 4:2:0 frame, colour kernels, model, kernels, download the encoder-format frame).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceResult {
    /// What ran.
    pub what: String,
    /// Input width.
    pub width: usize,
    /// Input height.
    pub height: usize,
    /// Model alone, device buffers, on the GPU stage's stream (synchronised once per frame).
    pub model_fps: f64,
    /// The whole GPU stage per frame.
    pub stage_fps: f64,
    /// Timed frames of each.
    pub frames: usize,
    /// Model IO type.
    pub dtype: String,
    /// Device memory in use after the run minus before (device-wide), in bytes.
    pub vram_delta: Option<u64>,
    /// The stage's buffer pool counters.
    pub pool: crate::gpu::PoolStats,
}

/// Times the device paths on GPU `device` (see [`DeviceResult`]).
pub fn device(b: &InferenceBench, device: u32) -> Result<DeviceResult, EngineError> {
    use crate::backend::DeviceTensor;
    use crate::video::{Matrix, Range, YuvFrame, YuvUpscaler};
    use cudarc::driver::DevicePtr;
    let dev_err = |e: String| EngineError::Device(e);
    let gpu = std::sync::Arc::new(crate::gpu::GpuContext::new(device).map_err(|e| dev_err(e.to_string()))?);
    let free_before = gpu.mem_info().ok().map(|(f, _)| f);
    let plugin = Plugin::load(&backend::find_plugin("onnxruntime")?)?;
    let mut model = plugin.open_model(&ModelOptions {
        model_path: b.model.clone(),
        precision: b.precision,
        device: Device::Cuda(device),
        execution_provider: b.execution_provider.clone(),
        tile: 0,
        tile_overlap: 0,
        batch: 1,
        runtime_library: None,
        cache_dir: None,
        cuda_stream: gpu.compute.cu_stream() as usize,
        threads: 0,
    })?;
    let (w, h, s) = (b.width, b.height, model.scale() as usize);
    let (dtype, elem) = match model.info().dtype {
        Precision::F16 => (Precision::F16, 2usize),
        _ => (Precision::F32, 4usize),
    };
    let stream = gpu.compute.clone();
    let zeros = |n: usize| stream.alloc_zeros::<u8>(n).map_err(|e| dev_err(format!("{e:?}")));
    let input = zeros(3 * w * h * elem)?;
    let output = zeros(3 * w * h * s * s * elem)?;
    let run = |model: &mut crate::backend::LoadedModel| -> Result<(), EngineError> {
        let (ip, _g1) = input.device_ptr(&stream);
        let (op, _g2) = output.device_ptr(&stream);
        let t = |ptr, ww: usize, hh: usize| DeviceTensor {
            ptr,
            dtype,
            shape: [1, 3, hh as i64, ww as i64],
            pitch_bytes: ww * elem,
            stream: stream.cu_stream() as usize,
            device,
        };
        model.run_device(t(ip, w, h), t(op, w * s, h * s))?;
        Ok(())
    };
    for _ in 0..3 {
        run(&mut model)?;
    }
    stream.synchronize().map_err(|e| dev_err(format!("{e:?}")))?;
    let t = Instant::now();
    for _ in 0..b.frames {
        run(&mut model)?;
        stream.synchronize().map_err(|e| dev_err(format!("{e:?}")))?;
    }
    let model_fps = b.frames as f64 / t.elapsed().as_secs_f64();
    let dtype_name = format!("{:?}", model.info().dtype);

    let mut stage = crate::gpu::stage::GpuStage::new(gpu.clone(), device, model, 8 << 30)?;
    let mut frame = YuvFrame::new(w, h, 8, Matrix::Bt709, Range::Limited);
    for (i, v) in frame.data.iter_mut().enumerate() {
        *v = (i * 7 % 220 + 16) as u8;
    }
    let mut out = YuvFrame::new(w * s, h * s, 8, Matrix::Bt709, Range::Limited);
    for _ in 0..3 {
        stage.upscale_yuv(&frame, &mut out)?;
    }
    let t = Instant::now();
    for _ in 0..b.frames {
        stage.upscale_yuv(&frame, &mut out)?;
    }
    let stage_fps = b.frames as f64 / t.elapsed().as_secs_f64();
    let free_after = gpu.mem_info().ok().map(|(f, _)| f);
    Ok(DeviceResult {
        what: format!("videoforge device paths ({})", plugin.info().library_version),
        width: w,
        height: h,
        model_fps,
        stage_fps,
        frames: b.frames,
        dtype: dtype_name,
        vram_delta: free_before.zip(free_after).map(|(a, b)| a.saturating_sub(b)),
        pool: stage.pool_stats(),
    })
}

/// The synthetic stress test: what to run.
#[derive(Debug, Clone)]
pub struct SyntheticBench {
    /// The model.
    pub model: PathBuf,
    /// Where to run.
    pub device: Device,
    /// Precision.
    pub precision: Precision,
    /// Clip width.
    pub width: u32,
    /// Clip height.
    pub height: u32,
    /// Clip length in frames.
    pub frames: u64,
}

/// Figures and checks of [`stress_test_synthetic`].
#[derive(Debug, Clone, Serialize)]
pub struct SyntheticResult {
    /// What ran.
    pub what: String,
    /// Device, `cpu` or `cuda:N`.
    pub device: String,
    /// Clip width.
    pub width: u32,
    /// Clip height.
    pub height: u32,
    /// Frames asked for.
    pub frames: u64,
    /// Frames the pipeline decoded.
    pub frames_decoded: u64,
    /// Frames the pipeline encoded.
    pub frames_encoded: u64,
    /// Pipeline wall-clock seconds.
    pub wall_s: f64,
    /// Frames per second end to end.
    pub fps: f64,
    /// Sum of the stages' busy seconds.
    pub busy_sum_s: f64,
    /// Device-wide free bytes before the model was loaded minus after the stage was dropped (GPU).
    pub vram_delta_bytes: Option<i64>,
    /// The GPU stage's pool.
    pub pool: Option<crate::gpu::PoolStats>,
    /// Its hit rate.
    pub pool_hit_rate: Option<f64>,
    /// Steady-state host allocations (information; `None` when `CountingAlloc` is not the global allocator).
    pub steady_state_allocations: Option<u64>,
    /// Same input twice gave the same bytes (information).
    pub deterministic: Option<bool>,
    /// The checks: frames in == frames out == K, VRAM back (GPU), pool hit rate ≥ 90 % (GPU), stages overlapped.
    pub checks: Vec<crate::audit::AuditCheck>,
    /// Whether every check passed (skips count as passed).
    pub passed: bool,
}

/// Writes a `frames`-frame `width`×`height` clip (a moving gradient with noise, yuv420p, BT.709 limited,
/// 25 fps) to `path` (Matroska) with the crate's FFmpeg libraries: libx264 (ultrafast, CRF 18) where present,
/// else FFV1. No `ffmpeg` CLI needed.
pub fn write_synthetic_clip(path: &std::path::Path, width: u32, height: u32, frames: u64) -> Result<(), String> {
    write_synthetic_clip_with(path, width, height, frames, None, 8)
}

/// [`write_synthetic_clip`] with a chosen encoder (`libx265`, ...; `None` = libx264 or FFV1) and bit depth
/// (8, or 10 for yuv420p10le: the 8-bit pattern times 4).
pub fn write_synthetic_clip_with(
    path: &std::path::Path,
    width: u32,
    height: u32,
    frames: u64,
    encoder: Option<&str>,
    bit_depth: u8,
) -> Result<(), String> {
    use ffmpeg_next as ff;
    if width < 2 || height < 2 || width % 2 != 0 || height % 2 != 0 {
        return Err(format!("synthetic clip {width}x{height}: width and height must be even and at least 2"));
    }
    ff::init().map_err(|e| format!("FFmpeg: {e}"))?;
    // The generator's encoder statistics are noise here.
    let level = ff::util::log::get_level().ok();
    ff::util::log::set_level(ff::util::log::Level::Error);
    let r = write_clip(path, width, height, frames, encoder, bit_depth > 8);
    if let Some(l) = level {
        ff::util::log::set_level(l);
    }
    r
}

fn write_clip(
    path: &std::path::Path,
    width: u32,
    height: u32,
    frames: u64,
    encoder: Option<&str>,
    ten_bit: bool,
) -> Result<(), String> {
    use ffmpeg_next as ff;
    let mut octx = ff::format::output_as(&path, "matroska").map_err(|e| format!("{}: {e}", path.display()))?;
    let global_header = octx.format().flags().contains(ff::format::Flags::GLOBAL_HEADER);
    let (codec, x26x) = match encoder {
        Some(name) => (ff::encoder::find_by_name(name).ok_or(format!("encoder {name} is not available"))?, true),
        None => match ff::encoder::find_by_name("libx264") {
            Some(c) => (c, true),
            None => (ff::encoder::find(ff::codec::Id::FFV1).ok_or("neither libx264 nor FFV1 is available")?, false),
        },
    };
    let pix = if ten_bit { ff::format::Pixel::YUV420P10LE } else { ff::format::Pixel::YUV420P };
    let tb = ff::Rational::new(1, 25);
    let mut enc = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| format!("synthetic encoder: {e}"))?;
    enc.set_width(width);
    enc.set_height(height);
    enc.set_format(pix);
    enc.set_time_base(tb);
    enc.set_frame_rate(Some(ff::Rational::new(25, 1)));
    enc.set_colorspace(ff::color::Space::BT709);
    enc.set_color_range(ff::color::Range::MPEG);
    if global_header {
        enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    }
    let mut opts = ff::Dictionary::new();
    if x26x {
        opts.set("preset", "ultrafast");
        opts.set("crf", "18");
    }
    if encoder == Some("libx265") {
        opts.set("x265-params", "log-level=error");
    }
    let mut encoder = enc.open_with(opts).map_err(|e| format!("cannot open the synthetic encoder: {e}"))?;
    let index = {
        let mut ost = octx.add_stream_with(&encoder).map_err(|e| format!("add stream: {e}"))?;
        ost.set_time_base(tb);
        ost.index()
    };
    octx.write_header().map_err(|e| format!("write header: {e}"))?;
    let ost_tb = octx.stream(index).map(|s| s.time_base()).unwrap_or(tb);
    let drain = |encoder: &mut ff::encoder::Video, octx: &mut ff::format::context::Output| -> Result<(), String> {
        let mut packet = ff::Packet::empty();
        while encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(index);
            packet.rescale_ts(tb, ost_tb);
            packet.write_interleaved(octx).map_err(|e| format!("mux: {e}"))?;
        }
        Ok(())
    };
    let mut frame = ff::frame::Video::new(pix, width, height);
    let mut seed = 0x9e37_79b9u32;
    for i in 0..frames {
        let t = i as usize;
        for plane in 0..3 {
            let (w, h) =
                if plane == 0 { (width as usize, height as usize) } else { (width as usize / 2, height as usize / 2) };
            let stride = frame.stride(plane);
            let data = frame.data_mut(plane);
            for y in 0..h {
                for x in 0..w {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let noise = (seed >> 28) as usize;
                    let v = match plane {
                        0 => 16 + (x * 3 + y * 2 + t * 5 + noise) % 220,
                        1 => 16 + (x * 2 + t * 3) % 225,
                        _ => 16 + (y * 2 + 240 - t % 240) % 225,
                    };
                    if ten_bit {
                        let w = ((v as u16) << 2).to_le_bytes();
                        data[y * stride + 2 * x..y * stride + 2 * x + 2].copy_from_slice(&w);
                    } else {
                        data[y * stride + x] = v as u8;
                    }
                }
            }
        }
        frame.set_pts(Some(i as i64));
        encoder.send_frame(&frame).map_err(|e| format!("encode: {e}"))?;
        drain(&mut encoder, &mut octx)?;
    }
    encoder.send_eof().map_err(|e| format!("flush: {e}"))?;
    drain(&mut encoder, &mut octx)?;
    octx.write_trailer().map_err(|e| format!("write trailer: {e}"))?;
    Ok(())
}

/// The synthetic stress test (issue 5): writes a generated clip to a temporary folder, runs it through the
/// whole pipeline on `b.device` with the audit on (through [`crate::runner::run_job`], exactly as the single-file
/// command does), and checks frames decoded == frames encoded == K, device memory back to its start (GPU, within
/// [`crate::audit::VRAM_TOLERANCE`], measured after an unaudited warm-up run of the same clip has set up the
/// process's one-time device state), pool hit rate ≥ 90 % (GPU) and that the stages overlapped (sum of busy time
/// > wall time). A failed check is reported in the result, not as an error.
pub fn stress_test_synthetic(b: &SyntheticBench) -> Result<SyntheticResult, EngineError> {
    use crate::audit::{AuditCheck, Status};
    let dir = std::env::temp_dir().join(format!(
        "videoforge-synthetic-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(&dir, e))?;
    let result = stress_in(b, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let r = result?;
    let f = |k: &str| r["pipeline"][k].as_f64();
    let u = |k: &str| r["pipeline"][k].as_u64();
    let audit = &r["pipeline"]["audit"];
    let frames_decoded = u("frames_decoded").unwrap_or(0);
    let frames_encoded = u("frames_encoded").unwrap_or(0);
    let wall_s = audit["wall_s"].as_f64().or(f("wall_s")).unwrap_or(0.0);
    let busy_sum_s = audit["busy_sum_s"].as_f64().unwrap_or(0.0);
    let vram_delta_bytes = audit["vram"]["delta_bytes"].as_i64();
    let p = &audit["pool"];
    let pool = p.is_object().then(|| crate::gpu::PoolStats {
        hits: p["hits"].as_u64().unwrap_or(0),
        misses: p["misses"].as_u64().unwrap_or(0),
        evictions: p["evictions"].as_u64().unwrap_or(0),
        in_use: p["in_use"].as_u64().unwrap_or(0),
        cached: p["cached"].as_u64().unwrap_or(0),
        peak: p["peak"].as_u64().unwrap_or(0),
    });
    let pool_hit_rate = pool.as_ref().map(crate::gpu::PoolStats::hit_rate);
    let steady = &audit["steady_state"];
    let steady_state_allocations =
        if steady["counted"].as_bool() == Some(true) { steady["allocations"].as_u64() } else { None };
    let gpu = matches!(b.device, Device::Cuda(_));
    let row = |name: &str, status, detail: String| AuditCheck { name: name.into(), status, detail };
    let ok = |c: bool| if c { Status::Pass } else { Status::Fail };
    let mut checks = vec![
        row(
            "frames in == frames out == K",
            ok(frames_decoded == b.frames && frames_encoded == b.frames),
            format!("{frames_decoded} decoded, {frames_encoded} encoded, {} asked", b.frames),
        ),
        row("stages overlap", ok(busy_sum_s > wall_s), format!("sum of busy {busy_sum_s:.3} s vs wall {wall_s:.3} s")),
    ];
    checks.push(match (gpu, vram_delta_bytes) {
        (false, _) => row("VRAM back to start", Status::Skip, "CPU run".into()),
        (true, Some(d)) => row(
            "VRAM back to start",
            ok(d.abs() <= crate::audit::VRAM_TOLERANCE),
            format!("delta {:+.1} MiB", d as f64 / f64::from(1 << 20)),
        ),
        (true, None) => row("VRAM back to start", Status::Fail, "device memory not measured".into()),
    });
    let growth = audit["vram"]["second_run_delta_bytes"].as_i64();
    checks.push(match (gpu, growth) {
        (false, _) => row("no VRAM growth over a second run", Status::Skip, "CPU run".into()),
        (true, Some(d)) => row(
            "no VRAM growth over a second run",
            ok(d.abs() <= crate::audit::VRAM_TOLERANCE),
            format!("delta {:+.1} MiB", d as f64 / f64::from(1 << 20)),
        ),
        (true, None) => row("no VRAM growth over a second run", Status::Fail, "not measured".into()),
    });
    checks.push(match (gpu, &pool) {
        (false, _) => row("GPU pool hit rate", Status::Skip, "CPU run".into()),
        (true, Some(p)) => row(
            "GPU pool hit rate",
            ok(p.hit_rate() >= crate::audit::MIN_POOL_HIT_RATE),
            format!("{:.1} % ({} hits, {} misses)", 100.0 * p.hit_rate(), p.hits, p.misses),
        ),
        (true, None) => row("GPU pool hit rate", Status::Fail, "no device stage ran (CPU fallback?)".into()),
    });
    let passed = checks.iter().all(|c| c.status != Status::Fail);
    Ok(SyntheticResult {
        what: "videoforge synthetic stress test".into(),
        device: match b.device {
            Device::Cpu => "cpu".into(),
            Device::Cuda(i) => format!("cuda:{i}"),
        },
        width: b.width,
        height: b.height,
        frames: b.frames,
        frames_decoded,
        frames_encoded,
        wall_s,
        fps: f("fps").unwrap_or(0.0),
        busy_sum_s,
        vram_delta_bytes,
        pool,
        pool_hit_rate,
        steady_state_allocations,
        deterministic: audit["determinism"]["identical"].as_bool(),
        checks,
        passed,
    })
}

/// Writes the clip and runs the job in `dir`; the file record as JSON.
fn stress_in(b: &SyntheticBench, dir: &std::path::Path) -> Result<serde_json::Value, EngineError> {
    let input = dir.join("synthetic.mkv");
    write_synthetic_clip(&input, b.width, b.height, b.frames).map_err(|m| EngineError::Stage {
        stage: "synthetic",
        message: m,
        retry: crate::error::Retry::Permanent,
    })?;
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let model = if b.model.is_absolute() {
        b.model.clone()
    } else {
        std::env::current_dir().map_err(|e| EngineError::io(&b.model, e))?.join(&b.model)
    };
    let gpus = match b.device {
        Device::Cpu => "\"cpu\"".to_string(),
        Device::Cuda(i) => format!("[{i}]"),
    };
    let precision = match b.precision {
        Precision::F16 => "f16",
        Precision::F32 => "f32",
        _ => "auto",
    };
    let text = format!(
        "version = 1\n[model]\npath = {}\nprecision = \"{precision}\"\n[device]\ngpus = {gpus}\n[[input]]\npath = {}\n\
         [output]\ndir = {}\nname = \"upscaled.mp4\"\ncontainer = \"mp4\"\n[encode]\ncodec = \"h264\"\npreset = \"ultrafast\"\n",
        q(&model.to_string_lossy()),
        q(&input.to_string_lossy()),
        q(&dir.to_string_lossy()),
    );
    let source = PathBuf::from("<synthetic stress test>");
    let manifest = crate::manifest::parse(&text, &source).map_err(EngineError::from)?;
    let spec = crate::manifest::JobSpec { source, base_dir: dir.to_path_buf(), manifest };
    if matches!(b.device, Device::Cuda(_)) {
        // One-time per-process device state (CUDA modules, cuDNN/cuBLAS handles and workspaces, NVDEC driver state)
        // is set up by a first, unaudited run: "VRAM back to start" then measures what a run leaves behind.
        let warm =
            crate::runner::RunOptions { shard: None, force: true, dry_run: false, audit: false, progress: false };
        crate::runner::run_job(&spec, &warm)?;
    }
    let opts = crate::runner::RunOptions { shard: None, force: true, dry_run: false, audit: true, progress: false };
    let summary = crate::runner::run_job(&spec, &opts)?;
    let Some(rec) = summary.files.into_iter().next() else {
        return Err(EngineError::Stage {
            stage: "synthetic",
            message: "the job ran no file".into(),
            retry: crate::error::Retry::Permanent,
        });
    };
    if let Some(e) = &rec.error {
        return Err(EngineError::Stage {
            stage: "synthetic",
            message: format!("the pipeline failed: {e}"),
            retry: crate::error::Retry::Permanent,
        });
    }
    serde_json::to_value(&rec).map_err(|e| EngineError::Stage {
        stage: "synthetic",
        message: format!("report: {e}"),
        retry: crate::error::Retry::Permanent,
    })
}
