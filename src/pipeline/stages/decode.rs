//! The decode stage: demux, decode (libavcodec on the CPU, or NVDEC), and hand frames to the inference stage in the
//! form the file's plan chose — planar RGB, 4:2:0 for upload, or NVDEC pictures on the device. Other streams'
//! packets travel down the same queue in file order.

use super::super::msg::{timed_send, Counters, Decoded, Msg, StageFail};
use super::Pools;
use crate::audit::AllocWindow;
use crate::error::EngineError;
use crate::gpu::nvdec::NvDecoder;
use crate::pipeline::Cancel;
use crate::plan::FramePath;
use crate::queue::Sender;
use crate::video::{DecoderFeed, Frame, Item, Source, ToRgb, VideoInfo};
use std::sync::atomic::{AtomicIsize, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const STAGE: &str = "decode";

const INTERLACED: &str = "interlaced (field-coded) frames are processed as progressive frames: no deinterlacing; \
                          the output is flagged progressive";

/// What the decode thread works with.
pub(super) struct Decode<'a> {
    pub(super) source: Source,
    /// The device decoder and its feed, on the NVDEC path.
    pub(super) nvdec: Option<(NvDecoder, DecoderFeed)>,
    pub(super) path: FramePath,
    pub(super) info: &'a VideoInfo,
    pub(super) pools: &'a Pools,
    pub(super) out: Sender<Msg<Decoded>>,
    pub(super) depth: &'a AtomicIsize,
    pub(super) cancel: &'a Cancel,
    pub(super) window: Option<&'a AllocWindow>,
    pub(super) warnings: &'a Mutex<Vec<String>>,
    pub(super) clock: &'a Arc<AtomicU64>,
}

/// Runs the stage to the end of the stream; returns its result, its counters and the frames decoded.
pub(super) fn run(mut d: Decode<'_>) -> (Result<(), StageFail>, Counters, u64) {
    let mut c = Counters::new(STAGE, d.clock);
    let mut warned_interlaced = false;
    let r = match d.nvdec.take() {
        Some((mut nv, mut feed)) => {
            let r = on_device(&mut d, &mut nv, &mut feed, &mut c, &mut warned_interlaced);
            return (r, c, nv.frames());
        }
        None => on_cpu(&mut d, &mut c, &mut warned_interlaced),
    };
    let decoded = d.source.frames_decoded();
    (r, c, decoded)
}

fn warn_interlaced(warned: &mut bool, warnings: &Mutex<Vec<String>>) {
    if !*warned {
        *warned = true;
        if let Ok(mut w) = warnings.lock() {
            w.push(INTERLACED.into());
        }
    }
}

/// NVDEC: packets in, device frames out (several or none per packet), other streams' packets copied.
fn on_device(
    d: &mut Decode<'_>,
    nv: &mut NvDecoder,
    feed: &mut DecoderFeed,
    c: &mut Counters,
    warned: &mut bool,
) -> Result<(), StageFail> {
    loop {
        if d.cancel.is_stopped() {
            return Err(StageFail::Peer);
        }
        let t = Instant::now();
        let item = d.source.next_item().map_err(|e| StageFail::of(STAGE, e))?;
        let end = match item {
            None => {
                feed.push(None, |data, pts, dur| nv.send(data, pts, dur).map_err(EngineError::from))
                    .map_err(|e| StageFail::of(STAGE, e))?;
                nv.finish().map_err(|e| StageFail::of(STAGE, e))?;
                true
            }
            Some(Item::VideoPacket(p)) => {
                feed.push(Some(p), |data, pts, dur| nv.send(data, pts, dur).map_err(EngineError::from))
                    .map_err(|e| StageFail::of(STAGE, e))?;
                false
            }
            Some(Item::Packet(p)) => {
                c.busy(t.elapsed().as_secs_f64());
                timed_send(&d.out, Msg::Packet(p), c, d.depth)?;
                continue;
            }
            Some(Item::Frame(_)) => {
                return Err(StageFail::of(
                    STAGE,
                    EngineError::Invariant("a CPU-decoded frame on the NVDEC path".into()),
                ))
            }
        };
        c.busy(t.elapsed().as_secs_f64());
        while let Some((frame, duration)) = nv.receive() {
            c.stage.frames += 1;
            if let Some(win) = d.window {
                win.on_frame(c.stage.frames);
            }
            if !frame.progressive {
                warn_interlaced(warned, d.warnings);
            }
            let pts = frame.pts;
            timed_send(&d.out, Msg::Frame { frame: Decoded::Device(frame), pts, duration }, c, d.depth)?;
        }
        if end {
            timed_send(&d.out, Msg::End, c, d.depth)?;
            return Ok(());
        }
    }
}

/// libavcodec: frames converted on the CPU into the form the plan chose.
fn on_cpu(d: &mut Decode<'_>, c: &mut Counters, warned: &mut bool) -> Result<(), StageFail> {
    let info = d.info;
    let (w, h) = (info.width, info.height);
    let mut to_rgb = ToRgb::new(info.color.matrix, info.color.range);
    loop {
        if d.cancel.is_stopped() {
            return Err(StageFail::Peer);
        }
        let t = Instant::now();
        let item = d.source.next_item().map_err(|e| StageFail::of(STAGE, e))?;
        let msg = match item {
            None => {
                c.busy(t.elapsed().as_secs_f64());
                timed_send(&d.out, Msg::End, c, d.depth)?;
                return Ok(());
            }
            Some(Item::Packet(p)) => Msg::Packet(p),
            Some(Item::VideoPacket(_)) => {
                return Err(StageFail::of(
                    STAGE,
                    EngineError::Invariant("an undecoded video packet on the CPU path".into()),
                ))
            }
            Some(Item::Frame(f)) => {
                if f.is_interlaced() {
                    warn_interlaced(warned, d.warnings);
                }
                if (f.width(), f.height()) != (w, h) {
                    let changed = format!("frame size changed mid-stream from {w}x{h} to {}x{}", f.width(), f.height());
                    return Err(StageFail::of(STAGE, EngineError::Invariant(changed)));
                }
                c.stage.frames += 1;
                if let Some(win) = d.window {
                    win.on_frame(c.stage.frames);
                }
                let frame = convert(&f, d.path, d.pools, info, &mut to_rgb).map_err(|e| StageFail::of(STAGE, e))?;
                Msg::Frame { frame, pts: f.pts(), duration: f.duration() }
            }
        };
        c.busy(t.elapsed().as_secs_f64());
        timed_send(&d.out, msg, c, d.depth)?;
    }
}

/// One decoded frame into a recycled buffer of the plan's form (the stage's loop runs on its own rayon pool, so
/// the parallel rows of the conversion stay there).
fn convert(
    f: &Frame,
    path: FramePath,
    pools: &Pools,
    info: &VideoInfo,
    to_rgb: &mut ToRgb,
) -> Result<Decoded, crate::video::VideoError> {
    Ok(match path {
        // A file whose NVDEC decoder could not be opened falls back to uploading CPU-decoded frames.
        FramePath::Upload | FramePath::Nvdec => {
            let mut frame = pools.take_yuv_in(info);
            frame.read_from(f, info.color.matrix, info.color.range)?;
            Decoded::Yuv(frame)
        }
        FramePath::HostRgb => {
            let mut buf = pools.rgb_in.1.try_recv().unwrap_or_default();
            to_rgb.convert(f, &mut buf)?;
            Decoded::Rgb(buf)
        }
    })
}
