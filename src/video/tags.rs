//! A stream's colour description as it is tagged — matrix, primaries, transfer, range and chroma location as
//! FFmpeg's numbers, and the HDR mastering display and content light level — read once and written back
//! unchanged: the output carries the input's own tags, never a synonym (bt470bg stays bt470bg). Where the input
//! has no matrix or range tag, the output is tagged with what was assumed (see [`super::color::resolve`]).

use super::color::{Matrix, Range};
use ff::ffi::{AVChromaLocation, AVColorPrimaries, AVColorRange, AVColorSpace, AVColorTransferCharacteristic};
use ffmpeg_next as ff;
use serde::Serialize;

/// The colour tags of a stream, as FFmpeg numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColorTags {
    /// Matrix coefficients (`AVColorSpace`).
    pub matrix: AVColorSpace,
    /// Colour primaries.
    pub primaries: AVColorPrimaries,
    /// Transfer characteristic.
    pub transfer: AVColorTransferCharacteristic,
    /// Quantisation range.
    pub range: AVColorRange,
    /// Chroma sample location.
    pub chroma_location: AVChromaLocation,
}

impl Default for ColorTags {
    fn default() -> Self {
        ColorTags {
            matrix: AVColorSpace::AVCOL_SPC_UNSPECIFIED,
            primaries: AVColorPrimaries::AVCOL_PRI_UNSPECIFIED,
            transfer: AVColorTransferCharacteristic::AVCOL_TRC_UNSPECIFIED,
            range: AVColorRange::AVCOL_RANGE_UNSPECIFIED,
            chroma_location: AVChromaLocation::AVCHROMA_LOC_UNSPECIFIED,
        }
    }
}

fn name(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        return "unknown".into();
    }
    // SAFETY: FFmpeg's name functions return static NUL-terminated strings (or null, handled above).
    unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

impl ColorTags {
    /// The tags of an opened decoder (what the codec parameters and the stream header say).
    pub(crate) fn of_decoder(d: &ff::decoder::Video) -> ColorTags {
        // SAFETY: reading plain fields of a live codec context.
        unsafe {
            let c = d.as_ptr();
            ColorTags {
                matrix: (*c).colorspace,
                primaries: (*c).color_primaries,
                transfer: (*c).color_trc,
                range: (*c).color_range,
                chroma_location: (*c).chroma_sample_location,
            }
        }
    }

    /// FFmpeg's names: matrix, primaries, transfer, range, chroma location.
    pub fn names(&self) -> [String; 5] {
        // SAFETY: FFmpeg's name lookups take any value of their enum.
        unsafe {
            [
                name(ff::ffi::av_color_space_name(self.matrix)),
                name(ff::ffi::av_color_primaries_name(self.primaries)),
                name(ff::ffi::av_color_transfer_name(self.transfer)),
                name(ff::ffi::av_color_range_name(self.range)),
                name(ff::ffi::av_chroma_location_name(self.chroma_location)),
            ]
        }
    }

    /// Sets the tags on an encoder context before it is opened.
    pub(crate) fn apply_to_encoder(&self, enc: &mut ff::encoder::video::Video) {
        // SAFETY: setting plain fields of an unopened encoder context.
        unsafe {
            let c = enc.as_mut_ptr();
            (*c).colorspace = self.matrix;
            (*c).color_primaries = self.primaries;
            (*c).color_trc = self.transfer;
            (*c).color_range = self.range;
            (*c).chroma_sample_location = self.chroma_location;
        }
    }

    /// Sets the tags on a frame (encoders such as prores_ks write the frame's).
    pub(crate) fn apply_to_frame(&self, frame: &mut ff::frame::Video) {
        // SAFETY: setting plain fields of a live frame.
        unsafe {
            let f = frame.as_mut_ptr();
            (*f).colorspace = self.matrix;
            (*f).color_primaries = self.primaries;
            (*f).color_trc = self.transfer;
            (*f).color_range = self.range;
            (*f).chroma_location = self.chroma_location;
        }
    }
}

/// The `AVColorSpace` tag that names a matrix (what an untagged stream's output is tagged with).
pub(crate) fn space_of(m: Matrix) -> AVColorSpace {
    match m {
        Matrix::Bt601 => AVColorSpace::AVCOL_SPC_SMPTE170M,
        Matrix::Bt709 => AVColorSpace::AVCOL_SPC_BT709,
        Matrix::Bt2020Ncl => AVColorSpace::AVCOL_SPC_BT2020_NCL,
    }
}

/// The `AVColorRange` tag of a range.
pub(crate) fn range_of(r: Range) -> AVColorRange {
    match r {
        Range::Limited => AVColorRange::AVCOL_RANGE_MPEG,
        Range::Full => AVColorRange::AVCOL_RANGE_JPEG,
    }
}

/// `AVMasteringDisplayMetadata` (libavutil/mastering_display_metadata.h), which the bindings leave out.
#[repr(C)]
#[derive(Clone, Copy)]
struct AvMastering {
    display_primaries: [[ff::ffi::AVRational; 2]; 3],
    white_point: [ff::ffi::AVRational; 2],
    min_luminance: ff::ffi::AVRational,
    max_luminance: ff::ffi::AVRational,
    has_primaries: std::ffi::c_int,
    has_luminance: std::ffi::c_int,
}

/// `AVContentLightMetadata`.
#[repr(C)]
#[derive(Clone, Copy)]
struct AvLight {
    max_cll: std::ffi::c_uint,
    max_fall: std::ffi::c_uint,
}

/// SMPTE ST 2086 mastering display colour volume: chromaticities (CIE 1931 xy) and luminance (cd/m²) as fractions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MasteringDisplay {
    /// Red, green, blue primaries: `[[x, y]; 3]`, each `(num, den)`.
    pub primaries: [[(i32, i32); 2]; 3],
    /// White point `[x, y]`.
    pub white_point: [(i32, i32); 2],
    /// Minimum luminance.
    pub min_luminance: (i32, i32),
    /// Maximum luminance.
    pub max_luminance: (i32, i32),
    /// Whether the primaries and white point are set.
    pub has_primaries: bool,
    /// Whether the luminances are set.
    pub has_luminance: bool,
}

/// CTA-861.3 content light level: MaxCLL and MaxFALL in cd/m².
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ContentLight {
    /// Maximum content light level.
    pub max_cll: u32,
    /// Maximum frame-average light level.
    pub max_fall: u32,
}

fn q(r: ff::ffi::AVRational) -> (i32, i32) {
    (r.num, r.den)
}

fn r((num, den): (i32, i32)) -> ff::ffi::AVRational {
    ff::ffi::AVRational { num, den }
}

impl MasteringDisplay {
    /// Reads the side data's bytes (stream or frame side data of that type).
    pub(crate) fn from_bytes(b: &[u8]) -> Option<MasteringDisplay> {
        if b.len() < std::mem::size_of::<AvMastering>() {
            return None;
        }
        // SAFETY: the buffer holds an AVMasteringDisplayMetadata (checked size); read unaligned, plain data.
        let m: AvMastering = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
        let p = m.display_primaries;
        Some(MasteringDisplay {
            primaries: [[q(p[0][0]), q(p[0][1])], [q(p[1][0]), q(p[1][1])], [q(p[2][0]), q(p[2][1])]],
            white_point: [q(m.white_point[0]), q(m.white_point[1])],
            min_luminance: q(m.min_luminance),
            max_luminance: q(m.max_luminance),
            has_primaries: m.has_primaries != 0,
            has_luminance: m.has_luminance != 0,
        })
    }

    fn to_av(self) -> AvMastering {
        let p = self.primaries;
        AvMastering {
            display_primaries: [[r(p[0][0]), r(p[0][1])], [r(p[1][0]), r(p[1][1])], [r(p[2][0]), r(p[2][1])]],
            white_point: [r(self.white_point[0]), r(self.white_point[1])],
            min_luminance: r(self.min_luminance),
            max_luminance: r(self.max_luminance),
            has_primaries: self.has_primaries.into(),
            has_luminance: self.has_luminance.into(),
        }
    }

    /// x265's `master-display` value: `G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)` in units of 0.00002 (chromaticity)
    /// and 0.0001 cd/m² (luminance); `None` unless both parts are set.
    pub fn x265_param(&self) -> Option<String> {
        if !(self.has_primaries && self.has_luminance) {
            return None;
        }
        let u = |(n, d): (i32, i32), unit: i64| {
            if d == 0 {
                0
            } else {
                (i64::from(n) * unit + i64::from(d) / 2) / i64::from(d)
            }
        };
        let xy = |v: [(i32, i32); 2]| format!("({},{})", u(v[0], 50_000), u(v[1], 50_000));
        let [red, green, blue] = self.primaries;
        Some(format!(
            "G{}B{}R{}WP{}L({},{})",
            xy(green),
            xy(blue),
            xy(red),
            xy(self.white_point),
            u(self.max_luminance, 10_000),
            u(self.min_luminance, 10_000)
        ))
    }
}

impl ContentLight {
    /// Reads the side data's bytes.
    pub(crate) fn from_bytes(b: &[u8]) -> Option<ContentLight> {
        if b.len() < std::mem::size_of::<AvLight>() {
            return None;
        }
        // SAFETY: the buffer holds an AVContentLightMetadata (checked size).
        let l: AvLight = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
        Some(ContentLight { max_cll: l.max_cll, max_fall: l.max_fall })
    }
}

/// Stream side data of both kinds, read from an input stream.
pub(crate) fn stream_hdr(st: &ff::format::stream::Stream<'_>) -> (Option<MasteringDisplay>, Option<ContentLight>) {
    use ff::codec::packet::side_data::Type;
    let (mut m, mut l) = (None, None);
    for sd in st.side_data() {
        match sd.kind() {
            Type::MasteringDisplayMetadata => m = MasteringDisplay::from_bytes(sd.data()),
            Type::ContentLightLevel => l = ContentLight::from_bytes(sd.data()),
            _ => {}
        }
    }
    (m, l)
}

/// Frame side data of both kinds (HEVC and AV1 carry them in the bitstream).
pub(crate) fn frame_hdr(f: &ff::frame::Video) -> (Option<MasteringDisplay>, Option<ContentLight>) {
    use ff::frame::side_data::Type;
    let m = f.side_data(Type::MasteringDisplayMetadata).and_then(|sd| MasteringDisplay::from_bytes(sd.data()));
    let l = f.side_data(Type::ContentLightLevel).and_then(|sd| ContentLight::from_bytes(sd.data()));
    (m, l)
}

/// Adds the HDR side data to an output stream (muxers write it into the container: Matroska's MasteringMetadata,
/// MP4/MOV `mdcv`/`clli`).
///
/// # Safety
/// `s` must be a live stream of an output context whose header is not written yet.
pub(crate) unsafe fn add_stream_hdr(
    s: *mut ff::ffi::AVStream,
    mastering: Option<MasteringDisplay>,
    light: Option<ContentLight>,
) {
    use ff::ffi::AVPacketSideDataType as T;
    if let Some(m) = mastering {
        let v = m.to_av();
        // SAFETY: the caller's contract; the new buffer holds exactly one AVMasteringDisplayMetadata.
        unsafe {
            let dst = ff::ffi::av_stream_new_side_data(s, T::AV_PKT_DATA_MASTERING_DISPLAY_METADATA, size_of_val(&v));
            if !dst.is_null() {
                std::ptr::write_unaligned(dst.cast(), v);
            }
        }
    }
    if let Some(l) = light {
        let v = AvLight { max_cll: l.max_cll, max_fall: l.max_fall };
        // SAFETY: as above, one AVContentLightMetadata.
        unsafe {
            let dst = ff::ffi::av_stream_new_side_data(s, T::AV_PKT_DATA_CONTENT_LIGHT_LEVEL, size_of_val(&v));
            if !dst.is_null() {
                std::ptr::write_unaligned(dst.cast(), v);
            }
        }
    }
}

/// The colour description of a stream, resolved: what the conversion uses, and the tags the output carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColorInfo {
    /// Matrix the conversion uses (from the stream, or assumed).
    pub matrix: Matrix,
    /// Range the conversion uses (from the stream, or assumed limited).
    pub range: Range,
    /// The stream's matrix tag as FFmpeg names it (`bt470bg`, `unknown`...).
    pub matrix_tag: String,
    /// Primaries as FFmpeg names them, copied unchanged.
    pub primaries: String,
    /// Transfer characteristic as FFmpeg names it, copied unchanged.
    pub transfer: String,
    /// Range tag as FFmpeg names it.
    pub range_tag: String,
    /// Chroma sample location as FFmpeg names it, copied unchanged.
    pub chroma_location: String,
    /// Whether the matrix was assumed because the stream did not say (or said `rgb`).
    pub matrix_assumed: bool,
    /// Whether the range was assumed because the stream did not say.
    pub range_assumed: bool,
    /// HDR mastering display, from the stream's side data or its first frames'.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mastering_display: Option<MasteringDisplay>,
    /// HDR content light level, likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_light: Option<ContentLight>,
    /// The tags as read.
    #[serde(skip)]
    pub tags: ColorTags,
}

impl ColorInfo {
    /// A description from tags as read, and the matrix/range the conversion uses.
    pub fn new(tags: ColorTags, matrix: Matrix, range: Range, matrix_assumed: bool, range_assumed: bool) -> ColorInfo {
        let [matrix_tag, primaries, transfer, range_tag, chroma_location] = tags.names();
        ColorInfo {
            matrix,
            range,
            matrix_tag,
            primaries,
            transfer,
            range_tag,
            chroma_location,
            matrix_assumed,
            range_assumed,
            mastering_display: None,
            content_light: None,
            tags,
        }
    }

    /// An untagged description (synthetic clips, tests).
    pub fn assumed(matrix: Matrix, range: Range) -> ColorInfo {
        ColorInfo::new(ColorTags::default(), matrix, range, true, true)
    }

    /// The tags the output carries: the input's own, unchanged, where it has them (a matrix the conversion does not
    /// know, such as smpte240m, too: both directions use the same stand-in, so the samples stay in the input's
    /// space); what was assumed where it has none (or where it said `rgb`: the output is Y'CbCr).
    pub fn output_tags(&self) -> ColorTags {
        let mut t = self.tags;
        let unspecified = |m: AVColorSpace| {
            matches!(
                m,
                AVColorSpace::AVCOL_SPC_UNSPECIFIED | AVColorSpace::AVCOL_SPC_RESERVED | AVColorSpace::AVCOL_SPC_RGB
            )
        };
        if unspecified(t.matrix) {
            t.matrix = space_of(self.matrix);
        }
        if self.range_assumed || t.range == AVColorRange::AVCOL_RANGE_UNSPECIFIED {
            t.range = range_of(self.range);
        }
        t
    }
}
