//! The work list: `[[input]]` entries (files, folders, globs) expanded into sorted, de-duplicated inputs with
//! their output paths, and the checks that no two inputs write one output and no output overwrites an input.

use super::{Problem, WorkItem};
use crate::codec::{Codec, VIDEO_EXTENSIONS};
use crate::manifest::JobSpec;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Fills in the output name template.
fn output_name(template: &str, input: &Path, ext: &str, scale: u32, codec: Codec, index: usize) -> String {
    let stem = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    template
        .replace("{stem}", &stem)
        .replace("{ext}", ext)
        .replace("{scale}", &scale.to_string())
        .replace("{codec}", codec.as_str())
        .replace("{index}", &format!("{index:04}"))
}

/// Expands the `[[input]]` entries into a sorted, de-duplicated work list with output paths.
/// `scale` is used in output names (0 when not yet known).
pub(super) fn expand_inputs(spec: &JobSpec, scale: u32) -> (Vec<(usize, WorkItem)>, Vec<Problem>) {
    let m = &spec.manifest;
    let mut problems = Vec::new();
    let mut found: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for (i, input) in m.input.iter().enumerate() {
        let key = format!("input[{i}].path");
        let p = spec.resolve(&input.path);
        let mut files = Vec::new();
        if p.is_file() {
            files.push(p.clone());
        } else if p.is_dir() {
            collect_dir(&p, input.recursive, &mut files);
        } else if input.path.contains(['*', '?', '[']) {
            match glob::glob(&p.to_string_lossy()) {
                Ok(paths) => files.extend(paths.filter_map(Result::ok).filter(|f| f.is_file())),
                Err(e) => problems.push(Problem::new(&key, format!("bad glob pattern {:?}: {e}", input.path))),
            }
        } else {
            problems.push(Problem::new(&key, format!("{} does not exist", p.display())));
            continue;
        }
        if files.is_empty() {
            problems.push(Problem::new(&key, format!("{:?} matched no video file", input.path)));
        }
        for f in files {
            found.entry(f).or_insert(i);
        }
    }
    let out_dir = spec.resolve(&m.output.dir);
    let work = found
        .into_iter()
        .enumerate()
        .map(|(index, (input, from))| {
            let ext = m.output.container.extension().map(str::to_string).unwrap_or_else(|| {
                input.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_else(|| "mkv".into())
            });
            let name = output_name(&m.output.name, &input, &ext, scale, m.encode.codec, index);
            let size = std::fs::metadata(&input).map(|md| md.len()).unwrap_or(0);
            (from, WorkItem { output: out_dir.join(name), input, size })
        })
        .collect();
    (work, problems)
}

fn collect_dir(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            if recursive {
                collect_dir(&e, recursive, out);
            }
        } else if e
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| VIDEO_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
        {
            out.push(e);
        }
    }
}

/// Two inputs writing one output, or an output overwriting an input.
pub(super) fn check_outputs(work: &[(usize, WorkItem)]) -> Vec<Problem> {
    let mut p = Vec::new();
    let mut seen: BTreeMap<&Path, &Path> = BTreeMap::new();
    let inputs: std::collections::BTreeSet<&Path> = work.iter().map(|(_, w)| w.input.as_path()).collect();
    for (_, w) in work {
        if let Some(other) = seen.insert(&w.output, &w.input) {
            p.push(Problem::new(
                "output.name",
                format!(
                    "{} and {} would both be written to {}",
                    other.display(),
                    w.input.display(),
                    w.output.display()
                ),
            ));
        }
        if inputs.contains(w.output.as_path()) {
            p.push(Problem::new("output.name", format!("output {} would overwrite an input", w.output.display())));
        }
    }
    p
}
