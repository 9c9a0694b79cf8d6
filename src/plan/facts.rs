//! What the plan knows about one input, read by opening it (`crate::video::Source`): its stream, its pixel format
//! and its interlacing. Plain data the file plan is made from.

use crate::codec::Chroma;
use serde::{Deserialize, Serialize};

/// What the plan needs to know about an input, read by opening it (`crate::video::Source`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFacts {
    /// Decoder name (`h264`, `hevc`...).
    pub codec: String,
    /// Coded width.
    pub width: u32,
    /// Coded height.
    pub height: u32,
    /// Bits per sample.
    pub bit_depth: u8,
    /// Decoded pixel format name (`yuv420p10le`...).
    pub pixel_format: String,
    /// Chroma subsampling of the decoded frames (RGB counts as 4:4:4, grey as 4:2:0).
    pub chroma: Chroma,
    /// Decoded frames are planar Y'CbCr 4:2:0, 4:2:2 or 4:4:4 at 8 to 12 bits: what the GPU stage takes as is.
    pub planar_yuv: bool,
    /// The decoded frames have an alpha plane (dropped: the model and the encoders take none).
    pub alpha: bool,
    /// Decoded frames go through swscale before the RGB conversion (NV12, packed RGB, 16-bit...).
    pub needs_swscale: bool,
    /// Average frame rate, if the container knows it.
    pub frame_rate: Option<(i32, i32)>,
    /// The stream's time base.
    pub time_base: (i32, i32),
    /// The input's container as libavformat names it (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`...).
    pub container: String,
    /// What the stream and its first frames say about interlacing.
    pub interlacing: Interlacing,
}

/// What the input says about interlacing: its codec parameters and the flags of its first frames.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interlacing {
    /// The stream's field order as the demuxer and parser read it: `progressive`, `tt`, `bb`, `tb`, `bt` or
    /// `unknown`.
    pub field_order: String,
    /// Frames decoded to look (the first few).
    pub frames_checked: u32,
    /// Of those, flagged interlaced.
    pub frames_interlaced: u32,
    /// Of the interlaced ones, flagged top field first.
    pub frames_top_first: u32,
}

impl Interlacing {
    /// Whether the stream is flagged interlaced (codec parameters) or detected so (most of its first frames).
    pub fn is_interlaced(&self) -> bool {
        matches!(self.field_order.as_str(), "tt" | "bb" | "tb" | "bt")
            || (self.frames_checked > 0 && 2 * self.frames_interlaced > self.frames_checked)
    }

    /// Which field comes first in time, and where that was read: the frames' flags, else the codec parameters'
    /// field order (display order: `tb` is shown bottom first), else assumed top first (`None` as the source).
    pub fn field_order(&self) -> (FieldOrder, Option<String>) {
        if self.frames_interlaced > 0 {
            let top = 2 * self.frames_top_first >= self.frames_interlaced;
            let why = format!(
                "frame flags ({} of {} frames interlaced, {} top field first)",
                self.frames_interlaced, self.frames_checked, self.frames_top_first
            );
            return (if top { FieldOrder::Tff } else { FieldOrder::Bff }, Some(why));
        }
        let why = Some(format!("codec parameters (field order {})", self.field_order));
        match self.field_order.as_str() {
            "tt" | "bt" => (FieldOrder::Tff, why),
            "bb" | "tb" => (FieldOrder::Bff, why),
            _ => (FieldOrder::Tff, None),
        }
    }
}

/// The order of the two fields in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldOrder {
    /// Top field first.
    Tff,
    /// Bottom field first.
    Bff,
}

impl FieldOrder {
    /// `tff` or `bff`, as libavfilter spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldOrder::Tff => "tff",
            FieldOrder::Bff => "bff",
        }
    }
}
