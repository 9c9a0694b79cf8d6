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

mod acquire;
mod guard;
mod record;
#[cfg(test)]
mod tests;

pub use acquire::{try_acquire, Acquired};
pub use guard::ClaimGuard;
pub use record::{
    claim_path, ClaimConfig, ClaimError, ClaimInfo, Holder, Owner, StaleClaim, StaleReason, CLAIM_VERSION,
};
