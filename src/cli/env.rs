//! The environment, read once, here: the switches for benchmarks and tests, and where the engine's libraries are.
//! The library reads no environment variable; it gets what this module found.
//!
//! ONNX Runtime is looked up in this order: `ORT_DYLIB_PATH`; the release bundle's `lib/` beside the executable;
//! the checkout's `.deps/` (found by walking up from the executable: `.deps/onnxruntime-gpu/` where an NVIDIA
//! driver loads, then `.deps/onnxruntime/`); else the plugin's own search of the system.
//!
//! ONNX Runtime's CUDA provider opens the CUDA libraries (cudart, cuBLAS, cuDNN, ...) by name. Where the GPU build
//! comes from the bundle or `.deps/`, the libraries that came with it are listed in load order in a `LIBS` file
//! (`lib/LIBS`, `.deps/cuda/LIBS`; one path per line relative to the file's folder, `#` comments); [`preload_cuda`]
//! opens each with `RTLD_GLOBAL` first, so the provider finds ours rather than whatever the system has.

use std::path::{Path, PathBuf};
use videoforge::plan::Overrides;
use videoforge::probe::ProbeOptions;
use videoforge::runner::Environment;

/// Where a library was found, for `doctor`.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Found {
    /// The file.
    pub(crate) path: PathBuf,
    /// How: `ORT_DYLIB_PATH`, `bundle`, `.deps` or `.deps (GPU build)`.
    pub(crate) from: &'static str,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn flag(name: &str) -> bool {
    std::env::var_os(name).is_some()
}

fn number<T: std::str::FromStr + Default>(name: &str) -> T {
    var(name).and_then(|v| v.trim().parse().ok()).unwrap_or_default()
}

/// Everything the library needs from the environment.
pub(crate) fn environment() -> Environment {
    Environment {
        plugin_dirs: std::env::var_os("VIDEOFORGE_PLUGIN_DIR")
            .map(|v| std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect())
            .unwrap_or_default(),
        runtime_library: onnxruntime().map(|f| f.path),
        cache_dir: Some(cache_dir()),
        probe: ProbeOptions { gpus: !flag("VIDEOFORGE_NO_GPU"), nvdec: !flag("VIDEOFORGE_NO_NVDEC") },
        overrides: Overrides {
            segment_frames: number("VIDEOFORGE_SEGMENT_FRAMES"),
            segment_queue: number("VIDEOFORGE_SEGMENT_QUEUE"),
            pin_host_frames: !flag("VIDEOFORGE_NO_PIN"),
            provider_options: var("VIDEOFORGE_ORT_CUDA_OPTIONS"),
        },
        audit_traces: number("VIDEOFORGE_AUDIT_TRACE"),
        fail_slot: var("VIDEOFORGE_FAIL_SLOT"),
    }
}

/// `$XDG_CACHE_HOME/videoforge` (or `~/.cache/videoforge`, or the temp folder's).
fn cache_dir() -> PathBuf {
    var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("videoforge")
}

/// Claim timings: `VIDEOFORGE_CLAIM_HEARTBEAT` seconds between heartbeats (stale after four), else the default.
pub(crate) fn claims() -> videoforge::runner::claim::ClaimConfig {
    use videoforge::runner::claim::ClaimConfig;
    var("VIDEOFORGE_CLAIM_HEARTBEAT")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| ClaimConfig::with_heartbeat(std::time::Duration::from_secs_f64(s)))
        .unwrap_or_default()
}

/// The scheduler variables a shard may come from (Slurm, Kubernetes, AWS Batch), as name/value pairs.
pub(crate) fn scheduler_vars() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("SLURM_") || k.starts_with("AWS_BATCH_") || k == "JOB_COMPLETION_INDEX")
        .collect()
}

/// The ONNX Runtime library to load, and how it was found.
pub(crate) fn onnxruntime() -> Option<Found> {
    if let Some(p) = var("ORT_DYLIB_PATH") {
        return Some(Found { path: PathBuf::from(p), from: "ORT_DYLIB_PATH" });
    }
    let exe_dir = std::env::current_exe().ok()?.parent()?.to_path_buf();
    if let Some(p) = exe_dir.parent().and_then(|b| newest_soname(&b.join("lib"))) {
        return Some(Found { path: p, from: "bundle" });
    }
    let deps = exe_dir.ancestors().map(|d| d.join(".deps")).find(|d| d.is_dir())?;
    if driver_present() {
        if let Some(p) = newest_soname(&deps.join("onnxruntime-gpu")) {
            return Some(Found { path: p, from: ".deps (GPU build)" });
        }
    }
    newest_soname(&deps.join("onnxruntime")).map(|p| Found { path: p, from: ".deps" })
}

/// The `LIBS` file listing the CUDA libraries that belong with the ONNX Runtime build [`onnxruntime`] found: beside
/// it (the bundle's `lib/`) or in `../cuda/` (the checkout's `.deps/onnxruntime-gpu/`), however it was found. Only
/// where a driver is present: without one nothing would use them.
pub(crate) fn cuda_libraries() -> Option<Found> {
    let ort = onnxruntime()?;
    let dir = ort.path.parent()?;
    let file = [dir.join("LIBS"), dir.parent()?.join("cuda").join("LIBS")].into_iter().find(|f| f.is_file())?;
    driver_present().then_some(Found { path: file, from: ort.from })
}

/// A library listed in a `LIBS` file that did not open.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason} (listed in {})", library.display(), list.display())]
pub(crate) struct PreloadError {
    /// The library.
    pub(crate) library: PathBuf,
    /// The `LIBS` file.
    pub(crate) list: PathBuf,
    /// The loader's message.
    pub(crate) reason: String,
}

/// Opens every library listed in `list`, in order, with `RTLD_NOW | RTLD_GLOBAL`, and keeps them open for the life
/// of the process. Returns how many opened; stops at the first that does not.
pub(crate) fn preload_cuda(list: &Path) -> Result<usize, PreloadError> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    let fail = |library: PathBuf, reason: String| PreloadError { library, list: list.to_path_buf(), reason };
    let text = std::fs::read_to_string(list).map_err(|e| fail(list.to_path_buf(), e.to_string()))?;
    let dir = list.parent().unwrap_or(Path::new("."));
    let mut n = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let path = dir.join(line);
        // SAFETY: these are the CUDA runtime libraries shipped with the ONNX Runtime build we load next; their
        // initialisers are the ones that build would run when its CUDA provider opens them.
        let lib = unsafe { Library::open(Some(&path), RTLD_NOW | RTLD_GLOBAL) }
            .map_err(|e| fail(path.clone(), e.to_string()))?;
        // Kept open: the provider resolves them by name for as long as the process runs.
        std::mem::forget(lib);
        n += 1;
    }
    Ok(n)
}

/// `libonnxruntime.so` in `dir`, or its highest versioned name.
fn newest_soname(dir: &Path) -> Option<PathBuf> {
    let plain = dir.join("libonnxruntime.so");
    if plain.is_file() {
        return Some(plain);
    }
    let mut versioned: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so.")))
        .collect();
    versioned.sort();
    versioned.pop()
}

/// Whether the NVIDIA driver's library loads.
pub(crate) fn driver_present() -> bool {
    // SAFETY: loading the driver library runs its initialisers, which is what using the GPU does anyway.
    unsafe { libloading::Library::new("libcuda.so.1") }.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real library listed relative to the list's folder opens; a missing one is named in the error.
    #[test]
    fn preload_opens_the_listed_libraries_in_order_and_names_the_one_that_fails() {
        let system = ["/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())
            .expect("zlib is installed (FFmpeg links it)");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::os::unix::fs::symlink(system, dir.path().join("lib/libz.so.1")).unwrap();
        let list = dir.path().join("LIBS");
        std::fs::write(&list, "# load order\nlib/libz.so.1\n\n").unwrap();
        assert_eq!(preload_cuda(&list).unwrap(), 1);

        std::fs::write(&list, "lib/libz.so.1\nlib/libmissing.so.9\nlib/libz.so.1\n").unwrap();
        let e = preload_cuda(&list).unwrap_err();
        assert!(e.library.ends_with("lib/libmissing.so.9"), "{e}");
        assert!(e.to_string().contains("LIBS"), "{e}");
    }
}
