//! Benchmarks run by `videoforge bench`: figures for `bench/RESULTS.md`, never pass/fail tests. They are the
//! command line's, not the library's: they build jobs and clips the way a user would.

use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use videoforge::backend::{find_plugin, Device, ExecutionProvider, FrameModel, ModelOptions, Plugin, Precision};
use videoforge::runner::Environment;

/// What to measure.
#[derive(Debug, Clone)]
pub(crate) struct InferenceBench {
    /// The model.
    pub(crate) model: PathBuf,
    /// Input frame size.
    pub(crate) width: usize,
    /// Input frame height.
    pub(crate) height: usize,
    /// Timed frames (after 3 warm-up frames).
    pub(crate) frames: usize,
    /// Where to run.
    pub(crate) device: Device,
    /// Precision.
    pub(crate) precision: Precision,
    /// Execution provider (`None` = best for the device).
    pub(crate) execution_provider: Option<ExecutionProvider>,
    /// Tile edge (0 = whole frame).
    pub(crate) tile: u32,
    /// The backend plugin's name.
    pub(crate) backend: String,
}

/// The backend plugin `name`, loaded the way a run loads it.
fn load_backend(name: &str, env: &Environment) -> anyhow::Result<Plugin> {
    let path = find_plugin(name, &env.plugin_dirs)?;
    Ok(Plugin::load_with(&path, env.runtime_for(&path))?)
}

/// The compiled-kernel cache a run gives the fused backend, so a benchmark times kernels, not NVRTC (none for
/// ONNX Runtime, as before: a TensorRT engine cache here would be timed warm).
fn kernel_cache(backend: &str, env: &Environment) -> Option<PathBuf> {
    env.cache_dir.as_ref().filter(|_| backend == videoforge::plan::FUSED_CUDA).map(|d| d.join("kernels"))
}

/// Figures of one inference benchmark.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InferenceResult {
    /// What ran.
    pub(crate) what: String,
    /// Input width.
    pub(crate) width: usize,
    /// Input height.
    pub(crate) height: usize,
    /// Upscale factor.
    pub(crate) scale: u32,
    /// Frames per second over the timed frames.
    pub(crate) fps: f64,
    /// Milliseconds per frame.
    pub(crate) ms_per_frame: f64,
    /// Timed frames.
    pub(crate) frames: usize,
    /// Execution provider that ran.
    pub(crate) execution_provider: ExecutionProvider,
    /// Model IO type.
    pub(crate) dtype: String,
    /// Device memory in use on the GPU after the run minus before the model was loaded (device-wide), in bytes.
    pub(crate) vram_delta: Option<u64>,
}

/// Times `FrameModel::upscale` on a fixed pseudo-random frame: host buffers in and out, so the figure includes
/// the upload, the download and the host-side type conversion the backend does.
pub(crate) fn inference(b: &InferenceBench, env: &Environment) -> anyhow::Result<InferenceResult> {
    let gpu = match b.device {
        Device::Cuda(i) => Some(videoforge::gpu::GpuContext::new(i)?),
        Device::Cpu => None,
    };
    let free_before = gpu.as_ref().and_then(|g| g.mem_info().ok()).map(|(f, _)| f);
    let plugin = load_backend(&b.backend, env)?;
    let mut model = plugin.open_model(&ModelOptions {
        model_path: b.model.clone(),
        precision: b.precision,
        device: b.device,
        execution_provider: b.execution_provider,
        tile: b.tile,
        tile_overlap: if b.tile > 0 { 16 } else { 0 },
        batch: 1,
        runtime_library: env.runtime_for(&plugin.info().path).map(Path::to_path_buf),
        cache_dir: kernel_cache(&b.backend, env),
        cuda_stream: 0,
        threads: 0,
        provider_options: env.overrides.provider_options.clone(),
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
pub(crate) struct DeviceResult {
    /// What ran.
    pub(crate) what: String,
    /// Input width.
    pub(crate) width: usize,
    /// Input height.
    pub(crate) height: usize,
    /// Model alone, device buffers, on the GPU stage's stream (synchronised once per frame).
    pub(crate) model_fps: f64,
    /// The whole GPU stage per frame.
    pub(crate) stage_fps: f64,
    /// Timed frames of each.
    pub(crate) frames: usize,
    /// Model IO type.
    pub(crate) dtype: String,
    /// Device memory in use after the run minus before (device-wide), in bytes.
    pub(crate) vram_delta: Option<u64>,
    /// The stage's buffer pool counters.
    pub(crate) pool: videoforge::gpu::PoolStats,
}

/// Times the device paths on GPU `device` (see [`DeviceResult`]).
pub(crate) fn device(b: &InferenceBench, device: u32, env: &Environment) -> anyhow::Result<DeviceResult> {
    use cudarc::driver::DevicePtr;
    use videoforge::backend::DeviceTensor;
    use videoforge::video::{Matrix, Range, YuvFrame};
    let dev_err = |e: cudarc::driver::DriverError| anyhow::anyhow!("GPU {device}: {e:?}");
    let gpu = std::sync::Arc::new(videoforge::gpu::GpuContext::new(device)?);
    let free_before = gpu.mem_info().ok().map(|(f, _)| f);
    let plugin = load_backend(&b.backend, env)?;
    let mut model = plugin.open_model(&ModelOptions {
        model_path: b.model.clone(),
        precision: b.precision,
        device: Device::Cuda(device),
        execution_provider: b.execution_provider,
        tile: 0,
        tile_overlap: 0,
        batch: 1,
        runtime_library: env.runtime_for(&plugin.info().path).map(Path::to_path_buf),
        cache_dir: kernel_cache(&b.backend, env),
        cuda_stream: gpu.compute.cu_stream() as usize,
        threads: 0,
        provider_options: env.overrides.provider_options.clone(),
    })?;
    let (w, h, s) = (b.width, b.height, model.scale() as usize);
    let (dtype, elem) = match model.info().dtype {
        Precision::F16 => (Precision::F16, 2usize),
        _ => (Precision::F32, 4usize),
    };
    let stream = gpu.compute.clone();
    let zeros = |n: usize| stream.alloc_zeros::<u8>(n).map_err(dev_err);
    let input = zeros(3 * w * h * elem)?;
    let output = zeros(3 * w * h * s * s * elem)?;
    let run = |model: &mut videoforge::backend::LoadedModel| -> anyhow::Result<()> {
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
    stream.synchronize().map_err(dev_err)?;
    let t = Instant::now();
    for _ in 0..b.frames {
        run(&mut model)?;
        stream.synchronize().map_err(dev_err)?;
    }
    let model_fps = b.frames as f64 / t.elapsed().as_secs_f64();
    let dtype_name = format!("{:?}", model.info().dtype);

    let mut stage = videoforge::gpu::stage::GpuStage::new(gpu.clone(), device, model, 8 << 30, true)?;
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
pub(crate) struct SyntheticBench {
    /// The model.
    pub(crate) model: PathBuf,
    /// Where to run.
    pub(crate) device: Device,
    /// Precision.
    pub(crate) precision: Precision,
    /// Clip width.
    pub(crate) width: u32,
    /// Clip height.
    pub(crate) height: u32,
    /// Clip length in frames.
    pub(crate) frames: u64,
    /// The job's `model.backend`.
    pub(crate) backend: String,
}

/// Figures and checks of [`stress_test_synthetic`].
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SyntheticResult {
    /// What ran.
    pub(crate) what: String,
    /// Device, `cpu` or `cuda:N`.
    pub(crate) device: String,
    /// Clip width.
    pub(crate) width: u32,
    /// Clip height.
    pub(crate) height: u32,
    /// Frames asked for.
    pub(crate) frames: u64,
    /// Frames the pipeline decoded.
    pub(crate) frames_decoded: u64,
    /// Frames the pipeline encoded.
    pub(crate) frames_encoded: u64,
    /// Pipeline wall-clock seconds.
    pub(crate) wall_s: f64,
    /// Frames per second end to end.
    pub(crate) fps: f64,
    /// Sum of the stages' busy seconds.
    pub(crate) busy_sum_s: f64,
    /// Device-wide free bytes before the model was loaded minus after the stage was dropped (GPU).
    pub(crate) vram_delta_bytes: Option<i64>,
    /// The GPU stage's pool.
    pub(crate) pool: Option<videoforge::gpu::PoolStats>,
    /// Its hit rate.
    pub(crate) pool_hit_rate: Option<f64>,
    /// Steady-state host allocations (information; `None` when `CountingAlloc` is not the global allocator).
    pub(crate) steady_state_allocations: Option<u64>,
    /// Same input twice gave the same bytes (information).
    pub(crate) deterministic: Option<bool>,
    /// The checks: frames in == frames out == K, VRAM back (GPU), pool hit rate ≥ 90 % (GPU), stages overlapped.
    pub(crate) checks: Vec<videoforge::audit::AuditCheck>,
    /// Whether every check passed (skips count as passed).
    pub(crate) passed: bool,
}

/// The synthetic stress test (issue 5): writes a generated clip to a temporary folder, runs it through the
/// whole pipeline on `b.device` with the audit on (through `runner::run_job`, exactly as the single-file command
/// does), and checks frames decoded == frames encoded == K, device memory back to its start (GPU, within
/// `audit::VRAM_TOLERANCE`, measured after an unaudited warm-up run of the same clip has set up the
/// process's one-time device state), pool hit rate ≥ 90 % (GPU) and that the stages overlapped (sum of busy time
/// > wall time). A failed check is reported in the result, not as an error.
pub(crate) fn stress_test_synthetic(b: &SyntheticBench, env: &Environment) -> anyhow::Result<SyntheticResult> {
    use videoforge::audit::{AuditCheck, Status, MIN_POOL_HIT_RATE, VRAM_TOLERANCE};
    use videoforge::gpu::PoolStats;
    let dir = std::env::temp_dir().join(format!(
        "videoforge-synthetic-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    let result = stress_in(b, &dir, env);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::warn!("{}: not removed: {e}", dir.display());
    }
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
    let pool = p.is_object().then(|| PoolStats {
        hits: p["hits"].as_u64().unwrap_or(0),
        misses: p["misses"].as_u64().unwrap_or(0),
        evictions: p["evictions"].as_u64().unwrap_or(0),
        in_use: p["in_use"].as_u64().unwrap_or(0),
        cached: p["cached"].as_u64().unwrap_or(0),
        peak: p["peak"].as_u64().unwrap_or(0),
    });
    let pool_hit_rate = pool.as_ref().map(PoolStats::hit_rate);
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
            ok(d.abs() <= VRAM_TOLERANCE),
            format!("delta {:+.1} MiB", d as f64 / f64::from(1 << 20)),
        ),
        (true, None) => row("VRAM back to start", Status::Fail, "device memory not measured".into()),
    });
    let growth = audit["vram"]["second_run_delta_bytes"].as_i64();
    checks.push(match (gpu, growth) {
        (false, _) => row("no VRAM growth over a second run", Status::Skip, "CPU run".into()),
        (true, Some(d)) => row(
            "no VRAM growth over a second run",
            ok(d.abs() <= VRAM_TOLERANCE),
            format!("delta {:+.1} MiB", d as f64 / f64::from(1 << 20)),
        ),
        (true, None) => row("no VRAM growth over a second run", Status::Fail, "not measured".into()),
    });
    checks.push(match (gpu, &pool) {
        (false, _) => row("GPU pool hit rate", Status::Skip, "CPU run".into()),
        (true, Some(p)) => row(
            "GPU pool hit rate",
            ok(p.hit_rate() >= MIN_POOL_HIT_RATE),
            format!("{:.1} % ({} hits, {} misses)", 100.0 * p.hit_rate(), p.hits, p.misses),
        ),
        (true, None) => row("GPU pool hit rate", Status::Fail, "no device stage ran (CPU fallback?)".into()),
    });
    let passed = checks.iter().all(|c| c.status != Status::Fail);
    Ok(SyntheticResult {
        what: "videoforge synthetic stress test".into(),
        device: b.device.to_string(),
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
fn stress_in(b: &SyntheticBench, dir: &std::path::Path, env: &Environment) -> anyhow::Result<serde_json::Value> {
    let input = dir.join("synthetic.mkv");
    videoforge::video::write_synthetic_clip(&input, b.width, b.height, b.frames)?;
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let model = if b.model.is_absolute() { b.model.clone() } else { std::env::current_dir()?.join(&b.model) };
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
        "version = 1\n[model]\npath = {}\nbackend = \"{}\"\nprecision = \"{precision}\"\n[device]\ngpus = {gpus}\n[[input]]\npath = {}\n\
         [output]\ndir = {}\nname = \"upscaled.mp4\"\ncontainer = \"mp4\"\n[encode]\ncodec = \"h264\"\npreset = \"ultrafast\"\n",
        q(&model.to_string_lossy()),
        b.backend,
        q(&input.to_string_lossy()),
        q(&dir.to_string_lossy()),
    );
    let source = PathBuf::from("<synthetic stress test>");
    let manifest = videoforge::manifest::parse(&text, &source)?;
    let spec = videoforge::manifest::JobSpec::new(source, dir.to_path_buf(), manifest);
    let opts = |audit| videoforge::runner::RunOptions { force: true, audit, env: env.clone(), ..Default::default() };
    if matches!(b.device, Device::Cuda(_)) {
        // One-time per-process device state (CUDA modules, cuDNN/cuBLAS handles and workspaces, NVDEC driver state)
        // is set up by a first, unaudited run: "VRAM back to start" then measures what a run leaves behind.
        videoforge::runner::run_job(&spec, &opts(false))?;
    }
    let summary = videoforge::runner::run_job(&spec, &opts(true))?;
    let rec = summary.files.into_iter().next().context("the job ran no file")?;
    if let Some(e) = &rec.error {
        anyhow::bail!("the pipeline failed: {e}");
    }
    Ok(serde_json::to_value(&rec)?)
}
