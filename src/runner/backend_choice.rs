//! Which backend plugin runs a job: `fused-cuda` (our own NVRTC kernels) where the job asks for it, or where `auto`
//! finds it can run the model on every GPU of the plan; otherwise ONNX Runtime. The reason goes into the plan, so
//! `plan`, `doctor` and the report say why.

use crate::backend::{find_plugin, BackendError, ModelOptions, Plugin};
use crate::codec::ExecutionProvider;
use crate::machine::MachineProbe;
use crate::manifest::{BackendChoice, Gpus, JobSpec, PrecisionChoice};
use crate::plan::{Problem, FUSED_CUDA};
use std::path::PathBuf;

/// Lowest compute capability the fused kernels are built for (mma.sync with FP16 accumulation in FP32).
const MIN_SM: (u32, u32) = (8, 0);

/// The fused plugin, if it may run this job, or why not.
pub(super) enum Fused {
    /// It runs the job.
    Chosen(Plugin, String),
    /// It does not; why (for the plan's reasons, or a problem when the job asked for it).
    Not(String),
}

/// Decides whether `fused-cuda` runs the job (see the module doc). `plugin_dirs`: where plugins are searched.
pub(super) fn fused(spec: &JobSpec, probe: &MachineProbe, plugin_dirs: &[PathBuf]) -> Fused {
    let m = &spec.manifest;
    let not = |why: String| Fused::Not(why);
    if matches!(m.model.backend, BackendChoice::Onnxruntime | BackendChoice::Tensorrt) {
        return not(format!("the job asks for {:?}", m.model.backend).to_lowercase());
    }
    if m.device.gpus == Gpus::Cpu {
        return not("the job runs on the CPU".into());
    }
    if probe.gpus.is_empty() {
        return not(format!("no GPU here ({})", probe.notes.first().map(String::as_str).unwrap_or("none found")));
    }
    if m.model.precision == PrecisionChoice::F32 {
        return not("the job asks for f32 and fused-cuda computes in FP16".into());
    }
    let used: Vec<&crate::machine::GpuInfo> = match &m.device.gpus {
        Gpus::List(l) => probe.gpus.iter().filter(|g| l.contains(&g.index)).collect(),
        _ => probe.gpus.iter().collect(),
    };
    if let Some(old) = used.iter().find(|g| sm(&g.compute_capability) < MIN_SM) {
        return not(format!(
            "GPU {} ({}) is SM {}; the fused kernels need SM {}.{} or newer",
            old.index, old.name, old.compute_capability, MIN_SM.0, MIN_SM.1
        ));
    }
    let plugin = match find_plugin(FUSED_CUDA, plugin_dirs).and_then(|p| Plugin::load(&p)) {
        Ok(p) => p,
        Err(e) => return not(format!("its plugin does not load: {e}")),
    };
    if let Some(e) = &plugin.info().library_error {
        return not(format!("it cannot run here: {e}"));
    }
    // The plugin reads the graph before it looks at the device: a CPU request answers whether it runs the model.
    let model = spec.resolve(&m.model.path);
    match plugin
        .open_model(&ModelOptions { execution_provider: Some(ExecutionProvider::Cuda), ..ModelOptions::cpu(&model) })
    {
        Err(BackendError::Unsupported { message, .. }) => {
            let graph = message.split_once("(the graph, ").map(|(_, g)| g.trim_end_matches(')').to_string());
            let why = match graph {
                Some(g) => format!("fused-cuda runs the model ({g}) on SM {} with NVRTC kernels", sms(&used)),
                None => format!("fused-cuda runs the model on SM {} with NVRTC kernels", sms(&used)),
            };
            Fused::Chosen(plugin, why)
        }
        Err(e) => not(format!("it does not run this model: {e}")),
        Ok(_) => not("its plugin opened the model on the CPU, which it should refuse".into()),
    }
}

/// The problem to report when the job asked for fused-cuda and it cannot run.
pub(super) fn problem(why: &str) -> Problem {
    Problem::new("model.backend", format!("fused-cuda cannot run this job: {why}"))
}

fn sm(cc: &str) -> (u32, u32) {
    let mut it = cc.split('.').map(|p| p.trim().parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

fn sms(gpus: &[&crate::machine::GpuInfo]) -> String {
    let mut v: Vec<&str> = gpus.iter().map(|g| g.compute_capability.as_str()).collect();
    v.dedup();
    v.join(", ")
}
