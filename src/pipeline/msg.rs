//! What moves between the stages: frames (in the form the file's plan chose), other streams' packets in file
//! order, and an explicit end. A stage that sees its queue close without `End` knows that a neighbour failed (or
//! the run was cancelled) and never finalises a partial output.

use super::report::StageReport;
use crate::error::EngineError;
use crate::gpu::nvdec::DeviceFrame;
use crate::queue::{Receiver, Sender};
use crate::video::{Packet, YuvFrame};
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A decoded frame on its way to the model.
pub(crate) enum Decoded {
    /// Planar RGB `f32` on the host (the host frame path).
    Rgb(Vec<f32>),
    /// 4:2:0 on the host, for the GPU stage to upload.
    Yuv(YuvFrame),
    /// Decoded by NVDEC, still on the device.
    Device(DeviceFrame),
}

/// An upscaled frame on its way to the encoder.
pub(crate) enum Upscaled {
    /// Planar RGB `f32` (the host frame path); the encoder converts it.
    Rgb(Vec<f32>),
    /// Already in the encoder's 4:2:0 format (the GPU stage).
    Yuv(YuvFrame),
}

/// A message down the pipeline.
pub(crate) enum Msg<F> {
    /// A frame with its timestamp and duration (stream time base).
    Frame { frame: F, pts: Option<i64>, duration: i64 },
    /// A packet of another stream (audio, subtitles), copied in file order.
    Packet(Packet),
    /// The stream ended cleanly.
    End,
}

/// How a stage ended, when it did not succeed on its own account.
pub(crate) enum StageFail {
    /// Its own error.
    Error(EngineError),
    /// A neighbour went away (its error is reported by that neighbour) or the run was cancelled.
    Peer,
}

impl StageFail {
    /// An error of `stage`.
    pub(crate) fn of(stage: &'static str, e: impl Into<EngineError>) -> StageFail {
        StageFail::Error(EngineError::in_stage(stage, e))
    }
}

/// A stage's timing and the deepest its output queue has been; its busy time is also published, in
/// microseconds, where the encode stage samples it for the timeline.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) stage: StageReport,
    pub(crate) max_depth: usize,
    clock: Arc<AtomicU64>,
}

impl Counters {
    pub(crate) fn new(name: &'static str, clock: &Arc<AtomicU64>) -> Counters {
        Counters { stage: StageReport { name, ..Default::default() }, max_depth: 0, clock: clock.clone() }
    }

    /// Adds busy seconds.
    pub(crate) fn busy(&mut self, secs: f64) {
        self.stage.busy_s += secs;
        self.clock.fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }
}

/// Receives from a stage queue, counting the wait.
pub(crate) fn timed_recv<T>(rx: &Receiver<Msg<T>>, c: &mut Counters, q: &AtomicIsize) -> Option<Msg<T>> {
    let t = Instant::now();
    let m = rx.recv();
    if m.is_some() {
        q.fetch_sub(1, Ordering::SeqCst);
    }
    c.stage.wait_s += t.elapsed().as_secs_f64();
    m
}

/// Sends down a stage queue, counting the wait and noting the deepest the queue has been.
pub(crate) fn timed_send<T>(
    tx: &Sender<Msg<T>>,
    m: Msg<T>,
    c: &mut Counters,
    q: &AtomicIsize,
) -> Result<(), StageFail> {
    let t = Instant::now();
    tx.send(m).map_err(|_| StageFail::Peer)?;
    let d = q.fetch_add(1, Ordering::SeqCst) + 1;
    c.stage.wait_s += t.elapsed().as_secs_f64();
    c.max_depth = c.max_depth.max(d.max(0) as usize);
    Ok(())
}
