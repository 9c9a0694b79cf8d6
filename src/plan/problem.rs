//! A problem with a job: the dotted key it concerns, where that key is written, and what is wrong. Validation
//! collects every one before anything is reported; problems the parser found join them.

use crate::manifest::{JobSpec, ParseProblem};
use serde::Serialize;
use std::path::Path;

/// One problem, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Dotted key path in the manifest (`model.path`), or empty for the whole job.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// `file:line:column` where the key is written (or just the file), once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

impl Problem {
    /// A problem at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { key: key.into(), message: message.into(), at: None }
    }

    /// A problem the parser found in `file`.
    pub fn parsed(p: &ParseProblem, file: &Path) -> Problem {
        let at = match (p.line, p.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", file.display()),
            (Some(l), None) => format!("{}:{l}", file.display()),
            _ => file.display().to_string(),
        };
        Problem { key: p.key.clone(), message: p.message.clone(), at: Some(at) }
    }
}

/// Notes where each problem's key is written in the job file.
pub fn locate(spec: &JobSpec, problems: Vec<Problem>) -> Vec<Problem> {
    problems
        .into_iter()
        .map(|p| Problem { at: Some(p.at.clone().unwrap_or_else(|| spec.locate(&p.key))), ..p })
        .collect()
}

/// All problems, one per line: `file:line:column: key: message`, leaving out what is not known.
pub fn format_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            let mut s = p.at.as_ref().map(|a| format!("{a}: ")).unwrap_or_default();
            if !p.key.is_empty() {
                s += &p.key;
                s += ": ";
            }
            s + &p.message
        })
        .collect::<Vec<_>>()
        .join("\n")
}
