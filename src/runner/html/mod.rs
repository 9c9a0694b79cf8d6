//! The run report to look at: `videoforge-run.html` beside the run summaries, one self-contained page (inline CSS
//! and SVG, pictures embedded as base64 PNG, no network fetches). Built from the JSON summaries and the files'
//! preview pictures alone, so `videoforge report DIR` rebuilds it at any time; every run rewrites it at its end.
//!
//! Per file: the before/after crop ([`preview`]), frames per second and each stage's use over time (from the
//! file's timeline), the quality gates' results, warnings, errors and the fingerprint. For the run: when each file
//! was processed, and the counts.

mod preview;
mod svg;

pub use preview::{preview_path, write_preview};

use crate::error::EngineError;
use serde_json::Value;
use std::path::{Path, PathBuf};
use svg::{esc, fmt_num};

/// The report's file name.
pub const REPORT_NAME: &str = "videoforge-run.html";

const STAGE_COLOURS: [(&str, &str); 3] = [("decode", "#1f77b4"), ("infer", "#d62728"), ("encode", "#2ca02c")];

/// Builds `dir/videoforge-run.html` from the run summaries in `dir`; returns its path.
pub fn write_report(dir: &Path) -> Result<PathBuf, EngineError> {
    let summaries = read_summaries(dir)?;
    let html = render(&summaries, dir);
    let path = dir.join(REPORT_NAME);
    super::write_atomic(&path, html.as_bytes())?;
    Ok(path)
}

/// Every `videoforge-run*.json` in `dir`, sorted by name.
fn read_summaries(dir: &Path) -> Result<Vec<(String, Value)>, EngineError> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| EngineError::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("videoforge-run") && n.ends_with(".json"))
        })
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(EngineError::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no videoforge-run*.json summary in this folder"),
        ));
    }
    let mut out = Vec::new();
    for p in names {
        let text = std::fs::read_to_string(&p).map_err(|e| EngineError::io(&p, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| EngineError::io(&p, std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        out.push((p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), v));
    }
    Ok(out)
}

/// The page.
fn render(summaries: &[(String, Value)], dir: &Path) -> String {
    let files: Vec<&Value> = summaries.iter().flat_map(|(_, s)| s["files"].as_array().into_iter().flatten()).collect();
    let count = |status: &str| files.iter().filter(|f| f["status"] == status).count();
    let mut body = String::new();
    body += &format!(
        "<h1>videoforge run</h1><p class=\"counts\"><b>{}</b> done · <b>{}</b> skipped · <b>{}</b> failed · <b>{}</b> \
         not published by the quality gates · {} summar{} ({})</p>",
        count("complete"),
        count("skipped"),
        count("failed"),
        count("quality_failed"),
        summaries.len(),
        if summaries.len() == 1 { "y" } else { "ies" },
        summaries.iter().map(|(n, _)| esc(n)).collect::<Vec<_>>().join(", ")
    );
    body += &timeline(&files);
    for f in &files {
        body += &file_card(f, dir);
    }
    if let Some(fp) = files.iter().find_map(|f| f.get("fingerprint")) {
        body += "<h2>Fingerprint</h2><table class=\"kv\">";
        if let Some(obj) = fp.as_object() {
            for (k, v) in obj {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => "—".into(),
                    other => other.to_string(),
                };
                body += &format!("<tr><th>{}</th><td><code>{}</code></td></tr>", esc(k), esc(&text));
            }
        }
        body += "</table>";
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>videoforge run</title><style>{CSS}</style>\
         </head><body>{body}</body></html>\n"
    )
}

/// When each file was worked on, over the run.
fn timeline(files: &[&Value]) -> String {
    let spans: Vec<(String, f64, f64, &str)> = files
        .iter()
        .filter_map(|f| {
            let start = f["started"].as_f64()?;
            let colour = match f["status"].as_str() {
                Some("complete") => "#2ca02c",
                Some("quality_failed") => "#ff7f0e",
                _ => "#d62728",
            };
            Some((name_of(f), start, start + f["seconds"].as_f64().unwrap_or(0.0), colour))
        })
        .collect();
    let Some(t0) = spans.iter().map(|s| s.1).reduce(f64::min) else { return String::new() };
    let t1 = spans.iter().map(|s| s.2).fold(t0, f64::max);
    let rows: Vec<svg::Row<'_>> = spans.iter().map(|(n, a, b, c)| (n.clone(), vec![(a - t0, b - t0, *c)])).collect();
    format!("<h2>Files over the run</h2>{}", svg::bars(&rows, t1 - t0))
}

fn name_of(f: &Value) -> String {
    f["input"]
        .as_str()
        .map(|p| Path::new(p).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.to_string()))
        .unwrap_or_default()
}

/// One file's section.
fn file_card(f: &Value, dir: &Path) -> String {
    let status = f["status"].as_str().unwrap_or("?");
    let mut s = format!(
        "<section class=\"file\"><h2>{} <span class=\"status {}\">{}</span></h2><p class=\"paths\">{} → {}</p>",
        esc(&name_of(f)),
        esc(status),
        esc(status),
        esc(f["input"].as_str().unwrap_or("")),
        esc(f["output"].as_str().unwrap_or(""))
    );
    if let Some(e) = f["error"].as_str() {
        s += &format!("<p class=\"error\">{}</p>", esc(e));
    }
    let p = &f["pipeline"];
    if p.is_object() {
        s += &format!(
            "<p>{} frames, {}x{} → {}x{}, {} fps over {} s; decoded by {}, encoded by {}</p>",
            p["frames_encoded"],
            p["video"]["width"],
            p["video"]["height"],
            p["output_width"],
            p["output_height"],
            fmt_num(p["fps"].as_f64().unwrap_or(0.0)),
            fmt_num(p["wall_s"].as_f64().unwrap_or(0.0)),
            esc(p["decoder"].as_str().unwrap_or("")),
            esc(p["encoder"].as_str().unwrap_or(""))
        );
    }
    if let Some(img) = f["output"].as_str().map(|o| preview_path(&resolve(dir, o))).and_then(|p| std::fs::read(p).ok())
    {
        s += &format!(
            "<figure><img class=\"preview\" alt=\"before and after\" src=\"data:image/png;base64,{}\"><figcaption>left: the \
             input upscaled with a bicubic filter; right: the model's output (a crop of a frame from the middle of the \
             clip, shown at twice its size)</figcaption></figure>",
            base64(&img)
        );
    }
    s += &charts(p);
    s += &gates(&p["quality"]);
    if let Some(w) = p["warnings"].as_array().filter(|w| !w.is_empty()) {
        s += "<h3>Warnings</h3><ul>";
        for x in w {
            s += &format!("<li>{}</li>", esc(x.as_str().unwrap_or("")));
        }
        s += "</ul>";
    }
    s + "</section>"
}

/// A path from a summary, relative paths taken against the report's folder's working directory as written.
fn resolve(dir: &Path, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() || path.exists() {
        path
    } else {
        dir.join(path.file_name().unwrap_or_default())
    }
}

/// Frames per second and stage use over time, from the file's timeline.
fn charts(p: &Value) -> String {
    let Some(tl) = p["timeline"].as_array().filter(|t| t.len() >= 2) else { return String::new() };
    let pts: Vec<(f64, f64, [f64; 3])> = tl
        .iter()
        .map(|x| {
            let b = |i: usize| x["busy_s"][i].as_f64().unwrap_or(0.0);
            (x["t_s"].as_f64().unwrap_or(0.0), x["frames"].as_f64().unwrap_or(0.0), [b(0), b(1), b(2)])
        })
        .collect();
    let t_max = pts.last().map_or(1.0, |p| p.0);
    let mut fps = Vec::new();
    let mut use_ = [Vec::new(), Vec::new(), Vec::new()];
    // Points closer than a tenth of a second (the last one, taken at the end of the stream) make no rate.
    let spaced: Vec<_> =
        pts.iter().enumerate().filter(|(i, p)| *i == 0 || p.0 - pts[i - 1].0 >= 0.1).map(|(_, p)| *p).collect();
    for w in spaced.windows(2) {
        let dt = (w[1].0 - w[0].0).max(1e-6);
        let t = w[1].0;
        fps.push((t, (w[1].1 - w[0].1) / dt));
        for (i, u) in use_.iter_mut().enumerate() {
            u.push((t, 100.0 * ((w[1].2[i] - w[0].2[i]) / dt).clamp(0.0, 1.0)));
        }
    }
    let fps_max = fps.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let stages: Vec<svg::Series<'_>> = STAGE_COLOURS.iter().zip(use_).map(|((n, c), pts)| (*n, *c, pts)).collect();
    format!(
        "<div class=\"charts\"><div><h3>Frames per second</h3>{}</div><div><h3>Stage busy (% of the time)</h3>{}</div></div>",
        svg::lines(&[("frames per second", "#333", fps)], t_max, fps_max),
        svg::lines(&stages, t_max, 100.0)
    )
}

/// The quality gates' results.
fn gates(q: &Value) -> String {
    if !q.is_object() {
        return String::new();
    }
    let mut s = String::from("<h3>Quality gates</h3><table class=\"kv\">");
    let on = q["gates"].as_bool() == Some(true);
    s += &format!("<tr><th>gates</th><td>{}</td></tr>", if on { "on: no NaN, no flat frame" } else { "off" });
    s += &format!("<tr><th>frames checked</th><td>{}</td></tr>", q["frames_checked"]);
    if let Some(m) = q["min_output_std"].as_f64() {
        s += &format!("<tr><th>flattest output frame</th><td>luma ± {m:.4}</td></tr>");
    }
    let r = &q["reference"];
    if r.is_object() {
        s += &format!(
            "<tr><th>reference (bicubic)</th><td>{} frames: PSNR {} dB (lowest {} dB), SSIM {}{}</td></tr>",
            r["frames"],
            fmt_num(r["psnr_db"].as_f64().unwrap_or(0.0)),
            fmt_num(r["min_psnr_db"].as_f64().unwrap_or(0.0)),
            fmt_num(r["ssim"].as_f64().unwrap_or(0.0)),
            r["note"].as_str().map(|n| format!("; {}", esc(n))).unwrap_or_default()
        );
    }
    s + "</table>"
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                s.push(char::from(T[((n >> shift) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1280px}\
h1{margin:0 0 4px}h2{margin:24px 0 6px;font-size:18px}h3{margin:12px 0 4px;font-size:14px}\
.counts{color:#444}.file{border-top:1px solid #ccc;padding-top:4px}.paths{color:#666;font-size:12px}\
.status{font-size:12px;padding:2px 6px;border-radius:4px;color:#fff;background:#888;vertical-align:middle}\
.status.complete{background:#2ca02c}.status.failed{background:#d62728}.status.quality_failed{background:#ff7f0e}\
.error{color:#b00}.preview{image-rendering:pixelated;width:784px;border:1px solid #ddd}\
figcaption{font-size:12px;color:#666}.charts{display:flex;flex-wrap:wrap;gap:16px}\
.chart .plot{fill:#fafafa;stroke:#ccc}.chart .grid{stroke:#e4e4e4}.chart .axis,.chart .legend{font-size:11px}\
.kv th{text-align:left;padding-right:12px;font-weight:600;vertical-align:top}.kv td{font-size:13px}\
code{font-size:12px}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
