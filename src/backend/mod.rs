//! Host side of the backend plugin ABI: finding, loading and calling inference plugins.
//!
//! A plugin is a shared library that speaks `videoforge-backend-abi`; the host loads it with libloading, checks its
//! ABI version, and sees models as [`FrameModel`]s over planar RGB f32 frames on the host, or runs them on CUDA device
//! buffers with [`LoadedModel::run_device`] (no tiling there). Host frames larger than the tile are cut, run and
//! blended here ([`tile`]), so every backend gets tiling for free.

mod error;
mod plugin;
pub mod tile;
mod types;

pub use crate::codec::{Device, ExecutionProvider, Precision};
pub use error::BackendError;
pub use plugin::{discover_plugins, find_plugin, plugin_file_name, plugin_search_dirs, LoadedModel, Plugin};
pub use types::{DeviceTensor, FrameModel, ModelInfo, ModelOptions, PluginInfo};
