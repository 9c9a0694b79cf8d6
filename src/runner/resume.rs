//! Resume: each output's report (`<output>.report.json`) is its completion record. A `complete` record whose input
//! hash and fingerprint match makes a rerun skip the file; anything else redoes it. Records are written
//! atomically.

use crate::error::EngineError;
use crate::fingerprint::EngineFingerprint;
use crate::plan::WorkItem;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    /// Upscaled and published.
    Complete,
    /// Already complete with the same input and fingerprint.
    Skipped,
    /// Failed; see the error.
    Failed,
    /// The output failed a quality gate (NaN, a flat frame) and was not published; a rerun tries again.
    #[serde(rename = "quality_failed")]
    QualityFailed,
    /// Not started or abandoned because the run was interrupted.
    Interrupted,
    /// Another worker holds its claim (it is processing it): not counted as done, skipped or failed.
    Claimed,
}

/// A file's report, written beside its output as `<output>.report.json`; a `complete` report whose input hash
/// and fingerprint match is the completion record that makes a rerun skip the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRecord {
    /// Input file.
    pub input: PathBuf,
    /// Output file.
    pub output: PathBuf,
    /// What happened.
    pub status: FileStatus,
    /// SHA-256 of the input file.
    pub input_sha256: String,
    /// The fingerprint's short id.
    pub fingerprint_id: String,
    /// The whole fingerprint.
    pub fingerprint: EngineFingerprint,
    /// Worker and device that processed it.
    pub worker: Option<String>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// When work on it started (Unix seconds), for the run report's timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<f64>,
    /// The pipeline's report (frames, per-stage timings, peak memory, warnings).
    pub pipeline: Option<serde_json::Value>,
    /// The error, when it failed.
    pub error: Option<String>,
    /// Whether a retry may help, when it failed.
    pub retriable: Option<bool>,
}

/// Path of a file's report.
pub fn report_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().map(|f| f.to_os_string()).unwrap_or_default();
    name.push(".report.json");
    output.with_file_name(name)
}

/// Writes a file atomically: a temporary name in the same folder, fsync, rename, fsync the folder. An error names
/// `path` once and is classified by its OS error, like an output's.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), EngineError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // A folder that cannot be opened for syncing (some network file systems) leaves the rename durable only
        // once the folder is flushed later; the file itself is synced.
        if let Ok(d) = std::fs::File::open(dir) {
            d.sync_all()?;
        }
        Ok(())
    })();
    res.map_err(|e| {
        crate::pipeline::publish::discard(&tmp);
        // Classified like an output's write error: a full disk may pass, a read-only folder will not.
        crate::pipeline::publish::output_error(path, &e)
    })
}

/// Whether `item` is already complete for this input and fingerprint.
pub(super) fn is_complete(item: &WorkItem, input_sha256: &str, fingerprint_id: &str) -> bool {
    if !item.output.is_file() {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(report_path(&item.output)) else { return false };
    let Ok(rec) = serde_json::from_str::<FileRecord>(&text) else { return false };
    rec.status == FileStatus::Complete && rec.input_sha256 == input_sha256 && rec.fingerprint_id == fingerprint_id
}

/// A record of `item` with no pipeline report yet.
pub(super) fn record(
    item: &WorkItem,
    status: FileStatus,
    input_sha256: String,
    fp: &EngineFingerprint,
    worker: Option<String>,
    seconds: f64,
) -> FileRecord {
    FileRecord {
        input: item.input.clone(),
        output: item.output.clone(),
        status,
        input_sha256,
        fingerprint_id: fp.id(),
        fingerprint: fp.clone(),
        worker,
        seconds,
        started: None,
        pipeline: None,
        error: None,
        retriable: None,
    }
}
