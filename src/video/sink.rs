//! Encode and mux: opens the output container, lays out its streams in the input's order (the upscaled video
//! stream plus stream copies of audio, subtitles and attachments), carries over container/stream metadata,
//! chapters, the sample aspect ratio, the display matrix (rotation) and the colour tags, encodes frames with the
//! planned encoder keeping every input timestamp, and writes the trailer.

use super::color::{ColorInfo, Matrix, Range};
use super::convert;
use super::segments::Segments;
use super::source::VideoInfo;
use crate::plan::{Codec, Container, EncodePlan};
use ffmpeg_next as ff;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Output format name for libavformat. `Same` follows the input's container.
pub fn format_name(container: Container, input_format: &str, input_path: &Path) -> &'static str {
    match container {
        Container::Mp4 => "mp4",
        Container::Mkv => "matroska",
        Container::Mov => "mov",
        Container::Same => {
            if input_format.contains("matroska") {
                "matroska"
            } else if input_format.contains("mov") {
                let ext = input_path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
                if ext == "mov" {
                    "mov"
                } else {
                    "mp4"
                }
            } else {
                // Other containers (avi, ts, ...): Matroska takes every codec we write and copy.
                "matroska"
            }
        }
    }
}

/// What the sink writes the video as.
#[derive(Debug, Clone)]
pub struct VideoOut {
    /// Encoded width (input × scale, cropped to even for 4:2:0).
    pub width: u32,
    /// Encoded height.
    pub height: u32,
    /// Width of the RGB frames handed to the sink (input × scale).
    pub src_width: u32,
    /// Height of the RGB frames handed to the sink.
    pub src_height: u32,
    /// 8 or 10.
    pub bit_depth: u8,
}

/// An open output: muxer, video encoder, and the map from input streams to output streams.
pub struct Sink {
    octx: ff::format::context::Output,
    encoder: VideoEncoder,
    frame: ff::frame::Video,
    video_out: usize,
    enc_tb: ff::Rational,
    /// input stream index → (output stream index, input time base)
    copies: HashMap<usize, (usize, ff::Rational)>,
    durations: HashMap<i64, i64>,
    color: ColorInfo,
    out: VideoOut,
    frames_in: u64,
    packets_out: u64,
    trailer_written: bool,
    /// SHA-256 over the visible samples of every frame sent to the encoder (audits only): tells an engine that
    /// is not deterministic from an encoder that is not.
    digest: Option<Sha256>,
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

fn space_of(m: Matrix) -> ff::color::Space {
    match m {
        Matrix::Bt601 => ff::color::Space::SMPTE170M,
        Matrix::Bt709 => ff::color::Space::BT709,
        Matrix::Bt2020Ncl => ff::color::Space::BT2020NCL,
    }
}

fn codec_name(id: ff::codec::Id) -> String {
    // SAFETY: avcodec_get_name returns a static string for any id.
    unsafe { std::ffi::CStr::from_ptr(ff::ffi::avcodec_get_name(id.into())) }.to_string_lossy().into_owned()
}

/// Everything needed to open the planned video encoder, resolved once: [`EncoderRecipe::open`] then gives a fresh,
/// identical encoder (same parameters, so the same stream headers) without allocating on the Rust heap, as
/// segment-parallel encoding does at every segment.
pub(crate) struct EncoderRecipe {
    codec: ff::Codec,
    name: String,
    threads: u32,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) pix: ff::format::Pixel,
    time_base: ff::Rational,
    frame_rate: Option<ff::Rational>,
    sar: ff::Rational,
    color: ColorInfo,
    global_header: bool,
    options: ff::Dictionary<'static>,
}

// SAFETY: after `new`, the options dictionary is only read (copied by `open`, from any thread) and the codec is a
// static description; nothing in a recipe is mutated once it is shared.
unsafe impl Send for EncoderRecipe {}
// SAFETY: as above.
unsafe impl Sync for EncoderRecipe {}

impl EncoderRecipe {
    /// Resolves the encoder and its options for `out` from the plan and the input's description.
    pub(crate) fn new(
        encode: &EncodePlan,
        out: &VideoOut,
        info: &VideoInfo,
        global_header: bool,
    ) -> Result<EncoderRecipe, String> {
        let codec = ff::encoder::find_by_name(&encode.encoder)
            .ok_or_else(|| format!("encoder {} is not available in this FFmpeg", encode.encoder))?;
        let mut opts = ff::Dictionary::new();
        let ten = out.bit_depth > 8;
        match encode.codec {
            Codec::H264 | Codec::Hevc => {
                if let Some(crf) = encode.crf {
                    opts.set("crf", &crf.to_string());
                }
                if let Some(p) = &encode.preset {
                    opts.set("preset", p);
                }
                let default_profile = match (encode.codec, ten) {
                    (Codec::H264, false) => "high",
                    (Codec::H264, true) => "high10",
                    (_, false) => "main",
                    (_, true) => "main10",
                };
                opts.set("profile", encode.profile.as_deref().unwrap_or(default_profile));
                if encode.codec == Codec::Hevc {
                    opts.set("x265-params", "log-level=error");
                }
            }
            Codec::Av1 => {
                if let Some(crf) = encode.crf {
                    opts.set("crf", &crf.to_string());
                }
                if let Some(p) = &encode.preset {
                    opts.set(if encode.encoder == "libaom-av1" { "cpu-used" } else { "preset" }, p);
                }
                if encode.encoder == "libaom-av1" {
                    opts.set("b", "0");
                }
            }
            Codec::Ffv1 => {
                opts.set("level", "3");
                opts.set("slicecrc", "1");
            }
        }
        Ok(EncoderRecipe {
            codec,
            name: encode.encoder.clone(),
            threads: encode.threads,
            width: out.width,
            height: out.height,
            pix: if ten { ff::format::Pixel::YUV420P10LE } else { ff::format::Pixel::YUV420P },
            time_base: ff::Rational::new(info.time_base.0, info.time_base.1),
            frame_rate: info.frame_rate.map(|(n, d)| ff::Rational::new(n, d)),
            sar: ff::Rational::new(info.sample_aspect_ratio.0, info.sample_aspect_ratio.1),
            color: info.color.clone(),
            global_header,
            options: opts,
        })
    }

    /// Opens a new encoder.
    pub(crate) fn open(&self) -> Result<ff::encoder::Video, String> {
        let mut ctx = ff::codec::context::Context::new_with_codec(self.codec);
        if self.threads > 0 {
            ctx.set_threading(ff::codec::threading::Config {
                kind: ff::codec::threading::Type::Frame,
                count: self.threads as usize,
                ..Default::default()
            });
        }
        let mut enc = ctx.encoder().video().map_err(|e| format!("encoder {}: {e}", self.name))?;
        enc.set_width(self.width);
        enc.set_height(self.height);
        enc.set_format(self.pix);
        enc.set_time_base(self.time_base);
        enc.set_frame_rate(self.frame_rate);
        if self.sar.numerator() > 0 {
            enc.set_aspect_ratio(self.sar);
        }
        enc.set_colorspace(space_of(self.color.matrix));
        enc.set_color_range(match self.color.range {
            Range::Limited => ff::color::Range::MPEG,
            Range::Full => ff::color::Range::JPEG,
        });
        // SAFETY: setting the primaries/transfer tags on the unopened encoder context.
        unsafe {
            let c = enc.as_mut_ptr();
            (*c).color_primaries = primaries_of(&self.color.primaries);
            (*c).color_trc = transfer_of(&self.color.transfer);
        }
        if self.global_header {
            enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
        }
        enc.open_with(self.options.clone()).map_err(|e| format!("cannot open encoder {}: {e}", self.name))
    }
}

impl Sink {
    /// Create the output at `path` (the caller's temporary name) as `format`, with streams laid out like
    /// `input`, and write the header. Returns the sink and warnings (skipped streams, ignored options).
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        path: &Path,
        format: &str,
        input: &ff::format::context::Input,
        info: &VideoInfo,
        out: VideoOut,
        encode: &EncodePlan,
        metadata: &[(String, String)],
    ) -> Result<(Sink, Vec<String>), String> {
        let mut warnings = Vec::new();
        let mut octx = ff::format::output_as(&path, format).map_err(|e| format!("cannot create output: {e}"))?;
        let global_header = octx.format().flags().contains(ff::format::Flags::GLOBAL_HEADER);

        // The encoder first: its parameters (extradata) are needed for the stream.
        let recipe = EncoderRecipe::new(encode, &out, info, global_header)?;
        let encoder = recipe.open()?;
        let (tb, sar) = (recipe.time_base, recipe.sar);
        let color = info.color.clone();
        let pix = recipe.pix;

        // Streams in input order: the upscaled video where the input's was, copies of the others.
        let mut copies = HashMap::new();
        let mut video_out = 0;
        // SAFETY: reading the output format pointer of a live output context.
        let oformat = unsafe { (*octx.as_ptr()).oformat };
        for ist in input.streams() {
            let medium = ist.parameters().medium();
            let idx = ist.index();
            if idx == info.stream_index {
                let mut ost = octx.add_stream_with(&encoder).map_err(|e| format!("add video stream: {e}"))?;
                ost.set_time_base(tb);
                if let Some((n, d)) = info.frame_rate {
                    ost.set_avg_frame_rate(ff::Rational::new(n, d));
                }
                let md = video_metadata(&ist);
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
                .map_err(|e| format!("add stream {idx}: {e}"))?;
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
        let rest = octx.write_header_with(hopts).map_err(|e| format!("cannot write the header: {e}"))?;
        drop(rest);
        let mut frame = ff::frame::Video::new(pix, out.width, out.height);
        frame.set_color_space(space_of(color.matrix));
        let enc_tb = tb;
        let encoder = if encode.segments >= 2 {
            // The stream's headers came from the encoder opened above; each segment opens an identical one.
            // SAFETY: reading a field of the opened encoder's context.
            let depth = unsafe { (*encoder.as_ptr()).has_b_frames }.max(0) as u64;
            drop(encoder);
            let length = u64::from(encode.segment_frames.max(1));
            VideoEncoder::Segments(Segments::start(Arc::new(recipe), encode.segments as usize, length, depth)?)
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
                out,
                frames_in: 0,
                packets_out: 0,
                trailer_written: false,
                digest: None,
            },
            warnings,
        ))
    }

    /// Encode one upscaled RGB frame (src_width × src_height planar f32) with the input frame's timestamp.
    pub fn write_frame(&mut self, rgb: &[f32], pts: Option<i64>, duration: i64) -> Result<(), String> {
        self.writable_frame()?;
        convert::rgb_to_frame(
            rgb,
            self.out.src_width as usize,
            self.out.src_height as usize,
            self.color.matrix,
            self.color.range,
            &mut self.frame,
        );
        self.send(pts, duration)
    }

    /// Encode one upscaled 4:2:0 frame produced on the GPU (already in the encoder's format and colour).
    pub fn write_yuv(&mut self, yuv: &super::YuvFrame, pts: Option<i64>, duration: i64) -> Result<(), String> {
        self.writable_frame()?;
        yuv.write_into(&mut self.frame)?;
        self.send(pts, duration)
    }

    /// Makes `self.frame` a frame the next picture can be written into: with segments, one of the frames of the
    /// encoder that will take it (finished segments are written meanwhile).
    fn writable_frame(&mut self) -> Result<(), String> {
        if let VideoEncoder::Segments(seg) = &mut self.encoder {
            let (octx, video_out, enc_tb) = (&mut self.octx, self.video_out, self.enc_tb);
            let (durations, packets_out) = (&mut self.durations, &mut self.packets_out);
            self.frame = seg.frame(&mut |p| mux_video(octx, video_out, enc_tb, durations, packets_out, p))?;
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
        for (i, (pw, ph)) in
            [(w, h), (w.div_ceil(2), h.div_ceil(2)), (w.div_ceil(2), h.div_ceil(2))].into_iter().enumerate()
        {
            let (stride, data) = (f.stride(i), f.data(i));
            for row in 0..ph {
                d.update(&data[row * stride..row * stride + pw * bytes]);
            }
        }
    }

    fn send(&mut self, pts: Option<i64>, duration: i64) -> Result<(), String> {
        self.hash_frame();
        self.frame.set_pts(pts);
        self.frame.set_color_space(space_of(self.color.matrix));
        self.frame.set_color_range(match self.color.range {
            Range::Limited => ff::color::Range::MPEG,
            Range::Full => ff::color::Range::JPEG,
        });
        if let Some(p) = pts {
            if duration > 0 {
                self.durations.insert(p, duration);
            }
        }
        self.frames_in += 1;
        match &mut self.encoder {
            VideoEncoder::One(enc) => {
                enc.send_frame(&self.frame).map_err(|e| format!("encode: {e}"))?;
                self.drain()
            }
            VideoEncoder::Segments(seg) => {
                if pts.is_none() {
                    return Err("segment-parallel encoding needs frame timestamps and this stream has none: set \
                                encode.segments = 1"
                        .into());
                }
                seg.send(std::mem::replace(&mut self.frame, ff::frame::Video::empty()))
            }
        }
    }

    /// The colour the output is encoded in (the input's).
    pub fn color(&self) -> &ColorInfo {
        &self.color
    }

    fn drain(&mut self) -> Result<(), String> {
        let VideoEncoder::One(enc) = &mut self.encoder else { return Ok(()) };
        let mut packet = ff::Packet::empty();
        loop {
            match enc.receive_packet(&mut packet) {
                Ok(()) => {
                    let p = std::mem::replace(&mut packet, ff::Packet::empty());
                    mux_video(
                        &mut self.octx,
                        self.video_out,
                        self.enc_tb,
                        &mut self.durations,
                        &mut self.packets_out,
                        p,
                    )?;
                }
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => return Ok(()),
                Err(ff::Error::Eof) => return Ok(()),
                Err(e) => return Err(format!("encode: {e}")),
            }
        }
    }

    /// Write a packet of a copied stream (by its input stream index); packets of streams not copied are dropped.
    pub fn write_packet(&mut self, mut packet: ff::Packet) -> Result<(), String> {
        let Some(&(out, itb)) = self.copies.get(&packet.stream()) else { return Ok(()) };
        let otb = self.octx.stream(out).map(|s| s.time_base()).unwrap_or(itb);
        packet.rescale_ts(itb, otb);
        packet.set_position(-1);
        packet.set_stream(out);
        packet.write_interleaved(&mut self.octx).map_err(|e| format!("mux stream {out}: {e}"))
    }

    /// Flush the encoder and write the trailer.
    pub fn finish(&mut self) -> Result<Finished, String> {
        match &mut self.encoder {
            VideoEncoder::One(enc) => {
                enc.send_eof().map_err(|e| format!("flush encoder: {e}"))?;
                self.drain()?;
            }
            VideoEncoder::Segments(seg) => {
                let (octx, video_out, enc_tb) = (&mut self.octx, self.video_out, self.enc_tb);
                let (durations, packets_out) = (&mut self.durations, &mut self.packets_out);
                seg.finish(&mut |p| mux_video(octx, video_out, enc_tb, durations, packets_out, p))?;
            }
        }
        self.octx.write_trailer().map_err(|e| format!("write trailer: {e}"))?;
        self.trailer_written = true;
        let frames_sha256 = self.digest.take().map(|d| format!("{:x}", d.finalize()));
        Ok(Finished { frames: self.frames_in, packets: self.packets_out, frames_sha256 })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if !self.trailer_written {
            // Close the file cleanly (the caller deletes it); errors do not matter here.
            let _ = self.octx.write_trailer();
        }
    }
}

/// Writes one packet of the encoded video: its duration from the frame it came from, the stream's time base.
fn mux_video(
    octx: &mut ff::format::context::Output,
    video_out: usize,
    enc_tb: ff::Rational,
    durations: &mut HashMap<i64, i64>,
    packets_out: &mut u64,
    mut packet: ff::Packet,
) -> Result<(), String> {
    if let Some(d) = packet.pts().and_then(|p| durations.remove(&p)) {
        packet.set_duration(d);
    }
    packet.set_stream(video_out);
    let otb = octx.stream(video_out).map(|s| s.time_base()).unwrap_or(enc_tb);
    packet.rescale_ts(enc_tb, otb);
    packet.write_interleaved(octx).map_err(|e| format!("mux video: {e}"))?;
    *packets_out += 1;
    Ok(())
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

fn primaries_of(name: &str) -> ff::ffi::AVColorPrimaries {
    use ff::ffi::AVColorPrimaries::*;
    match name {
        "bt709" => AVCOL_PRI_BT709,
        "bt470m" => AVCOL_PRI_BT470M,
        "bt470bg" => AVCOL_PRI_BT470BG,
        "smpte170m" => AVCOL_PRI_SMPTE170M,
        "smpte240m" => AVCOL_PRI_SMPTE240M,
        "film" => AVCOL_PRI_FILM,
        "bt2020" => AVCOL_PRI_BT2020,
        "smpte428" => AVCOL_PRI_SMPTE428,
        "smpte431" => AVCOL_PRI_SMPTE431,
        "smpte432" => AVCOL_PRI_SMPTE432,
        _ => AVCOL_PRI_UNSPECIFIED,
    }
}

fn transfer_of(name: &str) -> ff::ffi::AVColorTransferCharacteristic {
    use ff::ffi::AVColorTransferCharacteristic::*;
    match name {
        "bt709" => AVCOL_TRC_BT709,
        "gamma22" => AVCOL_TRC_GAMMA22,
        "gamma28" => AVCOL_TRC_GAMMA28,
        "smpte170m" => AVCOL_TRC_SMPTE170M,
        "smpte240m" => AVCOL_TRC_SMPTE240M,
        "linear" => AVCOL_TRC_LINEAR,
        "iec61966_2_1" => AVCOL_TRC_IEC61966_2_1,
        "bt2020_10" => AVCOL_TRC_BT2020_10,
        "bt2020_12" => AVCOL_TRC_BT2020_12,
        "smpte2084" => AVCOL_TRC_SMPTE2084,
        "arib_std_b67" => AVCOL_TRC_ARIB_STD_B67,
        _ => AVCOL_TRC_UNSPECIFIED,
    }
}
