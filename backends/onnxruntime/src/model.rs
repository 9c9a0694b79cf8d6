//! A model loaded into an ONNX Runtime session, checked against the IO contract (NCHW, RGB, f16/f32, one input,
//! one output, integer scale) and run on host buffers or, with a CUDA execution provider, on CUDA device buffers
//! (see `device.rs`).

use std::path::Path;

use half::f16;
use ort::session::Session;
use ort::value::{Tensor, TensorElementType, ValueType};
use videoforge_backend_abi::*;

use crate::device::{self, runtime_err, BoundRun, DeviceIo};
use crate::opt_str;
use crate::runtime::{self, Runtime};

/// Intra-op threads when the host leaves it to us: a fixed number, not the machine's core count, so that the same
/// input gives the same bytes on every machine.
const DEFAULT_THREADS: usize = 4;

/// Spatial size of the probe run that reads the scale from a model with dynamic H/W.
const PROBE: i64 = 32;

pub(crate) struct Model {
    session: Session,
    input_name: String,
    output_name: String,
    /// Element type of the input.
    dtype: VfDType,
    /// Element type of the output.
    out_dtype: VfDType,
    scale: u32,
    /// The execution provider that runs it.
    ep: VfExecutionProvider,
    /// CUDA device index (CUDA and TensorRT EPs).
    device_index: u32,
    /// The EP's compute stream as the host gave it (0: ORT's own).
    ep_stream: usize,
    /// IO binding state, made on the first run with device buffers.
    io: Option<DeviceIo>,
}

fn contract(msg: String) -> PluginFailure {
    PluginFailure::new(VF_STATUS_MODEL_CONTRACT, msg)
}

fn unsupported(msg: String) -> PluginFailure {
    PluginFailure::new(VF_STATUS_UNSUPPORTED, msg)
}

fn shape_str(s: &[i64]) -> String {
    let dims: Vec<String> = s.iter().map(|d| if *d < 0 { "?".to_string() } else { d.to_string() }).collect();
    format!("[{}]", dims.join(", "))
}

fn ep_name(ep: VfExecutionProvider) -> &'static str {
    match ep {
        VF_EP_CPU => "cpu",
        VF_EP_CUDA => "cuda",
        VF_EP_TENSORRT => "tensorrt",
        _ => "auto",
    }
}

/// Checks one side (input or output) of the model and returns its element type and NCHW shape.
fn check_outlet(kind: &str, name: &str, ty: &ValueType) -> Result<(VfDType, [i64; 4]), PluginFailure> {
    let ValueType::Tensor { ty, shape, .. } = ty else {
        return Err(contract(format!("{kind} '{name}' is a {ty:?}, not a tensor; the contract is an NCHW RGB tensor")));
    };
    let dtype = match ty {
        TensorElementType::Float32 => VF_DTYPE_F32,
        TensorElementType::Float16 => VF_DTYPE_F16,
        other => {
            return Err(contract(format!(
                "{kind} '{name}' has element type {other:?}; the contract is float32 or float16 with values in [0, 1]"
            )))
        }
    };
    let dims: Vec<i64> = shape.iter().copied().collect();
    if dims.len() != 4 {
        return Err(contract(format!(
            "{kind} '{name}' has rank {} (shape {}); the contract is rank 4, NCHW [N, 3, H, W]",
            dims.len(),
            shape_str(&dims)
        )));
    }
    // Channels last: [N, H, W, 3] with H unknown or not 3.
    if dims[3] == 3 && dims[1] != 3 {
        return Err(contract(format!(
            "{kind} '{name}' has shape {}: it looks like NHWC (channels last); the contract is NCHW [N, 3, H, W] \
             (planar RGB): export the model channels first",
            shape_str(&dims)
        )));
    }
    if dims[1] != 3 && dims[1] >= 0 {
        let hint = "";
        return Err(contract(format!(
            "{kind} '{name}' has shape {} with {} channels in dimension 1; the contract is NCHW [N, 3, H, W] \
             (planar RGB){hint}",
            shape_str(&dims),
            dims[1]
        )));
    }
    Ok((dtype, [dims[0], dims[1], dims[2], dims[3]]))
}

/// The host's provider options, when its options struct is new enough to carry them.
fn provider_options(o: &VfModelOptions) -> Option<String> {
    let needed = std::mem::offset_of!(VfModelOptions, provider_options) + std::mem::size_of::<*const i8>();
    if (o.struct_size as usize) < needed {
        return None;
    }
    opt_str(o.provider_options)
}

impl Model {
    /// Loads the model the options name, checks it and fills `info`.
    pub(crate) fn load(o: &VfModelOptions, info: &mut VfModelInfo) -> Result<Model, PluginFailure> {
        let model_path = opt_str(o.model_path).ok_or_else(|| crate::invalid("model_path is null"))?;
        let runtime_path = opt_str(o.runtime_path);
        let rt = runtime::get(runtime_path.as_deref().map(Path::new))?;
        let mut warnings = Vec::new();
        if let Some(p) = &runtime_path {
            if Path::new(p).canonicalize().ok() != rt.path.canonicalize().ok() {
                warnings.push(format!(
                    "ONNX Runtime was already loaded from {} in this process; {p} is not used",
                    rt.path.display()
                ));
            }
        }
        if !Path::new(&model_path).is_file() {
            return Err(PluginFailure::new(VF_STATUS_NOT_FOUND, format!("model file {model_path} not found")));
        }
        let ep = resolve_ep(o, rt)?;
        let cuda_overrides = if ep == VF_EP_CUDA || ep == VF_EP_TENSORRT {
            device::cuda_options(provider_options(o).as_deref())?
        } else {
            Vec::new()
        };
        if !cuda_overrides.is_empty() {
            let kv: Vec<String> = cuda_overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
            warnings.push(format!(
                "CUDA execution provider options from {}: {} (they change speed and possibly the output bytes)",
                "the host",
                kv.join(",")
            ));
        }

        let threads = if o.threads == 0 { DEFAULT_THREADS } else { o.threads as usize };
        let fail = |what: &str, e: String| runtime_err(format!("{model_path}: {what}: {e}"));
        let mut builder = Session::builder(&rt.env)
            .map_err(|e| fail("cannot create a session", e.to_string()))?
            .with_intra_threads(threads)
            .map_err(|e| fail("intra-op threads", e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| fail("inter-op threads", e.to_string()))?
            .with_deterministic_compute(true)
            .map_err(|e| fail("deterministic compute", e.to_string()))?;
        builder = register_ep(builder, o, ep, &cuda_overrides)
            .map_err(|e| fail(&format!("{} execution provider", ep_name(ep)), e.0))?;
        let session =
            builder.commit_from_file(&model_path).map_err(|e| fail("cannot load the model", e.to_string()))?;

        // The IO contract.
        if session.inputs().len() != 1 || session.outputs().len() != 1 {
            let names = |v: &[ort::value::Outlet]| v.iter().map(|i| format!("'{}'", i.name())).collect::<Vec<_>>();
            return Err(contract(format!(
                "{model_path}: the model has {} inputs ({}) and {} outputs ({}); the contract is exactly one input \
                 and one output",
                session.inputs().len(),
                names(session.inputs()).join(", "),
                session.outputs().len(),
                names(session.outputs()).join(", ")
            )));
        }
        let input_name = session.inputs()[0].name().to_string();
        let output_name = session.outputs()[0].name().to_string();
        let with_path = |e: PluginFailure| PluginFailure::new(e.status, format!("{model_path}: {}", e.message));
        let (in_dtype, in_shape) =
            check_outlet("input", &input_name, session.inputs()[0].dtype()).map_err(with_path)?;
        let (out_dtype, out_shape) =
            check_outlet("output", &output_name, session.outputs()[0].dtype()).map_err(with_path)?;
        if in_dtype != out_dtype {
            warnings.push(format!(
                "input is {} but output is {}; both are converted",
                crate::tensor::dtype_name(in_dtype),
                crate::tensor::dtype_name(out_dtype)
            ));
        }
        let mut model = Model {
            session,
            input_name,
            output_name,
            dtype: in_dtype,
            out_dtype,
            scale: 0,
            ep,
            device_index: o.device_index,
            ep_stream: o.cuda_stream as usize,
            io: None,
        };
        model.scale = model.read_scale(&model_path, in_shape, out_shape)?;

        match (o.precision, in_dtype, ep) {
            (VF_PRECISION_F16, VF_DTYPE_F32, VF_EP_TENSORRT) => {}
            (VF_PRECISION_F16, VF_DTYPE_F32, _) => warnings.push(format!(
                "f16 was asked for, but the model has f32 inputs and the {} execution provider runs it in f32; use \
                 TensorRT or an f16 model",
                ep_name(ep)
            )),
            (VF_PRECISION_F32, VF_DTYPE_F16, _) => {
                warnings.push("f32 was asked for, but the model has f16 inputs: it runs in f16".to_string())
            }
            _ => {}
        }

        info.dtype = in_dtype;
        info.scale = model.scale;
        info.execution_provider = ep;
        info.input_shape = in_shape;
        info.output_shape = out_shape;
        write_fixed(&mut info.input_name, &model.input_name);
        write_fixed(&mut info.output_name, &model.output_name);
        write_fixed(&mut info.warnings, &warnings.join("\n"));
        Ok(model)
    }

    /// Reads the integer scale from static shapes or, when H/W are dynamic, from a probe run.
    fn read_scale(&mut self, model_path: &str, i: [i64; 4], o: [i64; 4]) -> Result<u32, PluginFailure> {
        let (ih, iw, oh, ow) = if i[2] > 0 && i[3] > 0 && o[2] > 0 && o[3] > 0 {
            (i[2], i[3], o[2], o[3])
        } else {
            let (h, w) = (if i[2] > 0 { i[2] } else { PROBE }, if i[3] > 0 { i[3] } else { PROBE });
            let n = if i[0] > 0 { i[0] } else { 1 };
            let zeros = vec![0f32; (n * 3 * h * w) as usize];
            let (shape, _) = self
                .run_host(&zeros, [n, 3, h, w])
                .map_err(|e| contract(format!("{model_path}: probe run on a {n}x3x{h}x{w} input failed: {e}")))?;
            if shape.len() != 4 || shape[1] != 3 {
                return Err(contract(format!(
                    "{model_path}: output '{}' has shape {} for a [{n}, 3, {h}, {w}] input; the contract is NCHW \
                     [N, 3, H*scale, W*scale]",
                    self.output_name,
                    shape_str(&shape)
                )));
            }
            (h, w, shape[2], shape[3])
        };
        let ratio = |o: i64, i: i64| if o % i == 0 { Some(o / i) } else { None };
        match (ratio(oh, ih), ratio(ow, iw)) {
            (Some(sh), Some(sw)) if sh == sw && sh >= 1 => Ok(sh as u32),
            _ => Err(contract(format!(
                "{model_path}: output '{}' is {ow}x{oh} for a {iw}x{ih} input: scale {:.3}x{:.3} (width x height) \
                 is not one integer for both dimensions",
                self.output_name,
                ow as f64 / iw as f64,
                oh as f64 / ih as f64
            ))),
        }
    }

    /// Runs on packed f32 NCHW data; returns the output shape and data as f32.
    fn run_host(&mut self, data: &[f32], shape: [i64; 4]) -> Result<(Vec<i64>, Vec<f32>), String> {
        let input = match self.dtype {
            VF_DTYPE_F16 => {
                let v: Vec<f16> = data.iter().map(|&x| f16::from_f32(x)).collect();
                Tensor::from_array((shape, v)).map_err(|e| e.to_string())?.into_dyn()
            }
            _ => Tensor::from_array((shape, data.to_vec())).map_err(|e| e.to_string())?.into_dyn(),
        };
        let outputs = self.session.run(ort::inputs![self.input_name.as_str() => input]).map_err(|e| e.to_string())?;
        let out = &outputs[0];
        if let Ok((s, v)) = out.try_extract_tensor::<f32>() {
            return Ok((s.iter().copied().collect(), v.to_vec()));
        }
        let (s, v) = out.try_extract_tensor::<f16>().map_err(|e| e.to_string())?;
        Ok((s.iter().copied().collect(), v.iter().map(|x| x.to_f32()).collect()))
    }

    /// Runs one tensor into another (the ABI's `model_run`): host buffers, or CUDA device buffers on either or both
    /// sides.
    pub(crate) fn run(&mut self, input: &VfTensor, output: &VfTensor) -> Result<(), PluginFailure> {
        for (t, what) in [(input, "input"), (output, "output")] {
            if t.memory != VF_MEMORY_HOST && t.memory != VF_MEMORY_CUDA {
                return Err(crate::invalid(format!("{what}.memory is {}, not a VF_MEMORY_* value", t.memory)));
            }
            if t.c != 3 || t.data.is_null() || t.n == 0 || t.h == 0 || t.w == 0 {
                return Err(crate::invalid(format!(
                    "{what} must be NCHW with C = 3, N, H, W >= 1 and data; got {}x{}x{}x{}",
                    t.n, t.c, t.h, t.w
                )));
            }
        }
        let s = self.scale;
        if output.n != input.n || output.h != input.h * s || output.w != input.w * s {
            return Err(crate::invalid(format!(
                "output is {}x3x{}x{} but a {}x3x{}x{} input at scale {s} gives {}x3x{}x{}",
                output.n,
                output.h,
                output.w,
                input.n,
                input.h,
                input.w,
                input.n,
                input.h * s,
                input.w * s
            )));
        }
        if input.memory == VF_MEMORY_CUDA || output.memory == VF_MEMORY_CUDA {
            return self.run_device(input, output);
        }
        let data = crate::tensor::host_to_f32(input)?;
        let shape = [input.n as i64, 3, input.h as i64, input.w as i64];
        let (got, out) = self.run_host(&data, shape).map_err(runtime_err)?;
        let want = [output.n as i64, 3, output.h as i64, output.w as i64];
        if got != want {
            return Err(contract(format!(
                "output '{}' has shape {} for input {}; expected {}",
                self.output_name,
                shape_str(&got),
                shape_str(&shape),
                shape_str(&want)
            )));
        }
        crate::tensor::f32_to_host(&out, output)
    }

    /// [`Model::run`] with at least one side in CUDA device memory: IO binding on the model's device.
    fn run_device(&mut self, input: &VfTensor, output: &VfTensor) -> Result<(), PluginFailure> {
        if self.ep != VF_EP_CUDA && self.ep != VF_EP_TENSORRT {
            return Err(unsupported(format!(
                "device buffers need the model on a CUDA device (cuda or tensorrt execution provider), but it runs \
                 on the {} execution provider",
                ep_name(self.ep)
            )));
        }
        for (t, what, dtype) in [(input, "input", self.dtype), (output, "output", self.out_dtype)] {
            if t.memory == VF_MEMORY_CUDA {
                device::check_device_tensor(t, what, self.device_index, dtype)?;
            }
        }
        if self.io.is_none() {
            let io = DeviceIo::new(&self.session, self.device_index, &self.input_name).map_err(|e| runtime_err(e.0))?;
            self.io = Some(io);
        }
        let run = BoundRun {
            session: &mut self.session,
            io: self.io.as_mut().expect("made above"),
            output_name: &self.output_name,
            in_dtype: self.dtype,
            out_dtype: self.out_dtype,
            ep_stream: self.ep_stream,
        };
        device::run_bound(run, input, output)
    }
}

/// Picks the execution provider: the one asked for, or the best for the device; checks the runtime has it.
fn resolve_ep(o: &VfModelOptions, rt: &Runtime) -> Result<VfExecutionProvider, PluginFailure> {
    let on = |ep| format!("ONNX Runtime {} at {}", rt.version, rt.path.display()) + ep;
    let ep = match (o.device_kind, o.execution_provider) {
        (VF_DEVICE_CPU, VF_EP_AUTO | VF_EP_CPU) => VF_EP_CPU,
        (VF_DEVICE_CPU, ep) => {
            return Err(unsupported(format!(
                "the {} execution provider needs a CUDA device, but the device is the CPU",
                ep_name(ep)
            )))
        }
        (VF_DEVICE_CUDA, VF_EP_CPU) => {
            return Err(unsupported(format!("the cpu execution provider cannot run on cuda:{}", o.device_index)))
        }
        (VF_DEVICE_CUDA, VF_EP_AUTO) => VF_EP_CUDA,
        (VF_DEVICE_CUDA, ep @ (VF_EP_CUDA | VF_EP_TENSORRT)) => ep,
        (d, ep) => return Err(crate::invalid(format!("device kind {d} / execution provider {ep} is not known"))),
    };
    if ep == VF_EP_CUDA && !rt.cuda {
        return Err(unsupported(on(
            " was built without the CUDA execution provider; install the onnxruntime-gpu build (CUDA 13) and point \
             ORT_DYLIB_PATH or the job's model.runtime at its libonnxruntime.so",
        )));
    }
    if ep == VF_EP_TENSORRT && !rt.tensorrt {
        return Err(unsupported(on(
            " was built without the TensorRT execution provider; install the onnxruntime-gpu build with TensorRT \
             and point ORT_DYLIB_PATH or the job's model.runtime at its libonnxruntime.so",
        )));
    }
    Ok(ep)
}

fn register_ep(
    builder: ort::session::builder::SessionBuilder,
    o: &VfModelOptions,
    ep: VfExecutionProvider,
    cuda_overrides: &[(String, String)],
) -> Result<ort::session::builder::SessionBuilder, crate::StepError> {
    let device = o.device_index as i32;
    let mut eps = Vec::new();
    if ep == VF_EP_TENSORRT {
        let mut trt = ort::ep::TensorRT::default().with_device_id(device).with_fp16(o.precision == VF_PRECISION_F16);
        if let Some(dir) = opt_str(o.cache_dir) {
            trt = trt
                .with_engine_cache(true)
                .with_engine_cache_path(&dir)
                .with_timing_cache(true)
                .with_timing_cache_path(dir);
        }
        if o.workspace_bytes > 0 {
            trt = trt.with_max_workspace_size(o.workspace_bytes as usize);
        }
        if !o.cuda_stream.is_null() {
            // SAFETY: the host passes a live `cudaStream_t` on this device and keeps it alive with the model.
            trt = unsafe { trt.with_compute_stream(o.cuda_stream as *mut ()) };
        }
        eps.push(trt.build().error_on_failure());
    }
    if ep == VF_EP_TENSORRT || ep == VF_EP_CUDA {
        let mut cuda = device::cuda_ep(device, cuda_overrides);
        if !o.cuda_stream.is_null() {
            // SAFETY: as above.
            cuda = unsafe { cuda.with_compute_stream(o.cuda_stream as *mut ()) };
        }
        eps.push(cuda.build().error_on_failure());
    }
    if eps.is_empty() {
        return Ok(builder);
    }
    builder.with_execution_providers(eps).map_err(|e| crate::StepError(e.to_string()))
}
