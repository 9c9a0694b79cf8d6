//! What this machine can do: GPUs, driver and CUDA versions, NVDEC capabilities per codec and bit depth, NVENC
//! (by really opening a session), and the CPU. Everything NVIDIA is loaded at run time, so a machine without a
//! driver gets a probe with no GPUs and one line of reason per missing capability. Policy is `plan`'s job.

use serde::{Deserialize, Serialize};
use std::ffi::{c_int, c_uint, c_void};

/// Everything the planner needs to know about the machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineProbe {
    /// Logical CPU cores.
    pub cpu_cores: usize,
    /// NVIDIA driver version (`580.159`), when a driver is present.
    pub driver_version: Option<String>,
    /// CUDA driver API version (`13.0`), when a driver is present.
    pub cuda_version: Option<String>,
    /// cuDNN version (`9.10.2`), when `libcudnn.so.9` loads (ONNX Runtime's CUDA provider uses it).
    pub cudnn_version: Option<String>,
    /// TensorRT version (`10.9.0`), when `libnvinfer.so.10` loads.
    pub tensorrt_version: Option<String>,
    /// The GPUs found.
    pub gpus: Vec<GpuInfo>,
    /// Why GPU features are missing, one line each (empty when everything was found).
    pub notes: Vec<String>,
}

/// One GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// CUDA ordinal.
    pub index: u32,
    /// Marketing name (`NVIDIA H100 80GB HBM3`).
    pub name: String,
    /// `GPU-xxxxxxxx-...`.
    pub uuid: String,
    /// Compute capability major.minor (`9.0`).
    pub compute_capability: String,
    /// Total device memory in bytes.
    pub vram_total: u64,
    /// Free device memory in bytes at probe time (not part of the plan: it changes).
    pub vram_free: u64,
    /// Hardware decoder capabilities, one entry per codec and bit depth probed.
    pub nvdec: Vec<DecodeCap>,
    /// Whether an NVENC session really opened, and why not.
    pub nvenc: NvencStatus,
}

/// NVDEC support for one codec at one bit depth (4:2:0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodeCap {
    /// `h264`, `hevc`, `vp9`, `av1`, `mpeg2`.
    pub codec: String,
    /// 8, 10 or 12.
    pub bit_depth: u8,
    /// Whether the decoder supports it.
    pub supported: bool,
    /// Number of NVDEC engines that can decode it.
    pub engines: u32,
    /// Largest coded width.
    pub max_width: u32,
    /// Largest coded height.
    pub max_height: u32,
}

/// The result of trying to open an NVENC session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvencStatus {
    /// A session opened and was closed again.
    pub available: bool,
    /// Why not (library missing, `NV_ENC_ERR_UNSUPPORTED_DEVICE`, ...), or the API version that worked.
    pub detail: String,
}

impl MachineProbe {
    /// Probes this machine. Never fails: what cannot be probed is recorded in `notes`.
    pub fn detect() -> MachineProbe {
        let mut probe = MachineProbe {
            cpu_cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            ..Default::default()
        };
        if std::env::var_os("VIDEOFORGE_NO_GPU").is_some() {
            probe.notes.push("GPU probing disabled by VIDEOFORGE_NO_GPU".into());
            return probe;
        }
        // cudarc panics when libcuda is missing: check first, and keep any surprise contained.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| probe_cuda(&mut probe))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => probe.notes.push(e),
            Err(p) => probe.notes.push(format!("CUDA probe failed: {}", crate::error::panic_message(p.as_ref()))),
        }
        probe
    }

    /// A machine with no GPU, for tests and `--device cpu`.
    pub fn cpu_only(cpu_cores: usize) -> MachineProbe {
        MachineProbe { cpu_cores, notes: vec!["CPU only was asked for".into()], ..Default::default() }
    }
}

fn probe_cuda(probe: &mut MachineProbe) -> Result<(), String> {
    use cudarc::driver::{result, sys};
    // SAFETY: only tries to dlopen the driver library.
    if !unsafe { sys::is_culib_present() } {
        return Err("no NVIDIA driver: libcuda.so not found, so no GPU, NVDEC or NVENC (CPU plan)".into());
    }
    result::init().map_err(|e| format!("NVIDIA driver present but cuInit failed: {e:?} (CPU plan)"))?;
    let mut v: c_int = 0;
    // SAFETY: plain out-parameter call after cuInit.
    unsafe { sys::cuDriverGetVersion(&mut v) }.result().map_err(|e| format!("cuDriverGetVersion failed: {e:?}"))?;
    probe.cuda_version = Some(format!("{}.{}", v / 1000, (v % 1000) / 10));
    probe.driver_version = read_driver_version();
    // cuDNN 9 and TensorRT 10 both encode major·10000 + minor·100 + patch.
    let dotted = |v: usize| format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100);
    probe.cudnn_version = library_version("libcudnn.so.9", b"cudnnGetVersion\0").map(dotted);
    probe.tensorrt_version = library_version("libnvinfer.so.10", b"getInferLibVersion\0").map(dotted);
    let count = result::device::get_count().map_err(|e| format!("cuDeviceGetCount failed: {e:?}"))?;
    if count == 0 {
        return Err("NVIDIA driver present but no GPU is visible (CPU plan)".into());
    }
    let nvcuvid = if std::env::var_os("VIDEOFORGE_NO_NVDEC").is_some() {
        Err("NVDEC disabled by VIDEOFORGE_NO_NVDEC (decoding on the CPU)".to_string())
    } else {
        crate::gpu::nvdec::load().map_err(|e| format!("NVDEC unavailable: {e}"))
    };
    let nvenc = Nvenc::load();
    if let Err(e) = &nvcuvid {
        probe.notes.push(e.clone());
    }
    for i in 0..count {
        let ctx = match cudarc::driver::CudaContext::new(i as usize) {
            Ok(c) => c,
            Err(e) => {
                probe.notes.push(format!("GPU {i}: cannot create a context: {e:?}"));
                continue;
            }
        };
        let name = ctx.name().unwrap_or_else(|_| "unknown".into());
        let uuid = ctx.uuid().map(|u| format_uuid(&u.bytes)).unwrap_or_default();
        let (maj, min) = ctx.compute_capability().unwrap_or((0, 0));
        let (free, total) = ctx.mem_get_info().unwrap_or((0, 0));
        let nvdec = match &nvcuvid {
            Ok(()) => {
                let _ = ctx.bind_to_thread();
                nvdec_caps()
            }
            Err(_) => Vec::new(),
        };
        let nvenc = match &nvenc {
            Ok(lib) => lib.try_open(ctx.cu_ctx() as *mut c_void),
            Err(e) => NvencStatus { available: false, detail: e.clone() },
        };
        probe.gpus.push(GpuInfo {
            index: i as u32,
            name,
            uuid,
            compute_capability: format!("{maj}.{min}"),
            vram_total: total as u64,
            vram_free: free as u64,
            nvdec,
            nvenc,
        });
    }
    Ok(())
}

/// Calls a library's `version()`-style function (no arguments, an integer back), if the library loads.
fn library_version(lib: &str, symbol: &[u8]) -> Option<usize> {
    // SAFETY: loading an NVIDIA library and calling its version getter, which takes no arguments and only returns
    // a number (cudnnGetVersion returns size_t, getInferLibVersion int32: the low bits are the same on x86-64).
    unsafe {
        let l = libloading::Library::new(lib).ok()?;
        let f = l.get::<unsafe extern "C" fn() -> usize>(symbol).ok()?;
        let v = f() & 0xffff_ffff;
        Some(v)
    }
}

fn read_driver_version() -> Option<String> {
    let s = std::fs::read_to_string("/proc/driver/nvidia/version").ok()?;
    // "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  Thu ..."
    s.lines()
        .next()?
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.'))
        .map(str::to_string)
}

fn format_uuid(b: &[std::ffi::c_char; 16]) -> String {
    let h: Vec<String> = b.iter().map(|x| format!("{:02x}", *x as u8)).collect();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

/// NVDEC's limits for the codecs videoforge can feed it, 4:2:0, at 8 and 10 bits. Needs a current context.
fn nvdec_caps() -> Vec<DecodeCap> {
    const CODECS: [(&str, c_uint); 5] = [("mpeg2", 1), ("h264", 4), ("hevc", 8), ("vp9", 10), ("av1", 11)];
    let mut out = Vec::new();
    for (name, id) in CODECS {
        for depth in [8u8, 10] {
            let c = crate::gpu::nvdec::decoder_caps(id, depth).ok().flatten();
            out.push(DecodeCap {
                codec: name.into(),
                bit_depth: depth,
                supported: c.is_some(),
                engines: c.as_ref().map_or(0, |c| u32::from(c.num_nvdecs)),
                max_width: c.as_ref().map_or(0, |c| c.max_width),
                max_height: c.as_ref().map_or(0, |c| c.max_height),
            });
        }
    }
    out
}

/// `libnvidia-encode`, loaded at run time, only to find out whether a session opens.
struct Nvenc {
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
    fn load() -> Result<Nvenc, String> {
        // SAFETY: loading the NVIDIA driver's own library.
        let lib = unsafe { libloading::Library::new("libnvidia-encode.so.1") }
            .map_err(|e| format!("NVENC unavailable: libnvidia-encode.so.1 not loadable ({e})"))?;
        // SAFETY: symbol signatures from nvEncodeAPI.h.
        unsafe {
            let max_version = *lib
                .get::<unsafe extern "C" fn(*mut u32) -> c_int>(b"NvEncodeAPIGetMaxSupportedVersion\0")
                .map_err(|e| format!("NVENC unavailable: {e}"))?;
            let create_instance = *lib
                .get::<unsafe extern "C" fn(*mut NvEncFunctionList) -> c_int>(b"NvEncodeAPICreateInstance\0")
                .map_err(|e| format!("NVENC unavailable: {e}"))?;
            Ok(Nvenc { _lib: lib, max_version, create_instance })
        }
    }

    /// Opens and closes a session on a CUDA context. NVML is not trusted: on the H100 it reports encoder
    /// capacity while this answers `NV_ENC_ERR_UNSUPPORTED_DEVICE`.
    fn try_open(&self, cu_ctx: *mut c_void) -> NvencStatus {
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
    fn probe_never_fails_and_explains_missing_gpu() {
        let p = MachineProbe::detect();
        assert!(p.cpu_cores >= 1);
        if p.gpus.is_empty() {
            assert!(!p.notes.is_empty(), "a machine without GPUs must say why");
        }
    }

    #[test]
    fn struct_layouts_match_the_sdk() {
        assert_eq!(std::mem::size_of::<NvEncOpenSessionParams>(), 1552);
    }
}
