//! Validation: everything that can be checked without loading a library or touching a device, every problem
//! collected (none stops the listing).

use super::inputs::{check_outputs, expand_inputs};
use super::Problem;
use crate::codec::{Codec, Container, X26X_PRESETS};
use crate::manifest::{EncodeSection, Gpus, JobSpec, MANIFEST_VERSION};

/// An output name template that does not work, and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TemplateError(String);

/// Checks everything that can be checked without loading a library or touching a device. Collects every
/// problem; an empty list means the job is valid.
pub fn validate(spec: &JobSpec) -> Vec<Problem> {
    let mut p = Vec::new();
    let m = &spec.manifest;
    if m.version != MANIFEST_VERSION {
        p.push(Problem::new(
            "version",
            format!("unsupported manifest version {} (expected {})", m.version, MANIFEST_VERSION),
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
    let q = &m.quality;
    if !(0.0..=0.5).contains(&q.flat_below) {
        p.push(Problem::new(
            "quality.flat_below",
            format!("{} is outside 0..=0.5 (a deviation of luma)", q.flat_below),
        ));
    }
    if q.reference_every == 0 {
        p.push(Problem::new("quality.reference_every", "must be at least 1"));
    }
    if let Err(e) = check_template(&m.output.name) {
        p.push(Problem::new("output.name", e.0));
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

pub(super) fn validate_encode(e: &EncodeSection, container: Container, key: &str, p: &mut Vec<Problem>) {
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
fn check_template(t: &str) -> Result<(), TemplateError> {
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        let j = after.find('}').ok_or_else(|| TemplateError(format!("unclosed '{{' in {t:?}")))?;
        let name = &after[..j];
        if !["stem", "ext", "scale", "codec", "index"].contains(&name) {
            return Err(TemplateError(format!(
                "unknown placeholder {{{name}}} in {t:?} (expected {{stem}}, {{ext}}, {{scale}}, {{codec}} or {{index}})"
            )));
        }
        rest = &after[j + 1..];
    }
    if t.contains('/') {
        return Err(TemplateError(format!("{t:?} must be a file name, not a path")));
    }
    Ok(())
}
