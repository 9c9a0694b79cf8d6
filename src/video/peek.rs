//! A look at the first frames of a video stream before the file is planned, through a second, short-lived
//! demuxer and decoder: whether the frames are flagged interlaced and which field comes first, and the HDR side
//! data the bitstream carries (HEVC and AV1 put mastering display and content light level in the frames, not in
//! the container).

use super::tags::{frame_hdr, ContentLight, MasteringDisplay};
use ffmpeg_next as ff;
use std::path::Path;

/// Frames decoded to look.
pub(super) const FRAMES: u32 = 8;

/// What the first frames say.
#[derive(Debug, Clone, Default)]
pub(super) struct Peek {
    /// Frames decoded.
    pub(super) frames: u32,
    /// Of those, flagged interlaced.
    pub(super) interlaced: u32,
    /// Of the interlaced ones, top field first.
    pub(super) top_first: u32,
    /// The first mastering display found.
    pub(super) mastering: Option<MasteringDisplay>,
    /// The first content light level found.
    pub(super) light: Option<ContentLight>,
}

/// Decodes up to [`FRAMES`] frames of stream `index` of `path`. A file that cannot be read this way gives an empty
/// look (the real decode reports its errors).
pub(super) fn peek(path: &Path, index: usize) -> Peek {
    let mut p = Peek::default();
    let Ok(mut input) = ff::format::input(&path) else { return p };
    let Some(stream) = input.stream(index) else { return p };
    let Ok(mut ctx) = ff::codec::context::Context::from_parameters(stream.parameters()) else { return p };
    ctx.set_threading(ff::codec::threading::Config {
        kind: ff::codec::threading::Type::Slice,
        count: 1,
        ..Default::default()
    });
    let Ok(mut decoder) = ctx.decoder().video() else { return p };
    let mut frame = ff::frame::Video::empty();
    let mut take = |decoder: &mut ff::decoder::Video, p: &mut Peek| {
        while p.frames < FRAMES && decoder.receive_frame(&mut frame).is_ok() {
            p.frames += 1;
            if frame.is_interlaced() {
                p.interlaced += 1;
                p.top_first += u32::from(frame.is_top_first());
            }
            let (m, l) = frame_hdr(&frame);
            p.mastering = p.mastering.or(m);
            p.light = p.light.or(l);
        }
    };
    let mut packets = 0u32;
    for (s, packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        packets += 1;
        // A stream that decodes nothing from many packets is not worth waiting on here.
        if decoder.send_packet(&packet).is_err() || p.frames >= FRAMES || packets > 8 * FRAMES {
            break;
        }
        take(&mut decoder, &mut p);
        if p.frames >= FRAMES {
            return p;
        }
    }
    if decoder.send_eof().is_ok() {
        take(&mut decoder, &mut p);
    }
    p
}
