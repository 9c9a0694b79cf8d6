//! NVDEC: hardware decoding through `libnvcuvid`, loaded at run time. [`ffi`] holds the driver interface,
//! [`decoder`] one decoder per stream, [`frame`] the pictures it hands out, [`fields`] which map gives which
//! deinterlaced field and when. libavformat demuxes and `crate::video::DecoderFeed` turns H.264/HEVC packets into
//! the Annex B form the driver's parser reads.

mod decoder;
mod error;
mod ffi;
mod fields;
mod frame;

pub use decoder::NvDecoder;
pub use error::NvdecError;
pub use ffi::{decoder_caps, load, DecodeCaps};
pub use frame::DeviceFrame;
