//! Validation and planning: a parsed `JobSpec` plus the machine's facts and the model's facts become an immutable,
//! serialisable [`EnginePlan`]; per file, the plan and the input's facts become a [`FilePlan`] the pipeline only
//! executes.
//!
//! Validation is pure (it reads the file system, never loads libraries or touches a device) and collects every
//! problem before reporting. Planning is deterministic: the same inputs give the same plan, byte for byte.

mod build;
mod engine_plan;
mod facts;
mod file_plan;
mod filter_plan;
mod inputs;
mod output_format;
mod problem;
mod retry;
mod validate;

pub use build::{build, infer_bytes, Overrides, FUSED_CUDA, ONNXRUNTIME};
pub use engine_plan::{
    DecodeRoute, Decoder, EncodePlan, EnginePlan, ModelFacts, ModelPlan, PipelinePlan, WorkItem, WorkerPlan,
};
pub use facts::{FieldOrder, InputFacts, Interlacing};
pub use file_plan::{muxer, plan_file, segments_for, FilePlan, FileSettings, FramePath};
pub use filter_plan::{FilterKind, FilterPlan};
pub use problem::{format_problems, locate, Problem};
pub use retry::{oom_retry_tile, retry_overlap, MIN_RETRY_TILE};
pub use validate::validate;
