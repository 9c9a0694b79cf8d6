//! The three stage threads of one file — [`decode`], [`infer`], [`encode`] — joined by bounded queues of the
//! plan's depth, and the buffers they recycle. Read a frame's life in that order. This file starts them, waits for
//! them, and turns their outcomes into the run's result: the first real error wins, in pipeline order; a panic is
//! an error; frames in must equal frames out.

mod decode;
mod encode;
mod infer;

use super::engine::Engine;
use super::msg::{Decoded, StageFail, Upscaled};
use super::progress::FileProgress;
use super::quality::{Gates, QualityReport};
use super::report::{QueueReport, StageReport};
use super::Cancel;
use crate::audit::AllocWindow;
use crate::error::{panic_message, EngineError};
use crate::gpu::nvdec::NvDecoder;
use crate::plan::{FilePlan, FramePath};
use crate::video::{DecoderFeed, FrameFilter, Sink, Source, VideoInfo, YuvFrame};
use std::path::Path;
use std::sync::atomic::{AtomicIsize, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Instant;

type Recycle<T> = (flume::Sender<T>, flume::Receiver<T>);

/// Buffers the stages hand back and forth: each one made before the run, recycled, so the steady state neither
/// allocates nor grows a pool late.
pub(super) struct Pools {
    rgb_in: Recycle<Vec<f32>>,
    rgb_out: Recycle<Vec<f32>>,
    yuv_in: Recycle<YuvFrame>,
    yuv_out: Recycle<YuvFrame>,
}

impl Pools {
    /// Every buffer the pipeline can hold at once (one being filled, `depth` queued, one being read, per side),
    /// for the plan's frame path. Host frames of the GPU stage are page-locked here, before the run.
    fn new(plan: &FilePlan, info: &VideoInfo, engine: &mut Engine, out_template: &YuvFrame) -> Pools {
        let pools = Pools {
            rgb_in: flume::unbounded(),
            rgb_out: flume::unbounded(),
            yuv_in: flume::unbounded(),
            yuv_out: flume::unbounded(),
        };
        let (w, h) = (info.width as usize, info.height as usize);
        let s = plan.scale as usize;
        for _ in 0..plan.pipeline.depth + 2 {
            match plan.frames {
                FramePath::HostRgb => {
                    pools.give_rgb_in(vec![0f32; 3 * w * h]);
                    pools.give_rgb_out(vec![0f32; 3 * w * h * s * s]);
                }
                FramePath::Upload | FramePath::Nvdec => {
                    let mut out = out_template.clone();
                    if let Some(stage) = engine.gpu() {
                        stage.prepare_frame(&mut out);
                    }
                    pools.give_yuv_out(out);
                    if plan.frames == FramePath::Upload {
                        let bits = info.bit_depth.clamp(8, 12);
                        let (m, r) = (info.color.matrix, info.color.range);
                        let mut input = YuvFrame::planar(w, h, bits, info.chroma, m, r);
                        if let Some(stage) = engine.gpu() {
                            stage.prepare_frame(&mut input);
                        }
                        pools.give_yuv_in(input);
                    }
                }
            }
        }
        pools
    }

    // The receiving ends live as long as the pools, so these sends cannot fail.
    fn give_rgb_in(&self, b: Vec<f32>) {
        self.rgb_in.0.send(b).ok();
    }
    fn give_rgb_out(&self, b: Vec<f32>) {
        self.rgb_out.0.send(b).ok();
    }
    fn give_yuv_in(&self, f: YuvFrame) {
        self.yuv_in.0.send(f).ok();
    }
    fn give_yuv_out(&self, f: YuvFrame) {
        self.yuv_out.0.send(f).ok();
    }

    /// A planar input frame (a recycled one, else an empty one the decoder sizes).
    fn take_yuv_in(&self, info: &VideoInfo) -> YuvFrame {
        self.yuv_in.1.try_recv().unwrap_or_else(|_| YuvFrame::new(0, 0, 8, info.color.matrix, info.color.range))
    }

    /// An encoder-format output frame; all were made before the run.
    fn take_yuv_out(&self) -> Result<YuvFrame, StageFail> {
        self.yuv_out
            .1
            .try_recv()
            .map_err(|_| StageFail::of("infer", EngineError::Invariant("no free output frame".into())))
    }
}

/// Everything a run of the stages needs.
pub(super) struct Stages<'a> {
    pub(super) input: &'a Path,
    pub(super) source: Source,
    pub(super) sink: Sink,
    pub(super) engine: &'a mut Engine,
    pub(super) info: &'a VideoInfo,
    pub(super) plan: &'a FilePlan,
    /// The frame path in force (the plan's, or the upload path when NVDEC could not be opened).
    pub(super) path: FramePath,
    pub(super) nvdec: Option<(NvDecoder, DecoderFeed)>,
    /// The plan's CPU filter (deinterlacing, inverse telecine), between the decoder and the model.
    pub(super) filter: Option<FrameFilter>,
    /// The encoder-format frame the GPU stage fills (device paths).
    pub(super) out_template: YuvFrame,
    pub(super) cancel: &'a Cancel,
    pub(super) progress: &'a FileProgress<'a>,
    pub(super) window: Option<&'a AllocWindow>,
}

/// What a successful run of the stages reports.
pub(super) struct StagesDone {
    /// Frames decoded.
    pub(super) decoded: u64,
    /// Frames encoded.
    pub(super) frames: u64,
    /// Seconds from the stage threads' start to the encoder's last write.
    pub(super) pipeline_wall_s: f64,
    pub(super) packets: u64,
    pub(super) stages: Vec<StageReport>,
    pub(super) queues: Vec<QueueReport>,
    pub(super) warnings: Vec<String>,
    pub(super) frames_sha256: Option<String>,
    pub(super) quality: QualityReport,
    pub(super) timeline: Vec<super::report::TimelinePoint>,
}

/// Runs decode → infer → encode on three threads until the stream ends or a stage fails.
pub(super) fn run(s: Stages<'_>) -> Result<StagesDone, EngineError> {
    let Stages { input, source, sink, engine, info, plan, path, nvdec, filter, out_template, cancel, progress, window } =
        s;
    let depth = plan.pipeline.depth.max(1);
    let pools = Pools::new(plan, info, engine, &out_template);
    // One rayon pool per converting stage, and the stage's loop runs *on* it (`install` once): its per-frame
    // parallel conversion then uses that pool from inside, through the worker's own deque. Handing every frame to
    // a pool from outside goes through rayon's injector queue, which allocates a block every 63 jobs. Two pools,
    // so that a worker waiting inside a parallel conversion can never pick up the other stage's loop.
    let make_pool = |stage: &'static str| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(plan.pipeline.cpu_threads.max(1))
            .thread_name(move |i| format!("videoforge-{stage}-{i}"))
            .build()
            .map_err(|e| EngineError::Spawn {
                what: format!("the {stage} thread pool"),
                source: std::io::Error::other(e.to_string()),
            })
    };
    let (decode_pool, encode_pool) = (make_pool("decode")?, make_pool("encode")?);
    let (to_infer, infer_rx) = crate::queue::bounded::<super::msg::Msg<Decoded>>(depth);
    let (to_encode, encode_rx) = crate::queue::bounded::<super::msg::Msg<Upscaled>>(depth);
    let (infer_q, encode_q) = (AtomicIsize::new(0), AtomicIsize::new(0));
    let warnings = Mutex::new(Vec::<String>::new());
    let clocks: [Arc<AtomicU64>; 3] = Default::default();
    let (w, h) = (info.width as usize, info.height as usize);

    let started = Instant::now();
    let (dec, inf, enc) = std::thread::scope(|scope| {
        let (pools, warnings, infer_q, encode_q) = (&pools, &warnings, &infer_q, &encode_q);
        let (decode_pool, encode_pool) = (&decode_pool, &encode_pool);
        let d = decode::Decode {
            source,
            nvdec,
            filter,
            path,
            info,
            pools,
            out: to_infer,
            depth: infer_q,
            cancel,
            window,
            warnings,
            clock: &clocks[0],
        };
        let decode = std::thread::Builder::new()
            .name("vf-decode".into())
            .spawn_scoped(scope, move || decode_pool.install(|| decode::run(d)));
        let i = infer::Infer {
            engine,
            width: w,
            height: h,
            pools,
            gates: Gates::new(&plan.quality),
            input: infer_rx,
            input_depth: infer_q,
            out: to_encode,
            out_depth: encode_q,
            cancel,
            clock: &clocks[1],
        };
        let infer = std::thread::Builder::new().name("vf-infer".into()).spawn_scoped(scope, move || infer::run(i));
        let e = encode::Encode {
            sink,
            input_path: input,
            frames_total: info.estimated_frames.map(|n| plan.filter.frames_out(n)),
            pools,
            input: encode_rx,
            input_depth: encode_q,
            cancel,
            progress,
            clocks: &clocks,
            started,
        };
        let encode = std::thread::Builder::new()
            .name("vf-encode".into())
            .spawn_scoped(scope, move || encode_pool.install(|| encode::run(e)));
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
    let (dec_r, dec_c, counts) = dec?;
    note(dec_r);
    let (inf_r, inf_c, quality) = match inf {
        Ok(v) => v,
        Err(e) => return Err(first.unwrap_or(e)),
    };
    note(inf_r);
    let enc = match enc {
        Ok(v) => v,
        Err(e) => return Err(first.unwrap_or(e)),
    };
    // From the stages' start to the encoder's last write (stage teardown, e.g. destroying NVDEC, excluded).
    let pipeline_wall_s = enc.done_at.min(joined).duration_since(started).as_secs_f64();
    let done = match enc.result {
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
        return Err(EngineError::in_stage(
            "encode",
            EngineError::Invariant("the stages ended without an output".into()),
        ));
    };
    // Every decoded frame went into the filter (or straight on), every frame out of it was encoded and written.
    let decoded = counts.decoded;
    let (filter_in, filter_out) = counts.filtered.unwrap_or((decoded, decoded));
    if decoded != filter_in || filter_out != dec_c.stage.frames || filter_out != encoded || encoded != video_packets {
        let filtered = counts.filtered.map(|(_, out)| format!("{out} filtered, ")).unwrap_or_default();
        return Err(EngineError::in_stage(
            "encode",
            EngineError::Invariant(format!(
                "frame count mismatch: {decoded} decoded, {filtered}{encoded} encoded, {video_packets} video packets \
                 written"
            )),
        ));
    }
    let queues = vec![
        QueueReport { name: "decode→infer", capacity: depth, max_depth: dec_c.max_depth.min(depth) },
        QueueReport { name: "infer→encode", capacity: depth, max_depth: inf_c.max_depth.min(depth) },
    ];
    Ok(StagesDone {
        decoded,
        frames: encoded,
        pipeline_wall_s,
        packets: enc.packets,
        stages: vec![dec_c.stage, inf_c.stage, enc.counters.stage],
        queues,
        warnings: warnings.into_inner().unwrap_or_else(|e| e.into_inner()),
        frames_sha256,
        quality,
        timeline: enc.timeline,
    })
}

fn join<T>(r: std::io::Result<std::thread::ScopedJoinHandle<'_, T>>, name: &str) -> Result<T, EngineError> {
    match r {
        Ok(h) => h
            .join()
            .map_err(|p| EngineError::PanicRecovered { origin: format!("stage {name}"), message: panic_message(&*p) }),
        Err(source) => Err(EngineError::Spawn { what: format!("the {name} thread"), source }),
    }
}
