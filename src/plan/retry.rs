//! What the plan does when a file runs out of device memory mid-run (another process took it, or the frame needs
//! more than the budget assumed): one more try with tiles half the size, so inference needs about a quarter of the
//! activations. Only once; a file that still does not fit fails as transient.

/// The smallest tile a retry goes down to (the planner's own lower bound).
pub const MIN_RETRY_TILE: u32 = 64;

/// The tile for the one retry of a file of `frame` (input width, height) that ran out of device memory with
/// `tile` (0 = whole frames): half the tile, or half the frame's longer side, rounded down to a multiple of 16.
/// `None` when that would be under [`MIN_RETRY_TILE`].
pub fn oom_retry_tile(tile: u32, frame: (u32, u32)) -> Option<u32> {
    let edge = if tile > 0 { tile.min(frame.0.max(frame.1)) } else { frame.0.max(frame.1) };
    let half = (edge / 2) / 16 * 16;
    (half >= MIN_RETRY_TILE).then_some(half)
}

/// The overlap for tiles of `tile` px: the plan's own (16 by default), kept under a quarter of the tile.
pub fn retry_overlap(overlap: u32, tile: u32) -> u32 {
    let o = if overlap == 0 { 16 } else { overlap };
    o.min(tile / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_frames_go_to_half_the_longer_side_and_tiles_to_half_a_tile() {
        assert_eq!(oom_retry_tile(0, (1920, 1080)), Some(960));
        assert_eq!(oom_retry_tile(512, (1920, 1080)), Some(256));
        // A tile larger than the frame is the whole frame.
        assert_eq!(oom_retry_tile(1024, (640, 360)), Some(320));
        assert_eq!(oom_retry_tile(100, (1920, 1080)), None);
        assert_eq!(oom_retry_tile(0, (100, 80)), None);
        assert_eq!(retry_overlap(0, 960), 16);
        assert_eq!(retry_overlap(32, 64), 16);
    }
}
