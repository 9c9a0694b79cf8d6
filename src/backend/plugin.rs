//! Loading a plugin library, checking its ABI version, and calling it safely.

use std::ffi::{c_char, CString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use videoforge_backend_abi::*;

use super::error::BackendError;
use super::tile::{self, TileSpec};
use super::types::{DeviceTensor, FrameModel, ModelInfo, ModelOptions, PluginInfo};
use crate::codec::ExecutionProvider;
use crate::codec::{Device, Precision};

/// The library and its function table; shared by the plugin and every model opened from it, so that the code
/// stays mapped while any of them lives.
struct Inner {
    vtable: VfBackendVTable,
    name: String,
    // Dropped last: the table's function pointers point into it.
    _lib: libloading::Library,
}

/// A loaded plugin library.
pub struct Plugin {
    inner: Arc<Inner>,
    info: PluginInfo,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("info", &self.info).finish()
    }
}

/// An error buffer the plugin writes into.
struct ErrBuf {
    data: Vec<c_char>,
    abi: VfErrorBuf,
}

impl ErrBuf {
    fn new() -> Box<ErrBuf> {
        let mut b = Box::new(ErrBuf { data: vec![0; VF_TEXT_LEN], abi: VfErrorBuf::new_zeroed() });
        b.abi.capacity = b.data.len() as u32;
        b.abi.data = b.data.as_mut_ptr();
        b
    }
    fn ptr(&mut self) -> *mut VfErrorBuf {
        // A reused buffer must not show an earlier call's message.
        if let Some(c) = self.data.first_mut() {
            *c = 0;
        }
        &mut self.abi
    }
    fn message(&self) -> String {
        let m = read_fixed(&self.data);
        if m.is_empty() {
            "no message".into()
        } else {
            m
        }
    }
}

impl Inner {
    /// Turns a status into a result, with the plugin's message.
    fn check(&self, status: VfStatus, err: &ErrBuf) -> Result<(), BackendError> {
        if status == VF_STATUS_OK {
            return Ok(());
        }
        let plugin = self.name.clone();
        let message = err.message();
        Err(match status {
            VF_STATUS_OK => return Ok(()),
            VF_STATUS_PANIC => BackendError::PanicRecovered { plugin, message },
            VF_STATUS_LIBRARY_MISSING => BackendError::LibraryMissing { plugin, message },
            VF_STATUS_NOT_FOUND => BackendError::ModelNotFound { plugin, message },
            VF_STATUS_MODEL_CONTRACT => BackendError::Contract { plugin, message },
            VF_STATUS_UNSUPPORTED => BackendError::Unsupported { plugin, message },
            VF_STATUS_OUT_OF_MEMORY => BackendError::OutOfMemory { plugin, message },
            VF_STATUS_INVALID_ARGUMENT => BackendError::InvalidArgument { plugin, message },
            VF_STATUS_RUNTIME => BackendError::Runtime { plugin, message },
            other => BackendError::Runtime { plugin, message: format!("unknown status {other}: {message}") },
        })
    }

    fn missing_fn(&self, what: &str) -> BackendError {
        BackendError::Runtime { plugin: self.name.clone(), message: format!("the plugin's table has no `{what}`") }
    }
}

fn cstring(p: &Path) -> Result<CString, BackendError> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| BackendError::InvalidArgument {
        plugin: String::new(),
        message: format!("path {} contains a NUL byte", p.display()),
    })
}

impl Plugin {
    /// Loads the plugin at `path`, checks it speaks this host's ABI, and asks what it and its runtime can do.
    /// A runtime library that cannot be found is not an error here (a job may name one): see
    /// [`PluginInfo::library_error`].
    pub fn load(path: &Path) -> Result<Plugin, BackendError> {
        Self::load_with(path, None)
    }

    /// [`Plugin::load`], with the runtime library the plugin should use (`None`: the plugin's own search).
    pub fn load_with(path: &Path, runtime: Option<&Path>) -> Result<Plugin, BackendError> {
        Self::load_inner(path, VF_ABI_VERSION, runtime)
    }

    /// [`Plugin::load`] asking for a given ABI version: lets tests exercise the version check. Not for
    /// production use.
    #[doc(hidden)]
    pub fn load_with_abi(path: &Path, abi_version: u32) -> Result<Plugin, BackendError> {
        Self::load_inner(path, abi_version, None)
    }

    fn load_inner(path: &Path, abi_version: u32, runtime: Option<&Path>) -> Result<Plugin, BackendError> {
        if !path.is_file() {
            return Err(BackendError::NotFound { path: path.to_path_buf(), searched: String::new() });
        }
        // SAFETY: loading a library runs its initialisers; plugins are trusted code the user installed.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| BackendError::Dlopen { path: path.to_path_buf(), message: e.to_string() })?;
        let symbol = String::from_utf8_lossy(&VF_ENTRY_SYMBOL[..VF_ENTRY_SYMBOL.len() - 1]).into_owned();
        // SAFETY: the symbol has the ABI's entry type by the plugin contract.
        let entry: libloading::Symbol<VfEntryFn> = unsafe { lib.get(VF_ENTRY_SYMBOL) }
            .map_err(|_| BackendError::MissingSymbol { path: path.to_path_buf(), symbol })?;
        let mut found = 0u32;
        // SAFETY: the entry point takes a version and an out pointer, and must not unwind.
        let table = unsafe { entry(abi_version, &mut found) };
        if table.is_null() {
            return Err(BackendError::BadVersion { path: path.to_path_buf(), found, expected: abi_version });
        }
        // SAFETY: non-null; the table is static in the plugin and lives as long as the library.
        let vtable = unsafe { *table };
        if !size_ok::<VfBackendVTable>(vtable.struct_size) || vtable.abi_version != abi_version {
            return Err(BackendError::BadVersion {
                path: path.to_path_buf(),
                found: vtable.abi_version,
                expected: abi_version,
            });
        }
        let mut inner = Inner { vtable, name: path.display().to_string(), _lib: lib };

        let mut err = ErrBuf::new();
        let mut pinfo = VfPluginInfo::new_zeroed();
        let f = vtable.plugin_info.ok_or_else(|| inner.missing_fn("plugin_info"))?;
        // SAFETY: valid out pointers; the plugin catches its panics.
        inner.check(unsafe { f(&mut pinfo, err.ptr()) }, &err)?;
        inner.name = read_fixed(&pinfo.name);

        let mut info = PluginInfo {
            name: inner.name.clone(),
            version: read_fixed(&pinfo.version),
            library_version: String::new(),
            library_path: None,
            library_error: None,
            execution_providers: Vec::new(),
            abi_version: pinfo.abi_version,
            path: path.to_path_buf(),
        };
        let inner = Arc::new(inner);
        match capabilities(&inner, runtime) {
            Ok(caps) => fill_caps(&mut info, &caps),
            Err(e @ BackendError::PanicRecovered { .. }) => return Err(e),
            Err(e) => info.library_error = Some(e.to_string()),
        }
        Ok(Plugin { inner, info })
    }

    /// What the plugin is and what its runtime can do.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// Loads a model, checked against the IO contract.
    pub fn open_model(&self, opts: &ModelOptions) -> Result<LoadedModel, BackendError> {
        let inner = &self.inner;
        let plugin = inner.name.clone();
        let model_path = cstring(&opts.model_path)?;
        let runtime = opts.runtime_library.as_deref().map(cstring).transpose()?;
        let cache = opts.cache_dir.as_deref().map(cstring).transpose()?;
        let provider_options = opts
            .provider_options
            .as_deref()
            .map(|s| {
                CString::new(s).map_err(|_| BackendError::InvalidArgument {
                    plugin: plugin.clone(),
                    message: "provider options contain a NUL byte".into(),
                })
            })
            .transpose()?;
        let mut o = VfModelOptions::new_zeroed();
        o.precision = match opts.precision {
            Precision::Auto => VF_PRECISION_AUTO,
            Precision::F32 => VF_PRECISION_F32,
            Precision::F16 => VF_PRECISION_F16,
        };
        (o.device_kind, o.device_index) = match opts.device {
            Device::Cpu => (VF_DEVICE_CPU, 0),
            Device::Cuda(i) => (VF_DEVICE_CUDA, i),
        };
        o.execution_provider = match opts.execution_provider {
            None => VF_EP_AUTO,
            Some(ExecutionProvider::Cpu) => VF_EP_CPU,
            Some(ExecutionProvider::Cuda) => VF_EP_CUDA,
            Some(ExecutionProvider::Tensorrt) => VF_EP_TENSORRT,
        };
        o.tile_width = opts.tile;
        o.tile_height = opts.tile;
        o.batch = opts.batch;
        o.threads = opts.threads;
        o.model_path = model_path.as_ptr();
        o.runtime_path = runtime.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        o.cache_dir = cache.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        o.cuda_stream = opts.cuda_stream as *mut std::ffi::c_void;
        o.provider_options = provider_options.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());

        let create = inner.vtable.model_create.ok_or_else(|| inner.missing_fn("model_create"))?;
        // Checked here so that a model never exists without the functions that run and free it.
        inner.vtable.model_run.ok_or_else(|| inner.missing_fn("model_run"))?;
        inner.vtable.model_destroy.ok_or_else(|| inner.missing_fn("model_destroy"))?;
        let mut handle: *mut VfModel = std::ptr::null_mut();
        let mut mi = VfModelInfo::new_zeroed();
        let mut err = ErrBuf::new();
        // SAFETY: all pointers are valid for the call; the strings outlive it.
        inner.check(unsafe { create(&o, &mut handle, &mut mi, err.ptr()) }, &err)?;
        let bad = |message: String| BackendError::Runtime { plugin: plugin.clone(), message };
        if handle.is_null() {
            return Err(bad("model_create succeeded but returned no model".into()));
        }
        // From here on the handle is owned, so that an error below still frees it.
        let mut model = LoadedModel {
            inner: Arc::clone(inner),
            handle,
            info: ModelInfo {
                input_name: read_fixed(&mi.input_name),
                output_name: read_fixed(&mi.output_name),
                dtype: if mi.dtype == VF_DTYPE_F16 { Precision::F16 } else { Precision::F32 },
                scale: mi.scale,
                fixed_size: None,
                execution_provider: match mi.execution_provider {
                    VF_EP_CUDA => ExecutionProvider::Cuda,
                    VF_EP_TENSORRT => ExecutionProvider::Tensorrt,
                    _ => ExecutionProvider::Cpu,
                },
                warnings: read_fixed(&mi.warnings).lines().filter(|l| !l.is_empty()).map(String::from).collect(),
            },
            tile: TileSpec { tile: opts.tile as usize, overlap: opts.tile_overlap as usize },
            err: ErrBuf::new(),
        };
        if mi.scale == 0 || (mi.dtype != VF_DTYPE_F16 && mi.dtype != VF_DTYPE_F32) {
            return Err(bad(format!("model_create reported scale {} and dtype {}", mi.scale, mi.dtype)));
        }
        let [_, _, h, w] = mi.input_shape;
        if h > 0 && w > 0 {
            model.info.fixed_size = Some((w as u32, h as u32));
        }
        Ok(model)
    }
}

fn capabilities(inner: &Inner, runtime: Option<&Path>) -> Result<VfCapabilities, BackendError> {
    let f = inner.vtable.capabilities.ok_or_else(|| inner.missing_fn("capabilities"))?;
    let rt = runtime.map(cstring).transpose()?;
    let mut o = VfRuntimeOptions::new_zeroed();
    o.library_path = rt.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    let mut caps = VfCapabilities::new_zeroed();
    let mut err = ErrBuf::new();
    // SAFETY: valid pointers for the call.
    inner.check(unsafe { f(&o, &mut caps, err.ptr()) }, &err)?;
    Ok(caps)
}

fn fill_caps(info: &mut PluginInfo, caps: &VfCapabilities) {
    info.library_version = read_fixed(&caps.library_version);
    let p = read_fixed(&caps.library_path);
    info.library_path = (!p.is_empty()).then(|| PathBuf::from(p));
    for (bit, ep) in [
        (VF_CAP_EP_CPU, ExecutionProvider::Cpu),
        (VF_CAP_EP_CUDA, ExecutionProvider::Cuda),
        (VF_CAP_EP_TENSORRT, ExecutionProvider::Tensorrt),
    ] {
        if caps.execution_providers & bit != 0 {
            info.execution_providers.push(ep);
        }
    }
}

/// A model opened from a plugin. Keeps the plugin library loaded.
pub struct LoadedModel {
    inner: Arc<Inner>,
    handle: *mut VfModel,
    info: ModelInfo,
    tile: TileSpec,
    /// The error buffer of every run, allocated once (the steady state allocates nothing per frame).
    err: Box<ErrBuf>,
}

// SAFETY: the ABI lets a model handle move between threads as long as one thread uses it at a time, which `&mut
// self` on `upscale` guarantees; the function table is immutable.
unsafe impl Send for LoadedModel {}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel").field("info", &self.info).finish()
    }
}

impl LoadedModel {
    /// What the model is.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Runs one packed f32 NCHW frame (N = 1) of `width` x `height` through the plugin, without tiling.
    pub fn run_whole(
        &mut self,
        input: &[f32],
        width: usize,
        height: usize,
        output: &mut [f32],
    ) -> Result<(), BackendError> {
        let s = self.info.scale as usize;
        let plugin = &self.inner.name;
        if input.len() != 3 * width * height || output.len() != 3 * width * s * height * s {
            return Err(BackendError::InvalidArgument {
                plugin: plugin.clone(),
                message: format!(
                    "a {width}x{height} frame needs {} input and {} output values, got {} and {}",
                    3 * width * height,
                    3 * width * s * height * s,
                    input.len(),
                    output.len()
                ),
            });
        }
        let mut i = VfTensor::new_zeroed();
        (i.memory, i.dtype, i.n, i.c, i.h, i.w) = (VF_MEMORY_HOST, VF_DTYPE_F32, 1, 3, height as u32, width as u32);
        i.data = input.as_ptr() as *mut std::ffi::c_void;
        let mut o = i;
        (o.h, o.w) = ((height * s) as u32, (width * s) as u32);
        o.data = output.as_mut_ptr() as *mut std::ffi::c_void;
        let run = self.inner.vtable.model_run.ok_or_else(|| self.inner.missing_fn("model_run"))?;
        // SAFETY: the buffers hold the sizes the tensors describe (checked above) and outlive the call.
        self.inner.check(unsafe { run(self.handle, &i, &o, self.err.ptr()) }, &self.err)
    }
}

impl LoadedModel {
    /// Runs one NCHW tensor in CUDA device memory into another, on the model's device, without tiling and without
    /// touching the host: `output` must be `[N, 3, H*scale, W*scale]` of `input`'s `[N, 3, H, W]`, both of the
    /// model's element type ([`ModelInfo::dtype`]), tightly packed, on the model's device.
    ///
    /// Ordering: when both tensors' `stream` is the stream the model was opened with
    /// ([`ModelOptions::cuda_stream`]), the run is only enqueued on it, like a kernel launch: the output is ready
    /// for work later on that stream, and the host must synchronise that stream before reading it on the CPU or
    /// freeing the buffers. Otherwise the plugin waits for the tensors' streams before the run and for the run
    /// before returning, so the output is complete on return.
    ///
    /// The pointers must be live device allocations of the sizes described: they are not (and cannot be) checked.
    pub fn run_device(&mut self, input: DeviceTensor, output: DeviceTensor) -> Result<(), BackendError> {
        // The plugin's name is cloned only on error: this runs once per frame and the steady state allocates nothing.
        let name = &self.inner.name;
        let invalid = |message: String| BackendError::InvalidArgument { plugin: name.clone(), message };
        let tensor = |t: &DeviceTensor, what: &str| -> Result<VfTensor, BackendError> {
            let dtype = match t.dtype {
                Precision::F16 => VF_DTYPE_F16,
                Precision::F32 => VF_DTYPE_F32,
                Precision::Auto => return Err(invalid(format!("{what}.dtype must be F16 or F32, not Auto"))),
            };
            let [n, c, h, w] = t.shape;
            let dim = |d: i64| u32::try_from(d).ok().filter(|&d| d > 0);
            let (Some(n), Some(h), Some(w), 3) = (dim(n), dim(h), dim(w), c) else {
                return Err(invalid(format!(
                    "{what} has shape {:?}; expected NCHW [N, 3, H, W] with N, H, W >= 1",
                    t.shape
                )));
            };
            if t.ptr == 0 {
                return Err(invalid(format!("{what}.ptr is null")));
            }
            let mut v = VfTensor::new_zeroed();
            (v.memory, v.dtype, v.n, v.c, v.h, v.w) = (VF_MEMORY_CUDA, dtype, n, 3, h, w);
            v.device_index = t.device;
            v.data = t.ptr as usize as *mut std::ffi::c_void;
            v.pitch_bytes = t.pitch_bytes as u64;
            v.cuda_stream = t.stream as *mut std::ffi::c_void;
            Ok(v)
        };
        let (i, o) = (tensor(&input, "input")?, tensor(&output, "output")?);
        let s = self.info.scale;
        if o.n != i.n || o.h != i.h * s || o.w != i.w * s {
            return Err(invalid(format!(
                "output has shape {:?} but a {:?} input at scale {s} gives [{}, 3, {}, {}]",
                output.shape,
                input.shape,
                i.n,
                i.h * s,
                i.w * s
            )));
        }
        if let Some((fw, fh)) = self.info.fixed_size {
            if (i.w, i.h) != (fw, fh) {
                return Err(invalid(format!(
                    "the model takes {fw}x{fh} inputs only and run_device does not tile; the input is {}x{}",
                    i.w, i.h
                )));
            }
        }
        let run = self.inner.vtable.model_run.ok_or_else(|| self.inner.missing_fn("model_run"))?;
        // SAFETY: the tensors describe device memory the caller guarantees (see above); the structs outlive the call.
        self.inner.check(unsafe { run(self.handle, &i, &o, self.err.ptr()) }, &self.err)
    }
}

impl FrameModel for LoadedModel {
    fn scale(&self) -> u32 {
        self.info.scale
    }

    fn upscale(
        &mut self,
        input: &[f32],
        width: usize,
        height: usize,
        output: &mut Vec<f32>,
    ) -> Result<(), BackendError> {
        let s = self.info.scale as usize;
        output.clear();
        output.resize(3 * width * s * height * s, 0.0);
        let spec = match self.info.fixed_size {
            // A fixed-size model is always fed tiles of its size.
            Some((fw, fh)) => TileSpec { tile: fw.min(fh) as usize, overlap: self.tile.overlap },
            None => self.tile,
        };
        if self.info.fixed_size.is_none() && !spec.needs_tiling(width, height) {
            return self.run_whole(input, width, height, output);
        }
        let fixed = self.info.fixed_size.map(|(w, h)| (w as usize, h as usize));
        tile::upscale_tiled(input, width, height, s, spec, fixed, output, |t, tw, th, out| {
            self.run_whole(t, tw, th, out)
        })
    }
}

impl Drop for LoadedModel {
    fn drop(&mut self) {
        if let Some(destroy) = self.inner.vtable.model_destroy {
            // SAFETY: the handle came from `model_create` and is freed once; the plugin catches its panics.
            unsafe { destroy(self.handle) };
        }
    }
}

/// The plugin file name for a backend name: `onnxruntime` → `libvideoforge_backend_onnxruntime.so`.
pub fn plugin_file_name(name: &str) -> String {
    format!(
        "{}videoforge_backend_{}{}",
        std::env::consts::DLL_PREFIX,
        name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

/// Folders searched for plugins, in order: `extra` (the CLI passes `VIDEOFORGE_PLUGIN_DIR`), the executable's
/// folder, its parent (cargo's test binaries live in `target/<profile>/deps`), and `<exe>/../lib/videoforge` (the
/// release bundle).
pub fn plugin_search_dirs(extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = extra.iter().filter(|p| !p.as_os_str().is_empty()).cloned().collect();
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        if let Some(parent) = exe_dir.parent() {
            dirs.push(exe_dir.clone());
            dirs.push(parent.to_path_buf());
            dirs.push(parent.join("lib/videoforge"));
        } else {
            dirs.push(exe_dir);
        }
    }
    dirs.dedup();
    dirs
}

/// The plugin file for a backend name, from the search folders (`extra` first).
pub fn find_plugin(name: &str, extra: &[PathBuf]) -> Result<PathBuf, BackendError> {
    let file = plugin_file_name(name);
    let dirs = plugin_search_dirs(extra);
    dirs.iter().map(|d| d.join(&file)).find(|p| p.is_file()).ok_or_else(|| BackendError::NotFound {
        path: PathBuf::from(&file),
        searched: format!(
            "; searched: {} (set VIDEOFORGE_PLUGIN_DIR, or build it with `cargo build --workspace`)",
            dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
    })
}

/// Every `libvideoforge_backend_*.so` in the search folders (first one of each name wins).
pub fn discover_plugins(extra: &[PathBuf]) -> Vec<PathBuf> {
    let prefix = format!("{}videoforge_backend_", std::env::consts::DLL_PREFIX);
    let mut found: Vec<PathBuf> = Vec::new();
    for dir in plugin_search_dirs(extra) {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut here: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(std::env::consts::DLL_SUFFIX) && p.is_file())
            })
            .collect();
        here.sort();
        for p in here {
            if !found.iter().any(|f| f.file_name() == p.file_name()) {
                found.push(p);
            }
        }
    }
    found
}
