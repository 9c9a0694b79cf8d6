//! Demux and decode: opens an input with libavformat, picks the video stream, decodes it with libavcodec
//! (frame + slice threads), and hands out decoded frames and the other streams' packets in file order.

use super::color::{self, Matrix, Range};
use super::error::VideoError;
use super::frame::Frame;
use super::tags::{stream_hdr, ColorInfo, ColorTags};
use crate::codec::Chroma;
use crate::plan::Interlacing;
use crate::retry::Retry;
use ff::codec::threading;
use ffmpeg_next as ff;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// What the pipeline needs to know about the input's video stream.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VideoInfo {
    /// Stream index in the input.
    pub stream_index: usize,
    /// Decoder name (`h264`, ...).
    pub codec: String,
    /// Coded width in pixels.
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// Decoded pixel format name (`yuv420p10le`, ...).
    pub pixel_format: String,
    /// Bits per sample of the decoded format (8, 10, ...).
    pub bit_depth: u8,
    /// Chroma subsampling of the decoded format (RGB counts as 4:4:4, grey as 4:2:0).
    pub chroma: Chroma,
    /// The decoded format has an alpha plane.
    pub alpha: bool,
    /// What the codec parameters and the first frames say about interlacing.
    pub interlacing: Interlacing,
    /// Stream time base (numerator, denominator); output timestamps use it unchanged.
    pub time_base: (i32, i32),
    /// Average frame rate, if the container knows it.
    pub frame_rate: Option<(i32, i32)>,
    /// Sample aspect ratio (0/1 or 1/1 = square).
    pub sample_aspect_ratio: (i32, i32),
    /// Resolved colour description.
    pub color: ColorInfo,
    /// Frames in the stream if the container says, else an estimate from duration × frame rate.
    pub estimated_frames: Option<u64>,
    /// Container format short name (`matroska,webm`, `mov,mp4,...`).
    pub container: String,
}

/// One item read from the input, in file order.
pub enum Item {
    /// A decoded video frame.
    Frame(Frame),
    /// A packet of another stream (audio, subtitles...), not decoded.
    Packet(ff::Packet),
    /// A packet of the video stream, not decoded (after [`Source::hand_out_video_packets`]: a device decodes).
    VideoPacket(ff::Packet),
}

/// An opened input: the demuxer and the video decoder.
pub struct Source {
    path: PathBuf,
    input: ff::format::context::Input,
    decoder: ff::decoder::Video,
    info: VideoInfo,
    warnings: Vec<String>,
    ready: VecDeque<Frame>,
    eof: bool,
    flushed: bool,
    frames: u64,
    /// End time (stream time base) of the latest decoded frame.
    last_end: i64,
    /// Video packets go to the caller instead of the CPU decoder.
    raw_video: bool,
}

fn rational(r: ff::Rational) -> (i32, i32) {
    (r.numerator(), r.denominator())
}

/// Map FFmpeg's colour space tag to a matrix: `Ok(None)` = unspecified, `Err(name)` = tagged but unsupported.
pub(crate) fn matrix_of(space: ff::color::Space) -> Result<Option<Matrix>, &'static str> {
    use ff::color::Space;
    match space {
        Space::BT709 => Ok(Some(Matrix::Bt709)),
        Space::BT470BG | Space::SMPTE170M => Ok(Some(Matrix::Bt601)),
        Space::BT2020NCL => Ok(Some(Matrix::Bt2020Ncl)),
        Space::Unspecified | Space::Reserved => Ok(None),
        Space::RGB => Err("rgb"),
        Space::FCC => Err("fcc"),
        Space::SMPTE240M => Err("smpte240m"),
        Space::YCGCO => Err("ycgco"),
        Space::BT2020CL => Err("bt2020c"),
        _ => Err("non-standard"),
    }
}

impl Source {
    /// Open `path`, find its best video stream and open a threaded decoder for it (`threads` 0 = auto).
    pub fn open(path: &Path, threads: usize) -> Result<Source, VideoError> {
        super::ffmpeg::init();
        if !path.exists() {
            return Err(VideoError::input(path, "no such file", Retry::Permanent));
        }
        let input = ff::format::input(&path)
            .map_err(|e| VideoError::input(path, format!("not a readable media file ({e})"), Retry::Permanent))?;
        // FFmpeg's own choice (what players show): decodable, most frames/bitrate; cover art is not a video.
        let stream = input
            .streams()
            .best(ff::media::Type::Video)
            .filter(|s| !s.disposition().contains(ff::format::stream::Disposition::ATTACHED_PIC))
            .ok_or_else(|| VideoError::input(path, "no video stream", Retry::Permanent))?;
        let stream_index = stream.index();
        let time_base = stream.time_base();
        let mut ctx = ff::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| VideoError::input(path, format!("video stream: {e}"), Retry::Permanent))?;
        let codec_id = ctx.id();
        if ff::decoder::find(codec_id).is_none() {
            return Err(VideoError::input(
                path,
                format!("unsupported video codec {codec_id:?}: no decoder"),
                Retry::Permanent,
            ));
        }
        // H.264 decodes with slice threads, not frame threads: with frame threading its error concealment is off,
        // and with it the only sign that a frame was damaged (the frame's decode-error flags), so a corrupt file
        // passed as clean or not depending on thread timing. Single-slice streams then decode on one core, still
        // far ahead of inference; on a GPU, NVDEC takes H.264 anyway. Other codecs keep frame threads.
        let kind = if codec_id == ff::codec::Id::H264 { threading::Type::Slice } else { threading::Type::Frame };
        ctx.set_threading(threading::Config { kind, count: threads, ..Default::default() });
        // SAFETY: setting the packet time base on an unopened codec context (what ffmpeg's CLI does).
        unsafe { (*ctx.as_mut_ptr()).pkt_timebase = time_base.into() };
        let decoder = ctx.decoder().video().map_err(|e| {
            VideoError::input(path, format!("cannot open the {codec_id:?} decoder: {e}"), Retry::Permanent)
        })?;
        let (width, height) = (decoder.width(), decoder.height());
        if width == 0 || height == 0 {
            return Err(VideoError::input(path, "video stream has no size (not a video?)", Retry::Permanent));
        }
        let fmt = decoder.format();
        let bit_depth = bit_depth_of(fmt);
        let (chroma, alpha) = chroma_of(fmt);
        let mut warnings = Vec::new();
        let tags = ColorTags::of_decoder(&decoder);
        let tagged_matrix = matrix_of(decoder.color_space());
        let full_by_format =
            matches!(fmt, ff::format::Pixel::YUVJ420P | ff::format::Pixel::YUVJ422P | ff::format::Pixel::YUVJ444P);
        let tagged_range = match decoder.color_range() {
            ff::color::Range::MPEG => Some(Range::Limited),
            ff::color::Range::JPEG => Some(Range::Full),
            _ if full_by_format => Some(Range::Full),
            _ => None,
        };
        let (matrix, range, w) =
            color::resolve(tagged_matrix.unwrap_or(None), tagged_matrix.err(), tagged_range, width, height);
        warnings.extend(w);
        let mut color =
            ColorInfo::new(tags, matrix, range, tagged_matrix.ok().flatten().is_none(), tagged_range.is_none());
        // The first frames: interlacing flags, and HDR side data where the container has none.
        let look = super::peek::peek(path, stream_index);
        let (mastering, light) = stream_hdr(&stream);
        color.mastering_display = mastering.or(look.mastering);
        color.content_light = light.or(look.light);
        // SAFETY: reading a plain field of the stream's codec parameters.
        let field_order = unsafe { (*stream.parameters().as_ptr()).field_order };
        let interlacing = Interlacing {
            field_order: field_order_name(field_order).into(),
            frames_checked: look.frames,
            frames_interlaced: look.interlaced,
            frames_top_first: look.top_first,
        };
        let rate = stream.avg_frame_rate();
        let frame_rate = (rate.numerator() > 0 && rate.denominator() > 0).then(|| rational(rate));
        let estimated_frames = if stream.frames() > 0 {
            Some(stream.frames() as u64)
        } else {
            let secs = if stream.duration() > 0 {
                stream.duration() as f64 * f64::from(time_base)
            } else if input.duration() > 0 {
                input.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE)
            } else {
                0.0
            };
            frame_rate.map(|(n, d)| (secs * f64::from(n) / f64::from(d)).round() as u64).filter(|n| *n > 0)
        };
        let sar = decoder.aspect_ratio();
        let info = VideoInfo {
            stream_index,
            codec: ff::decoder::find(codec_id).map(|c| c.name().to_string()).unwrap_or_default(),
            width,
            height,
            pixel_format: fmt.descriptor().map(|d| d.name().to_string()).unwrap_or_else(|| format!("{fmt:?}")),
            bit_depth,
            chroma,
            alpha,
            interlacing,
            time_base: rational(time_base),
            frame_rate,
            sample_aspect_ratio: rational(if sar.numerator() > 0 { sar } else { stream.parameters_sar() }),
            color,
            estimated_frames,
            container: input.format().name().to_string(),
        };
        Ok(Source {
            path: path.into(),
            input,
            decoder,
            info,
            warnings,
            ready: VecDeque::new(),
            eof: false,
            flushed: false,
            frames: 0,
            last_end: i64::MIN,
            raw_video: false,
        })
    }

    /// The video stream's description.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// Warnings found while opening (assumed colours...).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The demuxer (to build the output's stream layout before decoding starts).
    pub(super) fn input(&self) -> &ff::format::context::Input {
        &self.input
    }

    /// Whether decoded frames are planar 4:2:0, 4:2:2 or 4:4:4 at 8 to 12 bits (what the GPU stage takes as is).
    pub fn planar_yuv(&self) -> bool {
        super::yuv::YuvFrame::supports(self.decoder.format())
    }

    /// Whether decoded frames go through swscale before the RGB conversion.
    pub fn needs_swscale(&self) -> bool {
        super::convert::ToRgb::needs_swscale(self.decoder.format())
    }

    /// From now on hand the video stream's packets out as [`Item::VideoPacket`] instead of decoding them (the
    /// caller decodes on a device). The end-of-stream checks then work from packet timestamps.
    pub fn hand_out_video_packets(&mut self) {
        self.raw_video = true;
    }

    /// The video stream (its parameters set up the bitstream filter of a device decoder's feed).
    pub(super) fn video_stream(&self) -> Option<ff::format::stream::Stream<'_>> {
        self.input.stream(self.info.stream_index)
    }

    /// Frames decoded so far (by the CPU decoder).
    pub fn frames_decoded(&self) -> u64 {
        self.frames
    }

    fn broken(&self, what: String) -> VideoError {
        VideoError::input(
            &self.path,
            format!("{} frames decoded before the stream broke: {what}", self.frames),
            Retry::Permanent,
        )
    }

    fn drain_decoder(&mut self) -> Result<(), VideoError> {
        loop {
            let mut frame = ff::frame::Video::empty();
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    if frame.is_corrupt() || frame.has_decode_errors() {
                        return Err(self.broken("corrupt frame".into()));
                    }
                    self.frames += 1;
                    if let Some(t) = frame.timestamp().or(frame.pts()) {
                        self.last_end = self.last_end.max(t + frame.packet().duration.max(0));
                    }
                    self.ready.push_back(Frame(frame));
                }
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => return Ok(()),
                Err(ff::Error::Eof) => {
                    self.flushed = true;
                    return Ok(());
                }
                Err(e) => return Err(self.broken(format!("decode: {e}"))),
            }
        }
    }

    /// A file cut short still demuxes cleanly up to the cut; compare where the video ended with the duration
    /// the container declares in its header (more than 10% and 0.5 s short = truncated).
    fn check_complete(&self) -> Result<(), VideoError> {
        if self.frames == 0 && !self.raw_video {
            return Err(VideoError::input(
                &self.path,
                "no video frame could be decoded (empty or truncated stream)",
                Retry::Permanent,
            ));
        }
        let declared = self.input.duration();
        if declared <= 0 || self.last_end == i64::MIN {
            return Ok(());
        }
        let (n, d) = self.info.time_base;
        let start = self.input.stream(self.info.stream_index).map(|s| s.start_time()).filter(|t| *t != i64::MIN);
        let end_s = (self.last_end - start.unwrap_or(0)) as f64 * f64::from(n) / f64::from(d);
        let declared_s = declared as f64 / f64::from(ff::ffi::AV_TIME_BASE);
        if end_s < declared_s * 0.9 - 0.5 {
            return Err(self.broken(format!(
                "truncated: the video ends at {end_s:.3} s but the container declares {declared_s:.3} s"
            )));
        }
        Ok(())
    }

    /// The next frame or other-stream packet in file order; `None` at the end.
    pub fn next_item(&mut self) -> Result<Option<Item>, VideoError> {
        loop {
            if let Some(f) = self.ready.pop_front() {
                return Ok(Some(Item::Frame(f)));
            }
            if self.flushed {
                return Ok(None);
            }
            if self.eof {
                self.drain_decoder()?;
                if self.ready.is_empty() {
                    self.flushed = true;
                }
                if self.flushed {
                    // Every frame is out of the decoder: check before handing out the last ones.
                    self.check_complete()?;
                }
                continue;
            }
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {}
                Err(ff::Error::Eof) => {
                    self.eof = true;
                    // EOF may only be sent once.
                    self.decoder.send_eof().map_err(|e| self.broken(format!("flush: {e}")))?;
                    continue;
                }
                Err(e) => return Err(self.broken(format!("read: {e}"))),
            }
            if packet.stream() != self.info.stream_index {
                return Ok(Some(Item::Packet(packet)));
            }
            if packet.is_corrupt() {
                return Err(self.broken("corrupt packet".into()));
            }
            if self.raw_video {
                if let Some(t) = packet.pts() {
                    self.last_end = self.last_end.max(t + packet.duration().max(0));
                }
                return Ok(Some(Item::VideoPacket(packet)));
            }
            loop {
                match self.decoder.send_packet(&packet) {
                    Ok(()) => break,
                    Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                        // The decoder is full: take frames out first (kept in `ready`), then resend.
                        let before = self.ready.len();
                        self.drain_decoder()?;
                        if self.ready.len() == before {
                            return Err(self.broken("decoder accepts no input and gives no output".into()));
                        }
                    }
                    Err(e) => return Err(self.broken(format!("decode: {e}"))),
                }
            }
            self.drain_decoder()?;
        }
    }
}

/// FFmpeg's name of a field order.
fn field_order_name(f: ff::ffi::AVFieldOrder) -> &'static str {
    use ff::ffi::AVFieldOrder::*;
    match f {
        AV_FIELD_PROGRESSIVE => "progressive",
        AV_FIELD_TT => "tt",
        AV_FIELD_BB => "bb",
        AV_FIELD_TB => "tb",
        AV_FIELD_BT => "bt",
        _ => "unknown",
    }
}

/// The chroma layout of a pixel format (RGB counts as 4:4:4; grey, 4:1:0 as 4:2:0; 4:1:1 as 4:2:2, which carries
/// it whole; 4:4:0 as 4:4:4), and whether it has an alpha plane.
pub(crate) fn chroma_of(fmt: ff::format::Pixel) -> (Chroma, bool) {
    let Some(d) = fmt.descriptor() else { return (Chroma::C420, false) };
    // SAFETY: a descriptor from FFmpeg's static table.
    let (flags, comps, w, h) = unsafe {
        ((*d.as_ptr()).flags, (*d.as_ptr()).nb_components, (*d.as_ptr()).log2_chroma_w, (*d.as_ptr()).log2_chroma_h)
    };
    let alpha = flags & ff::ffi::AV_PIX_FMT_FLAG_ALPHA as u64 != 0;
    let chroma = if flags & ff::ffi::AV_PIX_FMT_FLAG_RGB as u64 != 0 {
        Chroma::C444
    } else if comps < 3 {
        Chroma::C420
    } else {
        match (w, h) {
            (0, _) => Chroma::C444,
            (_, 0) => Chroma::C422,
            _ => Chroma::C420,
        }
    };
    (chroma, alpha)
}

/// Bits per sample of a pixel format (from its descriptor; 8 when unknown).
pub fn bit_depth_of(fmt: ff::format::Pixel) -> u8 {
    fmt.descriptor()
        // SAFETY: a descriptor from FFmpeg's static table; comp[0] always exists.
        .map(|d| unsafe { (*d.as_ptr()).comp[0].depth as u8 })
        .filter(|d| *d > 0)
        .unwrap_or(8)
}

trait ParametersSar {
    fn parameters_sar(&self) -> ff::Rational;
}

impl ParametersSar for ff::format::stream::Stream<'_> {
    fn parameters_sar(&self) -> ff::Rational {
        // SAFETY: reading a field of the stream's AVStream.
        unsafe { (*self.as_ptr()).sample_aspect_ratio.into() }
    }
}
