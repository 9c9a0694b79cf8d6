//! The encode stage: converts RGB frames to the encoder's Y'CbCr (or takes the GPU stage's 4:2:0 as is), encodes
//! with the input's timestamps, muxes video and copied packets (libavformat interleaves them), and finishes the
//! output on `End`.

use super::super::msg::{timed_recv, Counters, Msg, StageFail, Upscaled};
use super::super::progress::{report_encoded, FileProgress, Progress};
use super::super::report::{TimelinePoint, TIMELINE_POINTS};
use super::Pools;
use crate::pipeline::Cancel;
use crate::queue::Receiver;
use crate::video::{Finished, Sink};
use std::path::Path;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::sync::Arc;
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
    /// The three stages' busy clocks (decode, infer, encode: this one is the last).
    pub(super) clocks: &'a [Arc<AtomicU64>; 3],
    /// When the stages started.
    pub(super) started: Instant,
}

/// What the stage hands back: its result, its counters, the packets copied and when the encoder finished. The sink
/// is dropped with the stage: finished, or only released (the caller removes the partial file on failure).
pub(super) struct Encoded {
    pub(super) result: Result<Finished, StageFail>,
    pub(super) counters: Counters,
    pub(super) packets: u64,
    pub(super) done_at: Instant,
    pub(super) timeline: Vec<TimelinePoint>,
}

/// Runs the stage until `End` (then finishes the output) or a failure.
pub(super) fn run(mut e: Encode<'_>) -> Encoded {
    let mut c = Counters::new(STAGE, &e.clocks[2]);
    let mut timeline = Timeline::new(e.started, e.clocks);
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
                    timeline.tick(c.stage.frames, false);
                }
                Msg::Packet(p) => {
                    e.sink.write_packet(p).map_err(|err| StageFail::of(STAGE, err))?;
                    packets += 1;
                }
                Msg::End => {
                    let done = e.sink.finish().map_err(|err| StageFail::of(STAGE, err))?;
                    c.busy(t.elapsed().as_secs_f64());
                    timeline.tick(c.stage.frames, true);
                    return Ok(done);
                }
            }
            c.busy(t.elapsed().as_secs_f64());
        }
    })();
    // The pipeline's work ends with the trailer; the decoder's teardown after that is not throughput.
    Encoded { result, counters: c, packets, done_at: Instant::now(), timeline: timeline.points }
}

/// The file's timeline, sampled from the encode thread.
struct Timeline<'a> {
    started: Instant,
    clocks: &'a [Arc<AtomicU64>; 3],
    points: Vec<TimelinePoint>,
    last: f64,
    step: f64,
}

impl<'a> Timeline<'a> {
    fn new(started: Instant, clocks: &'a [Arc<AtomicU64>; 3]) -> Timeline<'a> {
        Timeline { started, clocks, points: Vec::with_capacity(TIMELINE_POINTS), last: f64::MIN, step: 0.25 }
    }

    /// Records a point when a step has passed since the last one (always at the end).
    fn tick(&mut self, frames: u64, end: bool) {
        let t = self.started.elapsed().as_secs_f64();
        if !end && t - self.last < self.step {
            return;
        }
        if self.points.len() == TIMELINE_POINTS {
            // Full: keep every other point and double the step (in place: no allocation).
            let mut i = 0;
            self.points.retain(|_| {
                i += 1;
                i % 2 == 0
            });
            self.step *= 2.0;
        }
        let busy = |i: usize| self.clocks[i].load(Ordering::Relaxed) as f64 / 1e6;
        self.points.push(TimelinePoint { t_s: t, frames, busy_s: [busy(0), busy(1), busy(2)] });
        self.last = t;
    }
}
