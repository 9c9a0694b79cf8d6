//! Probing what this machine can do: GPUs, driver and CUDA versions, NVDEC capabilities per codec and bit depth,
//! NVENC (by really opening a session, in [`nvenc`]), and the CPU. Everything NVIDIA is loaded at run time, so a
//! machine without a driver gets a probe with no GPUs and one line of reason per missing capability. The result is
//! data ([`crate::machine::MachineProbe`]); policy is `plan`'s job.

mod nvenc;

use crate::machine::{DecodeCap, GpuInfo, MachineProbe, NvencStatus};
use std::ffi::{c_int, c_uint, c_void};

/// What to probe; the CLI sets these from its switches (`VIDEOFORGE_NO_GPU`, `VIDEOFORGE_NO_NVDEC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Look for GPUs at all.
    pub gpus: bool,
    /// Probe NVDEC (off: every stream is decoded on the CPU).
    pub nvdec: bool,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions { gpus: true, nvdec: true }
    }
}

/// Probes this machine. Never fails: what cannot be probed is recorded in `notes`.
pub fn detect(options: ProbeOptions) -> MachineProbe {
    let mut probe = MachineProbe {
        cpu_cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        ..Default::default()
    };
    if !options.gpus {
        probe.notes.push("GPU probing disabled (VIDEOFORGE_NO_GPU)".into());
        return probe;
    }
    // cudarc panics when libcuda is missing: check first, and keep any surprise contained.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| probe_cuda(&mut probe, options))) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => probe.notes.push(e.0),
        Err(p) => probe.notes.push(format!("CUDA probe failed: {}", crate::retry::panic_message(p.as_ref()))),
    }
    probe
}

/// Why part of the machine could not be probed (recorded as a note; the probe itself never fails).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Unavailable(pub(crate) String);

fn probe_cuda(probe: &mut MachineProbe, options: ProbeOptions) -> Result<(), Unavailable> {
    use cudarc::driver::{result, sys};
    // SAFETY: only tries to dlopen the driver library.
    if !unsafe { sys::is_culib_present() } {
        return Err(Unavailable("no NVIDIA driver: libcuda.so not found, so no GPU, NVDEC or NVENC (CPU plan)".into()));
    }
    result::init().map_err(|e| Unavailable(format!("NVIDIA driver present but cuInit failed: {e:?} (CPU plan)")))?;
    let mut v: c_int = 0;
    // SAFETY: plain out-parameter call after cuInit.
    unsafe { sys::cuDriverGetVersion(&mut v) }
        .result()
        .map_err(|e| Unavailable(format!("cuDriverGetVersion failed: {e:?}")))?;
    probe.cuda_version = Some(format!("{}.{}", v / 1000, (v % 1000) / 10));
    probe.driver_version = read_driver_version();
    // cuDNN 9 and TensorRT 10 both encode major·10000 + minor·100 + patch.
    let dotted = |v: usize| format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100);
    probe.cudnn_version = library_version("libcudnn.so.9", b"cudnnGetVersion\0").map(dotted);
    probe.tensorrt_version = library_version("libnvinfer.so.10", b"getInferLibVersion\0").map(dotted);
    let count = result::device::get_count().map_err(|e| Unavailable(format!("cuDeviceGetCount failed: {e:?}")))?;
    if count == 0 {
        return Err(Unavailable("NVIDIA driver present but no GPU is visible (CPU plan)".into()));
    }
    let nvcuvid = if !options.nvdec {
        Err("NVDEC disabled (VIDEOFORGE_NO_NVDEC): decoding on the CPU".to_string())
    } else {
        crate::gpu::nvdec::load().map_err(|e| format!("NVDEC unavailable: {e}"))
    };
    let nvenc = nvenc::Nvenc::load();
    if let Err(e) = &nvcuvid {
        probe.notes.push(e.clone());
    }
    for i in 0..count {
        let ctx = match cudarc::driver::CudaContext::new(i as usize) {
            Ok(c) => c,
            Err(e) => {
                probe.notes.push(format!("GPU {i}: cannot create a context: {e:?}"));
                // A device another process has filled is still there: it is listed (without NVDEC), so the job is
                // planned as asked and its files fail as transient (out of memory) rather than the job as invalid.
                if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
                    probe.gpus.extend(without_context(i));
                }
                continue;
            }
        };
        let name = ctx.name().unwrap_or_else(|_| "unknown".into());
        let uuid = ctx.uuid().map(|u| format_uuid(&u.bytes)).unwrap_or_default();
        let (maj, min) = ctx.compute_capability().unwrap_or((0, 0));
        let (free, total) = ctx.mem_get_info().unwrap_or((0, 0));
        let nvdec = match &nvcuvid {
            Ok(()) => {
                // Unbound, the capability queries below fail and report NVDEC as unsupported.
                ctx.bind_to_thread().ok();
                nvdec_caps()
            }
            Err(_) => Vec::new(),
        };
        let nvenc = match &nvenc {
            Ok(lib) => lib.try_open(ctx.cu_ctx() as *mut c_void),
            Err(e) => NvencStatus { available: false, detail: e.0.clone() },
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

/// What the driver says about device `i` without a context (name, UUID, compute capability, memory): for a device
/// whose memory another process holds.
fn without_context(i: c_int) -> Option<GpuInfo> {
    use cudarc::driver::{result::device, sys::CUdevice_attribute as A};
    let dev = device::get(i).ok()?;
    // SAFETY: plain queries on a device handle from cuDeviceGet, after cuInit.
    let (total, major, minor) = unsafe {
        let attr = |a| device::get_attribute(dev, a).unwrap_or(0);
        (
            device::total_mem(dev).ok()?,
            attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
            attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
        )
    };
    Some(GpuInfo {
        index: i as u32,
        name: device::get_name(dev).unwrap_or_else(|_| "unknown".into()),
        uuid: device::get_uuid(dev).map(|u| format_uuid(&u.bytes)).unwrap_or_default(),
        compute_capability: format!("{major}.{minor}"),
        vram_total: total as u64,
        vram_free: 0,
        nvdec: Vec::new(),
        nvenc: NvencStatus { available: false, detail: "not probed: the device is out of memory".into() },
    })
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
                min_width: c.as_ref().map_or(0, |c| u32::from(c.min_width)),
                min_height: c.as_ref().map_or(0, |c| u32::from(c.min_height)),
                max_width: c.as_ref().map_or(0, |c| c.max_width),
                max_height: c.as_ref().map_or(0, |c| c.max_height),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_never_fails_and_explains_missing_gpu() {
        let p = detect(ProbeOptions::default());
        assert!(p.cpu_cores >= 1);
        if p.gpus.is_empty() {
            assert!(!p.notes.is_empty(), "a machine without GPUs must say why");
        }
    }
}
