//! The worker loop: one thread per worker slot (`files_at_once` per device) takes files off one shared queue,
//! skips what is complete, runs the pipeline, and writes each file's report. A worker whose device fails puts its
//! file back (once) for the others and stops. A file that runs out of device memory is retried once with smaller
//! tiles (the plan's [`crate::plan::oom_retry_tile`]); its report says so.

use super::claim::{self, Acquired, ClaimGuard};
use super::resume::{is_complete, record, report_path, write_atomic, FileRecord, FileStatus};
use super::RunOptions;
use crate::audit::{Determinism, VramAudit};
use crate::backend::Plugin;
use crate::codec::Device;
use crate::digest::sha256_file;
use crate::error::{EngineError, Retry};
use crate::fingerprint::EngineFingerprint;
use crate::pipeline::publish::output_error;
use crate::pipeline::{self, Cancel, EngineBuilder, FileJob, FileProgress, ProgressSink};
use crate::plan::{EnginePlan, FileSettings, PipelinePlan};
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// What every worker shares.
pub(super) struct Shared<'a> {
    pub(super) plan: &'a EnginePlan,
    pub(super) fp: &'a EngineFingerprint,
    pub(super) plugin: &'a Plugin,
    pub(super) cancel: &'a Cancel,
    pub(super) progress: &'a ProgressSink,
    pub(super) opts: &'a RunOptions,
    /// Work-item indices still to do, with the number of workers that gave each back.
    pub(super) queue: Mutex<VecDeque<(usize, u32)>>,
    /// The files of other shards this task may take (stealing): reported only when this task processed them.
    pub(super) stolen: HashSet<usize>,
    pub(super) records: Mutex<Vec<(usize, FileRecord)>>,
}

/// Runs every worker slot of the plan until the queue is empty; returns the records, in work-list order.
pub(super) fn run_all(shared: &Shared<'_>) -> Vec<FileRecord> {
    std::thread::scope(|scope| {
        for worker in &shared.plan.workers {
            for slot in 0..shared.plan.files_at_once.max(1) {
                let name = format!("worker {} ({}) slot {slot}", worker.id, worker.device);
                let inject = shared.opts.env.fail_slot.as_deref() == Some(&format!("{}/{slot}", worker.id));
                let device = worker.device;
                scope.spawn(move || work(shared, device, &name, inject));
            }
        }
    });
    // Files left when every worker stopped.
    // A worker that panicked poisons the locks; what it left in them still counts.
    let left: Vec<(usize, u32)> = shared.queue.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
    let mut records = std::mem::take(&mut *shared.records.lock().unwrap_or_else(|e| e.into_inner()));
    for (i, _) in left {
        let mut rec = record(&shared.plan.work[i], FileStatus::Failed, String::new(), shared.fp, None, 0.0);
        rec.error = Some("no worker left: every device failed".into());
        rec.retriable = Some(true);
        records.push((i, rec));
    }
    records.sort_by_key(|(i, _)| *i);
    records.into_iter().map(|(_, r)| r).collect()
}

/// One worker slot's loop. `inject`: fail the first file as if the device had (tests of the hand-over).
fn work(shared: &Shared<'_>, device: Device, name: &str, mut inject: bool) {
    let plan = shared.plan;
    while let Some((i, attempts)) = pop(&shared.queue) {
        let item = &plan.work[i];
        let out = if shared.cancel.is_stopped() {
            Outcome {
                rec: record(item, FileStatus::Interrupted, String::new(), shared.fp, None, 0.0),
                device_failed: None,
            }
        } else if std::mem::take(&mut inject) {
            Outcome {
                rec: record(item, FileStatus::Failed, String::new(), shared.fp, None, 0.0),
                device_failed: Some("injected device failure (VIDEOFORGE_FAIL_SLOT)".into()),
            }
        } else {
            match process_claimed(shared, i, device, name) {
                Some(out) => out,
                None => continue,
            }
        };
        if let Some(why) = &out.device_failed {
            if attempts == 0 {
                tracing::error!(
                    "{name} stopped: {why}; {} goes back to the queue for the other workers",
                    item.input.display()
                );
                shared.queue.lock().unwrap_or_else(|e| e.into_inner()).push_back((i, attempts + 1));
                break;
            }
        }
        shared.records.lock().unwrap_or_else(|e| e.into_inner()).push((i, out.rec));
    }
}

/// Takes the next file off the shared queue (the lock is released before the file is processed).
fn pop(queue: &Mutex<VecDeque<(usize, u32)>>) -> Option<(usize, u32)> {
    queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
}

/// A file's record, and whether its worker's device failed (the worker then stops).
struct Outcome {
    rec: FileRecord,
    device_failed: Option<String>,
}

/// Claims a file, then processes it; `None`: a file of another shard that is not this task's to report (complete
/// already, or held by its owner).
fn process_claimed(shared: &Shared<'_>, index: usize, device: Device, worker: &str) -> Option<Outcome> {
    let (fp, opts) = (shared.fp, shared.opts);
    let item = &shared.plan.work[index];
    let stolen = shared.stolen.contains(&index);
    if stolen && has_complete_report(item, &fp.id()) {
        return None;
    }
    let owner = claim::Owner::this_process(fp.id(), worker);
    let guard = match claim::try_acquire(&item.output, &owner, &opts.claims) {
        Ok(Acquired::Claimed(g)) => g,
        Ok(Acquired::TakenOver(g, stale)) => {
            tracing::warn!("{}: taken over: {stale}", item.input.display());
            g
        }
        Ok(Acquired::Held(_)) if stolen => return None,
        Ok(Acquired::Held(holder)) => {
            tracing::info!("{}: {holder}: left to it", item.input.display());
            shared.progress.file_skipped();
            let mut rec = record(item, FileStatus::Claimed, String::new(), fp, None, 0.0);
            rec.error = Some(holder.to_string());
            return Some(Outcome { rec, device_failed: None });
        }
        Err(e) => {
            // The claim is the first thing written beside the output: a folder that vanished or cannot be written
            // is said as the output's fault (naming the output, classified by its OS error), not the claim's.
            let e = match &e {
                claim::ClaimError::Io { source, .. } => output_error(&item.output, source),
                other => EngineError::Invariant(other.to_string()),
            };
            tracing::error!("{}: {e}", item.input.display());
            shared.progress.file_done();
            let mut rec = record(item, FileStatus::Failed, String::new(), fp, Some(worker.into()), 0.0);
            rec.error = Some(e.to_string());
            rec.retriable = Some(e.retry() == Retry::Retriable);
            return Some(Outcome { rec, device_failed: None });
        }
    };
    if stolen {
        tracing::info!("{}: taken from another shard", item.input.display());
    }
    let out = process_one(shared, index, device, worker, &guard);
    if let Err(e) = guard.release() {
        tracing::warn!("{}: {e}", item.input.display());
    }
    // A stolen file found complete once claimed was another task's work.
    (!(stolen && out.rec.status == FileStatus::Skipped)).then_some(out)
}

/// A cheap look before claiming: a complete report with this fingerprint (the input's hash is checked once the
/// file is claimed).
fn has_complete_report(item: &crate::plan::WorkItem, fingerprint_id: &str) -> bool {
    std::fs::read_to_string(report_path(&item.output))
        .ok()
        .and_then(|t| serde_json::from_str::<FileRecord>(&t).ok())
        .is_some_and(|r| r.status == FileStatus::Complete && r.fingerprint_id == fingerprint_id)
}

/// Skips, or runs and records, one file this worker has claimed.
fn process_one(shared: &Shared<'_>, index: usize, device: Device, worker: &str, claim: &ClaimGuard) -> Outcome {
    let (plan, fp, opts) = (shared.plan, shared.fp, shared.opts);
    let item = &plan.work[index];
    let done = |rec: FileRecord| Outcome { rec, device_failed: None };
    let started = Instant::now();
    let started_unix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let input_sha256 = match sha256_file(&item.input) {
        Ok(h) => h,
        Err(e) => {
            let mut r = record(item, FileStatus::Failed, String::new(), fp, Some(worker.into()), 0.0);
            r.error = Some(format!("{}: {e}", item.input.display()));
            r.retriable = Some(true);
            return done(r);
        }
    };
    if !opts.force && is_complete(item, &input_sha256, &fp.id()) {
        tracing::info!("skip {}: complete with the same input and fingerprint", item.input.display());
        shared.progress.file_skipped();
        return done(record(item, FileStatus::Skipped, input_sha256, fp, None, 0.0));
    }
    // A stale report must not vouch for a new output: remove it before the output is replaced.
    if let Err(e) = std::fs::remove_file(report_path(&item.output)) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("{}: stale report not removed: {e}", report_path(&item.output).display());
        }
    }
    let result = check_folder(&item.output).and_then(|()| retry_oom(shared, index, device, claim));
    let seconds = started.elapsed().as_secs_f64();
    let mut rec = record(item, FileStatus::Complete, input_sha256, fp, Some(worker.into()), seconds);
    rec.started = Some(started_unix);
    match result {
        Ok(report) => {
            rec.pipeline = Some(report);
            let path = report_path(&item.output);
            let written = serde_json::to_vec_pretty(&rec)
                .map_err(|e| EngineError::io(&path, std::io::Error::other(e)))
                .and_then(|json| write_atomic(&path, &json));
            if let Err(e) = written {
                // The output is published, but without its completion record a rerun redoes it.
                let message = format!("{} was published but its report was not written: {e}", item.output.display());
                tracing::error!("{message}");
                rec.status = FileStatus::Failed;
                rec.retriable = Some(e.retry() == Retry::Retriable);
                rec.error = Some(message);
            }
        }
        Err(EngineError::Interrupted) => rec.status = FileStatus::Interrupted,
        Err(e @ EngineError::Superseded { .. }) => {
            tracing::warn!("{e}");
            rec.status = FileStatus::Claimed;
            rec.error = Some(e.to_string());
        }
        Err(e) if device != Device::Cpu && e.is_device_failure() => {
            return Outcome { rec, device_failed: Some(e.to_string()) };
        }
        Err(e) => {
            // Errors that name the input already are not prefixed with it again.
            let (input, message) = (item.input.display().to_string(), e.to_string());
            if message.starts_with(&input) {
                tracing::error!("{message}");
            } else {
                tracing::error!("{input}: {message}");
            }
            rec.status = match e.root() {
                EngineError::Quality { .. } => FileStatus::QualityFailed,
                _ => FileStatus::Failed,
            };
            rec.retriable = Some(e.retry() == Retry::Retriable);
            rec.error = Some(message);
            if rec.status == FileStatus::QualityFailed {
                // Beside the output that was not published: says why, and never vouches for a file (only a
                // `complete` record makes a rerun skip).
                let written = serde_json::to_vec_pretty(&rec)
                    .map_err(|e| EngineError::io(report_path(&item.output), std::io::Error::other(e)))
                    .and_then(|json| write_atomic(&report_path(&item.output), &json));
                if let Err(e) = written {
                    tracing::warn!("{e}");
                }
            }
        }
    }
    shared.progress.file_done();
    done(rec)
}

/// Checks that the folder of `output` is still there before a file starts: a folder that vanished mid-run fails
/// the file (transient) and is not silently re-created. The error is the output's, classified by its OS error.
fn check_folder(output: &Path) -> Result<(), EngineError> {
    let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) else { return Ok(()) };
    std::fs::metadata(dir).map(drop).map_err(|e| output_error(output, &e))
}

/// Runs one file; if the device ran out of memory, once more with smaller tiles (when the plan has a smaller tile
/// for this frame size), noted in the report and its warnings.
fn retry_oom(
    shared: &Shared<'_>,
    index: usize,
    device: Device,
    claim: &ClaimGuard,
) -> Result<serde_json::Value, EngineError> {
    let first = run_file(shared, index, device, claim, None);
    let e = match first {
        Err(e) if device != Device::Cpu && e.is_out_of_memory() && !shared.cancel.is_stopped() => e,
        r => return r,
    };
    let item = &shared.plan.work[index];
    let planned = &shared.plan.pipeline;
    let frame = pipeline::frame_size(&item.input).ok();
    let Some(tile) = frame.and_then(|f| crate::plan::oom_retry_tile(planned.tile, f)) else { return Err(e) };
    tracing::warn!("{}: {e}; trying once more with tiles of {tile} px", item.input.display());
    let overlap = crate::plan::retry_overlap(planned.tile_overlap, tile);
    let retried = PipelinePlan { tile, tile_overlap: overlap, ..planned.clone() };
    run_file(shared, index, device, claim, Some(&retried))
}

/// Runs one file through the pipeline (twice with the audit: the second run checks determinism and device
/// memory), and returns its report as JSON. `retry`: the stage sizes of the one retry after running out of device
/// memory, instead of the plan's.
fn run_file(
    shared: &Shared<'_>,
    index: usize,
    device: Device,
    claim: &ClaimGuard,
    retry: Option<&PipelinePlan>,
) -> Result<serde_json::Value, EngineError> {
    let (plan, fp, opts) = (shared.plan, shared.fp, shared.opts);
    let item = &plan.work[index];
    let mut settings = plan
        .file_settings(index, device)
        .ok_or_else(|| EngineError::Invariant(format!("work item {index} is not in the plan")))?;
    // TensorRT engines depend on everything in the fingerprint (one folder each); fused-cuda's kernels are keyed
    // by their own source hash, SM and NVRTC version, so they share one folder.
    let cache_dir = opts.env.cache_dir.as_ref().map(|d| {
        if plan.model.backend == crate::plan::FUSED_CUDA {
            d.join("kernels")
        } else {
            d.join(fp.id())
        }
    });
    // One engine builder (on a GPU: one context) per file; the audit reads device memory through it before the
    // model is loaded and after the stage is dropped.
    let mut builder = EngineBuilder::new(plan, shared.plugin, device, cache_dir)?;
    if let Some(p) = retry {
        settings.pipeline = p;
        builder = builder.with_tile(p.tile, p.tile_overlap);
    }
    let audit = opts.audit.then_some(opts.env.audit_traces);
    let free = || builder.gpu().and_then(|g| g.settled_mem_info().ok()).map(|(f, _)| f);
    let free_before = if opts.audit { free() } else { None };
    // The claim is looked at once more just before the output is published: a worker that was taken over (it had
    // been silent for the stale interval) must not publish over the one that took the file.
    let check = || claim.check().map_err(|e| EngineError::Superseded { path: item.output.clone(), why: e.to_string() });
    let mut job = file_job(shared, &builder, settings, audit, shared.progress.file(&item.input))?;
    job.before_publish = Some(&check);
    let mut report = pipeline::upscale_file(job)?;
    if let Some(p) = retry {
        report.retried_with_tile = Some(p.tile);
        report.warnings.push(format!(
            "ran out of device memory with the plan's tiling; done on the one retry with tiles of {} px",
            p.tile
        ));
    }
    if let Some(a) = report.audit.as_mut() {
        // The stage and the model are dropped by now: device memory should be back where it started.
        a.vram = free_before.zip(free()).map(|(before, after)| VramAudit {
            free_before: before,
            free_after: after,
            delta_bytes: before as i64 - after as i64,
            second_run_delta_bytes: None,
        });
        let tmp = audit_path(&item.output);
        let second = file_job(shared, &builder, FileSettings { output: &tmp, ..settings }, None, FileProgress::none())
            .and_then(pipeline::upscale_file);
        let frames = (report.frames_sha256.clone(), second.as_ref().ok().and_then(|r| r.frames_sha256.clone()));
        if let (Some(v), Some(after)) = (a.vram.as_mut(), free()) {
            v.second_run_delta_bytes = Some(v.free_after as i64 - after as i64);
        }
        let compared = second.and_then(|_| compare_outputs(&item.output, &tmp, frames));
        pipeline::publish::discard(&tmp);
        a.determinism = Some(compared?);
        a.evaluate();
        tracing::info!("{}: audit\n{}", item.input.display(), a.table());
    }
    // The before/after picture of the run report, from a frame in the middle of the clip.
    let fps = report.video.frame_rate.map_or(25.0, |(n, d)| f64::from(n) / f64::from(d.max(1)));
    let middle = report.frames_encoded as f64 / 2.0 / fps.max(1e-3);
    if let Err(e) = super::html::write_preview(&item.input, &item.output, middle) {
        tracing::warn!("{}: no preview for the run report: {e}", item.output.display());
    }
    let stages: Vec<String> = report.stages.iter().map(|s| format!("{} {:.2}s busy", s.name, s.busy_s)).collect();
    tracing::info!(
        "{}: {} frames at {:.1} fps ({}); peak RSS {} MiB",
        item.input.display(),
        report.frames_encoded,
        report.fps,
        stages.join(", "),
        report.peak_rss_bytes.unwrap_or(0) >> 20
    );
    serde_json::to_value(&report)
        .map_err(|e| EngineError::Invariant(format!("report of {}: {e}", item.input.display())))
}

/// A file's job with a freshly opened engine.
fn file_job<'j>(
    shared: &'j Shared<'_>,
    builder: &EngineBuilder<'_>,
    settings: FileSettings<'j>,
    audit: Option<u64>,
    progress: FileProgress<'j>,
) -> Result<FileJob<'j>, EngineError> {
    Ok(FileJob {
        settings,
        engine: builder.open()?,
        cancel: shared.cancel,
        progress,
        metadata: shared.fp.container_metadata(),
        audit,
        digest_frames: shared.opts.audit,
        before_publish: None,
    })
}

/// Where the audit's second run writes: `.<name>.audit-<pid>` beside the output (removed afterwards).
fn audit_path(output: &Path) -> PathBuf {
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    output.with_file_name(format!(".{name}.audit-{}", std::process::id()))
}

/// SHA-256 of both outputs of the audit, with the digests of the frames each run sent to its encoder.
fn compare_outputs(
    first: &Path,
    second: &Path,
    frames: (Option<String>, Option<String>),
) -> Result<Determinism, EngineError> {
    let a = sha256_file(first).map_err(|e| EngineError::io(first, e))?;
    let b = sha256_file(second).map_err(|e| EngineError::io(second, e))?;
    Ok(Determinism {
        identical: a == b,
        first_sha256: a,
        second_sha256: b,
        frames_identical: frames.0.is_some() && frames.0 == frames.1,
        first_frames_sha256: frames.0.unwrap_or_default(),
        second_frames_sha256: frames.1.unwrap_or_default(),
    })
}
