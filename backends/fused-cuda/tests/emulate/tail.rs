//! The tail's channel unshuffle and the downscale's cubic weights, transcribed from `common.cu` and
//! `downscale.cu`.

/// `unshuffle` of `common.cu`, transcribed: channel → (colour, dy, dx).
pub(crate) fn unshuffle(n: usize, r: usize, crd: bool) -> (usize, usize, usize) {
    if crd {
        let c = n / (r * r);
        let s = n - c * r * r;
        (c, s / r, s - (s / r) * r)
    } else {
        let s = n / 3;
        (n - s * 3, s / r, s - (s / r) * r)
    }
}

#[test]
fn tail_unshuffle_inverts_the_reference_shuffle() {
    use videoforge_backend_fused_cuda::graph::ShuffleMode;
    use videoforge_backend_fused_cuda::reference::shuffle_channel;
    for r in 1..=4 {
        for (mode, crd) in [(ShuffleMode::Crd, true), (ShuffleMode::Dcr, false)] {
            for n in 0..3 * r * r {
                let (c, dy, dx) = unshuffle(n, r, crd);
                assert_eq!(shuffle_channel(mode, r, c, dy, dx), n, "r {r} {mode:?} n {n}");
            }
        }
    }
}

/// `cubic_w` of `downscale.cu`, transcribed.
fn cubic_w(a: f32, t: f32) -> [f32; 4] {
    let (x0, x1, x2, x3) = (t + 1.0, t, 1.0 - t, 2.0 - t);
    [
        ((a * x0 - 5.0 * a) * x0 + 8.0 * a) * x0 - 4.0 * a,
        ((a + 2.0) * x1 - (a + 3.0)) * x1 * x1 + 1.0,
        ((a + 2.0) * x2 - (a + 3.0)) * x2 * x2 + 1.0,
        ((a * x3 - 5.0 * a) * x3 + 8.0 * a) * x3 - 4.0 * a,
    ]
}

#[test]
fn downscale_weights_match_the_reference() {
    for i in 0..=16 {
        let t = i as f32 / 16.0;
        let (k, r) = (cubic_w(-0.75, t), videoforge_backend_fused_cuda::reference::cubic_weights(-0.75, t));
        for j in 0..4 {
            assert!((k[j] - r[j]).abs() < 1e-6, "t {t}: {k:?} vs {r:?}");
        }
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
