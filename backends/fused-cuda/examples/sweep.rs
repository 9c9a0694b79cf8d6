//! Times every conv tile configuration on the GPU and checks each against the CPU (a 64 -> 64 layer, and RRDB's
//! dense convs for the chunked wgmma tiles), then times the whole model and, per tile, where a 1080p frame (270p
//! for RRDB) goes (each step replayed alone): one device call gives the tables. `cargo run --release -p
//! videoforge-backend-fused-cuda --example sweep -- [MODEL.onnx] [--only TILE[,TILE...]] [--probe]` (default:
//! models/realesr-animevideov3-x2.onnx; `--only halo_bm64_w4x2` times that configuration alone, e.g. under `ncu`;
//! `--probe` times the dense conv without its loads). Prints markdown.

use std::path::{Path, PathBuf};

use half::f16;
use videoforge_backend_fused_cuda::cache::KernelCache;
use videoforge_backend_fused_cuda::graph::{self, Act, Input, Layer, Output, Slice};
use videoforge_backend_fused_cuda::kernels::variants::sweep_tiles;
use videoforge_backend_fused_cuda::kernels::{tile_for, Kernel, Tile};
use videoforge_backend_fused_cuda::nvrtc::Nvrtc;
use videoforge_backend_fused_cuda::pack::{conv_packed_cpu, kernel_weights, pack_conv, PackedConv};
use videoforge_backend_fused_cuda::runtime::args::ConvArgs;
use videoforge_backend_fused_cuda::runtime::driver::{self, Context, DeviceBuffer, Function, Stream, StreamRef};
use videoforge_backend_fused_cuda::runtime::{Engine, Memory, MemoryMut};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const PEAK_TFLOPS: f64 = 750.0;
const SIZES: [(usize, usize); 2] = [(1080, 1920), (540, 960)];

fn seeded(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5) * scale
        })
        .collect()
}

fn layer(cin: usize, cout: usize) -> Layer {
    Layer {
        name: "sweep".into(),
        k: 3,
        cin,
        cout,
        weight: seeded(cout * cin * 9, 1, 0.1),
        bias: seeded(cout, 2, 0.2),
        act: Act::Prelu(seeded(cout, 3, 0.5)),
        residuals: vec![],
        input: Input::Act { slice: Slice { buffer: 0, offset: 0, channels: cin }, upsample: 1 },
        output: Output::Act(Slice { buffer: 1, offset: 0, channels: cout }),
        factor: 1,
    }
}

fn f16_bits(v: &[f32]) -> Vec<u16> {
    v.iter().map(|&x| f16::from_f32(x).to_bits()).collect()
}

struct Weights {
    wt: DeviceBuffer,
    bias: DeviceBuffer,
    slope: DeviceBuffer,
}

#[allow(clippy::too_many_arguments)]
fn args(w: &Weights, input: u64, out: u64, h: usize, wd: usize, cin: usize, cout: usize) -> ConvArgs {
    ConvArgs {
        input,
        wt: w.wt.ptr,
        bias: w.bias.ptr,
        slope: w.slope.ptr,
        out,
        h: h as i32,
        w: wd as i32,
        cin: cin as i32,
        cout: cout as i32,
        cout_pad: cout as i32,
        in_stride: cin as i32,
        out_stride: cout as i32,
        ..ConvArgs::default()
    }
}

fn launch(f: &Function, k: &Kernel, a: &ConvArgs, s: StreamRef, resident: u32) -> Res<()> {
    f.launch(k.grid(a.h as usize, a.w as usize, a.cout_pad as usize, resident), k.threads(), k.smem(0), s, a, false)?;
    Ok(())
}

/// A packed conv's weights on the device as kernel `k` reads them.
fn weights(k: &Kernel, p: &PackedConv) -> Res<Weights> {
    Ok(Weights {
        wt: DeviceBuffer::from_slice(&kernel_weights(k, p))?,
        bias: DeviceBuffer::from_slice(&p.bias)?,
        slope: DeviceBuffer::from_slice(&p.slope)?,
    })
}

/// Mean ms of 20 launches after 3 to warm up.
fn time_launches(f: &Function, k: &Kernel, a: &ConvArgs, s: StreamRef, resident: u32) -> Res<f32> {
    for _ in 0..3 {
        launch(f, k, a, s, resident)?;
    }
    let reps = 20;
    let ms = driver::time_ms(s, || {
        for _ in 0..reps {
            launch(f, k, a, s, resident).map_err(|e| videoforge_backend_fused_cuda::Error::BadTensor(e.to_string()))?;
        }
        Ok(())
    })?;
    Ok(ms / reps as f32)
}

/// `--probe`: the 192 -> 32 dense conv of each chunked tile with A from registers, timed as it is and with
/// `conv_wgmma_k.cu`'s PROBE 1 (no global -> shared copies) and 2 (no fragment loads either): what the MMAs alone
/// cost, and what each kind of load adds (the outputs are not checked: the probes compute garbage).
fn probe_table(nvrtc: &Nvrtc, ctx: &Context, s: StreamRef, tiles: &[Tile]) -> Res<()> {
    let (cin, cout, sm) = (192, 32, ctx.sm);
    let p = pack_conv(&layer(cin, cout));
    let sizes = [(540, 960), (270, 480)];
    println!("\n## Probes: RRDB dense conv {cin} -> {cout}, loads left out\n");
    println!("| tile | probe | 540p ms | % of 750 | 270p ms | % of 750 |\n|---|---|---|---|---|---|");
    for &t in tiles.iter().filter(|t| t.wgmma.is_some_and(|w| w.chunk > 0 && w.a_regs > 0)) {
        let Some(k) = Kernel::for_layer(sm, t, cin as u32, cout as u32, 3, false, false) else { continue };
        let w = weights(&k, &p)?;
        for (probe, what) in [(0, "none"), (1, "1: no global copies"), (2, "2: no copies, no ldmatrix")] {
            let src = format!("#define PROBE {probe}\n{}", k.source());
            let cubin = nvrtc.compile(&k.name(), sm, &src, &Nvrtc::options(sm, k.arch_specific()))?;
            let f = Function::load(&cubin, k.entry(), k.smem(0))?;
            let resident = f.max_active_per_sm(k.threads(), k.smem(0))? * ctx.sms;
            let mut row = format!("| {t} | {what} |");
            for (h, wd) in sizes {
                let x = DeviceBuffer::from_slice(&f16_bits(&seeded(h * wd * cin, 5, 2.0)))?;
                let y = DeviceBuffer::new(h * wd * cout * 2)?;
                let (a, _map) = tma_args(&k, args(&w, x.ptr, y.ptr, h, wd, cin, cout), cin)?;
                let ms = time_launches(&f, &k, &a, s, resident)?;
                let tflops = 2.0 * (h * wd * cin * cout * 9) as f64 / (ms as f64 * 1e-3) / 1e12;
                row += &format!(" {ms:.3} | {:.0}% |", 100.0 * tflops / PEAK_TFLOPS);
            }
            println!("{row}");
        }
    }
    Ok(())
}

/// Max abs error of the kernel against the CPU conv that reads the packed layout, on a small odd-sized input.
#[allow(clippy::too_many_arguments)]
fn check(f: &Function, k: &Kernel, w: &Weights, s: StreamRef, resident: u32, cin: usize, cout: usize) -> Res<f32> {
    let (h, wd) = (29, 37);
    let l = layer(cin, cout);
    let p = pack_conv(&l);
    let x: Vec<f32> = seeded(h * wd * cin, 9, 2.0).iter().map(|&v| f16::from_f32(v).to_f32()).collect();
    let din = DeviceBuffer::from_slice(&f16_bits(&x))?;
    let dout = DeviceBuffer::new(h * wd * cout * 2)?;
    let want = conv_packed_cpu(&p, &x, h, wd);
    // A kernel that copies its input with TMA is checked that way and with cp.async (its path for upsampled
    // inputs); the larger error counts.
    let (with_tma, _map) = tma_args(k, args(w, din.ptr, dout.ptr, h, wd, cin, cout), cin)?;
    let mut err = 0.0f32;
    for a in [with_tma, ConvArgs { tmap: 0, ..with_tma }] {
        driver::upload(s, dout.ptr, &vec![0xFFu8; h * wd * cout * 2])?;
        launch(f, k, &a, s, resident)?;
        let mut got = vec![0u8; h * wd * cout * 2];
        driver::download(s, &mut got, dout.ptr)?;
        err = got
            .chunks_exact(2)
            .zip(&want)
            .map(|(b, &r)| (f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32() - r).abs())
            .fold(err, f32::max);
    }
    Ok(err)
}

/// `a` with the TMA descriptor of its input (`a.input`: `cin` channels, `a.w` x `a.h`) when `k` copies its input
/// with TMA, and the buffer holding it (kept alive while `a` is used).
fn tma_args(k: &Kernel, mut a: ConvArgs, cin: usize) -> Res<(ConvArgs, Option<DeviceBuffer>)> {
    let Some(boxd) = k.tma_box() else { return Ok((a, None)) };
    let map = driver::nhwc_tensor_map(a.input, cin, a.w as usize, a.h as usize, cin, boxd)?;
    let buf = DeviceBuffer::from_slice(&[map])?;
    a.tmap = buf.ptr;
    Ok((a, Some(buf)))
}

/// Times each tile's kernel for a `cin -> cout` layer at `sizes` after checking it against the CPU, prints the
/// table, and returns (tile, ms at the first size) for the tiles that ran.
#[allow(clippy::too_many_arguments)]
fn layer_table(
    cache: &KernelCache,
    ctx: &Context,
    s: StreamRef,
    tiles: &[Tile],
    cin: usize,
    cout: usize,
    sizes: &[(usize, usize)],
) -> Res<Vec<(Tile, f32)>> {
    let sm = ctx.sm;
    let p = pack_conv(&layer(cin, cout));
    let bufs: Vec<(DeviceBuffer, DeviceBuffer)> = sizes
        .iter()
        .map(|&(h, wd)| {
            let x = DeviceBuffer::from_slice(&f16_bits(&seeded(h * wd * cin, 5, 2.0)))?;
            Ok((x, DeviceBuffer::new(h * wd * cout * 2)?))
        })
        .collect::<Res<_>>()?;
    let mut head = "| tile | kernel | smem KB | max err vs CPU |".to_string();
    for (h, _) in sizes {
        head += &format!(" {h}p ms | TFLOP/s | % of 750 |");
    }
    println!("{head}\n|{}", "---|".repeat(4 + 3 * sizes.len()));
    let mut results = Vec::new();
    for &t in tiles {
        let Some(k) = Kernel::for_layer(sm, t, cin as u32, cout as u32, 3, false, false) else { continue };
        let row = (|| -> Res<String> {
            let cubin = cache.cubin(&k, sm, false)?;
            let f = Function::load(&cubin, k.entry(), k.smem(0))?;
            let w = weights(&k, &p)?;
            let resident = f.max_active_per_sm(k.threads(), k.smem(0))? * ctx.sms;
            let err = check(&f, &k, &w, s, resident, cin, cout)?;
            let mut cells = format!("| {t} | {} | {:.1} | {err:.2e} |", k.entry(), k.smem(0) as f64 / 1024.0);
            for (i, (&(h, wd), (x, y))) in sizes.iter().zip(&bufs).enumerate() {
                let (a, _map) = tma_args(&k, args(&w, x.ptr, y.ptr, h, wd, cin, cout), cin)?;
                let ms = time_launches(&f, &k, &a, s, resident)?;
                let tflops = 2.0 * (h * wd * cin * cout * 9) as f64 / (ms as f64 * 1e-3) / 1e12;
                if i == 0 {
                    results.push((t, ms));
                }
                cells += &format!(" {ms:.3} | {tflops:.0} | {:.0}% |", 100.0 * tflops / PEAK_TFLOPS);
            }
            Ok(cells)
        })();
        match row {
            Ok(r) => println!("{r}"),
            Err(e) => println!("| {t} | {} | failed: {e} |", k.entry()),
        }
    }
    Ok(results)
}

fn main() -> Res<()> {
    // The source tree it was built from, or the current directory on a machine the binary was carried to.
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = if built.is_dir() { built } else { std::env::current_dir()? };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let only = argv.iter().position(|a| a == "--only").and_then(|i| argv.get(i + 1)).cloned();
    let model = argv
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && (*i == 0 || argv[i - 1] != "--only"))
        .map(|(_, a)| PathBuf::from(a))
        .unwrap_or(root.join("models/realesr-animevideov3-x2.onnx"));
    // VIDEOFORGE_FUSED_PDL=0 or 1: the whole models without or with programmatic dependent launch (unset: as the
    // plugin does, on for networks without dense blocks).
    let pdl = std::env::var_os("VIDEOFORGE_FUSED_PDL").map(|v| v == "1");
    let wanted = |t: &Tile| only.as_ref().is_none_or(|o| o.split(',').any(|n| n == t.to_string()));
    let nvrtc = Nvrtc::load(None)?;
    let ctx = Context::primary(0)?;
    let sm = ctx.sm;
    println!("# fused-cuda sweep: sm_{sm}, NVRTC {:?} ({})\n", nvrtc.version(), nvrtc.path().display());
    let cache_dir = root.join("target/fused-cuda-kernel-cache");
    let cache = KernelCache::new(&nvrtc, Some(cache_dir.clone()));
    let stream = Stream::new()?;
    let s = stream.handle();

    // The table's two tiles (plain and dense networks) first, then the rest of the sweep.
    let mut tiles = vec![tile_for(sm, false)];
    for t in std::iter::once(tile_for(sm, true)).chain(sweep_tiles()) {
        if !tiles.contains(&t) {
            tiles.push(t);
        }
    }
    tiles.retain(|t| wanted(t));
    println!("## One 64 -> 64 3x3 conv + bias + PReLU (NHWC f16)\n");
    let mut results = layer_table(&cache, &ctx, s, &tiles, 64, 64, &SIZES)?;
    // RRDB's dense-block convs at 540p and at 270p (x4plus's input resolution; a 270p conv is short enough for
    // what a launch costs beside its MMAs to show): the chunked wgmma tiles against the table's.
    let dense: Vec<Tile> =
        tiles.iter().copied().filter(|t| *t == tile_for(sm, true) || t.wgmma.is_some_and(|w| w.chunk > 0)).collect();
    if dense.len() > 1 {
        for (cin, cout) in [(96, 32), (192, 32), (192, 64)] {
            println!("\n## RRDB dense conv {cin} -> {cout}\n");
            layer_table(&cache, &ctx, s, &dense, cin, cout, &[SIZES[1], (270, 480)])?;
        }
    }
    if argv.iter().any(|a| a == "--probe") {
        probe_table(&nvrtc, &ctx, s, &dense)?;
    }
    results.sort_by(|a, b| a.1.total_cmp(&b.1));

    println!("\n## Whole model: {}\n", model.display());
    let net = graph::load(&model)?;
    println!("{} x{}, {:.3} M MAC per input pixel\n", net.family, net.scale, net.macs_per_pixel() / 1e6);
    // RRDB (convs wider than 64 channels) at its own input sizes: realesrgan-x4plus's target is at 270p.
    let dense_net = net.is_dense();
    let sizes = if dense_net { [(270, 480), (540, 960)] } else { SIZES };
    println!("| tile | {}p in: ms | fps | TFLOP/s | {}p in: ms | fps | TFLOP/s |", sizes[0].0, sizes[1].0);
    println!("|---|---|---|---|---|---|---|");
    let table = tile_for(sm, dense_net);
    let mut model_tiles = vec![table];
    model_tiles.extend(results.iter().map(|r| r.0).filter(|t| *t != table).take(3));
    // The tensor-core head shows only in the whole model: every tile with it is timed.
    for t in tiles.iter().filter(|t| t.tc_head) {
        if !model_tiles.contains(t) {
            model_tiles.push(*t);
        }
    }
    // A model with wider convs (RRDB) is also timed with every chunked tile.
    if dense_net {
        for t in &dense {
            if !model_tiles.contains(t) {
                model_tiles.push(*t);
            }
        }
    }
    model_tiles.retain(|t| wanted(t));
    let mut breakdowns = Vec::new();
    for t in model_tiles {
        let row = (|| -> Res<String> {
            let mut e = Engine::new(net.clone(), 0, &nvrtc, Some(cache_dir.clone()), Some(t))?;
            if let Some(on) = pdl {
                e.set_dependent_launch(on)?;
            }
            let eb = e.io_bytes();
            let mut cells = format!("| {t} |");
            for &(h, wd) in &sizes {
                let (oh, ow) = net.output_size(h, wd);
                let x = DeviceBuffer::from_slice(&vec![0x3800u16; 3 * h * wd * eb / 2])?;
                let y = DeviceBuffer::new(3 * oh * ow * eb)?;
                let mut go = || {
                    e.run(
                        1,
                        h,
                        wd,
                        Memory::Device { ptr: x.ptr, pitch: 0 },
                        MemoryMut::Device { ptr: y.ptr, pitch: 0 },
                        s,
                    )
                };
                for _ in 0..3 {
                    go()?;
                }
                let reps = 20;
                let ms = driver::time_ms(s, || {
                    for _ in 0..reps {
                        go()?;
                    }
                    Ok(())
                })? / reps as f32;
                let tflops = 2.0 * net.macs_per_pixel() * (h * wd) as f64 / (ms as f64 * 1e-3) / 1e12;
                cells += &format!(" {ms:.3} | {:.1} | {tflops:.0} |", 1000.0 / ms);
                if (h, wd) == sizes[0] {
                    let (cells, kernels) = breakdown(&mut e, (h, wd), x.ptr, y.ptr, s)?;
                    breakdowns.push((format!("| {t} | {cells} |"), format!("- {t}: {kernels}")));
                }
            }
            Ok(cells)
        })();
        match row {
            Ok(r) => println!("{r}"),
            Err(e) => println!("| {t} | failed: {e} |"),
        }
    }
    if !breakdowns.is_empty() {
        println!("\n## Where a {}p frame goes: each step of the frame replayed alone, ms\n", sizes[0].0);
        println!("| tile | head | body convs (count: mean) | tail conv | resize | sum |\n|---|---|---|---|---|---|");
        for b in &breakdowns {
            println!("{}", b.0);
        }
        println!("\nBy kernel (steps: total ms):\n");
        for b in &breakdowns {
            println!("{}", b.1);
        }
    }
    Ok(())
}

/// A frame's steps timed one by one (`Engine::step_times`, over the input `x` and output `y` the whole-model timing
/// used), grouped: head, the body convs (count and mean), the tail conv, the final resize, and their sum, as table
/// cells; and by kernel variant, largest total first.
fn breakdown(e: &mut Engine, (h, wd): (usize, usize), x: u64, y: u64, s: StreamRef) -> Res<(String, String)> {
    let steps =
        e.step_times(h, wd, Memory::Device { ptr: x, pitch: 0 }, MemoryMut::Device { ptr: y, pitch: 0 }, s, 10)?;
    let mut by_kernel: Vec<(String, usize, f32)> = Vec::new();
    for (k, ms) in &steps {
        match by_kernel.iter_mut().find(|b| b.0 == k.name()) {
            Some(b) => (b.1, b.2) = (b.1 + 1, b.2 + ms),
            None => by_kernel.push((k.name(), 1, *ms)),
        }
    }
    by_kernel.sort_by(|a, b| b.2.total_cmp(&a.2));
    let kernels: Vec<String> = by_kernel.iter().map(|(n, c, ms)| format!("{n} {c}: {ms:.3}")).collect();
    let (mut head, mut tail, mut resize, mut body, mut convs) = (0.0, 0.0, 0.0, 0.0, 0);
    for (k, ms) in &steps {
        match k {
            Kernel::Head { .. } => head += ms,
            Kernel::Downscale { .. } => resize += ms,
            k if k.name().contains("_tail_") => tail += ms,
            _ => {
                body += ms;
                convs += 1;
            }
        }
    }
    let mean = if convs > 0 { body / convs as f32 } else { 0.0 };
    let cells = format!(
        "{head:.3} | {body:.3} ({convs}: {mean:.3}) | {tail:.3} | {resize:.3} | {:.3}",
        head + body + tail + resize
    );
    Ok((cells, kernels.join(", ")))
}
