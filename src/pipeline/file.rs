//! One file from input to published output: open the input, plan the file from its facts, open the output under a
//! temporary name, run the stages, publish atomically, and report. On any failure nothing is left at the output's
//! path and the temporary file is removed.

use super::engine::Engine;
use super::progress::FileProgress;
use super::publish::{discard, partial_path, publish, sweep_stale};
use super::report::{audit_table, peak_rss_bytes, process_cpu_s, FileReport};
use super::stages::{self, Stages};
use super::Cancel;
use crate::audit::{AllocWindow, AuditReport};
use crate::error::EngineError;
use crate::plan::{plan_file, FilePlan, FileSettings, FramePath, InputFacts};
use crate::video::{DecoderFeed, FrameFilter, Sink, Source, VideoError, VideoInfo, VideoOut, YuvFrame};
use std::path::Path;
use std::time::Instant;

/// One file to upscale.
pub struct FileJob<'a> {
    /// The file's settings from the engine plan (input, output, encoder, stage sizes, decode routes, scale).
    pub settings: FileSettings<'a>,
    /// The engine; the inference thread owns it for the file's duration.
    pub engine: Engine,
    /// Cancellation token.
    pub cancel: &'a Cancel,
    /// Per-frame progress.
    pub progress: FileProgress<'a>,
    /// Extra container metadata (the engine fingerprint).
    pub metadata: Vec<(String, String)>,
    /// Audit the run (steady-state allocations, stage overlap, pool): `Some(traces)` fills the report's `audit`
    /// field, printing the first `traces` allocations of the window.
    pub audit: Option<u64>,
    /// Hash the frames sent to the encoder into the report's `frames_sha256` (the audit's two runs).
    pub digest_frames: bool,
    /// Asked just before the output is published: an error (the file's claim was taken over) discards it.
    pub before_publish: Option<&'a (dyn Fn() -> Result<(), EngineError> + Sync)>,
}

/// What the plan needs to know about an opened input.
pub fn input_facts(source: &Source) -> InputFacts {
    let info = source.info();
    InputFacts {
        codec: info.codec.clone(),
        width: info.width,
        height: info.height,
        bit_depth: info.bit_depth,
        pixel_format: info.pixel_format.clone(),
        chroma: info.chroma,
        planar_yuv: source.planar_yuv(),
        alpha: info.alpha,
        needs_swscale: source.needs_swscale(),
        frame_rate: info.frame_rate,
        time_base: info.time_base,
        container: info.container.clone(),
        interlacing: info.interlacing.clone(),
    }
}

/// Opens an input and plans it: what `videoforge plan` shows per file before anything runs.
pub fn plan_input(settings: &FileSettings<'_>) -> Result<FilePlan, EngineError> {
    let source = Source::open(settings.input, settings.pipeline.cpu_threads.max(1))?;
    Ok(plan_file(settings, &input_facts(&source)))
}

/// Upscale one file: plan it, run decode → infer → encode on three threads, publish the output atomically.
///
/// On cancel returns [`EngineError::Interrupted`]; on any failure the temporary file is removed and nothing is
/// left at the output's path.
pub fn upscale_file(job: FileJob<'_>) -> Result<FileReport, EngineError> {
    let started = Instant::now();
    let cpu_before = process_cpu_s();
    let FileJob { settings, mut engine, cancel, progress, metadata, audit, digest_frames, before_publish } = job;
    let (input, output) = (settings.input, settings.output);
    let source = Source::open(input, settings.pipeline.cpu_threads.max(1))?;
    let plan = plan_file(&settings, &input_facts(&source));
    if engine.scale() != plan.scale {
        return Err(EngineError::Invariant(format!(
            "the plan says scale {} but the model's is {}",
            plan.scale,
            engine.scale()
        )));
    }
    sweep_stale(output);
    let tmp = partial_path(output);
    let result = run(source, &plan, &mut engine, &tmp, cancel, &progress, &metadata, audit, digest_frames);
    let pool = engine.pool_stats();
    drop(engine);
    let checked = |r| before_publish.map_or(Ok(()), |check| check()).map(|()| r);
    let (run, info, mut warnings, decoder, path) =
        match result.and_then(checked).and_then(|r| publish(&tmp, output).map(|()| r)) {
            Ok(r) => r,
            Err(e) => {
                let e = with_need(e, &tmp, output);
                discard(&tmp);
                return Err(e);
            }
        };
    warnings.extend(run.warnings);
    let wall_s = started.elapsed().as_secs_f64();
    let audit = audit.map(|_| {
        let mut a = AuditReport {
            steady_state: run.window.as_ref().and_then(|w| w.finish(run.frames)),
            busy_sum_s: run.stages.iter().map(|s| s.busy_s).sum(),
            wall_s: run.pipeline_wall_s,
            pool,
            stage_table: audit_table(&run.stages, &run.queues),
            ..Default::default()
        };
        a.evaluate();
        a
    });
    Ok(FileReport {
        input: input.into(),
        output: output.into(),
        video: info,
        scale: plan.scale,
        output_width: plan.output_size.0,
        output_height: plan.output_size.1,
        output_bit_depth: plan.bit_depth,
        output_chroma: plan.chroma,
        output_pixel_format: plan.pixel_format.clone(),
        filter: plan.filter.clone(),
        encoder: plan.encode.encoder.clone(),
        encoder_profile: plan.encode.profile.clone(),
        encoder_instances: plan.encode.segments.max(1),
        segment_frames: (plan.encode.segments > 1).then_some(plan.encode.segment_frames),
        decoder: decoder.into(),
        frame_path: path,
        frame_path_reason: plan.frames_reason.clone(),
        container: plan.muxer.clone(),
        frames_decoded: run.decoded,
        frames_encoded: run.frames,
        packets_copied: run.packets,
        wall_s,
        fps: if wall_s > 0.0 { run.frames as f64 / wall_s } else { 0.0 },
        stages: run.stages,
        queues: run.queues,
        peak_rss_bytes: peak_rss_bytes(),
        cpu_s: cpu_before.zip(process_cpu_s()).map(|(a, b)| b - a),
        warnings,
        audit,
        frames_sha256: run.frames_sha256,
        quality: run.quality,
        timeline: run.timeline,
    })
}

/// A finished run of the stages, with what the report needs from its set-up.
struct Ran {
    /// Frames decoded.
    decoded: u64,
    /// Frames encoded (the filtered ones where a filter ran).
    frames: u64,
    pipeline_wall_s: f64,
    packets: u64,
    stages: Vec<super::report::StageReport>,
    queues: Vec<super::report::QueueReport>,
    warnings: Vec<String>,
    frames_sha256: Option<String>,
    quality: super::quality::QualityReport,
    timeline: Vec<super::report::TimelinePoint>,
    window: Option<AllocWindow>,
}

type RunOutput = (Ran, VideoInfo, Vec<String>, &'static str, FramePath);

/// Opens the output and the device decoder as the plan says, and runs the stages into `tmp`.
#[allow(clippy::too_many_arguments)]
fn run(
    mut source: Source,
    plan: &FilePlan,
    engine: &mut Engine,
    tmp: &Path,
    cancel: &Cancel,
    progress: &FileProgress<'_>,
    metadata: &[(String, String)],
    audit: Option<u64>,
    digest_frames: bool,
) -> Result<RunOutput, EngineError> {
    let info = source.info().clone();
    let mut warnings = source.take_warnings();
    warnings.extend(plan.warnings.iter().cloned());
    let (sw, sh) = plan.upscaled;
    let (ow, oh) = plan.output_size;
    let vout = VideoOut {
        width: ow,
        height: oh,
        src_width: sw,
        src_height: sh,
        bit_depth: plan.bit_depth,
        chroma: plan.chroma,
        pixel_format: plan.pixel_format.clone(),
        time_base: plan.filter.time_base,
        frame_rate: plan.filter.frame_rate,
    };
    let (mut sink, w) = Sink::create(tmp, &plan.muxer, &source, vout, &plan.encode, metadata)
        .map_err(|e| EngineError::in_stage("encode", e))?;
    warnings.extend(w);
    if digest_frames {
        sink.digest_frames();
    }
    // The encoder-format frame the GPU stage fills, in the output's colour.
    let c = sink.color();
    let out_template = YuvFrame::planar(sw as usize, sh as usize, plan.bit_depth, plan.chroma, c.matrix, c.range);
    let (mut path, mut nvdec, mut decoder) = (plan.frames, None, "cpu");
    if plan.frames == FramePath::Nvdec {
        let opened = engine
            .gpu()
            .ok_or_else(|| EngineError::Invariant("the plan says NVDEC but the engine has no GPU stage".into()))?
            .decoder(&info, plan.filter.kind);
        match opened {
            Ok(d) => {
                let feed = DecoderFeed::new(&source).map_err(|e| EngineError::in_stage("decode", e))?;
                source.hand_out_video_packets();
                nvdec = Some((d, feed));
                decoder = "nvdec";
            }
            // The plan checked what the probe knows; a driver that still refuses gets the upload path.
            Err(why) => {
                warnings.push(format!("NVDEC not used: {why}; decoding on the CPU"));
                path = FramePath::Upload;
            }
        }
    }
    // The CPU filter: the plan's chain, or bwdif in place of NVDEC's deinterlacer when NVDEC could not be opened.
    let fallback = (nvdec.is_none()).then(|| cpu_fallback(&plan.filter)).flatten();
    let filter = match plan.filter.chain.as_ref().map(|_| &plan.filter).or(fallback.as_ref()) {
        Some(f) => Some(FrameFilter::new(f, &info).map_err(|e| EngineError::in_stage("decode", e))?),
        None => None,
    };
    let window = audit.map(|traces| AllocWindow::for_clip(info.estimated_frames, traces));
    let done = stages::run(Stages {
        input: plan.input.as_path(),
        source,
        sink,
        engine,
        info: &info,
        plan,
        path,
        nvdec,
        filter,
        out_template,
        cancel,
        progress,
        window: window.as_ref(),
    })?;
    if done.frames == 0 {
        return Err(
            VideoError::input(&plan.input, "the video stream has no frames", crate::retry::Retry::Permanent).into()
        );
    }
    let ran = Ran {
        decoded: done.decoded,
        frames: done.frames,
        pipeline_wall_s: done.pipeline_wall_s,
        packets: done.packets,
        stages: done.stages,
        queues: done.queues,
        warnings: done.warnings,
        frames_sha256: done.frames_sha256,
        quality: done.quality,
        timeline: done.timeline,
        window,
    };
    Ok((ran, info, warnings, decoder, path))
}

/// The CPU filter that stands in for NVDEC's deinterlacer (same rate, same field order) when NVDEC was planned but
/// could not be opened.
fn cpu_fallback(f: &crate::plan::FilterPlan) -> Option<crate::plan::FilterPlan> {
    use crate::plan::FilterKind;
    let (kind, mode) = match f.kind {
        FilterKind::NvdecAdaptive => (FilterKind::Bwdif, "send_frame"),
        FilterKind::NvdecAdaptiveDouble => (FilterKind::BwdifDouble, "send_field"),
        _ => return None,
    };
    let order = f.field_order.map_or("tff", |o| o.as_str());
    Some(crate::plan::FilterPlan {
        kind,
        chain: Some(format!("bwdif=mode={mode}:parity={order}:deint=all")),
        summary: format!("{} (bwdif on the CPU: NVDEC could not be opened)", f.summary),
        ..f.clone()
    })
}

/// A full disk gets the room the file still needed, estimated from what was written so far. Write errors from
/// the muxer become output faults naming the final path once.
fn with_need(e: EngineError, tmp: &Path, output: &Path) -> EngineError {
    let written = std::fs::metadata(tmp).map(|m| m.len()).unwrap_or(0);
    let fault = match e.root() {
        EngineError::Video(v @ (VideoError::Write { .. } | VideoError::Create { .. })) => {
            Some((v.errno(), v.to_string()))
        }
        _ => None,
    };
    let e = match fault {
        Some((errno, detail)) => EngineError::output(output, errno, detail),
        None => e,
    };
    match e {
        EngineError::Output { path, errno: Some(n), detail, need_bytes: None }
            if n == crate::video::errno::ENOSPC || n == crate::video::errno::EDQUOT =>
        {
            // At least as much again as was written: the file's size is not known before it is encoded.
            EngineError::Output { path, errno: Some(n), detail, need_bytes: Some(written.max(1 << 20)) }
        }
        e => e,
    }
}
