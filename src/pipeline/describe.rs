//! What `videoforge plan` shows for each file before anything runs: its file plan on the first worker — the frame
//! path, the filter chain, the output's size and pixel format, the encoder profile, and the warnings — read by
//! opening the input (no frame is decoded beyond the first few the plan looks at).

use super::file::plan_input;
use crate::plan::{EnginePlan, FilePlan, FramePath};
use std::fmt::Write;

/// The lines of work item `index`: input → output, then its plan (or why it cannot be planned).
pub fn describe_file(plan: &EnginePlan, index: usize) -> String {
    let mut s = String::new();
    let Some(w) = plan.work.get(index) else { return s };
    let _ = writeln!(s, "  {} -> {}", w.input.display(), w.output.display());
    let device = plan.workers.first().map(|w| w.device).unwrap_or(crate::codec::Device::Cpu);
    let Some(settings) = plan.file_settings(index, device) else { return s };
    match plan_input(&settings) {
        Ok(p) => s.push_str(&file_lines(&p)),
        Err(e) => {
            let _ = writeln!(s, "      cannot be planned: {e}");
        }
    }
    s
}

fn rate(r: Option<(i32, i32)>) -> String {
    match r {
        Some((n, d)) if d > 0 => format!("{:.3} fps ({n}/{d})", f64::from(n) / f64::from(d)),
        _ => "unknown rate".into(),
    }
}

/// A file plan in a few lines.
pub fn file_lines(p: &FilePlan) -> String {
    let mut s = String::new();
    let path = match p.frames {
        FramePath::HostRgb => "host RGB",
        FramePath::Upload => "uploaded to the GPU",
        FramePath::Nvdec => "NVDEC",
    };
    let _ = writeln!(s, "      frames:  {path} ({})", p.frames_reason);
    let chain = p.filter.chain.as_deref().map(|c| format!("; libavfilter: {c}")).unwrap_or_default();
    let _ = writeln!(s, "      filter:  {}{chain}", p.filter.summary);
    let (w, h) = p.output_size;
    let profile = p.encode.profile.as_deref().map(|q| format!(" profile {q}")).unwrap_or_default();
    let _ = writeln!(
        s,
        "      output:  {w}x{h} {} ({}, {}-bit), {}{profile}, {}, {}",
        p.pixel_format,
        p.chroma.label(),
        p.bit_depth,
        p.encode.encoder,
        rate(p.filter.frame_rate),
        p.muxer
    );
    for warning in &p.warnings {
        let _ = writeln!(s, "      warning: {warning}");
    }
    s
}
