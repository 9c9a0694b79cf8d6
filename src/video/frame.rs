//! A decoded frame as the pipeline carries it between stages: what it may ask of a frame (size, timestamps,
//! field order) without touching FFmpeg's types.

use ffmpeg_next as ff;

/// A decoded video frame, as libavcodec made it.
pub struct Frame(pub(super) ff::frame::Video);

impl Frame {
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.0.width()
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.0.height()
    }

    /// Presentation timestamp (the decoder's best effort, else the packet's) in the stream's time base.
    pub fn pts(&self) -> Option<i64> {
        self.0.timestamp().or(self.0.pts())
    }

    /// Duration of the packet the frame came from, in the stream's time base (0 when unknown).
    pub fn duration(&self) -> i64 {
        self.0.packet().duration
    }

    /// Whether the frame is field-coded (interlaced).
    pub fn is_interlaced(&self) -> bool {
        self.0.is_interlaced()
    }

    /// Whether the top field comes first (meaningful for interlaced frames).
    pub fn top_field_first(&self) -> bool {
        self.0.is_top_first()
    }

    /// The pixel format's name (`yuv420p10le`...).
    pub fn pixel_format(&self) -> String {
        let f = self.0.format();
        f.descriptor().map(|d| d.name().to_string()).unwrap_or_else(|| format!("{f:?}"))
    }
}
