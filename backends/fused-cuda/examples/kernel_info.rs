//! Compiles the kernel variants CI compiles for one SM with `--ptxas-options=-v` and prints registers, spills and
//! shared memory per variant (no GPU needed). `cargo run -p videoforge-backend-fused-cuda --example kernel_info --
//! [SM] [NAME-FILTER]` (default 90, every variant).

use videoforge_backend_fused_cuda::kernels::variants::ci_variants;
use videoforge_backend_fused_cuda::nvrtc::Nvrtc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sm: u32 = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(90);
    let filter = std::env::args().nth(2).unwrap_or_default();
    let nvrtc = Nvrtc::load(None)?;
    for k in ci_variants(sm).into_iter().filter(|k| k.name().contains(&filter)) {
        let mut opts = Nvrtc::options(sm, k.arch_specific());
        opts.push("--ptxas-options=-v".into());
        let (_, log) = nvrtc.compile_with_log(&k.name(), sm, &k.source(), &opts)?;
        let info: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("registers") || l.contains("spill") || l.contains("wgmma"))
            .map(|l| l.trim().trim_start_matches("ptxas info    :").trim())
            .collect();
        println!("{:<48} dyn smem {:>6} | {}", k.name(), k.smem(64), info.join(" | "));
    }
    Ok(())
}
