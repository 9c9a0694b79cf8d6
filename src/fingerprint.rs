//! The EngineFingerprint: everything that decides the output bytes of a run, so a result can be reproduced and
//! a changed engine can be detected (the runner redoes files whose fingerprint changed).

use crate::codec::{Device, ExecutionProvider};
use crate::digest::sha256_hex;
use crate::machine::MachineProbe;
use crate::plan::EnginePlan;
use serde::{Deserialize, Serialize};

/// What produced an output. Stable across runs on the same machine with the same job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineFingerprint {
    /// videoforge's version.
    pub videoforge: String,
    /// Git commit of the build.
    pub git_hash: String,
    /// Backend plugin ABI version.
    pub abi_version: u32,
    /// Backend plugin name and version.
    pub backend: String,
    /// The backend's runtime library and version (`ONNX Runtime 1.32.0`).
    pub backend_library: String,
    /// Execution provider that runs the model.
    pub execution_provider: String,
    /// GPU name, UUID and compute capability of each GPU worker (empty on CPU).
    pub gpus: Vec<String>,
    /// NVIDIA driver version, where a GPU is used.
    pub driver: Option<String>,
    /// CUDA version, where a GPU is used.
    pub cuda: Option<String>,
    /// cuDNN version, where the CUDA or TensorRT execution provider runs the model.
    pub cudnn: Option<String>,
    /// TensorRT version, where the TensorRT execution provider runs the model.
    pub tensorrt: Option<String>,
    /// SHA-256 of the model file.
    pub model_sha256: String,
    /// Hash of the `kernels/` sources.
    pub kernels_hash: String,
    /// SHA-256 of the canonical EnginePlan, without its work list (which files a shard runs does not change
    /// how each one is processed).
    pub plan_hash: String,
}

impl EngineFingerprint {
    /// Builds the fingerprint of a plan on this machine with this backend.
    pub fn new(plan: &EnginePlan, probe: &MachineProbe, backend: &str, backend_library: &str) -> Self {
        let gpu_workers: Vec<u32> = plan
            .workers
            .iter()
            .filter_map(|w| match w.device {
                Device::Cuda(i) => Some(i),
                Device::Cpu => None,
            })
            .collect();
        let gpus = gpu_workers
            .iter()
            .filter_map(|i| probe.gpus.iter().find(|g| g.index == *i))
            .map(|g| format!("{} {} sm_{}", g.name, g.uuid, g.compute_capability.replace('.', "")))
            .collect();
        let uses_gpu = !gpu_workers.is_empty();
        EngineFingerprint {
            videoforge: crate::VERSION.into(),
            git_hash: crate::GIT_HASH.into(),
            abi_version: videoforge_backend_abi_version(),
            backend: backend.into(),
            backend_library: backend_library.into(),
            execution_provider: plan.model.execution_provider.to_string(),
            gpus,
            driver: probe.driver_version.clone().filter(|_| uses_gpu),
            cuda: probe.cuda_version.clone().filter(|_| uses_gpu),
            cudnn: probe
                .cudnn_version
                .clone()
                .filter(|_| uses_gpu && plan.model.execution_provider != ExecutionProvider::Cpu),
            tensorrt: probe
                .tensorrt_version
                .clone()
                .filter(|_| plan.model.execution_provider == ExecutionProvider::Tensorrt),
            model_sha256: plan.model.sha256.clone(),
            kernels_hash: crate::KERNELS_HASH.into(),
            plan_hash: processing_hash(plan),
        }
    }

    /// One short id for the whole fingerprint (first 16 hex digits of its SHA-256).
    pub fn id(&self) -> String {
        // Plain strings and numbers: serialising cannot fail; a failure would hash its own message.
        let json = serde_json::to_string(self).unwrap_or_else(|e| format!("unserialisable fingerprint: {e}"));
        sha256_hex(json.as_bytes())[..16].to_string()
    }

    /// Key/value pairs written into the output container's metadata.
    pub fn container_metadata(&self) -> Vec<(String, String)> {
        vec![
            ("videoforge_fingerprint".into(), self.id()),
            (
                "videoforge_engine".into(),
                format!(
                    "videoforge {} ({}) {} {} {} model {}",
                    self.videoforge,
                    self.git_hash,
                    self.backend,
                    self.backend_library,
                    self.execution_provider,
                    &self.model_sha256[..self.model_sha256.len().min(16)]
                ),
            ),
        ]
    }
}

/// Hash of the plan without what does not change the output bytes: the work list and job path (which files a
/// shard runs does not change how each is processed), where the model and runtime live on this machine (their
/// contents and versions are in the fingerprint), and the thread counts and page-locking (the output bytes do not
/// depend on them: tested), so machines of a farm with other core counts agree.
pub fn processing_hash(plan: &EnginePlan) -> String {
    let mut p = plan.clone();
    p.work.clear();
    p.encode_overrides.clear();
    p.job = Default::default();
    p.model.path = Default::default();
    p.model.runtime_library = None;
    p.pipeline.cpu_threads = 0;
    p.pipeline.inference_threads = 0;
    p.pipeline.pin_host_frames = true;
    p.reasons.retain(|r| !r.starts_with("inference threads"));
    p.hash()
}

fn videoforge_backend_abi_version() -> u32 {
    videoforge_backend_abi::VF_ABI_VERSION
}
