//! Planar Y'CbCr frames in host memory, in the layout the GPU stage uploads and downloads: the decoder's or the
//! encoder's own format (4:2:0, 4:2:2 or 4:4:4 at 8 to 12 bits), planes packed tightly, so only those bytes cross
//! the bus, never RGB.

use super::color::{Matrix, Range, Subsampling};
use super::convert::{yuv_format, yuv_layout};
use super::error::VideoError;
use crate::codec::Chroma;
use ff::format::Pixel;
use ffmpeg_next as ff;

/// A tightly packed planar Y'CbCr frame: Y (w×h), then Cb and Cr (the chroma layout's size each); 8-bit samples are
/// bytes, deeper samples little-endian `u16` with the value in the low bits.
#[derive(Debug, Clone, PartialEq)]
pub struct YuvFrame {
    /// Declared before `data`, so it is dropped (the buffer unregistered) before the buffer is freed.
    pin: HostPin,
    /// Luma width.
    pub width: usize,
    /// Luma height.
    pub height: usize,
    /// 8, 10 or 12.
    pub bit_depth: u8,
    /// Chroma layout.
    pub chroma: Chroma,
    /// Matrix the samples are in.
    pub matrix: Matrix,
    /// Range the samples are in.
    pub range: Range,
    /// The three planes, back to back.
    pub data: Vec<u8>,
}

impl YuvFrame {
    /// An empty 4:2:0 frame of this geometry (data sized, zeroed).
    pub fn new(width: usize, height: usize, bit_depth: u8, matrix: Matrix, range: Range) -> YuvFrame {
        YuvFrame::planar(width, height, bit_depth, Chroma::C420, matrix, range)
    }

    /// An empty frame of this geometry and chroma layout (data sized, zeroed).
    pub fn planar(
        width: usize,
        height: usize,
        bit_depth: u8,
        chroma: Chroma,
        matrix: Matrix,
        range: Range,
    ) -> YuvFrame {
        let mut f =
            YuvFrame { pin: HostPin::default(), width, height, bit_depth, chroma, matrix, range, data: Vec::new() };
        f.fit();
        f
    }

    /// Sizes `data` for the frame's geometry. A buffer that must grow (and so move) loses its pin first.
    pub fn fit(&mut self) {
        let need = self.len();
        if need > self.data.capacity() {
            self.pin = HostPin::default();
        }
        self.data.resize(need, 0);
    }

    /// Whether `data` is registered with a device (see [`YuvFrame::set_pin`]).
    pub fn is_pinned(&self) -> bool {
        self.pin.0.is_some()
    }

    /// Keeps `registration` (of the whole allocation behind `data`, `data.capacity()` bytes, with a device) for as
    /// long as that allocation lives: it is dropped before `data` is freed or reallocated by [`YuvFrame::fit`].
    pub fn set_pin(&mut self, registration: Box<dyn std::any::Any + Send + Sync>) {
        self.pin = HostPin(Some(registration));
    }

    /// Bytes per sample.
    pub fn sample_bytes(&self) -> usize {
        if self.bit_depth > 8 {
            2
        } else {
            1
        }
    }

    /// Chroma plane size in samples (width, height).
    pub fn chroma_size(&self) -> (usize, usize) {
        Subsampling::from(self.chroma).chroma_size(self.width, self.height)
    }

    /// Byte ranges of the Y, Cb and Cr planes in `data`.
    pub fn planes(&self) -> [std::ops::Range<usize>; 3] {
        let e = self.sample_bytes();
        let y = self.width * self.height * e;
        let (cw, ch) = self.chroma_size();
        let c = cw * ch * e;
        [0..y, y..y + c, y + c..y + 2 * c]
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.planes()[2].end
    }

    /// Whether the frame has no pixels.
    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    /// Whether a decoded frame can be read directly: planar 4:2:0, 4:2:2 or 4:4:4 at 8 to 12 bits (an alpha plane
    /// is left out).
    pub fn supports(format: Pixel) -> bool {
        yuv_layout(format).is_some_and(|(_, d)| d <= 12)
    }

    /// Copies a decoded planar frame into `self` (reusing its allocation).
    pub fn read_from(&mut self, f: &super::frame::Frame, matrix: Matrix, range: Range) -> Result<(), VideoError> {
        let f = &f.0;
        let Some((sub, depth)) = yuv_layout(f.format()).filter(|(_, d)| *d <= 12) else {
            return Err(VideoError::Unsupported(format!(
                "pixel format {:?} is not planar 4:2:0, 4:2:2 or 4:4:4 at 8 to 12 bits",
                f.format()
            )));
        };
        self.width = f.width() as usize;
        self.height = f.height() as usize;
        self.bit_depth = depth;
        self.chroma = match sub {
            Subsampling::S420 => Chroma::C420,
            Subsampling::S422 => Chroma::C422,
            Subsampling::S444 => Chroma::C444,
        };
        self.matrix = matrix;
        self.range = range;
        self.fit();
        let e = self.sample_bytes();
        let (cw, ch) = self.chroma_size();
        let dims = [(self.width, self.height), (cw, ch), (cw, ch)];
        let planes = self.planes();
        for (i, (range, (w, h))) in planes.into_iter().zip(dims).enumerate() {
            let stride = f.stride(i);
            let src = f.data(i);
            let dst = &mut self.data[range];
            for row in 0..h {
                let s = &src[row * stride..row * stride + w * e];
                dst[row * w * e..(row + 1) * w * e].copy_from_slice(s);
            }
        }
        Ok(())
    }

    /// The pixel format of this frame's layout.
    pub fn pixel_format(&self) -> Option<Pixel> {
        yuv_format(self.chroma.into(), self.bit_depth)
    }

    /// Copies `self` into an allocated encoder frame of the same layout and at most this size (the frame may be a
    /// pixel narrower or shorter: an odd dimension cropped for subsampled chroma).
    pub fn write_into(&self, f: &mut ff::frame::Video) -> Result<(), VideoError> {
        let want = self.pixel_format();
        if Some(f.format()) != want {
            return Err(VideoError::Stream(format!(
                "encoder frame is {:?}, the GPU stage produced {want:?}",
                f.format()
            )));
        }
        let (fw, fh) = (f.width() as usize, f.height() as usize);
        if fw > self.width || fh > self.height {
            return Err(VideoError::Stream(format!(
                "frame {fw}x{fh} is larger than the upscaled {}x{}",
                self.width, self.height
            )));
        }
        let e = self.sample_bytes();
        let (cw, _) = self.chroma_size();
        let (fcw, fch) = Subsampling::from(self.chroma).chroma_size(fw, fh);
        let src_w = [self.width, cw, cw];
        let dims = [(fw, fh), (fcw, fch), (fcw, fch)];
        for (i, (range, (w, h))) in self.planes().into_iter().zip(dims).enumerate() {
            let stride = f.stride(i);
            let src = &self.data[range];
            let dst = f.data_mut(i);
            for row in 0..h {
                let s = &src[row * src_w[i] * e..row * src_w[i] * e + w * e];
                dst[row * stride..row * stride + w * e].copy_from_slice(s);
            }
        }
        Ok(())
    }
}

/// A frame buffer's registration with a device (page-locked for DMA at full speed); unregisters when dropped. A
/// clone is not registered, and frames compare equal whatever their registration.
#[derive(Default)]
struct HostPin(Option<Box<dyn std::any::Any + Send + Sync>>);

impl Clone for HostPin {
    fn clone(&self) -> Self {
        HostPin(None)
    }
}

impl PartialEq for HostPin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for HostPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "pinned" } else { "pageable" })
    }
}
