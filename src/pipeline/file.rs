//! One file from input to published output: open the input, plan the file from its facts, open the output under a
//! temporary name, run the stages, publish atomically, and report. On any failure nothing is left at the output's
//! path and the temporary file is removed.

use super::engine::Engine;
use super::progress::{FileProgress, Progress};
use super::publish::{discard, partial_path, publish, sweep_stale};
use super::report::{audit_table, peak_rss_bytes, process_cpu_s, FileReport};
use super::stages::{self, Stages};
use super::Cancel;
use crate::audit::{AllocWindow, AuditReport};
use crate::error::EngineError;
use crate::plan::{plan_file, FilePlan, FileSettings, FramePath, InputFacts};
use crate::video::{errno, DecoderFeed, FrameFilter, Sink, Source, VideoError, VideoInfo, VideoOut, YuvFrame};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
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
    // Frames and bytes handed to the muxer so far, for the estimate of a full disk.
    let (frames, bytes, total) = (AtomicU64::new(0), AtomicU64::new(0), source.info().estimated_frames);
    let counted = FileProgress::new(|p: &Progress| {
        frames.store(p.frames_muxed, Ordering::Relaxed);
        bytes.store(p.bytes_muxed, Ordering::Relaxed);
        progress.report(p);
    });
    let result = run(source, &plan, &mut engine, &tmp, cancel, &counted, &metadata, audit, digest_frames);
    let pool = engine.pool_stats();
    drop(engine);
    let checked = |r| before_publish.map_or(Ok(()), |check| check()).map(|()| r);
    let (run, info, mut warnings, decoder, path) =
        match result.and_then(checked).and_then(|r| publish(&tmp, output).map(|()| r)) {
            Ok(r) => r,
            Err(e) => {
                // The sink is released by now (its file descriptor closed): the partial file goes.
                let so_far = Written {
                    frames: frames.load(Ordering::Relaxed),
                    frames_total: total,
                    muxed: bytes.load(Ordering::Relaxed),
                };
                let e = output_fault(e, &tmp, output, &so_far);
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
        retried_with_tile: None,
    })
}

/// The input's frame size (width, height), read from its header: what a retry with smaller tiles is planned from.
pub fn frame_size(input: &Path) -> Result<(u32, u32), EngineError> {
    let source = Source::open(input, 1)?;
    Ok((source.info().width, source.info().height))
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

/// How far a file got when its output failed: frames (video packets) and bytes handed to the muxer, and about how
/// many frames the file has.
struct Written {
    frames: u64,
    frames_total: Option<u64>,
    muxed: u64,
}

/// Write errors from the muxer become output faults naming the final path once (the temporary name means nothing
/// to a user), classified by their OS error. A full disk gets an estimate of the room the file still needed.
fn output_fault(e: EngineError, tmp: &Path, output: &Path, so_far: &Written) -> EngineError {
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
            if n == errno::ENOSPC || n == errno::EDQUOT =>
        {
            let on_disk = std::fs::metadata(tmp).map(|m| m.len()).unwrap_or(0);
            EngineError::Output { path, errno: Some(n), detail, need_bytes: room_needed(on_disk, so_far) }
        }
        e => e,
    }
}

/// About how many more bytes a file needs that got `on_disk` bytes onto the disk: its final size estimated from the
/// bytes muxed so far per frame, times the frames expected, less what is on disk (a muxer holds some back: Matroska
/// a whole cluster), and at least 1 % of that size (the index still has to fit). "About": the frame count may be
/// an estimate, frames differ in size, and the container adds its index. `None` when nothing is known to estimate
/// from.
fn room_needed(on_disk: u64, so_far: &Written) -> Option<u64> {
    let (done, muxed) = (so_far.frames, so_far.muxed);
    if done == 0 || muxed == 0 {
        return None;
    }
    let total = so_far.frames_total?.max(done);
    let size = (u128::from(muxed) * u128::from(total) / u128::from(done)) as u64;
    Some(size.saturating_sub(on_disk).max(size / 100).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_a_full_disk_needs_is_the_estimated_size_less_what_is_on_disk() {
        let w = |frames, frames_total, muxed| Written { frames, frames_total, muxed };
        // 10 MiB muxed for 10 of 40 frames: about 40 MiB in all; 8 MiB reached the disk.
        assert_eq!(room_needed(8 << 20, &w(10, Some(40), 10 << 20)), Some(32 << 20));
        // Full at the trailer, with a muxer that held 3 MiB back: about those 3 MiB.
        assert_eq!(room_needed(7 << 20, &w(40, Some(40), 10 << 20)), Some(3 << 20));
        // Everything reached the disk but the index: at least 1 % of the size.
        assert_eq!(room_needed(100 << 20, &w(40, Some(40), 100 << 20)), Some(1 << 20));
        // Nothing encoded, nothing muxed, or no frame count: no number.
        assert_eq!(room_needed(0, &w(0, Some(40), 0)), None);
        assert_eq!(room_needed(0, &w(3, Some(40), 0)), None);
        assert_eq!(room_needed(1 << 20, &w(10, None, 10 << 20)), None);
    }

    #[test]
    fn muxer_write_errors_become_output_faults_naming_the_final_path() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (tmp, out) = (dir.path().join(".o.mp4.partial-1"), dir.path().join("o.mp4"));
        std::fs::write(&tmp, vec![0u8; 4 << 20]).unwrap_or_else(|e| panic!("{e}"));
        let write = |n: i32| {
            EngineError::in_stage(
                "encode",
                VideoError::Write { what: "video packet", source: ffmpeg_next::Error::from(-n) },
            )
        };
        let so_far = Written { frames: 4, frames_total: Some(12), muxed: 4 << 20 };
        let full = output_fault(write(errno::ENOSPC), &tmp, &out, &so_far);
        assert_eq!(
            full.to_string(),
            format!("disk full: {} needs about 8.0 MiB more (video packet: No space left on device)", out.display())
        );
        assert_eq!(full.exit_code(), crate::error::exit_codes::TRANSIENT);
        let ro = output_fault(write(errno::EROFS), &tmp, &out, &so_far);
        assert_eq!(ro.retry(), crate::error::Retry::Permanent);
        assert_eq!(
            ro.to_string(),
            format!(
                "cannot write {}: the file system is read-only (video packet: Read-only file system)",
                out.display()
            )
        );
    }
}
