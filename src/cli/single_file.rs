//! The single-file form, `videoforge -i in -o out -m model`: builds in memory the same job a job file gives, and
//! runs it through the same engine.

use super::args::{Cli, SingleFile};
use super::Output;
use anyhow::Context;
use std::path::{Path, PathBuf};
use videoforge::error::EngineError;
use videoforge::exit_codes;
use videoforge::manifest::{self, JobSpec};
use videoforge::runner::{self, Environment, RunOptions};

/// `-i in -o out -m model`: the same JobSpec a job file gives, built in memory.
pub(crate) fn single_file(s: SingleFile, report: &Output, env: Environment) -> anyhow::Result<i32> {
    let (Some(input), Some(output), Some(model)) = (s.input, s.output, s.model) else {
        use clap::CommandFactory;
        Cli::command().print_help()?;
        return Ok(exit_codes::USAGE);
    };
    let abs = |p: &Path| -> anyhow::Result<PathBuf> {
        Ok(if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir()?.join(p) })
    };
    let out = abs(&output)?;
    let container = match out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("mp4") | Some("m4v") => "mp4",
        Some("mkv") => "mkv",
        Some("mov") => "mov",
        _ => anyhow::bail!("{}: unknown output container (use .mp4, .mkv or .mov)", output.display()),
    };
    let gpus = match s.device.as_str() {
        "auto" | "cpu" => format!("{:?}", s.device),
        n => format!("[{}]", n.parse::<u32>().with_context(|| format!("-d {n}: expected a GPU index, cpu or auto"))?),
    };
    let q = |p: &Path| toml_string(&p.to_string_lossy());
    let mut text = format!(
        "version = 1\n[model]\npath = {}\nbackend = {}\nprecision = {}\n[device]\ngpus = {gpus}\n",
        q(&abs(&model)?),
        toml_string(&s.backend),
        toml_string(&s.precision)
    );
    if let Some(v) = &s.vram_limit {
        text += &format!("vram_limit = {}\n", toml_string(v));
    }
    text += &format!(
        "[[input]]\npath = {}\n[output]\ndir = {}\nname = {}\ncontainer = \"{container}\"\n[encode]\n",
        q(&abs(&input)?),
        q(out.parent().unwrap_or(Path::new("."))),
        toml_string(&out.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()),
    );
    if let Some(c) = &s.codec {
        text += &format!("codec = {}\n", toml_string(c));
    }
    if let Some(c) = s.crf {
        text += &format!("crf = {c}\n");
    }
    if let Some(p) = &s.preset {
        text += &format!("preset = {}\n", toml_string(p));
    }
    let source = PathBuf::from("<command line>");
    let manifest = manifest::parse(&text, &source).map_err(EngineError::from)?;
    let spec = JobSpec::new(source, std::env::current_dir()?, manifest);
    let opts = RunOptions { force: true, audit: s.audit, progress: report.progress(), env, ..Default::default() };
    let summary = runner::run_job(&spec, &opts)?;
    report.summary(&summary)?;
    Ok(summary.exit_code())
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}
