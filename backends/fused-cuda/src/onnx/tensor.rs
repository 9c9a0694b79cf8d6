//! Initializer and constant tensors as plain `f32` / `i64` vectors, whatever way the file stores them.

use half::f16;

use super::proto::tensor_proto::DataType;
use super::proto::TensorProto;

/// Why a tensor could not be read (its name and what is wrong), for the caller to wrap with the node's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TensorError(String);

fn raw_chunks<const N: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    raw.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

/// Number of elements the dims promise.
fn numel(t: &TensorProto) -> usize {
    t.dims.iter().map(|&d| d.max(0) as usize).product()
}

/// The values of a float tensor (FLOAT, FLOAT16 or DOUBLE) as `f32`.
pub fn tensor_f32(t: &TensorProto) -> Result<Vec<f32>, TensorError> {
    let raw = t.raw_data.as_deref().unwrap_or(&[]);
    let v: Vec<f32> = match DataType::try_from(t.data_type()).unwrap_or(DataType::Undefined) {
        DataType::Float if !raw.is_empty() => raw_chunks::<4>(raw).map(f32::from_le_bytes).collect(),
        DataType::Float => t.float_data.clone(),
        DataType::Float16 if !raw.is_empty() => {
            raw_chunks::<2>(raw).map(|b| f16::from_bits(u16::from_le_bytes(b)).to_f32()).collect()
        }
        DataType::Float16 => t.int32_data.iter().map(|&b| f16::from_bits(b as u16).to_f32()).collect(),
        DataType::Double if !raw.is_empty() => raw_chunks::<8>(raw).map(|b| f64::from_le_bytes(b) as f32).collect(),
        DataType::Double => t.double_data.iter().map(|&d| d as f32).collect(),
        other => {
            return Err(TensorError(format!(
                "tensor \"{}\" has element type {other:?}, expected a float type",
                t.name()
            )))
        }
    };
    if v.len() != numel(t) {
        return Err(TensorError(format!("tensor \"{}\" has {} values for dims {:?}", t.name(), v.len(), t.dims)));
    }
    Ok(v)
}

/// The values of an integer tensor (INT64 or INT32) as `i64`.
pub fn tensor_i64(t: &TensorProto) -> Result<Vec<i64>, TensorError> {
    let raw = t.raw_data.as_deref().unwrap_or(&[]);
    let v: Vec<i64> = match DataType::try_from(t.data_type()).unwrap_or(DataType::Undefined) {
        DataType::Int64 if !raw.is_empty() => raw_chunks::<8>(raw).map(i64::from_le_bytes).collect(),
        DataType::Int64 => t.int64_data.clone(),
        DataType::Int32 if !raw.is_empty() => raw_chunks::<4>(raw).map(|b| i32::from_le_bytes(b) as i64).collect(),
        DataType::Int32 => t.int32_data.iter().map(|&x| x as i64).collect(),
        other => {
            return Err(TensorError(format!(
                "tensor \"{}\" has element type {other:?}, expected an integer type",
                t.name()
            )))
        }
    };
    if v.len() != numel(t) {
        return Err(TensorError(format!("tensor \"{}\" has {} values for dims {:?}", t.name(), v.len(), t.dims)));
    }
    Ok(v)
}
