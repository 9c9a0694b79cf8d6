//! The threaded decode → infer → encode pipeline for one file.
//!
//! Three threads, one per blocking stage, joined by bounded `flume` channels of capacity `PipelinePlan::depth`:
//!
//! * **decode**: demux, decode (libavcodec frame threads), convert to planar RGB `f32` (rayon, `cpu_threads`);
//!   other streams' packets (audio, subtitles) travel down the same channel in file order.
//! * **infer**: owns the model; upscales each frame; passes packets through.
//! * **encode**: converts RGB → Y'CbCr (rayon), encodes with the input's timestamps, muxes video and copied
//!   packets (libavformat interleaves them).
//!
//! RGB buffers are recycled through return channels, so the steady state allocates nothing per frame. The end of
//! the stream is an explicit `End` message: a stage that sees its input channel close without `End` knows that
//! upstream failed (or was cancelled) and never finalises a partial output. The output is written to a hidden
//! temporary file beside the target and renamed into place only after the trailer is written and fsynced.

use crate::backend::FrameModel;
use crate::error::{panic_message, EngineError, Retry};
use crate::plan::{Container, EncodePlan, PipelinePlan};
use crate::queue::{Receiver, Sender};
use crate::video::{self, Item, Sink, Source, ToRgb, VideoInfo, VideoOut, YuvFrame};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicIsize, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A cheap, clonable cancellation token: 0 running, 1 stop gracefully, 2 abort now.
///
/// Signal handlers (or any thread) set it; every stage polls it between frames. Either level abandons the file
/// being processed (nothing partial is published); `abort` additionally tells callers not to start anything.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicU8>);

impl Cancel {
    /// A token in the running state.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// A token sharing an existing flag (e.g. one registered with `signal_hook::flag`).
    pub fn from_flag(flag: Arc<AtomicU8>) -> Cancel {
        Cancel(flag)
    }

    /// The shared flag (0 running, 1 stop, 2 abort).
    pub fn flag(&self) -> Arc<AtomicU8> {
        self.0.clone()
    }

    /// Ask for a graceful stop (never lowers an abort).
    pub fn request_stop(&self) {
        let _ = self.0.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Ask to abort at once.
    pub fn request_abort(&self) {
        self.0.store(2, Ordering::SeqCst);
    }

    /// Whether a stop or an abort was requested.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst) >= 1
    }

    /// Whether an abort was requested.
    pub fn is_aborted(&self) -> bool {
        self.0.load(Ordering::SeqCst) >= 2
    }
}

/// Progress of one file, reported after every encoded frame.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// The input file.
    pub input: PathBuf,
    /// Frames encoded so far.
    pub frames_done: u64,
    /// Frames expected (from the container's frame count, or duration × frame rate), if known.
    pub frames_total: Option<u64>,
    /// Frames per second so far.
    pub fps: f64,
}

type ProgressFn<'a> = Box<dyn Fn(&Progress) + Send + Sync + 'a>;

/// Where one file's progress goes.
pub struct FileProgress<'a> {
    callback: Option<ProgressFn<'a>>,
}

impl<'a> FileProgress<'a> {
    /// Report through `f`.
    pub fn new(f: impl Fn(&Progress) + Send + Sync + 'a) -> FileProgress<'a> {
        FileProgress { callback: Some(Box::new(f)) }
    }

    /// Report nothing.
    pub fn none() -> FileProgress<'static> {
        FileProgress { callback: None }
    }

    fn report(&self, p: &Progress) {
        if let Some(f) = &self.callback {
            f(p)
        }
    }
}

/// Progress display for a whole run: bars on a terminal, JSON lines (at most one per second per file) on stderr
/// otherwise, nothing when disabled.
pub struct ProgressSink {
    enabled: bool,
    terminal: bool,
    multi: indicatif::MultiProgress,
    files: indicatif::ProgressBar,
}

impl ProgressSink {
    /// A sink for a run of `files` files. `bars`: draw bars on a terminal (an audited run does not: drawing
    /// allocates, and the audit counts every thread's allocations; it gets the JSON lines instead).
    pub fn new(enabled: bool, files: usize, bars: bool) -> ProgressSink {
        use std::io::IsTerminal;
        let terminal = enabled && bars && std::io::stderr().is_terminal();
        let multi = indicatif::MultiProgress::new();
        let files = if terminal {
            let b = multi.add(indicatif::ProgressBar::new(files as u64));
            if let Ok(style) = indicatif::ProgressStyle::with_template("files {pos}/{len} {wide_bar} {elapsed}") {
                b.set_style(style);
            }
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        ProgressSink { enabled, terminal, multi, files }
    }

    /// The progress reporter for one file.
    pub fn file(&self, input: &Path) -> FileProgress<'_> {
        if !self.enabled {
            return FileProgress::none();
        }
        if self.terminal {
            let bar = self.multi.add(indicatif::ProgressBar::new(0));
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{msg} {pos}/{len} frames {wide_bar} {per_sec} eta {eta}")
            {
                bar.set_style(style);
            }
            bar.set_message(input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            return FileProgress::new(move |p: &Progress| {
                if let Some(t) = p.frames_total {
                    bar.set_length(t.max(p.frames_done));
                }
                bar.set_position(p.frames_done);
            });
        }
        /// One progress line: `{"progress": {...}}`.
        #[derive(Serialize)]
        struct Line<'a> {
            progress: &'a Progress,
        }
        // The line is written through one buffer made here: reporting progress allocates nothing per frame.
        let state = Mutex::new((None::<Instant>, Vec::<u8>::with_capacity(1024)));
        FileProgress::new(move |p: &Progress| {
            let Ok(mut state) = state.lock() else { return };
            let (last, buf) = &mut *state;
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return;
            }
            *last = Some(Instant::now());
            buf.clear();
            if serde_json::to_writer(&mut *buf, &Line { progress: p }).is_ok() {
                buf.push(b'\n');
                let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), buf);
            }
        })
    }

    /// A file was skipped (already complete).
    pub fn file_skipped(&self) {
        self.files.inc(1);
    }

    /// A file finished (any outcome).
    pub fn file_done(&self) {
        self.files.inc(1);
    }

    /// The run is over.
    pub fn finish(&self) {
        self.files.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// One file to upscale.
pub struct FileJob<'a> {
    /// Input video.
    pub input: &'a Path,
    /// Final output path (written atomically: temporary name, fsync, rename).
    pub output: &'a Path,
    /// Output container.
    pub container: Container,
    /// Encoder settings.
    pub encode: &'a EncodePlan,
    /// Queue sizes and CPU threads.
    pub pipeline: &'a PipelinePlan,
    /// The model; the inference thread owns it for the file's duration.
    pub model: Box<dyn FrameModel>,
    /// Cancellation token.
    pub cancel: &'a Cancel,
    /// Per-frame progress.
    pub progress: FileProgress<'a>,
    /// Extra container metadata (the engine fingerprint).
    pub metadata: Vec<(String, String)>,
    /// Audit the run (steady-state allocations, stage overlap, pool): fills the report's `audit` field.
    pub audit: bool,
    /// Hash the frames sent to the encoder into the report's `frames_sha256` (the audit's two runs).
    pub digest_frames: bool,
    /// The plan's decode routes: a codec and bit depth routed to `nvdec` is decoded on the stage's GPU.
    pub decode: &'a [crate::plan::DecodeRoute],
}

/// Timing of one stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageReport {
    /// decode, infer or encode.
    pub name: &'static str,
    /// Seconds spent working.
    pub busy_s: f64,
    /// Seconds spent waiting on a queue (input empty or output full).
    pub wait_s: f64,
    /// Frames handled.
    pub frames: u64,
}

/// A queue's capacity and the most items it held.
#[derive(Debug, Clone, Serialize)]
pub struct QueueReport {
    /// `decode→infer` or `infer→encode`.
    pub name: &'static str,
    /// Capacity (the plan's depth).
    pub capacity: usize,
    /// Most items seen in it.
    pub max_depth: usize,
}

/// What happened to one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The input.
    pub input: PathBuf,
    /// The published output.
    pub output: PathBuf,
    /// The input video stream.
    pub video: VideoInfo,
    /// Model scale.
    pub scale: u32,
    /// Encoded width.
    pub output_width: u32,
    /// Encoded height.
    pub output_height: u32,
    /// Encoded bit depth.
    pub output_bit_depth: u8,
    /// FFmpeg encoder.
    pub encoder: String,
    /// Encoder instances that worked on consecutive segments at once (1: one instance for the whole file).
    pub encoder_instances: u32,
    /// Frames per segment when `encoder_instances` > 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_frames: Option<u32>,
    /// Where the video was decoded: `nvdec` (frames stayed on the GPU) or `cpu`.
    pub decoder: String,
    /// libavformat muxer.
    pub container: String,
    /// Frames decoded.
    pub frames_decoded: u64,
    /// Frames encoded (always equal to `frames_decoded` in a report; a mismatch fails the file).
    pub frames_encoded: u64,
    /// Packets of other streams copied.
    pub packets_copied: u64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Frames per second end to end.
    pub fps: f64,
    /// Per-stage timing.
    pub stages: Vec<StageReport>,
    /// Per-queue depth.
    pub queues: Vec<QueueReport>,
    /// Peak resident memory of the process (VmHWM), bytes.
    pub peak_rss_bytes: Option<u64>,
    /// CPU seconds (user + system, every thread of the process, decoders and encoders included) over the file;
    /// divided by `wall_s`, the cores kept busy. Process-wide: other files running at once count too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_s: Option<f64>,
    /// What was assumed, skipped or adapted.
    pub warnings: Vec<String>,
    /// The audit (when asked for): steady-state allocations, stage overlap, the GPU pool; the runner adds
    /// device memory and determinism.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<crate::audit::AuditReport>,
    /// SHA-256 of the frames the encoder received (when the job asked for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames_sha256: Option<String>,
}

/// CPU time of this process so far (user + system), seconds, from `/proc/self/stat` (Linux; its clock ticks are
/// `USER_HZ`, 100 per second on every Linux ABI).
pub fn process_cpu_s() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3 on: utime and stime are fields 14, 15.
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split_whitespace().skip(11);
    let (user, sys): (u64, u64) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?);
    Some((user + sys) as f64 / 100.0)
}

/// Peak resident set size of this process, from `/proc/self/status` (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The temporary name an output is written under: `.<name>.partial-<pid>` in the same directory.
pub fn partial_path(output: &Path) -> PathBuf {
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    output.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

const INTERLACED: &str = "interlaced (field-coded) frames are processed as progressive frames: no deinterlacing; \
                          the output is flagged progressive";

/// A message down the pipeline.
enum Msg {
    Frame {
        buf: Vec<f32>,
        pts: Option<i64>,
        duration: i64,
    },
    /// A 4:2:0 frame on its way to or from the GPU stage (the encoder's format: no RGB on the host).
    Yuv {
        frame: YuvFrame,
        pts: Option<i64>,
        duration: i64,
    },
    /// A frame NVDEC decoded, still in device memory.
    Device {
        frame: crate::gpu::nvdec::DeviceFrame,
        pts: Option<i64>,
        duration: i64,
    },
    Packet(ffmpeg_next::Packet),
    End,
}

/// How a stage ended, when it did not succeed on its own account.
enum StageFail {
    /// Its own error.
    Error(EngineError),
    /// A neighbour went away (its error is reported by that neighbour) or cancel.
    Peer,
}

fn stage_err(stage: &'static str, message: String) -> StageFail {
    StageFail::Error(EngineError::Stage { stage, message, retry: Retry::Permanent })
}

#[derive(Default)]
struct Counters {
    stage: StageReport,
    max_depth: usize,
}

/// Receives from a stage queue; `q` counts the items in it (std's channel has no `len`).
/// Reports progress after each encoded frame (the `Progress` is reused: no allocation per frame).
fn report_encoded(frames: u64, t0: Instant, prog: &mut Progress, progress: &FileProgress<'_>) {
    let el = t0.elapsed().as_secs_f64();
    prog.frames_done = frames;
    prog.fps = if el > 0.0 { frames as f64 / el } else { 0.0 };
    progress.report(prog);
}

fn timed_recv(rx: &Receiver<Msg>, c: &mut Counters, q: &AtomicIsize) -> Option<Msg> {
    let t = Instant::now();
    let m = rx.recv();
    if m.is_some() {
        q.fetch_sub(1, Ordering::SeqCst);
    }
    c.stage.wait_s += t.elapsed().as_secs_f64();
    m
}

/// Sends down a stage queue and notes the deepest it has been.
fn timed_send(tx: &Sender<Msg>, m: Msg, c: &mut Counters, q: &AtomicIsize) -> Result<(), StageFail> {
    let t = Instant::now();
    tx.send(m).map_err(|_| StageFail::Peer)?;
    let d = q.fetch_add(1, Ordering::SeqCst) + 1;
    c.stage.wait_s += t.elapsed().as_secs_f64();
    c.max_depth = c.max_depth.max(d.max(0) as usize);
    Ok(())
}

/// Upscale one file: decode → infer → encode on three threads, publish the output atomically.
///
/// On cancel returns [`EngineError::Interrupted`]; on any failure the temporary file is removed and nothing is
/// left at `job.output`.
pub fn upscale_file(job: FileJob<'_>) -> Result<FileReport, EngineError> {
    let started = Instant::now();
    let cpu_before = process_cpu_s();
    let FileJob {
        input,
        output,
        container,
        encode,
        pipeline,
        mut model,
        cancel,
        progress,
        metadata,
        audit,
        digest_frames,
        decode,
    } = job;
    let threads = pipeline.cpu_threads.max(1);
    let mut source = Source::open(input, threads)?;
    let info = source.info().clone();
    let mut warnings = source.take_warnings();
    let scale = model.scale().max(1);
    let (src_w, src_h) = (info.width * scale, info.height * scale);
    let (out_w, out_h) = (src_w & !1, src_h & !1);
    if (out_w, out_h) != (src_w, src_h) {
        warnings.push(format!(
            "output {src_w}x{src_h} has an odd dimension, which 4:2:0 cannot encode: cropped to {out_w}x{out_h} \
             (last column/row dropped)"
        ));
    }
    let bit_depth = match encode.bit_depth.unwrap_or(if info.bit_depth > 8 { 10 } else { 8 }) {
        d if d <= 8 => 8,
        10 => 10,
        d => {
            warnings.push(format!("{d}-bit output is not supported: encoding 10-bit"));
            10
        }
    };
    if ToRgb::needs_swscale(source.pixel_format()) {
        warnings.push(format!("pixel format {} converted with swscale before the RGB conversion", info.pixel_format));
    }
    let format = video::format_name(container, &info.container, input);
    let tmp = partial_path(output);
    let vout = VideoOut { width: out_w, height: out_h, src_width: src_w, src_height: src_h, bit_depth };
    // Segment-parallel encoding where one encoder instance cannot use the machine (see `plan::segments_for`).
    let mut encode = encode.clone();
    (encode.segments, encode.segment_frames) =
        crate::plan::segments_for(&encode, out_w, out_h, info.frame_rate, pipeline.cpu_threads);
    let encode = &encode;
    let (mut sink, w) = Sink::create(&tmp, format, source.input(), &info, vout, encode, &metadata).map_err(|m| {
        let _ = std::fs::remove_file(&tmp);
        EngineError::Stage { stage: "encode", message: format!("{}: {m}", output.display()), retry: Retry::Permanent }
    })?;
    warnings.extend(w);
    if digest_frames {
        sink.digest_frames();
    }

    // The device path: 4:2:0 frames go to the GPU stage and come back in the encoder's format.
    let yuv_out = if model.yuv_upscaler().is_none() {
        None
    } else if !YuvFrame::supports(source.pixel_format()) {
        warnings.push(format!(
            "pixel format {} is not 4:2:0 8/10-bit: colour conversion on the CPU, inference on the GPU",
            info.pixel_format
        ));
        None
    } else if pipeline.tile > 0 {
        warnings.push("tiled plan: colour conversion on the CPU, tiles inferred on the GPU".into());
        None
    } else {
        let c = sink.color();
        Some(YuvFrame::new(src_w as usize, src_h as usize, bit_depth, c.matrix, c.range))
    };
    // NVDEC where the plan routes this codec there and frames stay on the device end to end.
    let route = decode.iter().find(|r| r.codec == info.codec && r.bit_depth == info.bit_depth);
    let mut decoder = "cpu".to_string();
    let nvdec = match (&yuv_out, route) {
        (Some(_), Some(r)) if r.path == "nvdec" => {
            let made = match (model.yuv_upscaler(), source.video_stream()) {
                (Some(u), Some(stream)) => u.device_decoder(&info, &stream),
                _ => None,
            };
            match made {
                Some(Ok(d)) => {
                    source.hand_out_video_packets();
                    decoder = "nvdec".into();
                    Some(d)
                }
                Some(Err(why)) => {
                    warnings.push(format!("NVDEC not used: {why}; decoding on the CPU"));
                    None
                }
                None => None,
            }
        }
        _ => None,
    };
    let window = audit.then(|| crate::audit::AllocWindow::for_clip(info.estimated_frames));
    let result = run_stages(
        input,
        source,
        sink,
        &mut *model,
        &info,
        scale,
        pipeline,
        cancel,
        &progress,
        yuv_out,
        nvdec,
        window.as_ref(),
    );
    let pool_stats = model.yuv_upscaler().and_then(|u| u.pool_stats());
    drop(model);
    let finish = || -> Result<(), EngineError> {
        let f = std::fs::File::open(&tmp).map_err(|e| EngineError::io(&tmp, e))?;
        f.sync_all().map_err(|e| EngineError::io(&tmp, e))?;
        std::fs::rename(&tmp, output).map_err(|e| EngineError::io(output, e))?;
        if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    };
    let run = match result {
        Ok(run) => match finish() {
            Ok(()) => run,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        },
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    warnings.extend(run.warnings);
    let wall_s = started.elapsed().as_secs_f64();
    let audit = window.map(|win| {
        let mut a = crate::audit::AuditReport {
            steady_state: win.finish(run.frames),
            busy_sum_s: run.stages.iter().map(|s| s.busy_s).sum(),
            wall_s: run.pipeline_wall_s,
            pool: pool_stats,
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
        scale,
        output_width: out_w,
        output_height: out_h,
        output_bit_depth: bit_depth,
        encoder: encode.encoder.clone(),
        encoder_instances: encode.segments.max(1),
        segment_frames: (encode.segments > 1).then_some(encode.segment_frames),
        decoder,
        container: format.into(),
        frames_decoded: run.frames,
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
    })
}

fn join<T>(r: std::io::Result<std::thread::ScopedJoinHandle<'_, T>>, name: &str) -> Result<T, EngineError> {
    match r {
        Ok(h) => h
            .join()
            .map_err(|p| EngineError::PanicRecovered { origin: format!("stage {name}"), message: panic_message(&*p) }),
        Err(e) => Err(EngineError::Stage {
            stage: "setup",
            message: format!("cannot start thread {name}: {e}"),
            retry: Retry::Retriable,
        }),
    }
}

fn audit_table(stages: &[StageReport], queues: &[QueueReport]) -> String {
    let mut s = String::from("stage    busy_s   wait_s   frames\n");
    for st in stages {
        s.push_str(&format!("{:<8} {:>7.3} {:>8.3} {:>8}\n", st.name, st.busy_s, st.wait_s, st.frames));
    }
    for q in queues {
        s.push_str(&format!("queue {:<14} max {}/{}\n", q.name, q.max_depth, q.capacity));
    }
    s
}

struct RunResult {
    frames: u64,
    /// Seconds from the stage threads' start to the encoder's last write.
    pipeline_wall_s: f64,
    packets: u64,
    stages: Vec<StageReport>,
    queues: Vec<QueueReport>,
    warnings: Vec<String>,
    frames_sha256: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn run_stages(
    input: &Path,
    mut source: Source,
    mut sink: Sink,
    model: &mut dyn FrameModel,
    info: &VideoInfo,
    scale: u32,
    pipeline: &PipelinePlan,
    cancel: &Cancel,
    progress: &FileProgress<'_>,
    yuv_out: Option<YuvFrame>,
    nvdec: Option<crate::gpu::nvdec::NvDecoder>,
    window: Option<&crate::audit::AllocWindow>,
) -> Result<RunResult, EngineError> {
    let depth = pipeline.depth.max(1);
    let yuv_mode = yuv_out.is_some();
    let (yuv_in_tx, yuv_in_rx) = flume::unbounded::<YuvFrame>();
    let (yuv_out_tx, yuv_out_rx) = flume::unbounded::<YuvFrame>();
    // One pool per converting stage, and the stage's loop runs *on* it (`install` once, below): its per-frame
    // parallel conversion then uses that pool from inside, through the worker's own deque. Handing every frame to a pool
    // from outside goes through rayon's injector queue, which allocates a block every 63 jobs. Two pools, so
    // that a worker waiting inside a parallel conversion can never pick up the other stage's loop.
    let make_pool = |stage: &'static str| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(pipeline.cpu_threads.max(1))
            .thread_name(move |i| format!("videoforge-{stage}-{i}"))
            .build()
            .map_err(|e| EngineError::Stage {
                stage: "setup",
                message: format!("thread pool: {e}"),
                retry: Retry::Retriable,
            })
    };
    let (decode_pool, encode_pool) = (make_pool("decode")?, make_pool("encode")?);
    // Blocking on a full or empty queue allocates nothing (see `crate::queue`).
    let (to_infer, infer_rx) = crate::queue::bounded::<Msg>(depth);
    let (to_encode, encode_rx) = crate::queue::bounded::<Msg>(depth);
    let (infer_q, encode_q) = (AtomicIsize::new(0), AtomicIsize::new(0));
    let (in_pool_tx, in_pool_rx) = flume::unbounded::<Vec<f32>>();
    let (out_pool_tx, out_pool_rx) = flume::unbounded::<Vec<f32>>();
    let warnings = Mutex::new(Vec::<String>::new());
    let (w, h) = (info.width as usize, info.height as usize);
    // Every buffer the pipeline can hold at once (one being filled, `depth` queued, one being read, per side) is
    // made up front, so the steady state neither allocates nor grows a pool late.
    for _ in 0..depth + 2 {
        if let Some(out) = &yuv_out {
            let bits = if info.bit_depth > 8 { 10 } else { 8 };
            let (mut frame_in, mut frame_out) =
                (YuvFrame::new(w, h, bits, info.color.matrix, info.color.range), out.clone());
            if let Some(stage) = model.yuv_upscaler() {
                if nvdec.is_none() {
                    stage.prepare_frame(&mut frame_in);
                }
                stage.prepare_frame(&mut frame_out);
            }
            let _ = yuv_in_tx.send(frame_in);
            let _ = yuv_out_tx.send(frame_out);
        } else {
            let _ = in_pool_tx.send(vec![0f32; 3 * w * h]);
            let _ = out_pool_tx.send(vec![0f32; 3 * w * h * (scale as usize).pow(2)]);
        }
    }

    let stages_started = Instant::now();
    let (dec, inf, enc) = std::thread::scope(|s| {
        let (decode_pool, encode_pool) = (&decode_pool, &encode_pool);
        let warnings = &warnings;
        let (infer_q, encode_q) = (&infer_q, &encode_q);
        let decode = std::thread::Builder::new().name("vf-decode".into()).spawn_scoped(s, move || {
            let mut c = Counters { stage: StageReport { name: "decode", ..Default::default() }, max_depth: 0 };
            let mut to_rgb = ToRgb::new(info.color.matrix, info.color.range);
            let mut warned_interlaced = false;
            let mut nvdec = nvdec;
            let r = decode_pool.install(|| -> Result<(), StageFail> {
                // NVDEC: packets in, device frames out (several or none per packet), other streams' packets copied.
                if let Some(nv) = nvdec.as_mut() {
                    loop {
                        if cancel.is_stopped() {
                            return Err(StageFail::Peer);
                        }
                        let t = Instant::now();
                        let end = match source.next_item().map_err(StageFail::Error)? {
                            None => {
                                nv.send(None).map_err(|m| stage_err("decode", format!("NVDEC: {m}")))?;
                                true
                            }
                            Some(Item::VideoPacket(p)) => {
                                nv.send(Some(p)).map_err(|m| stage_err("decode", format!("NVDEC: {m}")))?;
                                false
                            }
                            Some(Item::Packet(p)) => {
                                c.stage.busy_s += t.elapsed().as_secs_f64();
                                timed_send(&to_infer, Msg::Packet(p), &mut c, infer_q)?;
                                continue;
                            }
                            Some(Item::Frame(_)) => {
                                return Err(stage_err("decode", "a CPU-decoded frame on the NVDEC path".into()))
                            }
                        };
                        c.stage.busy_s += t.elapsed().as_secs_f64();
                        while let Some((frame, duration)) = nv.receive() {
                            c.stage.frames += 1;
                            if let Some(win) = window {
                                win.on_frame(c.stage.frames);
                            }
                            if !frame.progressive && !warned_interlaced {
                                warned_interlaced = true;
                                if let Ok(mut w) = warnings.lock() {
                                    w.push(INTERLACED.into());
                                }
                            }
                            let pts = frame.pts;
                            timed_send(&to_infer, Msg::Device { frame, pts, duration }, &mut c, infer_q)?;
                        }
                        if end {
                            timed_send(&to_infer, Msg::End, &mut c, infer_q)?;
                            return Ok(());
                        }
                    }
                }
                loop {
                    if cancel.is_stopped() {
                        return Err(StageFail::Peer);
                    }
                    let t = Instant::now();
                    let item = source.next_item().map_err(StageFail::Error)?;
                    let msg = match item {
                        None => {
                            c.stage.busy_s += t.elapsed().as_secs_f64();
                            timed_send(&to_infer, Msg::End, &mut c, infer_q)?;
                            return Ok(());
                        }
                        Some(Item::Packet(p)) => Msg::Packet(p),
                        Some(Item::VideoPacket(_)) => {
                            return Err(stage_err("decode", "an undecoded video packet on the CPU path".into()))
                        }
                        Some(Item::Frame(f)) => {
                            if f.is_interlaced() && !warned_interlaced {
                                warned_interlaced = true;
                                if let Ok(mut w) = warnings.lock() {
                                    w.push(INTERLACED.into());
                                }
                            }
                            if (f.width() as usize, f.height() as usize) != (w, h) {
                                return Err(stage_err(
                                    "decode",
                                    format!(
                                        "frame size changed mid-stream from {w}x{h} to {}x{}",
                                        f.width(),
                                        f.height()
                                    ),
                                ));
                            }
                            let (pts, duration) = (f.timestamp().or(f.pts()), f.packet().duration);
                            c.stage.frames += 1;
                            if let Some(win) = window {
                                win.on_frame(c.stage.frames);
                            }
                            if yuv_mode {
                                let mut frame = yuv_in_rx
                                    .try_recv()
                                    .unwrap_or_else(|_| YuvFrame::new(0, 0, 8, info.color.matrix, info.color.range));
                                frame
                                    .read_from(&f, info.color.matrix, info.color.range)
                                    .map_err(|m| stage_err("decode", m))?;
                                Msg::Yuv { frame, pts, duration }
                            } else {
                                let mut buf = in_pool_rx.try_recv().unwrap_or_default();
                                // Already on the decode pool: its parallel rows stay there.
                                to_rgb.convert(&f, &mut buf).map_err(|m| stage_err("decode", m))?;
                                Msg::Frame { buf, pts, duration }
                            }
                        }
                    };
                    c.stage.busy_s += t.elapsed().as_secs_f64();
                    timed_send(&to_infer, msg, &mut c, infer_q)?;
                }
            });
            let decoded = nvdec.as_ref().map_or(source.frames_decoded(), |n| n.frames());
            (r, c, decoded)
        });
        let infer = std::thread::Builder::new().name("vf-infer".into()).spawn_scoped(s, move || {
            let mut c = Counters { stage: StageReport { name: "infer", ..Default::default() }, max_depth: 0 };
            // An encoder-format frame for the GPU stage's output: a recycled one, else a fresh copy of the template.
            let next_out = || match yuv_out_rx.try_recv() {
                Ok(f) => Ok(f),
                Err(_) => yuv_out.clone().ok_or_else(|| stage_err("infer", "no output frame".into())),
            };
            let r = (|| -> Result<(), StageFail> {
                loop {
                    let Some(msg) = timed_recv(&infer_rx, &mut c, infer_q) else { return Err(StageFail::Peer) };
                    if cancel.is_stopped() {
                        return Err(StageFail::Peer);
                    }
                    let out = match msg {
                        Msg::Frame { buf, pts, duration } => {
                            let t = Instant::now();
                            let mut out = out_pool_rx.try_recv().unwrap_or_default();
                            model
                                .upscale(&buf, w, h, &mut out)
                                .map_err(|e| StageFail::Error(EngineError::Backend(e)))?;
                            let want = 3 * w * h * (scale as usize).pow(2);
                            if out.len() != want {
                                return Err(stage_err(
                                    "infer",
                                    format!("model returned {} values, expected {want}", out.len()),
                                ));
                            }
                            let _ = in_pool_tx.send(buf);
                            c.stage.frames += 1;
                            c.stage.busy_s += t.elapsed().as_secs_f64();
                            Msg::Frame { buf: out, pts, duration }
                        }
                        Msg::Device { frame, pts, duration } => {
                            let t = Instant::now();
                            let mut out = next_out()?;
                            let Some(gpu) = model.yuv_upscaler() else {
                                return Err(stage_err("infer", "device frame without a device stage".into()));
                            };
                            gpu.upscale_device(&frame, &mut out).map_err(StageFail::Error)?;
                            frame.recycle();
                            c.stage.frames += 1;
                            c.stage.busy_s += t.elapsed().as_secs_f64();
                            Msg::Yuv { frame: out, pts, duration }
                        }
                        Msg::Yuv { frame, pts, duration } => {
                            let t = Instant::now();
                            let mut out = next_out()?;
                            let Some(gpu) = model.yuv_upscaler() else {
                                return Err(stage_err("infer", "4:2:0 frame without a device stage".into()));
                            };
                            gpu.upscale_yuv(&frame, &mut out).map_err(StageFail::Error)?;
                            let _ = yuv_in_tx.send(frame);
                            c.stage.frames += 1;
                            c.stage.busy_s += t.elapsed().as_secs_f64();
                            Msg::Yuv { frame: out, pts, duration }
                        }
                        other => other,
                    };
                    let end = matches!(out, Msg::End);
                    timed_send(&to_encode, out, &mut c, encode_q)?;
                    if end {
                        return Ok(());
                    }
                }
            })();
            (r, c)
        });
        let encode = std::thread::Builder::new().name("vf-encode".into()).spawn_scoped(s, move || {
            let mut c = Counters { stage: StageReport { name: "encode", ..Default::default() }, max_depth: 0 };
            let mut packets = 0u64;
            let t0 = Instant::now();
            // Built once: the per-frame report only updates the counters (no allocation per frame).
            let mut prog =
                Progress { input: input.into(), frames_done: 0, frames_total: info.estimated_frames, fps: 0.0 };
            let r = encode_pool.install(|| -> Result<crate::video::Finished, StageFail> {
                loop {
                    let Some(msg) = timed_recv(&encode_rx, &mut c, encode_q) else { return Err(StageFail::Peer) };
                    if cancel.is_stopped() {
                        return Err(StageFail::Peer);
                    }
                    let t = Instant::now();
                    match msg {
                        Msg::Frame { buf, pts, duration } => {
                            // Already on the encode pool: its parallel rows stay there.
                            sink.write_frame(&buf, pts, duration).map_err(|m| stage_err("encode", m))?;
                            let _ = out_pool_tx.send(buf);
                            c.stage.frames += 1;
                            report_encoded(c.stage.frames, t0, &mut prog, progress);
                        }
                        Msg::Yuv { frame, pts, duration } => {
                            sink.write_yuv(&frame, pts, duration).map_err(|m| stage_err("encode", m))?;
                            let _ = yuv_out_tx.send(frame);
                            c.stage.frames += 1;
                            report_encoded(c.stage.frames, t0, &mut prog, progress);
                        }
                        Msg::Packet(p) => {
                            sink.write_packet(p).map_err(|m| stage_err("encode", m))?;
                            packets += 1;
                        }
                        Msg::Device { .. } => {
                            return Err(stage_err("encode", "an undecoded device frame reached the encoder".into()))
                        }
                        Msg::End => {
                            let done = sink.finish().map_err(|m| stage_err("encode", m))?;
                            c.stage.busy_s += t.elapsed().as_secs_f64();
                            return Ok(done);
                        }
                    }
                    c.stage.busy_s += t.elapsed().as_secs_f64();
                }
            });
            // The pipeline's work ends with the trailer; the decoder's teardown after that is not throughput.
            (r, c, packets, Instant::now())
        });
        (join(decode, "decode"), join(infer, "infer"), join(encode, "encode"))
    });
    let joined = Instant::now();

    // The first real error wins, in pipeline order; panics count as errors.
    let mut first: Option<EngineError> = None;
    let mut note = |f: Result<(), StageFail>| {
        if let Err(StageFail::Error(e)) = f {
            first.get_or_insert(e);
        }
    };
    let (dec_r, dec_c, decoded) = dec?;
    note(dec_r);
    let (inf_r, inf_c) = match inf {
        Ok(v) => v,
        Err(e) => return Err(first.unwrap_or(e)),
    };
    note(inf_r);
    let (enc_r, enc_c, packets, encoder_done) = match enc {
        Ok(v) => v,
        Err(e) => return Err(first.unwrap_or(e)),
    };
    // From the stages' start to the encoder's last write (stage teardown, e.g. destroying NVDEC, excluded).
    let pipeline_wall_s = encoder_done.min(joined).duration_since(stages_started).as_secs_f64();
    let done = match enc_r {
        Ok(d) => Some(d),
        Err(f) => {
            note(Err(f));
            None
        }
    };
    if let Some(e) = first {
        return Err(e);
    }
    if cancel.is_stopped() {
        return Err(EngineError::Interrupted);
    }
    let Some(crate::video::Finished { frames: encoded, packets: video_packets, frames_sha256 }) = done else {
        return Err(EngineError::Stage {
            stage: "encode",
            message: "pipeline ended without finishing the output".into(),
            retry: Retry::Permanent,
        });
    };
    if decoded != encoded || encoded != video_packets || decoded != dec_c.stage.frames {
        return Err(EngineError::Stage {
            stage: "encode",
            message: format!(
                "frame count mismatch: {decoded} decoded, {encoded} encoded, {video_packets} video packets written"
            ),
            retry: Retry::Permanent,
        });
    }
    if decoded == 0 {
        return Err(EngineError::Media {
            path: input.into(),
            message: "the video stream has no frames".into(),
            retry: Retry::Permanent,
        });
    }
    let queues = vec![
        QueueReport { name: "decode→infer", capacity: depth, max_depth: dec_c.max_depth.min(depth) },
        QueueReport { name: "infer→encode", capacity: depth, max_depth: inf_c.max_depth.min(depth) },
    ];
    Ok(RunResult {
        frames: decoded,
        pipeline_wall_s,
        packets,
        stages: vec![dec_c.stage, inf_c.stage, enc_c.stage],
        queues,
        warnings: warnings.into_inner().unwrap_or_default(),
        frames_sha256,
    })
}
