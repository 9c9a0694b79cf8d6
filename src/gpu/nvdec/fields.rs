//! When each field comes out at one frame per field, and from which map of which picture. libavfilter's bwdif
//! (yadif's timing) is the reference the NVDEC path must match, timestamps included.
//!
//! NVDEC's adaptive deinterlacer, asked for a picture's first field (`second_field` 0), hands out the previous
//! picture's second field; asked for the second, it hands out this picture's first field (measured on the H200,
//! bench/RESULTS.md, GPU session 10: each field one field late, the first twice, the last never). [`FieldSlots`]
//! turns that into bwdif's sequence: the first map of the stream is given back unused, each picture's first map
//! fills the previous picture's second-field slot, and a second field no later map supplies (the stream's last,
//! or one before a progressive picture) is made from the picture mapped woven, its own field's lines doubled.
//! A progressive picture is mapped as it is, twice, with no lag.

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

/// One thing the decoder does at one frame per field. Times are in half the stream's time base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldOp {
    /// Map the current picture with this `second_field` (a progressive picture as it is) and hand it out.
    Emit { second_field: i32, pts: Option<i64> },
    /// Map the current picture's first field and give the copy back: what NVDEC hands out there is a field whose
    /// slot is already filled (or the stream's first field, which the second map gives again).
    Discard,
    /// Map the current (progressive) picture again and keep it for its second slot, timed by the next picture.
    Hold,
    /// Hand out the kept copy.
    Release { pts: Option<i64> },
    /// Map the previous picture woven and hand out its second field with that field's lines doubled.
    Doubled { pts: Option<i64> },
}

/// The previous picture's second-field slot, still to be handed out.
#[derive(Debug, Clone, Copy)]
struct Pending {
    interlaced: bool,
    t: Option<i64>,
    prev: Option<i64>,
    duration: i64,
}

impl Pending {
    fn pts(&self, next: Option<i64>) -> Option<i64> {
        self.t.map(|t| second_field_pts(t, next, self.prev, self.duration))
    }
}

/// Decides, picture by picture in display order, the maps that give bwdif's fields at bwdif's times.
#[derive(Debug, Default)]
pub(crate) struct FieldSlots {
    pending: Option<Pending>,
}

impl FieldSlots {
    /// The ops for the next displayed picture (interlaced or not, its time in the stream's time base when the
    /// stream has timestamps, its duration), in order.
    pub(crate) fn picture(&mut self, interlaced: bool, t: Option<i64>, duration: i64) -> impl Iterator<Item = FieldOp> {
        let first = t.map(|t| 2 * t);
        let before = self.pending.take();
        let ops = match (before, interlaced) {
            (None, true) => [Some(FieldOp::Discard), Some(FieldOp::Emit { second_field: 1, pts: first }), None],
            (Some(p), true) if p.interlaced => [
                Some(FieldOp::Emit { second_field: 0, pts: p.pts(t) }),
                Some(FieldOp::Emit { second_field: 1, pts: first }),
                None,
            ],
            (Some(p), true) => [
                Some(FieldOp::Release { pts: p.pts(t) }),
                Some(FieldOp::Discard),
                Some(FieldOp::Emit { second_field: 1, pts: first }),
            ],
            (p, false) => [
                p.map(|p| {
                    if p.interlaced {
                        FieldOp::Doubled { pts: p.pts(t) }
                    } else {
                        FieldOp::Release { pts: p.pts(t) }
                    }
                }),
                Some(FieldOp::Emit { second_field: 0, pts: first }),
                Some(FieldOp::Hold),
            ],
        };
        self.pending = Some(Pending { interlaced, t, prev: before.and_then(|p| p.t), duration });
        ops.into_iter().flatten()
    }

    /// The op for the stream's end: the last picture's second field, if there was a picture.
    pub(crate) fn end(&mut self) -> Option<FieldOp> {
        let p = self.pending.take()?;
        Some(if p.interlaced { FieldOp::Doubled { pts: p.pts(None) } } else { FieldOp::Release { pts: p.pts(None) } })
    }
}

#[cfg(test)]
mod tests {
    use super::{second_field_pts, FieldOp, FieldSlots};

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

    /// What NVDEC hands out for each op, as measured: a picture's first map gives the previous picture's second
    /// field (the stream's first field before the first), its second map its own first field; a progressive
    /// picture is itself. Fields are named (picture, field); a progressive picture's two slots are (p, 0) twice.
    fn nvdec(ops: &[(usize, FieldOp)], interlaced: &[bool]) -> Vec<((usize, u8), Option<i64>)> {
        let mut out = Vec::new();
        let mut held = None;
        for &(p, op) in ops {
            let progressive = || !interlaced[p];
            match op {
                FieldOp::Emit { second_field, pts } => {
                    let field = match (progressive(), second_field) {
                        (true, _) => (p, 0),
                        (false, 1) => (p, 0),
                        (false, _) if p == 0 || !interlaced[p - 1] => panic!("picture {p}: the lagging field emitted"),
                        (false, _) => (p - 1, 1),
                    };
                    out.push((field, pts));
                }
                FieldOp::Discard => assert!(!progressive(), "picture {p}: a progressive picture discarded"),
                FieldOp::Hold => held = Some((p, 0)),
                FieldOp::Release { pts } => out.push((held.take().expect("a kept copy"), pts)),
                // The op runs while picture `p` is current (or at the end): the woven picture is the one before.
                FieldOp::Doubled { pts } => out.push(((p - 1, 1), pts)),
            }
        }
        out
    }

    /// Runs the slots over pictures at `times` (10 ticks apart) with the given interlacing, pairing each op with
    /// the picture current when it runs (the end's with one past the last).
    fn run(interlaced: &[bool]) -> Vec<((usize, u8), Option<i64>)> {
        let mut slots = FieldSlots::default();
        let mut ops = Vec::new();
        for (p, &il) in interlaced.iter().enumerate() {
            ops.extend(slots.picture(il, Some(10 * p as i64), 10).map(|op| (p, op)));
        }
        ops.extend(slots.end().map(|op| (interlaced.len(), op)));
        nvdec(&ops, interlaced)
    }

    #[test]
    fn every_field_comes_out_once_in_order_at_bwdif_s_times() {
        let got = run(&[true; 4]);
        let want: Vec<_> =
            (0..4).flat_map(|p| [((p, 0), Some(20 * p as i64)), ((p, 1), Some(20 * p as i64 + 10))]).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn progressive_pictures_take_both_slots_with_no_lag() {
        let got = run(&[false, false]);
        assert_eq!(got, [((0, 0), Some(0)), ((0, 0), Some(10)), ((1, 0), Some(20)), ((1, 0), Some(30))]);
    }

    /// A mixed stream: an interlaced picture before a progressive one has no later map that holds its second field
    /// (it is doubled from the woven picture); a progressive one before an interlaced one fills its own slot, and
    /// the lagging map after it is given back.
    #[test]
    fn mixed_streams_keep_every_slot() {
        let got = run(&[true, false, true, true, false]);
        let want = [
            ((0, 0), Some(0)),
            ((0, 1), Some(10)),
            ((1, 0), Some(20)),
            ((1, 0), Some(30)),
            ((2, 0), Some(40)),
            ((2, 1), Some(50)),
            ((3, 0), Some(60)),
            ((3, 1), Some(70)),
            ((4, 0), Some(80)),
            ((4, 0), Some(90)),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_stream_without_timestamps_gets_none_and_one_picture_its_duration() {
        let mut slots = FieldSlots::default();
        let ops: Vec<_> = slots.picture(true, None, 10).chain(slots.end()).collect();
        assert_eq!(
            ops,
            [FieldOp::Discard, FieldOp::Emit { second_field: 1, pts: None }, FieldOp::Doubled { pts: None }]
        );
        let mut slots = FieldSlots::default();
        let _ = slots.picture(true, Some(7), 10).count();
        assert_eq!(slots.end(), Some(FieldOp::Doubled { pts: Some(24) }));
    }
}
