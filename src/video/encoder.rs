//! The planned video encoder, resolved once into an [`EncoderRecipe`] that opens identical encoder instances: the
//! sink opens one, segment-parallel encoding opens one per segment (same parameters, so the same stream headers).

use super::error::VideoError;
use super::source::VideoInfo;
use super::tags::{ColorInfo, ColorTags};
use crate::codec::{Chroma, Codec};
use crate::plan::EncodePlan;
use ffmpeg_next as ff;

/// What the sink writes the video as (from the file plan).
#[derive(Debug, Clone)]
pub struct VideoOut {
    /// Encoded width (input × scale, cropped to even where chroma is subsampled).
    pub width: u32,
    /// Encoded height.
    pub height: u32,
    /// Width of the RGB frames handed to the sink (input × scale).
    pub src_width: u32,
    /// Height of the RGB frames handed to the sink.
    pub src_height: u32,
    /// 8, 10 or 12.
    pub bit_depth: u8,
    /// Chroma subsampling.
    pub chroma: Chroma,
    /// The encoder's pixel format (`yuv422p10le`).
    pub pixel_format: String,
    /// Time base of the frames handed to the sink (the input's, or the filter's).
    pub time_base: (i32, i32),
    /// Frame rate of the frames handed to the sink, if known.
    pub frame_rate: Option<(i32, i32)>,
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
    pub(crate) time_base: ff::Rational,
    frame_rate: Option<ff::Rational>,
    pub(crate) sar: ff::Rational,
    tags: ColorTags,
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
    ) -> Result<EncoderRecipe, VideoError> {
        let codec = ff::encoder::find_by_name(&encode.encoder).ok_or_else(|| {
            VideoError::Unsupported(format!("encoder {} is not available in this FFmpeg", encode.encoder))
        })?;
        let mut opts = ff::Dictionary::new();
        let profile = encode.profile.as_deref();
        match encode.codec {
            Codec::H264 | Codec::Hevc => {
                if let Some(crf) = encode.crf {
                    opts.set("crf", &crf.to_string());
                }
                if let Some(p) = &encode.preset {
                    opts.set("preset", p);
                }
                let fallback = encode.codec.default_profile(out.chroma, out.bit_depth);
                if let Some(p) = profile.or(fallback) {
                    opts.set("profile", p);
                }
                if encode.codec == Codec::Hevc {
                    opts.set("x265-params", &x265_params(&info.color));
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
            Codec::Prores => {
                opts.set("profile", profile.unwrap_or("hq"));
            }
            Codec::Dnxhr => {
                opts.set("profile", &format!("dnxhr_{}", profile.unwrap_or("hq")));
                if out.width < 256 || out.height < 120 {
                    return Err(VideoError::Unsupported(format!(
                        "dnxhr needs a picture of at least 256x120; this output is {}x{}",
                        out.width, out.height
                    )));
                }
            }
        }
        let pix: ff::format::Pixel = out
            .pixel_format
            .parse()
            .map_err(|_| VideoError::Unsupported(format!("pixel format {} unknown to FFmpeg", out.pixel_format)))?;
        Ok(EncoderRecipe {
            codec,
            name: encode.encoder.clone(),
            threads: encode.threads,
            width: out.width,
            height: out.height,
            pix,
            time_base: ff::Rational::new(out.time_base.0, out.time_base.1),
            frame_rate: out.frame_rate.map(|(n, d)| ff::Rational::new(n, d)),
            sar: ff::Rational::new(info.sample_aspect_ratio.0, info.sample_aspect_ratio.1),
            tags: info.color.output_tags(),
            global_header,
            options: opts,
        })
    }

    /// Opens a new encoder.
    pub(crate) fn open(&self) -> Result<ff::encoder::Video, VideoError> {
        let mut ctx = ff::codec::context::Context::new_with_codec(self.codec);
        if self.threads > 0 {
            ctx.set_threading(ff::codec::threading::Config {
                kind: ff::codec::threading::Type::Frame,
                count: self.threads as usize,
                ..Default::default()
            });
        }
        let mut enc = ctx.encoder().video().map_err(|e| VideoError::encoder(format!("encoder {}", self.name), e))?;
        enc.set_width(self.width);
        enc.set_height(self.height);
        enc.set_format(self.pix);
        enc.set_time_base(self.time_base);
        enc.set_frame_rate(self.frame_rate);
        if self.sar.numerator() > 0 {
            enc.set_aspect_ratio(self.sar);
        }
        self.tags.apply_to_encoder(&mut enc);
        if self.global_header {
            enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
        }
        enc.open_with(self.options.clone())
            .map_err(|e| VideoError::encoder(format!("cannot open encoder {}", self.name), e))
    }
}

/// x265's parameters: quiet, and the input's HDR mastering display and content light level as SEI messages (the
/// wrapper in FFmpeg 5.1 does not write them from side data).
fn x265_params(c: &ColorInfo) -> String {
    let mut p = String::from("log-level=error");
    if let Some(m) = c.mastering_display.and_then(|m| m.x265_param()) {
        p.push_str(&format!(":master-display={m}"));
    }
    if let Some(l) = c.content_light {
        p.push_str(&format!(":max-cll={},{}", l.max_cll, l.max_fall));
    }
    p
}
