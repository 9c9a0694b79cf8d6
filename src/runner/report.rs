//! The run summary: every file of the run (or shard) with what happened to it, the table printed at the end, the
//! summary file `videoforge-run.json` (`videoforge-run.shard-I-of-N.json`), and the exit code.

use super::resume::{write_atomic, FileRecord, FileStatus};
use super::scheduler::Selection;
use super::shard::Shard;
use crate::error::{exit_codes, EngineError, Retry};
use crate::plan::WorkItem;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The job file.
    pub job: PathBuf,
    /// The shard run, if any.
    pub shard: Option<Shard>,
    /// Where the shard came from (flag, scheduler variables), and whether this task stole from other shards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_source: Option<Selection>,
    /// Fingerprint id.
    pub fingerprint_id: String,
    /// Files complete in this run.
    pub done: usize,
    /// Files skipped as already complete.
    pub skipped: usize,
    /// Files that failed.
    pub failed: usize,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Every file of this shard.
    pub files: Vec<FileRecord>,
    /// Where this summary was written.
    pub summary_path: Option<PathBuf>,
    /// What a dry run would process.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<WorkItem>,
    /// Why the summary file could not be written (then the exit code is not 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary_error: Option<String>,
    /// Whether writing it again may succeed.
    #[serde(skip)]
    summary_retry: Option<Retry>,
}

impl RunSummary {
    /// The summary of a run that started at `started`.
    pub fn new(
        job: PathBuf,
        shard: Option<Shard>,
        fingerprint_id: String,
        files: Vec<FileRecord>,
        interrupted: bool,
        started: Instant,
    ) -> RunSummary {
        let count = |s: FileStatus| files.iter().filter(|f| f.status == s).count();
        RunSummary {
            job,
            shard,
            fingerprint_id,
            done: count(FileStatus::Complete),
            skipped: count(FileStatus::Skipped),
            failed: count(FileStatus::Failed) + count(FileStatus::QualityFailed),
            interrupted,
            seconds: started.elapsed().as_secs_f64(),
            files,
            summary_path: None,
            shard_source: None,
            planned: Vec::new(),
            summary_error: None,
            summary_retry: None,
        }
    }

    /// Writes the summary into the job's output folder `dir` (`videoforge-run.json`, or
    /// `videoforge-run.shard-I-of-N.json`) and notes where in `summary_path`. A run without files writes none.
    pub fn write(&mut self, dir: &Path, shard: Option<Shard>) -> Result<(), EngineError> {
        if self.files.is_empty() {
            return Ok(());
        }
        let name = match shard {
            Some(s) => format!("videoforge-run.shard-{}-of-{}.json", s.index + 1, s.count),
            None => "videoforge-run.json".into(),
        };
        let path = dir.join(name);
        self.summary_path = Some(path.clone());
        let written = serde_json::to_vec_pretty(self)
            .map_err(|e| EngineError::io(&path, std::io::Error::other(e)))
            .and_then(|json| write_atomic(&path, &json));
        if written.is_err() {
            self.summary_path = None;
        }
        written
    }

    /// Notes that the summary file could not be written: the exit code is then not 0 (75 if writing it again may
    /// succeed, 1 if not), so a scheduler does not take the run as recorded.
    pub fn not_written(&mut self, e: &EngineError) {
        self.summary_error = Some(e.to_string());
        self.summary_retry = Some(e.retry());
    }

    /// The process exit code: 0 all done; 75 interrupted, or only retriable failures; 1 some files failed. A
    /// summary that could not be written turns a 0 into 75 (or 1, when writing it again cannot succeed).
    pub fn exit_code(&self) -> i32 {
        if self.interrupted {
            return exit_codes::TRANSIENT;
        }
        let failed: Vec<&FileRecord> =
            self.files.iter().filter(|f| matches!(f.status, FileStatus::Failed | FileStatus::QualityFailed)).collect();
        let code = if failed.is_empty() {
            exit_codes::SUCCESS
        } else if failed.iter().all(|f| f.retriable == Some(true)) {
            exit_codes::TRANSIENT
        } else {
            exit_codes::SOME_FILES_FAILED
        };
        match (code, self.summary_retry) {
            (exit_codes::SUCCESS, Some(Retry::Retriable)) => exit_codes::TRANSIENT,
            (exit_codes::SUCCESS, Some(Retry::Permanent)) => exit_codes::SOME_FILES_FAILED,
            _ => code,
        }
    }

    /// A readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        for f in &self.files {
            let status = match f.status {
                FileStatus::Complete => "done",
                FileStatus::Skipped => "skipped",
                FileStatus::Failed => "FAILED",
                FileStatus::QualityFailed => "QUALITY",
                FileStatus::Claimed => "claimed",
                FileStatus::Interrupted => "interrupted",
            };
            s += &format!("{status:<11} {:>7.1}s  {}", f.seconds, f.input.display());
            if let Some(e) = &f.error {
                s += &format!("\n            {e}");
            } else if f.status != FileStatus::Interrupted {
                s += &format!(" -> {}", f.output.display());
            }
            s.push('\n');
        }
        s += &format!(
            "{} done, {} skipped, {} failed{} in {:.1}s (fingerprint {})\n",
            self.done,
            self.skipped,
            self.failed,
            if self.interrupted { ", interrupted" } else { "" },
            self.seconds,
            self.fingerprint_id
        );
        s
    }
}
