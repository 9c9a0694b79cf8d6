//! Random graphs never panic the matcher: each is matched or refused with an error; a matched one also plans (or is
//! refused) and runs in the reference executor without panicking, so every shape the executors rely on was checked
//! at load.

mod common;

use common::build::{attr_f, attr_int, attr_s, G};
use videoforge_backend_fused_cuda::{graph, reference, runtime};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.next() as usize % v.len()]
    }
}

/// A random graph: a head conv, up to 8 random nodes over values with known channel counts (often right, sometimes
/// wrong), and mostly a conv + pixel shuffle tail.
fn random_graph(seed: u64) -> Vec<u8> {
    let mut r = Rng(seed);
    let mut g = G::new(seed);
    let head = g.conv("head", "input", 3, 16, 3);
    let mut vals: Vec<(String, usize)> = vec![("input".into(), 3), (head, 16)];
    let n = 1 + r.next() % 8;
    for i in 0..n {
        let (x, c) = r.pick(&vals).clone();
        let (y, _) = r.pick(&vals).clone();
        let name = format!("n{i}");
        let chans = [3, 8, 12, 16, 27, 48];
        let out = match r.next() % 13 {
            0..=2 => {
                let co = *r.pick(&chans);
                (g.conv(&name, &x, c, co, 3), co)
            }
            3 => {
                let co = *r.pick(&chans);
                (g.conv(&name, &x, c, co, 1), co)
            }
            4 => (g.prelu(&name, &x, c), c),
            5 => (g.node("LeakyRelu", &name, &[&x], vec![attr_f("alpha", 0.2)]), c),
            6 => (g.mul(&name, &x, 0.2), c),
            7 => (g.node("Add", &name, &[&x, &y], vec![]), c),
            8 => {
                let (z, cz) = r.pick(&vals).clone();
                (g.node("Concat", &name, &[&x, &z], vec![attr_int("axis", 1)]), c + cz)
            }
            9 => {
                let b = 1 + (r.next() % 3) as i64;
                let mode = *r.pick(&["CRD", "DCR"]);
                (g.node("DepthToSpace", &name, &[&x], vec![attr_int("blocksize", b), attr_s("mode", mode)]), c)
            }
            10 => {
                let attrs = vec![
                    attr_s("mode", "nearest"),
                    attr_s("coordinate_transformation_mode", "asymmetric"),
                    attr_s("nearest_mode", "floor"),
                ];
                (g.resize(&name, &x, *r.pick(&[2.0, 4.0]), attrs), c)
            }
            11 => {
                let attrs = vec![attr_s("mode", "cubic"), attr_s("coordinate_transformation_mode", "half_pixel")];
                (g.resize(&name, &x, *r.pick(&[0.5, 0.75]), attrs), c)
            }
            _ => (g.node("Sigmoid", &name, &[&x], vec![]), c),
        };
        vals.push(out);
    }
    let (mut last, c) = vals.last().cloned().unwrap_or_default();
    if r.next() % 3 != 0 {
        let t = g.conv("tail", &last, c, 12, 3);
        last = g.node("DepthToSpace", "tail.d2s", &[&t], vec![attr_int("blocksize", 2), attr_s("mode", "CRD")]);
    }
    g.finish(&last, seed % 2 == 0)
}

#[test]
fn random_graphs_are_matched_or_refused_never_panic() {
    let (mut matched, mut refused) = (0, 0);
    for seed in 0..1500u64 {
        let bytes = random_graph(seed);
        let outcome = std::panic::catch_unwind(|| {
            let m = videoforge_backend_fused_cuda::onnx::decode(&bytes).expect("our own bytes decode");
            match graph::match_model(&m) {
                Err(_) => false,
                Ok(net) => {
                    let _ = runtime::plan::plan(&net, 90, None);
                    let img = common::test_image(5, 6);
                    let out = reference::run(&net, &img);
                    assert_eq!((out.h, out.w), net.output_size(5, 6), "seed {seed}: output size");
                    true
                }
            }
        });
        match outcome {
            Ok(true) => matched += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!("seed {seed} panicked"),
        }
    }
    println!("{matched} matched, {refused} refused");
    assert!(matched > 0, "no random graph matched: the generator is too far off");
}
