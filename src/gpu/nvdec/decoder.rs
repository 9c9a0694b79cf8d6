//! One NVDEC decoder for one video stream: the driver's parser orders pictures for display; each displayed
//! picture is mapped (NV12, or P016 for 10-bit, cropped to the display area by the decoder), copied on the
//! context's decode stream into two device buffers (luma, interleaved chroma) with tight pitches, and unmapped at
//! once, so the decoder's few output surfaces are never held by later stages. Packets arrive as bytes already in
//! the form the parser reads (Annex B for H.264/HEVC: `crate::video::DecoderFeed` prepares them).
//!
//! Where the file's plan says so, NVDEC deinterlaces with its own adaptive deinterlacer
//! (`cudaVideoDeinterlaceMode_Adaptive`): one output frame per picture, or two (each field in turn: the picture is
//! mapped twice, `second_field` 0 then 1) with timestamps in half the stream's time base, as libavfilter's bwdif gives
//! them on the CPU. NVDEC hands each field out one field late at that rate; `fields::FieldSlots` says which map
//! fills which field's slot, and when.

use super::error::NvdecError;
use super::ffi::*;
use super::fields::{FieldOp, FieldSlots};
use super::frame::DeviceFrame;
use crate::gpu::pool::FreeList;
use crate::gpu::GpuContext;
use crate::plan::FilterKind;
use crate::video::VideoInfo;
use cudarc::driver::{CudaSlice, DevicePtrMut};
use std::collections::{HashMap, VecDeque};
use std::ffi::{c_int, c_uint, c_ulong, c_void};
use std::sync::Arc;

/// What the parser's callbacks share with the decoder (boxed: the parser keeps a pointer to it).
struct State {
    lib: &'static Lib,
    decoder: Handle,
    /// Display size and bit depth the demuxer announced; NVDEC must agree.
    width: u32,
    height: u32,
    bit_depth: u8,
    /// `cudaVideoDeinterlaceMode`: 0 weave (fields kept as coded), 2 adaptive.
    deinterlace: c_uint,
    display: VecDeque<DispInfo>,
    error: Option<String>,
}

impl State {
    fn on_sequence(&mut self, f: &VideoFormat) -> c_int {
        let [left, top, right, bottom] = f.display_area;
        let (w, h) = ((right - left).max(0) as u32, (bottom - top).max(0) as u32);
        let depth = 8 + f.bit_depth_luma_minus8;
        let surfaces = c_uint::from(f.min_num_decode_surfaces).max(1) + 4;
        if !self.decoder.is_null() {
            if (w, h, depth) == (self.width, self.height, self.bit_depth) {
                return surfaces as c_int;
            }
            self.error = Some(format!(
                "the stream changed from {}x{} {}-bit to {w}x{h} {depth}-bit mid-stream",
                self.width, self.height, self.bit_depth
            ));
            return 0;
        }
        if f.chroma_format != CHROMA_420 || f.bit_depth_chroma_minus8 != f.bit_depth_luma_minus8 {
            self.error = Some(format!("chroma format {} is not 4:2:0", f.chroma_format));
            return 0;
        }
        if (w, h, depth) != (self.width, self.height, self.bit_depth) {
            self.error = Some(format!(
                "NVDEC sees {w}x{h} {depth}-bit where the demuxer announced {}x{} {}-bit",
                self.width, self.height, self.bit_depth
            ));
            return 0;
        }
        let area = [left as i16, top as i16, right as i16, bottom as i16];
        let mut info = CreateInfo {
            width: c_ulong::from(f.coded_width),
            height: c_ulong::from(f.coded_height),
            num_decode_surfaces: c_ulong::from(surfaces),
            codec_type: f.codec,
            chroma_format: f.chroma_format,
            creation_flags: CREATE_PREFER_CUVID,
            bit_depth_minus8: c_ulong::from(f.bit_depth_luma_minus8),
            intra_decode_only: 0,
            max_width: c_ulong::from(f.coded_width),
            max_height: c_ulong::from(f.coded_height),
            reserved1: 0,
            display_area: area,
            output_format: if depth > 8 { SURFACE_P016 } else { SURFACE_NV12 },
            // Weave keeps the fields as coded (as the CPU decoder does); adaptive deinterlaces, as the plan says.
            deinterlace_mode: self.deinterlace,
            target_width: c_ulong::from(w),
            target_height: c_ulong::from(h),
            num_output_surfaces: 2,
            vid_lock: std::ptr::null_mut(),
            target_rect: [0; 4],
            reserved2: [0; 5],
        };
        let mut dec: Handle = std::ptr::null_mut();
        // SAFETY: info is a complete CUVIDDECODECREATEINFO; the calling thread has the context current.
        let rc = unsafe { (self.lib.create_decoder)(&mut dec, &mut info) };
        if rc != 0 || dec.is_null() {
            self.error = Some(format!("cuvidCreateDecoder failed (CUresult {rc}) for {w}x{h} {depth}-bit"));
            return 0;
        }
        self.decoder = dec;
        surfaces as c_int
    }
}

fn guarded(user: *mut c_void, f: impl FnOnce(&mut State) -> c_int) -> c_int {
    if user.is_null() {
        return 0;
    }
    // SAFETY: `user` is the boxed State the parser was created with; callbacks run inside cuvidParseVideoData,
    // called by the decoder's owner with `&mut self`, so nothing else touches the State meanwhile.
    let state = unsafe { &mut *(user as *mut State) };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(state))).unwrap_or(0)
}

unsafe extern "C" fn on_sequence(user: *mut c_void, format: *mut VideoFormat) -> c_int {
    // SAFETY: the parser passes a valid CUVIDEOFORMAT for the duration of the call.
    guarded(user, |s| match unsafe { format.as_ref() } {
        Some(f) => s.on_sequence(f),
        None => 0,
    })
}

unsafe extern "C" fn on_decode(user: *mut c_void, pic: *mut c_void) -> c_int {
    guarded(user, |s| {
        if s.decoder.is_null() {
            s.error = Some("a picture arrived before its sequence header".into());
            return 0;
        }
        // SAFETY: `pic` is the parser's CUVIDPICPARAMS, passed through unchanged.
        let rc = unsafe { (s.lib.decode_picture)(s.decoder, pic) };
        if rc != 0 {
            s.error = Some(format!("cuvidDecodePicture failed (CUresult {rc})"));
            return 0;
        }
        1
    })
}

unsafe extern "C" fn on_display(user: *mut c_void, disp: *mut DispInfo) -> c_int {
    guarded(user, |s| {
        // SAFETY: a valid CUVIDPARSERDISPINFO for the call, or null at the end of the stream.
        if let Some(d) = unsafe { disp.as_ref() } {
            s.display.push_back(*d);
        }
        1
    })
}

/// An NVDEC decoder for one video stream.
pub struct NvDecoder {
    gpu: Arc<GpuContext>,
    parser: Handle,
    state: Box<State>,
    /// Packet duration by pts: NVDEC hands back timestamps only.
    durations: HashMap<i64, i64>,
    has_pts: bool,
    ready: VecDeque<DeviceFrame>,
    /// Buffers of pictures the stages are done with.
    free: FreeList<(CudaSlice<u8>, CudaSlice<u8>)>,
    /// Pictures decoded.
    frames: u64,
    /// Frames handed out (twice the pictures at one frame per field).
    frames_out: u64,
    /// One frame per field.
    double: bool,
    /// At one frame per field: which map fills which field's slot.
    slots: FieldSlots,
    /// At one frame per field: a progressive picture's copy for its second slot, timed by the next picture.
    held: Option<DeviceFrame>,
    /// At one frame per field: the last picture displayed and its duration (its second field may be made from it).
    previous: Option<(DispInfo, i64)>,
    /// Ticks of the stream's time base per frame, from its frame rate (for pictures without a packet duration).
    frame_ticks: i64,
    ended: bool,
}

// SAFETY: the parser and decoder handles are used only through `&mut self`, by one thread at a time;
// every call binds the context first.
unsafe impl Send for NvDecoder {}

impl NvDecoder {
    /// A decoder for the stream `info` describes, on `gpu`, deinterlacing as `filter` says (`NvdecAdaptive`,
    /// `NvdecAdaptiveDouble`; anything else keeps the fields as coded). Fails, with a reason the caller reports,
    /// when the codec or frame is not one this path takes.
    pub fn new(gpu: Arc<GpuContext>, info: &VideoInfo, filter: FilterKind) -> Result<Self, NvdecError> {
        let unsupported = NvdecError::Unsupported;
        let codec =
            codec_id(&info.codec).ok_or_else(|| unsupported(format!("{} is not decoded by NVDEC here", info.codec)))?;
        if info.width % 2 != 0 || info.height % 2 != 0 {
            return Err(unsupported(format!("{}x{} has an odd dimension", info.width, info.height)));
        }
        if !matches!(info.bit_depth, 8 | 10) || !info.pixel_format.starts_with("yuv420p") {
            return Err(unsupported(format!("{} is not 4:2:0 at 8 or 10 bits", info.pixel_format)));
        }
        let lib = lib()?;
        gpu.context().bind_to_thread().map_err(NvdecError::cuda)?;
        let caps = decoder_caps(codec, info.bit_depth)?.ok_or_else(|| {
            unsupported(format!("NVDEC does not decode {} {}-bit on this GPU", info.codec, info.bit_depth))
        })?;
        let (w, h) = (info.width, info.height);
        let mbs = w.div_ceil(16) * h.div_ceil(16);
        if w < u32::from(caps.min_width)
            || h < u32::from(caps.min_height)
            || w > caps.max_width
            || h > caps.max_height
            || (caps.max_mb_count > 0 && mbs > caps.max_mb_count)
        {
            return Err(unsupported(format!(
                "{w}x{h} is outside what NVDEC decodes for {} ({}x{} to {}x{})",
                info.codec, caps.min_width, caps.min_height, caps.max_width, caps.max_height
            )));
        }
        let mut state = Box::new(State {
            lib,
            decoder: std::ptr::null_mut(),
            width: info.width,
            height: info.height,
            bit_depth: info.bit_depth,
            deinterlace: match filter {
                FilterKind::NvdecAdaptive | FilterKind::NvdecAdaptiveDouble => 2,
                _ => 0,
            },
            display: VecDeque::with_capacity(32),
            error: None,
        });
        let frame_ticks = match (info.frame_rate, info.time_base) {
            (Some((fnum, fden)), (tn, td)) if fnum > 0 && tn > 0 => {
                let (num, den) = (i64::from(td) * i64::from(fden), i64::from(tn) * i64::from(fnum));
                (num + den / 2) / den
            }
            _ => 0,
        };
        let mut params = ParserParams {
            codec_type: codec,
            max_num_decode_surfaces: 1,
            clock_rate: 0,
            error_threshold: 0,
            // A short display queue lets NVDEC decode ahead of the picture being copied out.
            max_display_delay: 2,
            reserved1: [0; 5],
            user_data: (&mut *state as *mut State).cast(),
            sequence: Some(on_sequence),
            decode: Some(on_decode),
            display: Some(on_display),
            reserved2: [std::ptr::null_mut(); 7],
            ext_video_info: std::ptr::null_mut(),
        };
        let mut parser: Handle = std::ptr::null_mut();
        // SAFETY: params is complete; `state` is boxed and outlives the parser (destroyed first in Drop).
        let rc = unsafe { (lib.create_parser)(&mut parser, &mut params) };
        if rc != 0 || parser.is_null() {
            return Err(NvdecError::Failed(format!("cuvidCreateVideoParser failed (CUresult {rc})")));
        }
        Ok(NvDecoder {
            gpu,
            parser,
            state,
            durations: HashMap::with_capacity(64),
            has_pts: true,
            ready: VecDeque::with_capacity(16),
            free: FreeList::default(),
            frames: 0,
            frames_out: 0,
            double: filter == FilterKind::NvdecAdaptiveDouble,
            slots: FieldSlots::default(),
            held: None,
            previous: None,
            frame_ticks,
            ended: false,
        })
    }

    /// Pictures decoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Frames handed out so far (twice the pictures at one frame per field).
    pub fn frames_out(&self) -> u64 {
        self.frames_out
    }

    /// Whether NVDEC deinterlaces this stream.
    pub fn deinterlaces(&self) -> bool {
        self.state.deinterlace != 0
    }

    /// Feeds one packet of the video stream (bytes as the parser reads them, its timestamp and duration in the
    /// stream's time base).
    pub fn send(&mut self, data: &[u8], pts: Option<i64>, duration: i64) -> Result<(), NvdecError> {
        if self.ended {
            return Ok(());
        }
        self.gpu.context().bind_to_thread().map_err(NvdecError::cuda)?;
        match pts {
            Some(p) => {
                self.durations.insert(p, duration);
            }
            None => self.has_pts = false,
        }
        self.parse(data, pts, false)
    }

    /// Ends the stream: every remaining picture comes out.
    pub fn finish(&mut self) -> Result<(), NvdecError> {
        if self.ended {
            return Ok(());
        }
        self.gpu.context().bind_to_thread().map_err(NvdecError::cuda)?;
        self.parse(&[], None, true)?;
        if let Some(op) = self.slots.end() {
            // After the end of stream the decoder decodes nothing more, so the last picture's surface still holds it.
            if let Some((d, duration)) = self.previous {
                self.field_op(op, d, duration)?;
            }
        }
        self.ended = true;
        Ok(())
    }

    /// The next decoded picture, in display order.
    pub fn receive(&mut self) -> Option<(DeviceFrame, i64)> {
        let f = self.ready.pop_front()?;
        let duration = f.duration;
        Some((f, duration))
    }

    fn parse(&mut self, data: &[u8], pts: Option<i64>, end: bool) -> Result<(), NvdecError> {
        let mut pkt = SourcePacket {
            flags: if end { PKT_ENDOFSTREAM } else { 0 } | if pts.is_some() { PKT_TIMESTAMP } else { 0 },
            payload_size: data.len() as c_ulong,
            payload: if data.is_empty() { std::ptr::null() } else { data.as_ptr() },
            timestamp: pts.unwrap_or(0),
        };
        // SAFETY: the parser reads `data` during the call only; callbacks reach `self.state` (boxed).
        let rc = unsafe { (self.state.lib.parse)(self.parser, &mut pkt) };
        if let Some(e) = self.state.error.take() {
            return Err(NvdecError::Failed(e));
        }
        if rc != 0 {
            return Err(NvdecError::Failed(format!("cuvidParseVideoData failed (CUresult {rc})")));
        }
        while let Some(d) = self.state.display.pop_front() {
            self.frames += 1;
            let ts = self.has_pts.then_some(d.timestamp);
            let duration = ts.and_then(|t| self.durations.remove(&t)).filter(|d| *d > 0).unwrap_or(self.frame_ticks);
            if self.double {
                let ops = self.slots.picture(d.progressive_frame == 0, ts, duration);
                for op in ops {
                    self.field_op(op, d, duration)?;
                }
                self.previous = Some((d, duration));
            } else {
                let f = self.copy_out(d, Map::Picture(0), ts, duration)?;
                self.hand_out(f);
            }
        }
        Ok(())
    }

    /// Runs one of `FieldSlots`' ops while `d` is the current picture.
    fn field_op(&mut self, op: FieldOp, d: DispInfo, duration: i64) -> Result<(), NvdecError> {
        match op {
            FieldOp::Emit { second_field, pts } => {
                let f = self.copy_out(d, Map::Picture(second_field), pts, duration)?;
                self.hand_out(f);
            }
            FieldOp::Discard => self.copy_out(d, Map::Picture(0), None, duration)?.recycle(),
            FieldOp::Hold => self.held = Some(self.copy_out(d, Map::Picture(0), None, duration)?),
            FieldOp::Release { pts } => {
                if let Some(mut f) = self.held.take() {
                    f.pts = pts;
                    self.hand_out(f);
                }
            }
            FieldOp::Doubled { pts } => {
                if let Some((prev, prev_duration)) = self.previous {
                    let f = self.copy_out(prev, Map::SecondFieldDoubled, pts, prev_duration)?;
                    self.hand_out(f);
                }
            }
        }
        Ok(())
    }

    fn hand_out(&mut self, f: DeviceFrame) {
        self.frames_out += 1;
        self.ready.push_back(f);
    }

    /// Maps a displayed picture as `map` says, copies it into pooled buffers on the decode stream, waits, unmaps.
    fn copy_out(&mut self, d: DispInfo, map: Map, pts: Option<i64>, duration: i64) -> Result<DeviceFrame, NvdecError> {
        let s = &self.state;
        let (w, h) = (s.width as usize, s.height as usize);
        let e = if s.bit_depth > 8 { 2 } else { 1 };
        let stream = self.gpu.decode.clone();
        let (progressive_frame, second_field) = match map {
            Map::Picture(field) => (d.progressive_frame, field),
            Map::SecondFieldDoubled => (1, 0),
        };
        let mut proc = ProcParams {
            progressive_frame,
            second_field,
            top_field_first: d.top_field_first,
            unpaired_field: i32::from(d.repeat_first_field < 0),
            reserved_flags: 0,
            reserved_zero: 0,
            raw_input_dptr: 0,
            raw_input_pitch: 0,
            raw_input_format: 0,
            raw_output_dptr: 0,
            raw_output_pitch: 0,
            reserved1: 0,
            output_stream: stream.cu_stream().cast(),
            reserved: [0; 46],
            reserved2: [std::ptr::null_mut(); 2],
        };
        let (mut src, mut pitch) = (0u64, 0 as c_uint);
        // SAFETY: picture_index comes from the parser's display callback for this decoder.
        let rc = unsafe { (s.lib.map)(s.decoder, d.picture_index, &mut src, &mut pitch, &mut proc) };
        if rc != 0 {
            return Err(NvdecError::Failed(format!("cuvidMapVideoFrame failed (CUresult {rc})")));
        }
        // The decoder's target is the display size (checked in the sequence callback): chroma starts that many
        // (even) rows below luma.
        let chroma = src + u64::from(pitch) * u64::from((s.height + 1) & !1);
        let copied = (|| -> Result<(CudaSlice<u8>, CudaSlice<u8>), NvdecError> {
            let (mut y, mut uv) = match self.free.take() {
                Some(b) => b,
                None => {
                    // SAFETY: both buffers are written by the copies below before anyone reads them.
                    let made = unsafe {
                        (
                            stream.alloc::<u8>(w * h * e).map_err(NvdecError::cuda)?,
                            stream.alloc::<u8>(w * (h / 2) * e).map_err(NvdecError::cuda)?,
                        )
                    };
                    self.free.made();
                    made
                }
            };
            {
                // The second field's rows: odd ones when the top field comes first.
                let parity = match map {
                    Map::Picture(_) => None,
                    Map::SecondFieldDoubled => Some(usize::from(d.top_field_first != 0)),
                };
                let (dy, _gy) = y.device_ptr_mut(&stream);
                copy_plane(src, pitch as usize, dy, w * e, h, parity, &stream)?;
                let (duv, _guv) = uv.device_ptr_mut(&stream);
                copy_plane(chroma, pitch as usize, duv, w * e, h / 2, parity, &stream)?;
            }
            stream.synchronize().map_err(NvdecError::cuda)?;
            Ok((y, uv))
        })();
        // SAFETY: unmapping the pointer cuvidMapVideoFrame64 returned, once.
        let rc = unsafe { (s.lib.unmap)(s.decoder, src) };
        let (y, uv) = copied?;
        if rc != 0 {
            return Err(NvdecError::Failed(format!("cuvidUnmapVideoFrame failed (CUresult {rc})")));
        }
        Ok(DeviceFrame {
            y,
            uv,
            width: w,
            height: h,
            bit_depth: s.bit_depth,
            pts,
            progressive: d.progressive_frame != 0,
            duration,
            home: self.free.clone(),
        })
    }
}

/// How a displayed picture is mapped.
#[derive(Debug, Clone, Copy)]
enum Map {
    /// With this `second_field` (ignored for a progressive picture, and by the decoder when it does not
    /// deinterlace).
    Picture(c_int),
    /// Woven (as coded), the second field's rows then each copied over the other field's row beside it.
    SecondFieldDoubled,
}

/// Copies a plane of `rows` rows of `row_bytes` from a mapped picture into a tight buffer: all of it, or (with
/// `parity`) the rows of that parity only, each written twice (rows 2k and 2k + 1 both from row 2k + parity).
fn copy_plane(
    src: u64,
    pitch: usize,
    dst: u64,
    row_bytes: usize,
    rows: usize,
    parity: Option<usize>,
    stream: &Arc<cudarc::driver::CudaStream>,
) -> Result<(), NvdecError> {
    let Some(parity) = parity else {
        return copy_2d(src, pitch, dst, row_bytes, row_bytes, rows, stream);
    };
    let (pairs, from) = (rows / 2, src + (parity * pitch) as u64);
    for half in 0..2 {
        copy_2d(from, 2 * pitch, dst + (half * row_bytes) as u64, 2 * row_bytes, row_bytes, pairs, stream)?;
    }
    if rows % 2 == 1 {
        // An odd last row (even index) takes the nearest row of the field.
        let last = rows - 1;
        let take = last.saturating_sub(parity);
        copy_2d(src + (take * pitch) as u64, pitch, dst + (last * row_bytes) as u64, row_bytes, row_bytes, 1, stream)?;
    }
    Ok(())
}

/// A pitched device-to-device copy of `rows` rows of `row_bytes` on `stream`.
fn copy_2d(
    src: u64,
    src_pitch: usize,
    dst: u64,
    dst_pitch: usize,
    row_bytes: usize,
    rows: usize,
    stream: &Arc<cudarc::driver::CudaStream>,
) -> Result<(), NvdecError> {
    use cudarc::driver::sys;
    let p = sys::CUDA_MEMCPY2D {
        srcXInBytes: 0,
        srcY: 0,
        srcMemoryType: sys::CUmemorytype::CU_MEMORYTYPE_DEVICE,
        srcHost: std::ptr::null(),
        srcDevice: src,
        srcArray: std::ptr::null_mut(),
        srcPitch: src_pitch,
        dstXInBytes: 0,
        dstY: 0,
        dstMemoryType: sys::CUmemorytype::CU_MEMORYTYPE_DEVICE,
        dstHost: std::ptr::null_mut(),
        dstDevice: dst,
        dstArray: std::ptr::null_mut(),
        dstPitch: dst_pitch,
        WidthInBytes: row_bytes,
        Height: rows,
    };
    // SAFETY: both regions are device allocations of at least `rows` pitched rows; the copy is stream-ordered.
    let rc = unsafe { sys::cuMemcpy2DAsync_v2(&p, stream.cu_stream()) };
    if rc != sys::CUresult::CUDA_SUCCESS {
        return Err(NvdecError::Failed(format!("cuMemcpy2DAsync: {rc:?}")));
    }
    Ok(())
}

impl Drop for NvDecoder {
    fn drop(&mut self) {
        // Without the context bound the destroy calls below fail harmlessly; nothing else can be done in a drop.
        self.gpu.context().bind_to_thread().ok();
        // SAFETY: handles created by this decoder, destroyed once, parser first (it calls into the decoder).
        unsafe {
            (self.state.lib.destroy_parser)(self.parser);
            if !self.state.decoder.is_null() {
                (self.state.lib.destroy_decoder)(self.state.decoder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn decode_caps_has_the_sdk_size() {
        assert_eq!(std::mem::size_of::<super::DecodeCaps>(), 88);
    }
}
