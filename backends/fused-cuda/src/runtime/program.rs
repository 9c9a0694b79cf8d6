//! What a network becomes on one device before any input size is known: its steps, the kernels compiled for the
//! device's SM (through the disk cache), the weights uploaded once, the frame IO table and the engine's own stream.

use std::collections::HashMap;
use std::path::PathBuf;

use super::args;
use super::driver::{Context, DeviceBuffer, Function, Stream};
use super::plan::{self, Step};
use crate::cache::KernelCache;
use crate::error::Result;
use crate::graph::Network;
use crate::kernels::{Kernel, Tile};
use crate::nvrtc::Nvrtc;
use crate::pack::{kernel_weights, pack_conv, pack_head};

/// Device-resident weights of one step.
pub(crate) struct StepWeights {
    pub(crate) wt: DeviceBuffer,
    pub(crate) bias: DeviceBuffer,
    pub(crate) slope: DeviceBuffer,
}

/// A network's kernels and weights on one device.
pub(crate) struct Program {
    pub(crate) net: Network,
    pub(crate) steps: Vec<Step>,
    pub(crate) weights: Vec<Option<StepWeights>>,
    pub(crate) funcs: HashMap<Kernel, Function>,
    /// CTAs of each kernel the device holds at once (the persistent halo kernel's grid).
    pub(crate) resident: HashMap<Kernel, u32>,
    pub(crate) io_table: DeviceBuffer,
    pub(crate) own: Stream,
    /// Each kernel after the first launches as a programmatic dependent of the one before (sm_90, networks without
    /// dense blocks): its CTAs load their weights while the previous kernel's last CTAs finish
    /// (`Engine::set_dependent_launch`).
    pub(crate) pdl: bool,
}

impl Program {
    /// Plans, compiles and uploads `net` on the current context `ctx`.
    pub(crate) fn new(
        net: Network,
        ctx: &Context,
        nvrtc: &Nvrtc,
        cache_dir: Option<PathBuf>,
        tile: Option<Tile>,
    ) -> Result<Program> {
        let steps = plan::plan(&net, ctx.sm, tile)?;
        let cache = KernelCache::new(nvrtc, cache_dir);
        let mut funcs = HashMap::new();
        let max_cout = net.layers.iter().map(|l| l.cout).max().unwrap_or(0) as u32;
        for s in &steps {
            let k = s.kernel();
            if let std::collections::hash_map::Entry::Vacant(e) = funcs.entry(k) {
                let cubin = cache.cubin(&k, ctx.sm, false)?;
                e.insert(Function::load(&cubin, k.entry(), k.smem(max_cout))?);
            }
        }
        let mut resident = HashMap::new();
        for (k, f) in &funcs {
            resident.insert(*k, f.max_active_per_sm(k.threads(), k.smem(max_cout))? * ctx.sms);
        }
        let mut weights = Vec::new();
        for s in &steps {
            weights.push(match s {
                Step::Head { .. } => {
                    let p = pack_head(&net.layers[0]);
                    Some(StepWeights {
                        wt: DeviceBuffer::from_slice(&p.weight)?,
                        bias: DeviceBuffer::from_slice(&p.bias)?,
                        slope: DeviceBuffer::from_slice(&p.slope)?,
                    })
                }
                Step::Conv { layer, .. } => {
                    let p = pack_conv(&net.layers[*layer]);
                    Some(StepWeights {
                        wt: DeviceBuffer::from_slice(&kernel_weights(&s.kernel(), &p))?,
                        bias: DeviceBuffer::from_slice(&p.bias)?,
                        slope: DeviceBuffer::from_slice(&p.slope)?,
                    })
                }
                Step::Downscale { .. } => None,
            });
        }
        let io_table = DeviceBuffer::new(std::mem::size_of::<args::IoTable>())?;
        let own = Stream::new()?;
        // On the H200, the same bytes either way: x2 at 540p 602 -> 646 fps with it; realesrgan-x4plus on its own
        // table row (one CTA an SM) 37.6 -> 37.0 fps at 270p, so dense networks launch plainly (bench/RESULTS.md).
        let pdl = ctx.sm >= 90 && !net.is_dense();
        Ok(Program { net, steps, weights, funcs, resident, io_table, own, pdl })
    }
}
