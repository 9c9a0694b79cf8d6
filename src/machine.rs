//! What a machine can do, as data: GPUs, driver and CUDA versions, NVDEC capabilities, NVENC, CPU cores. The
//! probe (`crate::probe`) fills it in; the plan decides from it. Imports nothing of ours.

use serde::{Deserialize, Serialize};

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
    /// Smallest coded width.
    #[serde(default)]
    pub min_width: u32,
    /// Smallest coded height.
    #[serde(default)]
    pub min_height: u32,
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
    /// A machine with no GPU, for tests and `--device cpu`.
    pub fn cpu_only(cpu_cores: usize) -> MachineProbe {
        MachineProbe { cpu_cores, notes: vec!["CPU only was asked for".into()], ..Default::default() }
    }

    /// The NVDEC capability of the first GPU for a codec and bit depth, if probed.
    pub fn nvdec(&self, codec: &str, bit_depth: u8) -> Option<&DecodeCap> {
        self.gpus.first()?.nvdec.iter().find(|c| c.codec == codec && c.bit_depth == bit_depth)
    }
}
