//! The stable C ABI between videoforge (the host) and its inference backend plugins.
//!
//! `#[repr(C)]` types only. A plugin is a shared library exporting one symbol, [`VF_ENTRY_SYMBOL`], of type
//! [`VfEntryFn`]: the host passes the ABI version it speaks, the plugin writes the version it speaks and returns its
//! function table, or null when the two differ. Rules both sides keep:
//! - every struct starts with `struct_size`, set by whoever allocates it; the other side checks it is at least the
//!   size it knows, so fields can be appended without a version bump;
//! - every function returns a [`VfStatus`] and, on failure, writes a message into the host's [`VfErrorBuf`];
//! - nothing unwinds across the boundary: a plugin catches panics and returns [`VF_STATUS_PANIC`];
//! - handles are opaque and come in create/destroy pairs; a model handle may move between threads but is used by
//!   one thread at a time;
//! - strings the host passes in are NUL-terminated UTF-8; strings the plugin returns live in fixed arrays in
//!   host-owned structs (nothing to free).
//!
//! The C header `include/videoforge_backend.h` is generated from this file by cbindgen and checked for drift by
//! `tests/abi.rs` (regenerate: `VIDEOFORGE_BLESS=1 cargo test -p videoforge-backend-abi`).

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_void};

/// The ABI version this crate describes. Bump on any incompatible change.
pub const VF_ABI_VERSION: u32 = 1;

/// Name of the one symbol a plugin exports (NUL-terminated, for `dlsym`).
pub const VF_ENTRY_SYMBOL: &[u8] = b"videoforge_backend_entry\0";

/// Status code every entry point returns.
pub type VfStatus = i32;
/// Success.
pub const VF_STATUS_OK: VfStatus = 0;
/// A caller error: null pointer, bad `struct_size`, bad enum value, wrong buffer size.
pub const VF_STATUS_INVALID_ARGUMENT: VfStatus = 1;
/// A file (the model) does not exist.
pub const VF_STATUS_NOT_FOUND: VfStatus = 2;
/// A library the plugin needs (its runtime, a CUDA library) is missing or cannot be loaded.
pub const VF_STATUS_LIBRARY_MISSING: VfStatus = 3;
/// The model does not fit the IO contract (NCHW, RGB, f16/f32, one input, one output, integer scale).
pub const VF_STATUS_MODEL_CONTRACT: VfStatus = 4;
/// The request is valid but this plugin or its runtime cannot do it (device, execution provider, precision).
pub const VF_STATUS_UNSUPPORTED: VfStatus = 5;
/// The runtime failed while loading or running the model.
pub const VF_STATUS_RUNTIME: VfStatus = 6;
/// Out of (host or device) memory; retrying later may succeed.
pub const VF_STATUS_OUT_OF_MEMORY: VfStatus = 7;
/// The plugin panicked; the panic was caught at the boundary and the message is in the error buffer.
pub const VF_STATUS_PANIC: VfStatus = 8;

/// Element type of a tensor.
pub type VfDType = u32;
/// 32-bit float.
pub const VF_DTYPE_F32: VfDType = 1;
/// 16-bit IEEE float.
pub const VF_DTYPE_F16: VfDType = 2;

/// Precision a model is asked to run in.
pub type VfPrecision = u32;
/// Let the plugin choose (the model's own IO type).
pub const VF_PRECISION_AUTO: VfPrecision = 0;
/// 32-bit float.
pub const VF_PRECISION_F32: VfPrecision = 1;
/// 16-bit float.
pub const VF_PRECISION_F16: VfPrecision = 2;

/// Kind of device.
pub type VfDeviceKind = u32;
/// The CPU.
pub const VF_DEVICE_CPU: VfDeviceKind = 0;
/// A CUDA GPU, with an index.
pub const VF_DEVICE_CUDA: VfDeviceKind = 1;

/// Execution provider (for ONNX Runtime; other backends map these to their own notions).
pub type VfExecutionProvider = u32;
/// The best one for the device.
pub const VF_EP_AUTO: VfExecutionProvider = 0;
/// CPU.
pub const VF_EP_CPU: VfExecutionProvider = 1;
/// CUDA.
pub const VF_EP_CUDA: VfExecutionProvider = 2;
/// TensorRT.
pub const VF_EP_TENSORRT: VfExecutionProvider = 3;

/// Where a tensor's memory lives.
pub type VfMemoryKind = u32;
/// Host memory, packed NCHW.
pub const VF_MEMORY_HOST: VfMemoryKind = 0;
/// CUDA device memory: a device pointer, a row pitch in bytes and a stream.
pub const VF_MEMORY_CUDA: VfMemoryKind = 1;

/// Bit masks in [`VfCapabilities`].
pub const VF_CAP_DEVICE_CPU: u32 = 1;
/// CUDA devices.
pub const VF_CAP_DEVICE_CUDA: u32 = 2;
/// f32 precision.
pub const VF_CAP_PRECISION_F32: u32 = 1;
/// f16 precision.
pub const VF_CAP_PRECISION_F16: u32 = 2;
/// CPU execution provider.
pub const VF_CAP_EP_CPU: u32 = 1;
/// CUDA execution provider.
pub const VF_CAP_EP_CUDA: u32 = 2;
/// TensorRT execution provider.
pub const VF_CAP_EP_TENSORRT: u32 = 4;

/// Length of the fixed string fields (names, versions), NUL included.
pub const VF_NAME_LEN: usize = 128;
/// Length of the warnings text (newline-separated), NUL included.
pub const VF_TEXT_LEN: usize = 2048;

/// A host-owned buffer the plugin writes an error message into (UTF-8, NUL-terminated, truncated to fit).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VfErrorBuf {
    /// `size_of::<VfErrorBuf>()`.
    pub struct_size: u32,
    /// Capacity of `data` in bytes.
    pub capacity: u32,
    /// Where to write.
    pub data: *mut c_char,
}

/// Static facts about the plugin.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VfPluginInfo {
    /// `size_of::<VfPluginInfo>()`.
    pub struct_size: u32,
    /// ABI version the plugin speaks.
    pub abi_version: u32,
    /// Short name (`onnxruntime`).
    pub name: [c_char; VF_NAME_LEN],
    /// The plugin's own version.
    pub version: [c_char; VF_NAME_LEN],
}

/// Options for loading the runtime library a plugin wraps.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VfRuntimeOptions {
    /// `size_of::<VfRuntimeOptions>()`.
    pub struct_size: u32,
    /// Path of the runtime library to load, or null to search the plugin's usual places.
    pub library_path: *const c_char,
}

/// What the plugin's runtime can do, known once the runtime library is loaded.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VfCapabilities {
    /// `size_of::<VfCapabilities>()`.
    pub struct_size: u32,
    /// `VF_CAP_DEVICE_*` bits.
    pub devices: u32,
    /// `VF_CAP_PRECISION_*` bits.
    pub precisions: u32,
    /// `VF_CAP_EP_*` bits: execution providers the loaded runtime was built with.
    pub execution_providers: u32,
    /// Runtime library and version (`ONNX Runtime 1.32.0`), for the fingerprint.
    pub library_version: [c_char; VF_NAME_LEN],
    /// Where the runtime library was loaded from.
    pub library_path: [c_char; VF_TEXT_LEN],
}

/// Options for loading a model.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VfModelOptions {
    /// `size_of::<VfModelOptions>()`.
    pub struct_size: u32,
    /// A `VF_PRECISION_*` value.
    pub precision: VfPrecision,
    /// A `VF_DEVICE_*` value.
    pub device_kind: VfDeviceKind,
    /// CUDA device index (ignored for the CPU).
    pub device_index: u32,
    /// A `VF_EP_*` value.
    pub execution_provider: VfExecutionProvider,
    /// Tile width the host will send (0: whole frames of any size). A hint for engine building.
    pub tile_width: u32,
    /// Tile height the host will send (0: whole frames).
    pub tile_height: u32,
    /// Frames per run the host will send (a hint; 0 or 1 for one).
    pub batch: u32,
    /// Intra-op threads (0: the plugin's deterministic default).
    pub threads: u32,
    /// Model file, NUL-terminated UTF-8. Required.
    pub model_path: *const c_char,
    /// Runtime library to use, or null (see [`VfRuntimeOptions`]).
    pub runtime_path: *const c_char,
    /// Folder for compiled engines (TensorRT), or null for none.
    pub cache_dir: *const c_char,
    /// The `cudaStream_t` to run on, or null for the default stream.
    pub cuda_stream: *mut c_void,
    /// TensorRT builder workspace in bytes (0: the runtime's default).
    pub workspace_bytes: u64,
    /// Execution provider options as `key=value` pairs separated by commas (e.g. ONNX Runtime CUDA provider
    /// options), NUL-terminated UTF-8, or null for none. Appended after ABI 1's first release: read it only when
    /// `struct_size` covers it.
    pub provider_options: *const c_char,
}

/// What a loaded model is, as the plugin checked it against the IO contract.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VfModelInfo {
    /// `size_of::<VfModelInfo>()`.
    pub struct_size: u32,
    /// `VF_DTYPE_*` of the model's input and output.
    pub dtype: VfDType,
    /// Integer upscale factor.
    pub scale: u32,
    /// The `VF_EP_*` that runs the model.
    pub execution_provider: VfExecutionProvider,
    /// Input shape NCHW; -1 for a dynamic dimension.
    pub input_shape: [i64; 4],
    /// Output shape NCHW; -1 for a dynamic dimension.
    pub output_shape: [i64; 4],
    /// Input name.
    pub input_name: [c_char; VF_NAME_LEN],
    /// Output name.
    pub output_name: [c_char; VF_NAME_LEN],
    /// Warnings for the user, one per line (empty: none).
    pub warnings: [c_char; VF_TEXT_LEN],
}

/// A tensor the host passes in: NCHW with C = 3.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VfTensor {
    /// `size_of::<VfTensor>()`.
    pub struct_size: u32,
    /// A `VF_MEMORY_*` value.
    pub memory: VfMemoryKind,
    /// A `VF_DTYPE_*` value.
    pub dtype: VfDType,
    /// Batch.
    pub n: u32,
    /// Channels (3).
    pub c: u32,
    /// Height.
    pub h: u32,
    /// Width.
    pub w: u32,
    /// CUDA device index for device memory.
    pub device_index: u32,
    /// Host pointer or CUDA device pointer.
    pub data: *mut c_void,
    /// Bytes between rows for device memory (0: packed). Host memory is always packed.
    pub pitch_bytes: u64,
    /// `cudaStream_t` the data is ordered on (device memory), or null.
    pub cuda_stream: *mut c_void,
}

/// An opaque loaded model owned by the plugin (not `#[repr(C)]` on purpose: the header declares it incomplete).
pub struct VfModel {
    _private: [u8; 0],
}

/// The function table a plugin returns from its entry symbol. Static in the plugin: valid while it is loaded.
/// (Fields are spelled out as `Option<fn>` so that cbindgen writes them as nullable C function pointers.)
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VfBackendVTable {
    /// `size_of::<VfBackendVTable>()`.
    pub struct_size: u32,
    /// ABI version of this table.
    pub abi_version: u32,
    /// Returns static facts about the plugin.
    pub plugin_info: Option<unsafe extern "C" fn(out: *mut VfPluginInfo, err: *mut VfErrorBuf) -> VfStatus>,
    /// Loads (once per process) the runtime library and reports what it can do.
    pub capabilities: Option<
        unsafe extern "C" fn(
            options: *const VfRuntimeOptions,
            out: *mut VfCapabilities,
            err: *mut VfErrorBuf,
        ) -> VfStatus,
    >,
    /// Loads a model, checks it against the IO contract and describes it.
    pub model_create: Option<
        unsafe extern "C" fn(
            options: *const VfModelOptions,
            out_model: *mut *mut VfModel,
            out_info: *mut VfModelInfo,
            err: *mut VfErrorBuf,
        ) -> VfStatus,
    >,
    /// Runs the model: `output` must be `n x 3 x (h*scale) x (w*scale)` of the input, in memory the host owns.
    pub model_run: Option<
        unsafe extern "C" fn(
            model: *mut VfModel,
            input: *const VfTensor,
            output: *const VfTensor,
            err: *mut VfErrorBuf,
        ) -> VfStatus,
    >,
    /// Frees a model. Null is allowed.
    pub model_destroy: Option<unsafe extern "C" fn(model: *mut VfModel)>,
}

/// Type of the entry symbol: writes the ABI version the plugin speaks into `plugin_abi_version` (when not null)
/// and returns its table, or null when `host_abi_version` differs.
pub type VfEntryFn =
    unsafe extern "C" fn(host_abi_version: u32, plugin_abi_version: *mut u32) -> *const VfBackendVTable;

// ---------------------------------------------------------------------------------------------------------------
// Rust helpers for both sides (not part of the C header: they are not `#[repr(C)]` items).

/// Copies `s` into a fixed C string array, truncating at a UTF-8 boundary and always NUL-terminating.
pub fn write_fixed(dst: &mut [c_char], s: &str) {
    if dst.is_empty() {
        return;
    }
    let mut n = s.len().min(dst.len() - 1);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    for (d, b) in dst.iter_mut().zip(s.as_bytes()[..n].iter()) {
        *d = *b as c_char;
    }
    dst[n] = 0;
}

/// Reads a fixed C string array (up to its first NUL) as UTF-8, replacing invalid bytes.
pub fn read_fixed(src: &[c_char]) -> String {
    let bytes: Vec<u8> = src.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Writes `msg` into an error buffer, if there is one.
///
/// # Safety
/// `err` is null or points to a valid [`VfErrorBuf`] whose `data` has `capacity` writable bytes.
pub unsafe fn write_error(err: *mut VfErrorBuf, msg: &str) {
    // SAFETY: the caller guarantees `err` is null or valid.
    let Some(e) = (unsafe { err.as_mut() }) else { return };
    if e.data.is_null() || e.capacity == 0 || (e.struct_size as usize) < std::mem::size_of::<VfErrorBuf>() {
        return;
    }
    // SAFETY: `data` has `capacity` writable bytes.
    let dst = unsafe { std::slice::from_raw_parts_mut(e.data, e.capacity as usize) };
    write_fixed(dst, msg);
}

/// An all-zero value of a `#[repr(C)]` struct with its `struct_size` set: the way each side creates the structs it
/// owns.
pub trait Sized0: Sized {
    /// The zeroed value with `struct_size = size_of::<Self>()`.
    fn new_zeroed() -> Self;
}

macro_rules! sized0 {
    ($($t:ty),*) => {$(
        impl Sized0 for $t {
            fn new_zeroed() -> Self {
                // SAFETY: every field is an integer, an array of integers, a raw pointer or an Option of a function
                // pointer, for all of which all-zero bytes are a valid value.
                let mut v: Self = unsafe { std::mem::zeroed() };
                v.struct_size = std::mem::size_of::<Self>() as u32;
                v
            }
        }
    )*};
}
sized0!(
    VfErrorBuf,
    VfPluginInfo,
    VfRuntimeOptions,
    VfCapabilities,
    VfModelOptions,
    VfModelInfo,
    VfTensor,
    VfBackendVTable
);

/// Whether a struct the other side filled in is at least as large as this side's definition.
pub fn size_ok<T>(struct_size: u32) -> bool {
    struct_size as usize >= std::mem::size_of::<T>()
}

/// Reads a nullable NUL-terminated UTF-8 string from the other side.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that stays valid for `'a`.
pub unsafe fn read_cstr<'a>(p: *const c_char) -> Option<std::borrow::Cow<'a, str>> {
    if p.is_null() {
        None
    } else {
        // SAFETY: guaranteed by the caller.
        Some(unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_strings_truncate_at_char_boundaries_and_terminate() {
        let mut buf = [1 as c_char; 4];
        write_fixed(&mut buf, "héllo");
        assert_eq!(read_fixed(&buf), "hé");
        assert_eq!(buf[3], 0);
        let mut buf = [1 as c_char; 16];
        write_fixed(&mut buf, "ok");
        assert_eq!(read_fixed(&buf), "ok");
    }

    #[test]
    fn zeroed_structs_carry_their_size() {
        assert_eq!(VfModelInfo::new_zeroed().struct_size as usize, std::mem::size_of::<VfModelInfo>());
        assert!(size_ok::<VfTensor>(VfTensor::new_zeroed().struct_size));
        assert!(!size_ok::<VfTensor>(4));
    }
}

/// A failure a plugin reports: a status and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginFailure {
    /// A `VF_STATUS_*` value other than OK.
    pub status: VfStatus,
    /// What went wrong, for the user.
    pub message: String,
}

impl PluginFailure {
    /// A failure with a status and message.
    pub fn new(status: VfStatus, message: impl Into<String>) -> Self {
        PluginFailure { status, message: message.into() }
    }
}

/// Runs a plugin entry point's body so that nothing unwinds across the ABI: a panic becomes [`VF_STATUS_PANIC`]
/// with the panic's message, a failure its status and message, both written into `err`.
///
/// # Safety
/// `err` is null or a valid [`VfErrorBuf`] (see [`write_error`]).
pub unsafe fn guard(err: *mut VfErrorBuf, body: impl FnOnce() -> Result<(), PluginFailure>) -> VfStatus {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(())) => VF_STATUS_OK,
        Ok(Err(f)) => {
            // SAFETY: forwarded from the caller.
            unsafe { write_error(err, &f.message) };
            f.status
        }
        Err(payload) => {
            let msg = if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else {
                "unknown panic payload".to_string()
            };
            // SAFETY: forwarded from the caller.
            unsafe { write_error(err, &msg) };
            VF_STATUS_PANIC
        }
    }
}
