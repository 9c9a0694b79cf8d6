//! Generated clips (a moving gradient with noise), written with the crate's own FFmpeg libraries: the stress
//! test and GPU tests need video where no `ffmpeg` CLI is installed (the GPU machine has none).

use super::error::VideoError;
use ffmpeg_next as ff;

/// Writes a `frames`-frame `width`×`height` clip (a moving gradient with noise, yuv420p, BT.709 limited,
/// 25 fps) to `path` (Matroska) with the crate's FFmpeg libraries: libx264 (ultrafast, CRF 18) where present,
/// else FFV1. No `ffmpeg` CLI needed.
pub fn write_synthetic_clip(path: &std::path::Path, width: u32, height: u32, frames: u64) -> Result<(), VideoError> {
    write_synthetic_clip_with(path, width, height, frames, None, 8)
}

/// [`write_synthetic_clip`] with a chosen encoder (`libx265`, ...; `None` = libx264 or FFV1) and bit depth
/// (8, or 10 for yuv420p10le: the 8-bit pattern times 4).
pub fn write_synthetic_clip_with(
    path: &std::path::Path,
    width: u32,
    height: u32,
    frames: u64,
    encoder: Option<&str>,
    bit_depth: u8,
) -> Result<(), VideoError> {
    if width < 2 || height < 2 || width % 2 != 0 || height % 2 != 0 {
        return Err(VideoError::Unsupported(format!(
            "synthetic clip {width}x{height}: width and height must be even and at least 2"
        )));
    }
    super::ffmpeg::init();
    // The generator's encoder statistics are noise here.
    let level = ff::util::log::get_level().ok();
    ff::util::log::set_level(ff::util::log::Level::Error);
    let r = write_clip(path, width, height, frames, encoder, bit_depth > 8);
    if let Some(l) = level {
        ff::util::log::set_level(l);
    }
    r
}

fn write_clip(
    path: &std::path::Path,
    width: u32,
    height: u32,
    frames: u64,
    encoder: Option<&str>,
    ten_bit: bool,
) -> Result<(), VideoError> {
    let mut octx = ff::format::output_as(&path, "matroska").map_err(|source| VideoError::Create { source })?;
    let global_header = octx.format().flags().contains(ff::format::Flags::GLOBAL_HEADER);
    let (codec, x26x) = match encoder {
        Some(name) => (
            ff::encoder::find_by_name(name)
                .ok_or_else(|| VideoError::Unsupported(format!("encoder {name} is not available")))?,
            true,
        ),
        None => match ff::encoder::find_by_name("libx264") {
            Some(c) => (c, true),
            None => (
                ff::encoder::find(ff::codec::Id::FFV1)
                    .ok_or_else(|| VideoError::Unsupported("neither libx264 nor FFV1 is available".into()))?,
                false,
            ),
        },
    };
    let pix = if ten_bit { ff::format::Pixel::YUV420P10LE } else { ff::format::Pixel::YUV420P };
    let tb = ff::Rational::new(1, 25);
    let mut enc = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| VideoError::encoder("synthetic encoder", e))?;
    enc.set_width(width);
    enc.set_height(height);
    enc.set_format(pix);
    enc.set_time_base(tb);
    enc.set_frame_rate(Some(ff::Rational::new(25, 1)));
    enc.set_colorspace(ff::color::Space::BT709);
    enc.set_color_range(ff::color::Range::MPEG);
    if global_header {
        enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    }
    let mut opts = ff::Dictionary::new();
    if x26x {
        opts.set("preset", "ultrafast");
        opts.set("crf", "18");
    }
    if encoder == Some("libx265") {
        opts.set("x265-params", "log-level=error");
    }
    let mut encoder = enc.open_with(opts).map_err(|e| VideoError::encoder("open the synthetic encoder", e))?;
    let index = {
        let mut ost = octx.add_stream_with(&encoder).map_err(|e| VideoError::encoder("add the stream", e))?;
        ost.set_time_base(tb);
        ost.index()
    };
    octx.write_header().map_err(|source| VideoError::Write { what: "header", source })?;
    let ost_tb = octx.stream(index).map(|s| s.time_base()).unwrap_or(tb);
    let drain = |encoder: &mut ff::encoder::Video, octx: &mut ff::format::context::Output| -> Result<(), VideoError> {
        let mut packet = ff::Packet::empty();
        while encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(index);
            packet.rescale_ts(tb, ost_tb);
            packet.write_interleaved(octx).map_err(|source| VideoError::Write { what: "packet", source })?;
        }
        Ok(())
    };
    let mut frame = ff::frame::Video::new(pix, width, height);
    let mut seed = 0x9e37_79b9u32;
    for i in 0..frames {
        let t = i as usize;
        for plane in 0..3 {
            let (w, h) =
                if plane == 0 { (width as usize, height as usize) } else { (width as usize / 2, height as usize / 2) };
            let stride = frame.stride(plane);
            let data = frame.data_mut(plane);
            for y in 0..h {
                for x in 0..w {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let noise = (seed >> 28) as usize;
                    let v = match plane {
                        0 => 16 + (x * 3 + y * 2 + t * 5 + noise) % 220,
                        1 => 16 + (x * 2 + t * 3) % 225,
                        _ => 16 + (y * 2 + 240 - t % 240) % 225,
                    };
                    if ten_bit {
                        let w = ((v as u16) << 2).to_le_bytes();
                        data[y * stride + 2 * x..y * stride + 2 * x + 2].copy_from_slice(&w);
                    } else {
                        data[y * stride + x] = v as u8;
                    }
                }
            }
        }
        frame.set_pts(Some(i as i64));
        encoder.send_frame(&frame).map_err(|e| VideoError::encoder("encode", e))?;
        drain(&mut encoder, &mut octx)?;
    }
    encoder.send_eof().map_err(|e| VideoError::encoder("flush", e))?;
    drain(&mut encoder, &mut octx)?;
    octx.write_trailer().map_err(|source| VideoError::Write { what: "trailer", source })?;
    Ok(())
}
