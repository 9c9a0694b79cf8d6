//! videoforge: declarative, GPU-first AI video upscaling.
//!
//! Data meets the layers in this order: [`manifest`] (TOML → raw types) → [`plan`] (validation, and with the
//! machine's facts from [`probe`] the immutable [`plan::EnginePlan`]; per file a [`plan::FilePlan`]) → [`runner`]
//! (many files, sharding, resume, reports) → [`pipeline`] (decode → infer → encode on threads, atomic publish) over
//! [`video`] (FFmpeg), [`gpu`] (CUDA, NVDEC, colour kernels) and [`backend`] (inference plugins behind a stable C
//! ABI). [`codec`], [`retry`], [`machine`], [`digest`] and [`queue`] are leaves every layer may use; [`error`]
//! gathers the layers' errors into exit codes; [`fingerprint`] and [`audit`] describe a run.

pub mod audit;
pub mod backend;
pub mod codec;
pub mod digest;
pub mod error;
pub mod fingerprint;
pub mod gpu;
pub mod machine;
pub mod manifest;
pub mod pipeline;
pub mod plan;
pub mod probe;
pub mod queue;
pub mod retry;
pub mod runner;
pub mod video;

pub use error::{exit_codes, EngineError};

/// videoforge's version, from Cargo.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit this binary was built from (`unknown` outside a git checkout).
pub const GIT_HASH: &str = env!("VIDEOFORGE_GIT_HASH");
/// SHA-256 of the `kernels/` sources, computed at build time.
pub const KERNELS_HASH: &str = env!("VIDEOFORGE_KERNELS_HASH");
