//! Encode and mux: opens the output container, lays out its streams in the input's order (the upscaled video
//! stream plus stream copies of audio, subtitles and attachments), carries over container/stream metadata,
//! chapters, the sample aspect ratio, the display matrix (rotation), the colour tags and HDR side data exactly as
//! read, the timecode and reel name (the QuickTime muxer writes its `tmcd` track from them), encodes frames with the
//! planned encoder keeping every timestamp (the input's, or the filter's), and writes the trailer.
//!
//! Finishing is explicit and fallible ([`Sink::finish`]: flush, trailer, close). Dropping a sink that was not
//! finished only releases it ([`Muxer`]): no trailer, no flush of the muxer or of its byte buffer on an output
//! whose I/O may already have failed (a trailer written after a failed write crashed libavformat on a full disk),
//! the file descriptor closed; the caller removes the partial file.

use super::color::Subsampling;
use super::convert;
use super::encoder::{EncoderRecipe, VideoOut};
use super::error::VideoError;
use super::segments::Segments;
use super::source::Source;
use super::tags::{add_stream_hdr, ColorInfo, ColorTags};
use crate::plan::EncodePlan;
use ffmpeg_next as ff;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// An open output: muxer, video encoder, and the map from input streams to output streams.
pub struct Sink {
    octx: Muxer,
    encoder: VideoEncoder,
    frame: ff::frame::Video,
    video_out: usize,
    enc_tb: ff::Rational,
    /// input stream index → (output stream index, input time base)
    copies: HashMap<usize, (usize, ff::Rational)>,
    durations: HashMap<i64, i64>,
    color: ColorInfo,
    /// The tags every frame carries (the input's, or what was assumed).
    tags: ColorTags,
    out: VideoOut,
    frames_in: u64,
    muxed: Muxed,
    /// SHA-256 over the visible samples of every frame sent to the encoder (audits only): tells an engine that
    /// is not deterministic from an encoder that is not.
    digest: Option<Sha256>,
}

/// What has been handed to the muxer.
#[derive(Debug, Default)]
struct Muxed {
    video_packets: u64,
    bytes: u64,
}

/// One encoder instance, or several on consecutive segments ([`Segments`]).
enum VideoEncoder {
    One(ff::encoder::Video),
    Segments(Segments),
}

/// What [`Sink::finish`] reports.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Frames sent to the encoder.
    pub frames: u64,
    /// Video packets written.
    pub packets: u64,
    /// SHA-256 of the frames the encoder received, when [`Sink::digest_frames`] was called.
    pub frames_sha256: Option<String>,
}

// SAFETY: the output context, encoder and frame are owned and used by one thread at a time.
unsafe impl Send for Sink {}

fn codec_name(id: ff::codec::Id) -> String {
    // SAFETY: avcodec_get_name returns a static string for any id.
    unsafe { std::ffi::CStr::from_ptr(ff::ffi::avcodec_get_name(id.into())) }.to_string_lossy().into_owned()
}

impl Sink {
    /// Create the output at `path` (the caller's temporary name) as `format`, with streams laid out like
    /// `input`, and write the header. Returns the sink and warnings (skipped streams, ignored options).
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        path: &Path,
        format: &str,
        source: &Source,
        out: VideoOut,
        encode: &EncodePlan,
        metadata: &[(String, String)],
    ) -> Result<(Sink, Vec<String>), VideoError> {
        let (input, info) = (source.input(), source.info());
        let mut warnings = Vec::new();
        let mut octx = Muxer(ff::format::output_as(&path, format).map_err(|source| VideoError::Create { source })?);
        let global_header = octx.format().flags().contains(ff::format::Flags::GLOBAL_HEADER);

        // The encoder first: its parameters (extradata) are needed for the stream.
        let recipe = EncoderRecipe::new(encode, &out, info, global_header)?;
        let encoder = recipe.open()?;
        let (tb, sar) = (recipe.time_base, recipe.sar);
        let color = info.color.clone();
        let tags = color.output_tags();
        let pix = recipe.pix;
        // A QuickTime timecode track is not copied: the MOV/MP4 muxers write a new one from the video stream's
        // `timecode` tag (and its `reel_name`, which the demuxer leaves on the track), Matroska keeps the tag.
        let track_tag = |key: &str| {
            input
                .streams()
                .filter(|s| s.parameters().medium() == ff::media::Type::Data && is_timecode_track(s))
                .find_map(|s| s.metadata().get(key).map(str::to_string))
        };
        let (timecode, reel) = (track_tag("timecode"), track_tag("reel_name"));

        // Streams in input order: the upscaled video where the input's was, copies of the others.
        let mut copies = HashMap::new();
        let mut video_out = 0;
        // SAFETY: reading the output format pointer of a live output context.
        let oformat = unsafe { (*octx.as_ptr()).oformat };
        for ist in input.streams() {
            let medium = ist.parameters().medium();
            let idx = ist.index();
            if idx == info.stream_index {
                let mut ost =
                    octx.add_stream_with(&encoder).map_err(|e| VideoError::encoder("add the video stream", e))?;
                ost.set_time_base(tb);
                if let Some((n, d)) = out.frame_rate {
                    ost.set_avg_frame_rate(ff::Rational::new(n, d));
                }
                let mut md = video_metadata(&ist);
                for (key, value) in [("timecode", &timecode), ("reel_name", &reel)] {
                    if let Some(v) = value.as_deref().filter(|_| md.get(key).is_none()) {
                        md.set(key, v);
                    }
                }
                ost.set_metadata(md);
                // SAFETY: the new stream is live; side data copied byte for byte; SAR set on stream and codecpar.
                unsafe {
                    let s = ost.as_mut_ptr();
                    (*s).sample_aspect_ratio = sar.into();
                    (*(*s).codecpar).sample_aspect_ratio = sar.into();
                    (*s).disposition = (*ist.as_ptr()).disposition;
                    for sd in ist.side_data() {
                        if sd.kind() == ff::codec::packet::side_data::Type::DisplayMatrix {
                            let data = sd.data();
                            let dst = ff::ffi::av_stream_new_side_data(
                                s,
                                ff::ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
                                data.len(),
                            );
                            if !dst.is_null() {
                                std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
                            }
                        }
                    }
                    add_stream_hdr(s, color.mastering_display, color.content_light);
                }
                video_out = ost.index();
                continue;
            }
            let (wanted, kind) = match medium {
                ff::media::Type::Audio => (encode.copy_audio, "audio"),
                ff::media::Type::Subtitle => (encode.copy_subtitles, "subtitle"),
                ff::media::Type::Attachment => (encode.copy_subtitles, "attachment"),
                ff::media::Type::Video => {
                    warnings.push(format!("stream {idx}: extra video stream (or cover art) not copied"));
                    continue;
                }
                _ if is_timecode_track(&ist) => continue,
                _ => {
                    warnings.push(format!("stream {idx}: data stream not copied"));
                    continue;
                }
            };
            if !wanted {
                continue;
            }
            let id = ist.parameters().id();
            // SAFETY: FFmpeg's own container/codec compatibility query.
            let ok = unsafe { ff::ffi::avformat_query_codec(oformat, id.into(), ff::ffi::FF_COMPLIANCE_NORMAL) == 1 };
            if !ok {
                warnings.push(format!(
                    "stream {idx}: {kind} codec {} cannot be stored in {format}; stream skipped (not converted)",
                    codec_name(id)
                ));
                continue;
            }
            let mut ost = octx
                .add_stream(ff::encoder::find(ff::codec::Id::None))
                .map_err(|e| VideoError::encoder(format!("add stream {idx}"), e))?;
            ost.set_parameters(ist.parameters());
            ost.set_time_base(ist.time_base());
            ost.set_metadata(ist.metadata().to_owned());
            // SAFETY: live stream; codec_tag 0 lets the muxer pick its own tag for the codec.
            unsafe {
                (*(*ost.as_mut_ptr()).codecpar).codec_tag = 0;
                (*ost.as_mut_ptr()).disposition = (*ist.as_ptr()).disposition;
            }
            copies.insert(idx, (ost.index(), ist.time_base()));
        }

        // Container metadata: the input's, then ours; chapters.
        let mut md = input.metadata().to_owned();
        for key in ["encoder", "major_brand", "minor_version", "compatible_brands"] {
            if md.get(key).is_some() {
                let mut filtered = ff::Dictionary::new();
                for (k, v) in md.iter() {
                    if !["encoder", "major_brand", "minor_version", "compatible_brands"].contains(&k) {
                        filtered.set(k, v);
                    }
                }
                md = filtered;
                break;
            }
        }
        for (k, v) in metadata {
            md.set(k, v);
        }
        octx.set_metadata(md);
        for ch in input.chapters() {
            let title = ch.metadata().get("title").unwrap_or("").to_string();
            if let Err(e) = octx.add_chapter(ch.id(), ch.time_base(), ch.start(), ch.end(), &title) {
                warnings.push(format!("chapter {}: not copied ({e})", ch.id()));
            }
        }
        let mut hopts = ff::Dictionary::new();
        // Same input + same engine = same bytes: no random segment UIDs (Matroska) or writing-app strings that
        // carry a library build.
        hopts.set("fflags", "+bitexact");
        if format == "mp4" || format == "mov" {
            // Keep arbitrary metadata keys (the fingerprint) and write the index at the front.
            hopts.set("movflags", "+use_metadata_tags+faststart");
        }
        let rest = octx.write_header_with(hopts).map_err(|source| VideoError::Write { what: "header", source })?;
        drop(rest);
        let mut frame = ff::frame::Video::new(pix, out.width, out.height);
        tags.apply_to_frame(&mut frame);
        let enc_tb = tb;
        let encoder = if encode.segments >= 2 {
            // The stream's headers came from the encoder opened above; each segment opens an identical one.
            // SAFETY: reading a field of the opened encoder's context.
            let depth = unsafe { (*encoder.as_ptr()).has_b_frames }.max(0) as u64;
            drop(encoder);
            let length = u64::from(encode.segment_frames.max(1));
            let queue = match encode.segment_queue {
                0 => super::segments::FRAMES_PER_WORKER,
                n => n as usize,
            };
            VideoEncoder::Segments(Segments::start(Arc::new(recipe), encode.segments as usize, length, depth, queue)?)
        } else {
            VideoEncoder::One(encoder)
        };
        Ok((
            Sink {
                octx,
                encoder,
                frame: std::mem::replace(&mut frame, ff::frame::Video::empty()),
                video_out,
                enc_tb,
                copies,
                // Sized for every frame the encoders can hold (lookahead, frame threads, segments in flight): it
                // never grows mid-run.
                durations: HashMap::with_capacity(
                    512 + 2 * (encode.segments as usize) * encode.segment_frames as usize,
                ),
                color,
                tags,
                out,
                frames_in: 0,
                muxed: Muxed::default(),
                digest: None,
            },
            warnings,
        ))
    }

    /// Encode one upscaled RGB frame (src_width × src_height planar f32) with the input frame's timestamp.
    pub fn write_frame(&mut self, rgb: &[f32], pts: Option<i64>, duration: i64) -> Result<(), VideoError> {
        self.writable_frame()?;
        convert::rgb_to_frame(
            rgb,
            self.out.src_width as usize,
            self.out.src_height as usize,
            self.color.matrix,
            self.color.range,
            &mut self.frame,
        )?;
        self.send(pts, duration)
    }

    /// Encode one upscaled frame produced on the GPU (already in the encoder's format and colour).
    pub fn write_yuv(&mut self, yuv: &super::yuv::YuvFrame, pts: Option<i64>, duration: i64) -> Result<(), VideoError> {
        self.writable_frame()?;
        yuv.write_into(&mut self.frame)?;
        self.send(pts, duration)
    }

    /// Makes `self.frame` a frame the next picture can be written into: with segments, one of the frames of the
    /// encoder that will take it (finished segments are written meanwhile).
    fn writable_frame(&mut self) -> Result<(), VideoError> {
        if let VideoEncoder::Segments(seg) = &mut self.encoder {
            let (octx, video_out, enc_tb) = (&mut self.octx, self.video_out, self.enc_tb);
            let (durations, muxed) = (&mut self.durations, &mut self.muxed);
            self.frame = seg.frame(&mut |p| mux_video(octx, video_out, enc_tb, durations, muxed, p))?;
        }
        // SAFETY: a live frame; if an encoder still references its buffer, FFmpeg gives it a fresh one.
        if unsafe { ff::ffi::av_frame_make_writable(self.frame.as_mut_ptr()) } < 0 {
            self.frame = ff::frame::Video::new(self.frame.format(), self.out.width, self.out.height);
        }
        Ok(())
    }

    /// Hash every frame the encoder receives from now on (its visible samples, plane by plane).
    pub fn digest_frames(&mut self) {
        self.digest = Some(Sha256::new());
    }

    fn hash_frame(&mut self) {
        let Some(d) = self.digest.as_mut() else { return };
        let f = &self.frame;
        let bytes = if self.out.bit_depth > 8 { 2 } else { 1 };
        let (w, h) = (f.width() as usize, f.height() as usize);
        let (cw, ch) = Subsampling::from(self.out.chroma).chroma_size(w, h);
        for (i, (pw, ph)) in [(w, h), (cw, ch), (cw, ch)].into_iter().enumerate() {
            let (stride, data) = (f.stride(i), f.data(i));
            for row in 0..ph {
                d.update(&data[row * stride..row * stride + pw * bytes]);
            }
        }
    }

    fn send(&mut self, pts: Option<i64>, duration: i64) -> Result<(), VideoError> {
        self.hash_frame();
        self.frame.set_pts(pts);
        self.tags.apply_to_frame(&mut self.frame);
        if let Some(p) = pts {
            if duration > 0 {
                self.durations.insert(p, duration);
            }
        }
        self.frames_in += 1;
        match &mut self.encoder {
            VideoEncoder::One(enc) => {
                enc.send_frame(&self.frame).map_err(|e| VideoError::encoder("encode", e))?;
                self.drain()
            }
            VideoEncoder::Segments(seg) => {
                if pts.is_none() {
                    return Err(VideoError::Stream(
                        "segment-parallel encoding needs frame timestamps and this stream has none: set \
                         encode.segments = 1"
                            .into(),
                    ));
                }
                seg.send(std::mem::replace(&mut self.frame, ff::frame::Video::empty()))
            }
        }
    }

    /// Video packets (one per frame) and bytes of all packets (video and copied streams) handed to the muxer so
    /// far, whether or not they reached the file yet (a muxer buffers some, an encoder holds frames back): what
    /// the output is made of, for an estimate of its final size.
    pub fn muxed(&self) -> (u64, u64) {
        (self.muxed.video_packets, self.muxed.bytes)
    }

    /// The colour the output is encoded in (the input's).
    pub fn color(&self) -> &ColorInfo {
        &self.color
    }

    fn drain(&mut self) -> Result<(), VideoError> {
        let VideoEncoder::One(enc) = &mut self.encoder else { return Ok(()) };
        let mut packet = ff::Packet::empty();
        loop {
            match enc.receive_packet(&mut packet) {
                Ok(()) => {
                    let p = std::mem::replace(&mut packet, ff::Packet::empty());
                    mux_video(&mut self.octx, self.video_out, self.enc_tb, &mut self.durations, &mut self.muxed, p)?;
                }
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => return Ok(()),
                Err(ff::Error::Eof) => return Ok(()),
                Err(e) => return Err(VideoError::encoder("encode", e)),
            }
        }
    }

    /// Write a packet of a copied stream (by its input stream index); packets of streams not copied are dropped.
    pub fn write_packet(&mut self, mut packet: ff::Packet) -> Result<(), VideoError> {
        let Some(&(out, itb)) = self.copies.get(&packet.stream()) else { return Ok(()) };
        let otb = self.octx.stream(out).map(|s| s.time_base()).unwrap_or(itb);
        packet.rescale_ts(itb, otb);
        packet.set_position(-1);
        packet.set_stream(out);
        self.muxed.bytes += packet.size() as u64;
        packet.write_interleaved(&mut self.octx).map_err(|source| VideoError::Write { what: "packet", source })
    }

    /// Flushes the encoder, writes the trailer and closes the file (its last buffered bytes reach the OS here, so
    /// a full disk shows up as an error, not later). The sink is spent afterwards.
    pub fn finish(&mut self) -> Result<Finished, VideoError> {
        match &mut self.encoder {
            VideoEncoder::One(enc) => {
                enc.send_eof().map_err(|e| VideoError::encoder("flush the encoder", e))?;
                self.drain()?;
            }
            VideoEncoder::Segments(seg) => {
                let (octx, video_out, enc_tb) = (&mut self.octx, self.video_out, self.enc_tb);
                let (durations, muxed) = (&mut self.durations, &mut self.muxed);
                seg.finish(&mut |p| mux_video(octx, video_out, enc_tb, durations, muxed, p))?;
            }
        }
        self.octx.write_trailer().map_err(|source| VideoError::Write { what: "trailer", source })?;
        self.octx.close().map_err(|source| VideoError::Write { what: "close", source })?;
        let frames_sha256 = self.digest.take().map(|d| format!("{:x}", d.finalize()));
        Ok(Finished { frames: self.frames_in, packets: self.muxed.video_packets, frames_sha256 })
    }
}

/// The output context. Closed explicitly after the trailer ([`Muxer::close`], fallible); dropped otherwise, which
/// only releases it: ffmpeg-next's own destructor would `avio_close` the I/O context, and that flushes the buffered
/// bytes first — one more write into an output that already failed and is about to be removed.
struct Muxer(ff::format::context::Output);

impl Muxer {
    /// Closes the file (after the trailer): its last buffered bytes reach the OS here, so a full disk or a failing
    /// device shows up as this error.
    fn close(&mut self) -> Result<(), ff::Error> {
        // SAFETY: closes the live I/O context and nulls the pointer, so neither `Drop` below nor the context's own
        // destructor (which closes whatever `pb` is left) touches it again.
        let closed = unsafe { ff::ffi::avio_closep(&mut (*self.0.as_mut_ptr()).pb) };
        if closed < 0 {
            return Err(ff::Error::from(closed));
        }
        Ok(())
    }
}

impl Drop for Muxer {
    fn drop(&mut self) {
        // SAFETY: `pb` is null (closed by `close`, or never opened) or the live I/O context this muxer opened. Marking
        // it failed makes `avio_closep` skip its flush (libavformat writes nothing out of an I/O context in error),
        // then it closes the file descriptor and nulls the pointer. No trailer is written and the muxer is not
        // flushed; ffmpeg-next's destructor then only frees the context (`avio_close(NULL)` does nothing).
        unsafe {
            let pb = &mut (*self.0.as_mut_ptr()).pb;
            if !pb.is_null() {
                if (**pb).error == 0 {
                    (**pb).error = ff::ffi::AVERROR_EXIT;
                }
                ff::ffi::avio_closep(pb);
            }
        }
    }
}

impl std::ops::Deref for Muxer {
    type Target = ff::format::context::Output;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Muxer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Writes one packet of the encoded video: its duration from the frame it came from, the stream's time base.
fn mux_video(
    octx: &mut ff::format::context::Output,
    video_out: usize,
    enc_tb: ff::Rational,
    durations: &mut HashMap<i64, i64>,
    muxed: &mut Muxed,
    mut packet: ff::Packet,
) -> Result<(), VideoError> {
    if let Some(d) = packet.pts().and_then(|p| durations.remove(&p)) {
        packet.set_duration(d);
    }
    packet.set_stream(video_out);
    let otb = octx.stream(video_out).map(|s| s.time_base()).unwrap_or(enc_tb);
    packet.rescale_ts(enc_tb, otb);
    muxed.bytes += packet.size() as u64;
    packet.write_interleaved(octx).map_err(|source| VideoError::Write { what: "video packet", source })?;
    muxed.video_packets += 1;
    Ok(())
}

/// Whether a data stream is a QuickTime timecode track (`tmcd`).
fn is_timecode_track(st: &ff::format::stream::Stream<'_>) -> bool {
    // SAFETY: reading a plain field of the stream's codec parameters.
    let tag = unsafe { (*st.parameters().as_ptr()).codec_tag };
    tag == u32::from_le_bytes(*b"tmcd")
}

fn video_metadata(ist: &ff::format::stream::Stream<'_>) -> ff::Dictionary<'static> {
    let mut md = ff::Dictionary::new();
    for (k, v) in ist.metadata().iter() {
        let upper = k.to_ascii_uppercase();
        // Statistics and encoder tags describe the old stream, not ours.
        if upper.starts_with("_STATISTICS")
            || upper.starts_with("BPS")
            || upper.starts_with("DURATION")
            || upper.starts_with("NUMBER_OF_")
            || upper == "ENCODER"
            || upper == "HANDLER_NAME"
            || upper == "VENDOR_ID"
        {
            continue;
        }
        md.set(k, v);
    }
    md
}
