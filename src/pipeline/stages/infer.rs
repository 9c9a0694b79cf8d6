//! The inference stage: owns the engine for the file's duration, upscales each frame, passes packets through.

use super::super::engine::Engine;
use super::super::msg::{timed_recv, timed_send, Counters, Decoded, Msg, StageFail, Upscaled};
use super::Pools;
use crate::error::EngineError;
use crate::pipeline::Cancel;
use crate::queue::{Receiver, Sender};
use std::sync::atomic::AtomicIsize;
use std::time::Instant;

const STAGE: &str = "infer";

/// What the inference thread works with.
pub(super) struct Infer<'a> {
    pub(super) engine: &'a mut Engine,
    /// Input frame size.
    pub(super) width: usize,
    pub(super) height: usize,
    pub(super) pools: &'a Pools,
    pub(super) input: Receiver<Msg<Decoded>>,
    pub(super) input_depth: &'a AtomicIsize,
    pub(super) out: Sender<Msg<Upscaled>>,
    pub(super) out_depth: &'a AtomicIsize,
    pub(super) cancel: &'a Cancel,
}

/// Runs the stage until the end of the stream.
pub(super) fn run(s: Infer<'_>) -> (Result<(), StageFail>, Counters) {
    let mut c = Counters::new(STAGE);
    let r = run_loop(s, &mut c);
    (r, c)
}

fn run_loop(s: Infer<'_>, c: &mut Counters) -> Result<(), StageFail> {
    let scale = s.engine.scale() as usize;
    let want = 3 * s.width * s.height * scale * scale;
    loop {
        let Some(msg) = timed_recv(&s.input, c, s.input_depth) else { return Err(StageFail::Peer) };
        if s.cancel.is_stopped() {
            return Err(StageFail::Peer);
        }
        let out = match msg {
            Msg::Frame { frame, pts, duration } => {
                let t = Instant::now();
                let frame = upscale(s.engine, frame, s.pools, s.width, s.height, want)?;
                c.stage.frames += 1;
                c.stage.busy_s += t.elapsed().as_secs_f64();
                Msg::Frame { frame, pts, duration }
            }
            Msg::Packet(p) => Msg::Packet(p),
            Msg::End => Msg::End,
        };
        let end = matches!(out, Msg::End);
        timed_send(&s.out, out, c, s.out_depth)?;
        if end {
            return Ok(());
        }
    }
}

/// One frame through the engine, into a recycled output buffer; the input buffer goes back to its pool.
fn upscale(
    engine: &mut Engine,
    frame: Decoded,
    pools: &Pools,
    w: usize,
    h: usize,
    want: usize,
) -> Result<Upscaled, StageFail> {
    let fail = |e: EngineError| StageFail::of(STAGE, e);
    match frame {
        Decoded::Rgb(buf) => {
            let mut out = pools.rgb_out.1.try_recv().unwrap_or_default();
            engine.host().upscale(&buf, w, h, &mut out).map_err(|e| fail(e.into()))?;
            if out.len() != want {
                let got = out.len();
                return Err(fail(EngineError::Invariant(format!("model returned {got} values, expected {want}"))));
            }
            pools.give_rgb_in(buf);
            Ok(Upscaled::Rgb(out))
        }
        Decoded::Yuv(input) => {
            let mut out = pools.take_yuv_out()?;
            let gpu = engine.gpu().ok_or_else(|| fail(no_stage("a 4:2:0 frame")))?;
            gpu.upscale_yuv(&input, &mut out).map_err(|e| fail(e.into()))?;
            pools.give_yuv_in(input);
            Ok(Upscaled::Yuv(out))
        }
        Decoded::Device(input) => {
            let mut out = pools.take_yuv_out()?;
            let gpu = engine.gpu().ok_or_else(|| fail(no_stage("an NVDEC frame")))?;
            gpu.upscale_device(&input, &mut out).map_err(|e| fail(e.into()))?;
            input.recycle();
            Ok(Upscaled::Yuv(out))
        }
    }
}

/// The plan sent device-path frames to an engine without a GPU stage: the plan and the engine disagree.
fn no_stage(what: &str) -> EngineError {
    EngineError::Invariant(format!("{what} reached an engine without a GPU stage"))
}
