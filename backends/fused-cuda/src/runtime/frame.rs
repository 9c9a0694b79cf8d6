//! Everything one input size needs: activation buffers, the tail's intermediate for a final resize, host staging,
//! and the frame's launches captured into one CUDA graph.

use super::args::{ConvArgs, DownArgs, HeadArgs};
use super::driver::{self, DeviceBuffer, Graph, StreamRef};
use super::plan::Step;
use super::program::Program;
use crate::error::Result;
use crate::graph::{BaseMode, Input, Network, Output, ShuffleMode};

pub(crate) struct Frame {
    pub graph: Graph,
    bufs: Vec<DeviceBuffer>,
    /// The TMA descriptors of the steps that copy their input with TMA, and each step's descriptor address (0:
    /// none).
    tmaps: (Option<DeviceBuffer>, Vec<u64>),
    inter: Option<DeviceBuffer>,
    h: usize,
    w: usize,
    host_in: Option<DeviceBuffer>,
    host_out: Option<DeviceBuffer>,
}

impl Frame {
    /// Allocates the buffers for `h × w` and captures the frame.
    pub fn new(e: &Program, h: usize, w: usize) -> Result<Frame> {
        let net = &e.net;
        let bufs = net
            .buffers
            .iter()
            .map(|b| DeviceBuffer::new(h * b.factor * w * b.factor * b.channels * 2))
            .collect::<Result<Vec<_>>>()?;
        let (ph, pw) = intermediate_size(net, h, w);
        let inter = match net.tail().and_then(|t| t.downscale) {
            Some(_) => Some(DeviceBuffer::new(3 * ph * pw * 2)?),
            None => None,
        };
        let tmaps = tensor_maps(e, &bufs, h, w)?;
        let stream = e.own.handle();
        let graph = Graph::capture(stream, || launch_steps(e, &bufs, &tmaps.1, inter.as_ref(), h, w, stream, None))?;
        Ok(Frame { graph, bufs, tmaps, inter, h, w, host_in: None, host_out: None })
    }

    /// Each step of the frame captured on its own (over the same buffers and IO table), to time the steps apart.
    pub fn step_graphs(&self, e: &Program) -> Result<Vec<Graph>> {
        let stream = e.own.handle();
        (0..e.steps.len())
            .map(|i| {
                Graph::capture(stream, || {
                    launch_steps(e, &self.bufs, &self.tmaps.1, self.inter.as_ref(), self.h, self.w, stream, Some(i))
                })
            })
            .collect()
    }

    /// A device buffer of at least `bytes` for a host input.
    pub fn stage_in(&mut self, bytes: usize) -> Result<u64> {
        Self::staged(&mut self.host_in, bytes)
    }

    /// A device buffer of at least `bytes` for a host output.
    pub fn stage_out(&mut self, bytes: usize) -> Result<u64> {
        Self::staged(&mut self.host_out, bytes)
    }

    fn staged(slot: &mut Option<DeviceBuffer>, bytes: usize) -> Result<u64> {
        if slot.as_ref().is_none_or(|b| b.bytes < bytes) {
            *slot = Some(DeviceBuffer::new(bytes)?);
        }
        Ok(slot.as_ref().map(|b| b.ptr).unwrap_or(0))
    }
}

/// The TMA descriptors of the conv steps whose kernel copies its input with TMA (`Kernel::tma_box`) and reads it
/// at its own size (TMA cannot upsample), uploaded together, and each step's descriptor address (0: none).
fn tensor_maps(e: &Program, bufs: &[DeviceBuffer], h: usize, w: usize) -> Result<(Option<DeviceBuffer>, Vec<u64>)> {
    let net = &e.net;
    let mut maps = Vec::new();
    let mut at = Vec::new();
    for s in &e.steps {
        let Step::Conv { layer, kernel } = s else {
            at.push(None);
            continue;
        };
        let l = &net.layers[*layer];
        match (kernel.tma_box(), &l.input) {
            // The plan refuses input slices not 8-channel aligned, so start and pixel stride are 16-byte aligned
            // as TMA needs.
            (Some(boxd), Input::Act { slice, upsample: 1 }) => {
                let stride = net.buffers[slice.buffer].channels;
                let ptr = bufs[slice.buffer].ptr + (slice.offset * 2) as u64;
                maps.push(driver::nhwc_tensor_map(ptr, l.cin, w * l.factor, h * l.factor, stride, boxd)?);
                at.push(Some(maps.len() - 1));
            }
            _ => at.push(None),
        }
    }
    if maps.is_empty() {
        return Ok((None, vec![0; at.len()]));
    }
    // 128 bytes each, from a 256-aligned allocation: every descriptor 128-aligned.
    let buf = DeviceBuffer::from_slice(&maps)?;
    let ptrs = at.iter().map(|i| i.map_or(0, |i| buf.ptr + 128 * i as u64)).collect();
    Ok((Some(buf), ptrs))
}

/// Queues the frame's launches on `stream` (captured into its graph), or only step `only`'s (the per-step timing).
#[allow(clippy::too_many_arguments)]
fn launch_steps(
    e: &Program,
    bufs: &[DeviceBuffer],
    tmaps: &[u64],
    inter: Option<&DeviceBuffer>,
    h: usize,
    w: usize,
    stream: StreamRef,
    only: Option<usize>,
) -> Result<()> {
    let net = &e.net;
    let io = e.io_table.ptr;
    let (ph, pw) = intermediate_size(net, h, w);
    for (i, (s, wts)) in e.steps.iter().zip(&e.weights).enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let k = s.kernel();
        let f = &e.funcs[&k];
        // The frame's first kernel follows the IO table's update (and the last frame) in plain stream order.
        let dependent = e.pdl && i > 0 && only.is_none();
        match s {
            Step::Head { .. } => {
                let l = &net.layers[0];
                let Output::Act(o) = l.output else { unreachable!("head writes a slice") };
                let wts = wts.as_ref().expect("head weights");
                let a = HeadArgs {
                    io,
                    wt: wts.wt.ptr,
                    bias: wts.bias.ptr,
                    slope: wts.slope.ptr,
                    out: bufs[o.buffer].ptr,
                    h: h as i32,
                    w: w as i32,
                    cout: l.cout as i32,
                    out_stride: net.buffers[o.buffer].channels as i32,
                    out_off: o.offset as i32,
                };
                f.launch(k.grid(h, w, 0, 0), k.threads(), k.smem(l.cout as u32), stream, &a, dependent)?;
            }
            Step::Conv { layer, kernel } => {
                let l = &net.layers[*layer];
                let wts = wts.as_ref().expect("conv weights");
                let (ch, cw) = (h * l.factor, w * l.factor);
                let Input::Act { slice, upsample } = l.input else { unreachable!("planned") };
                let mut a = ConvArgs {
                    input: bufs[slice.buffer].ptr,
                    wt: wts.wt.ptr,
                    bias: wts.bias.ptr,
                    slope: wts.slope.ptr,
                    io,
                    h: ch as i32,
                    w: cw as i32,
                    up_shift: upsample.trailing_zeros() as i32,
                    cin: l.cin as i32,
                    cout: l.cout as i32,
                    cout_pad: crate::pack::pad_cout(l.cout) as i32,
                    in_stride: net.buffers[slice.buffer].channels as i32,
                    in_off: slice.offset as i32,
                    nres: l.residuals.len() as i32,
                    tmap: tmaps[i],
                    ..ConvArgs::default()
                };
                if let Some(r) = l.residuals.first() {
                    a.scale0 = r.scale;
                    if let Some(s) = r.add {
                        (a.res0, a.res0_stride, a.res0_off) =
                            (bufs[s.buffer].ptr, net.buffers[s.buffer].channels as i32, s.offset as i32);
                    }
                }
                if let Some(r) = l.residuals.get(1) {
                    a.scale1 = r.scale;
                    if let Some(s) = r.add {
                        (a.res1, a.res1_stride, a.res1_off) =
                            (bufs[s.buffer].ptr, net.buffers[s.buffer].channels as i32, s.offset as i32);
                    }
                }
                match &l.output {
                    Output::Act(o) => {
                        a.out = bufs[o.buffer].ptr;
                        a.out_stride = net.buffers[o.buffer].channels as i32;
                        a.out_off = o.offset as i32;
                    }
                    Output::Image(t) => {
                        a.shuffle = t.shuffle as i32;
                        a.crd = (t.mode == ShuffleMode::Crd) as i32;
                        a.base = t.base.is_some() as i32;
                        a.bilinear = (t.base == Some(BaseMode::Bilinear)) as i32;
                        a.base_factor = (l.factor * t.shuffle) as i32;
                        a.img_h = h as i32;
                        a.img_w = w as i32;
                        if let Some((lo, hi)) = t.clip {
                            (a.clip, a.clip_lo, a.clip_hi) = (1, lo, hi);
                        }
                        if let Some(i) = &inter {
                            (a.out, a.out_f16, a.out_pitch) = (i.ptr, 1, pw as i64);
                        }
                    }
                }
                let grid = kernel.grid(ch, cw, a.cout_pad as usize, e.resident[kernel]);
                f.launch(grid, k.threads(), k.smem(0), stream, &a, dependent)?;
            }
            Step::Downscale { cubic, clip, .. } => {
                let (oh, ow) = net.output_size(h, w);
                let src = inter.as_ref().expect("downscale has an intermediate");
                let mut a = DownArgs {
                    src: src.ptr,
                    io,
                    src_h: ph as i32,
                    src_w: pw as i32,
                    dst_h: oh as i32,
                    dst_w: ow as i32,
                    scale: cubic.scale,
                    coeff_a: cubic.coeff_a,
                    src_pitch: pw as i64,
                    ..DownArgs::default()
                };
                if let Some((lo, hi)) = clip {
                    (a.clip, a.clip_lo, a.clip_hi) = (1, *lo, *hi);
                }
                f.launch(k.grid(oh, ow, 0, 0), k.threads(), 0, stream, &a, dependent)?;
            }
        }
    }
    Ok(())
}

/// Size of the tail's planar output before a final resize: the last conv's size times its pixel shuffle.
fn intermediate_size(net: &Network, h: usize, w: usize) -> (usize, usize) {
    let last = net.layers.last().expect("a planned network has layers");
    let tail = net.tail().expect("a planned network has a tail");
    (h * last.factor * tail.shuffle, w * last.factor * tail.shuffle)
}
