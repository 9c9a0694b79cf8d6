//! Validation and planning: a parsed [`JobSpec`] plus the [`MachineProbe`] and the model's facts become an
//! immutable, serialisable [`EnginePlan`].
//!
//! Validation is pure (it reads the file system, never loads libraries or touches a device) and collects every
//! problem before reporting. Planning is deterministic: the same inputs give the same plan, byte for byte.

use crate::backend::{Device, Precision};
use crate::manifest::{BackendChoice, Gpus, JobSpec, PrecisionChoice};
use crate::probe::MachineProbe;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One validation problem, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Dotted key path in the manifest (`model.path`), or empty for the whole job.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { key: key.into(), message: message.into() }
    }
}

/// All problems, one per line, each prefixed with the job file.
pub fn format_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| if p.key.is_empty() { p.message.clone() } else { format!("{}: {}", p.key, p.message) })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Video codec of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// H.264 through libx264.
    H264,
    /// HEVC through libx265.
    Hevc,
    /// AV1 through libsvtav1 (or libaom-av1 when SVT is missing).
    Av1,
    /// Lossless FFV1.
    Ffv1,
}

/// Output container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    /// MPEG-4 Part 14.
    Mp4,
    /// Matroska.
    Mkv,
    /// QuickTime.
    Mov,
    /// The same container as the input file.
    Same,
}

/// What the encoder stage will do. Resolved: encoder names are real FFmpeg encoder names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodePlan {
    /// The output codec.
    pub codec: Codec,
    /// FFmpeg encoder name (`libx264`, `libx265`, `libsvtav1`, `libaom-av1`, `ffv1`).
    pub encoder: String,
    /// Constant rate factor; `None` for lossless codecs.
    pub crf: Option<u32>,
    /// Encoder preset (`medium`, or a number for SVT-AV1); `None` = encoder default.
    pub preset: Option<String>,
    /// Encoder profile; `None` = chosen from the bit depth.
    pub profile: Option<String>,
    /// Output bit depth; `None` = the same as the input (8 or 10).
    pub bit_depth: Option<u8>,
    /// Threads the encoder may use (0 = FFmpeg's choice).
    pub threads: u32,
    /// Copy audio streams unchanged.
    pub copy_audio: bool,
    /// Copy subtitle and attachment streams unchanged.
    pub copy_subtitles: bool,
    /// Encoder instances on consecutive segments of a file (0 = decided per file by [`segments_for`], 1 = one).
    #[serde(default)]
    pub segments: u32,
    /// Frames per segment (0 = decided per file by [`segments_for`]).
    #[serde(default)]
    pub segment_frames: u32,
}

/// Segment-parallel encoding for one file: (encoder instances, frames per segment). Only x264/x265. Automatic for
/// HEVC outputs of 1440p and up (3.5 million pixels) on 8 or more cores: one x265 instance at 4K kept 5.4 of 16
/// cores busy on the lent GPU machine and three instances encoded 38 % more frames per second. Not automatic for
/// H.264: one x264 `medium` instance already kept 11 of 16 cores busy there, and three instances gave no gain
/// (bench/RESULTS.md); `encode.segments = N` still asks for it. Segments last about 2 seconds (24–120 frames): the
/// extra keyframes cost under 1 % of the file size.
pub fn segments_for(
    e: &EncodePlan,
    width: u32,
    height: u32,
    frame_rate: Option<(i32, i32)>,
    cores: usize,
) -> (u32, u32) {
    if !matches!(e.codec, Codec::H264 | Codec::Hevc) {
        return (1, 0);
    }
    let large = u64::from(width) * u64::from(height) >= 3_500_000;
    let instances = match e.segments {
        0 if e.codec == Codec::Hevc && large && cores >= 8 => (cores / 5).clamp(2, 3) as u32,
        0 => 1,
        n => n.min(8),
    };
    if instances < 2 {
        return (1, 0);
    }
    let tuned = std::env::var("VIDEOFORGE_SEGMENT_FRAMES").ok().and_then(|v| v.parse::<u32>().ok());
    let frames = match (tuned.unwrap_or(e.segment_frames), frame_rate) {
        (0, Some((n, d))) if n > 0 && d > 0 => ((2 * n + d / 2) / d).clamp(24, 120) as u32,
        (0, _) => 48,
        (f, _) => f,
    };
    (instances, frames)
}

/// Sizes the pipeline stages use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelinePlan {
    /// Capacity of each bounded channel between stages (frames in flight per queue).
    pub depth: usize,
    /// Frames per inference call.
    pub batch: usize,
    /// Tile edge in input pixels; 0 = whole frame.
    pub tile: u32,
    /// Overlap between neighbouring tiles in input pixels.
    pub tile_overlap: u32,
    /// Threads for pre/post-processing (rayon pool).
    pub cpu_threads: usize,
}

/// Where a file's output goes, decided at plan time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    /// Input file.
    pub input: PathBuf,
    /// Final output path.
    pub output: PathBuf,
    /// Size of the input in bytes (used to balance shards).
    pub size: u64,
}

impl Codec {
    /// Name used in output file names and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Hevc => "hevc",
            Codec::Av1 => "av1",
            Codec::Ffv1 => "ffv1",
        }
    }

    /// Valid CRF range, or `None` when the codec takes no CRF (lossless).
    pub fn crf_range(self) -> Option<(u32, u32)> {
        match self {
            Codec::H264 | Codec::Hevc => Some((0, 51)),
            Codec::Av1 => Some((0, 63)),
            Codec::Ffv1 => None,
        }
    }

    fn default_crf(self) -> Option<u32> {
        match self {
            Codec::H264 => Some(18),
            Codec::Hevc => Some(20),
            Codec::Av1 => Some(30),
            Codec::Ffv1 => None,
        }
    }

    fn default_preset(self) -> Option<&'static str> {
        match self {
            Codec::H264 | Codec::Hevc => Some("medium"),
            Codec::Av1 => Some("8"),
            Codec::Ffv1 => None,
        }
    }

    fn profiles(self) -> &'static [&'static str] {
        match self {
            Codec::H264 => &["baseline", "main", "high", "high10", "high422", "high444"],
            Codec::Hevc => &["main", "main10", "main12", "main422-10", "main444-8", "main444-10"],
            Codec::Av1 => &["main", "high", "professional"],
            Codec::Ffv1 => &[],
        }
    }
}

/// x264/x265 preset names, fastest first.
const X26X_PRESETS: [&str; 10] =
    ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"];

impl Container {
    /// File extension for the container; `None` for [`Container::Same`].
    pub fn extension(self) -> Option<&'static str> {
        match self {
            Container::Mp4 => Some("mp4"),
            Container::Mkv => Some("mkv"),
            Container::Mov => Some("mov"),
            Container::Same => None,
        }
    }
}

/// File extensions taken from a directory input.
pub const VIDEO_EXTENSIONS: [&str; 15] =
    ["mp4", "mkv", "mov", "webm", "avi", "m4v", "ts", "mts", "m2ts", "y4m", "flv", "wmv", "mpg", "mpeg", "nut"];

/// Facts about the model and its backend, read by loading it (see [`crate::backend`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFacts {
    /// Integer upscale factor, read from the model.
    pub scale: u32,
    /// The model's input/output element type.
    pub io_precision: Precision,
    /// Execution providers the backend's runtime library offers (`cpu`, `cuda`, `tensorrt`).
    pub execution_providers: Vec<String>,
    /// Backend plugin name (`onnxruntime`).
    pub backend: String,
    /// Backend plugin file name.
    pub plugin: String,
}

/// The model as it will run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPlan {
    /// The model file.
    pub path: PathBuf,
    /// SHA-256 of the model file.
    pub sha256: String,
    /// Backend plugin name.
    pub backend: String,
    /// Backend plugin file name.
    pub plugin: String,
    /// Execution provider (`cpu`, `cuda`, `tensorrt`).
    pub execution_provider: String,
    /// Precision the model runs in.
    pub precision: Precision,
    /// Upscale factor.
    pub scale: u32,
    /// Runtime library the backend loads, when the job names one.
    pub runtime_library: Option<PathBuf>,
}

/// How frames of one codec and bit depth are decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodeRoute {
    /// Codec name.
    pub codec: String,
    /// Bit depth.
    pub bit_depth: u8,
    /// `nvdec` or `cpu`.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// A bucketed device buffer pool and its share of the VRAM budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolPlan {
    /// What the pool holds (`decoded`, `rgb_in`, `rgb_out`, `encode`).
    pub name: String,
    /// Buffers in the pool.
    pub buffers: u32,
    /// Bytes per buffer at the reference frame size.
    pub bytes_each: u64,
}

/// One worker: a device and the files it processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerPlan {
    /// Worker number.
    pub id: u32,
    /// Where it runs.
    pub device: Device,
    /// Device memory this worker may use (GPU workers only).
    pub vram_budget: Option<u64>,
    /// Its buffer pools (GPU workers only).
    pub pools: Vec<PoolPlan>,
    /// CUDA streams: decode, compute, copy (GPU workers only).
    pub streams: Vec<String>,
}

/// Device surface layout shared by the GPU stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurfacePlan {
    /// Row pitch alignment in bytes.
    pub pitch_alignment: u32,
    /// Reference frame size the pools are sized for (width, height).
    pub reference_size: (u32, u32),
}

/// What will run: the immutable result of planning. `videoforge plan job.toml` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnginePlan {
    /// Format version of this structure.
    pub plan_version: u32,
    /// The job file.
    pub job: PathBuf,
    /// The model.
    pub model: ModelPlan,
    /// Workers, one per device slot.
    pub workers: Vec<WorkerPlan>,
    /// Files processed at once per worker.
    pub files_at_once: u32,
    /// Decode routes by codec and bit depth.
    pub decode: Vec<DecodeRoute>,
    /// `nvenc` or `cpu`, and why.
    pub encoder_path: String,
    /// Why that encoder path.
    pub encoder_reason: String,
    /// Encoder settings.
    pub encode: EncodePlan,
    /// Per-input encoder overrides (by work item index).
    pub encode_overrides: BTreeMap<usize, EncodePlan>,
    /// Output container.
    pub container: Container,
    /// Stage sizes.
    pub pipeline: PipelinePlan,
    /// Surface layout (GPU plans).
    pub surface: Option<SurfacePlan>,
    /// The files, sorted, with their outputs.
    pub work: Vec<WorkItem>,
    /// Choices the planner made and why, one line each.
    pub reasons: Vec<String>,
}

impl EnginePlan {
    /// The canonical JSON the plan hash is taken over.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// SHA-256 of the canonical JSON.
    pub fn hash(&self) -> String {
        hex(&Sha256::digest(self.canonical_json().as_bytes()))
    }

    /// Encoder settings for one work item.
    pub fn encode_for(&self, index: usize) -> &EncodePlan {
        self.encode_overrides.get(&index).unwrap_or(&self.encode)
    }

    /// Whether any worker runs on a GPU.
    pub fn uses_gpu(&self) -> bool {
        self.workers.iter().any(|w| matches!(w.device, Device::Cuda(_)))
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Checks everything that can be checked without loading a library or touching a device. Collects every
/// problem; an empty list means the job is valid.
pub fn validate(spec: &JobSpec) -> Vec<Problem> {
    let mut p = Vec::new();
    let m = &spec.manifest;
    if m.version != crate::manifest::MANIFEST_VERSION {
        p.push(Problem::new(
            "version",
            format!("unsupported manifest version {} (expected {})", m.version, crate::manifest::MANIFEST_VERSION),
        ));
    }
    let model = spec.resolve(&m.model.path);
    if !model.is_file() {
        p.push(Problem::new("model.path", format!("model file {} not found", model.display())));
    } else if model.extension().and_then(|e| e.to_str()) != Some("onnx") {
        p.push(Problem::new("model.path", format!("{} is not an .onnx file", model.display())));
    }
    if let Some(rt) = &m.model.runtime {
        let rt = spec.resolve(rt);
        if !rt.is_file() {
            p.push(Problem::new("model.runtime", format!("runtime library {} not found", rt.display())));
        }
    }
    if let Gpus::List(l) = &m.device.gpus {
        if l.is_empty() {
            p.push(Problem::new("device.gpus", "the GPU list is empty (use \"cpu\" for the CPU)"));
        }
    }
    if m.device.files_at_once == Some(0) {
        p.push(Problem::new("device.files_at_once", "must be at least 1"));
    }
    if m.input.is_empty() {
        p.push(Problem::new("input", "no [[input]] given"));
    }
    validate_encode(&m.encode, m.output.container, "encode", &mut p);
    for (i, input) in m.input.iter().enumerate() {
        if let Some(o) = &input.encode {
            let mut e = m.encode.clone();
            e.crf = o.crf.or(e.crf);
            e.preset = o.preset.clone().or(e.preset);
            let mut sub = Vec::new();
            validate_encode(&e, m.output.container, &format!("input[{i}].encode"), &mut sub);
            p.extend(sub.into_iter().filter(|x| x.key.starts_with("input[")));
        }
    }
    let pl = &m.pipeline;
    if pl.depth == Some(0) {
        p.push(Problem::new("pipeline.depth", "must be at least 1"));
    }
    if let Some(d) = pl.depth.filter(|d| *d > 64) {
        p.push(Problem::new("pipeline.depth", format!("{d} frames in flight per queue is too many (at most 64)")));
    }
    if pl.batch == Some(0) {
        p.push(Problem::new("pipeline.batch", "must be at least 1"));
    }
    if let Some(t) = pl.tile.filter(|t| *t != 0 && *t < 32) {
        p.push(Problem::new("pipeline.tile", format!("tile {t} is too small (0 for whole frames, or at least 32)")));
    }
    if let (Some(t), Some(o)) = (pl.tile, pl.tile_overlap) {
        if t != 0 && o * 2 >= t {
            p.push(Problem::new("pipeline.tile_overlap", format!("overlap {o} must be less than half the tile ({t})")));
        }
    }
    if let Err(e) = check_template(&m.output.name) {
        p.push(Problem::new("output.name", e));
    }
    let out_dir = spec.resolve(&m.output.dir);
    if out_dir.exists() && !out_dir.is_dir() {
        p.push(Problem::new("output.dir", format!("{} exists and is not a directory", out_dir.display())));
    }
    let (work, mut wp) = expand_inputs(spec, 0);
    p.append(&mut wp);
    if p.iter().all(|x| !x.key.starts_with("output.name")) {
        p.extend(check_outputs(&work));
    }
    p
}

fn validate_encode(e: &crate::manifest::EncodeSection, container: Container, key: &str, p: &mut Vec<Problem>) {
    match (e.codec.crf_range(), e.crf) {
        (None, Some(_)) => {
            p.push(Problem::new(format!("{key}.crf"), format!("{} is lossless and takes no crf", e.codec.as_str())))
        }
        (Some((lo, hi)), Some(c)) if c < lo || c > hi => p.push(Problem::new(
            format!("{key}.crf"),
            format!("crf {c} is out of range for {} (expected {lo}..={hi})", e.codec.as_str()),
        )),
        _ => {}
    }
    if let Some(preset) = &e.preset {
        let ok = match e.codec {
            Codec::H264 | Codec::Hevc => X26X_PRESETS.contains(&preset.as_str()),
            Codec::Av1 => preset.parse::<u32>().is_ok_and(|n| n <= 13),
            Codec::Ffv1 => false,
        };
        if !ok {
            let expected = match e.codec {
                Codec::H264 | Codec::Hevc => format!("one of {}", X26X_PRESETS.join(", ")),
                Codec::Av1 => "a number 0..=13".into(),
                Codec::Ffv1 => "none: ffv1 has no presets".into(),
            };
            p.push(Problem::new(
                format!("{key}.preset"),
                format!("unknown preset {preset:?} for {} (expected {expected})", e.codec.as_str()),
            ));
        }
    }
    if let Some(d) = e.bit_depth {
        if d != 8 && d != 10 {
            p.push(Problem::new(format!("{key}.bit_depth"), format!("bit depth {d} is not supported (8 or 10)")));
        }
    }
    if let Some(profile) = &e.profile {
        let list = e.codec.profiles();
        if !list.contains(&profile.as_str()) {
            p.push(Problem::new(
                format!("{key}.profile"),
                format!("unknown profile {profile:?} for {} (expected one of {})", e.codec.as_str(), list.join(", ")),
            ));
        } else if e.bit_depth == Some(10)
            && matches!(profile.as_str(), "baseline" | "main" | "high")
            && e.codec == Codec::H264
        {
            p.push(Problem::new(
                format!("{key}.profile"),
                format!("profile {profile:?} cannot carry 10-bit video (use high10)"),
            ));
        } else if e.bit_depth == Some(10) && profile == "main" && e.codec == Codec::Hevc {
            p.push(Problem::new(format!("{key}.profile"), "profile \"main\" cannot carry 10-bit video (use main10)"));
        }
    }
    if e.codec == Codec::Ffv1 && container == Container::Mp4 {
        p.push(Problem::new(
            format!("{key}.codec"),
            "ffv1 cannot be stored in mp4 (use container = \"mkv\" or \"mov\")",
        ));
    }
}

/// Checks the output name template's placeholders.
fn check_template(t: &str) -> Result<(), String> {
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        let j = after.find('}').ok_or_else(|| format!("unclosed '{{' in {t:?}"))?;
        let name = &after[..j];
        if !["stem", "ext", "scale", "codec", "index"].contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}} in {t:?} (expected {{stem}}, {{ext}}, {{scale}}, {{codec}} or {{index}})"
            ));
        }
        rest = &after[j + 1..];
    }
    if t.contains('/') {
        return Err(format!("{t:?} must be a file name, not a path"));
    }
    Ok(())
}

/// Fills in the output name template.
fn output_name(template: &str, input: &Path, ext: &str, scale: u32, codec: Codec, index: usize) -> String {
    let stem = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    template
        .replace("{stem}", &stem)
        .replace("{ext}", ext)
        .replace("{scale}", &scale.to_string())
        .replace("{codec}", codec.as_str())
        .replace("{index}", &format!("{index:04}"))
}

/// Expands the `[[input]]` entries into a sorted, de-duplicated work list with output paths.
/// `scale` is used in output names (0 when not yet known).
fn expand_inputs(spec: &JobSpec, scale: u32) -> (Vec<(usize, WorkItem)>, Vec<Problem>) {
    let m = &spec.manifest;
    let mut problems = Vec::new();
    let mut found: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for (i, input) in m.input.iter().enumerate() {
        let key = format!("input[{i}].path");
        let p = spec.resolve(&input.path);
        let mut files = Vec::new();
        if p.is_file() {
            files.push(p.clone());
        } else if p.is_dir() {
            collect_dir(&p, input.recursive, &mut files);
        } else if input.path.contains(['*', '?', '[']) {
            match glob::glob(&p.to_string_lossy()) {
                Ok(paths) => files.extend(paths.filter_map(Result::ok).filter(|f| f.is_file())),
                Err(e) => problems.push(Problem::new(&key, format!("bad glob pattern {:?}: {e}", input.path))),
            }
        } else {
            problems.push(Problem::new(&key, format!("{} does not exist", p.display())));
            continue;
        }
        if files.is_empty() {
            problems.push(Problem::new(&key, format!("{:?} matched no video file", input.path)));
        }
        for f in files {
            found.entry(f).or_insert(i);
        }
    }
    let out_dir = spec.resolve(&m.output.dir);
    let work = found
        .into_iter()
        .enumerate()
        .map(|(index, (input, from))| {
            let ext = m.output.container.extension().map(str::to_string).unwrap_or_else(|| {
                input.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_else(|| "mkv".into())
            });
            let name = output_name(&m.output.name, &input, &ext, scale, m.encode.codec, index);
            let size = std::fs::metadata(&input).map(|md| md.len()).unwrap_or(0);
            (from, WorkItem { output: out_dir.join(name), input, size })
        })
        .collect();
    (work, problems)
}

fn collect_dir(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            if recursive {
                collect_dir(&e, recursive, out);
            }
        } else if e
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| VIDEO_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
        {
            out.push(e);
        }
    }
}

/// Two inputs writing one output, or an output overwriting an input.
fn check_outputs(work: &[(usize, WorkItem)]) -> Vec<Problem> {
    let mut p = Vec::new();
    let mut seen: BTreeMap<&Path, &Path> = BTreeMap::new();
    let inputs: std::collections::BTreeSet<&Path> = work.iter().map(|(_, w)| w.input.as_path()).collect();
    for (_, w) in work {
        if let Some(other) = seen.insert(&w.output, &w.input) {
            p.push(Problem::new(
                "output.name",
                format!(
                    "{} and {} would both be written to {}",
                    other.display(),
                    w.input.display(),
                    w.output.display()
                ),
            ));
        }
        if inputs.contains(w.output.as_path()) {
            p.push(Problem::new("output.name", format!("output {} would overwrite an input", w.output.display())));
        }
    }
    p
}

/// Reference frame size the device pools are sized for when no tile is set.
const REFERENCE_FRAME: (u32, u32) = (1920, 1080);
/// Feature channels assumed for activation memory (SRVGGNet/RRDBNet use 64).
const ACTIVATION_CHANNELS: u64 = 64;

/// Device memory one frame needs in the inference stage: input and output RGB tensors plus two activation
/// buffers of [`ACTIVATION_CHANNELS`] channels (ping-pong between layers).
pub fn infer_bytes(w: u32, h: u32, scale: u32, precision: Precision) -> u64 {
    let e = if precision == Precision::F16 { 2 } else { 4 };
    let px = u64::from(w) * u64::from(h);
    let out_px = px * u64::from(scale) * u64::from(scale);
    e * (3 * px + 3 * out_px + 2 * ACTIVATION_CHANNELS * px)
}

/// Turns a valid job into the plan that will run. `facts` come from loading the model through its backend.
pub fn build(spec: &JobSpec, probe: &MachineProbe, facts: &ModelFacts) -> Result<EnginePlan, Vec<Problem>> {
    let mut problems = validate(spec);
    let m = &spec.manifest;
    let mut reasons = Vec::new();

    // Devices and workers.
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
        Gpus::Auto if !facts.execution_providers.iter().any(|e| e == "cuda" || e == "tensorrt") => {
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
            if !list.is_empty() && !facts.execution_providers.iter().any(|e| e == "cuda" || e == "tensorrt") {
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
    let execution_provider = match (gpu, m.model.backend) {
        (false, BackendChoice::Tensorrt) => {
            problems.push(Problem::new("model.backend", "tensorrt needs a GPU, and this plan runs on the CPU"));
            "cpu".to_string()
        }
        (false, _) => "cpu".into(),
        (true, BackendChoice::Tensorrt) => {
            if !facts.execution_providers.iter().any(|e| e == "tensorrt") {
                problems.push(Problem::new(
                    "model.backend",
                    format!(
                        "tensorrt was asked for but the {} runtime has no TensorRT execution provider",
                        facts.backend
                    ),
                ));
            }
            "tensorrt".into()
        }
        (true, _) => "cuda".into(),
    };
    let precision = match (m.model.precision, facts.io_precision) {
        (PrecisionChoice::Auto, p) => p,
        (PrecisionChoice::F32, Precision::F32) => Precision::F32,
        (PrecisionChoice::F16, Precision::F16) => Precision::F16,
        (PrecisionChoice::F16, _) if execution_provider == "tensorrt" => {
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
    let mut surface = None;
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
                    crate::manifest::ByteSize(need(rw, rh)),
                    crate::manifest::ByteSize(limit)
                ));
            }
            let (tw, th) = if tile > 0 { (tile, tile) } else { (rw, rh) };
            if need(tw, th) > limit {
                problems.push(Problem::new(
                    "device.vram_limit",
                    format!(
                        "stage \"infer\" needs {} for a {tw}x{th} tile; vram_limit is {}",
                        crate::manifest::ByteSize(need(tw, th)),
                        crate::manifest::ByteSize(limit)
                    ),
                ));
            }
        }
        let (sw, sh) = if tile > 0 { (tile, tile) } else { REFERENCE_FRAME };
        surface = Some(SurfacePlan { pitch_alignment: 256, reference_size: REFERENCE_FRAME });
        let e = if precision == Precision::F16 { 2 } else { 4 };
        let (fw, fh) = (u64::from(REFERENCE_FRAME.0), u64::from(REFERENCE_FRAME.1));
        let s = u64::from(facts.scale);
        let pools = vec![
            PoolPlan { name: "decoded".into(), buffers: depth as u32, bytes_each: fw * fh * 3 / 2 * 2 },
            PoolPlan { name: "rgb_in".into(), buffers: depth as u32, bytes_each: 3 * fw * fh * e },
            PoolPlan { name: "infer".into(), buffers: 1, bytes_each: infer_bytes(sw, sh, facts.scale, precision) },
            PoolPlan { name: "rgb_out".into(), buffers: depth as u32, bytes_each: 3 * fw * fh * s * s * e },
            PoolPlan { name: "encode".into(), buffers: depth as u32, bytes_each: fw * fh * s * s * 3 / 2 * 2 },
        ];
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
            workers.push(WorkerPlan {
                id: id as u32,
                device: *d,
                vram_budget: budget,
                pools: pools.clone(),
                streams: vec!["decode".into(), "compute".into(), "copy".into()],
            });
        }
    } else {
        if vram_limit.is_some() {
            reasons.push("vram_limit: ignored, the plan runs on the CPU".into());
        }
        workers.push(WorkerPlan {
            id: 0,
            device: Device::Cpu,
            vram_budget: None,
            pools: Vec::new(),
            streams: Vec::new(),
        });
    }
    let pipeline = PipelinePlan {
        depth,
        batch: pl.batch.unwrap_or(1) as usize,
        tile,
        tile_overlap: pl.tile_overlap.unwrap_or(if tile > 0 { 16 } else { 0 }),
        cpu_threads: probe.cpu_cores.max(1),
    };
    // On a GPU the CPU encoder is the slowest stage (no NVENC on H100/H200): two files per GPU keep the GPU fed
    // while one file's encoder drains, and use two NVDEC engines where decode runs there.
    let files_at_once = m.device.files_at_once.unwrap_or(if gpu { 2 } else { 1 });
    if m.device.files_at_once.is_none() && gpu {
        reasons.push("files at once: 2 per GPU worker, so the GPU stays busy while a CPU encoder drains".into());
    }

    // Decode routes.
    let mut decode = Vec::new();
    for (codec, depths) in [("h264", [8u8, 10]), ("hevc", [8, 10]), ("vp9", [8, 10]), ("av1", [8, 10])] {
        for bd in depths {
            let cap = probe.gpus.first().and_then(|g| g.nvdec.iter().find(|c| c.codec == codec && c.bit_depth == bd));
            let (path, reason) = match (gpu, cap) {
                (false, _) => ("cpu", "CPU plan".to_string()),
                (true, Some(c)) if c.supported && codec != "av1" => (
                    "nvdec",
                    format!(
                        "NVDEC ({} engines, up to {}x{}): frames stay on the GPU; a file NVDEC cannot take (odd or \
                         out-of-range size, not 4:2:0) is decoded on the CPU and uploaded, with the reason in its report",
                        c.engines, c.max_width, c.max_height
                    ),
                ),
                (true, Some(c)) if c.supported => (
                    "cpu",
                    format!("NVDEC supports it ({} engines), but this build demuxes AV1 for the CPU decoder", c.engines),
                ),
                (true, Some(_)) => ("cpu", "NVDEC does not support it on this GPU".to_string()),
                (true, None) => ("cpu", "NVDEC not available".to_string()),
            };
            decode.push(DecodeRoute { codec: codec.into(), bit_depth: bd, path: path.into(), reason });
        }
    }

    // Encoder.
    let nvenc = probe.gpus.iter().any(|g| g.nvenc.available);
    let (encoder_path, encoder_reason) = if !gpu {
        ("cpu".to_string(), "CPU plan: libavcodec encoder".to_string())
    } else if nvenc {
        ("cpu".into(), "NVENC opens a session here, but this build encodes on the CPU with libavcodec".into())
    } else {
        let why = probe.gpus.first().map(|g| g.nvenc.detail.clone()).unwrap_or_default();
        ("cpu".into(), format!("no NVENC ({why}): frames go to the CPU encoder in encoder format"))
    };

    let encode = encode_plan(&m.encode, m.encode.crf, m.encode.preset.clone());
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
                encode_plan(&m.encode, o.crf.or(m.encode.crf), o.preset.clone().or(m.encode.preset.clone())),
            );
        }
    }
    problems.dedup();
    if !problems.is_empty() {
        return Err(problems);
    }
    let model_path = spec.resolve(&m.model.path);
    let sha256 = sha256_file(&model_path)
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
        },
        workers,
        files_at_once,
        decode,
        encoder_path,
        encoder_reason,
        encode,
        encode_overrides,
        container: m.output.container,
        pipeline,
        surface,
        work: items.into_iter().map(|(_, w)| w).collect(),
        reasons,
    })
}

/// Weights plus runtime workspace: the model file's size times 4, and 256 MiB for the runtime itself.
fn model_overhead(spec: &JobSpec) -> u64 {
    let size = std::fs::metadata(spec.resolve(&spec.manifest.model.path)).map(|m| m.len()).unwrap_or(0);
    size * 4 + (256 << 20)
}

fn encode_plan(e: &crate::manifest::EncodeSection, crf: Option<u32>, preset: Option<String>) -> EncodePlan {
    let encoder = match e.codec {
        Codec::H264 => "libx264",
        Codec::Hevc => "libx265",
        Codec::Av1 => "libsvtav1",
        Codec::Ffv1 => "ffv1",
    };
    EncodePlan {
        codec: e.codec,
        encoder: encoder.into(),
        crf: crf.or(e.codec.default_crf()),
        preset: preset.or(e.codec.default_preset().map(str::to_string)),
        profile: e.profile.clone(),
        bit_depth: e.bit_depth,
        threads: e.threads,
        copy_audio: e.copy_audio,
        copy_subtitles: e.copy_subtitles,
        segments: e.segments.unwrap_or(0),
        segment_frames: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{GpuInfo, NvencStatus};

    fn spec(gpus: &str) -> JobSpec {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = format!(
            "version = 1\n[model]\npath = \"models/realesr-animevideov3-x2.onnx\"\n[device]\ngpus = {gpus}\n\
             [[input]]\npath = \"jobs/media/sample.mp4\"\n[output]\ndir = \"out/test\"\n"
        );
        JobSpec {
            source: "test.toml".into(),
            base_dir: root.to_path_buf(),
            manifest: crate::manifest::parse(&text, Path::new("test.toml")).unwrap(),
        }
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

    fn facts(eps: &[&str]) -> ModelFacts {
        ModelFacts {
            scale: 2,
            io_precision: Precision::F32,
            execution_providers: eps.iter().map(|s| s.to_string()).collect(),
            backend: "onnxruntime".into(),
            plugin: "libvideoforge_backend_onnxruntime.so".into(),
        }
    }

    fn devices(p: &EnginePlan) -> Vec<Device> {
        p.workers.iter().map(|w| w.device).collect()
    }

    #[test]
    fn segment_parallel_encoding_is_for_large_hevc_outputs_on_many_cores() {
        let x264 = encode_plan(&Default::default(), None, None);
        let x265 =
            encode_plan(&crate::manifest::EncodeSection { codec: Codec::Hevc, ..Default::default() }, None, None);
        let fps = Some((24000, 1001));
        assert_eq!(segments_for(&x265, 3840, 2160, fps, 16), (3, 48), "4K on 16 cores: 3 instances, 2 s segments");
        assert_eq!(segments_for(&x265, 3840, 2160, fps, 8), (2, 48));
        assert_eq!(segments_for(&x265, 1920, 1080, fps, 16).0, 1, "1080p: one instance keeps up");
        assert_eq!(segments_for(&x265, 3840, 2160, fps, 4).0, 1, "few cores: one instance");
        assert_eq!(segments_for(&x265, 3840, 2160, Some((120, 1)), 16), (3, 120), "segments at most 120 frames");
        assert_eq!(segments_for(&x265, 3840, 2160, None, 16), (3, 48), "unknown rate: 48 frames");
        assert_eq!(segments_for(&x264, 3840, 2160, fps, 16).0, 1, "x264 uses the cores alone: not automatic");
        let forced = EncodePlan { segments: 2, ..x264.clone() };
        assert_eq!(segments_for(&forced, 640, 360, Some((25, 1)), 2), (2, 50), "asked for: always");
        let off = EncodePlan { segments: 1, ..x264.clone() };
        assert_eq!(segments_for(&off, 3840, 2160, fps, 16).0, 1);
        let ffv1 = EncodePlan { codec: Codec::Ffv1, encoder: "ffv1".into(), segments: 3, ..x264 };
        assert_eq!(segments_for(&ffv1, 3840, 2160, fps, 16).0, 1, "only x264/x265");
    }

    #[test]
    fn workers_follow_the_gpu_list() {
        let f = facts(&["cpu", "cuda"]);
        let p = build(&spec("[0, 1]"), &machine(2), &f).unwrap();
        assert_eq!(devices(&p), vec![Device::Cuda(0), Device::Cuda(1)]);
        let p = build(&spec("[0, 0]"), &machine(1), &f).unwrap();
        assert_eq!(devices(&p), vec![Device::Cuda(0), Device::Cuda(0)], "two workers may share one GPU");
        let p = build(&spec("\"auto\""), &machine(4), &f).unwrap();
        assert_eq!(devices(&p).len(), 4);
        assert!(p.workers.iter().all(|w| w.vram_budget == Some((80u64 << 30) * 9 / 10)));
        assert_eq!(p.model.execution_provider, "cuda");
    }

    #[test]
    fn auto_falls_back_to_cpu_and_says_why() {
        let p = build(&spec("\"auto\""), &machine(0), &facts(&["cpu"])).unwrap();
        assert_eq!(devices(&p), vec![Device::Cpu]);
        let p = build(&spec("\"auto\""), &machine(2), &facts(&["cpu"])).unwrap();
        assert_eq!(devices(&p), vec![Device::Cpu]);
        assert!(p.reasons.iter().any(|r| r.contains("no CUDA or TensorRT execution provider")), "{:?}", p.reasons);
    }

    #[test]
    fn a_missing_gpu_is_a_problem_naming_it() {
        let e = build(&spec("[0, 3]"), &machine(2), &facts(&["cpu", "cuda"])).unwrap_err();
        assert_eq!(format_problems(&e), "device.gpus: GPU 3 is not available: this machine has 2 GPU(s)");
    }

    #[test]
    fn plans_are_deterministic() {
        let f = facts(&["cpu", "cuda"]);
        let a = build(&spec("[0]"), &machine(1), &f).unwrap();
        let b = build(&spec("[0]"), &machine(1), &f).unwrap();
        assert_eq!(a.canonical_json(), b.canonical_json());
        assert_eq!(a.hash(), b.hash());
    }

    #[test]
    fn a_tight_vram_limit_chooses_tiles_or_says_what_does_not_fit() {
        let mut s = spec("[0]");
        s.manifest.device.vram_limit = Some(crate::manifest::ByteSize(1 << 30));
        let p = build(&s, &machine(1), &facts(&["cpu", "cuda"])).unwrap();
        assert!(p.pipeline.tile > 0 && p.pipeline.tile < 1920, "tiled to fit: {}", p.pipeline.tile);
        s.manifest.device.vram_limit = Some(crate::manifest::ByteSize(64 << 20));
        let e = build(&s, &machine(1), &facts(&["cpu", "cuda"])).unwrap_err();
        let msg = format_problems(&e);
        assert!(msg.starts_with("device.vram_limit: stage \"infer\" needs "), "{msg}");
        assert!(msg.ends_with("vram_limit is 64.0 MiB"), "{msg}");
    }
}
