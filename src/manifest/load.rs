//! Reading a job file: the text → [`super::Manifest`], with every problem at once, each naming the file, line,
//! column and dotted key; and the JSON Schema that is checked in under `schemas/`.

use super::locate::{blank, Locator};
use super::types::Manifest;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A parsed manifest and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// The manifest file (or `<command line>` for the single-file form).
    pub source: PathBuf,
    /// The folder relative paths resolve against.
    pub base_dir: PathBuf,
    /// The parsed content.
    pub manifest: Manifest,
    /// The job file's text, to say where a key is written.
    text: Option<Arc<str>>,
}

impl JobSpec {
    /// A job built in memory (no text to point into).
    pub fn new(source: PathBuf, base_dir: PathBuf, manifest: Manifest) -> JobSpec {
        JobSpec { source, base_dir, manifest, text: None }
    }

    /// Resolves a path written in the manifest against its folder.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() {
            normalize(path)
        } else {
            normalize(&self.base_dir.join(path))
        }
    }

    /// `file:line:column` of a dotted key (`encode.crf`, `input[1].path`), or of the nearest enclosing key that is
    /// written in the file; just the file when none is (a key that was left out, a job built in memory).
    pub fn locate(&self, key: &str) -> String {
        let file = self.source.display();
        let Some(text) = &self.text else { return file.to_string() };
        let Some(locator) = Locator::new(text) else { return file.to_string() };
        let mut k = key;
        loop {
            if let Some(offset) = locator.offset(k) {
                let (line, col) = line_col(text, offset);
                return format!("{file}:{line}:{col}");
            }
            match k.rfind(['.', '[']) {
                Some(i) => k = &k[..i],
                None => return file.to_string(),
            }
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

/// One problem found while parsing: where it is written, the dotted key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseProblem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Dotted key path (`model.precision`, `input[1].path`), empty when the problem is syntactic or at the top.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ParseProblem {
    /// `file:line:column: key: message`, leaving out what is not known.
    pub fn render(&self, path: &Path) -> String {
        let mut s = path.display().to_string();
        if let Some(l) = self.line {
            s.push_str(&format!(":{l}"));
            if let Some(c) = self.column {
                s.push_str(&format!(":{c}"));
            }
        }
        s.push_str(": ");
        if !self.key.is_empty() {
            s.push_str(&self.key);
            s.push_str(": ");
        }
        s.push_str(&self.message);
        s
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
    /// The TOML is malformed, or values have the wrong type or name: every one found, in file order.
    #[error("{}", problems.iter().map(|p| p.render(path)).collect::<Vec<_>>().join("\n"))]
    Parse {
        /// The job file.
        path: PathBuf,
        /// What is wrong, one entry per key.
        problems: Vec<ParseProblem>,
    },
}

/// What lenient parsing found: the manifest, when one could be built (keys with bad values are left at their
/// defaults), and every problem.
#[derive(Debug)]
pub struct Parsed {
    /// The job, when the file was TOML with every required key readable.
    pub spec: Option<JobSpec>,
    /// Type, enum, unknown-key and syntax problems, in file order.
    pub problems: Vec<ParseProblem>,
}

/// Reads and parses a job file; any problem is an error listing all of them.
pub fn load(path: &Path) -> Result<JobSpec, ManifestError> {
    let parsed = load_all(path)?;
    match parsed.spec {
        Some(spec) if parsed.problems.is_empty() => Ok(spec),
        _ => Err(ManifestError::Parse { path: path.to_path_buf(), problems: parsed.problems }),
    }
}

/// Reads a job file and parses it leniently (see [`parse_all`]); only a file that cannot be read is an error.
pub fn load_all(path: &Path) -> Result<Parsed, ManifestError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.to_path_buf(), source })?;
    let base_dir = path
        .parent()
        .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let (manifest, problems) = parse_all(&text);
    let spec = manifest.map(|manifest| JobSpec {
        source: path.to_path_buf(),
        base_dir,
        manifest,
        text: Some(Arc::from(text.as_str())),
    });
    Ok(Parsed { spec, problems })
}

/// Parses manifest text; `path` is only used in error messages. Every problem is reported.
pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
    match parse_all(text) {
        (Some(m), problems) if problems.is_empty() => Ok(m),
        (_, problems) => Err(ManifestError::Parse { path: path.to_path_buf(), problems }),
    }
}

/// Parses leniently: deserialises, and on an error records it, blanks that key's entry out of the text (keeping
/// every other position, so later errors keep their true lines) and tries again, until the rest parses or the
/// error cannot be stepped over (bad syntax, a required key missing). Returns the manifest with the bad keys at
/// their defaults, when one could be built, and every problem.
pub fn parse_all(text: &str) -> (Option<Manifest>, Vec<ParseProblem>) {
    let mut current = text.to_string();
    let mut problems: Vec<ParseProblem> = Vec::new();
    // Keys blanked so far: a required one then reads as missing, which is not a problem of its own.
    let mut blanked: Vec<String> = Vec::new();
    // Each round removes one entry, so the loop ends; the bound is a guard against a key that cannot be blanked.
    for _ in 0..256 {
        let de = toml::Deserializer::new(&current);
        let err = match serde_path_to_error::deserialize::<_, Manifest>(de) {
            Ok(m) => return (Some(m), sorted(problems)),
            Err(err) => err,
        };
        let key = dotted(err.path());
        let inner = err.into_inner();
        let (line, column) =
            inner.span().map(|s| line_col(text, s.start)).map(|(l, c)| (Some(l), Some(c))).unwrap_or((None, None));
        let message = inner.message().trim().to_string();
        let missing = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()).map(|field| {
            if key.is_empty() {
                field.to_string()
            } else {
                format!("{key}.{field}")
            }
        });
        if missing.as_ref().is_some_and(|m| blanked.contains(m)) {
            break;
        }
        let fatal = key.is_empty() || missing.is_some();
        let entry = Locator::new(&current).and_then(|l| l.entry(&key));
        let problem = ParseProblem { line, column, key: key.clone(), message };
        if problems.contains(&problem) {
            break;
        }
        problems.push(problem);
        match entry {
            Some(range) if !fatal => {
                blank(&mut current, range);
                blanked.push(key);
            }
            _ => break,
        }
    }
    (None, sorted(problems))
}

fn sorted(mut problems: Vec<ParseProblem>) -> Vec<ParseProblem> {
    problems.sort_by_key(|p| (p.line.unwrap_or(usize::MAX), p.column.unwrap_or(0)));
    problems
}

/// `input[1].path` rather than serde_path_to_error's `.` for the root.
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
