//! Packets for a hardware decoder: NVDEC's parser reads H.264 and HEVC in Annex B form (start codes), while MP4 and
//! Matroska store them length-prefixed, so those packets go through FFmpeg's `*_mp4toannexb` bitstream filter (a
//! no-op on Annex B input). Other codecs pass unchanged. Keeps FFmpeg's bitstream filters inside this layer: the
//! device decoder only ever sees bytes and timestamps.

use super::error::VideoError;
use super::source::Source;
use ff::packet::Mut as _;
use ffmpeg_next as ff;

/// FFmpeg's bitstream filter context.
struct Bsf {
    ctx: *mut ff::ffi::AVBSFContext,
    out: ff::Packet,
}

impl Bsf {
    fn new(name: &str, stream: &ff::format::stream::Stream<'_>) -> Result<Bsf, VideoError> {
        let fail = |what: &str| VideoError::Unsupported(format!("{name}: {what}"));
        let cname = std::ffi::CString::new(name).map_err(|_| fail("bad filter name"))?;
        // SAFETY: plain FFmpeg calls on a context this struct owns; parameters are copied, not borrowed.
        unsafe {
            let filter = ff::ffi::av_bsf_get_by_name(cname.as_ptr());
            if filter.is_null() {
                return Err(fail("FFmpeg lacks this bitstream filter"));
            }
            let mut ctx = std::ptr::null_mut();
            if ff::ffi::av_bsf_alloc(filter, &mut ctx) < 0 {
                return Err(fail("cannot allocate"));
            }
            let me = Bsf { ctx, out: ff::Packet::empty() };
            if ff::ffi::avcodec_parameters_copy((*ctx).par_in, stream.parameters().as_ptr()) < 0 {
                return Err(fail("cannot copy the stream parameters"));
            }
            (*ctx).time_base_in = stream.time_base().into();
            if ff::ffi::av_bsf_init(ctx) < 0 {
                return Err(fail("cannot initialise"));
            }
            Ok(me)
        }
    }
}

impl Drop for Bsf {
    fn drop(&mut self) {
        // SAFETY: ctx was allocated by av_bsf_alloc and is freed once.
        unsafe { ff::ffi::av_bsf_free(&mut self.ctx) };
    }
}

// SAFETY: the filter context is owned and used by one thread at a time.
unsafe impl Send for Bsf {}

/// Turns the video stream's packets into what a hardware decoder's parser reads.
pub struct DecoderFeed {
    bsf: Option<Bsf>,
}

impl DecoderFeed {
    /// A feed for `source`'s video stream.
    pub fn new(source: &Source) -> Result<DecoderFeed, VideoError> {
        let name = match source.info().codec.as_str() {
            "h264" => Some("h264_mp4toannexb"),
            "hevc" => Some("hevc_mp4toannexb"),
            _ => None,
        };
        let bsf = match (name, source.video_stream()) {
            (Some(n), Some(stream)) => Some(Bsf::new(n, &stream)?),
            (Some(_), None) => return Err(VideoError::Stream("the video stream vanished".into())),
            (None, _) => None,
        };
        Ok(DecoderFeed { bsf })
    }

    /// Feeds a packet of the video stream (`None`: the end) and hands every packet ready for the decoder to
    /// `each(bytes, pts, duration)`.
    pub fn push<E: From<VideoError>>(
        &mut self,
        packet: Option<ff::Packet>,
        mut each: impl FnMut(&[u8], Option<i64>, i64) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(bsf) = self.bsf.as_mut() else {
            return match packet {
                Some(p) => each(p.data().unwrap_or_default(), p.pts(), p.duration()),
                None => Ok(()),
            };
        };
        let filter_err = |rc: i32| VideoError::Stream(format!("bitstream filter: {}", ff::Error::from(rc)));
        // SAFETY: av_bsf_send_packet takes over the packet's reference (or null = end of stream).
        let rc = unsafe {
            match packet {
                Some(mut p) => ff::ffi::av_bsf_send_packet(bsf.ctx, p.as_mut_ptr()),
                None => ff::ffi::av_bsf_send_packet(bsf.ctx, std::ptr::null_mut()),
            }
        };
        if rc < 0 {
            return Err(filter_err(rc).into());
        }
        loop {
            // SAFETY: out is an owned packet the filter fills.
            let rc = unsafe { ff::ffi::av_bsf_receive_packet(bsf.ctx, bsf.out.as_mut_ptr()) };
            if rc == ff::ffi::AVERROR(ff::ffi::EAGAIN) || rc == ff::ffi::AVERROR_EOF {
                return Ok(());
            }
            if rc < 0 {
                return Err(filter_err(rc).into());
            }
            let out = std::mem::replace(&mut bsf.out, ff::Packet::empty());
            each(out.data().unwrap_or_default(), out.pts(), out.duration())?;
        }
    }
}
