//! The IR of fused layers and the matcher that builds it from an ONNX graph.

pub mod ir;
mod matcher;
mod nodes;
mod place;

pub use ir::*;
pub use matcher::{match_model, MAX_RESIDUALS};
pub use nodes::SUPPORTED_OPS;

/// Reads an ONNX file and matches it (see [`match_model`]).
pub fn load(path: &std::path::Path) -> crate::error::Result<Network> {
    match_model(&crate::onnx::load(path)?)
}
