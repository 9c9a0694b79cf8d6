//! `videoforge doctor`: what this machine has (GPUs, NVDEC per codec and bit depth, whether an NVENC session
//! really opens), which plugins load and where their runtime comes from, and the plan it would get.

use super::env::Found;
use serde::Serialize;
use videoforge::backend::{discover_plugins, ExecutionProvider, Plugin};
use videoforge::machine::MachineProbe;
use videoforge::runner::Environment;

/// What `videoforge doctor` reports.
#[derive(Debug, Serialize)]
pub(crate) struct DoctorReport {
    /// videoforge version and commit.
    pub(crate) videoforge: String,
    /// The machine.
    pub(crate) machine: MachineProbe,
    /// Backend plugins found and loaded (or why not).
    pub(crate) plugins: Vec<serde_json::Value>,
    /// The device plan this machine gets for `gpus = "auto"`.
    pub(crate) plan: String,
    /// Kernel sources hash, part of every fingerprint.
    pub(crate) kernels_hash: String,
    /// Where the ONNX Runtime library comes from, when found.
    pub(crate) onnxruntime: Option<Found>,
    /// The list of CUDA libraries preloaded for it, when it came with one.
    pub(crate) cuda_libraries: Option<Found>,
}

/// Probes the machine and the plugins.
pub(crate) fn doctor(env: &Environment) -> DoctorReport {
    let machine = videoforge::probe::detect(env.probe);
    let mut plugins = Vec::new();
    let mut has_cuda_ep = false;
    let mut fused_ready = None;
    for path in discover_plugins(&env.plugin_dirs) {
        match Plugin::load_with(&path, env.runtime_for(&path)) {
            Ok(p) => {
                if p.info().name == videoforge::plan::FUSED_CUDA {
                    fused_ready = Some(p.info().library_error.clone());
                }
                has_cuda_ep |= p
                    .info()
                    .execution_providers
                    .iter()
                    .any(|e| matches!(e, ExecutionProvider::Cuda | ExecutionProvider::Tensorrt));
                plugins.push(
                    serde_json::to_value(p.info())
                        .unwrap_or_else(|e| serde_json::json!({ "path": path, "error": e.to_string() })),
                );
            }
            Err(e) => plugins.push(serde_json::json!({ "path": path, "error": e.to_string() })),
        }
    }
    let plan = if machine.gpus.is_empty() {
        format!(
            "CPU: decode, inference and encode on {} core(s) ({})",
            machine.cpu_cores,
            machine.notes.first().map(String::as_str).unwrap_or("no GPU")
        )
    } else if !has_cuda_ep {
        format!(
            "CPU: {} GPU(s) found, but no backend plugin offers a CUDA or TensorRT execution provider",
            machine.gpus.len()
        )
    } else {
        let nvenc = machine.gpus.iter().any(|g| g.nvenc.available);
        let sm8 = machine
            .gpus
            .iter()
            .all(|g| g.compute_capability.split('.').next().and_then(|m| m.parse::<u32>().ok()) >= Some(8));
        let inference = match (&fused_ready, sm8) {
            (Some(None), true) => {
                "fused-cuda (NVRTC kernels) for the models it runs, ONNX Runtime's CUDA provider otherwise".to_string()
            }
            (Some(None), false) => "ONNX Runtime's CUDA provider (fused-cuda needs SM 8.0 or newer)".to_string(),
            (Some(Some(why)), _) => format!("ONNX Runtime's CUDA provider (fused-cuda cannot run: {why})"),
            (None, _) => "ONNX Runtime's CUDA provider (no fused-cuda plugin)".to_string(),
        };
        format!(
            "GPU: {} worker(s), inference by {inference}, {} encode",
            machine.gpus.len(),
            if nvenc { "NVENC available, CPU" } else { "CPU (no NVENC)" }
        )
    };
    DoctorReport {
        videoforge: format!("{} ({})", videoforge::VERSION, videoforge::GIT_HASH),
        machine,
        plugins,
        plan,
        kernels_hash: videoforge::KERNELS_HASH.into(),
        onnxruntime: super::env::onnxruntime(),
        cuda_libraries: super::env::cuda_libraries(),
    }
}

impl DoctorReport {
    /// Whether the ONNX Runtime plugin loads and its runtime library with it: without it nothing can run (fused-cuda
    /// refuses CPU jobs and models it does not match).
    pub(crate) fn can_run(&self) -> bool {
        self.plugins.iter().any(|p| {
            p["name"] == videoforge::plan::ONNXRUNTIME && p.get("error").is_none() && p["library_error"].is_null()
        })
    }

    /// Text for a person.
    pub(crate) fn to_text(&self) -> String {
        let m = &self.machine;
        let mut s = format!("videoforge {}\n", self.videoforge);
        s += &format!("cpu:        {} core(s)\n", m.cpu_cores);
        s += &format!(
            "driver:     {}   cuda: {}\n",
            m.driver_version.as_deref().unwrap_or("none"),
            m.cuda_version.as_deref().unwrap_or("none")
        );
        s += &format!(
            "cudnn:      {}   tensorrt: {}\n",
            m.cudnn_version.as_deref().unwrap_or("none"),
            m.tensorrt_version.as_deref().unwrap_or("none")
        );
        if m.gpus.is_empty() {
            s += "gpus:       none\n";
        }
        for g in &m.gpus {
            s += &format!(
                "gpu {}:      {} ({}), sm {}, {:.1} GiB ({:.1} GiB free)\n",
                g.index,
                g.name,
                g.uuid,
                g.compute_capability,
                g.vram_total as f64 / (1u64 << 30) as f64,
                g.vram_free as f64 / (1u64 << 30) as f64
            );
            let dec: Vec<String> = g
                .nvdec
                .iter()
                .map(|c| format!("{}/{}bit:{}", c.codec, c.bit_depth, if c.supported { "yes" } else { "no" }))
                .collect();
            s += &format!("  nvdec:    {}\n", dec.join(" "));
            s += &format!("  nvenc:    {} ({})\n", if g.nvenc.available { "yes" } else { "no" }, g.nvenc.detail);
        }
        for n in &m.notes {
            s += &format!("note:       {n}\n");
        }
        match &self.onnxruntime {
            Some(f) => s += &format!("onnxruntime: {} (from {})\n", f.path.display(), f.from),
            None => s += "onnxruntime: not found by videoforge (the plugin searches the system)\n",
        }
        if let Some(f) = &self.cuda_libraries {
            s += &format!("cuda libs:  listed in {} (from {}), preloaded\n", f.path.display(), f.from);
        }
        if self.plugins.is_empty() {
            s += "plugins:    none found (searched: VIDEOFORGE_PLUGIN_DIR, next to the executable)\n";
        }
        for p in &self.plugins {
            if let Some(e) = p.get("error") {
                s += &format!("plugin:     {} FAILED: {}\n", p["path"], e.as_str().unwrap_or_default());
            } else if let Some(e) = p["library_error"].as_str() {
                s += &format!(
                    "plugin:     {} {} CANNOT RUN: {e}\n",
                    p["name"].as_str().unwrap_or("?"),
                    p["version"].as_str().unwrap_or("?")
                );
            } else {
                s += &format!(
                    "plugin:     {} {} ({}), execution providers: {}\n",
                    p["name"].as_str().unwrap_or("?"),
                    p["version"].as_str().unwrap_or("?"),
                    p["library_version"].as_str().unwrap_or("?"),
                    p["execution_providers"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default()
                );
            }
        }
        s += &format!("plan:       {}\n", self.plan);
        s += &format!("kernels:    {}\n", self.kernels_hash);
        s
    }
}
