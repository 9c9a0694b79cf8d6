//! The planned video encoder, resolved once into an [`EncoderRecipe`] that opens identical encoder instances: the
//! sink opens one, segment-parallel encoding opens one per segment (same parameters, so the same stream headers).

use super::color::{ColorInfo, Matrix, Range};
use super::error::VideoError;
use super::source::VideoInfo;
use crate::codec::Codec;
use crate::plan::EncodePlan;
use ffmpeg_next as ff;

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
    ) -> Result<EncoderRecipe, VideoError> {
        let codec = ff::encoder::find_by_name(&encode.encoder).ok_or_else(|| {
            VideoError::Unsupported(format!("encoder {} is not available in this FFmpeg", encode.encoder))
        })?;
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
        enc.open_with(self.options.clone())
            .map_err(|e| VideoError::encoder(format!("cannot open encoder {}", self.name), e))
    }
}

/// The `AVColorSpace` tag of a matrix.
pub(crate) fn space_of(m: Matrix) -> ff::color::Space {
    match m {
        Matrix::Bt601 => ff::color::Space::SMPTE170M,
        Matrix::Bt709 => ff::color::Space::BT709,
        Matrix::Bt2020Ncl => ff::color::Space::BT2020NCL,
    }
}

pub(crate) fn primaries_of(name: &str) -> ff::ffi::AVColorPrimaries {
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

pub(crate) fn transfer_of(name: &str) -> ff::ffi::AVColorTransferCharacteristic {
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
