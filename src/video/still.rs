//! Stills for reports: one frame of a file, decoded on the CPU and scaled with swscale into 8-bit RGB, cropped,
//! and written as PNG with FFmpeg's own encoder (no image crate needed).

use super::error::VideoError;
use super::ffmpeg::init;
use crate::retry::Retry;
use ffmpeg_next as ff;
use std::path::Path;

/// An 8-bit RGB picture, rows top to bottom, three bytes a pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Still {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes.
    pub rgb: Vec<u8>,
}

impl Still {
    /// The `w`×`h` region at (`x`, `y`), clipped to the picture.
    pub fn crop(&self, x: u32, y: u32, w: u32, h: u32) -> Still {
        let (x, y) = (x.min(self.width), y.min(self.height));
        let (w, h) = (w.min(self.width - x), h.min(self.height - y));
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for row in y..y + h {
            let start = ((row * self.width + x) * 3) as usize;
            rgb.extend_from_slice(&self.rgb[start..start + (w * 3) as usize]);
        }
        Still { width: w, height: h, rgb }
    }
}

/// The frame of `path`'s video shown at `at_s` seconds (the first frame at or after it; the last frame if the
/// file is shorter), scaled to `size` (default: its own) with a bicubic filter, as RGB.
pub fn still(path: &Path, at_s: f64, size: Option<(u32, u32)>) -> Result<Still, VideoError> {
    init();
    let bad = |m: String| VideoError::input(path, m, Retry::Permanent);
    let mut input = ff::format::input(&path).map_err(|e| bad(format!("not a readable media file ({e})")))?;
    let stream = input.streams().best(ff::media::Type::Video).ok_or_else(|| bad("no video stream".into()))?;
    let index = stream.index();
    let tb = f64::from(stream.time_base());
    let start = if stream.start_time() == i64::MIN { 0 } else { stream.start_time() };
    let ctx = ff::codec::context::Context::from_parameters(stream.parameters()).map_err(|e| bad(e.to_string()))?;
    let mut decoder = ctx.decoder().video().map_err(|e| bad(format!("cannot open the decoder: {e}")))?;
    let target = start + (at_s / tb.max(f64::MIN_POSITIVE)) as i64;
    // Seek (in AV_TIME_BASE units) to a keyframe at or before the target; decoding goes on from there.
    let ts = (at_s * f64::from(ff::ffi::AV_TIME_BASE)) as i64;
    if ts > 0 {
        input.seek(ts, ..ts).ok();
    }
    let mut frame = ff::frame::Video::empty();
    let mut kept: Option<ff::frame::Video> = None;
    let mut reached = false;
    'packets: for (s, packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        decoder.send_packet(&packet).map_err(|e| bad(format!("decode: {e}")))?;
        while decoder.receive_frame(&mut frame).is_ok() {
            let pts = frame.timestamp().or(frame.pts()).unwrap_or(target);
            kept = Some(std::mem::replace(&mut frame, ff::frame::Video::empty()));
            if pts >= target {
                reached = true;
                break 'packets;
            }
        }
    }
    if !reached {
        decoder.send_eof().ok();
        while decoder.receive_frame(&mut frame).is_ok() {
            kept = Some(std::mem::replace(&mut frame, ff::frame::Video::empty()));
        }
    }
    let frame = kept.ok_or_else(|| bad("no frame could be decoded".into()))?;
    let (w, h) = size.unwrap_or((frame.width(), frame.height()));
    let mut scaler = ff::software::scaling::Context::get(
        frame.format(),
        frame.width(),
        frame.height(),
        ff::format::Pixel::RGB24,
        w,
        h,
        ff::software::scaling::Flags::BICUBIC | ff::software::scaling::Flags::ACCURATE_RND,
    )
    .map_err(|e| VideoError::Unsupported(format!("no conversion from {:?} to RGB: {e}", frame.format())))?;
    let mut rgb = ff::frame::Video::empty();
    scaler.run(&frame, &mut rgb).map_err(|e| VideoError::Unsupported(format!("swscale: {e}")))?;
    let stride = rgb.stride(0);
    let data = rgb.data(0);
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    for row in 0..h as usize {
        out.extend_from_slice(&data[row * stride..row * stride + 3 * w as usize]);
    }
    Ok(Still { width: w, height: h, rgb: out })
}

/// PNG bytes of a still.
pub fn png(still: &Still) -> Result<Vec<u8>, VideoError> {
    init();
    let codec = ff::encoder::find(ff::codec::Id::PNG)
        .ok_or_else(|| VideoError::Unsupported("FFmpeg has no PNG encoder".into()))?;
    let mut enc = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| VideoError::encoder("PNG encoder", e))?;
    enc.set_width(still.width);
    enc.set_height(still.height);
    enc.set_format(ff::format::Pixel::RGB24);
    enc.set_time_base(ff::Rational::new(1, 1));
    let mut enc = enc.open().map_err(|e| VideoError::encoder("open the PNG encoder", e))?;
    let mut frame = ff::frame::Video::new(ff::format::Pixel::RGB24, still.width, still.height);
    let stride = frame.stride(0);
    let row = 3 * still.width as usize;
    for (y, src) in still.rgb.chunks_exact(row).enumerate() {
        frame.data_mut(0)[y * stride..y * stride + row].copy_from_slice(src);
    }
    frame.set_pts(Some(0));
    enc.send_frame(&frame).map_err(|e| VideoError::encoder("PNG", e))?;
    enc.send_eof().map_err(|e| VideoError::encoder("PNG", e))?;
    let mut packet = ff::Packet::empty();
    enc.receive_packet(&mut packet).map_err(|e| VideoError::encoder("PNG", e))?;
    Ok(packet.data().map(<[u8]>::to_vec).unwrap_or_default())
}
