//! The C ABI entry point: `videoforge_backend_entry` and the five functions of the table, each behind
//! `catch_unwind` (through the ABI crate's `guard`). Maps this crate's errors to ABI statuses.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use videoforge_backend_abi::*;

use crate::error::Error;
use crate::graph::IoType;
use crate::nvrtc::Nvrtc;
use crate::runtime::{driver, Engine, Memory, MemoryMut};

/// The plugin's name as the host knows it.
pub const PLUGIN_NAME: &str = "fused-cuda";

static VTABLE: VfBackendVTable = VfBackendVTable {
    struct_size: std::mem::size_of::<VfBackendVTable>() as u32,
    abi_version: VF_ABI_VERSION,
    plugin_info: Some(plugin_info),
    capabilities: Some(capabilities),
    model_create: Some(model_create),
    model_run: Some(model_run),
    model_destroy: Some(model_destroy),
};

/// The plugin's one exported symbol (see [`VfEntryFn`]).
///
/// # Safety
/// `plugin_abi_version` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn videoforge_backend_entry(
    host_abi_version: u32,
    plugin_abi_version: *mut u32,
) -> *const VfBackendVTable {
    if !plugin_abi_version.is_null() {
        // SAFETY: checked non-null; the caller guarantees it is writable.
        unsafe { *plugin_abi_version = VF_ABI_VERSION };
    }
    if host_abi_version == VF_ABI_VERSION {
        &VTABLE
    } else {
        std::ptr::null()
    }
}

/// The ABI status and message for one of our errors.
pub fn failure(e: Error) -> PluginFailure {
    let status = match &e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => VF_STATUS_NOT_FOUND,
        Error::Io { .. } | Error::Cache { .. } | Error::Compile { .. } | Error::Nvrtc { .. } => VF_STATUS_RUNTIME,
        Error::Decode { .. } | Error::ExternalData { .. } | Error::Unsupported { .. } | Error::Graph(_) => {
            VF_STATUS_MODEL_CONTRACT
        }
        Error::NvrtcMissing(_) | Error::DriverMissing(_) => VF_STATUS_LIBRARY_MISSING,
        Error::Cuda { oom: true, .. } => VF_STATUS_OUT_OF_MEMORY,
        Error::Cuda { .. } => VF_STATUS_RUNTIME,
        Error::BadTensor(_) => VF_STATUS_INVALID_ARGUMENT,
    };
    PluginFailure::new(status, format!("fused-cuda: {e}"))
}

fn invalid(msg: impl Into<String>) -> PluginFailure {
    PluginFailure::new(VF_STATUS_INVALID_ARGUMENT, msg)
}

fn unsupported(msg: impl Into<String>) -> PluginFailure {
    PluginFailure::new(VF_STATUS_UNSUPPORTED, msg)
}

/// NVRTC, loaded once per process (the first successful load wins).
static NVRTC: Mutex<Option<&'static Nvrtc>> = Mutex::new(None);

fn nvrtc(explicit: Option<&Path>) -> Result<&'static Nvrtc, PluginFailure> {
    let mut slot = NVRTC.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = *slot {
        return Ok(n);
    }
    let n: &'static Nvrtc = Box::leak(Box::new(Nvrtc::load(explicit).map_err(failure)?));
    *slot = Some(n);
    Ok(n)
}

/// Checks a pointer to a struct from the host: not null and at least as large as this plugin knows it.
///
/// # Safety
/// `p` is null or points to a `T` (or a later, larger version) whose first field is `struct_size: u32`.
unsafe fn checked<'a, T>(p: *const T, what: &str) -> Result<&'a T, PluginFailure> {
    if p.is_null() {
        return Err(invalid(format!("{what} is null")));
    }
    // SAFETY: non-null; every ABI struct starts with its `struct_size: u32`.
    let size = unsafe { *(p as *const u32) };
    if !size_ok::<T>(size) {
        return Err(invalid(format!("{what}.struct_size is {size}, expected at least {}", std::mem::size_of::<T>())));
    }
    // SAFETY: non-null and large enough.
    Ok(unsafe { &*p })
}

fn opt_path(p: *const std::ffi::c_char) -> Option<PathBuf> {
    // SAFETY: the host passes null or a NUL-terminated string valid for the call.
    unsafe { read_cstr(p) }.map(|s| PathBuf::from(s.into_owned())).filter(|p| !p.as_os_str().is_empty())
}

unsafe extern "C" fn plugin_info(out: *mut VfPluginInfo, err: *mut VfErrorBuf) -> VfStatus {
    // SAFETY: `err` and `out` come from the host, which keeps the ABI contract.
    unsafe {
        guard(err, || {
            checked(out as *const VfPluginInfo, "plugin_info.out")?;
            let out = &mut *out;
            out.abi_version = VF_ABI_VERSION;
            write_fixed(&mut out.name, PLUGIN_NAME);
            write_fixed(&mut out.version, env!("CARGO_PKG_VERSION"));
            Ok(())
        })
    }
}

unsafe extern "C" fn capabilities(
    options: *const VfRuntimeOptions,
    out: *mut VfCapabilities,
    err: *mut VfErrorBuf,
) -> VfStatus {
    // SAFETY: pointers come from the host, which keeps the ABI contract.
    unsafe {
        guard(err, || {
            let explicit = match options.is_null() {
                true => None,
                false => opt_path(checked(options, "options")?.library_path),
            };
            checked(out as *const VfCapabilities, "capabilities.out")?;
            let out = &mut *out;
            let drv = driver::driver_version().map_err(failure)?;
            let n = nvrtc(explicit.as_deref())?;
            out.devices = VF_CAP_DEVICE_CUDA;
            out.precisions = VF_CAP_PRECISION_F16;
            out.execution_providers = VF_CAP_EP_CUDA;
            let (maj, min) = n.version();
            let v = format!(
                "NVRTC {maj}.{min} (CUDA driver {}.{}), kernels {}",
                drv / 1000,
                drv % 1000 / 10,
                crate::kernels::sources_hash()
            );
            write_fixed(&mut out.library_version, &v);
            write_fixed(&mut out.library_path, &n.path().display().to_string());
            Ok(())
        })
    }
}

fn create(o: &VfModelOptions, info: &mut VfModelInfo) -> Result<Engine, PluginFailure> {
    // The graph is read first, so that a host without a GPU can still ask whether a model is one this backend
    // runs: a CPU device then gets UNSUPPORTED for a graph it could run, MODEL_CONTRACT (node named) otherwise.
    let model_path = opt_path(o.model_path).ok_or_else(|| invalid("model_path is null"))?;
    if !model_path.is_file() {
        return Err(PluginFailure::new(VF_STATUS_NOT_FOUND, format!("model file {} not found", model_path.display())));
    }
    let in_file = |e| {
        let mut f = failure(e);
        f.message = format!("{}: {}", model_path.display(), f.message);
        f
    };
    let net = crate::graph::load(&model_path).map_err(in_file)?;
    // The plan's checks need no GPU either. Those of SM 8.0 (whose kernels every GPU this backend takes has) refuse
    // a graph the kernels cannot lay out on any device, so `auto` takes ONNX Runtime for it instead of failing.
    crate::runtime::plan::plan(&net, 80, None).map_err(in_file)?;
    if o.device_kind != VF_DEVICE_CUDA {
        return Err(unsupported(format!(
            "fused-cuda runs on CUDA GPUs only (the graph, {} x{}, is one it runs)",
            net.family, net.scale
        )));
    }
    if o.precision == VF_PRECISION_F32 {
        return Err(unsupported("fused-cuda computes in FP16; ask for precision f16 or auto"));
    }
    if o.execution_provider != VF_EP_AUTO && o.execution_provider != VF_EP_CUDA {
        return Err(unsupported("fused-cuda is its own CUDA execution; ask for execution provider auto or cuda"));
    }
    driver::driver_version().map_err(failure)?;
    let nv = nvrtc(opt_path(o.runtime_path).as_deref())?;
    let cache_dir = opt_path(o.cache_dir);
    let (family, scale, io) = (net.family.to_string(), net.scale, net.io);
    let (input_name, output_name) = (net.input_name.clone(), net.output_name.clone());
    let engine = Engine::new(net, o.device_index, nv, cache_dir, None).map_err(failure)?;
    info.dtype = match io {
        IoType::F32 => VF_DTYPE_F32,
        IoType::F16 => VF_DTYPE_F16,
    };
    info.scale = scale as u32;
    info.execution_provider = VF_EP_CUDA;
    info.input_shape = [-1, 3, -1, -1];
    info.output_shape = [-1, 3, -1, -1];
    write_fixed(&mut info.input_name, &input_name);
    write_fixed(&mut info.output_name, &output_name);
    let mut warnings = Vec::new();
    if !matches!(engine.sm(), 80 | 86 | 89 | 90) {
        warnings.push(format!(
            "sm_{} has no tuned kernel configuration; using the nearest lower one ({family})",
            engine.sm()
        ));
    }
    write_fixed(&mut info.warnings, &warnings.join("\n"));
    Ok(engine)
}

unsafe extern "C" fn model_create(
    options: *const VfModelOptions,
    out_model: *mut *mut VfModel,
    out_info: *mut VfModelInfo,
    err: *mut VfErrorBuf,
) -> VfStatus {
    // SAFETY: pointers come from the host, which keeps the ABI contract.
    unsafe {
        guard(err, || {
            let opts = checked(options, "options")?;
            if out_model.is_null() {
                return Err(invalid("out_model is null"));
            }
            checked(out_info as *const VfModelInfo, "out_info")?;
            let engine = create(opts, &mut *out_info)?;
            *out_model = Box::into_raw(Box::new(engine)) as *mut VfModel;
            Ok(())
        })
    }
}

fn run(engine: &mut Engine, i: &VfTensor, o: &VfTensor) -> Result<(), PluginFailure> {
    let want = match engine.network().io {
        IoType::F32 => VF_DTYPE_F32,
        IoType::F16 => VF_DTYPE_F16,
    };
    let scale = engine.network().scale as u32;
    if i.dtype != want || o.dtype != want {
        return Err(invalid(format!(
            "tensor dtypes {} / {}; this model's IO is {want} (the model file's own type)",
            i.dtype, o.dtype
        )));
    }
    if i.c != 3 || o.c != 3 || i.n != o.n || o.h != i.h * scale || o.w != i.w * scale {
        return Err(invalid(format!(
            "input {}x{}x{}x{} and output {}x{}x{}x{} do not fit scale {scale}",
            i.n, i.c, i.h, i.w, o.n, o.c, o.h, o.w
        )));
    }
    if i.h == 0 || i.w == 0 || i.n == 0 || i.data.is_null() || o.data.is_null() {
        return Err(invalid("empty tensor or null data"));
    }
    let eb = engine.io_bytes();
    let (n, h, w) = (i.n as usize, i.h as usize, i.w as usize);
    let in_bytes = n * 3 * h * w * eb;
    let out_bytes = in_bytes * (scale * scale) as usize;
    let mut stream = std::ptr::null_mut();
    let input = match i.memory {
        // SAFETY: the host guarantees `data` holds the packed tensor its shape describes.
        VF_MEMORY_HOST => Memory::Host(unsafe { std::slice::from_raw_parts(i.data as *const u8, in_bytes) }),
        VF_MEMORY_CUDA => {
            stream = i.cuda_stream;
            Memory::Device { ptr: i.data as u64, pitch: i.pitch_bytes as usize }
        }
        m => return Err(invalid(format!("input memory kind {m}"))),
    };
    let output = match o.memory {
        // SAFETY: as above, and the host's output buffer is writable and not aliased during the call.
        VF_MEMORY_HOST => MemoryMut::Host(unsafe { std::slice::from_raw_parts_mut(o.data as *mut u8, out_bytes) }),
        VF_MEMORY_CUDA => {
            if stream.is_null() {
                stream = o.cuda_stream;
            }
            MemoryMut::Device { ptr: o.data as u64, pitch: o.pitch_bytes as usize }
        }
        m => return Err(invalid(format!("output memory kind {m}"))),
    };
    // SAFETY: the ABI says the tensors' stream is null or a stream of the device's primary context, valid for the
    // call and until the work it orders is done.
    let stream = unsafe { driver::StreamRef::from_raw(stream.cast()) };
    engine.run(n, h, w, input, output, stream).map_err(failure)
}

unsafe extern "C" fn model_run(
    model: *mut VfModel,
    input: *const VfTensor,
    output: *const VfTensor,
    err: *mut VfErrorBuf,
) -> VfStatus {
    // SAFETY: pointers come from the host, which keeps the ABI contract.
    unsafe {
        guard(err, || {
            if model.is_null() {
                return Err(invalid("model is null"));
            }
            let engine = &mut *(model as *mut Engine);
            run(engine, checked(input, "input")?, checked(output, "output")?)
        })
    }
}

unsafe extern "C" fn model_destroy(model: *mut VfModel) {
    if model.is_null() {
        return;
    }
    // A panic while dropping must not unwind into the host; there is nobody to tell, so it is swallowed.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: made by `Box::into_raw` in `model_create`; the host frees it once.
        drop(unsafe { Box::from_raw(model as *mut Engine) });
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> &'static VfBackendVTable {
        // SAFETY: a null out-pointer is allowed.
        let t = unsafe { videoforge_backend_entry(VF_ABI_VERSION, std::ptr::null_mut()) };
        // SAFETY: non-null for the right version; static.
        unsafe { t.as_ref() }.expect("vtable")
    }

    fn err_buf(buf: &mut [std::ffi::c_char]) -> VfErrorBuf {
        let mut e = VfErrorBuf::new_zeroed();
        e.capacity = buf.len() as u32;
        e.data = buf.as_mut_ptr();
        e
    }

    #[test]
    fn entry_refuses_other_abi_versions_and_names_itself() {
        // SAFETY: null out-pointer allowed.
        assert!(unsafe { videoforge_backend_entry(VF_ABI_VERSION + 1, std::ptr::null_mut()) }.is_null());
        let mut info = VfPluginInfo::new_zeroed();
        let mut buf = [0 as std::ffi::c_char; 256];
        let mut e = err_buf(&mut buf);
        // SAFETY: valid pointers.
        let st = unsafe { entry().plugin_info.expect("fn")(&mut info, &mut e) };
        assert_eq!(st, VF_STATUS_OK);
        assert_eq!(read_fixed(&info.name), "fused-cuda");
    }

    #[test]
    fn cpu_device_is_refused_as_unsupported_after_the_graph_and_its_plan_are_read() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let create = |model: &std::path::Path| {
            let mut o = VfModelOptions::new_zeroed();
            o.device_kind = VF_DEVICE_CPU;
            let path = std::ffi::CString::new(model.to_string_lossy().into_owned()).expect("path");
            o.model_path = path.as_ptr();
            let mut info = VfModelInfo::new_zeroed();
            let mut model = std::ptr::null_mut();
            let mut buf = [0 as std::ffi::c_char; 512];
            let mut e = err_buf(&mut buf);
            // SAFETY: valid pointers.
            let st = unsafe { entry().model_create.expect("fn")(&o, &mut model, &mut info, &mut e) };
            (st, read_fixed(&buf))
        };
        // A graph it runs: the answer says so, and why not here.
        let (st, msg) = create(&root.join("models/realesr-animevideov3-x2.onnx"));
        assert_eq!(st, VF_STATUS_UNSUPPORTED);
        assert_eq!(msg, "fused-cuda runs on CUDA GPUs only (the graph, SRVGGNetCompact (64 features, 16 body convs) x2, is one it runs)");
        // A graph it does not run: the node is named, whatever the device.
        let (st, msg) = create(&root.join("tests/fixtures/models/nhwc.onnx"));
        assert_eq!(st, VF_STATUS_MODEL_CONTRACT, "{msg}");
        // A graph it reads but whose plan it refuses (one conv, then a pixel shuffle): refused as a contract too.
        let (st, msg) = create(&root.join("tests/fixtures/models/nearest2x.onnx"));
        assert_eq!(st, VF_STATUS_MODEL_CONTRACT, "{msg}");
        assert!(msg.contains("at least two convs"), "{msg}");
        // A file that is not there.
        let (st, _) = create(&root.join("models/x.onnx"));
        assert_eq!(st, VF_STATUS_NOT_FOUND);
    }

    #[test]
    fn missing_driver_is_reported_as_a_missing_library() {
        if driver::driver_present() {
            eprintln!("skipped: this machine has a CUDA driver");
            return;
        }
        let mut caps = VfCapabilities::new_zeroed();
        let mut buf = [0 as std::ffi::c_char; 512];
        let mut e = err_buf(&mut buf);
        // SAFETY: valid pointers; null options allowed.
        let st = unsafe { entry().capabilities.expect("fn")(std::ptr::null(), &mut caps, &mut e) };
        assert_eq!(st, VF_STATUS_LIBRARY_MISSING);
        assert!(read_fixed(&buf).contains("CUDA driver not available"), "{}", read_fixed(&buf));
    }

    #[test]
    fn unsupported_graph_maps_to_model_contract() {
        let f = failure(crate::error::unsupported("Conv_12", "Conv", "dilations [2, 2] are not supported"));
        assert_eq!(f.status, VF_STATUS_MODEL_CONTRACT);
        assert_eq!(f.message, "fused-cuda: node \"Conv_12\" (op Conv): dilations [2, 2] are not supported");
    }
}
