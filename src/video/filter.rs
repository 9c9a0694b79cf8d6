//! The file plan's libavfilter graph between the decoder and the model (`buffer → bwdif | fieldmatch, bwdif,
//! decimate → buffersink`): decoded frames in, filtered frames out with the timestamps and durations of the
//! planned time base and frame rate. Inverse telecine's frames are retimed here at the planned rate from the first
//! frame's timestamp (decimate keeps four frames in five; their new timestamps are evenly spaced, so the video
//! still lasts as long as the audio).

use super::error::VideoError;
use super::frame::Frame;
use super::source::VideoInfo;
use crate::plan::FilterPlan;
use ffmpeg_next as ff;

/// A configured filter graph and its counters.
pub struct FrameFilter {
    /// Owns the filters; `src` and `sink` point into it.
    _graph: ff::filter::Graph,
    src: *mut ff::ffi::AVFilterContext,
    sink: *mut ff::ffi::AVFilterContext,
    plan: FilterPlan,
    /// Output ticks per frame in the output time base, when the rate is known.
    tick: Option<i64>,
    /// Timestamp of the first frame in, in the output time base (the retimed timeline starts there).
    first_pts: Option<i64>,
    /// The input's time base.
    in_tb: ff::Rational,
    frames_in: u64,
    frames_out: u64,
    flushed: bool,
}

// SAFETY: the graph is owned and used by one thread at a time (the decode stage).
unsafe impl Send for FrameFilter {}

fn filter_err<'a>(what: &'a str, chain: &'a str) -> impl Fn(ff::Error) -> VideoError + 'a {
    move |e| VideoError::Unsupported(format!("filter {chain:?}: {what}: {e}"))
}

impl FrameFilter {
    /// Builds and configures the plan's graph (`plan.chain` must be set) for frames of the stream `info` describes.
    pub fn new(plan: &FilterPlan, info: &VideoInfo) -> Result<FrameFilter, VideoError> {
        let chain = plan.chain.as_deref().ok_or_else(|| VideoError::Stream("no filter chain in the plan".into()))?;
        let pix: ff::format::Pixel = info.pixel_format.parse().map_err(|_| {
            VideoError::Unsupported(format!("pixel format {} unknown to libavfilter", info.pixel_format))
        })?;
        let pix_id: ff::ffi::AVPixelFormat = pix.into();
        let (tn, td) = info.time_base;
        let (sn, sd) = match info.sample_aspect_ratio {
            (n, d) if n > 0 && d > 0 => (n, d),
            _ => (1, 1),
        };
        let mut args = format!(
            "video_size={}x{}:pix_fmt={}:time_base={tn}/{td}:pixel_aspect={sn}/{sd}",
            info.width, info.height, pix_id as i32
        );
        if let Some((n, d)) = info.frame_rate {
            args.push_str(&format!(":frame_rate={n}/{d}"));
        }
        let find = |name: &str| {
            ff::filter::find(name).ok_or_else(|| VideoError::Unsupported(format!("libavfilter has no {name} filter")))
        };
        let mut graph = ff::filter::Graph::new();
        graph.add(&find("buffer")?, "in", &args).map_err(filter_err("source", chain))?;
        let mut sink_ctx = graph.add(&find("buffersink")?, "out", "").map_err(filter_err("sink", chain))?;
        // The frames keep their format: the GPU path uploads them as they are.
        sink_ctx.set_pixel_format(pix);
        graph
            .output("in", 0)
            .and_then(|p| p.input("out", 0))
            .and_then(|p| p.parse(chain))
            .map_err(filter_err("parse", chain))?;
        graph.validate().map_err(filter_err("configure", chain))?;
        let (Some(mut src), Some(mut out)) = (graph.get("in"), graph.get("out")) else {
            return Err(VideoError::Stream(format!("filter {chain:?}: its source or sink is missing")));
        };
        let tb = out.sink().time_base();
        // SAFETY: both contexts belong to `graph`, which the filter keeps for as long as it uses them.
        let (src, sink) = unsafe { (src.as_mut_ptr(), out.as_mut_ptr()) };
        let (pn, pd) = plan.time_base;
        if i64::from(tb.numerator()) * i64::from(pd) != i64::from(pn) * i64::from(tb.denominator()) {
            return Err(VideoError::Stream(format!(
                "filter {chain:?} gives time base {}/{}; the plan says {pn}/{pd}",
                tb.numerator(),
                tb.denominator()
            )));
        }
        let tick = plan.frame_rate.filter(|(n, d)| *n > 0 && *d > 0).map(|(n, d)| {
            // Ticks of (pn/pd) per frame at n/d fps, rounded.
            let (num, den) = (i64::from(pd) * i64::from(d), i64::from(pn) * i64::from(n));
            ((num + den / 2) / den).max(1)
        });
        Ok(FrameFilter {
            _graph: graph,
            src,
            sink,
            plan: plan.clone(),
            tick,
            first_pts: None,
            in_tb: ff::Rational::new(tn, td),
            frames_in: 0,
            frames_out: 0,
            flushed: false,
        })
    }

    /// Frames pushed in.
    pub fn frames_in(&self) -> u64 {
        self.frames_in
    }

    /// Frames taken out.
    pub fn frames_out(&self) -> u64 {
        self.frames_out
    }

    fn fail(&self, what: &str, e: ff::Error) -> VideoError {
        filter_err(what, self.plan.chain.as_deref().unwrap_or(""))(e)
    }

    /// Pushes one decoded frame (its timestamp is the decoder's best effort).
    pub fn push(&mut self, mut frame: Frame) -> Result<(), VideoError> {
        let pts = frame.pts();
        frame.0.set_pts(pts);
        if self.first_pts.is_none() {
            let out_tb = ff::Rational::new(self.plan.time_base.0, self.plan.time_base.1);
            // SAFETY: a pure arithmetic helper.
            self.first_pts = pts.map(|p| unsafe { ff::ffi::av_rescale_q(p, self.in_tb.into(), out_tb.into()) });
        }
        // SAFETY: the source context is live (owned by the graph); the call takes its own reference to the frame.
        let rc = unsafe { ff::ffi::av_buffersrc_add_frame(self.src, frame.0.as_mut_ptr()) };
        if rc < 0 {
            return Err(self.fail("push", ff::Error::from(rc)));
        }
        self.frames_in += 1;
        Ok(())
    }

    /// Ends the input: the frames the filter still holds come out of [`FrameFilter::pull`].
    pub fn flush(&mut self) -> Result<(), VideoError> {
        if self.flushed {
            return Ok(());
        }
        self.flushed = true;
        // SAFETY: a null frame marks the end of the source's input.
        let rc = unsafe { ff::ffi::av_buffersrc_add_frame(self.src, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(self.fail("flush", ff::Error::from(rc)));
        }
        Ok(())
    }

    /// The next filtered frame, if one is ready: its timestamp (as [`Frame::pts`] reads it) and duration in the
    /// plan's time base.
    pub fn pull(&mut self) -> Result<Option<Frame>, VideoError> {
        let mut out = ff::frame::Video::empty();
        // SAFETY: the sink context is live; the frame is empty and ours.
        let rc = unsafe { ff::ffi::av_buffersink_get_frame(self.sink, out.as_mut_ptr()) };
        match rc {
            0.. => {}
            e if e == ff::ffi::AVERROR(ff::ffi::EAGAIN) || e == ff::ffi::AVERROR_EOF => return Ok(None),
            e => return Err(self.fail("pull", ff::Error::from(e))),
        }
        let pts = match (self.plan.retime, self.first_pts, self.tick) {
            (true, Some(first), Some(tick)) => {
                Some(first + self.retimed(self.frames_out).unwrap_or(tick * self.frames_out as i64))
            }
            _ => out.pts(),
        };
        self.frames_out += 1;
        // One frame period at the planned rate (the filter's frames carry their input packet's duration, in the
        // input's time base).
        let duration = self.tick.unwrap_or(0);
        out.set_pts(pts);
        // SAFETY: plain fields of a frame this function owns; `Frame::pts` and `Frame::duration` read them.
        unsafe {
            (*out.as_mut_ptr()).best_effort_timestamp = pts.unwrap_or(ff::ffi::AV_NOPTS_VALUE);
            (*out.as_mut_ptr()).pkt_duration = duration;
        }
        Ok(Some(Frame(out)))
    }

    /// Offset of output frame `n` from the first frame, exactly `n` frame periods rounded once (no drift).
    fn retimed(&self, n: u64) -> Option<i64> {
        let (pn, pd) = self.plan.time_base;
        let (fn_, fd) = self.plan.frame_rate?;
        let num = n as i128 * i128::from(pd) * i128::from(fd);
        let den = i128::from(pn) * i128::from(fn_);
        (den > 0).then(|| ((num + den / 2) / den) as i64)
    }
}
