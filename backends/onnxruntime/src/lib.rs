//! videoforge backend plugin for ONNX Runtime, reached through `ort` with `load-dynamic`.
//!
//! Owns: finding and loading `libonnxruntime.so` (once per process), choosing execution providers (CPU, CUDA,
//! TensorRT), checking a model against the IO contract at load time and running it on host buffers or on CUDA
//! device buffers through IO binding (`device.rs`). Everything is exposed through the C ABI of
//! `videoforge-backend-abi`; no `ort` type leaves this crate.

mod device;
mod model;
mod runtime;
mod tensor;

use std::ffi::c_char;

use videoforge_backend_abi::*;

/// The plugin's function table.
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

/// A step that failed, in words; the caller wraps it in a [`PluginFailure`] with the status that fits.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct StepError(pub(crate) String);

fn invalid(msg: impl Into<String>) -> PluginFailure {
    PluginFailure::new(VF_STATUS_INVALID_ARGUMENT, msg)
}

/// Checks a pointer to a struct from the host: not null and at least as large as this plugin knows it.
///
/// # Safety
/// `p` is null or points to a `T` (or a larger, later version of it) whose first field is `struct_size: u32`.
unsafe fn checked<'a, T>(p: *const T, what: &str) -> Result<&'a T, PluginFailure> {
    if p.is_null() {
        return Err(invalid(format!("{what} is null")));
    }
    // SAFETY: non-null; every ABI struct starts with its `struct_size: u32`.
    let size = unsafe { *(p as *const u32) };
    if !size_ok::<T>(size) {
        return Err(invalid(format!(
            "{what}.struct_size is {size}, expected at least {} (host built against an older ABI?)",
            std::mem::size_of::<T>()
        )));
    }
    // SAFETY: non-null and large enough.
    Ok(unsafe { &*p })
}

/// [`checked`] for a struct the plugin fills in.
///
/// # Safety
/// As for [`checked`], and `p` is valid for writes.
unsafe fn checked_mut<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, PluginFailure> {
    // SAFETY: forwarded from the caller.
    unsafe { checked(p as *const T, what)? };
    // SAFETY: checked above; the caller guarantees it is writable.
    Ok(unsafe { &mut *p })
}

unsafe extern "C" fn plugin_info(out: *mut VfPluginInfo, err: *mut VfErrorBuf) -> VfStatus {
    // SAFETY: `err` comes from the host, which keeps the ABI contract.
    unsafe {
        guard(err, || {
            let out = checked_mut(out, "plugin_info.out")?;
            out.abi_version = VF_ABI_VERSION;
            write_fixed(&mut out.name, "onnxruntime");
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
                false => read_cstr(checked(options, "options")?.library_path).map(|s| s.into_owned()),
            };
            let out = checked_mut(out, "capabilities.out")?;
            let rt = runtime::get(explicit.as_deref().map(std::path::Path::new))?;
            out.devices = VF_CAP_DEVICE_CPU;
            out.precisions = VF_CAP_PRECISION_F32 | VF_CAP_PRECISION_F16;
            out.execution_providers = VF_CAP_EP_CPU;
            if rt.cuda {
                out.devices |= VF_CAP_DEVICE_CUDA;
                out.execution_providers |= VF_CAP_EP_CUDA;
            }
            if rt.tensorrt {
                out.execution_providers |= VF_CAP_EP_TENSORRT;
            }
            write_fixed(&mut out.library_version, &format!("ONNX Runtime {}", rt.version));
            write_fixed(&mut out.library_path, &rt.path.display().to_string());
            Ok(())
        })
    }
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
            let info = checked_mut(out_info, "out_info")?;
            let model = model::Model::load(opts, info)?;
            *out_model = Box::into_raw(Box::new(model)) as *mut VfModel;
            Ok(())
        })
    }
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
            let model = &mut *(model as *mut model::Model);
            model.run(checked(input, "input")?, checked(output, "output")?)
        })
    }
}

unsafe extern "C" fn model_destroy(model: *mut VfModel) {
    if model.is_null() {
        return;
    }
    // A panic while dropping must not unwind into the host; there is nobody to tell, so it is swallowed.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the pointer was made by `Box::into_raw` in `model_create` and the host frees it once.
        drop(unsafe { Box::from_raw(model as *mut model::Model) });
    }));
}

/// A NUL-terminated C string from the host as UTF-8 (lossy).
pub(crate) fn opt_str(p: *const c_char) -> Option<String> {
    // SAFETY: the host passes null or a NUL-terminated string valid for the call.
    unsafe { read_cstr(p) }.map(|s| s.into_owned())
}
