//! The matcher and the plain-Rust reference executor against ONNX Runtime CPU, on the shipped models and on
//! synthetic graphs that exercise every matched pattern; and the refusals, with the node named.

mod common;

use common::build::{attr_f, attr_int, attr_s, G};
use common::*;
use videoforge_backend_fused_cuda::graph::{self, Family, IoType};
use videoforge_backend_fused_cuda::reference::{self, Planar};
use videoforge_backend_fused_cuda::Error;

/// Runs the reference and ONNX Runtime on one image; returns the max abs difference.
fn compare(path: &std::path::Path, img: &Planar) -> Option<f32> {
    let env = ort_env()?;
    let net = graph::load(path).expect("the model matches");
    let img = if net.io == IoType::F16 { round_f16(img) } else { img.clone() };
    let t = std::time::Instant::now();
    let ours = reference::run(&net, &img);
    let t_ref = t.elapsed();
    let theirs = ort_run(env, path, net.io, &img);
    let err = max_abs(&ours, &theirs);
    println!(
        "{}: {} x{} {}x{} -> {}x{}: max abs {err:.3e}, PSNR {:.1} dB (reference {t_ref:.2?})",
        path.file_name().and_then(|s| s.to_str()).unwrap_or("?"),
        net.family,
        net.scale,
        img.w,
        img.h,
        ours.w,
        ours.h,
        psnr(&ours, &theirs)
    );
    Some(err)
}

fn shipped(name: &str, h: usize, w: usize, tol: f32) {
    let Some(path) = model(name) else { return };
    if let Some(err) = compare(&path, &test_image(h, w)) {
        assert!(err <= tol, "{name}: max abs {err} > {tol}");
    }
}

#[test]
fn shipped_models_match_their_families() {
    for (name, scale, io) in [
        ("realesr-animevideov3-x2.onnx", 2, IoType::F32),
        ("realesr-animevideov3-x2-fp16.onnx", 2, IoType::F16),
        ("realesr-animevideov3-x3.onnx", 3, IoType::F32),
        ("realesr-animevideov3-x4.onnx", 4, IoType::F32),
        ("realesr-animevideov3-x4-fp16.onnx", 4, IoType::F16),
    ] {
        let Some(path) = model(name) else { continue };
        let net = graph::load(&path).expect("matches");
        assert_eq!(net.family, Family::Compact { features: 64, body: 16 }, "{name}");
        assert_eq!((net.scale, net.io), (scale, io), "{name}");
        assert_eq!(net.buffers.len(), 2, "{name}: ping-pong buffers");
        let t = net.tail().expect("tail");
        assert_eq!((t.shuffle, t.downscale.is_some()), (4, scale != 4), "{name}");
    }
    if let Some(path) = model("realesrgan-x4plus.onnx") {
        let net = graph::load(&path).expect("matches");
        assert_eq!(net.family, Family::Rrdb { features: 64, growth: 32, blocks: 23 });
        assert_eq!(net.scale, 4);
        assert_eq!(net.layers.len(), 351);
        assert!(net.buffers.len() <= 10, "buffers are shared: {}", net.buffers.len());
    }
}

#[test]
fn animevideov3_x2_matches_onnx_runtime() {
    shipped("realesr-animevideov3-x2.onnx", 15, 21, 1e-4);
}

#[test]
fn animevideov3_x3_matches_onnx_runtime() {
    shipped("realesr-animevideov3-x3.onnx", 13, 17, 1e-4);
}

#[test]
fn animevideov3_x4_matches_onnx_runtime() {
    shipped("realesr-animevideov3-x4.onnx", 11, 19, 1e-4);
}

/// The f16 files: our reference computes in f32 from the f16 weights, ONNX Runtime in its own f16 kernels, so the
/// two agree only to f16 precision.
#[test]
fn animevideov3_f16_models_match_onnx_runtime() {
    shipped("realesr-animevideov3-x2-fp16.onnx", 12, 16, 1e-2);
    shipped("realesr-animevideov3-x4-fp16.onnx", 12, 14, 1e-2);
}

/// RRDBNet at a small size (about a minute of reference time in a debug build on two cores). The model is built by
/// `get-x4plus.sh .deps/models` (see docs/fused-cuda.md); skipped when absent.
#[test]
fn x4plus_matches_onnx_runtime() {
    shipped("realesrgan-x4plus.onnx", 12, 16, 1e-4);
}

fn write(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().join("m.onnx");
    std::fs::write(&p, bytes).expect("write model");
    (dir, p)
}

fn clip(g: &mut G, x: &str) -> String {
    let lo = g.init("clip.lo", &[], vec![0.0]);
    let hi = g.init("clip.hi", &[], vec![1.0]);
    g.node("Clip", "clip", &[x, &lo, &hi], vec![])
}

/// Compact variant: width 16, ReLU / LeakyReLU / 1x1 conv, DCR shuffle, bilinear input residual, clamp.
#[test]
fn synthetic_compact_variant_matches_onnx_runtime() {
    let mut g = G::new(7);
    let a = g.conv("c0", "input", 3, 16, 3);
    let a = g.prelu("p0", &a, 16);
    let a = g.conv("c1", &a, 16, 16, 3);
    let a = g.node("Relu", "r1", &[&a], vec![]);
    let a = g.conv("c2", &a, 16, 16, 1);
    let a = g.node("LeakyRelu", "l2", &[&a], vec![attr_f("alpha", 0.1)]);
    let a = g.conv("c3", &a, 16, 12, 3);
    let a = g.node("DepthToSpace", "d2s", &[&a], vec![attr_int("blocksize", 2), attr_s("mode", "DCR")]);
    let up = g.resize(
        "up",
        "input",
        2.0,
        vec![attr_s("mode", "linear"), attr_s("coordinate_transformation_mode", "half_pixel")],
    );
    let a = g.node("Add", "add", &[&up, &a], vec![]);
    let a = clip(&mut g, &a);
    let (_d, p) = write(&g.finish(&a, false));
    let net = graph::load(&p).expect("matches");
    assert_eq!(net.family, Family::Other, "the 1x1 conv makes it not quite Compact");
    if let Some(err) = compare(&p, &test_image(13, 18)) {
        assert!(err <= 1e-5, "max abs {err}");
    }
}

/// RRDB-like: dense concat, 0.2 residuals twice, trunk add, nearest 2x upsampling conv, 3-channel tail.
#[test]
fn synthetic_rrdb_variant_matches_onnx_runtime() {
    let mut g = G::new(11);
    let f = g.conv("first", "input", 3, 16, 3);
    let c1 = g.conv("d1", &f, 16, 8, 3);
    let c1 = g.node("LeakyRelu", "d1.act", &[&c1], vec![attr_f("alpha", 0.2)]);
    let cat1 = g.node("Concat", "cat1", &[&f, &c1], vec![attr_int("axis", 1)]);
    let c2 = g.conv("d2", &cat1, 24, 8, 3);
    let c2 = g.node("LeakyRelu", "d2.act", &[&c2], vec![attr_f("alpha", 0.2)]);
    let cat2 = g.node("Concat", "cat2", &[&f, &c1, &c2], vec![attr_int("axis", 1)]);
    let c3 = g.conv("d3", &cat2, 32, 16, 3);
    let r = g.mul("m1", &c3, 0.2);
    let s = g.node("Sum", "s1", &[&r, &f], vec![]);
    let r = g.mul("m2", &s, 0.2);
    let s = g.node("Sum", "s2", &[&r, &f], vec![]);
    let body = g.conv("body", &s, 16, 16, 3);
    let trunk = g.node("Add", "trunk", &[&f, &body], vec![]);
    let up = g.resize(
        "up",
        &trunk,
        2.0,
        vec![
            attr_s("mode", "nearest"),
            attr_s("coordinate_transformation_mode", "asymmetric"),
            attr_s("nearest_mode", "floor"),
        ],
    );
    let u = g.conv("up.conv", &up, 16, 16, 3);
    let u = g.node("LeakyRelu", "up.act", &[&u], vec![attr_f("alpha", 0.2)]);
    let out = g.conv("last", &u, 16, 3, 3);
    let (_d, p) = write(&g.finish(&out, false));
    let net = graph::load(&p).expect("matches");
    assert_eq!(net.family, Family::Rrdb { features: 16, growth: 8, blocks: 1 });
    assert_eq!(net.scale, 2);
    if let Some(err) = compare(&p, &test_image(11, 9)) {
        assert!(err <= 1e-5, "max abs {err}");
    }
}

/// PyTorch-style pixel shuffle (Reshape, Transpose, Reshape), nearest x3 input residual, bicubic 2/3 downscale.
#[test]
fn synthetic_reshape_shuffle_and_downscale_match_onnx_runtime() {
    let (h, w) = (10usize, 14usize);
    let mut g = G::new(3);
    let a = g.conv("c0", "input", 3, 16, 3);
    let a = g.prelu("p0", &a, 16);
    let a = g.conv("c1", &a, 16, 27, 3);
    let s6 = g.init_i64("s6", vec![1, 3, 3, 3, h as i64, w as i64]);
    let a = g.node("Reshape", "rs6", &[&a, &s6], vec![]);
    let a = g.node("Transpose", "tr", &[&a], vec![common::build::attr_ints_pub("perm", &[0, 1, 4, 2, 5, 3])]);
    let s4 = g.init_i64("s4", vec![1, 3, 3 * h as i64, 3 * w as i64]);
    let a = g.node("Reshape", "rs4", &[&a, &s4], vec![]);
    let up = g.resize(
        "up",
        "input",
        3.0,
        vec![
            attr_s("mode", "nearest"),
            attr_s("coordinate_transformation_mode", "asymmetric"),
            attr_s("nearest_mode", "floor"),
        ],
    );
    let a = g.node("Add", "add", &[&a, &up], vec![]);
    let a = g.resize(
        "down",
        &a,
        2.0 / 3.0,
        vec![
            attr_s("mode", "cubic"),
            attr_s("coordinate_transformation_mode", "half_pixel"),
            attr_f("cubic_coeff_a", -0.75),
        ],
    );
    let (_d, p) = write(&g.finish(&a, false));
    let net = graph::load(&p).expect("matches");
    assert_eq!(net.scale, 2);
    if let Some(err) = compare(&p, &test_image(h, w)) {
        assert!(err <= 1e-5, "max abs {err}");
    }
}

fn refusal(g: G, last: &str) -> String {
    let bytes = g.finish(last, false);
    let m = videoforge_backend_fused_cuda::onnx::decode(&bytes).expect("decodes");
    graph::match_model(&m).expect_err("refused").to_string()
}

#[test]
fn unsupported_operator_is_refused_with_the_node_named() {
    let mut g = G::new(1);
    let a = g.conv("Conv_0", "input", 3, 12, 3);
    let a = g.node("Sigmoid", "Sigmoid_1", &[&a], vec![]);
    let a = g.node("DepthToSpace", "d2s", &[&a], vec![attr_int("blocksize", 2)]);
    let msg = refusal(g, &a);
    assert!(msg.starts_with("node \"Sigmoid_1\" (op Sigmoid): operator Sigmoid is not supported"), "{msg}");
}

#[test]
fn dilated_conv_is_refused_with_the_node_named() {
    let mut g = G::new(1);
    let a = g.conv("Conv_0", "input", 3, 16, 3);
    let a = g.conv("Conv_12", &a, 16, 12, 3);
    g.nodes.last_mut().expect("node").attribute.push(common::build::attr_ints_pub("dilations", &[2, 2]));
    let a = g.node("DepthToSpace", "d2s", &[&a], vec![attr_int("blocksize", 2)]);
    assert_eq!(refusal(g, &a), "node \"Conv_12\" (op Conv): dilations [2, 2] are not supported");
}

/// One conv straight to a pixel shuffle matches (the reference runs it) but the kernels need a head and a tail.
#[test]
fn single_conv_graph_matches_and_the_plan_refuses_it() {
    let mut g = G::new(5);
    let a = g.conv("only", "input", 3, 12, 3);
    let a = g.node("DepthToSpace", "d2s", &[&a], vec![attr_int("blocksize", 2), attr_s("mode", "CRD")]);
    let m = videoforge_backend_fused_cuda::onnx::decode(&g.finish(&a, false)).expect("decodes");
    let net = graph::match_model(&m).expect("matches");
    assert_eq!((net.family.clone(), net.scale, net.layers.len()), (Family::Other, 2, 1));
    assert_eq!(reference::run(&net, &test_image(3, 4)).w, 8);
    let e = videoforge_backend_fused_cuda::runtime::plan::plan(&net, 90, None).expect_err("refused");
    assert!(e.to_string().contains("at least two convs"), "{e}");
}

#[test]
fn external_weights_are_refused() {
    let mut g = G::new(1);
    let a = g.conv("Conv_0", "input", 3, 3, 3);
    g.inits[0].data_location =
        Some(videoforge_backend_fused_cuda::onnx::proto::tensor_proto::DataLocation::External as i32);
    let bytes = g.finish(&a, false);
    let e = videoforge_backend_fused_cuda::onnx::decode(&bytes).expect_err("refused");
    assert!(matches!(e, Error::ExternalData { .. }), "{e}");
    assert!(e.to_string().contains("Conv_0.w"), "{e}");
}
