//! Sharding: one job split across machines. The work list is split by input size into `count` shards; a task
//! takes its shard from `--shard I/N` or from its scheduler's environment (Slurm job arrays, Kubernetes Indexed
//! Jobs, AWS Batch array jobs).

use crate::plan::{EnginePlan, WorkItem};
use serde::{Deserialize, Serialize};

/// A shard that cannot be taken: a bad `--shard` or scheduler variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShardError(pub String);

/// One shard of a job: `index` of `count`, 0-based internally (`--shard 1/4` is index 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based shard index.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Shard {
    /// Parses the 1-based `I/N` form of `--shard`.
    pub fn parse(s: &str) -> Result<Shard, ShardError> {
        let bad = |why: &str| ShardError(format!("{s:?}: {why}"));
        let (i, n) = s.split_once('/').ok_or_else(|| bad("expected I/N, e.g. 2/8"))?;
        let i: u32 = i.trim().parse().map_err(|_| bad("shard index is not a number"))?;
        let n: u32 = n.trim().parse().map_err(|_| bad("shard count is not a number"))?;
        if n == 0 || i == 0 || i > n {
            return Err(bad("expected 1 <= I <= N (shards are numbered from 1)"));
        }
        Ok(Shard { index: i - 1, count: n })
    }
}

/// Splits the work list into `count` shards balanced by input size (largest first onto the lightest shard;
/// ties go to the lower shard), deterministic: every file lands in exactly one shard. Returns the work-item
/// indices of each shard, in work-list order.
pub fn shard_assignment(work: &[WorkItem], count: u32) -> Vec<Vec<usize>> {
    let count = count.max(1) as usize;
    let mut order: Vec<usize> = (0..work.len()).collect();
    order.sort_by(|&a, &b| work[b].size.cmp(&work[a].size).then(work[a].input.cmp(&work[b].input)));
    let mut load = vec![0u64; count];
    let mut shards = vec![Vec::new(); count];
    for i in order {
        let s = (0..count).min_by_key(|&s| (load[s], s)).unwrap_or(0);
        load[s] += work[i].size.max(1);
        shards[s].push(i);
    }
    for s in &mut shards {
        s.sort_unstable();
    }
    shards
}

/// One shard's task, as `plan --shards N` prints it for submitters.
#[derive(Debug, Clone, Serialize)]
pub struct ShardTask {
    /// 1-based shard number, as `--shard I/N` takes it.
    pub shard: String,
    /// Total input bytes.
    pub bytes: u64,
    /// Inputs and outputs.
    pub files: Vec<WorkItem>,
}

/// The task list for `count` shards.
pub fn shard_tasks(plan: &EnginePlan, count: u32) -> Vec<ShardTask> {
    shard_assignment(&plan.work, count)
        .into_iter()
        .enumerate()
        .map(|(i, idx)| ShardTask {
            shard: format!("{}/{}", i + 1, count.max(1)),
            bytes: idx.iter().map(|&j| plan.work[j].size).sum(),
            files: idx.iter().map(|&j| plan.work[j].clone()).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::PathBuf;

    fn items(sizes: &[u64]) -> Vec<WorkItem> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| WorkItem {
                input: PathBuf::from(format!("in{i}.mp4")),
                output: PathBuf::from(format!("out{i}.mp4")),
                size,
            })
            .collect()
    }

    #[test]
    fn every_file_in_exactly_one_shard() {
        let work = items(&[5, 1, 9, 3, 3, 7, 2]);
        for n in 1..=9 {
            let shards = shard_assignment(&work, n);
            let mut all: Vec<usize> = shards.concat();
            all.sort_unstable();
            assert_eq!(all, (0..work.len()).collect::<Vec<_>>(), "n = {n}");
        }
    }

    #[test]
    fn shards_are_balanced_by_size() {
        let work = items(&[100, 1, 1, 1, 1, 100]);
        let shards = shard_assignment(&work, 2);
        let load: Vec<u64> = shards.iter().map(|s| s.iter().map(|&i| work[i].size).sum()).collect();
        assert_eq!(load, vec![102, 102]);
    }

    #[test]
    fn shard_flag() {
        assert_eq!(Shard::parse("2/8"), Ok(Shard { index: 1, count: 8 }));
        assert!(Shard::parse("0/8").is_err());
        assert!(Shard::parse("9/8").is_err());
        assert!(Shard::parse("x").is_err());
    }
}
