//! Planning: a valid job, the machine and the model's facts become the [`EnginePlan`]. Deterministic: the same
//! inputs give the same plan, byte for byte.

use super::file_plan::segments_for;
use super::inputs::expand_inputs;
use super::validate::validate;
use super::{DecodeRoute, Decoder, EncodePlan, EnginePlan, ModelFacts, ModelPlan, PipelinePlan, Problem, WorkerPlan};
use crate::codec::{Device, ExecutionProvider, Precision};
use crate::machine::MachineProbe;
use crate::manifest::{BackendChoice, ByteSize, EncodeSection, Gpus, JobSpec, PrecisionChoice};
use std::collections::BTreeMap;

/// Reference frame size the device budgets are sized for when no tile is set.
const REFERENCE_FRAME: (u32, u32) = (1920, 1080);
/// Feature channels assumed for activation memory (SRVGGNet/RRDBNet use 64).
const ACTIVATION_CHANNELS: u64 = 64;

/// Device memory one frame needs in the inference stage: input and output RGB tensors plus two activation
/// buffers of [`ACTIVATION_CHANNELS`] channels (ping-pong between layers).
pub fn infer_bytes(w: u32, h: u32, scale: u32, precision: Precision) -> u64 {
    let e = precision.bytes();
    let px = u64::from(w) * u64::from(h);
    let out_px = px * u64::from(scale) * u64::from(scale);
    e * (3 * px + 3 * out_px + 2 * ACTIVATION_CHANNELS * px)
}

/// The backend name of videoforge's own fused CUDA kernels.
pub const FUSED_CUDA: &str = "fused-cuda";

/// The backend name of the ONNX Runtime plugin.
pub const ONNXRUNTIME: &str = "onnxruntime";

/// Settings that come from the environment rather than the job file (read once, at the CLI edge), for
/// benchmarks and comparisons. The defaults are what a job gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overrides {
    /// Frames per encoder segment (`VIDEOFORGE_SEGMENT_FRAMES`; 0 = about two seconds).
    pub segment_frames: u32,
    /// Frames in flight per segment encoder (`VIDEOFORGE_SEGMENT_QUEUE`; 0 = 8).
    pub segment_queue: u32,
    /// Page-lock host frames for GPU copies (`VIDEOFORGE_NO_PIN` turns it off).
    pub pin_host_frames: bool,
    /// Execution provider options for the backend (`VIDEOFORGE_ORT_CUDA_OPTIONS`).
    pub provider_options: Option<String>,
}

impl Default for Overrides {
    fn default() -> Self {
        Overrides { segment_frames: 0, segment_queue: 0, pin_host_frames: true, provider_options: None }
    }
}

/// Turns a valid job into the plan that will run. `facts` come from loading the model through its backend.
pub fn build(
    spec: &JobSpec,
    probe: &MachineProbe,
    facts: &ModelFacts,
    overrides: &Overrides,
) -> Result<EnginePlan, Vec<Problem>> {
    let mut problems = validate(spec);
    let m = &spec.manifest;
    let mut reasons = Vec::new();

    // Devices and workers.
    let has_gpu_provider =
        facts.execution_providers.iter().any(|e| matches!(e, ExecutionProvider::Cuda | ExecutionProvider::Tensorrt));
    let devices: Vec<Device> = match &m.device.gpus {
        Gpus::Cpu => {
            reasons.push("device: CPU, as the job asks".into());
            vec![Device::Cpu]
        }
        Gpus::Auto if probe.gpus.is_empty() => {
            reasons.push(format!(
                "device: CPU, no GPU found ({})",
                probe.notes.first().map(String::as_str).unwrap_or("none visible")
            ));
            vec![Device::Cpu]
        }
        Gpus::Auto if !has_gpu_provider => {
            reasons.push(format!(
                "device: CPU, {} GPU(s) found but the {} runtime has no CUDA or TensorRT execution provider",
                probe.gpus.len(),
                facts.backend
            ));
            vec![Device::Cpu]
        }
        Gpus::Auto => {
            reasons.push(format!("device: every GPU found ({})", probe.gpus.len()));
            probe.gpus.iter().map(|g| Device::Cuda(g.index)).collect()
        }
        Gpus::List(list) => {
            for &i in list {
                if !probe.gpus.iter().any(|g| g.index == i) {
                    let why = if probe.gpus.is_empty() {
                        probe.notes.first().cloned().unwrap_or_else(|| "no GPU found".into())
                    } else {
                        format!("this machine has {} GPU(s)", probe.gpus.len())
                    };
                    problems.push(Problem::new("device.gpus", format!("GPU {i} is not available: {why}")));
                }
            }
            if !list.is_empty() && !has_gpu_provider {
                problems.push(Problem::new(
                    "device.gpus",
                    format!(
                        "GPUs were asked for but the {} runtime has no CUDA or TensorRT execution provider \
                         (install the onnxruntime-gpu build, or use gpus = \"cpu\")",
                        facts.backend
                    ),
                ));
            }
            reasons.push(format!("device: GPUs {list:?}, as the job asks (one worker each)"));
            list.iter().map(|&i| Device::Cuda(i)).collect()
        }
    };
    let gpu = devices.iter().any(|d| matches!(d, Device::Cuda(_)));

    // Execution provider and precision.
    let fused = facts.backend == FUSED_CUDA;
    let execution_provider = match (gpu, m.model.backend) {
        (false, BackendChoice::FusedCuda) => {
            problems.push(Problem::new(
                "model.backend",
                "fused-cuda runs on CUDA GPUs (SM 8.0 or newer), and this plan runs on the CPU",
            ));
            ExecutionProvider::Cpu
        }
        (false, BackendChoice::Tensorrt) => {
            problems.push(Problem::new("model.backend", "tensorrt needs a GPU, and this plan runs on the CPU"));
            ExecutionProvider::Cpu
        }
        (false, _) => ExecutionProvider::Cpu,
        (true, BackendChoice::Tensorrt) => {
            if !facts.execution_providers.contains(&ExecutionProvider::Tensorrt) {
                problems.push(Problem::new(
                    "model.backend",
                    format!(
                        "tensorrt was asked for but the {} runtime has no TensorRT execution provider",
                        facts.backend
                    ),
                ));
            }
            ExecutionProvider::Tensorrt
        }
        (true, _) => ExecutionProvider::Cuda,
    };
    let precision = match (m.model.precision, facts.io_precision) {
        (PrecisionChoice::F32, _) if fused => {
            problems.push(Problem::new(
                "model.precision",
                "fused-cuda computes in FP16; precision f32 needs backend = \"onnxruntime\"",
            ));
            Precision::F16
        }
        // The fused kernels compute in FP16 whatever the model file's IO type (it is kept at the edges).
        (_, _) if fused => Precision::F16,
        (PrecisionChoice::Auto, p) => p,
        (PrecisionChoice::F32, Precision::F32) => Precision::F32,
        (PrecisionChoice::F16, Precision::F16) => Precision::F16,
        (PrecisionChoice::F16, _) if execution_provider == ExecutionProvider::Tensorrt => {
            reasons.push("precision: f16 through TensorRT's FP16 mode on an f32 model".into());
            Precision::F16
        }
        (PrecisionChoice::F16, _) => {
            problems.push(Problem::new(
                "model.precision",
                format!(
                    "the model takes f32 and the {execution_provider} execution provider cannot run it in f16 \
                     (use an f16 model, precision = \"auto\", or backend = \"tensorrt\")"
                ),
            ));
            Precision::F32
        }
        (PrecisionChoice::F32, _) => {
            problems.push(Problem::new(
                "model.precision",
                "the model takes f16; running it in f32 needs an f32 model (use precision = \"auto\")",
            ));
            Precision::F16
        }
    };

    // Pipeline sizes.
    let pl = &m.pipeline;
    let mut tile = pl.tile.unwrap_or(0);
    let vram_limit = m.device.vram_limit.map(|b| b.0);
    let mut workers = Vec::new();
    let depth = pl.depth.map(|d| d as usize).unwrap_or(if gpu { 6 } else { 3 });
    if gpu {
        let (rw, rh) = if tile > 0 { (tile, tile) } else { REFERENCE_FRAME };
        let min_tile = 64;
        let need = |w: u32, h: u32| infer_bytes(w, h, facts.scale, precision) + model_overhead(spec);
        if let Some(limit) = vram_limit {
            if tile == 0 && need(rw, rh) > limit {
                // Pick the largest power-of-two tile that fits.
                let mut t = 1024;
                while t > min_tile && need(t, t) > limit {
                    t /= 2;
                }
                tile = t;
                reasons.push(format!(
                    "tile: {t} px, because a whole {rw}x{rh} frame needs {} and vram_limit is {}",
                    ByteSize(need(rw, rh)),
                    ByteSize(limit)
                ));
            }
            let (tw, th) = if tile > 0 { (tile, tile) } else { (rw, rh) };
            if need(tw, th) > limit {
                problems.push(Problem::new(
                    "device.vram_limit",
                    format!(
                        "stage \"infer\" needs {} for a {tw}x{th} tile; vram_limit is {}",
                        ByteSize(need(tw, th)),
                        ByteSize(limit)
                    ),
                ));
            }
        }
        // What the inference runtime needs (weights, workspace, activations) is set aside; the GPU stage's
        // frame pool gets the rest, never less than what one frame's buffers need.
        let (fw, fh) = if tile > 0 { (tile, tile) } else { REFERENCE_FRAME };
        let runtime_need = need(fw, fh);
        for (id, d) in devices.iter().enumerate() {
            let total = match d {
                Device::Cuda(i) => probe.gpus.iter().find(|g| g.index == *i).map(|g| g.vram_total),
                Device::Cpu => None,
            };
            let budget = match (vram_limit, total) {
                (Some(l), Some(t)) => Some(l.min(t)),
                (Some(l), None) => Some(l),
                (None, Some(t)) => Some(t * 9 / 10),
                (None, None) => None,
            };
            let frames = frame_pool_need(fw, fh, facts.scale, precision, depth);
            let frame_pool = budget.map(|b| b.saturating_sub(runtime_need).max(frames));
            workers.push(WorkerPlan { id: id as u32, device: *d, vram_budget: budget, frame_pool_budget: frame_pool });
        }
    } else {
        if vram_limit.is_some() {
            reasons.push("vram_limit: ignored, the plan runs on the CPU".into());
        }
        workers.push(WorkerPlan { id: 0, device: Device::Cpu, vram_budget: None, frame_pool_budget: None });
    }
    // On a GPU the CPU encoder is the slowest stage (no NVENC on H100/H200): two files per GPU keep the GPU fed
    // while one file's encoder drains, and use two NVDEC engines where decode runs there.
    let files_at_once = m.device.files_at_once.unwrap_or(if gpu { 2 } else { 1 });
    if m.device.files_at_once.is_none() && gpu {
        reasons.push("files at once: 2 per GPU worker, so the GPU stays busy while a CPU encoder drains".into());
    }
    // CPU inference gets the cores, shared by the files that run at once (decoding and encoding threads wait on
    // the model most of the time there).
    let inference_threads = if gpu { 0 } else { (probe.cpu_cores / files_at_once.max(1) as usize).max(1) as u32 };
    if !gpu {
        reasons.push(format!(
            "inference threads: {inference_threads} ({} core(s), {files_at_once} file(s) at once)",
            probe.cpu_cores
        ));
    }
    let pipeline = PipelinePlan {
        depth,
        batch: pl.batch.unwrap_or(1) as usize,
        tile,
        tile_overlap: pl.tile_overlap.unwrap_or(if tile > 0 { 16 } else { 0 }),
        cpu_threads: probe.cpu_cores.max(1),
        inference_threads,
        pin_host_frames: overrides.pin_host_frames,
    };

    let decode = decode_routes(probe, gpu);

    // Encoder: on the CPU. NVENC is probed (by opening a session), but the lent H100/H200 have none and this
    // build has no NVENC path.
    let nvenc = probe.gpus.iter().any(|g| g.nvenc.available);
    let encoder_reason = if !gpu {
        "CPU plan: libavcodec encoder".to_string()
    } else if nvenc {
        "NVENC opens a session here, but this build encodes on the CPU with libavcodec".into()
    } else {
        let why = probe.gpus.first().map(|g| g.nvenc.detail.clone()).unwrap_or_default();
        format!("no NVENC ({why}): frames go to the CPU encoder in encoder format")
    };

    let encode = encode_plan(&m.encode, m.encode.crf, m.encode.preset.clone(), overrides);
    // How many encoder instances a 4K output would get here, to say so in the plan.
    let encoder_reason = match segments_for(&encode, 3840, 2160, None, probe.cpu_cores) {
        (1, _) => encoder_reason,
        (n, _) => format!(
            "{encoder_reason}; {} outputs of 1440p and up are encoded as {n} segments at once (encode.segments), \
             because one instance cannot use {} cores",
            encode.encoder, probe.cpu_cores
        ),
    };
    let (items, mut wp) = expand_inputs(spec, facts.scale);
    problems.append(&mut wp);
    let mut encode_overrides = BTreeMap::new();
    for (index, (from, _)) in items.iter().enumerate() {
        if let Some(o) = m.input.get(*from).and_then(|i| i.encode.as_ref()) {
            encode_overrides.insert(
                index,
                encode_plan(&m.encode, o.crf.or(m.encode.crf), o.preset.clone().or(m.encode.preset.clone()), overrides),
            );
        }
    }
    problems.dedup();
    if !problems.is_empty() {
        return Err(problems);
    }
    let model_path = spec.resolve(&m.model.path);
    let sha256 = crate::digest::sha256_file(&model_path)
        .map_err(|e| vec![Problem::new("model.path", format!("cannot read {}: {e}", model_path.display()))])?;
    Ok(EnginePlan {
        plan_version: 1,
        job: spec.source.clone(),
        model: ModelPlan {
            path: model_path,
            sha256,
            backend: facts.backend.clone(),
            plugin: facts.plugin.clone(),
            execution_provider,
            precision,
            scale: facts.scale,
            runtime_library: m.model.runtime.as_ref().map(|r| spec.resolve(r)),
            provider_options: overrides.provider_options.clone(),
        },
        workers,
        files_at_once,
        decode,
        encoder_reason,
        encode,
        encode_overrides,
        container: m.output.container,
        deinterlace: m.filter.deinterlace,
        pipeline,
        work: items.into_iter().map(|(_, w)| w).collect(),
        quality: m.quality.clone(),
        reasons,
    })
}

/// Weights plus runtime workspace: the model file's size times 4, and 256 MiB for the runtime itself.
fn model_overhead(spec: &JobSpec) -> u64 {
    let size = std::fs::metadata(spec.resolve(&spec.manifest.model.path)).map(|m| m.len()).unwrap_or(0);
    size * 4 + (256 << 20)
}

fn encode_plan(e: &EncodeSection, crf: Option<u32>, preset: Option<String>, o: &Overrides) -> EncodePlan {
    EncodePlan {
        codec: e.codec,
        encoder: e.codec.encoder().into(),
        crf: crf.or(e.codec.default_crf()),
        preset: preset.or(e.codec.default_preset().map(str::to_string)),
        profile: e.profile.clone(),
        bit_depth: e.bit_depth,
        chroma: e.chroma.fixed(),
        threads: e.threads,
        copy_audio: e.copy_audio,
        copy_subtitles: e.copy_subtitles,
        segments: e.segments.unwrap_or(0),
        segment_frames: o.segment_frames,
        segment_queue: o.segment_queue,
    }
}

/// Device memory of the GPU stage's frame buffers for a `w`×`h` input: the 4:2:0 input, RGB in and out, and the
/// encoder-format output, `depth` frames deep.
fn frame_pool_need(w: u32, h: u32, scale: u32, precision: Precision, depth: usize) -> u64 {
    let (px, s2) = (u64::from(w) * u64::from(h), u64::from(scale) * u64::from(scale));
    let e = precision.bytes();
    let one = px * 3 + 3 * px * e + 3 * px * s2 * e + px * s2 * 3;
    one * depth.max(1) as u64
}

/// Where each codec and bit depth is decoded, from the first GPU's NVDEC capabilities.
fn decode_routes(probe: &MachineProbe, gpu: bool) -> Vec<DecodeRoute> {
    let mut decode = Vec::new();
    for (codec, depths) in [("h264", [8u8, 10]), ("hevc", [8, 10]), ("vp9", [8, 10]), ("av1", [8, 10])] {
        for bd in depths {
            let cap = probe.nvdec(codec, bd);
            let (decoder, reason, limits) = match (gpu, cap) {
                (false, _) => (Decoder::Cpu, "CPU plan".to_string(), None),
                (true, Some(c)) if c.supported && codec != "av1" => (
                    Decoder::Nvdec,
                    format!(
                        "NVDEC ({} engines, {}x{} to {}x{}): frames stay on the GPU; a file NVDEC cannot take (odd or \
                         out-of-range size, not 4:2:0) is decoded on the CPU and uploaded, with the reason in its plan",
                        c.engines, c.min_width, c.min_height, c.max_width, c.max_height
                    ),
                    Some([c.min_width, c.min_height, c.max_width, c.max_height]),
                ),
                (true, Some(c)) if c.supported => (
                    Decoder::Cpu,
                    format!(
                        "NVDEC supports it ({} engines), but this build demuxes AV1 for the CPU decoder",
                        c.engines
                    ),
                    None,
                ),
                (true, Some(_)) => (Decoder::Cpu, "NVDEC does not support it on this GPU".to_string(), None),
                (true, None) => (Decoder::Cpu, "NVDEC not available".to_string(), None),
            };
            decode.push(DecodeRoute { codec: codec.into(), bit_depth: bd, decoder, reason, limits });
        }
    }
    decode
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{GpuInfo, NvencStatus};
    use crate::plan::format_problems;
    use std::path::Path;

    fn spec(gpus: &str) -> JobSpec {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = format!(
            "version = 1\n[model]\npath = \"models/realesr-animevideov3-x2.onnx\"\n[device]\ngpus = {gpus}\n\
             [[input]]\npath = \"jobs/media/sample.mp4\"\n[output]\ndir = \"out/test\"\n"
        );
        JobSpec::new(
            "test.toml".into(),
            root.to_path_buf(),
            crate::manifest::parse(&text, Path::new("test.toml")).unwrap(),
        )
    }

    fn machine(n: u32) -> MachineProbe {
        MachineProbe {
            cpu_cores: 16,
            driver_version: Some("580.159.04".into()),
            cuda_version: Some("13.0".into()),
            cudnn_version: Some("9.10.2".into()),
            tensorrt_version: None,
            gpus: (0..n)
                .map(|i| GpuInfo {
                    index: i,
                    name: "NVIDIA H100 80GB HBM3".into(),
                    uuid: format!("GPU-{i}"),
                    compute_capability: "9.0".into(),
                    vram_total: 80 << 30,
                    vram_free: 79 << 30,
                    nvdec: Vec::new(),
                    nvenc: NvencStatus { available: false, detail: "NV_ENC_ERR_UNSUPPORTED_DEVICE".into() },
                })
                .collect(),
            notes: Vec::new(),
        }
    }

    fn facts(eps: &[ExecutionProvider]) -> ModelFacts {
        ModelFacts {
            scale: 2,
            io_precision: Precision::F32,
            execution_providers: eps.to_vec(),
            backend: "onnxruntime".into(),
            plugin: "libvideoforge_backend_onnxruntime.so".into(),
        }
    }

    fn devices(p: &EnginePlan) -> Vec<Device> {
        p.workers.iter().map(|w| w.device).collect()
    }

    #[test]
    fn workers_follow_the_gpu_list() {
        let f = facts(&[ExecutionProvider::Cpu, ExecutionProvider::Cuda]);
        let p = build(&spec("[0, 1]"), &machine(2), &f, &Overrides::default()).unwrap();
        assert_eq!(devices(&p), vec![Device::Cuda(0), Device::Cuda(1)]);
        let p = build(&spec("[0, 0]"), &machine(1), &f, &Overrides::default()).unwrap();
        assert_eq!(devices(&p), vec![Device::Cuda(0), Device::Cuda(0)], "two workers may share one GPU");
        let p = build(&spec("\"auto\""), &machine(4), &f, &Overrides::default()).unwrap();
        assert_eq!(devices(&p).len(), 4);
        assert!(p.workers.iter().all(|w| w.vram_budget == Some((80u64 << 30) * 9 / 10)));
        assert_eq!(p.model.execution_provider, ExecutionProvider::Cuda);
    }

    #[test]
    fn auto_falls_back_to_cpu_and_says_why() {
        let p =
            build(&spec("\"auto\""), &machine(0), &facts(&[ExecutionProvider::Cpu]), &Overrides::default()).unwrap();
        assert_eq!(devices(&p), vec![Device::Cpu]);
        let p =
            build(&spec("\"auto\""), &machine(2), &facts(&[ExecutionProvider::Cpu]), &Overrides::default()).unwrap();
        assert_eq!(devices(&p), vec![Device::Cpu]);
        assert!(p.reasons.iter().any(|r| r.contains("no CUDA or TensorRT execution provider")), "{:?}", p.reasons);
    }

    #[test]
    fn a_missing_gpu_is_a_problem_naming_it() {
        let e = build(
            &spec("[0, 3]"),
            &machine(2),
            &facts(&[ExecutionProvider::Cpu, ExecutionProvider::Cuda]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(format_problems(&e), "device.gpus: GPU 3 is not available: this machine has 2 GPU(s)");
    }

    #[test]
    fn plans_are_deterministic() {
        let f = facts(&[ExecutionProvider::Cpu, ExecutionProvider::Cuda]);
        let a = build(&spec("[0]"), &machine(1), &f, &Overrides::default()).unwrap();
        let b = build(&spec("[0]"), &machine(1), &f, &Overrides::default()).unwrap();
        assert_eq!(a.canonical_json().ok(), b.canonical_json().ok());
        assert_eq!(a.hash(), b.hash());
    }

    #[test]
    fn a_tight_vram_limit_chooses_tiles_or_says_what_does_not_fit() {
        let mut s = spec("[0]");
        s.manifest.device.vram_limit = Some(ByteSize(1 << 30));
        let p =
            build(&s, &machine(1), &facts(&[ExecutionProvider::Cpu, ExecutionProvider::Cuda]), &Overrides::default())
                .unwrap();
        assert!(p.pipeline.tile > 0 && p.pipeline.tile < 1920, "tiled to fit: {}", p.pipeline.tile);
        s.manifest.device.vram_limit = Some(ByteSize(64 << 20));
        let e =
            build(&s, &machine(1), &facts(&[ExecutionProvider::Cpu, ExecutionProvider::Cuda]), &Overrides::default())
                .unwrap_err();
        let msg = format_problems(&e);
        assert!(msg.starts_with("device.vram_limit: stage \"infer\" needs "), "{msg}");
        assert!(msg.ends_with("vram_limit is 64.0 MiB"), "{msg}");
    }
}
