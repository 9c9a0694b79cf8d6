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
    if m.farm.shards == Some(0) {
        p.push(Problem::new("farm.shards", "must be at least 1"));
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
    let codec = e.codec.as_str();
    match (e.codec.crf_range(), e.crf) {
        (None, Some(_)) if e.codec == Codec::Ffv1 => {
            p.push(Problem::new(format!("{key}.crf"), format!("{codec} is lossless and takes no crf")))
        }
        (None, Some(_)) => p.push(Problem::new(
            format!("{key}.crf"),
            format!("{codec} takes no crf (its profile sets the quality: {})", e.codec.profiles().join(", ")),
        )),
        (Some((lo, hi)), Some(c)) if c < lo || c > hi => p.push(Problem::new(
            format!("{key}.crf"),
            format!("crf {c} is out of range for {codec} (expected {lo}..={hi})"),
        )),
        _ => {}
    }
    if let Some(preset) = &e.preset {
        let ok = match e.codec {
            Codec::H264 | Codec::Hevc => X26X_PRESETS.contains(&preset.as_str()),
            Codec::Av1 => preset.parse::<u32>().is_ok_and(|n| n <= 13),
            Codec::Ffv1 | Codec::Prores | Codec::Dnxhr => false,
        };
        if !ok {
            let expected = match e.codec {
                Codec::H264 | Codec::Hevc => format!("one of {}", X26X_PRESETS.join(", ")),
                Codec::Av1 => "a number 0..=13".into(),
                Codec::Ffv1 | Codec::Prores | Codec::Dnxhr => format!("none: {codec} has no presets"),
            };
            p.push(Problem::new(
                format!("{key}.preset"),
                format!("unknown preset {preset:?} for {codec} (expected {expected})"),
            ));
        }
    }
    let depth_ok = match e.bit_depth {
        Some(d) if ![8, 10, 12].contains(&d) => {
            p.push(Problem::new(format!("{key}.bit_depth"), format!("bit depth {d} is not supported (8, 10 or 12)")));
            false
        }
        _ => true,
    };
    let profile = e.profile.as_deref();
    let profile_ok = match profile {
        Some(profile) if !e.codec.profiles().contains(&profile) => {
            let list = e.codec.profiles();
            let expected = if list.is_empty() { "none: it has no profiles".into() } else { list.join(", ") };
            p.push(Problem::new(
                format!("{key}.profile"),
                format!("unknown profile {profile:?} for {codec} (expected one of {expected})"),
            ));
            false
        }
        _ => true,
    };
    if depth_ok && profile_ok {
        check_carried(e, key, p);
    }
    if e.codec.refuses(container) {
        let what = match container.extension() {
            Some(ext) => format!("cannot be stored in {ext}"),
            None => "is written to .mov only, and container \"same\" follows each input's".into(),
        };
        let fix = match e.codec.only_in() {
            Some(only) => format!("use container = \"{}\"", only.extension().unwrap_or("mov")),
            None => "use container = \"mkv\" or \"mov\"".into(),
        };
        p.push(Problem::new(format!("{key}.codec"), format!("{codec} {what} ({fix})")));
    }
}

/// The chroma and bit depth the job fixes must be ones the codec, and the profile it names, can carry; the
/// message says what would.
fn check_carried(e: &EncodeSection, key: &str, p: &mut Vec<Problem>) {
    let codec = e.codec.as_str();
    let all = e.codec.carries(None);
    let chroma = e.chroma.fixed();
    let quote = |v: Vec<String>| match v.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    };
    if let Some(c) = chroma.filter(|c| !all.chroma.contains(c)) {
        let ok = quote(all.chroma.iter().map(|c| format!("\"{}\"", c.digits())).collect());
        p.push(Problem::new(
            format!("{key}.chroma"),
            format!("{codec} cannot carry {} video (use chroma = {ok} or \"same\")", c.label()),
        ));
        return;
    }
    if let Some(d) = e.bit_depth.filter(|d| !all.depths.contains(d)) {
        let ok = quote(all.depths.iter().map(u8::to_string).collect());
        let leave = if all.depths.len() == 1 { ", or leave it out" } else { "" };
        p.push(Problem::new(
            format!("{key}.bit_depth"),
            format!("{codec} cannot carry {d}-bit video (use bit_depth = {ok}{leave})"),
        ));
        return;
    }
    let Some(profile) = e.profile.as_deref() else { return };
    let carried = e.codec.carries(Some(profile));
    // What the job fixes; the smallest depth or chroma of the codec stands in for what it leaves to the input.
    let want_chroma = chroma.unwrap_or(carried.chroma[0]);
    let want_depth = e.bit_depth.unwrap_or(carried.depths[0]);
    if carried.fits(want_chroma, want_depth) {
        return;
    }
    let what = match (chroma.filter(|c| !carried.chroma.contains(c)), e.bit_depth) {
        (Some(c), _) => format!("{} video", c.label()),
        (None, Some(d)) => format!("{d}-bit video"),
        (None, None) => return,
    };
    let fix = match e.codec.smallest_profile_for(want_chroma, want_depth) {
        Some(q) => format!("use {q}"),
        None => format!("no {codec} profile can"),
    };
    p.push(Problem::new(format!("{key}.profile"), format!("profile {profile:?} cannot carry {what} ({fix})")));
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
