//! Cutting frames into overlapping tiles and blending the upscaled tiles back without seams.
//!
//! Tiles overlap by `overlap` input pixels. Each tile's output is weighted by a separable ramp that is 0 over the
//! outer quarter of the overlap (where the model saw the tile's border, not the image) and rises linearly to 1
//! across the middle half; the result is the weighted sum divided by the sum of weights, so any tile layout
//! (including the last tile shifted back to the frame's edge) blends to a partition of unity. Sides on the frame's
//! edge get weight 1. A pointwise model therefore gives the untiled result up to float rounding.

use super::error::BackendError;

/// Tile size and overlap, in input pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileSpec {
    /// Tile edge (0: no tiling).
    pub tile: usize,
    /// Overlap between neighbouring tiles.
    pub overlap: usize,
}

impl TileSpec {
    /// Whether a `width` x `height` frame must be cut.
    pub fn needs_tiling(&self, width: usize, height: usize) -> bool {
        self.tile > 0 && (width > self.tile || height > self.tile)
    }
}

/// Start positions and length of tiles along one axis of `len` pixels.
/// `fixed`: the model only takes tiles of exactly this length (a shorter axis is padded).
fn axis_tiles(len: usize, tile: usize, overlap: usize, fixed: bool) -> (Vec<usize>, usize) {
    if tile == 0 || len <= tile {
        return (vec![0], if fixed { tile.max(len) } else { len });
    }
    // Overlap must leave a step of at least one pixel.
    let step = tile.saturating_sub(overlap).max(1);
    let mut starts = Vec::new();
    let mut p = 0;
    loop {
        if p + tile >= len {
            starts.push(len - tile);
            break;
        }
        starts.push(p);
        p += step;
    }
    starts.dedup();
    (starts, tile)
}

/// Blend weight of output position `x` (0-based within the tile, in output pixels) along one axis.
fn ramp(x: usize, tile_out: usize, overlap_out: usize, left_neighbour: bool, right_neighbour: bool) -> f32 {
    let margin = overlap_out / 4;
    let width = (overlap_out - 2 * margin).max(1) as f32;
    let side = |d: usize| ((d as f32 - margin as f32 + 0.5) / width).clamp(0.0, 1.0);
    let mut w = 1.0;
    if left_neighbour {
        w *= side(x);
    }
    if right_neighbour {
        w *= side(tile_out - 1 - x);
    }
    w
}

/// Upscales a planar RGB frame tile by tile with `run(tile, tile_w, tile_h, tile_out)`; `output` must have
/// `3 * (w*scale) * (h*scale)` values. `fixed`: the model's fixed input size (width, height), if any.
#[allow(clippy::too_many_arguments)]
pub fn upscale_tiled(
    input: &[f32],
    width: usize,
    height: usize,
    scale: usize,
    spec: TileSpec,
    fixed: Option<(usize, usize)>,
    output: &mut [f32],
    mut run: impl FnMut(&[f32], usize, usize, &mut [f32]) -> Result<(), BackendError>,
) -> Result<(), BackendError> {
    let (ow, oh) = (width * scale, height * scale);
    let (tw, th) = fixed.unwrap_or((spec.tile, spec.tile));
    let (xs, tw) = axis_tiles(width, tw, spec.overlap, fixed.is_some());
    let (ys, th) = axis_tiles(height, th, spec.overlap, fixed.is_some());
    let (tow, toh) = (tw * scale, th * scale);
    let ov = spec.overlap * scale;

    let mut acc = vec![0f32; 3 * ow * oh];
    let mut wsum = vec![0f32; ow * oh];
    let mut tile_in = vec![0f32; 3 * tw * th];
    let mut tile_out = vec![0f32; 3 * tow * toh];
    for (iy, &y0) in ys.iter().enumerate() {
        for (ix, &x0) in xs.iter().enumerate() {
            // Cut, replicating the edge where a fixed-size tile reaches past the frame.
            for c in 0..3 {
                for y in 0..th {
                    let sy = (y0 + y).min(height - 1);
                    for x in 0..tw {
                        let sx = (x0 + x).min(width - 1);
                        tile_in[(c * th + y) * tw + x] = input[(c * height + sy) * width + sx];
                    }
                }
            }
            run(&tile_in, tw, th, &mut tile_out)?;
            let wy: Vec<f32> = (0..toh).map(|y| ramp(y, toh, ov, iy > 0, iy + 1 < ys.len())).collect();
            let wx: Vec<f32> = (0..tow).map(|x| ramp(x, tow, ov, ix > 0, ix + 1 < xs.len())).collect();
            let (ox0, oy0) = (x0 * scale, y0 * scale);
            for y in 0..toh.min(oh - oy0) {
                for x in 0..tow.min(ow - ox0) {
                    let w = wy[y] * wx[x];
                    if w == 0.0 {
                        continue;
                    }
                    let o = (oy0 + y) * ow + ox0 + x;
                    wsum[o] += w;
                    for c in 0..3 {
                        acc[c * ow * oh + o] += w * tile_out[(c * toh + y) * tow + x];
                    }
                }
            }
        }
    }
    for c in 0..3 {
        for (i, w) in wsum.iter().enumerate() {
            output[c * ow * oh + i] = acc[c * ow * oh + i] / w;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pointwise "model": nearest-neighbour x2 of `v * 0.5 + 0.25`.
    fn nearest(t: &[f32], w: usize, h: usize, out: &mut [f32]) -> Result<(), BackendError> {
        for c in 0..3 {
            for y in 0..2 * h {
                for x in 0..2 * w {
                    out[(c * 2 * h + y) * 2 * w + x] = t[(c * h + y / 2) * w + x / 2] * 0.5 + 0.25;
                }
            }
        }
        Ok(())
    }

    fn frame(w: usize, h: usize) -> Vec<f32> {
        (0..3 * w * h).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect()
    }

    #[test]
    fn tiles_cover_the_axis_and_stay_inside() {
        for len in 1..100 {
            for (tile, ov) in [(16, 4), (16, 8), (10, 0), (7, 6)] {
                let (starts, t) = axis_tiles(len, tile, ov, false);
                assert_eq!(starts[0], 0);
                assert!(starts.iter().all(|&s| s + t <= len), "{len} {tile} {ov}: {starts:?}");
                assert_eq!(starts.last().unwrap() + t, len);
                assert!(starts.windows(2).all(|p| p[1] > p[0] && p[1] <= p[0] + t));
            }
        }
    }

    #[test]
    fn tiled_pointwise_model_matches_untiled() {
        for (w, h, tile, ov) in [(37, 23, 16, 8), (64, 48, 32, 16), (20, 9, 8, 4), (33, 33, 32, 0)] {
            let input = frame(w, h);
            let mut whole = vec![0f32; 12 * w * h];
            nearest(&input, w, h, &mut whole).unwrap();
            let mut tiled = vec![0f32; 12 * w * h];
            upscale_tiled(&input, w, h, 2, TileSpec { tile, overlap: ov }, None, &mut tiled, nearest).unwrap();
            let max = whole.iter().zip(&tiled).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(max < 1e-6, "{w}x{h} tile {tile} overlap {ov}: max diff {max}");
        }
    }

    #[test]
    fn fixed_size_model_gets_padded_tiles() {
        let (w, h) = (10, 6);
        let input = frame(w, h);
        let mut whole = vec![0f32; 12 * w * h];
        nearest(&input, w, h, &mut whole).unwrap();
        let mut tiled = vec![0f32; 12 * w * h];
        let run = |t: &[f32], tw: usize, th: usize, o: &mut [f32]| {
            assert_eq!((tw, th), (8, 8), "a fixed-size model must get 8x8 tiles");
            nearest(t, tw, th, o)
        };
        upscale_tiled(&input, w, h, 2, TileSpec { tile: 8, overlap: 4 }, Some((8, 8)), &mut tiled, run).unwrap();
        let max = whole.iter().zip(&tiled).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(max < 1e-6, "max diff {max}");
    }
}
