//! NVDEC: hardware decoding through `libnvcuvid`, loaded at run time. [`ffi`] holds the driver interface,
//! [`decoder`] one decoder per stream, [`fields`] the timing of deinterlaced fields. libavformat demuxes and `crate::video::DecoderFeed` turns H.264/HEVC
//! packets into the Annex B form the driver's parser reads.

mod decoder;
mod error;
mod ffi;
mod fields;

pub use decoder::{DeviceFrame, NvDecoder};
pub use error::NvdecError;
pub use ffi::{decoder_caps, load, DecodeCaps};
