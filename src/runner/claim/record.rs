//! What a claim is on disk and who made it: the owner, the JSON record (padded so heartbeats rewrite it in place),
//! reading one back, and the errors.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Version of the claim file's JSON.
pub const CLAIM_VERSION: u32 = 1;

/// How often a held claim is refreshed, and after how long without a refresh it is considered abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimConfig {
    /// Interval of the heartbeat thread; zero: no thread (the owner calls [`ClaimGuard::heartbeat`] itself).
    pub heartbeat: Duration,
    /// A claim not refreshed for longer than this may be taken over.
    pub stale_after: Duration,
}

impl ClaimConfig {
    /// Heartbeats every `heartbeat`; stale after four of them.
    pub fn with_heartbeat(heartbeat: Duration) -> ClaimConfig {
        ClaimConfig { heartbeat, stale_after: heartbeat * 4 }
    }
}

impl Default for ClaimConfig {
    /// Every 10 s; stale after 40 s.
    fn default() -> ClaimConfig {
        ClaimConfig::with_heartbeat(Duration::from_secs(10))
    }
}

/// Who is claiming: one process, with a label for logs and the run it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// `/proc/sys/kernel/random/boot_id`: tells a rebooted host (or another machine with the same name) apart.
    pub boot_id: Option<String>,
    /// `/proc/self/ns/pid`: tells containers that share a host name apart.
    pub pid_ns: Option<String>,
    /// The run (e.g. the engine fingerprint id, or the scheduler's job id).
    pub run: String,
    /// A label for people, e.g. `slurm 41_2 worker 0 (Cpu) slot 0`.
    pub label: String,
}

impl Owner {
    /// This process.
    pub fn this_process(run: impl Into<String>, label: impl Into<String>) -> Owner {
        let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        Owner {
            host: read("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown".into()),
            pid: std::process::id(),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            pid_ns: std::fs::read_link("/proc/self/ns/pid").ok().map(|p| p.to_string_lossy().into_owned()),
            run: run.into(),
            label: label.into(),
        }
    }

    /// Whether `info` was written by a process of this host, boot and PID namespace that no longer exists.
    pub(super) fn sees_dead(&self, info: &ClaimInfo) -> bool {
        info.host == self.host
            && info.boot_id.is_some()
            && info.boot_id == self.boot_id
            && info.pid_ns.is_some()
            && info.pid_ns == self.pid_ns
            && info.pid != self.pid
            && !Path::new(&format!("/proc/{}", info.pid)).exists()
    }
}

/// What a claim file holds (JSON, padded with spaces so that heartbeats rewrite it in place).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimInfo {
    /// [`CLAIM_VERSION`].
    pub version: u32,
    /// Owner's host name.
    pub host: String,
    /// Owner's process id.
    pub pid: u32,
    /// Owner's boot id.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// Owner's PID namespace.
    #[serde(default)]
    pub pid_ns: Option<String>,
    /// Owner's run.
    pub run: String,
    /// Owner's label.
    pub label: String,
    /// Unique id of this claim.
    pub token: String,
    /// When the claim was created (Unix seconds, the owner's clock).
    pub started: u64,
    /// Last heartbeat (Unix seconds, the owner's clock; staleness is judged by the file's modification time).
    pub heartbeat: u64,
}

impl std::fmt::Display for ClaimInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {} (pid {}, run {}, claimed at {})", self.label, self.host, self.pid, self.run, self.started)
    }
}

/// A claim someone else holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its content; `None` when it could not be read (a claim made by exclusive create, still being written).
    pub info: Option<ClaimInfo>,
    /// Time since its last heartbeat, by the file system's clock.
    pub age: Duration,
    /// Whether another worker is taking it over right now (it was stale).
    pub taking_over: bool,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.info {
            Some(i) => write!(f, "claimed by {i}")?,
            None => write!(f, "claimed by an unknown worker")?,
        }
        write!(f, ", heartbeat {:.0}s ago", self.age.as_secs_f64())?;
        if self.taking_over {
            write!(f, ", being taken over")?;
        }
        Ok(())
    }
}

/// Why a claim was taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleReason {
    /// No heartbeat for longer than `stale_after`.
    Silent,
    /// Its owner ran on this host and its process is gone.
    OwnerDead,
}

/// A claim that was taken over (to be logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleClaim {
    /// Its content, when readable.
    pub info: Option<ClaimInfo>,
    /// Time since its last heartbeat, by the file system's clock.
    pub age: Duration,
    /// Why it was stale.
    pub reason: StaleReason,
}

impl std::fmt::Display for StaleClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.info {
            Some(i) => write!(f, "the claim of {i}")?,
            None => write!(f, "an unreadable claim")?,
        }
        match self.reason {
            StaleReason::Silent => write!(f, " had no heartbeat for {:.0}s", self.age.as_secs_f64()),
            StaleReason::OwnerDead => write!(f, " belongs to a process that no longer exists"),
        }
    }
}

/// Claim failures. I/O errors are retriable; a lost claim means "abandon this file".
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// A file-system operation failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The path operated on.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The output path has no file name to put a claim beside.
    #[error("{0}: an output path needs a file name to put a claim beside it")]
    NoFileName(PathBuf),
    /// Our claim was taken over (we were silent for longer than the stale interval) or removed.
    #[error("{path}: this worker's claim was {}", match .by { Some(i) => format!("taken over by {i}"), None => "removed by another worker".into() })]
    Lost {
        /// The claim file.
        path: PathBuf,
        /// Who holds it now, when readable.
        by: Option<Box<ClaimInfo>>,
    },
    /// The claim kept changing hands while we tried to acquire it.
    #[error("{0}: the claim changed hands {ATTEMPTS} times while this worker tried to acquire it")]
    Contended(PathBuf),
}

/// How often acquiring retries before giving up on a contended claim.
pub(super) const ATTEMPTS: usize = 8;

pub(super) fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> ClaimError + 'a {
    move |source| ClaimError::Io { path: path.to_path_buf(), op, source }
}

/// `.NAME.claim` beside `output`.
pub fn claim_path(output: &Path) -> Result<PathBuf, ClaimError> {
    let name = output.file_name().ok_or_else(|| ClaimError::NoFileName(output.to_path_buf()))?;
    Ok(output.with_file_name(format!(".{}.claim", name.to_string_lossy())))
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A token unique across hosts, processes and calls, safe in a file name.
pub(super) fn new_token(owner: &Owner) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let host: String =
        owner.host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(32).collect();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{host}-{:x}-{:x}-{:x}", owner.pid, nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The claim's JSON padded with spaces to `len` bytes (at least its own length rounded up to 64, plus room).
pub(super) fn encode(info: &ClaimInfo, len: usize) -> Vec<u8> {
    let mut v = serde_json::to_vec(info).unwrap_or_default();
    let want = len.max((v.len() + 32).div_ceil(64) * 64);
    v.resize(want - 1, b' ');
    v.push(b'\n');
    v
}

/// An existing claim, as read through a fresh open (NFS close-to-open consistency revalidates its attributes).
pub(super) struct Seen {
    pub(super) info: Option<ClaimInfo>,
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) mtime: SystemTime,
}

impl Seen {
    pub(super) fn same_file(&self, other: &Seen) -> bool {
        (self.dev, self.ino, self.mtime) == (other.dev, other.ino, other.mtime)
    }
}

/// Opens and reads a claim; `Ok(None)` when there is none.
pub(super) fn read_claim(path: &Path) -> Result<Option<Seen>, ClaimError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, "open claim")(e)),
    };
    let meta = f.metadata().map_err(io_err(path, "stat claim"))?;
    let mut text = Vec::new();
    f.read_to_end(&mut text).map_err(io_err(path, "read claim"))?;
    Ok(Some(Seen {
        info: serde_json::from_slice(&text).ok(),
        dev: meta.dev(),
        ino: meta.ino(),
        mtime: meta.modified().map_err(io_err(path, "stat claim"))?,
    }))
}

/// Whether hard links are unsupported here (some FUSE and SMB mounts): exclusive create is used instead.
pub(super) fn links_unsupported(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied)
}
