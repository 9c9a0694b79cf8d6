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
