//! videoforge: declarative, GPU-first AI video upscaling.
//!
//! Data meets the layers in this order: [`manifest`] (TOML → raw types) → [`plan`] (validation + [`probe`] →
//! immutable [`plan::EnginePlan`]) → [`runner`] (many files, sharding, resume, reports) → [`pipeline`]
//! (decode → preprocess → infer → postprocess → encode on threads) over [`video`] (FFmpeg) and [`backend`]
//! (inference plugins behind a stable C ABI).

pub mod audit;
pub mod backend;
pub mod bench;
pub mod error;
pub mod fingerprint;
pub mod gpu;
pub mod manifest;
pub mod pipeline;
pub mod plan;
pub mod probe;
pub mod queue;
pub mod runner;
pub mod video;

pub use error::{exit_codes, EngineError};

/// videoforge's version, from Cargo.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit this binary was built from (`unknown` outside a git checkout).
pub const GIT_HASH: &str = env!("VIDEOFORGE_GIT_HASH");
/// SHA-256 of the `kernels/` sources, computed at build time.
pub const KERNELS_HASH: &str = env!("VIDEOFORGE_KERNELS_HASH");
