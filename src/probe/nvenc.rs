//! NVENC, probed by opening a session: `libnvidia-encode` loaded at run time, only to find out whether a session
//! opens (NVML is not trusted: on the H100 it reports encoder capacity while the session open answers
//! `NV_ENC_ERR_UNSUPPORTED_DEVICE`).

use crate::machine::NvencStatus;
use std::ffi::{c_int, c_void};

/// `libnvidia-encode`, loaded at run time, only to find out whether a session opens.
pub(super) struct Nvenc {
    _lib: libloading::Library,
    max_version: unsafe extern "C" fn(*mut u32) -> c_int,
    create_instance: unsafe extern "C" fn(*mut NvEncFunctionList) -> c_int,
}

/// `NV_ENCODE_API_FUNCTION_LIST`: version, reserved, then function pointers; `nvEncOpenEncodeSessionEx` is the
/// 30th and `nvEncDestroyEncoder` the 28th (0-based 29 and 27). The tail is padding the driver may fill.
#[repr(C)]
struct NvEncFunctionList {
    version: u32,
    reserved: u32,
    functions: [*mut c_void; 320],
}

/// `NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS`.
#[repr(C)]
struct NvEncOpenSessionParams {
    version: u32,
    device_type: u32,
    device: *mut c_void,
    reserved: *mut c_void,
    api_version: u32,
    reserved1: [u32; 253],
    reserved2: [*mut c_void; 64],
}

impl Nvenc {
    pub(super) fn load() -> Result<Nvenc, super::Unavailable> {
        // SAFETY: loading the NVIDIA driver's own library.
        let lib = unsafe { libloading::Library::new("libnvidia-encode.so.1") }
            .map_err(|e| super::Unavailable(format!("NVENC unavailable: libnvidia-encode.so.1 not loadable ({e})")))?;
        // SAFETY: symbol signatures from nvEncodeAPI.h.
        unsafe {
            let max_version = *lib
                .get::<unsafe extern "C" fn(*mut u32) -> c_int>(b"NvEncodeAPIGetMaxSupportedVersion\0")
                .map_err(|e| super::Unavailable(format!("NVENC unavailable: {e}")))?;
            let create_instance = *lib
                .get::<unsafe extern "C" fn(*mut NvEncFunctionList) -> c_int>(b"NvEncodeAPICreateInstance\0")
                .map_err(|e| super::Unavailable(format!("NVENC unavailable: {e}")))?;
            Ok(Nvenc { _lib: lib, max_version, create_instance })
        }
    }

    /// Opens and closes a session on a CUDA context. NVML is not trusted: on the H100 it reports encoder
    /// capacity while this answers `NV_ENC_ERR_UNSUPPORTED_DEVICE`.
    pub(super) fn try_open(&self, cu_ctx: *mut c_void) -> NvencStatus {
        let no = |detail: String| NvencStatus { available: false, detail };
        let mut max = 0u32;
        // SAFETY: out-parameter call.
        if unsafe { (self.max_version)(&mut max) } != 0 {
            return no("NvEncodeAPIGetMaxSupportedVersion failed".into());
        }
        let (major, minor) = (max >> 4, max & 0xf);
        let api = major | (minor << 24);
        let struct_version = |v: u32| api | (v << 16) | (0x7 << 28);
        let mut list =
            NvEncFunctionList { version: struct_version(2), reserved: 0, functions: [std::ptr::null_mut(); 320] };
        // SAFETY: list is large enough for any SDK's function list.
        let rc = unsafe { (self.create_instance)(&mut list) };
        if rc != 0 {
            return no(format!("NvEncodeAPICreateInstance failed ({})", nvenc_status(rc)));
        }
        let open = list.functions[29];
        let destroy = list.functions[27];
        if open.is_null() {
            return no("nvEncOpenEncodeSessionEx missing from the function list".into());
        }
        let mut params = NvEncOpenSessionParams {
            version: struct_version(1),
            device_type: 1, // NV_ENC_DEVICE_TYPE_CUDA
            device: cu_ctx,
            reserved: std::ptr::null_mut(),
            api_version: api,
            reserved1: [0; 253],
            reserved2: [std::ptr::null_mut(); 64],
        };
        let mut encoder: *mut c_void = std::ptr::null_mut();
        // SAFETY: function pointers come from the driver's table with these signatures.
        unsafe {
            let open: unsafe extern "C" fn(*mut NvEncOpenSessionParams, *mut *mut c_void) -> c_int =
                std::mem::transmute(open);
            let rc = open(&mut params, &mut encoder);
            if rc != 0 {
                return no(format!("nvEncOpenEncodeSessionEx: {} (API {major}.{minor})", nvenc_status(rc)));
            }
            if !destroy.is_null() && !encoder.is_null() {
                let destroy: unsafe extern "C" fn(*mut c_void) -> c_int = std::mem::transmute(destroy);
                destroy(encoder);
            }
        }
        NvencStatus { available: true, detail: format!("session opened (API {major}.{minor})") }
    }
}

fn nvenc_status(rc: c_int) -> String {
    const NAMES: [&str; 11] = [
        "NV_ENC_SUCCESS",
        "NV_ENC_ERR_NO_ENCODE_DEVICE",
        "NV_ENC_ERR_UNSUPPORTED_DEVICE",
        "NV_ENC_ERR_INVALID_ENCODERDEVICE",
        "NV_ENC_ERR_INVALID_DEVICE",
        "NV_ENC_ERR_DEVICE_NOT_EXIST",
        "NV_ENC_ERR_INVALID_PTR",
        "NV_ENC_ERR_INVALID_EVENT",
        "NV_ENC_ERR_INVALID_PARAM",
        "NV_ENC_ERR_INVALID_CALL",
        "NV_ENC_ERR_OUT_OF_MEMORY",
    ];
    usize::try_from(rc)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("NVENCSTATUS {rc}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_layouts_match_the_sdk() {
        assert_eq!(std::mem::size_of::<NvEncOpenSessionParams>(), 1552);
    }
}
