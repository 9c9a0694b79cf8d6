//! Running a matched network on a CUDA device: kernels loaded from CUBIN, weights uploaded once, activation
//! buffers allocated once per input size, and the whole frame captured into a CUDA graph per input size and
//! replayed on the host's stream. The frame's input and output addresses live in a small device table that is
//! rewritten in stream order before each replay, so one graph serves every buffer the host passes.

pub mod args;
pub mod driver;
mod frame;
pub mod plan;
mod program;

use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::graph::{IoType, Network};
use crate::kernels::{Kernel, Tile};
use crate::nvrtc::Nvrtc;
use driver::{Context, StreamRef};
use frame::Frame;
use program::Program;

/// Input sizes whose buffers and graphs are kept at once.
const MAX_SIZES: usize = 6;

/// Where a frame's planar RGB tensor is.
#[derive(Debug, Clone, Copy)]
pub enum Memory<'a> {
    /// Host bytes, packed.
    Host(&'a [u8]),
    /// Device memory with a row pitch in bytes.
    Device {
        /// Address.
        ptr: u64,
        /// Row pitch in bytes (0: packed).
        pitch: usize,
    },
}

/// Host bytes an output is written to, or device memory.
pub enum MemoryMut<'a> {
    /// Host bytes, packed.
    Host(&'a mut [u8]),
    /// Device memory with a row pitch in bytes.
    Device {
        /// Address.
        ptr: u64,
        /// Row pitch in bytes (0: packed).
        pitch: usize,
    },
}

/// A network ready to run on one device.
pub struct Engine {
    // Dropped first: graphs and buffers of each input size.
    frames: HashMap<(usize, usize), Frame>,
    /// Input sizes in the order their frames were made (oldest first).
    frame_order: Vec<(usize, usize)>,
    /// The compiled kernels and uploaded weights (dropped after the frames that use them).
    prog: Program,
    last_stream: Option<StreamRef>,
    /// Whether 64-bit stream memory operations work here (else the table goes by a small async copy).
    memops: bool,
    // Dropped last: everything above needs the context.
    pub(crate) ctx: Context,
}

impl Engine {
    /// Plans, compiles (through the cache in `cache_dir`) and uploads a network for CUDA device `device`.
    /// `tile` overrides the SM's table configuration (the sweep).
    pub fn new(
        net: Network,
        device: u32,
        nvrtc: &Nvrtc,
        cache_dir: Option<PathBuf>,
        tile: Option<Tile>,
    ) -> Result<Engine> {
        let ctx = Context::primary(device)?;
        let prog = Program::new(net, &ctx, nvrtc, cache_dir, tile)?;
        Ok(Engine { frames: HashMap::new(), frame_order: Vec::new(), prog, last_stream: None, memops: true, ctx })
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.prog.net
    }

    /// The device's SM (e.g. 90).
    pub fn sm(&self) -> u32 {
        self.ctx.sm
    }

    /// Launches each kernel after a frame's first as a programmatic dependent of the one before (sm_90 only;
    /// elsewhere nothing changes). The frames already captured are dropped once the work queued on them is done,
    /// to be captured again.
    pub fn set_dependent_launch(&mut self, on: bool) -> Result<()> {
        if let Some(s) = self.last_stream {
            driver::sync(s)?;
        }
        self.prog.pdl = on && self.ctx.sm >= 90;
        self.frames.clear();
        self.frame_order.clear();
        Ok(())
    }

    /// Bytes per IO element.
    pub fn io_bytes(&self) -> usize {
        match self.prog.net.io {
            IoType::F32 => 4,
            IoType::F16 => 2,
        }
    }

    /// Runs `n` frames of `h × w`: planar RGB in the model's IO type. Device memory: queued on `stream` (null: the
    /// legacy default stream) without waiting. Host memory: staged through device buffers, and the call waits.
    pub fn run(
        &mut self,
        n: usize,
        h: usize,
        w: usize,
        input: Memory,
        mut output: MemoryMut,
        stream: StreamRef,
    ) -> Result<()> {
        self.ctx.make_current()?;
        let eb = self.io_bytes();
        let (oh, ow) = self.prog.net.output_size(h, w);
        let in_img = 3 * h * w * eb;
        let out_img = 3 * oh * ow * eb;
        let host_side = matches!(input, Memory::Host(_)) || matches!(output, MemoryMut::Host(_));
        // Host memory goes through our own stream, waited for before returning (after the host's stream, which may
        // still be producing a device-side input). Device memory stays on the host's stream, the legacy default
        // stream included, so our work is ordered after whatever made the input.
        let stream = if host_side {
            if !stream.is_null() {
                driver::sync(stream)?;
            }
            self.prog.own.handle()
        } else {
            stream
        };
        // The IO table is shared by every replay: work queued on another stream must finish before we rewrite it.
        if let Some(prev) = self.last_stream.filter(|&p| p != stream) {
            driver::sync(prev)?;
        }
        self.last_stream = Some(stream);
        if !self.frames.contains_key(&(h, w)) {
            // A tiling host sends a few sizes (full tiles, edge tiles); anything beyond that frees the oldest size.
            if self.frame_order.len() >= MAX_SIZES {
                driver::sync(stream)?;
                let old = self.frame_order.remove(0);
                self.frames.remove(&old);
            }
            let f = Frame::new(&self.prog, h, w)?;
            self.frames.insert((h, w), f);
            self.frame_order.push((h, w));
        }
        let frame = self.frames.get_mut(&(h, w)).ok_or_else(|| Error::BadTensor("frame missing".into()))?;
        let pitch = |p: usize, width: usize| -> Result<usize> {
            match p {
                0 => Ok(width),
                p if p % eb == 0 && p >= width * eb => Ok(p / eb),
                p => Err(Error::BadTensor(format!("row pitch {p} bytes does not fit {width} elements of {eb} bytes"))),
            }
        };
        for i in 0..n {
            let (in_ptr, in_pitch) = match input {
                Memory::Host(b) => {
                    let src = b.get(i * in_img..(i + 1) * in_img).ok_or_else(|| {
                        Error::BadTensor(format!("input holds {} bytes, expected {}", b.len(), n * in_img))
                    })?;
                    let staged = frame.stage_in(in_img)?;
                    driver::upload(stream, staged, src)?;
                    (staged, w)
                }
                Memory::Device { ptr, pitch: p } => {
                    let p = pitch(p, w)?;
                    (ptr + (i * 3 * h * p * eb) as u64, p)
                }
            };
            let (out_ptr, out_pitch) = match &output {
                MemoryMut::Host(_) => (frame.stage_out(out_img)?, ow),
                MemoryMut::Device { ptr, pitch: p } => {
                    let p = pitch(*p, ow)?;
                    (ptr + (i * 3 * oh * p * eb) as u64, p)
                }
            };
            let table = args::IoTable {
                input: in_ptr,
                output: out_ptr,
                in_pitch: in_pitch as i64,
                out_pitch: out_pitch as i64,
            };
            write_table(&mut self.memops, self.prog.io_table.ptr, stream, &table)?;
            frame.graph.launch(stream)?;
            if let MemoryMut::Host(dst) = &mut output {
                let len = dst.len();
                let d = dst
                    .get_mut(i * out_img..(i + 1) * out_img)
                    .ok_or_else(|| Error::BadTensor(format!("output holds {len} bytes, expected {}", n * out_img)))?;
                driver::download(stream, d, out_ptr)?;
            }
        }
        if stream == self.prog.own.handle() {
            driver::sync(stream)?;
        }
        Ok(())
    }
}

impl Engine {
    /// Where one frame's time goes: runs one frame of `h × w` (device memory, on `stream`), then replays each
    /// step on its own `reps` times and returns its kernel and mean milliseconds, in frame order. For the sweep:
    /// per-kernel times at the clocks the benchmark runs at (`ncu` locks them lower).
    pub fn step_times(
        &mut self,
        h: usize,
        w: usize,
        input: Memory,
        output: MemoryMut,
        stream: StreamRef,
        reps: usize,
    ) -> Result<Vec<(Kernel, f32)>> {
        self.run(1, h, w, input, output, stream)?;
        driver::sync(stream)?;
        let frame = self.frames.get(&(h, w)).ok_or_else(|| Error::BadTensor("frame missing".into()))?;
        let graphs = frame.step_graphs(&self.prog)?;
        let mut times = Vec::with_capacity(graphs.len());
        for (g, s) in graphs.iter().zip(&self.prog.steps) {
            g.launch(stream)?;
            let ms = driver::time_ms(stream, || {
                for _ in 0..reps.max(1) {
                    g.launch(stream)?;
                }
                Ok(())
            })?;
            times.push((s.kernel(), ms / reps.max(1) as f32));
        }
        Ok(times)
    }
}

/// Rewrites the IO table in stream order: four 64-bit stream writes (no host synchronisation), or, where the
/// device refuses stream memory operations, one 32-byte copy (the driver stages pageable memory before returning).
fn write_table(memops: &mut bool, dst: u64, stream: StreamRef, t: &args::IoTable) -> Result<()> {
    if *memops {
        let vals = [t.input, t.output, t.in_pitch as u64, t.out_pitch as u64];
        let r = vals.iter().enumerate().try_for_each(|(i, &v)| driver::write_u64(stream, dst + 8 * i as u64, v));
        match r {
            Ok(()) => return Ok(()),
            Err(_) => *memops = false,
        }
    }
    let bytes: Vec<u8> =
        [t.input, t.output, t.in_pitch as u64, t.out_pitch as u64].iter().flat_map(|v| v.to_le_bytes()).collect();
    driver::upload(stream, dst, &bytes)
}

impl Drop for Engine {
    fn drop(&mut self) {
        // The driver frees into the current context: make ours current on whatever thread drops the engine.
        let _ = self.ctx.make_current();
        if let Some(s) = self.last_stream {
            let _ = driver::sync(s);
        }
        self.frames.clear();
    }
}
