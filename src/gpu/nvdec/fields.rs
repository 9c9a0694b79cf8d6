//! When each field comes out at one frame per field: libavfilter's bwdif (yadif's timing) is the reference the
//! NVDEC path must match, timestamps included.

/// The time of a picture's second field in half the stream's time base, as libavfilter's bwdif (yadif's timing)
/// gives it: halfway between the picture at `t` and the next one; at the end, as far past `t` as `t` is past the
/// previous picture; with neither, the picture's own `duration` later.
pub(crate) fn second_field_pts(t: i64, next: Option<i64>, prev: Option<i64>, duration: i64) -> i64 {
    match (next, prev) {
        (Some(n), _) => t + n,
        (None, Some(p)) => 3 * t - p,
        (None, None) => 2 * t + duration,
    }
}

#[cfg(test)]
mod tests {
    use super::second_field_pts;

    /// A 29.97 fps stream in a millisecond time base (MKV): the gaps alternate 33 and 34 ticks, and bwdif times each
    /// second field at the midpoint (t + next in the doubled base), not at t plus the rounded packet duration.
    #[test]
    fn second_fields_sit_halfway_to_the_next_picture_as_bwdif_puts_them() {
        let times = [0i64, 33, 67, 100, 133];
        let mut got = Vec::new();
        for (i, &t) in times.iter().enumerate() {
            let prev = i.checked_sub(1).map(|j| times[j]);
            got.push(2 * t);
            got.push(second_field_pts(t, times.get(i + 1).copied(), prev, 33));
        }
        assert_eq!(got, [0, 33, 66, 100, 134, 167, 200, 233, 266, 299]);
        // One picture only: its own duration.
        assert_eq!(second_field_pts(10, None, None, 33), 53);
    }
}
