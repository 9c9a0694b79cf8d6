//! Reading an ONNX file: the protobuf message types (generated at build time from the vendored
//! `proto/onnx.proto`), decoding a file, and turning tensors into plain numbers.

pub mod proto;
mod tensor;

pub use tensor::{tensor_f32, tensor_i64, TensorError};

use std::path::Path;

use prost::Message;

use crate::error::{Error, Result};

/// Reads and decodes an ONNX model file. Weights stored in external files are refused.
pub fn load(path: &Path) -> Result<proto::ModelProto> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    decode(&bytes).map_err(|e| match e {
        Error::Decode { source, .. } => Error::Decode { path: path.to_path_buf(), source },
        other => other,
    })
}

/// Decodes an ONNX model from bytes (see [`load`]).
pub fn decode(bytes: &[u8]) -> Result<proto::ModelProto> {
    let model = proto::ModelProto::decode(bytes).map_err(|source| Error::Decode { path: "<bytes>".into(), source })?;
    if let Some(g) = &model.graph {
        for t in &g.initializer {
            if t.data_location == Some(proto::tensor_proto::DataLocation::External as i32) {
                return Err(Error::ExternalData { tensor: t.name().to_string() });
            }
        }
    }
    Ok(model)
}

/// The element type of a graph input or output, if it is a tensor.
pub fn value_elem_type(v: &proto::ValueInfoProto) -> Option<i32> {
    match v.r#type.as_ref()?.value.as_ref()? {
        proto::type_proto::Value::TensorType(t) => t.elem_type,
        _ => None,
    }
}
