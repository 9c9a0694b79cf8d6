//! Claims on shared storage: before a worker starts a file it creates `.NAME.claim` beside the output, so that any
//! number of workers (array tasks, resubmissions, thieves from other shards) process each file exactly once.
//!
//! The protocol (docs/operations.md, "Claims", says the same for operators):
//! - **Create** by hard link: the claim is written completely under a unique temporary name (`.NAME.claim.TOKEN.tmp`)
//!   and fsynced, then `link(2)`ed to `.NAME.claim`. `link` fails with `EEXIST` when a claim exists, atomically on
//!   local file systems, NFSv2/3/4 (the server decides) and Lustre, so exactly one worker wins. A reader never sees
//!   a half-written claim. When an NFS reply is lost and the retried `link` answers `EEXIST`, the temporary file's
//!   link count (2) says that it was ours after all (the method `open(2)` recommends). Where the file system has no
//!   hard links, `O_CREAT|O_EXCL` (`create_new`) on the claim name is used instead and the content follows.
//! - **Heartbeat**: the owner rewrites its claim in place (same length, `pwrite` + `fdatasync`) every `heartbeat`,
//!   from a thread owned by [`ClaimGuard`]. The claim's inode never changes while it is held, so "is it still
//!   mine" is "is the inode at `.NAME.claim` still the one I created".
//! - **Stale**: a claim is stale when its modification time is older than `stale_after`, measured against the
//!   modification time of the temporary file this worker has just written on the same file system: both times come
//!   from the same clock (the NFS server's), so the workers' clocks need not agree. The `heartbeat` field in the JSON
//!   is for people. A claim whose owner ran on this host (same host name, boot id and PID namespace) and whose PID
//!   no longer exists is stale at once.
//! - **Take-over** of a stale claim is arbitrated by one more exclusive create: `.NAME.claim.takeover-ID-G`, where
//!   ID names the stale claim (device, inode and modification time) and G a generation. The one worker that creates
//!   it checks that the stale claim is still in place, unchanged, and renames its own complete claim over it; the
//!   others see the marker and skip the file. A marker older than `stale_after` belongs to a taker that died in
//!   between; the next generation is tried. So two live workers never both take over, and nothing is ever
//!   displaced except a claim that was silent for `stale_after`.
//! - **Lost**: an owner that was silent for `stale_after` (a stopped process, a hung mount) and comes back finds
//!   another inode at its claim's name: [`ClaimGuard::check`] says so, and the worker must abandon the file before
//!   publishing it. The heartbeat thread notices too ([`ClaimGuard::is_lost`]).
//! - **Release** (after the output and its report are published, or the file failed): the claim is renamed to a
//!   unique name, and removed only if that is our inode (another worker's claim, moved by mistake, is put back).
//!
//! Storage assumptions: every worker sees the same directory (NFSv3 or newer, Lustre, CephFS, a local disk);
//! `link`, `rename` and exclusive create are atomic there; the mount keeps close-to-open consistency (no NFS
//! `nocto`), since a claim is opened before its modification time is read. On Lustre, modification times come from
//! the clients' clocks, so clocks must agree to well within `stale_after` (NTP does).

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
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
    fn sees_dead(&self, info: &ClaimInfo) -> bool {
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

/// The outcome of [`try_acquire`].
#[derive(Debug)]
pub enum Acquired {
    /// The file is ours.
    Claimed(ClaimGuard),
    /// The file is ours; it had a stale claim, which we replaced (log it).
    TakenOver(ClaimGuard, StaleClaim),
    /// Another worker holds a live claim: skip the file.
    Held(Holder),
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

const ATTEMPTS: usize = 8;

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> ClaimError + 'a {
    move |source| ClaimError::Io { path: path.to_path_buf(), op, source }
}

/// `.NAME.claim` beside `output`.
pub fn claim_path(output: &Path) -> Result<PathBuf, ClaimError> {
    let name = output.file_name().ok_or_else(|| ClaimError::NoFileName(output.to_path_buf()))?;
    Ok(output.with_file_name(format!(".{}.claim", name.to_string_lossy())))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A token unique across hosts, processes and calls, safe in a file name.
fn new_token(owner: &Owner) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let host: String =
        owner.host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(32).collect();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{host}-{:x}-{:x}-{:x}", owner.pid, nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The claim's JSON padded with spaces to `len` bytes (at least its own length rounded up to 64, plus room).
fn encode(info: &ClaimInfo, len: usize) -> Vec<u8> {
    let mut v = serde_json::to_vec(info).unwrap_or_default();
    let want = len.max((v.len() + 32).div_ceil(64) * 64);
    v.resize(want - 1, b' ');
    v.push(b'\n');
    v
}

/// An existing claim, as read through a fresh open (NFS close-to-open consistency revalidates its attributes).
struct Seen {
    info: Option<ClaimInfo>,
    dev: u64,
    ino: u64,
    mtime: SystemTime,
}

impl Seen {
    fn same_file(&self, other: &Seen) -> bool {
        (self.dev, self.ino, self.mtime) == (other.dev, other.ino, other.mtime)
    }
}

/// Opens and reads a claim; `Ok(None)` when there is none.
fn read_claim(path: &Path) -> Result<Option<Seen>, ClaimError> {
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
fn links_unsupported(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied)
}

/// Tries to claim `output` for `owner`: a new claim, a take-over of a stale one, or "held by someone else".
pub fn try_acquire(output: &Path, owner: &Owner, config: &ClaimConfig) -> Result<Acquired, ClaimError> {
    let claim = claim_path(output)?;
    let dir = claim.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let base = claim.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let token = new_token(owner);
    let now = unix_now();
    let info = ClaimInfo {
        version: CLAIM_VERSION,
        host: owner.host.clone(),
        pid: owner.pid,
        boot_id: owner.boot_id.clone(),
        pid_ns: owner.pid_ns.clone(),
        run: owner.run.clone(),
        label: owner.label.clone(),
        token: token.clone(),
        started: now,
        heartbeat: now,
    };
    let bytes = encode(&info, 0);
    let tmp = dir.join(format!("{base}.{token}.tmp"));
    let file = write_new(&tmp, &bytes)?;
    // The file system's "now": the modification time it has just given our temporary file.
    let fs_now = file.metadata().and_then(|m| m.modified()).map_err(io_err(&tmp, "stat"))?;
    let result = acquire_with(&claim, &dir, &base, &tmp, file, &info, bytes.len(), fs_now, owner, config);
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Creates `path` exclusively with `bytes`, fsynced.
fn write_new(path: &Path, bytes: &[u8]) -> Result<File, ClaimError> {
    let mut f =
        OpenOptions::new().read(true).write(true).create_new(true).open(path).map_err(io_err(path, "create"))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| {
        let _ = std::fs::remove_file(path);
        io_err(path, "write")(e)
    })?;
    Ok(f)
}

#[allow(clippy::too_many_arguments)]
fn acquire_with(
    claim: &Path,
    dir: &Path,
    base: &str,
    tmp: &Path,
    file: File,
    info: &ClaimInfo,
    len: usize,
    fs_now: SystemTime,
    owner: &Owner,
    config: &ClaimConfig,
) -> Result<Acquired, ClaimError> {
    let tmp_meta = file.metadata().map_err(io_err(tmp, "stat"))?;
    let guard = |file: File, meta: std::fs::Metadata| ClaimGuard::start(claim, file, &meta, info.clone(), len, config);
    for _ in 0..ATTEMPTS {
        match std::fs::hard_link(tmp, claim) {
            Ok(()) => return Ok(Acquired::Claimed(guard(file, tmp_meta)?)),
            Err(e) if links_unsupported(&e) => {
                // No hard links: exclusive create of the claim itself (readers may briefly see it empty).
                match OpenOptions::new().read(true).write(true).create_new(true).open(claim) {
                    Ok(mut f) => {
                        let bytes = encode(info, len);
                        f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(io_err(claim, "write claim"))?;
                        let meta = f.metadata().map_err(io_err(claim, "stat claim"))?;
                        return Ok(Acquired::Claimed(guard(f, meta)?));
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_err(claim, "create claim")(e)),
                }
            }
            Err(e) => {
                // A lost NFS reply: the link was made, the retry answered EEXIST. Our inode has two names then.
                let linked = std::fs::metadata(tmp).map(|m| m.nlink() == 2).unwrap_or(false)
                    && std::fs::metadata(claim)
                        .map(|m| (m.dev(), m.ino()) == (tmp_meta.dev(), tmp_meta.ino()))
                        .unwrap_or(false);
                if linked {
                    return Ok(Acquired::Claimed(guard(file, tmp_meta)?));
                }
                if e.kind() != io::ErrorKind::AlreadyExists {
                    return Err(io_err(claim, "link claim")(e));
                }
            }
        }
        let Some(seen) = read_claim(claim)? else { continue }; // released in between: try again
        let age = fs_now.duration_since(seen.mtime).unwrap_or(Duration::ZERO);
        let dead = seen.info.as_ref().is_some_and(|i| owner.sees_dead(i));
        if age <= config.stale_after && !dead {
            return Ok(Acquired::Held(Holder { info: seen.info, age, taking_over: false }));
        }
        let reason = if dead { StaleReason::OwnerDead } else { StaleReason::Silent };
        match take_over(claim, dir, base, tmp, &seen, config)? {
            TakeOver::Done => {
                let stale = StaleClaim { info: seen.info, age, reason };
                return Ok(Acquired::TakenOver(guard(file, tmp_meta)?, stale));
            }
            TakeOver::Busy => return Ok(Acquired::Held(Holder { info: seen.info, age, taking_over: true })),
            TakeOver::Changed => continue,
        }
    }
    Err(ClaimError::Contended(claim.to_path_buf()))
}

enum TakeOver {
    /// Our claim replaced the stale one.
    Done,
    /// Another worker is taking it over.
    Busy,
    /// The claim changed meanwhile: look again.
    Changed,
}

/// Replaces the stale claim `seen` by our complete temporary claim `tmp`, if this worker wins the exclusive
/// take-over marker for exactly that claim.
fn take_over(
    claim: &Path,
    dir: &Path,
    base: &str,
    tmp: &Path,
    seen: &Seen,
    config: &ClaimConfig,
) -> Result<TakeOver, ClaimError> {
    let mtime_ns = seen.mtime.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let id = format!("{:x}-{:x}-{:x}", seen.dev, seen.ino, mtime_ns);
    let marker = |g: u32| dir.join(format!("{base}.takeover-{id}-{g}"));
    let mut generation = 0;
    loop {
        let path = marker(generation);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => {
                let _ = f.sync_all();
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // A marker is live while its taker is at work; an old one was left by a taker that died.
                let fs_now = std::fs::metadata(tmp).and_then(|m| m.modified()).map_err(io_err(tmp, "stat"))?;
                let old = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .map(|t| fs_now.duration_since(t).unwrap_or(Duration::ZERO) > config.stale_after)
                    .unwrap_or(true);
                if !old {
                    return Ok(TakeOver::Busy);
                }
                generation += 1;
                if generation as usize > ATTEMPTS {
                    return Err(ClaimError::Contended(claim.to_path_buf()));
                }
            }
            Err(e) => return Err(io_err(&path, "create take-over marker")(e)),
        }
    }
    let remove_markers = || {
        for g in 0..=generation {
            let _ = std::fs::remove_file(marker(g));
        }
    };
    // Only the stale claim's own owner could still change it (it came back): look once more, then replace it.
    let now = read_claim(claim);
    let unchanged = matches!(&now, Ok(Some(s)) if s.same_file(seen));
    if !unchanged {
        remove_markers();
        now?;
        return Ok(TakeOver::Changed);
    }
    let renamed = std::fs::rename(tmp, claim).map_err(io_err(claim, "replace stale claim"));
    remove_markers();
    renamed.map(|()| TakeOver::Done)
}

/// A claim this worker holds. Its heartbeat thread keeps it live; dropping it (or [`ClaimGuard::release`]) stops
/// the thread and removes the claim if it is still ours. Check [`ClaimGuard::check`] just before publishing.
#[derive(Debug)]
pub struct ClaimGuard {
    shared: Arc<Shared>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    released: bool,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    file: File,
    dev: u64,
    ino: u64,
    info: Mutex<ClaimInfo>,
    len: usize,
    lost: Mutex<Option<Option<Box<ClaimInfo>>>>,
}

impl Shared {
    /// Whether the claim at our path is still our inode; `Err(Lost)` otherwise.
    fn verify(&self) -> Result<(), ClaimError> {
        match read_claim(&self.path)? {
            Some(s) if (s.dev, s.ino) == (self.dev, self.ino) => Ok(()),
            other => {
                let by = other.and_then(|s| s.info).map(Box::new);
                if let Ok(mut l) = self.lost.lock() {
                    *l = Some(by.clone());
                }
                Err(ClaimError::Lost { path: self.path.clone(), by })
            }
        }
    }

    fn beat(&self) -> Result<(), ClaimError> {
        if let Ok(Some(by)) = self.lost.lock().map(|l| l.clone()) {
            return Err(ClaimError::Lost { path: self.path.clone(), by });
        }
        self.verify()?;
        let bytes = {
            let mut info = self.info.lock().unwrap_or_else(|p| p.into_inner());
            info.heartbeat = unix_now();
            encode(&info, self.len)
        };
        // Same length, in place: the inode (our identity) stays, and the modification time moves on.
        self.file.write_all_at(&bytes, 0).and_then(|()| self.file.sync_data()).map_err(io_err(&self.path, "heartbeat"))
    }
}

impl ClaimGuard {
    fn start(
        path: &Path,
        file: File,
        meta: &std::fs::Metadata,
        info: ClaimInfo,
        len: usize,
        config: &ClaimConfig,
    ) -> Result<ClaimGuard, ClaimError> {
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            info: Mutex::new(info),
            len,
            lost: Mutex::new(None),
        });
        let mut guard = ClaimGuard { shared, stop: None, thread: None, released: false };
        if !config.heartbeat.is_zero() {
            let (tx, rx) = mpsc::channel::<()>();
            let shared = guard.shared.clone();
            let interval = config.heartbeat;
            let thread = std::thread::Builder::new()
                .name("claim-heartbeat".into())
                .spawn(move || loop {
                    match rx.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {
                            if let Err(ClaimError::Lost { .. }) = shared.beat() {
                                return;
                            }
                        }
                        _ => return,
                    }
                })
                .map_err(io_err(path, "start heartbeat thread"))?;
            guard.stop = Some(tx);
            guard.thread = Some(thread);
        }
        Ok(guard)
    }

    /// The claim file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// What the claim says.
    pub fn info(&self) -> ClaimInfo {
        self.shared.info.lock().map(|i| i.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Refreshes the heartbeat now (the thread does it every interval); `Err(Lost)` if the claim is no longer ours.
    pub fn heartbeat(&self) -> Result<(), ClaimError> {
        self.shared.beat()
    }

    /// Whether the claim is still ours, looked up now. Call it just before publishing the output.
    pub fn check(&self) -> Result<(), ClaimError> {
        self.shared.verify()
    }

    /// Whether the heartbeat thread (or a check) found the claim taken over or removed.
    pub fn is_lost(&self) -> bool {
        self.shared.lost.lock().map(|l| l.is_some()).unwrap_or(true)
    }

    fn stop_thread(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops the heartbeat and removes the claim if it is still ours (`Err(Lost)` if it was not).
    pub fn release(mut self) -> Result<(), ClaimError> {
        self.stop_thread();
        self.released = true;
        self.remove()
    }

    fn remove(&self) -> Result<(), ClaimError> {
        let s = &self.shared;
        if let Ok(Some(by)) = s.lost.lock().map(|l| l.clone()) {
            return Err(ClaimError::Lost { path: s.path.clone(), by });
        }
        // Move it aside under a unique name, then look at what was moved: ours is removed, anyone else's put back.
        let token = s.info.lock().map(|i| i.token.clone()).unwrap_or_else(|p| p.into_inner().token.clone());
        let name = s.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let aside = s.path.with_file_name(format!("{name}.{token}.released"));
        match std::fs::rename(&s.path, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ClaimError::Lost { path: s.path.clone(), by: None });
            }
            Err(e) => return Err(io_err(&s.path, "release claim")(e)),
        }
        match read_claim(&aside)? {
            Some(m) if (m.dev, m.ino) == (s.dev, s.ino) => {
                std::fs::remove_file(&aside).map_err(io_err(&aside, "remove released claim"))
            }
            other => {
                // Not ours (we had been taken over): put it back, unless a third worker has claimed meanwhile.
                match std::fs::hard_link(&aside, &s.path) {
                    Err(e) if links_unsupported(&e) => {
                        let _ = std::fs::rename(&aside, &s.path);
                    }
                    _ => {
                        let _ = std::fs::remove_file(&aside);
                    }
                }
                Err(ClaimError::Lost { path: s.path.clone(), by: other.and_then(|m| m.info).map(Box::new) })
            }
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        self.stop_thread();
        if !self.released {
            let _ = self.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    fn owner(label: &str) -> Owner {
        Owner::this_process("run-1", label)
    }

    /// A claim written by hand, as another worker (or a dead one) would have left it, `age` old by its mtime.
    fn plant(output: &Path, info: &ClaimInfo, age: Duration) {
        let path = claim_path(output).unwrap();
        std::fs::write(&path, encode(info, 0)).unwrap();
        let f = File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    }

    fn foreign(pid: u32) -> ClaimInfo {
        ClaimInfo {
            version: CLAIM_VERSION,
            host: "other-node".into(),
            pid,
            boot_id: Some("another-boot".into()),
            pid_ns: Some("pid:[1]".into()),
            run: "run-0".into(),
            label: "slurm 7_1 worker 0".into(),
            token: format!("other-node-{pid:x}"),
            started: 1_700_000_000,
            heartbeat: 1_700_000_000,
        }
    }

    const QUIET: ClaimConfig = ClaimConfig { heartbeat: Duration::ZERO, stale_after: Duration::from_secs(40) };

    fn leftovers(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn the_claim_is_a_hidden_file_beside_the_output() {
        assert_eq!(claim_path(Path::new("out/a.x2.mp4")).unwrap(), PathBuf::from("out/.a.x2.mp4.claim"));
        assert_eq!(
            claim_path(Path::new("/")).unwrap_err().to_string(),
            "/: an output path needs a file name to put a claim beside it"
        );
    }

    #[test]
    fn a_held_claim_makes_others_skip_and_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.mp4");
        let Acquired::Claimed(guard) = try_acquire(&out, &owner("first"), &QUIET).unwrap() else { panic!() };
        let text = std::fs::read_to_string(claim_path(&out).unwrap()).unwrap();
        let info: ClaimInfo = serde_json::from_str(&text).unwrap();
        assert_eq!((info.label.as_str(), info.pid, info.run.as_str()), ("first", std::process::id(), "run-1"));
        match try_acquire(&out, &owner("second"), &QUIET).unwrap() {
            Acquired::Held(h) => {
                assert_eq!(h.info.unwrap().label, "first");
                assert!(!h.taking_over);
            }
            other => panic!("{other:?}"),
        }
        guard.check().unwrap();
        guard.release().unwrap();
        assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "no claim, temporary or marker left");
        assert!(matches!(try_acquire(&out, &owner("second"), &QUIET).unwrap(), Acquired::Claimed(_)));
        // Dropping the guard released it too.
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn threads_racing_for_one_file_exactly_one_wins_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let threads = 8;
        for round in 0..150 {
            let out = dir.path().join(format!("f{round}.mp4"));
            let barrier = Barrier::new(threads);
            let results: Vec<Acquired> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let (out, barrier) = (&out, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            try_acquire(out, &owner(&format!("t{t}")), &QUIET).unwrap()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let winners: Vec<&ClaimGuard> =
                results.iter().filter_map(|r| if let Acquired::Claimed(g) = r { Some(g) } else { None }).collect();
            assert_eq!(winners.len(), 1, "round {round}: {results:?}");
            assert_eq!(results.iter().filter(|r| matches!(r, Acquired::Held(_))).count(), threads - 1);
            winners[0].check().unwrap();
            drop(results);
            assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "round {round}");
        }
    }

    #[test]
    fn a_silent_claim_is_taken_over_and_says_whose_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.mp4");
        plant(&out, &foreign(4242), Duration::from_secs(3600));
        match try_acquire(&out, &owner("thief"), &QUIET).unwrap() {
            Acquired::TakenOver(g, stale) => {
                assert_eq!(stale.reason, StaleReason::Silent);
                assert!(stale.age >= Duration::from_secs(3599), "{:?}", stale.age);
                let said = stale.to_string();
                assert!(
                    said.starts_with("the claim of slurm 7_1 worker 0 on other-node (pid 4242, run run-0, claimed at 1700000000) had no heartbeat for 36"),
                    "{said}"
                );
                assert_eq!(g.info().label, "thief");
                g.check().unwrap();
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_live_claim_of_another_host_is_held_whatever_its_heartbeat_field_says() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.mp4");
        // The JSON heartbeat is years old (a skewed clock), the file's modification time is fresh.
        plant(&out, &foreign(4242), Duration::ZERO);
        match try_acquire(&out, &owner("late"), &QUIET).unwrap() {
            Acquired::Held(h) => assert_eq!(h.info.unwrap().host, "other-node"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_dead_owner_on_this_host_is_taken_over_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.mp4");
        let me = owner("me");
        let mut dead = foreign(0);
        (dead.host, dead.boot_id, dead.pid_ns) = (me.host.clone(), me.boot_id.clone(), me.pid_ns.clone());
        dead.pid = 4_194_304 + 17; // above any pid_max: no such process
        plant(&out, &dead, Duration::ZERO);
        match try_acquire(&out, &me, &QUIET).unwrap() {
            Acquired::TakenOver(_, stale) => {
                assert_eq!(stale.reason, StaleReason::OwnerDead);
                assert!(stale.to_string().ends_with("belongs to a process that no longer exists"), "{stale}");
            }
            other => panic!("{other:?}"),
        }
        // The same claim from another boot of this host name is not judged by its PID.
        let out = dir.path().join("b.mp4");
        dead.boot_id = Some("another-boot".into());
        plant(&out, &dead, Duration::ZERO);
        assert!(matches!(try_acquire(&out, &me, &QUIET).unwrap(), Acquired::Held(_)));
    }

    #[test]
    fn racing_take_overs_of_one_stale_claim_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let threads = 8;
        for round in 0..100 {
            let out = dir.path().join(format!("f{round}.mp4"));
            plant(&out, &foreign(round), Duration::from_secs(600));
            let barrier = Barrier::new(threads);
            let results: Vec<Acquired> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let (out, barrier) = (&out, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            try_acquire(out, &owner(&format!("t{t}")), &QUIET).unwrap()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let taken: Vec<&ClaimGuard> =
                results.iter().filter_map(|r| if let Acquired::TakenOver(g, _) = r { Some(g) } else { None }).collect();
            assert_eq!(taken.len(), 1, "round {round}: {results:?}");
            assert!(results.iter().all(|r| !matches!(r, Acquired::Claimed(_))), "round {round}: {results:?}");
            taken[0].check().unwrap();
            drop(results);
            assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "round {round}");
        }
    }

    #[test]
    fn the_heartbeat_keeps_a_claim_live_and_stops_when_released() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.mp4");
        let config = ClaimConfig { heartbeat: Duration::from_millis(40), stale_after: Duration::from_millis(250) };
        let Acquired::Claimed(guard) = try_acquire(&out, &owner("busy"), &config).unwrap() else { panic!() };
        let path = claim_path(&out).unwrap();
        let first = std::fs::metadata(&path).unwrap();
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(200));
            match try_acquire(&out, &owner("other"), &config).unwrap() {
                Acquired::Held(h) => assert!(h.age < config.stale_after, "{h}"),
                other => panic!("a claim with a heartbeat was taken: {other:?}"),
            }
        }
        let later = std::fs::metadata(&path).unwrap();
        assert_eq!(later.ino(), first.ino(), "heartbeats rewrite the claim in place");
        assert!(later.modified().unwrap() > first.modified().unwrap());
        let info: ClaimInfo = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(info.heartbeat >= info.started);
        assert!(!guard.is_lost());
        guard.release().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn without_heartbeats_a_claim_goes_stale_and_its_old_owner_finds_out() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.mp4");
        let config = ClaimConfig { heartbeat: Duration::ZERO, stale_after: Duration::from_millis(100) };
        let Acquired::Claimed(old) = try_acquire(&out, &owner("stalled"), &config).unwrap() else { panic!() };
        std::thread::sleep(Duration::from_millis(250));
        let Acquired::TakenOver(new, stale) = try_acquire(&out, &owner("rescuer"), &config).unwrap() else { panic!() };
        assert_eq!(stale.info.unwrap().label, "stalled");
        // The old owner comes back: its claim is gone, it must abandon the file and leave the new claim alone.
        let lost = old.check().unwrap_err().to_string();
        assert!(
            lost.ends_with("a.mp4.claim: this worker's claim was taken over by rescuer on ")
                || lost.contains("taken over by rescuer on "),
            "{lost}"
        );
        assert!(old.is_lost());
        assert!(matches!(old.heartbeat(), Err(ClaimError::Lost { .. })));
        assert!(matches!(old.release(), Err(ClaimError::Lost { .. })));
        new.check().unwrap();
        assert_eq!(new.info().label, "rescuer");
        new.release().unwrap();
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn an_unreadable_claim_is_judged_by_its_age_alone() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.mp4");
        let path = claim_path(&out).unwrap();
        std::fs::write(&path, b"").unwrap(); // made by exclusive create, content not written yet
        match try_acquire(&out, &owner("x"), &QUIET).unwrap() {
            Acquired::Held(h) => {
                assert_eq!(h.info, None);
                assert!(h.to_string().starts_with("claimed by an unknown worker, heartbeat "), "{h}");
            }
            other => panic!("{other:?}"),
        }
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(99))
            .unwrap();
        match try_acquire(&out, &owner("x"), &QUIET).unwrap() {
            Acquired::TakenOver(_, stale) => assert_eq!(stale.info, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_take_over_in_progress_is_respected_and_a_dead_takers_marker_is_not_forever() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.mp4");
        plant(&out, &foreign(1), Duration::from_secs(600));
        let meta = std::fs::metadata(claim_path(&out).unwrap()).unwrap();
        let ns = meta.modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let marker =
            |g: u32| dir.path().join(format!(".a.mp4.claim.takeover-{:x}-{:x}-{ns:x}-{g}", meta.dev(), meta.ino()));
        std::fs::write(marker(0), b"").unwrap();
        match try_acquire(&out, &owner("x"), &QUIET).unwrap() {
            Acquired::Held(h) => assert!(h.taking_over, "{h}"),
            other => panic!("{other:?}"),
        }
        // The taker died: its marker grows old, and the next generation decides.
        File::options()
            .write(true)
            .open(marker(0))
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(600))
            .unwrap();
        assert!(matches!(try_acquire(&out, &owner("x"), &QUIET).unwrap(), Acquired::TakenOver(..)));
        assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "markers are cleaned up");
    }

    #[test]
    fn errors_read_well() {
        let lost = ClaimError::Lost { path: "out/.a.mp4.claim".into(), by: Some(Box::new(foreign(7))) };
        assert_eq!(
            lost.to_string(),
            "out/.a.mp4.claim: this worker's claim was taken over by slurm 7_1 worker 0 on other-node (pid 7, run run-0, claimed at 1700000000)"
        );
        let gone = ClaimError::Lost { path: "out/.a.mp4.claim".into(), by: None };
        assert_eq!(gone.to_string(), "out/.a.mp4.claim: this worker's claim was removed by another worker");
        assert_eq!(
            ClaimError::Contended("out/.a.mp4.claim".into()).to_string(),
            "out/.a.mp4.claim: the claim changed hands 8 times while this worker tried to acquire it"
        );
    }
}
