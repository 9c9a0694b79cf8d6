//! `libnvcuvid`'s C interface, loaded at run time (nothing links the driver's libraries at build time): the
//! `#[repr(C)]` structs of nvcuvid.h / cuviddec.h that videoforge uses, the entry points, and the capability query.

use super::error::NvdecError;
use std::ffi::{c_int, c_uint, c_ulong, c_void};
use std::sync::OnceLock;

pub(super) type Handle = *mut c_void;

/// `CUVIDEOFORMAT` (nvcuvid.h).
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct VideoFormat {
    pub(super) codec: c_uint,
    pub(super) frame_rate: [c_uint; 2],
    pub(super) progressive_sequence: u8,
    pub(super) bit_depth_luma_minus8: u8,
    pub(super) bit_depth_chroma_minus8: u8,
    pub(super) min_num_decode_surfaces: u8,
    pub(super) coded_width: c_uint,
    pub(super) coded_height: c_uint,
    /// left, top, right, bottom
    pub(super) display_area: [c_int; 4],
    pub(super) chroma_format: c_uint,
    pub(super) bitrate: c_uint,
    pub(super) display_aspect_ratio: [c_int; 2],
    pub(super) video_signal_description: [u8; 4],
    pub(super) seqhdr_data_length: c_uint,
}

/// `CUVIDPARSERDISPINFO`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(super) struct DispInfo {
    pub(super) picture_index: c_int,
    pub(super) progressive_frame: c_int,
    pub(super) top_field_first: c_int,
    pub(super) repeat_first_field: c_int,
    pub(super) timestamp: i64,
}

pub(super) type SequenceCb = unsafe extern "C" fn(*mut c_void, *mut VideoFormat) -> c_int;
pub(super) type DecodeCb = unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int;
pub(super) type DisplayCb = unsafe extern "C" fn(*mut c_void, *mut DispInfo) -> c_int;

/// `CUVIDPARSERPARAMS` (the SDK 9 layout; later SDKs carve new fields out of the reserved ones, same size).
#[repr(C)]
pub(super) struct ParserParams {
    pub(super) codec_type: c_uint,
    pub(super) max_num_decode_surfaces: c_uint,
    pub(super) clock_rate: c_uint,
    pub(super) error_threshold: c_uint,
    pub(super) max_display_delay: c_uint,
    pub(super) reserved1: [c_uint; 5],
    pub(super) user_data: *mut c_void,
    pub(super) sequence: Option<SequenceCb>,
    pub(super) decode: Option<DecodeCb>,
    pub(super) display: Option<DisplayCb>,
    pub(super) reserved2: [*mut c_void; 7],
    pub(super) ext_video_info: *mut c_void,
}

/// `CUVIDSOURCEDATAPACKET`.
#[repr(C)]
pub(super) struct SourcePacket {
    pub(super) flags: c_ulong,
    pub(super) payload_size: c_ulong,
    pub(super) payload: *const u8,
    pub(super) timestamp: i64,
}

pub(super) const PKT_ENDOFSTREAM: c_ulong = 0x01;
pub(super) const PKT_TIMESTAMP: c_ulong = 0x02;

/// `CUVIDDECODECREATEINFO`.
#[repr(C)]
pub(super) struct CreateInfo {
    pub(super) width: c_ulong,
    pub(super) height: c_ulong,
    pub(super) num_decode_surfaces: c_ulong,
    pub(super) codec_type: c_uint,
    pub(super) chroma_format: c_uint,
    pub(super) creation_flags: c_ulong,
    pub(super) bit_depth_minus8: c_ulong,
    pub(super) intra_decode_only: c_ulong,
    pub(super) max_width: c_ulong,
    pub(super) max_height: c_ulong,
    pub(super) reserved1: c_ulong,
    /// left, top, right, bottom
    pub(super) display_area: [i16; 4],
    pub(super) output_format: c_uint,
    pub(super) deinterlace_mode: c_uint,
    pub(super) target_width: c_ulong,
    pub(super) target_height: c_ulong,
    pub(super) num_output_surfaces: c_ulong,
    pub(super) vid_lock: *mut c_void,
    pub(super) target_rect: [i16; 4],
    pub(super) reserved2: [c_ulong; 5],
}

/// `CUVIDPROCPARAMS`.
#[repr(C)]
pub(super) struct ProcParams {
    pub(super) progressive_frame: c_int,
    pub(super) second_field: c_int,
    pub(super) top_field_first: c_int,
    pub(super) unpaired_field: c_int,
    pub(super) reserved_flags: c_uint,
    pub(super) reserved_zero: c_uint,
    pub(super) raw_input_dptr: u64,
    pub(super) raw_input_pitch: c_uint,
    pub(super) raw_input_format: c_uint,
    pub(super) raw_output_dptr: u64,
    pub(super) raw_output_pitch: c_uint,
    pub(super) reserved1: c_uint,
    pub(super) output_stream: *mut c_void,
    pub(super) reserved: [c_uint; 46],
    pub(super) reserved2: [*mut c_void; 2],
}

pub(super) const CREATE_PREFER_CUVID: c_ulong = 0x04;
pub(super) const SURFACE_NV12: c_uint = 0;
pub(super) const SURFACE_P016: c_uint = 1;
pub(super) const CHROMA_420: c_uint = 1;

/// `CUVIDDECODECAPS` (Video Codec SDK 12/13 layout).
#[repr(C)]
#[derive(Default)]
pub struct DecodeCaps {
    pub(super) codec_type: c_uint,
    pub(super) chroma_format: c_uint,
    pub(super) bit_depth_minus8: c_uint,
    pub(super) reserved1: [c_uint; 3],
    pub(super) is_supported: u8,
    pub num_nvdecs: u8,
    pub(super) output_format_mask: u16,
    pub max_width: c_uint,
    pub max_height: c_uint,
    pub(super) max_mb_count: c_uint,
    pub min_width: u16,
    pub min_height: u16,
    pub(super) is_histogram_supported: u8,
    pub(super) counter_bit_depth: u8,
    pub(super) max_histogram_bins: u16,
    pub(super) reserved3: [c_uint; 10],
}

/// The entry points of `libnvcuvid.so.1` videoforge uses.
pub(super) struct Lib {
    pub(super) _lib: libloading::Library,
    pub(super) create_parser: unsafe extern "C" fn(*mut Handle, *mut ParserParams) -> c_int,
    pub(super) parse: unsafe extern "C" fn(Handle, *mut SourcePacket) -> c_int,
    pub(super) destroy_parser: unsafe extern "C" fn(Handle) -> c_int,
    pub(super) create_decoder: unsafe extern "C" fn(*mut Handle, *mut CreateInfo) -> c_int,
    pub(super) decode_picture: unsafe extern "C" fn(Handle, *mut c_void) -> c_int,
    pub(super) map: unsafe extern "C" fn(Handle, c_int, *mut u64, *mut c_uint, *mut ProcParams) -> c_int,
    pub(super) unmap: unsafe extern "C" fn(Handle, u64) -> c_int,
    pub(super) destroy_decoder: unsafe extern "C" fn(Handle) -> c_int,
    pub(super) get_caps: unsafe extern "C" fn(*mut DecodeCaps) -> c_int,
}

pub(super) fn lib() -> Result<&'static Lib, NvdecError> {
    static LIB: OnceLock<Result<Lib, NvdecError>> = OnceLock::new();
    LIB.get_or_init(|| {
        // SAFETY: loading the NVIDIA driver's own library; its initialisers are benign.
        let lib = unsafe { libloading::Library::new("libnvcuvid.so.1") }
            .map_err(|e| NvdecError::Unavailable(format!("libnvcuvid.so.1 not loadable ({e})")))?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: each symbol has the signature of the field it fills (nvcuvid.h / cuviddec.h, SDK 9+).
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| NvdecError::Unavailable(format!("libnvcuvid.so.1 lacks {} ({e})", $name)))?
            };
        }
        Ok(Lib {
            create_parser: sym!("cuvidCreateVideoParser"),
            parse: sym!("cuvidParseVideoData"),
            destroy_parser: sym!("cuvidDestroyVideoParser"),
            create_decoder: sym!("cuvidCreateDecoder"),
            decode_picture: sym!("cuvidDecodePicture"),
            map: sym!("cuvidMapVideoFrame64"),
            unmap: sym!("cuvidUnmapVideoFrame64"),
            destroy_decoder: sym!("cuvidDestroyDecoder"),
            get_caps: sym!("cuvidGetDecoderCaps"),
            _lib: lib,
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Whether `libnvcuvid.so.1` loads with every entry point videoforge uses.
pub fn load() -> Result<(), NvdecError> {
    lib().map(|_| ())
}

/// NVDEC's limits for `codec` (a `cudaVideoCodec`), 4:2:0 at `bit_depth`; `None` where it does not decode it.
/// Needs the device's context current on this thread.
pub fn decoder_caps(codec: c_uint, bit_depth: u8) -> Result<Option<DecodeCaps>, NvdecError> {
    let lib = lib()?;
    let mut caps = DecodeCaps {
        codec_type: codec,
        chroma_format: CHROMA_420,
        bit_depth_minus8: c_uint::from(bit_depth.saturating_sub(8)),
        ..Default::default()
    };
    // SAFETY: a zero-initialised CUVIDDECODECAPS with its inputs set.
    let rc = unsafe { (lib.get_caps)(&mut caps) };
    Ok((rc == 0 && caps.is_supported != 0).then_some(caps))
}

/// `cudaVideoCodec` of an FFmpeg codec NVDEC can take from this demuxer (AV1 and the rest stay on the CPU).
pub(super) fn codec_id(codec: &str) -> Option<c_uint> {
    match codec {
        "h264" => Some(4),
        "hevc" => Some(8),
        "vp9" => Some(10),
        _ => None,
    }
}
