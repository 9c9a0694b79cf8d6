//! Which shard this process runs, from the `--shard` flag or a scheduler's environment, and where that came from.
//!
//! Pure: the caller passes the environment as (name, value) pairs (only the CLI reads variables) and the shard
//! count the job planned, if any (`--shard-count`/`VIDEOFORGE_SHARD_COUNT`, or the job file).
//!
//! | scheduler | index | count |
//! | --- | --- | --- |
//! | Slurm job array | (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN`) / `SLURM_ARRAY_TASK_STEP` | the planned count, else `SLURM_ARRAY_TASK_COUNT` |
//! | Kubernetes Indexed Job | `JOB_COMPLETION_INDEX` | the planned count (a Job does not tell its pods `completions`) |
//! | AWS Batch array job | `AWS_BATCH_JOB_ARRAY_INDEX` | the planned count, else `AWS_BATCH_JOB_ARRAY_SIZE` (set it in the submission: Batch does not) |
//!
//! When the scheduler's shape differs from the planned count (a resubmission of one failed task, an array with
//! more or fewer tasks than shards, a Slurm list such as `--array=2,5`), the task takes shard `id mod count` and
//! stealing defaults on: claims keep the work exactly-once, and the task finishes whatever is left. With no planned
//! count, a one-task array (`--array=3`) runs the whole list with stealing on, and claims protect the files that the
//! still-running tasks of the first submission hold.

use serde::Serialize;

/// Where the shard came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShardSource {
    /// `--shard I/N`.
    Flag,
    /// A Slurm job array.
    Slurm,
    /// A Kubernetes Indexed Job.
    Kubernetes,
    /// An AWS Batch array job.
    AwsBatch,
    /// Nothing: the whole work list.
    None,
}

impl std::fmt::Display for ShardSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ShardSource::Flag => "--shard",
            ShardSource::Slurm => "Slurm",
            ShardSource::Kubernetes => "Kubernetes",
            ShardSource::AwsBatch => "AWS Batch",
            ShardSource::None => "no scheduler",
        })
    }
}

/// Where the planned shard count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CountFrom {
    /// `--shard-count N` or `VIDEOFORGE_SHARD_COUNT`.
    ShardCount,
    /// The job file.
    JobFile,
}

impl std::fmt::Display for CountFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CountFrom::ShardCount => "--shard-count",
            CountFrom::JobFile => "the job file",
        })
    }
}

/// The shard count the job planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// Number of shards.
    pub count: u32,
    /// Where it was given.
    pub from: CountFrom,
}

/// What the caller knows.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `--shard I/N`, already parsed: (0-based index, count).
    pub flag: Option<(u32, u32)>,
    /// The planned count, if given.
    pub planned: Option<Planned>,
    /// The process environment (only the scheduler variables are read).
    pub env: &'a [(String, String)],
}

/// The shard to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// 0-based shard index.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
    /// Where index and count came from.
    pub source: ShardSource,
    /// The scheduler variables that were read, as `NAME=value`.
    pub variables: Vec<String>,
    /// Where the count came from when it was not the source's own: the planned count.
    pub count_from: Option<CountFrom>,
    /// Whether stealing from other shards is on unless `--steal`/`--no-steal` says otherwise.
    pub steal: bool,
    /// Why stealing is on, or how the index was mapped, for the log and the summary.
    pub note: Option<String>,
}

impl Selection {
    /// The whole work list.
    fn whole(note: Option<String>) -> Selection {
        Selection {
            index: 0,
            count: 1,
            source: ShardSource::None,
            variables: Vec::new(),
            count_from: None,
            steal: false,
            note,
        }
    }

    /// `Some((index, count))` when the work list is split.
    pub fn shard(&self) -> Option<(u32, u32)> {
        (self.source != ShardSource::None).then_some((self.index, self.count))
    }

    /// One line for the log and the run summary, e.g.
    /// `shard 1/3 from Slurm (SLURM_ARRAY_TASK_ID=0 ...; count from the job file); stealing on: ...`.
    pub fn describe(&self) -> String {
        let mut s = match self.source {
            ShardSource::None => "the whole work list (no --shard, no scheduler array variables)".to_string(),
            ShardSource::Flag => format!("shard {}/{} from --shard", self.index + 1, self.count),
            source => format!("shard {}/{} from {source} ({})", self.index + 1, self.count, self.variables.join(" ")),
        };
        if let Some(from) = self.count_from {
            s += &format!("; count {} from {from}", self.count);
        }
        if let Some(note) = &self.note {
            s += &format!("; {note}");
        }
        s
    }
}

impl std::fmt::Display for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A scheduler environment that names no usable shard: a bad set-up, exit code 3 (not retried), nothing ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// A variable is not a whole number.
    #[error("{name}={value:?} is not a whole number")]
    NotANumber {
        /// Variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// A count of zero.
    #[error("{what} is 0: a job needs at least one shard")]
    ZeroCount {
        /// What gave it, e.g. `SLURM_ARRAY_TASK_COUNT=0`.
        what: String,
    },
    /// `--shard I/N` out of range.
    #[error("--shard {}/{count}: expected 1 <= I <= N (shards are numbered from 1)", .index + 1)]
    BadFlag {
        /// 0-based index.
        index: u32,
        /// Count.
        count: u32,
    },
    /// A Slurm variable is inconsistent with the others.
    #[error("{0}")]
    Slurm(String),
    /// An index without a count.
    #[error("{index_var}={index} is set but not the number of shards: {hint}")]
    NoCount {
        /// The index variable.
        index_var: &'static str,
        /// Its value.
        index: u32,
        /// How to give it.
        hint: &'static str,
    },
    /// An index outside the scheduler's own count.
    #[error("{index_var}={index} is outside 0..{count} ({count_var}={count})")]
    OutOfRange {
        /// The index variable.
        index_var: &'static str,
        /// Its value.
        index: u32,
        /// The count variable.
        count_var: &'static str,
        /// Its value.
        count: u32,
    },
}

fn lookup<'e>(env: &'e [(String, String)], name: &str) -> Option<&'e str> {
    env.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
}

fn number(env: &[(String, String)], name: &'static str) -> Result<Option<u32>, SchedulerError> {
    lookup(env, name)
        .map(|v| v.parse::<u32>().map_err(|_| SchedulerError::NotANumber { name, value: v.to_string() }))
        .transpose()
}

/// Decides the shard: `--shard` first, then Slurm, Kubernetes, AWS Batch (the first whose index variable is
/// set), else the whole work list.
pub fn resolve(req: &Request<'_>) -> Result<Selection, SchedulerError> {
    if let Some(p) = req.planned {
        if p.count == 0 {
            return Err(SchedulerError::ZeroCount { what: format!("the shard count from {}", p.from) });
        }
    }
    if let Some((index, count)) = req.flag {
        if count == 0 || index >= count {
            return Err(SchedulerError::BadFlag { index, count });
        }
        let differs = req.planned.filter(|p| p.count != count);
        return Ok(Selection {
            index,
            count,
            source: ShardSource::Flag,
            variables: Vec::new(),
            count_from: None,
            steal: differs.is_some(),
            note: differs.map(|p| format!("stealing on: --shard says {count} shards, {} says {}", p.from, p.count)),
        });
    }
    if let Some(s) = slurm(req)? {
        return Ok(s);
    }
    if let Some(i) = number(req.env, "JOB_COMPLETION_INDEX")? {
        return indexed(req, ShardSource::Kubernetes, ("JOB_COMPLETION_INDEX", i), None, K8S_HINT);
    }
    if let Some(i) = number(req.env, "AWS_BATCH_JOB_ARRAY_INDEX")? {
        let size = number(req.env, "AWS_BATCH_JOB_ARRAY_SIZE")?.map(|n| ("AWS_BATCH_JOB_ARRAY_SIZE", n));
        return indexed(req, ShardSource::AwsBatch, ("AWS_BATCH_JOB_ARRAY_INDEX", i), size, AWS_HINT);
    }
    Ok(Selection::whole(None))
}

const K8S_HINT: &str =
    "give it with --shard-count N, VIDEOFORGE_SHARD_COUNT or `[farm] shards` in the job file (the Job's completions)";
const AWS_HINT: &str = "give it with --shard-count N, VIDEOFORGE_SHARD_COUNT, `[farm] shards` in the job file or \
                        AWS_BATCH_JOB_ARRAY_SIZE (the array's size)";

/// Maps a task onto the planned count when the scheduler's own shape does not fit it: `id mod count`, stealing on.
fn remap(source: ShardSource, variables: Vec<String>, id: u32, planned: Planned, why: String) -> Selection {
    let index = id % planned.count;
    Selection {
        index,
        count: planned.count,
        source,
        variables,
        count_from: Some(planned.from),
        steal: true,
        note: Some(format!("stealing on: {why}; task {id} takes shard {} (task id mod {})", index + 1, planned.count)),
    }
}

/// Kubernetes and AWS Batch: an index, and a count from the planned count or the scheduler's own variable.
fn indexed(
    req: &Request<'_>,
    source: ShardSource,
    (index_var, index): (&'static str, u32),
    own: Option<(&'static str, u32)>,
    hint: &'static str,
) -> Result<Selection, SchedulerError> {
    let mut variables = vec![format!("{index_var}={index}")];
    if let Some((n, v)) = own {
        variables.push(format!("{n}={v}"));
    }
    match (req.planned, own) {
        (Some(p), Some((count_var, count))) if count != p.count => {
            let why = format!("{count_var}={count} differs from the {} shards of {}", p.count, p.from);
            Ok(remap(source, variables, index, p, why))
        }
        (Some(p), _) if index >= p.count => {
            let why = format!("{index_var}={index} is beyond the {} shards of {}", p.count, p.from);
            Ok(remap(source, variables, index, p, why))
        }
        (Some(p), _) => Ok(Selection {
            index,
            count: p.count,
            source,
            variables,
            count_from: Some(p.from),
            steal: false,
            note: None,
        }),
        (None, Some((count_var, count))) => {
            if count == 0 {
                return Err(SchedulerError::ZeroCount { what: format!("{count_var}=0") });
            }
            if index >= count {
                return Err(SchedulerError::OutOfRange { index_var, index, count_var, count });
            }
            Ok(Selection { index, count, source, variables, count_from: None, steal: false, note: None })
        }
        (None, None) => Err(SchedulerError::NoCount { index_var, index, hint }),
    }
}

/// A Slurm job array: `SLURM_ARRAY_TASK_ID`, `_MIN`, `_MAX`, `_STEP`, `_COUNT`.
fn slurm(req: &Request<'_>) -> Result<Option<Selection>, SchedulerError> {
    let env = req.env;
    let Some(id) = number(env, "SLURM_ARRAY_TASK_ID")? else { return Ok(None) };
    let min = number(env, "SLURM_ARRAY_TASK_MIN")?;
    let max = number(env, "SLURM_ARRAY_TASK_MAX")?;
    let step = number(env, "SLURM_ARRAY_TASK_STEP")?;
    let count = number(env, "SLURM_ARRAY_TASK_COUNT")?;
    let mut variables = vec![format!("SLURM_ARRAY_TASK_ID={id}")];
    for (name, v) in [("MIN", min), ("MAX", max), ("STEP", step), ("COUNT", count)] {
        if let Some(v) = v {
            variables.push(format!("SLURM_ARRAY_TASK_{name}={v}"));
        }
    }
    let (min, step) = (min.unwrap_or(0), step.unwrap_or(1));
    if step == 0 {
        return Err(SchedulerError::Slurm("SLURM_ARRAY_TASK_STEP=0: the step of an array is at least 1".into()));
    }
    if count == Some(0) {
        return Err(SchedulerError::ZeroCount { what: "SLURM_ARRAY_TASK_COUNT=0".into() });
    }
    // The tasks form one range MIN, MIN+STEP, ..., MAX when COUNT says so; a list (--array=0,2,5) does not.
    let range_len = max.filter(|&m| m >= min).map(|m| (m - min) / step + 1);
    let is_range = match (range_len, count) {
        (Some(len), Some(c)) => len == c,
        _ => true,
    };
    let on_grid = id >= min && (id - min) % step == 0;
    let own_count = count.or(range_len);
    if let Some(p) = req.planned {
        if is_range && on_grid && own_count == Some(p.count) {
            let index = (id - min) / step;
            let (source, count_from) = (ShardSource::Slurm, Some(p.from));
            return Ok(Some(Selection {
                index,
                count: p.count,
                source,
                variables,
                count_from,
                steal: false,
                note: None,
            }));
        }
        let why = match own_count {
            Some(c) if c != p.count => {
                format!("the array has {c} task(s), {} says {} shards", p.from, p.count)
            }
            _ => format!("the array is not one range MIN..MAX:STEP ({} says {} shards)", p.from, p.count),
        };
        return Ok(Some(remap(ShardSource::Slurm, variables, id, p, why)));
    }
    if id < min {
        return Err(SchedulerError::Slurm(format!("SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}")));
    }
    if !on_grid {
        return Err(SchedulerError::Slurm(format!(
            "SLURM_ARRAY_TASK_ID={id} is not on the array's grid SLURM_ARRAY_TASK_MIN={min} + k * SLURM_ARRAY_TASK_STEP={step}"
        )));
    }
    if !is_range {
        return Err(SchedulerError::Slurm(format!(
            "SLURM_ARRAY_TASK_COUNT={} does not fit SLURM_ARRAY_TASK_MIN={min}, SLURM_ARRAY_TASK_MAX={}, \
             SLURM_ARRAY_TASK_STEP={step}: the array is a list (e.g. --array=0,2,5), not one range; give the job's \
             shard count with --shard-count N or VIDEOFORGE_SHARD_COUNT",
            count.unwrap_or(0),
            max.unwrap_or(0)
        )));
    }
    let Some(count) = own_count else {
        return Err(SchedulerError::NoCount {
            index_var: "SLURM_ARRAY_TASK_ID",
            index: id,
            hint: "give it with --shard-count N, VIDEOFORGE_SHARD_COUNT or `[farm] shards` in the job file (Slurm older than 14.03 sets no SLURM_ARRAY_TASK_COUNT)",
        });
    };
    let index = (id - min) / step;
    let single = count == 1;
    Ok(Some(Selection {
        index,
        count,
        source: ShardSource::Slurm,
        variables,
        count_from: None,
        steal: single,
        note: single.then(|| {
            "stealing on: a one-task array (a resubmission?) runs the whole list; claims skip the files other tasks hold"
                .to_string()
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    fn slurm_env(id: u32, min: u32, max: u32, step: u32, count: u32) -> Vec<(String, String)> {
        env(&[
            ("SLURM_ARRAY_TASK_ID", &id.to_string()),
            ("SLURM_ARRAY_TASK_MIN", &min.to_string()),
            ("SLURM_ARRAY_TASK_MAX", &max.to_string()),
            ("SLURM_ARRAY_TASK_STEP", &step.to_string()),
            ("SLURM_ARRAY_TASK_COUNT", &count.to_string()),
        ])
    }

    fn run(
        e: &[(String, String)],
        flag: Option<(u32, u32)>,
        planned: Option<u32>,
    ) -> Result<Selection, SchedulerError> {
        resolve(&Request { flag, planned: planned.map(|count| Planned { count, from: CountFrom::JobFile }), env: e })
    }

    /// An error's text, as the table writes it.
    #[derive(Debug, PartialEq)]
    struct Text(String);

    impl From<&str> for Text {
        fn from(s: &str) -> Text {
            Text(s.to_string())
        }
    }

    /// (index, count, source, steal) or the error text.
    type Short = Result<(u32, u32, ShardSource, bool), Text>;

    /// The environment, the planned count (from the job file) and what must come out.
    type Case = (Vec<(String, String)>, Option<u32>, Short);

    fn short(r: Result<Selection, SchedulerError>) -> Short {
        r.map(|s| (s.index, s.count, s.source, s.steal)).map_err(|e| Text(e.to_string()))
    }

    fn check(cases: &[Case]) {
        for (i, (e, planned, want)) in cases.iter().enumerate() {
            assert_eq!(&short(run(e, None, *planned)), want, "case {i}: {e:?} planned {planned:?}");
        }
    }

    #[test]
    fn slurm_arrays_map_to_shards() {
        use ShardSource::Slurm;
        check(&[
            // --array=0-2
            (slurm_env(0, 0, 2, 1, 3), None, Ok((0, 3, Slurm, false))),
            (slurm_env(2, 0, 2, 1, 3), None, Ok((2, 3, Slurm, false))),
            // --array=1-8 (the old example)
            (slurm_env(8, 1, 8, 1, 8), None, Ok((7, 8, Slurm, false))),
            // --array=0-4:2: tasks 0, 2, 4 are shards 1, 2, 3 of 3 (task 4 used to exit 3 and lose a shard)
            (slurm_env(0, 0, 4, 2, 3), None, Ok((0, 3, Slurm, false))),
            (slurm_env(2, 0, 4, 2, 3), None, Ok((1, 3, Slurm, false))),
            (slurm_env(4, 0, 4, 2, 3), None, Ok((2, 3, Slurm, false))),
            // --array=1-7:3%2
            (slurm_env(7, 1, 7, 3, 3), None, Ok((2, 3, Slurm, false))),
            // the same with the job's own count
            (slurm_env(4, 0, 4, 2, 3), Some(3), Ok((2, 3, Slurm, false))),
            // sbatch --array=0 resubmitting one task of a 3-shard job: shard 1 of 3, not the whole list
            (slurm_env(0, 0, 0, 1, 1), Some(3), Ok((0, 3, Slurm, true))),
            // ... and --array=2: shard 3 of 3 (task id mod count)
            (slurm_env(2, 2, 2, 1, 1), Some(3), Ok((2, 3, Slurm, true))),
            // with no count given: the whole list, stealing on, claims protect the running tasks' files
            (slurm_env(0, 0, 0, 1, 1), None, Ok((0, 1, Slurm, true))),
            // a list (--array=0,2,5) with the job's count: mod, stealing on
            (slurm_env(5, 0, 5, 1, 3), Some(3), Ok((2, 3, Slurm, true))),
            // more tasks than shards
            (slurm_env(4, 0, 4, 1, 5), Some(3), Ok((1, 3, Slurm, true))),
            // no MAX/STEP (hand-set variables): step 1
            (env(&[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "4")]), None, Ok((2, 4, Slurm, false))),
            (
                slurm_env(5, 0, 5, 1, 3),
                None,
                Err("SLURM_ARRAY_TASK_COUNT=3 does not fit SLURM_ARRAY_TASK_MIN=0, SLURM_ARRAY_TASK_MAX=5, SLURM_ARRAY_TASK_STEP=1: the array is a list (e.g. --array=0,2,5), not one range; give the job's shard count with --shard-count N or VIDEOFORGE_SHARD_COUNT".into()),
            ),
            (
                slurm_env(3, 0, 4, 2, 3),
                None,
                Err("SLURM_ARRAY_TASK_ID=3 is not on the array's grid SLURM_ARRAY_TASK_MIN=0 + k * SLURM_ARRAY_TASK_STEP=2".into()),
            ),
            (slurm_env(0, 1, 4, 1, 4), None, Err("SLURM_ARRAY_TASK_ID=0 is below SLURM_ARRAY_TASK_MIN=1".into())),
            (slurm_env(0, 0, 4, 0, 3), None, Err("SLURM_ARRAY_TASK_STEP=0: the step of an array is at least 1".into())),
            (slurm_env(0, 0, 4, 1, 0), None, Err("SLURM_ARRAY_TASK_COUNT=0 is 0: a job needs at least one shard".into())),
            (env(&[("SLURM_ARRAY_TASK_ID", "x")]), None, Err("SLURM_ARRAY_TASK_ID=\"x\" is not a whole number".into())),
            (
                env(&[("SLURM_ARRAY_TASK_ID", "2")]),
                None,
                Err("SLURM_ARRAY_TASK_ID=2 is set but not the number of shards: give it with --shard-count N, VIDEOFORGE_SHARD_COUNT or `[farm] shards` in the job file (Slurm older than 14.03 sets no SLURM_ARRAY_TASK_COUNT)".into()),
            ),
        ]);
    }

    #[test]
    fn every_file_is_covered_by_a_stepped_array() {
        // Indices of --array=0-4:2 and --array=3-15:4 are exactly 0..count.
        for (min, max, step) in [(0, 4, 2), (3, 15, 4), (1, 8, 1)] {
            let count = (max - min) / step + 1;
            let mut got: Vec<u32> = (min..=max)
                .step_by(step as usize)
                .map(|id| run(&slurm_env(id, min, max, step, count), None, None).unwrap().index)
                .collect();
            got.sort_unstable();
            assert_eq!(got, (0..count).collect::<Vec<_>>());
        }
    }

    #[test]
    fn kubernetes_and_aws_batch() {
        use ShardSource::{AwsBatch, Kubernetes};
        let k8s = |i: &str| env(&[("JOB_COMPLETION_INDEX", i)]);
        let aws = |i: &str, n: Option<&str>| {
            let mut v = env(&[("AWS_BATCH_JOB_ARRAY_INDEX", i)]);
            if let Some(n) = n {
                v.extend(env(&[("AWS_BATCH_JOB_ARRAY_SIZE", n)]));
            }
            v
        };
        check(&[
            (k8s("2"), Some(8), Ok((2, 8, Kubernetes, false))),
            // more completions than shards: extra pods help (mod), stealing on
            (k8s("9"), Some(8), Ok((1, 8, Kubernetes, true))),
            (
                k8s("2"),
                None,
                Err("JOB_COMPLETION_INDEX=2 is set but not the number of shards: give it with --shard-count N, VIDEOFORGE_SHARD_COUNT or `[farm] shards` in the job file (the Job's completions)".into()),
            ),
            (aws("1", Some("2")), None, Ok((1, 2, AwsBatch, false))),
            (aws("1", Some("2")), Some(2), Ok((1, 2, AwsBatch, false))),
            (aws("1", None), Some(4), Ok((1, 4, AwsBatch, false))),
            // a one-child resubmission of a 4-shard job
            (aws("0", Some("1")), Some(4), Ok((0, 4, AwsBatch, true))),
            (aws("3", Some("2")), None, Err("AWS_BATCH_JOB_ARRAY_INDEX=3 is outside 0..2 (AWS_BATCH_JOB_ARRAY_SIZE=2)".into())),
            (aws("0", Some("0")), None, Err("AWS_BATCH_JOB_ARRAY_SIZE=0 is 0: a job needs at least one shard".into())),
            (
                aws("0", None),
                None,
                Err("AWS_BATCH_JOB_ARRAY_INDEX=0 is set but not the number of shards: give it with --shard-count N, VIDEOFORGE_SHARD_COUNT, `[farm] shards` in the job file or AWS_BATCH_JOB_ARRAY_SIZE (the array's size)".into()),
            ),
            (env(&[]), None, Ok((0, 1, ShardSource::None, false))),
            (env(&[("SLURM_JOB_ID", "12")]), Some(4), Ok((0, 1, ShardSource::None, false))),
        ]);
    }

    #[test]
    fn the_flag_wins_and_is_checked() {
        let e = slurm_env(0, 0, 2, 1, 3);
        assert_eq!(short(run(&e, Some((1, 4)), None)), Ok((1, 4, ShardSource::Flag, false)));
        assert_eq!(short(run(&e, Some((1, 4)), Some(3))), Ok((1, 4, ShardSource::Flag, true)));
        assert_eq!(
            short(run(&e, Some((4, 4)), None)),
            Err("--shard 5/4: expected 1 <= I <= N (shards are numbered from 1)".into())
        );
        assert_eq!(
            short(run(&e, None, Some(0))),
            Err("the shard count from the job file is 0: a job needs at least one shard".into())
        );
    }

    #[test]
    fn the_summary_line_names_the_source_and_why_stealing_is_on() {
        let s = run(&slurm_env(0, 0, 0, 1, 1), None, Some(3)).unwrap();
        assert_eq!(s.shard(), Some((0, 3)));
        assert_eq!(
            s.describe(),
            "shard 1/3 from Slurm (SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_MAX=0 SLURM_ARRAY_TASK_STEP=1 SLURM_ARRAY_TASK_COUNT=1); count 3 from the job file; stealing on: the array has 1 task(s), the job file says 3 shards; task 0 takes shard 1 (task id mod 3)"
        );
        let s = run(&slurm_env(0, 0, 0, 1, 1), None, None).unwrap();
        assert_eq!(
            s.describe(),
            "shard 1/1 from Slurm (SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_MAX=0 SLURM_ARRAY_TASK_STEP=1 SLURM_ARRAY_TASK_COUNT=1); stealing on: a one-task array (a resubmission?) runs the whole list; claims skip the files other tasks hold"
        );
        let s = resolve(&Request {
            flag: None,
            planned: Some(Planned { count: 8, from: CountFrom::ShardCount }),
            env: &env(&[("JOB_COMPLETION_INDEX", "3")]),
        })
        .unwrap();
        assert_eq!(s.describe(), "shard 4/8 from Kubernetes (JOB_COMPLETION_INDEX=3); count 8 from --shard-count");
        assert_eq!(run(&env(&[]), Some((0, 2)), None).unwrap().describe(), "shard 1/2 from --shard");
        let none = run(&env(&[]), None, None).unwrap();
        assert_eq!(none.shard(), None);
        assert_eq!(none.describe(), "the whole work list (no --shard, no scheduler array variables)");
        let json = serde_json::to_value(run(&slurm_env(2, 0, 4, 2, 3), None, None).unwrap()).unwrap();
        assert_eq!(json["source"], "slurm");
        assert_eq!(json["index"], 1);
    }
}
