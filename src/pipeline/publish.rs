//! Publishing an output atomically: it is written under a hidden temporary name beside its final path, fsynced,
//! renamed into place and the folder fsynced, so a killed run never leaves a file that looks complete. Every
//! write error names the path once and is classified by its OS error (a full disk may pass; a read-only mount
//! will not). Temporary files left by killed runs are swept before a new one is written.

use crate::error::EngineError;
use std::path::{Path, PathBuf};

/// The temporary name an output is written under: `.<name>.partial-<pid>` in the same directory.
pub fn partial_path(output: &Path) -> PathBuf {
    output.with_file_name(format!(".{}.partial-{}", file_name(output), std::process::id()))
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into())
}

/// An I/O error on `path` as an output fault, classified by its OS error number.
pub fn output_error(path: &Path, e: &std::io::Error) -> EngineError {
    let detail = match e.raw_os_error() {
        // The OS's own words, without Rust's "(os error N)" suffix that would repeat the path's message.
        Some(n) => {
            std::io::Error::from_raw_os_error(n).to_string().split(" (os error").next().unwrap_or("").to_string()
        }
        None => e.to_string(),
    };
    EngineError::output(path, e.raw_os_error(), detail)
}

/// Makes the finished temporary file the output: fsync it, rename it over `output`, fsync the folder. The
/// folder is never re-created: if it vanished, that is the error.
pub fn publish(tmp: &Path, output: &Path) -> Result<(), EngineError> {
    let f = std::fs::File::open(tmp).map_err(|e| output_error(output, &e))?;
    f.sync_all().map_err(|e| output_error(output, &e))?;
    drop(f);
    std::fs::rename(tmp, output).map_err(|e| output_error(output, &e))?;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the folder is: a folder that cannot be opened for that (some network file
        // systems) leaves the file published but not yet durable, which a later sync of the folder completes.
        if let Ok(d) = std::fs::File::open(dir) {
            d.sync_all().map_err(|e| output_error(output, &e))?;
        }
    }
    Ok(())
}

/// Removes a temporary file after a failure. A file already gone is fine; anything else is logged (the sweep
/// of the next run removes it).
pub fn discard(tmp: &Path) {
    match std::fs::remove_file(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("{}: cannot remove the temporary file: {e}", tmp.display()),
    }
}

/// Removes temporary files of `output` (`.<name>.partial-<pid>`, `.<name>.audit-<pid>`) left by runs that were
/// killed: those whose process is gone or is no longer a videoforge process. A live run's file is left alone.
/// Returns the files removed.
pub fn sweep_stale(output: &Path) -> Vec<PathBuf> {
    let Some(dir) = output.parent() else { return Vec::new() };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let name = file_name(output);
    let prefixes = [format!(".{name}.partial-"), format!(".{name}.audit-")];
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = prefixes.iter().find_map(|p| file.strip_prefix(p.as_str())) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid == std::process::id() || is_videoforge_process(pid) {
            continue;
        }
        let path = entry.path();
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!("removed {} left by process {pid}, which is no longer running", path.display());
                removed.push(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("{}: stale temporary file not removed: {e}", path.display()),
        }
    }
    removed
}

/// Whether `pid` is a running process of this program (a videoforge binary, or this very executable: test
/// binaries run the pipeline in-process). A reused PID of another program does not count.
fn is_videoforge_process(pid: u32) -> bool {
    let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
        // No such process (dead), or one we may not inspect (another user's): that one is left alone.
        return Path::new(&format!("/proc/{pid}")).exists();
    };
    let ours = std::env::current_exe().ok();
    let name = exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.starts_with("videoforge") || ours.as_deref() == Some(exe.as_path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_partials_of_dead_processes_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let out = dir.path().join("clip.x2.mp4");
        // A PID far above pid_max: no such process.
        let dead = dir.path().join(".clip.x2.mp4.partial-4194999");
        let ours = partial_path(&out);
        let other = dir.path().join(".other.mp4.partial-4194999");
        for p in [&dead, &ours, &other] {
            std::fs::write(p, b"x").unwrap_or_else(|e| panic!("{e}"));
        }
        let removed = sweep_stale(&out);
        assert_eq!(removed, vec![dead.clone()]);
        assert!(!dead.exists() && ours.exists() && other.exists());
    }
}
