//! Reading a job file: the text → [`super::Manifest`], with errors that name the file, line, column and dotted
//! key; and the JSON Schema that is checked in under `schemas/`.

use super::types::Manifest;
use std::path::{Path, PathBuf};

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
    fn line_and_column() {
        assert_eq!(line_col("a\nbc\nd", 3), (2, 2));
        assert_eq!(line_col("abc", 0), (1, 1));
    }
}
