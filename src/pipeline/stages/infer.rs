//! The inference stage: owns the engine for the file's duration, upscales each frame, passes packets through, and
//! runs every frame's model output through the quality gates before it goes on to the encoder.

use super::super::engine::Engine;
use super::super::msg::{timed_recv, timed_send, Counters, Decoded, Msg, StageFail, Upscaled};
use super::super::quality::{luma_stats, luma_values, rgb_luma, rgb_stats, FrameStats, Gates, QualityReport};
use super::Pools;
use crate::error::EngineError;
use crate::gpu::quality::DeviceStats;
use crate::pipeline::Cancel;
use crate::queue::{Receiver, Sender};
use crate::video::{Quant, YuvFrame};
use std::sync::atomic::{AtomicIsize, AtomicU64};
use std::sync::Arc;
use std::time::Instant;

const STAGE: &str = "infer";

/// Luma of 4:2:0 planes is sampled every 4th pixel each way for the flatness gate.
const LUMA_STEP: usize = 4;

/// What the inference thread works with.
pub(super) struct Infer<'a> {
    pub(super) engine: &'a mut Engine,
    /// Input frame size.
    pub(super) width: usize,
    pub(super) height: usize,
    pub(super) pools: &'a Pools,
    pub(super) gates: Gates,
    pub(super) input: Receiver<Msg<Decoded>>,
    pub(super) input_depth: &'a AtomicIsize,
    pub(super) out: Sender<Msg<Upscaled>>,
    pub(super) out_depth: &'a AtomicIsize,
    pub(super) cancel: &'a Cancel,
    pub(super) clock: &'a Arc<AtomicU64>,
}

/// Runs the stage until the end of the stream; returns its result, its counters and what the gates saw.
pub(super) fn run(mut s: Infer<'_>) -> (Result<(), StageFail>, Counters, QualityReport) {
    let mut c = Counters::new(STAGE, s.clock);
    let r = run_loop(&mut s, &mut c);
    (r, c, s.gates.finish())
}

fn run_loop(s: &mut Infer<'_>, c: &mut Counters) -> Result<(), StageFail> {
    loop {
        let Some(msg) = timed_recv(&s.input, c, s.input_depth) else { return Err(StageFail::Peer) };
        if s.cancel.is_stopped() {
            return Err(StageFail::Peer);
        }
        let out = match msg {
            Msg::Frame { frame, pts, duration } => {
                let t = Instant::now();
                let frame = upscale(s, frame, c.stage.frames + 1)?;
                c.stage.frames += 1;
                c.busy(t.elapsed().as_secs_f64());
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

/// One frame through the engine, into a recycled output buffer, and through the gates; the input buffer goes
/// back to its pool.
fn upscale(s: &mut Infer<'_>, frame: Decoded, number: u64) -> Result<Upscaled, StageFail> {
    let fail = |e: EngineError| StageFail::of(STAGE, e);
    let (w, h) = (s.width, s.height);
    let scale = s.engine.scale() as usize;
    let sampled = s.gates.samples(number);
    let (out, input_stats, output_stats) = match frame {
        Decoded::Rgb(buf) => {
            let mut out = s.pools.rgb_out.1.try_recv().unwrap_or_default();
            s.engine.host().upscale(&buf, w, h, &mut out).map_err(|e| fail(e.into()))?;
            let want = 3 * w * h * scale * scale;
            if out.len() != want {
                let got = out.len();
                return Err(fail(EngineError::Invariant(format!("model returned {got} values, expected {want}"))));
            }
            let stats = (rgb_stats(&buf, w, h), rgb_stats(&out, w * scale, h * scale));
            if sampled {
                let (a, b) = s.gates.scratch();
                rgb_luma(&buf, w, h, a);
                rgb_luma(&out, w * scale, h * scale, b);
                s.gates.measure(w, h, scale);
            }
            s.pools.give_rgb_in(buf);
            (Upscaled::Rgb(out), Some(stats.0), stats.1)
        }
        Decoded::Yuv(input) => {
            let mut out = s.pools.take_yuv_out()?;
            let gpu = s.engine.gpu().ok_or_else(|| fail(no_stage("a 4:2:0 frame")))?;
            let device = gpu.upscale_yuv(&input, &mut out).map_err(|e| fail(e.into()))?;
            let input_stats = yuv_stats(&input);
            if sampled {
                let (a, b) = s.gates.scratch();
                yuv_luma(&input, a);
                yuv_luma(&out, b);
                s.gates.measure(w, h, scale);
            }
            s.pools.give_yuv_in(input);
            let output_stats = FrameStats { non_finite: u64::from(device.non_finite), ..yuv_stats(&out) };
            (Upscaled::Yuv(out), Some(input_stats), output_stats)
        }
        Decoded::Device(input) => {
            let mut out = s.pools.take_yuv_out()?;
            let gpu = s.engine.gpu().ok_or_else(|| fail(no_stage("an NVDEC frame")))?;
            let device = gpu.upscale_device(&input, &mut out).map_err(|e| fail(e.into()))?;
            let input_stats = device_input_stats(&device, input.bit_depth, &out);
            input.recycle();
            if sampled {
                s.gates.reference_unavailable("not measured on the NVDEC path: its input frames stay on the GPU");
            }
            let output_stats = FrameStats { non_finite: u64::from(device.non_finite), ..yuv_stats(&out) };
            (Upscaled::Yuv(out), input_stats, output_stats)
        }
    };
    s.gates
        .check(number, input_stats, output_stats)
        .map_err(|q| fail(EngineError::Quality { frame: number, reason: q.to_string() }))?;
    Ok(out)
}

/// Luma statistics of a 4:2:0 host frame's Y plane.
fn yuv_stats(f: &YuvFrame) -> FrameStats {
    let q = Quant::new(f.bit_depth, f.range);
    let y = &f.data[f.planes()[0].clone()];
    luma_stats(y, f.bit_depth > 8, f.width, f.height, q.y_off, q.y_scale, LUMA_STEP)
}

/// A 4:2:0 host frame's luma as values in 0–1.
fn yuv_luma(f: &YuvFrame, out: &mut Vec<f32>) {
    let q = Quant::new(f.bit_depth, f.range);
    let y = &f.data[f.planes()[0].clone()];
    luma_values(y, f.bit_depth > 8, f.width, f.height, q.y_off, q.y_scale, out);
}

/// The input statistics the device reduced from an NVDEC picture (codes at its bit depth, in the output's range).
fn device_input_stats(d: &DeviceStats, bit_depth: u8, out: &YuvFrame) -> Option<FrameStats> {
    let [n, sum, sum_sq] = d.input_luma?;
    let q = Quant::new(bit_depth, out.range);
    let codes = FrameStats::from_sums(n, sum as f64, sum_sq as f64, 0);
    Some(FrameStats {
        mean: ((codes.mean - f64::from(q.y_off)) / f64::from(q.y_scale)).clamp(0.0, 1.0),
        std: codes.std / f64::from(q.y_scale),
        non_finite: 0,
    })
}

/// The plan sent device-path frames to an engine without a GPU stage: the plan and the engine disagree.
fn no_stage(what: &str) -> EngineError {
    EngineError::Invariant(format!("{what} reached an engine without a GPU stage"))
}
