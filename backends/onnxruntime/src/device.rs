//! Running a model on CUDA device buffers through ONNX Runtime's IO binding, and the CUDA execution provider's
//! tuning.
//!
//! # Zero copy
//! A device tensor from the host is wrapped, not copied: `TensorRefMut::from_raw` with a CUDA `MemoryInfo` on the
//! model's device makes an `OrtValue` over the host's pointer (ORT does not own it), and it is bound with the C API's
//! `BindInput`/`BindOutput`. The input is bound through `ort::api().BindInput` directly rather than
//! `IoBinding::bind_input`: for a borrowed tensor, ort rc.15's `bind_input` first *clones* it (a device-to-device
//! copy through a private identity session that runs on its own stream, unordered with the host's stream), which
//! is both a wasted pass over the frame and a race. ORT's own `BindInput` keeps a same-device tensor as it is.
//!
//! # Synchronisation (what ORT requires)
//! ORT does not wait for anything at the start of `Run`: kernels go on the execution provider's compute stream
//! (`ModelOptions.cuda_stream` when the host gave one, else a stream ORT created). By default ORT synchronises that
//! stream before `Run` returns. So:
//! - every device tensor on a stream other than the EP's compute stream: that stream is synchronised
//!   (`cudaStreamSynchronize`) before the run, which orders both the producer of the input (read after write) and
//!   any earlier reader of the output buffer (write after read); the run then ends synchronised, so the output is
//!   complete when `model_run` returns and any stream may use it;
//! - every device tensor on the EP's compute stream (the fast path: the host created the model with
//!   `cuda_stream` = the stream it works on): no synchronisation at all, before or after (the run uses
//!   `disable_synchronize_execution_providers`); the output is *ordered on that stream*, not complete, when
//!   `model_run` returns, exactly like a kernel launch. ORT's arena may reuse its scratch memory for the next run,
//!   which is safe because that run is ordered on the same stream.
//!
//! `IoBinding::synchronize_inputs` is not used: ORT implements it as a device-wide synchronise of the EP, which
//! would also stall the decode and copy streams, and it does not order the host's stream before ORT's anyway.
//! `cudaStreamSynchronize` comes from the CUDA runtime ORT's CUDA provider has already loaded (found with
//! `RTLD_NOLOAD`, so it is the same copy), so this plugin still needs no CUDA at build time.
//!
//! # Layout
//! NCHW, tightly packed (`pitch_bytes` 0 or `w * element size`), element type exactly the model's (no conversion on
//! the device). Pitched rows are refused with a clear error for now: ORT tensors have no row stride, so supporting
//! them means a repacking kernel on the host side.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::OnceLock;

use half::f16;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, RunOptions, Session};
use ort::value::{DynValue, Shape, Tensor, TensorRefMut, ValueRefMut};
use ort::AsPointer;
use videoforge_backend_abi::*;

use crate::StepError;

/// Environment variable with CUDA execution provider options that override this plugin's defaults:
/// `key=value,key=value` with ONNX Runtime's CUDA provider option names (`prefer_nhwc`, `cudnn_conv_algo_search`,
/// `arena_extend_strategy`, `cudnn_conv_use_max_workspace`, `use_tf32`, ...).
/// Where users set the options: the CLI reads this variable and passes its value through the ABI.
pub(crate) const CUDA_OPTIONS_ENV: &str = "VIDEOFORGE_ORT_CUDA_OPTIONS";

/// The CUDA execution provider, tuned.
///
/// Measured with ONNX Runtime 1.31.1 on an H100, the FP16 realesr x2 model at 1920x1080 with IO bound on the device:
/// 35.0 fps with the defaults, 48.4 fps with `prefer_nhwc=1` and EXHAUSTIVE cuDNN convolution search (the layout is
/// what matters: EXHAUSTIVE is already ORT's default search, it is set here so the choice is explicit and
/// recorded). `arena_extend_strategy=kSameAsRequested` keeps the arena from doubling past what a frame needs, so the
/// VRAM budget the plan computed holds.
///
/// Determinism: cuDNN's forward convolution algorithms are deterministic each, and ORT caches the algorithm it
/// picks per input shape for the life of the session, so one session gives the same bytes for the same frame.
/// EXHAUSTIVE picks by timing, so a new session (another process) could in principle pick another algorithm for a
/// shape and round differently in the last bits. Measured (tests/backend_gpu.rs, H200, ORT 1.31.1, driver
/// 580.159.04, FP16 model at 64x48): repeated runs of one session and four fresh sessions all gave identical bytes,
/// with the defaults here and with `cudnn_conv_algo_search=HEURISTIC,prefer_nhwc=0`; large frames (where timings of
/// candidate algorithms are closer) were not checked. Where cross-process identity must be guaranteed, set
/// `cudnn_conv_algo_search=HEURISTIC` through [`CUDA_OPTIONS_ENV`]: the choice is then a function of shape, GPU and
/// cuDNN version alone, at some speed cost. The session's `deterministic_compute` (set in `model.rs`) does not
/// change the conv algorithm search, so no other option is changed here.
pub(crate) fn cuda_ep(device: i32, overrides: &[(String, String)]) -> ort::ep::CUDA {
    use ort::ep::ArbitrarilyConfigurableExecutionProvider;
    let mut cuda = ort::ep::CUDA::default()
        .with_device_id(device)
        .with_prefer_nhwc(true)
        .with_conv_algorithm_search(ort::ep::cuda::ConvAlgorithmSearch::Exhaustive)
        .with_arena_extend_strategy(ort::ep::ArenaExtendStrategy::SameAsRequested);
    // Later settings of a key replace earlier ones, so the environment wins over the defaults above.
    for (k, v) in overrides {
        cuda = cuda.with_arbitrary_config(k, v);
    }
    cuda
}

/// Parses [`CUDA_OPTIONS_ENV`]: `key=value` pairs separated by commas; blanks around items are ignored.
pub(crate) fn parse_cuda_options(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                out.push((k.trim().to_string(), v.trim().to_string()))
            }
            _ => {
                return Err(format!(
                    "{CUDA_OPTIONS_ENV}: `{item}` is not `key=value` (expected e.g. \
                     `prefer_nhwc=0,cudnn_conv_algo_search=HEURISTIC`)"
                ))
            }
        }
    }
    Ok(out)
}

/// The CUDA EP overrides the host passed (empty when none).
pub(crate) fn cuda_options(text: Option<&str>) -> Result<Vec<(String, String)>, PluginFailure> {
    match text {
        Some(v) => parse_cuda_options(v).map_err(|e| PluginFailure::new(VF_STATUS_INVALID_ARGUMENT, e)),
        None => Ok(Vec::new()),
    }
}

/// Per-model state for IO-bound runs, made on the first device run.
pub(crate) struct DeviceIo {
    binding: IoBinding,
    cuda_mem: MemoryInfo<'static>,
    cpu_mem: MemoryInfo<'static>,
    /// Run options that skip ORT's end-of-run synchronise (all tensors on the EP's stream).
    no_sync: RunOptions,
    input_name: CString,
}

impl DeviceIo {
    pub(crate) fn new(session: &Session, device: u32, input_name: &str) -> Result<DeviceIo, StepError> {
        let e = |what: &str, err: ort::Error| StepError(format!("{what}: {err}"));
        let mut no_sync = RunOptions::new().map_err(|err| e("run options", err))?;
        no_sync.disable_device_sync().map_err(|err| e("run options", err))?;
        Ok(DeviceIo {
            binding: session.create_binding().map_err(|err| e("cannot create an IO binding", err))?,
            cuda_mem: MemoryInfo::new(
                AllocationDevice::CUDA,
                device as c_int,
                AllocatorType::Device,
                MemoryType::Default,
            )
            .map_err(|err| e("CUDA memory info", err))?,
            cpu_mem: MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::Default)
                .map_err(|err| e("CPU memory info", err))?,
            no_sync,
            input_name: CString::new(input_name)
                .map_err(|_| StepError("the input name contains a NUL byte".to_string()))?,
        })
    }
}

/// What a model run on bound IO needs to know about the model.
pub(crate) struct BoundRun<'a> {
    pub session: &'a mut Session,
    pub io: &'a mut DeviceIo,
    pub output_name: &'a str,
    pub in_dtype: VfDType,
    pub out_dtype: VfDType,
    /// The EP's compute stream (0: ORT's own).
    pub ep_stream: usize,
}

fn elem_size(dtype: VfDType) -> usize {
    if dtype == VF_DTYPE_F16 {
        2
    } else {
        4
    }
}

fn shape_of(t: &VfTensor) -> [i64; 4] {
    [t.n as i64, t.c as i64, t.h as i64, t.w as i64]
}

/// A non-owning ORT tensor over a device pointer.
///
/// # Safety
/// `t.data` is a device allocation on `mem`'s device holding `t`'s packed NCHW elements, valid for the value's life.
unsafe fn device_value(mem: &MemoryInfo<'static>, t: &VfTensor) -> Result<ValueRefMut<'static>, ort::Error> {
    let shape = Shape::from(shape_of(t));
    // SAFETY: forwarded from the caller.
    unsafe {
        Ok(match t.dtype {
            VF_DTYPE_F16 => TensorRefMut::<f16>::from_raw(mem.clone(), t.data, shape)?.into_dyn(),
            _ => TensorRefMut::<f32>::from_raw(mem.clone(), t.data, shape)?.into_dyn(),
        })
    }
}

/// An owned host ORT tensor of `dtype` from f32 values.
fn host_value(dtype: VfDType, shape: [i64; 4], data: &[f32]) -> Result<DynValue, ort::Error> {
    Ok(match dtype {
        VF_DTYPE_F16 => {
            Tensor::from_array((shape, data.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>()))?.into_dyn()
        }
        _ => Tensor::from_array((shape, data.to_vec()))?.into_dyn(),
    })
}

/// A runtime failure, as out of memory when the runtime says so (loading a session or running it on a device that
/// another process filled): the host retries those with smaller tiles, or later.
pub(crate) fn runtime_err(msg: String) -> PluginFailure {
    let lower = msg.to_ascii_lowercase();
    let status = if lower.contains("out of memory") || lower.contains("failed to allocate") {
        VF_STATUS_OUT_OF_MEMORY
    } else {
        VF_STATUS_RUNTIME
    };
    PluginFailure::new(status, msg)
}

/// Checks a device tensor against the model: device, element type, layout.
pub(crate) fn check_device_tensor(
    t: &VfTensor,
    what: &str,
    device: u32,
    model_dtype: VfDType,
) -> Result<(), PluginFailure> {
    let invalid = |m: String| PluginFailure::new(VF_STATUS_INVALID_ARGUMENT, m);
    if t.device_index != device {
        return Err(invalid(format!(
            "{what} is on cuda:{} but the model runs on cuda:{device}; copy it to the model's device first",
            t.device_index
        )));
    }
    if t.dtype != VF_DTYPE_F16 && t.dtype != VF_DTYPE_F32 {
        return Err(invalid(format!("{what}.dtype {} is not a VF_DTYPE_* value", t.dtype)));
    }
    if t.dtype != model_dtype {
        return Err(invalid(format!(
            "{what} is {} in device memory but the model's {what} is {}: device buffers are not converted; \
             provide {} on the device (the conversion kernel belongs to the host's pre/post-processing), or use \
             host buffers, which are converted",
            crate::tensor::dtype_name(t.dtype),
            crate::tensor::dtype_name(model_dtype),
            crate::tensor::dtype_name(model_dtype)
        )));
    }
    let row = t.w as u64 * elem_size(t.dtype) as u64;
    if t.pitch_bytes != 0 && t.pitch_bytes != row {
        let msg = format!(
            "{what} has a row pitch of {} bytes, but a row of {} {} elements is {row} bytes: device tensors must be \
             tightly packed NCHW for now (pitch_bytes 0 or width * element size); repack the rows on the device \
             first",
            t.pitch_bytes,
            t.w,
            crate::tensor::dtype_name(t.dtype)
        );
        // A pitch shorter than a row is a caller error; a longer one is valid ABI this plugin cannot run yet.
        return Err(if t.pitch_bytes < row { invalid(msg) } else { PluginFailure::new(VF_STATUS_UNSUPPORTED, msg) });
    }
    Ok(())
}

/// Runs with at least one side in device memory. The tensors are checked already (shapes by the caller, device
/// tensors by [`check_device_tensor`]); host sides are packed NCHW of their `dtype`.
pub(crate) fn run_bound(m: BoundRun<'_>, input: &VfTensor, output: &VfTensor) -> Result<(), PluginFailure> {
    let on_device = |t: &VfTensor| t.memory == VF_MEMORY_CUDA;
    let on_ep_stream = |t: &VfTensor| m.ep_stream != 0 && t.cuda_stream as usize == m.ep_stream;

    // Order the host's streams before ORT's (see the module docs).
    let mut synced: Vec<usize> = Vec::new();
    for t in [input, output].into_iter().filter(|t| on_device(t) && !on_ep_stream(t)) {
        let s = t.cuda_stream as usize;
        if !synced.contains(&s) {
            cudart::stream_synchronize(s, t.device_index).map_err(|e| {
                runtime_err(format!(
                    "cannot synchronise the host's CUDA stream {s:#x} before the run: {e} (pass the stream the \
                     model was created with, ModelOptions.cuda_stream, to need no synchronisation)"
                ))
            })?;
            synced.push(s);
        }
    }
    // Only when both sides are on the device: ORT copies a host input at bind time on a stream of its choosing.
    let asynchronous = [input, output].iter().all(|t| on_device(t) && on_ep_stream(t));

    let io = &mut *m.io;
    let result = (|| -> Result<(), PluginFailure> {
        let rt = |what: &str, e: ort::Error| runtime_err(format!("{what}: {e}"));
        // The input: kept alive until the run is over.
        let _input_value: Box<dyn std::any::Any> = if on_device(input) {
            // SAFETY: the host guarantees `data` is a device allocation of the described size on the model's device
            // (device checked) that outlives the call.
            let v = unsafe { device_value(&io.cuda_mem, input) }.map_err(|e| rt("input tensor", e))?;
            bind_input_raw(&mut io.binding, &io.input_name, v.ptr()).map_err(|e| rt("binding the input", e))?;
            Box::new(v)
        } else {
            let data = crate::tensor::host_to_f32(input)?;
            let v = host_value(m.in_dtype, shape_of(input), &data).map_err(|e| rt("input tensor", e))?;
            bind_input_raw(&mut io.binding, &io.input_name, v.ptr()).map_err(|e| rt("binding the input", e))?;
            Box::new(v)
        };
        if on_device(output) {
            // SAFETY: as for the input; the output allocation has room for the described tensor.
            let v = unsafe { device_value(&io.cuda_mem, output) }.map_err(|e| rt("output tensor", e))?;
            io.binding.bind_output(m.output_name, v).map_err(|e| rt("binding the output", e))?;
        } else {
            io.binding.bind_output_to_device(m.output_name, &io.cpu_mem).map_err(|e| rt("binding the output", e))?;
        }
        let outputs = if asynchronous {
            m.session.run_binding_with_options(&io.binding, &io.no_sync)
        } else {
            m.session.run_binding(&io.binding)
        }
        .map_err(|e| rt("run", e))?;
        if !on_device(output) {
            let out = &outputs[0];
            let (got, data): (Vec<i64>, Vec<f32>) = match m.out_dtype {
                VF_DTYPE_F16 => {
                    let (s, v) = out.try_extract_tensor::<f16>().map_err(|e| rt("output", e))?;
                    (s.iter().copied().collect(), v.iter().map(|x| x.to_f32()).collect())
                }
                _ => {
                    let (s, v) = out.try_extract_tensor::<f32>().map_err(|e| rt("output", e))?;
                    (s.iter().copied().collect(), v.to_vec())
                }
            };
            if got != shape_of(output) {
                return Err(PluginFailure::new(
                    VF_STATUS_MODEL_CONTRACT,
                    format!(
                        "output has shape {got:?} for input {:?}; expected {:?}",
                        shape_of(input),
                        shape_of(output)
                    ),
                ));
            }
            crate::tensor::f32_to_host(&data, output)?;
        }
        Ok(())
    })();
    // Nothing of the host's stays bound past the call: its buffers may be freed or reused.
    io.binding.clear();
    result
}

fn bind_input_raw(binding: &mut IoBinding, name: &CString, value: *const ort::sys::OrtValue) -> Result<(), ort::Error> {
    // SAFETY: the binding and value are live ORT objects and `name` is NUL-terminated; ORT keeps its own reference
    // to the value (not to its data), released by `clear`.
    unsafe { ort::Error::result_from_status((ort::api().BindInput)(binding.ptr_mut(), name.as_ptr(), value)) }
}

/// `cudaStreamSynchronize` from the CUDA runtime that ONNX Runtime's CUDA provider loaded.
mod cudart {
    use super::*;

    type StreamSync = unsafe extern "C" fn(stream: *mut c_void) -> c_int;
    type SetDevice = unsafe extern "C" fn(device: c_int) -> c_int;
    type ErrorString = unsafe extern "C" fn(error: c_int) -> *const c_char;

    struct Cudart {
        // Kept loaded for the process: the function pointers point into it.
        _lib: libloading::Library,
        stream_sync: StreamSync,
        set_device: SetDevice,
        error_string: ErrorString,
    }

    const NAMES: [&str; 3] = ["libcudart.so.13", "libcudart.so.12", "libcudart.so"];

    fn load() -> Result<Cudart, StepError> {
        // Prefer the copy already in the process (ORT's), then any on the library path.
        let loaded = NAMES.iter().find_map(|n| {
            // SAFETY: RTLD_NOLOAD only returns a handle to a library that is already loaded.
            unsafe { libloading::os::unix::Library::open(Some(n), libc::RTLD_NOW | libc::RTLD_NOLOAD) }
                .ok()
                .map(libloading::Library::from)
        });
        let lib = match loaded {
            Some(l) => l,
            // SAFETY: loading the CUDA runtime runs its initialisers only.
            None => NAMES.iter().find_map(|n| unsafe { libloading::Library::new(n) }.ok()).ok_or_else(|| {
                StepError(format!("the CUDA runtime is not loaded and none of {} could be loaded", NAMES.join(", ")))
            })?,
        };
        // SAFETY: these symbols have these signatures in every CUDA runtime.
        unsafe {
            let missing = |e: libloading::Error| StepError(e.to_string());
            let stream_sync = *lib.get::<StreamSync>(b"cudaStreamSynchronize\0").map_err(missing)?;
            let set_device = *lib.get::<SetDevice>(b"cudaSetDevice\0").map_err(missing)?;
            let error_string = *lib.get::<ErrorString>(b"cudaGetErrorString\0").map_err(missing)?;
            Ok(Cudart { _lib: lib, stream_sync, set_device, error_string })
        }
    }

    fn get() -> Result<&'static Cudart, StepError> {
        static CUDART: OnceLock<Result<Cudart, StepError>> = OnceLock::new();
        CUDART.get_or_init(load).as_ref().map_err(Clone::clone)
    }

    /// Waits for all work on `stream` (0: the legacy default stream of `device`).
    pub(super) fn stream_synchronize(stream: usize, device: u32) -> Result<(), StepError> {
        let rt = get()?;
        let check = |code: c_int, what: &str| {
            if code == 0 {
                return Ok(());
            }
            // SAFETY: returns a static string for any code.
            let msg = unsafe { std::ffi::CStr::from_ptr((rt.error_string)(code)) }.to_string_lossy().into_owned();
            Err(StepError(format!("{what}: CUDA error {code}: {msg}")))
        };
        if stream == 0 {
            // The legacy default stream is per device: make sure it is the model's.
            // SAFETY: plain runtime call.
            check(unsafe { (rt.set_device)(device as c_int) }, "cudaSetDevice")?;
        }
        // SAFETY: the host guarantees the stream is a live `cudaStream_t` (or null).
        check(unsafe { (rt.stream_sync)(stream as *mut c_void) }, "cudaStreamSynchronize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_options_parse() {
        assert_eq!(parse_cuda_options("").unwrap(), vec![]);
        assert_eq!(
            parse_cuda_options(" prefer_nhwc=0 , cudnn_conv_algo_search = HEURISTIC,").unwrap(),
            vec![
                ("prefer_nhwc".to_string(), "0".to_string()),
                ("cudnn_conv_algo_search".to_string(), "HEURISTIC".to_string())
            ]
        );
        let e = parse_cuda_options("prefer_nhwc").unwrap_err();
        assert!(e.contains(CUDA_OPTIONS_ENV) && e.contains("`prefer_nhwc`"), "{e}");
        assert!(parse_cuda_options("=1").is_err());
    }

    fn tensor(dtype: VfDType, w: u32, pitch: u64) -> VfTensor {
        let mut t = VfTensor::new_zeroed();
        (t.memory, t.dtype, t.n, t.c, t.h, t.w, t.pitch_bytes) = (VF_MEMORY_CUDA, dtype, 1, 3, 8, w, pitch);
        t
    }

    #[test]
    fn device_tensors_are_checked() {
        assert!(check_device_tensor(&tensor(VF_DTYPE_F16, 10, 0), "input", 0, VF_DTYPE_F16).is_ok());
        assert!(check_device_tensor(&tensor(VF_DTYPE_F16, 10, 20), "input", 0, VF_DTYPE_F16).is_ok());
        let e = check_device_tensor(&tensor(VF_DTYPE_F16, 10, 64), "input", 0, VF_DTYPE_F16).unwrap_err();
        assert_eq!(e.status, VF_STATUS_UNSUPPORTED);
        assert!(e.message.contains("pitch of 64 bytes") && e.message.contains("tightly packed"), "{}", e.message);
        let e = check_device_tensor(&tensor(VF_DTYPE_F16, 10, 8), "input", 0, VF_DTYPE_F16).unwrap_err();
        assert_eq!(e.status, VF_STATUS_INVALID_ARGUMENT);
        let e = check_device_tensor(&tensor(VF_DTYPE_F32, 10, 0), "output", 0, VF_DTYPE_F16).unwrap_err();
        assert!(e.message.contains("output is f32 in device memory") && e.message.contains("not converted"));
        let mut t = tensor(VF_DTYPE_F16, 10, 0);
        t.device_index = 1;
        assert!(check_device_tensor(&t, "input", 0, VF_DTYPE_F16).unwrap_err().message.contains("cuda:1"));
    }
}
