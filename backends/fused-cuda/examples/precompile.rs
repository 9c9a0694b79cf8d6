//! Compiles every kernel variant CI compiles for the given SMs into a kernel cache folder, so a GPU machine that
//! gets the folder loads models without compiling. `cargo run -p videoforge-backend-fused-cuda --example
//! precompile -- DIR [SM...]` (default SMs: 90).

use std::path::PathBuf;

use videoforge_backend_fused_cuda::cache::KernelCache;
use videoforge_backend_fused_cuda::kernels::variants::ci_variants;
use videoforge_backend_fused_cuda::nvrtc::Nvrtc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: precompile DIR [SM...]")?);
    let mut sms: Vec<u32> = args.map(|s| s.parse()).collect::<Result<_, _>>()?;
    if sms.is_empty() {
        sms.push(90);
    }
    let nvrtc = Nvrtc::load(None)?;
    let cache = KernelCache::new(&nvrtc, Some(dir.clone()));
    for sm in sms {
        let ks = ci_variants(sm);
        for k in &ks {
            cache.cubin(k, sm, false)?;
        }
        println!("sm_{sm}: {} variants in {}", ks.len(), dir.display());
    }
    Ok(())
}
