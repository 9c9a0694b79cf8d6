//! Media: demux/mux with libavformat, CPU decode/encode with libavcodec, colour metadata and the reference
//! Y'CbCr ↔ RGB conversion, timestamps, and stream copy of audio/subtitles/attachments.
//!
//! This module only re-exports; each concern lives in its own file.

mod color;
mod convert;
mod segments;
mod sink;
mod source;
mod yuv;

pub use color::{
    assumed_matrix, gbr8_to_rgb_planar, resolve as resolve_color, rgb_planar_to_yuv, yuv_to_rgb_planar, ColorInfo,
    Matrix, Plane, PlaneMut, Quant, Range, Sample, Subsampling, YuvFormat,
};
pub use convert::{rgb_to_frame, ToRgb};
pub use sink::{format_name, Finished, Sink, VideoOut};
pub use source::{bit_depth_of, Item, Source, VideoInfo};
pub use yuv::{YuvFrame, YuvUpscaler};

use crate::error::{EngineError, Retry};
use std::path::Path;

/// Initialise FFmpeg once (and quieten its logging to errors; we report through our own errors).
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ffmpeg_next::init();
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
    });
}

pub(crate) fn media_err(path: &Path, message: String, retry: Retry) -> EngineError {
    EngineError::Media { path: path.into(), message, retry }
}
