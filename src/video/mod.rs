//! Media: demux/mux with libavformat, CPU decode/encode with libavcodec, colour metadata and the reference
//! Y'CbCr ↔ RGB conversion, timestamps, and stream copy of audio/subtitles/attachments.
//!
//! Each concern lives in its own file; this one re-exports them and initialises FFmpeg. `ffmpeg_next` stays inside
//! this folder: the pipeline moves [`Frame`]s and [`Packet`]s between stages without looking into them.

mod annexb;
mod color;
mod convert;
mod encoder;
mod error;
mod ffmpeg;
mod filter;
mod frame;
mod peek;
mod segments;
mod sink;
mod source;
mod still;
mod synthetic;
mod tags;
mod yuv;

pub use annexb::DecoderFeed;
pub use color::{
    assumed_matrix, gbr8_to_rgb_planar, gbr_to_rgb_planar, resolve as resolve_color, rgb_planar_to_yuv,
    yuv_to_rgb_planar, Matrix, Plane, PlaneMut, Quant, Range, Sample, Subsampling, YuvFormat,
};
pub use convert::ToRgb;
pub use encoder::VideoOut;
pub use error::{errno, VideoError};
pub use ffmpeg::init;
pub use filter::FrameFilter;
pub use frame::Frame;
pub use sink::{Finished, Sink};
pub use source::{bit_depth_of, Item, Source, VideoInfo};
pub use still::{png, still, Still};
pub use synthetic::{write_synthetic_clip, write_synthetic_clip_with};
pub use tags::{ColorInfo, ColorTags, ContentLight, MasteringDisplay};
pub use yuv::YuvFrame;

/// A packet of a stream the pipeline copies (audio, subtitles) or hands to a device decoder's feed.
pub type Packet = ffmpeg_next::Packet;
