//! The job manifest: TOML → raw, typed sections, and errors that name the file, the line and the dotted key.
//!
//! This layer only reads the file and parses it. It does not check that paths exist or that values fit together:
//! that is validation's job in [`crate::plan`], which reports every problem at once.

use crate::plan::{Codec, Container};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

/// The manifest format version this build reads.
pub const MANIFEST_VERSION: u32 = 1;

/// A videoforge job: what to upscale, with which model, where the results go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "videoforge job manifest")]
pub struct Manifest {
    /// Manifest format version; must be 1.
    pub version: u32,
    /// The super-resolution model.
    pub model: ModelSection,
    /// Which devices to run on and how much of them to use.
    #[serde(default)]
    pub device: DeviceSection,
    /// The inputs: files, directories or glob patterns. At least one.
    pub input: Vec<InputSection>,
    /// Where outputs go and how they are named.
    pub output: OutputSection,
    /// Video encoder settings for every output (inputs may override some).
    #[serde(default)]
    pub encode: EncodeSection,
    /// Pipeline tuning; the plan chooses what is left out.
    #[serde(default)]
    pub pipeline: PipelineSection,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Path to the ONNX model; relative paths resolve against the manifest's folder.
    pub path: String,
    /// Inference backend plugin.
    #[serde(default)]
    pub backend: BackendChoice,
    /// Numeric precision to run the model in.
    #[serde(default)]
    pub precision: PrecisionChoice,
    /// Path to the backend's runtime library (e.g. libonnxruntime.so); default: searched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

/// Which inference backend to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// ONNX Runtime (CPU, CUDA and TensorRT execution providers).
    Onnxruntime,
    /// TensorRT (through ONNX Runtime's TensorRT execution provider).
    Tensorrt,
    /// The best available for the device.
    #[default]
    Auto,
}

/// Model precision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    /// Half precision.
    F16,
    /// Single precision.
    F32,
    /// The model's own precision.
    #[default]
    Auto,
}

/// `[device]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceSection {
    /// `"auto"` (every GPU, else CPU), `"cpu"`, or a list of GPU indices (`[0, 1]`; repeat an index for two
    /// workers on one GPU).
    #[serde(default)]
    pub gpus: Gpus,
    /// Upper bound on the device memory videoforge may use per GPU, e.g. `"8GiB"` or a number of bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vram_limit: Option<ByteSize>,
    /// Files processed at once per worker (several NVDEC engines can decode at once). Default: the plan decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_at_once: Option<u32>,
}

/// GPU selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Gpus {
    /// Every GPU found, else the CPU.
    #[default]
    Auto,
    /// The CPU only.
    Cpu,
    /// These GPU indices, one worker each.
    List(Vec<u32>),
}

impl Serialize for Gpus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Gpus::Auto => s.serialize_str("auto"),
            Gpus::Cpu => s.serialize_str("cpu"),
            Gpus::List(l) => l.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Gpus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Gpus;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#""auto", "cpu" or a list of GPU indices like [0, 1]"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Gpus, E> {
                match v {
                    "auto" => Ok(Gpus::Auto),
                    "cpu" => Ok(Gpus::Cpu),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Gpus, A::Error> {
                let mut out = Vec::new();
                while let Some(i) = seq.next_element::<u32>()? {
                    out.push(i);
                }
                Ok(Gpus::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Gpus {
    fn schema_name() -> Cow<'static, str> {
        "Gpus".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "\"auto\", \"cpu\" or a list of GPU indices",
            "oneOf": [
                { "type": "string", "enum": ["auto", "cpu"] },
                { "type": "array", "items": { "type": "integer", "minimum": 0 }, "minItems": 1 }
            ]
        })
    }
}

/// A size in bytes, written as a number or as a string with a unit (`"512MiB"`, `"8GiB"`, `"8GB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `"8GiB"`, `"512 MiB"`, `"2G"`, `"1000000"`.
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let t = s.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 =
            num.parse().map_err(|_| format!("invalid size {s:?}: expected a number with a unit like \"8GiB\""))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            u => {
                return Err(format!(
                    "invalid size {s:?}: unknown unit {u:?} (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
                ))
            }
        };
        Ok(ByteSize((n * mult as f64).round() as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let b = self.0 as f64;
        if self.0 >= 1 << 30 {
            write!(f, "{:.1} GiB", b / (1u64 << 30) as f64)
        } else if self.0 >= 1 << 20 {
            write!(f, "{:.1} MiB", b / (1u64 << 20) as f64)
        } else {
            write!(f, "{} B", self.0)
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a size like "8GiB" or a number of bytes"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "bytes, or a string with a unit: \"512MiB\", \"8GiB\", \"8GB\"",
            "oneOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*([KkMmGgTt]i?[Bb]?|[Bb])?\\s*$" }
            ]
        })
    }
}

/// One `[[input]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSection {
    /// A file, a directory or a glob pattern (`clips/*.mp4`); relative to the manifest's folder.
    pub path: String,
    /// Descend into subdirectories when `path` is a directory.
    #[serde(default)]
    pub recursive: bool,
    /// Encoder settings for the files of this input only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encode: Option<EncodeOverride>,
}

/// Per-input encoder overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EncodeOverride {
    /// Constant rate factor for these files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crf: Option<u32>,
    /// Encoder preset for these files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
}

/// `[output]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// Output folder; relative to the manifest's folder; created when missing.
    pub dir: String,
    /// File name template: `{stem}` (input name without extension), `{ext}` (the output container's extension),
    /// `{scale}` (the model's scale), `{codec}`, `{index}` (position in the sorted work list).
    #[serde(default = "default_name")]
    pub name: String,
    /// Output container.
    #[serde(default = "default_container")]
    pub container: Container,
}

fn default_name() -> String {
    "{stem}.x{scale}.{ext}".into()
}

fn default_container() -> Container {
    Container::Mp4
}

/// `[encode]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EncodeSection {
    /// Output video codec.
    #[serde(default = "default_codec")]
    pub codec: Codec,
    /// Constant rate factor (0–51 for h264/hevc, 0–63 for av1; not for ffv1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crf: Option<u32>,
    /// Encoder preset (x264/x265 names like `medium`; 0–13 for av1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Encoder profile (e.g. `high`, `main10`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Output bit depth, 8 or 10; default: the input's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bit_depth: Option<u8>,
    /// Copy audio streams unchanged.
    #[serde(default = "yes")]
    pub copy_audio: bool,
    /// Copy subtitle and attachment streams unchanged.
    #[serde(default = "yes")]
    pub copy_subtitles: bool,
    /// Encoder threads; 0 lets the encoder decide.
    #[serde(default)]
    pub threads: u32,
    /// x264/x265 instances encoding consecutive segments of each file at once (each segment starts with a
    /// keyframe; the segments are joined into one stream). Default: automatic, 2–3 for HEVC outputs of 1440p and
    /// up on machines with 8 or more cores (one x265 instance cannot use them), otherwise 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 8))]
    pub segments: Option<u32>,
}

fn default_codec() -> Codec {
    Codec::H264
}

fn yes() -> bool {
    true
}

impl Default for EncodeSection {
    fn default() -> Self {
        EncodeSection {
            codec: default_codec(),
            crf: None,
            preset: None,
            profile: None,
            bit_depth: None,
            copy_audio: true,
            copy_subtitles: true,
            threads: 0,
            segments: None,
        }
    }
}

/// `[pipeline]`: all optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Frames in flight between two stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// Frames per inference call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// Tile edge in input pixels; 0 = the whole frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile: Option<u32>,
    /// Overlap between tiles in input pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile_overlap: Option<u32>,
}

/// A parsed manifest and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// The manifest file (or `<command line>` for the single-file form).
    pub source: PathBuf,
    /// The folder relative paths resolve against.
    pub base_dir: PathBuf,
    /// The parsed content.
    pub manifest: Manifest,
}

impl JobSpec {
    /// Resolves a path written in the manifest against its folder.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() {
            normalize(path)
        } else {
            normalize(&self.base_dir.join(path))
        }
    }
}

/// Removes `.` and folds `dir/..` lexically, so messages and plans show `models/x.onnx`, not
/// `jobs/../models/x.onnx`. A leading `..` stays.
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

/// The job file could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Reading the file failed.
    #[error("{path}: cannot read job file: {source}")]
    Read {
        /// The job file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML is malformed or a value has the wrong type or name.
    #[error("{}", self.display())]
    Parse {
        /// The job file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// Dotted key path (`model.precision`, `input[1].path`), empty when the error is syntactic.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl ManifestError {
    fn display(&self) -> String {
        match self {
            ManifestError::Read { .. } => self.to_string(),
            ManifestError::Parse { path, line, column, key, message } => {
                let mut s = path.display().to_string();
                if let Some(l) = line {
                    s.push_str(&format!(":{l}"));
                    if let Some(c) = column {
                        s.push_str(&format!(":{c}"));
                    }
                }
                s.push_str(": ");
                if !key.is_empty() {
                    s.push_str(key);
                    s.push_str(": ");
                }
                s.push_str(message);
                s
            }
        }
    }
}

/// Reads and parses a job file.
pub fn load(path: &Path) -> Result<JobSpec, ManifestError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.to_path_buf(), source })?;
    let manifest = parse(&text, path)?;
    let base_dir = path
        .parent()
        .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok(JobSpec { source: path.to_path_buf(), base_dir, manifest })
}

/// Parses manifest text; `path` is only used in error messages.
pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize::<_, Manifest>(de).map_err(|err| {
        let key = dotted(err.path());
        let inner = err.into_inner();
        let (line, column) =
            inner.span().map(|s| line_col(text, s.start)).map(|(l, c)| (Some(l), Some(c))).unwrap_or((None, None));
        ManifestError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            key,
            message: inner.message().trim().to_string(),
        }
    })
}

/// `input[1].path` rather than serde_path_to_error's `input[1].path` with `?` for unknown segments.
fn dotted(p: &serde_path_to_error::Path) -> String {
    let s = p.to_string();
    if s == "." {
        String::new()
    } else {
        s
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

/// The JSON Schema of the manifest, as checked in at `schemas/job.schema.json`.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Manifest);
    serde_json::to_value(&schema).unwrap_or(serde_json::Value::Null)
}

/// The schema as the pretty JSON text that is checked in.
pub fn json_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(ByteSize::parse("8GiB"), Ok(ByteSize(8 << 30)));
        assert_eq!(ByteSize::parse("512 MiB"), Ok(ByteSize(512 << 20)));
        assert_eq!(ByteSize::parse("2GB"), Ok(ByteSize(2_000_000_000)));
        assert_eq!(ByteSize::parse("1.5GiB"), Ok(ByteSize(3 << 29)));
        assert!(ByteSize::parse("8 parsecs").is_err());
        assert!(ByteSize::parse("lots").is_err());
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("a\nbc\nd", 3), (2, 2));
        assert_eq!(line_col("abc", 0), (1, 1));
    }
}
