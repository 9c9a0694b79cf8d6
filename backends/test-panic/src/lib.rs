//! A backend plugin that speaks the ABI and panics on purpose, to prove that a plugin's panic never unwinds into
//! the host but comes back as a `PanicRecovered` error. `model_create` panics, unless the model path ends in
//! `panic-in-run`: then it loads a fake x2 model whose `model_run` panics.

use videoforge_backend_abi::*;

static VTABLE: VfBackendVTable = VfBackendVTable {
    struct_size: std::mem::size_of::<VfBackendVTable>() as u32,
    abi_version: VF_ABI_VERSION,
    plugin_info: Some(plugin_info),
    capabilities: Some(capabilities),
    model_create: Some(model_create),
    model_run: Some(model_run),
    model_destroy: Some(model_destroy),
};

/// The entry symbol (see [`VfEntryFn`]).
///
/// # Safety
/// `plugin_abi_version` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn videoforge_backend_entry(
    host_abi_version: u32,
    plugin_abi_version: *mut u32,
) -> *const VfBackendVTable {
    if !plugin_abi_version.is_null() {
        // SAFETY: non-null and writable by the caller's contract.
        unsafe { *plugin_abi_version = VF_ABI_VERSION };
    }
    if host_abi_version == VF_ABI_VERSION {
        &VTABLE
    } else {
        std::ptr::null()
    }
}

unsafe extern "C" fn plugin_info(out: *mut VfPluginInfo, err: *mut VfErrorBuf) -> VfStatus {
    // SAFETY: the host passes valid pointers.
    unsafe {
        guard(err, || {
            let out = out.as_mut().ok_or_else(|| PluginFailure::new(VF_STATUS_INVALID_ARGUMENT, "out is null"))?;
            out.abi_version = VF_ABI_VERSION;
            write_fixed(&mut out.name, "test-panic");
            write_fixed(&mut out.version, env!("CARGO_PKG_VERSION"));
            Ok(())
        })
    }
}

unsafe extern "C" fn capabilities(
    _options: *const VfRuntimeOptions,
    out: *mut VfCapabilities,
    err: *mut VfErrorBuf,
) -> VfStatus {
    // SAFETY: the host passes valid pointers.
    unsafe {
        guard(err, || {
            let out = out.as_mut().ok_or_else(|| PluginFailure::new(VF_STATUS_INVALID_ARGUMENT, "out is null"))?;
            out.devices = VF_CAP_DEVICE_CPU;
            out.precisions = VF_CAP_PRECISION_F32;
            out.execution_providers = VF_CAP_EP_CPU;
            write_fixed(&mut out.library_version, "test-panic (no runtime)");
            Ok(())
        })
    }
}

struct Fake;

unsafe extern "C" fn model_create(
    options: *const VfModelOptions,
    out_model: *mut *mut VfModel,
    out_info: *mut VfModelInfo,
    err: *mut VfErrorBuf,
) -> VfStatus {
    // SAFETY: the host passes valid pointers.
    unsafe {
        guard(err, || {
            let path = options.as_ref().and_then(|o| read_cstr(o.model_path)).unwrap_or_default().into_owned();
            if !path.ends_with("panic-in-run") {
                panic!("test-panic plugin: deliberate panic in model_create ({path})");
            }
            let info = out_info.as_mut().ok_or_else(|| PluginFailure::new(VF_STATUS_INVALID_ARGUMENT, "no info"))?;
            info.dtype = VF_DTYPE_F32;
            info.scale = 2;
            info.execution_provider = VF_EP_CPU;
            info.input_shape = [1, 3, -1, -1];
            info.output_shape = [1, 3, -1, -1];
            write_fixed(&mut info.input_name, "input");
            write_fixed(&mut info.output_name, "output");
            *out_model = Box::into_raw(Box::new(Fake)) as *mut VfModel;
            Ok(())
        })
    }
}

unsafe extern "C" fn model_run(
    _model: *mut VfModel,
    _input: *const VfTensor,
    _output: *const VfTensor,
    err: *mut VfErrorBuf,
) -> VfStatus {
    // SAFETY: the host passes a valid error buffer.
    unsafe { guard(err, || panic!("test-panic plugin: deliberate panic in model_run")) }
}

unsafe extern "C" fn model_destroy(model: *mut VfModel) {
    if !model.is_null() {
        // SAFETY: made by Box::into_raw in model_create.
        drop(unsafe { Box::from_raw(model as *mut Fake) });
    }
}
