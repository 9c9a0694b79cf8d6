//! Which kernel runs each layer on an SM, checked against what the kernels can do (pure: no GPU), so a model the
//! kernels cannot run is refused at load with the layer named, and CI can check that every variant a shipped model
//! needs is one it compiles.

use crate::error::{unsupported, Result};
use crate::graph::{Cubic, Input, IoType, Network, Output};
use crate::kernels::{tile_for, Kernel, Tile};
use crate::pack::pad_cout;

/// One launch of the frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `head_conv` for layer 0.
    Head {
        /// The variant.
        kernel: Kernel,
    },
    /// `conv_mma` for a layer (the tail included).
    Conv {
        /// Index into `Network::layers`.
        layer: usize,
        /// The variant.
        kernel: Kernel,
    },
    /// `downscale_cubic` after the tail.
    Downscale {
        /// The variant.
        kernel: Kernel,
        /// The resize.
        cubic: Cubic,
        /// Clamp after it.
        clip: Option<(f32, f32)>,
    },
}

impl Step {
    /// The kernel it launches.
    pub fn kernel(&self) -> Kernel {
        match self {
            Step::Head { kernel } | Step::Conv { kernel, .. } | Step::Downscale { kernel, .. } => *kernel,
        }
    }
}

/// Plans a network for an SM with its table tile (or `tile` when given: the sweep).
pub fn plan(net: &Network, sm: u32, tile: Option<Tile>) -> Result<Vec<Step>> {
    let tile = tile.unwrap_or_else(|| tile_for(sm, net.is_dense()));
    let io_f16 = net.io == IoType::F16;
    let aligned = |off: usize, stride: usize| off % 8 == 0 && stride % 8 == 0;
    let mut steps = Vec::new();
    if net.layers.len() < 2 {
        return Err(crate::Error::Graph("fused-cuda needs at least two convs (a head and a tail)".into()));
    }
    for (i, l) in net.layers.iter().enumerate() {
        let refuse = |why: String| unsupported(&l.name, "Conv", why);
        if i == 0 {
            let Output::Act(s) = l.output else { unreachable!("the matcher puts the tail last") };
            if l.k != 3 || l.cout % 8 != 0 || !l.residuals.is_empty() {
                return Err(refuse(format!(
                    "the fused head needs a 3x3 conv to a multiple of 8 channels without residuals (has {}x{} to {})",
                    l.k, l.k, l.cout
                )));
            }
            if !aligned(s.offset, net.buffers[s.buffer].channels) {
                return Err(refuse("the head's output slice is not 8-channel aligned".into()));
            }
            steps.push(Step::Head { kernel: Kernel::Head { io_f16, mma: tile.tc_head && l.cout <= 64 } });
            continue;
        }
        let Input::Act { slice, upsample } = l.input else {
            return Err(refuse("only the first conv may read the image".into()));
        };
        if !upsample.is_power_of_two() {
            return Err(refuse(format!("nearest upsampling by {upsample} (the kernels take powers of two)")));
        }
        if !aligned(slice.offset, net.buffers[slice.buffer].channels) {
            return Err(refuse("its input slice is not 8-channel aligned".into()));
        }
        for r in l.residuals.iter().filter_map(|r| r.add) {
            if r.offset % 2 != 0 || net.buffers[r.buffer].channels % 2 != 0 {
                return Err(refuse("a residual slice is not 2-channel aligned".into()));
            }
        }
        let tail = matches!(l.output, Output::Image(_));
        if let Output::Act(s) = l.output {
            if l.cout % 8 != 0 || !aligned(s.offset, net.buffers[s.buffer].channels) {
                return Err(refuse(format!("{} output channels (the kernels store multiples of 8)", l.cout)));
            }
        }
        let kernel = Kernel::for_layer(sm, tile, l.cin as u32, pad_cout(l.cout) as u32, l.k as u32, tail, io_f16)
            .ok_or_else(|| refuse(format!("{} input channels (the tensor-core conv takes multiples of 16)", l.cin)))?;
        steps.push(Step::Conv { layer: i, kernel });
        if let Output::Image(t) = &l.output {
            if let Some(c) = t.downscale {
                steps.push(Step::Downscale { kernel: Kernel::Downscale { io_f16 }, cubic: c, clip: t.clip_after });
            }
        }
    }
    Ok(steps)
}
