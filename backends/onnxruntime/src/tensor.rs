//! Tensor helpers shared by the host-buffer and device-buffer paths.

use half::f16;
use videoforge_backend_abi::*;

/// The name of an ABI element type, for messages.
pub(crate) fn dtype_name(d: VfDType) -> &'static str {
    if d == VF_DTYPE_F16 {
        "f16"
    } else {
        "f32"
    }
}

/// Number of elements of a packed NCHW tensor.
fn len(t: &VfTensor) -> usize {
    t.n as usize * t.c as usize * t.h as usize * t.w as usize
}

/// Reads a packed host tensor as f32.
pub(crate) fn host_to_f32(t: &VfTensor) -> Result<Vec<f32>, PluginFailure> {
    // SAFETY: the host guarantees `data` holds `len` elements of `dtype`.
    unsafe {
        Ok(match t.dtype {
            VF_DTYPE_F32 => std::slice::from_raw_parts(t.data as *const f32, len(t)).to_vec(),
            VF_DTYPE_F16 => {
                std::slice::from_raw_parts(t.data as *const f16, len(t)).iter().map(|x| x.to_f32()).collect()
            }
            d => return Err(crate::invalid(format!("input.dtype {d} is not a VF_DTYPE_* value"))),
        })
    }
}

/// Writes f32 values into a packed host tensor of its `dtype`.
pub(crate) fn f32_to_host(out: &[f32], t: &VfTensor) -> Result<(), PluginFailure> {
    if out.len() != len(t) {
        return Err(PluginFailure::new(
            VF_STATUS_RUNTIME,
            format!("the run gave {} values for an output of {}", out.len(), len(t)),
        ));
    }
    // SAFETY: the host guarantees `data` has room for `len(t)` elements of `dtype`.
    unsafe {
        match t.dtype {
            VF_DTYPE_F32 => std::slice::from_raw_parts_mut(t.data as *mut f32, len(t)).copy_from_slice(out),
            VF_DTYPE_F16 => {
                let dst = std::slice::from_raw_parts_mut(t.data as *mut f16, len(t));
                for (d, s) in dst.iter_mut().zip(out) {
                    *d = f16::from_f32(*s);
                }
            }
            d => return Err(crate::invalid(format!("output.dtype {d} is not a VF_DTYPE_* value"))),
        }
    }
    Ok(())
}
