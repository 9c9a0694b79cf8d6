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

/// Initialise FFmpeg once. Its own messages (errors and warnings) go to `tracing` at debug level under the target
/// `ffmpeg`, so `--debug` shows them; failures reach the user through videoforge's own errors.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ffmpeg_next::init();
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Warning);
        // SAFETY: installs a callback with the signature FFmpeg expects; it only reads its arguments.
        unsafe { ffmpeg_next::ffi::av_log_set_callback(Some(ffmpeg_log)) };
    });
}

/// FFmpeg's log callback: formats the message (with FFmpeg's `[h264 @ 0x…]` prefix) into a stack buffer and hands it
/// to `tracing`, only when debug output for the target is on (nothing is formatted or allocated otherwise).
unsafe extern "C" fn ffmpeg_log(
    avcl: *mut std::ffi::c_void,
    level: std::ffi::c_int,
    fmt: *const std::ffi::c_char,
    args: *mut ffmpeg_next::ffi::__va_list_tag,
) {
    if level > ffmpeg_next::ffi::AV_LOG_WARNING || !tracing::enabled!(target: "ffmpeg", tracing::Level::DEBUG) {
        return;
    }
    let mut line = [0 as std::ffi::c_char; 1024];
    let mut prefix: std::ffi::c_int = 1;
    // SAFETY: FFmpeg's own formatter, with the arguments FFmpeg passed us, into a buffer of the size given.
    let n = unsafe {
        ffmpeg_next::ffi::av_log_format_line2(avcl, level, fmt, args, line.as_mut_ptr(), line.len() as _, &mut prefix)
    };
    if n < 0 {
        return;
    }
    // SAFETY: av_log_format_line2 always NUL-terminates within the buffer.
    let text = unsafe { std::ffi::CStr::from_ptr(line.as_ptr()) }.to_string_lossy();
    tracing::debug!(target: "ffmpeg", "{}", text.trim_end());
}

pub(crate) fn media_err(path: &Path, message: String, retry: Retry) -> EngineError {
    EngineError::Media { path: path.into(), message, retry }
}
