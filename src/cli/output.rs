//! What the command line prints besides logs: the run summary as a table (text) or one JSON object (with
//! `--log-format json`, where every line on both streams is one JSON object).

use serde::Serialize;
use videoforge::runner::RunSummary;

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    /// Every line JSON.
    pub(crate) json: bool,
    /// Only errors.
    pub(crate) quiet: bool,
}

impl Output {
    /// Progress bars or lines: not when quiet, and not in JSON mode (progress would be a second kind of line).
    pub(crate) fn progress(&self) -> bool {
        !self.quiet && !self.json
    }

    /// The run's table and where its summary file is, or one JSON line with the counts and that path.
    pub(crate) fn summary(&self, s: &RunSummary) -> anyhow::Result<()> {
        if self.json {
            #[derive(Serialize)]
            struct Line<'a> {
                summary: &'a RunSummary,
            }
            eprintln!("{}", serde_json::to_string(&Line { summary: s })?);
        } else if !self.quiet || s.failed > 0 {
            eprint!("{}", s.table());
            if let Some(p) = &s.summary_path {
                eprintln!("summary: {}", p.display());
            }
            if let Some(sel) = &s.shard_source {
                if sel.steal || sel.note.is_some() {
                    eprintln!("shard: {}", sel.describe());
                }
            }
        }
        Ok(())
    }

    /// A dry run's list: `input -> output` lines, or one JSON object per file, on stdout.
    pub(crate) fn planned(&self, items: &[videoforge::plan::WorkItem]) -> anyhow::Result<()> {
        for w in items {
            if self.json {
                println!("{}", serde_json::to_string(&serde_json::json!({ "planned": w }))?);
            } else {
                println!("{} -> {}", w.input.display(), w.output.display());
            }
        }
        Ok(())
    }

    /// One JSON line `{"key": value}` on stdout, or the text.
    pub(crate) fn result(&self, key: &str, value: &impl Serialize, text: &str) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string(&serde_json::json!({ key: value }))?);
        } else {
            print!("{text}");
        }
        Ok(())
    }
}
