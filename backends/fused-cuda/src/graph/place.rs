//! Where activations live: concat operands become channel slices of one buffer (so a dense block's concat costs
//! nothing), and buffers whose lifetimes do not overlap share memory.

use std::collections::HashMap;

use super::ir::{Buffer, Input, Layer, Output, Slice};

/// Logical buffers (one per concat group or free-standing value) before sharing.
#[derive(Debug, Default)]
pub struct Groups {
    /// Each group's shape.
    pub groups: Vec<Buffer>,
}

impl Groups {
    /// A new group.
    pub fn add(&mut self, channels: usize, factor: usize) -> usize {
        self.groups.push(Buffer { channels, factor });
        self.groups.len() - 1
    }
}

fn slices_read(l: &Layer) -> Vec<Slice> {
    let mut v: Vec<Slice> = l.residuals.iter().filter_map(|r| r.add).collect();
    if let Input::Act { slice, .. } = l.input {
        v.push(slice);
    }
    v
}

fn slice_written(l: &Layer) -> Option<Slice> {
    match &l.output {
        Output::Act(s) => Some(*s),
        Output::Image(_) => None,
    }
}

/// Maps logical groups to physical buffers: a group is live from the first layer that writes it to the last that
/// reads it; a buffer is free again only after that last layer, so no layer reads and writes the same memory.
/// Rewrites every slice's `buffer` and returns the physical buffers.
pub fn share(groups: &Groups, layers: &mut [Layer]) -> Vec<Buffer> {
    let n = groups.groups.len();
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    for (i, l) in layers.iter().enumerate() {
        for s in slices_read(l).into_iter().chain(slice_written(l)) {
            first[s.buffer] = first[s.buffer].min(i);
            last[s.buffer] = last[s.buffer].max(i);
        }
    }
    let mut physical: Vec<Buffer> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut map: HashMap<usize, usize> = HashMap::new();
    let mut live: Vec<usize> = Vec::new();
    for i in 0..layers.len() {
        // Release groups whose last use was before this layer.
        live.retain(|&g| {
            if last[g] < i {
                free.push(map[&g]);
                false
            } else {
                true
            }
        });
        for (g, _) in first.iter().enumerate().filter(|&(_, &f)| f == i) {
            let want = groups.groups[g];
            let p = match free.iter().position(|&p| physical[p] == want) {
                Some(k) => free.swap_remove(k),
                None => {
                    physical.push(want);
                    physical.len() - 1
                }
            };
            map.insert(g, p);
            live.push(g);
        }
    }
    let remap = |s: &mut Slice| s.buffer = map[&s.buffer];
    for l in layers.iter_mut() {
        if let Input::Act { slice, .. } = &mut l.input {
            remap(slice);
        }
        for r in &mut l.residuals {
            if let Some(s) = &mut r.add {
                remap(s);
            }
        }
        if let Output::Act(s) = &mut l.output {
            remap(s);
        }
    }
    physical
}
