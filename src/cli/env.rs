//! The environment, read once, here: the switches for benchmarks and tests, and where the engine's libraries are.
//! The library reads no environment variable; it gets what this module found.
//!
//! ONNX Runtime is looked up in this order: `ORT_DYLIB_PATH`; the release bundle's `lib/` beside the executable;
//! the checkout's `.deps/` (found by walking up from the executable: `.deps/onnxruntime-gpu/` where an NVIDIA
//! driver loads, then `.deps/onnxruntime/`); else the plugin's own search of the system.

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
