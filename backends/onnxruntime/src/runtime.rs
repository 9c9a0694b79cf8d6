//! Finding and loading the ONNX Runtime shared library, once per process.
//!
//! `ort` keeps one library and one environment per process, so the first successful load wins; a later request
//! for a different library gets the loaded one and a warning.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::ep::ExecutionProvider;
use videoforge_backend_abi::*;

/// The loaded runtime.
pub(crate) struct Runtime {
    /// The process's ONNX Runtime environment.
    pub env: ort::environment::Environment,
    /// Where the library was loaded from.
    pub path: PathBuf,
    /// Its version (`1.32.0`).
    pub version: String,
    /// Built with the CUDA execution provider.
    pub cuda: bool,
    /// Built with the TensorRT execution provider.
    pub tensorrt: bool,
}

static RUNTIME: Mutex<Option<&'static Runtime>> = Mutex::new(None);

const INSTALL_HINT: &str = "run scripts/setup.sh to install it into .deps/ (or set ORT_DYLIB_PATH, or the job's \
                            model.runtime, to a libonnxruntime.so)";

fn missing(msg: String) -> PluginFailure {
    PluginFailure::new(VF_STATUS_LIBRARY_MISSING, msg)
}

/// The loaded runtime, loading it on first use from `explicit` or the usual places.
pub(crate) fn get(explicit: Option<&Path>) -> Result<&'static Runtime, PluginFailure> {
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = *slot {
        if let Some(p) = explicit {
            if !p.is_file() {
                return Err(missing(format!("ONNX Runtime library {} not found; {INSTALL_HINT}", p.display())));
            }
        }
        return Ok(rt);
    }
    let path = locate(explicit)?;
    let rt: &'static Runtime = Box::leak(Box::new(load(&path)?));
    *slot = Some(rt);
    Ok(rt)
}

/// Where to look, in order: the host's explicit path (the host resolves `ORT_DYLIB_PATH`, the bundle and the
/// checkout's `.deps/`), next to this plugin and in its parent folder (the bundle's `lib/`), `.deps/onnxruntime/`
/// under the current directory and its parents, then system library folders. No path fixed at build time: a
/// bundle must never quietly load the library of the checkout it was built in.
fn locate(explicit: Option<&Path>) -> Result<PathBuf, PluginFailure> {
    const NAME: &str = "libonnxruntime.so";
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(missing(format!("ONNX Runtime library {} (from the job) not found; {INSTALL_HINT}", p.display())))
        };
    }
    let mut candidates = Vec::new();
    if let Some(dir) = own_dir() {
        candidates.push(dir.join(NAME));
        if let Some(parent) = dir.parent() {
            candidates.push(parent.join(NAME));
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        candidates.extend(cwd.ancestors().map(|d| d.join(".deps/onnxruntime").join(NAME)));
    }
    for d in ["/usr/local/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/opt/onnxruntime/lib"] {
        candidates.push(Path::new(d).join(NAME));
    }
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(missing(format!(
        "ONNX Runtime (libonnxruntime.so) not found: it is not in any of: {}; {INSTALL_HINT}",
        looked.join(", ")
    )))
}

/// The folder this plugin was loaded from (found with `dladdr` on one of its own functions).
fn own_dir() -> Option<PathBuf> {
    // SAFETY: `Dl_info` is a plain C struct of pointers and integers, for which all zeros is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `dladdr` only reads the address and fills `info`.
    let ok = unsafe { libc::dladdr(own_dir as *const libc::c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: `dli_fname` is a NUL-terminated path owned by the dynamic loader.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let p = PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes()));
    p.parent().map(Path::to_path_buf)
}

/// Reads the library's version without `ort` (which panics on some failures) and checks it is an ONNX Runtime.
fn version_of(path: &Path) -> Result<String, PluginFailure> {
    // SAFETY: loading ONNX Runtime runs its initialisers, which is what we are about to do anyway.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| {
        missing(format!(
            "cannot load ONNX Runtime from {}: {e} (a dependency missing? a CUDA build needs the CUDA and cuDNN \
             libraries on LD_LIBRARY_PATH); {INSTALL_HINT}",
            path.display()
        ))
    })?;
    type GetBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release.
    let get: libloading::Symbol<GetBase> = unsafe { lib.get(b"OrtGetApiBase\0") }.map_err(|_| {
        missing(format!("{} is not ONNX Runtime (it does not export OrtGetApiBase); {INSTALL_HINT}", path.display()))
    })?;
    // SAFETY: the function takes no arguments and returns a static table.
    let base = unsafe { get() };
    if base.is_null() {
        return Err(missing(format!("{}: OrtGetApiBase returned null", path.display())));
    }
    // SAFETY: a non-null base has a valid `GetVersionString` returning a static C string.
    let v = unsafe { std::ffi::CStr::from_ptr(((*base).GetVersionString)()) };
    // Keep the library loaded: ort dlopens it again (same handle) and it must never be unloaded under a session.
    std::mem::forget(lib);
    Ok(v.to_string_lossy().into_owned())
}

fn load(path: &Path) -> Result<Runtime, PluginFailure> {
    let version = version_of(path)?;
    let builder =
        ort::init_from(path).map_err(|e| missing(format!("cannot load ONNX Runtime: {e}; {INSTALL_HINT}")))?;
    let env = builder.with_name("videoforge").build().map_err(|e| {
        PluginFailure::new(VF_STATUS_RUNTIME, format!("cannot create the ONNX Runtime environment: {e}"))
    })?;
    let cuda = <ort::ep::CUDA as ExecutionProvider>::is_available().unwrap_or(false);
    let tensorrt = <ort::ep::TensorRT as ExecutionProvider>::is_available().unwrap_or(false);
    Ok(Runtime { env, path: path.to_path_buf(), version, cuda, tensorrt })
}
