//! A validation problem: the dotted key it concerns and what is wrong. Validation collects every one before
//! anything is reported.

use serde::Serialize;

/// One validation problem, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Dotted key path in the manifest (`model.path`), or empty for the whole job.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { key: key.into(), message: message.into() }
    }
}

/// All problems, one per line, each prefixed with the job file.
pub fn format_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| if p.key.is_empty() { p.message.clone() } else { format!("{}: {}", p.key, p.message) })
        .collect::<Vec<_>>()
        .join("\n")
}
