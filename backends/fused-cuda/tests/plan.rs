//! The kernel plan of every shipped model on every SM we tune for: it exists, and every kernel it asks for is one
//! CI compiles (tests/nvrtc.rs), so a model never needs a variant nobody has compiled.

mod common;

use videoforge_backend_fused_cuda::graph;
use videoforge_backend_fused_cuda::kernels::variants::ci_variants;
use videoforge_backend_fused_cuda::runtime::plan::{plan, Step};

#[test]
fn shipped_models_plan_onto_compiled_variants_on_every_sm() {
    for name in [
        "realesr-animevideov3-x2.onnx",
        "realesr-animevideov3-x2-fp16.onnx",
        "realesr-animevideov3-x3.onnx",
        "realesr-animevideov3-x4.onnx",
        "realesr-animevideov3-x4-fp16.onnx",
        "realesrgan-x4plus.onnx",
        "realesrgan-x4plus-fp16.onnx",
    ] {
        let Some(path) = common::model(name) else { continue };
        let net = graph::load(&path).expect("matches");
        for sm in [80, 86, 89, 90] {
            let steps = plan(&net, sm, None).expect("plans");
            assert!(matches!(steps[0], Step::Head { .. }), "{name}");
            let compiled = ci_variants(sm);
            for s in &steps {
                assert!(compiled.contains(&s.kernel()), "{name} sm_{sm}: {} is not compiled by CI", s.kernel().name());
            }
            let downscales = steps.iter().filter(|s| matches!(s, Step::Downscale { .. })).count();
            assert_eq!(downscales, usize::from(net.scale != 4), "{name}");
        }
    }
}

#[test]
fn persistent_wgmma_grids_hold_every_n_block_in_one_wave() {
    use videoforge_backend_fused_cuda::kernels::{Kernel, Wg};
    // RRDB's 192 -> 64 conv on its sm_90 row: two N blocks of 32 channels share the 132 resident CTAs, so both run
    // at once; 192 -> 32 takes them all; a tiny input one CTA a block.
    let wg = Wg { groups: 2, rows: 3, chunk: 32, wide: 128, wide_regs: false, a_regs: 1 };
    let k = Kernel::WgmmaK { wg, bn: 32, cin: 192 };
    assert_eq!(k.grid(270, 480, 64, 132), (66, 2));
    assert_eq!(k.grid(270, 480, 32, 132), (132, 1));
    assert_eq!(k.grid(3, 5, 64, 132), (1, 2));
    // With A from registers it copies its patch rows with TMA (a box of one chunk's channels x 66 pixels x 1 row);
    // from shared memory it does not.
    assert_eq!(k.tma_box(), Some([32, 66, 1]));
    let planes = Kernel::WgmmaK { wg: Wg { a_regs: 0, ..wg }, bn: 32, cin: 192 };
    assert_eq!(planes.tma_box(), None);
}
