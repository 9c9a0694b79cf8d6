//! FFmpeg frames ↔ planar RGB `f32`: picks the plane layout of a decoded frame (planar Y'CbCr 4:2:0, 4:2:2 or 4:4:4
//! at 8 to 12 bits, with or without alpha, or planar GBR), converts formats the reference conversion does not take
//! (NV12, P010, packed RGB, gray, 16-bit...) to a canonical one with swscale first, then calls
//! [`super::color`]'s pure functions.

use super::color::{self, Plane, PlaneMut, Range, Subsampling, YuvFormat};
use super::error::VideoError;
use ff::format::Pixel;
use ffmpeg_next as ff;

/// How a frame's planes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Yuv(Subsampling, u8),
    Gbr(u8),
}

/// The planar layouts read directly (an alpha plane, the fourth, is ignored).
pub(crate) fn yuv_layout(fmt: Pixel) -> Option<(Subsampling, u8)> {
    use Subsampling::*;
    Some(match fmt {
        Pixel::YUV420P | Pixel::YUVJ420P | Pixel::YUVA420P => (S420, 8),
        Pixel::YUV422P | Pixel::YUVJ422P | Pixel::YUVA422P => (S422, 8),
        Pixel::YUV444P | Pixel::YUVJ444P | Pixel::YUVA444P => (S444, 8),
        Pixel::YUV420P10LE | Pixel::YUVA420P10LE => (S420, 10),
        Pixel::YUV422P10LE | Pixel::YUVA422P10LE => (S422, 10),
        Pixel::YUV444P10LE | Pixel::YUVA444P10LE => (S444, 10),
        Pixel::YUV420P12LE => (S420, 12),
        Pixel::YUV422P12LE | Pixel::YUVA422P12LE => (S422, 12),
        Pixel::YUV444P12LE | Pixel::YUVA444P12LE => (S444, 12),
        Pixel::YUV444P16LE => (S444, 16),
        _ => return None,
    })
}

fn layout_of(fmt: Pixel) -> Option<Layout> {
    if let Some((s, d)) = yuv_layout(fmt) {
        return Some(Layout::Yuv(s, d));
    }
    Some(match fmt {
        Pixel::GBRP => Layout::Gbr(8),
        Pixel::GBRP10LE => Layout::Gbr(10),
        Pixel::GBRP12LE => Layout::Gbr(12),
        Pixel::GBRP16LE => Layout::Gbr(16),
        _ => return None,
    })
}

/// The pixel format of a planar Y'CbCr layout.
pub(crate) fn yuv_format(sub: Subsampling, depth: u8) -> Option<Pixel> {
    use Subsampling::*;
    Some(match (sub, depth) {
        (S420, 8) => Pixel::YUV420P,
        (S422, 8) => Pixel::YUV422P,
        (S444, 8) => Pixel::YUV444P,
        (S420, 10) => Pixel::YUV420P10LE,
        (S422, 10) => Pixel::YUV422P10LE,
        (S444, 10) => Pixel::YUV444P10LE,
        (S420, 12) => Pixel::YUV420P12LE,
        (S422, 12) => Pixel::YUV422P12LE,
        (S444, 12) => Pixel::YUV444P12LE,
        _ => return None,
    })
}

/// The canonical format swscale converts an unsupported decoded format to (keeping its precision).
fn canonical_for(fmt: Pixel) -> Pixel {
    let desc = fmt.descriptor();
    // SAFETY: a descriptor from FFmpeg's static table.
    let (flags, depth) = desc.map(|d| unsafe { ((*d.as_ptr()).flags, (*d.as_ptr()).comp[0].depth) }).unwrap_or((0, 8));
    let rgb = flags & ff::ffi::AV_PIX_FMT_FLAG_RGB as u64 != 0;
    match (rgb, depth) {
        (true, 0..=8) => Pixel::GBRP,
        (true, _) => Pixel::GBRP16LE,
        (false, 0..=8) => Pixel::YUV444P,
        (false, 9..=10) => Pixel::YUV444P10LE,
        (false, 11..=12) => Pixel::YUV444P12LE,
        (false, _) => Pixel::YUV444P16LE,
    }
}

/// View a byte plane as `u16` samples. FFmpeg's buffers are aligned, so this never copies in practice.
fn as_u16(bytes: &[u8]) -> std::borrow::Cow<'_, [u16]> {
    // SAFETY: u16 has no invalid bit patterns; align_to only reinterprets the aligned middle part.
    let (pre, mid, post) = unsafe { bytes.align_to::<u16>() };
    if pre.is_empty() && post.is_empty() {
        std::borrow::Cow::Borrowed(mid)
    } else {
        std::borrow::Cow::Owned(bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect())
    }
}

/// Converts decoded frames to planar RGB `f32`, keeping a swscale context for formats that need one.
pub struct ToRgb {
    matrix: color::Matrix,
    range: Range,
    scaler: Option<(Pixel, u32, u32, ff::software::scaling::Context)>,
    scaled: ff::frame::Video,
}

// SAFETY: the swscale context is used by one thread at a time (the owner); it holds no thread-affine state.
unsafe impl Send for ToRgb {}

impl ToRgb {
    /// A converter for a stream with this (resolved) matrix and range.
    pub fn new(matrix: color::Matrix, range: Range) -> ToRgb {
        ToRgb { matrix, range, scaler: None, scaled: ff::frame::Video::empty() }
    }

    /// Whether frames of this format go through swscale first (reported as a warning).
    pub fn needs_swscale(fmt: Pixel) -> bool {
        layout_of(fmt).is_none()
    }

    /// `frame` → `out` (resized to 3·w·h). Errors are swscale's (unsupported format).
    pub fn convert(&mut self, frame: &super::frame::Frame, out: &mut Vec<f32>) -> Result<(), VideoError> {
        let frame = &frame.0;
        let (w, h) = (frame.width(), frame.height());
        let frame = match layout_of(frame.format()) {
            Some(_) => frame,
            None => {
                let src = frame.format();
                let rebuild = !matches!(&self.scaler, Some((f, sw, sh, _)) if *f == src && *sw == w && *sh == h);
                if rebuild {
                    let ctx = ff::software::scaling::Context::get(
                        src,
                        w,
                        h,
                        canonical_for(src),
                        w,
                        h,
                        ff::software::scaling::Flags::POINT | ff::software::scaling::Flags::ACCURATE_RND,
                    )
                    .map_err(|e| VideoError::Unsupported(format!("no conversion from pixel format {src:?}: {e}")))?;
                    self.scaler = Some((src, w, h, ctx));
                }
                let Some((_, _, _, ctx)) = self.scaler.as_mut() else {
                    return Err(VideoError::Unsupported(format!("no conversion from pixel format {src:?}")));
                };
                ctx.run(frame, &mut self.scaled).map_err(|e| VideoError::Unsupported(format!("swscale: {e}")))?;
                &self.scaled
            }
        };
        let (w, h) = (w as usize, h as usize);
        out.resize(3 * w * h, 0.0);
        let layout = layout_of(frame.format())
            .ok_or_else(|| VideoError::Unsupported(format!("unexpected format {:?}", frame.format())))?;
        let p8 = |i: usize| Plane { data: frame.data(i), stride: frame.stride(i) };
        match layout {
            Layout::Gbr(8) => color::gbr8_to_rgb_planar(w, h, p8(0), p8(1), p8(2), out),
            Layout::Gbr(depth) => {
                let (g, b, r) = (as_u16(frame.data(0)), as_u16(frame.data(1)), as_u16(frame.data(2)));
                let s = |i: usize| frame.stride(i) / 2;
                let (g, b, r) = (
                    Plane { data: &g, stride: s(0) },
                    Plane { data: &b, stride: s(1) },
                    Plane { data: &r, stride: s(2) },
                );
                color::gbr_to_rgb_planar(w, h, depth, g, b, r, out);
            }
            Layout::Yuv(subsampling, bit_depth) => {
                let fmt =
                    YuvFormat { width: w, height: h, subsampling, bit_depth, matrix: self.matrix, range: self.range };
                if bit_depth == 8 {
                    color::yuv_to_rgb_planar(&fmt, p8(0), p8(1), p8(2), out);
                } else {
                    let (y, u, v) = (as_u16(frame.data(0)), as_u16(frame.data(1)), as_u16(frame.data(2)));
                    let s = |i: usize| frame.stride(i) / 2;
                    color::yuv_to_rgb_planar(
                        &fmt,
                        Plane { data: &y, stride: s(0) },
                        Plane { data: &u, stride: s(1) },
                        Plane { data: &v, stride: s(2) },
                        out,
                    );
                }
            }
        }
        Ok(())
    }
}

/// Planar RGB `f32` (w·h per plane, `src_width` wide) → a planar Y'CbCr encoder frame (4:2:0, 4:2:2 or 4:4:4 at 8
/// to 12 bits) of the frame's size (which may be one pixel smaller than the source where an odd dimension was
/// cropped for subsampled chroma).
pub(super) fn rgb_to_frame(
    rgb: &[f32],
    src_width: usize,
    src_height: usize,
    matrix: color::Matrix,
    range: Range,
    frame: &mut ff::frame::Video,
) -> Result<(), VideoError> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let cropped;
    let rgb = if w == src_width && h == src_height {
        rgb
    } else {
        let n = src_width * src_height;
        let mut c = Vec::with_capacity(3 * w * h);
        for p in 0..3 {
            for row in 0..h {
                c.extend_from_slice(&rgb[p * n + row * src_width..p * n + row * src_width + w]);
            }
        }
        cropped = c;
        &cropped
    };
    let (subsampling, bit_depth) = yuv_layout(frame.format())
        .filter(|(_, d)| *d <= 12)
        .ok_or_else(|| VideoError::Unsupported(format!("encoder frame format {:?}", frame.format())))?;
    let fmt = YuvFormat { width: w, height: h, subsampling, bit_depth, matrix, range };
    let strides = [frame.stride(0), frame.stride(1), frame.stride(2)];
    // SAFETY: the three planes of a planar frame are distinct allocations (or disjoint parts of one buffer);
    // we build non-overlapping mutable slices of exactly the lengths FFmpeg reports for each plane.
    let [y, u, v]: [&mut [u8]; 3] = std::array::from_fn(|i| {
        let len = frame.data(i).len();
        unsafe { std::slice::from_raw_parts_mut((*frame.as_mut_ptr()).data[i], len) }
    });
    if bit_depth > 8 {
        fn m(b: &mut [u8], s: usize) -> PlaneMut<'_, u16> {
            // SAFETY: FFmpeg frame buffers are at least 16-byte aligned and strides are even for 16-bit formats.
            let (pre, mid, _) = unsafe { b.align_to_mut::<u16>() };
            debug_assert!(pre.is_empty());
            PlaneMut { data: mid, stride: s / 2 }
        }
        color::rgb_planar_to_yuv(&fmt, rgb, m(y, strides[0]), m(u, strides[1]), m(v, strides[2]));
    } else {
        color::rgb_planar_to_yuv(
            &fmt,
            rgb,
            PlaneMut { data: y, stride: strides[0] },
            PlaneMut { data: u, stride: strides[1] },
            PlaneMut { data: v, stride: strides[2] },
        );
    }
    Ok(())
}
