//! The decode stage: demux, decode (libavcodec on the CPU, or NVDEC), filter where the file's plan says
//! (deinterlacing, inverse telecine: libavfilter on the CPU, or NVDEC's own deinterlacer), and hand frames to the
//! inference stage in the form the plan chose — planar RGB, planar Y'CbCr for upload, or NVDEC pictures on the
//! device. Other streams' packets travel down the same queue in file order.

use super::super::msg::{timed_send, Counters, Decoded, Msg, StageFail};
use super::Pools;
use crate::audit::AllocWindow;
use crate::error::EngineError;
use crate::gpu::nvdec::NvDecoder;
use crate::pipeline::Cancel;
use crate::plan::FramePath;
use crate::queue::Sender;
use crate::video::{DecoderFeed, Frame, FrameFilter, Item, Source, ToRgb, VideoInfo};
use std::sync::atomic::{AtomicIsize, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const STAGE: &str = "decode";

const INTERLACED: &str = "interlaced (field-coded) frames are processed as progressive frames: not deinterlaced \
                          (see [filter] deinterlace); the output is flagged progressive";

/// What the decode thread works with.
pub(super) struct Decode<'a> {
    pub(super) source: Source,
    /// The device decoder and its feed, on the NVDEC path.
    pub(super) nvdec: Option<(NvDecoder, DecoderFeed)>,
    /// The plan's CPU filter.
    pub(super) filter: Option<FrameFilter>,
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

/// Frames the stage saw: decoded, and where a filter ran, the frames into and out of it.
pub(super) struct DecodeCounts {
    pub(super) decoded: u64,
    pub(super) filtered: Option<(u64, u64)>,
}

/// Runs the stage to the end of the stream; returns its result, its counters and the frames decoded and filtered.
pub(super) fn run(mut d: Decode<'_>) -> (Result<(), StageFail>, Counters, DecodeCounts) {
    let mut c = Counters::new(STAGE, d.clock);
    // A stream the plan saw as interlaced is filtered, or its plan already says why not.
    let mut warned_interlaced = d.info.interlacing.is_interlaced();
    let r = match d.nvdec.take() {
        Some((mut nv, mut feed)) => {
            let r = on_device(&mut d, &mut nv, &mut feed, &mut c, &mut warned_interlaced);
            // NVDEC's deinterlacer at one frame per field maps each picture twice.
            let filtered = (nv.frames_out() != nv.frames()).then(|| (nv.frames(), nv.frames_out()));
            return (r, c, DecodeCounts { decoded: nv.frames(), filtered });
        }
        None => on_cpu(&mut d, &mut c, &mut warned_interlaced),
    };
    let filtered = d.filter.as_ref().map(|f| (f.frames_in(), f.frames_out()));
    (r, c, DecodeCounts { decoded: d.source.frames_decoded(), filtered })
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
            if !frame.progressive && !nv.deinterlaces() {
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

/// libavcodec: frames filtered where the plan says, converted on the CPU into the form the plan chose.
fn on_cpu(d: &mut Decode<'_>, c: &mut Counters, warned: &mut bool) -> Result<(), StageFail> {
    let info = d.info;
    let (w, h) = (info.width, info.height);
    let mut to_rgb = ToRgb::new(info.color.matrix, info.color.range);
    let mut filter = d.filter.take();
    let result = (|| loop {
        if d.cancel.is_stopped() {
            return Err(StageFail::Peer);
        }
        let mut t = Instant::now();
        let item = d.source.next_item().map_err(|e| StageFail::of(STAGE, e))?;
        match item {
            None => {
                if let Some(f) = filter.as_mut() {
                    f.flush().map_err(|e| StageFail::of(STAGE, e))?;
                    drain(d, c, f, &mut to_rgb, &mut t)?;
                }
                c.busy(t.elapsed().as_secs_f64());
                timed_send(&d.out, Msg::End, c, d.depth)?;
                return Ok(());
            }
            Some(Item::Packet(p)) => {
                c.busy(t.elapsed().as_secs_f64());
                timed_send(&d.out, Msg::Packet(p), c, d.depth)?;
            }
            Some(Item::VideoPacket(_)) => {
                return Err(StageFail::of(
                    STAGE,
                    EngineError::Invariant("an undecoded video packet on the CPU path".into()),
                ))
            }
            Some(Item::Frame(f)) => {
                if (f.width(), f.height()) != (w, h) {
                    let changed = format!("frame size changed mid-stream from {w}x{h} to {}x{}", f.width(), f.height());
                    return Err(StageFail::of(STAGE, EngineError::Invariant(changed)));
                }
                match filter.as_mut() {
                    Some(flt) => {
                        flt.push(f).map_err(|e| StageFail::of(STAGE, e))?;
                        drain(d, c, flt, &mut to_rgb, &mut t)?;
                    }
                    None => {
                        if f.is_interlaced() {
                            warn_interlaced(warned, d.warnings);
                        }
                        emit(d, c, &f, &mut to_rgb, &mut t)?;
                    }
                }
            }
        }
    })();
    d.filter = filter;
    result
}

/// Every frame the filter has ready, downstream.
fn drain(
    d: &mut Decode<'_>,
    c: &mut Counters,
    filter: &mut FrameFilter,
    to_rgb: &mut ToRgb,
    t: &mut Instant,
) -> Result<(), StageFail> {
    while let Some(f) = filter.pull().map_err(|e| StageFail::of(STAGE, e))? {
        emit(d, c, &f, to_rgb, t)?;
    }
    Ok(())
}

/// One frame converted into the plan's form and sent to the inference stage (busy from `t` until the send; `t`
/// restarts after it).
fn emit(d: &mut Decode<'_>, c: &mut Counters, f: &Frame, to_rgb: &mut ToRgb, t: &mut Instant) -> Result<(), StageFail> {
    c.stage.frames += 1;
    if let Some(win) = d.window {
        win.on_frame(c.stage.frames);
    }
    let frame = convert(f, d.path, d.pools, d.info, to_rgb).map_err(|e| StageFail::of(STAGE, e))?;
    c.busy(t.elapsed().as_secs_f64());
    timed_send(&d.out, Msg::Frame { frame, pts: f.pts(), duration: f.duration() }, c, d.depth)?;
    *t = Instant::now();
    Ok(())
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
