//! The encode stage: converts RGB frames to the encoder's Y'CbCr (or takes the GPU stage's 4:2:0 as is), encodes
//! with the input's timestamps, muxes video and copied packets (libavformat interleaves them), and finishes the
//! output on `End`.

use super::super::msg::{timed_recv, Counters, Msg, StageFail, Upscaled};
use super::super::progress::{report_encoded, FileProgress, Progress};
use super::Pools;
use crate::pipeline::Cancel;
use crate::queue::Receiver;
use crate::video::{Finished, Sink};
use std::path::Path;
use std::sync::atomic::AtomicIsize;
use std::time::Instant;

const STAGE: &str = "encode";

/// What the encode thread works with.
pub(super) struct Encode<'a> {
    pub(super) sink: Sink,
    pub(super) input_path: &'a Path,
    pub(super) frames_total: Option<u64>,
    pub(super) pools: &'a Pools,
    pub(super) input: Receiver<Msg<Upscaled>>,
    pub(super) input_depth: &'a AtomicIsize,
    pub(super) cancel: &'a Cancel,
    pub(super) progress: &'a FileProgress<'a>,
}

/// What the stage hands back: its result, its counters, the packets copied and when the encoder finished. The sink
/// is dropped with the stage: finished, or only released (the caller removes the partial file on failure).
pub(super) struct Encoded {
    pub(super) result: Result<Finished, StageFail>,
    pub(super) counters: Counters,
    pub(super) packets: u64,
    pub(super) done_at: Instant,
}

/// Runs the stage until `End` (then finishes the output) or a failure.
pub(super) fn run(mut e: Encode<'_>) -> Encoded {
    let mut c = Counters::new(STAGE);
    let mut packets = 0u64;
    let t0 = Instant::now();
    // Built once: the per-frame report only updates the counters (no allocation per frame).
    let (input, frames_total) = (e.input_path.into(), e.frames_total);
    let mut prog = Progress { input, frames_done: 0, frames_total, frames_muxed: 0, bytes_muxed: 0, fps: 0.0 };
    let result = (|| -> Result<Finished, StageFail> {
        loop {
            let Some(msg) = timed_recv(&e.input, &mut c, e.input_depth) else { return Err(StageFail::Peer) };
            if e.cancel.is_stopped() {
                return Err(StageFail::Peer);
            }
            let t = Instant::now();
            match msg {
                Msg::Frame { frame, pts, duration } => {
                    match frame {
                        Upscaled::Rgb(buf) => {
                            e.sink.write_frame(&buf, pts, duration).map_err(|err| StageFail::of(STAGE, err))?;
                            e.pools.give_rgb_out(buf);
                        }
                        Upscaled::Yuv(frame) => {
                            e.sink.write_yuv(&frame, pts, duration).map_err(|err| StageFail::of(STAGE, err))?;
                            e.pools.give_yuv_out(frame);
                        }
                    }
                    c.stage.frames += 1;
                    (prog.frames_muxed, prog.bytes_muxed) = e.sink.muxed();
                    report_encoded(c.stage.frames, t0, &mut prog, e.progress);
                }
                Msg::Packet(p) => {
                    e.sink.write_packet(p).map_err(|err| StageFail::of(STAGE, err))?;
                    packets += 1;
                }
                Msg::End => {
                    let done = e.sink.finish().map_err(|err| StageFail::of(STAGE, err))?;
                    c.stage.busy_s += t.elapsed().as_secs_f64();
                    return Ok(done);
                }
            }
            c.stage.busy_s += t.elapsed().as_secs_f64();
        }
    })();
    // The pipeline's work ends with the trailer; the decoder's teardown after that is not throughput.
    Encoded { result, counters: c, packets, done_at: Instant::now() }
}
