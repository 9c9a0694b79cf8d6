//! Prints what the matcher makes of an ONNX file: family, scale, buffers and one line per fused layer.
//! `cargo run -p videoforge-backend-fused-cuda --example dump -- MODEL.onnx`

use videoforge_backend_fused_cuda::graph::{self, Input, Output};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: dump MODEL.onnx")?;
    let net = graph::load(std::path::Path::new(&path))?;
    println!(
        "{}: {} x{} io {:?}, {:.3} M MAC/input pixel",
        path,
        net.family,
        net.scale,
        net.io,
        net.macs_per_pixel() / 1e6
    );
    for (i, b) in net.buffers.iter().enumerate() {
        println!("  buffer {i}: {} channels at x{}", b.channels, b.factor);
    }
    for l in &net.layers {
        let input = match l.input {
            Input::Image => "image".to_string(),
            Input::Act { slice, upsample } => {
                format!(
                    "b{}[{}..{}]{}",
                    slice.buffer,
                    slice.offset,
                    slice.offset + slice.channels,
                    if upsample > 1 { format!(" up{upsample}") } else { String::new() }
                )
            }
        };
        let output = match &l.output {
            Output::Act(s) => format!("b{}[{}..{}]", s.buffer, s.offset, s.offset + s.channels),
            Output::Image(t) => format!("image {t:?}"),
        };
        let res: Vec<String> = l
            .residuals
            .iter()
            .map(|r| match r.add {
                Some(s) => format!("*{} + b{}[{}..]", r.scale, s.buffer, s.offset),
                None => format!("*{}", r.scale),
            })
            .collect();
        let act = match &l.act {
            graph::Act::Prelu(_) => "prelu".to_string(),
            a => format!("{a:?}"),
        };
        println!(
            "  {:>12} k{} {:>3}->{:<3} x{} {input} -> {output} {act} {}",
            l.name,
            l.k,
            l.cin,
            l.cout,
            l.factor,
            res.join(" ")
        );
    }
    Ok(())
}
