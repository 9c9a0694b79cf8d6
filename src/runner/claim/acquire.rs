//! Acquiring a claim: create by hard link (or exclusive create), or take over a stale one through an exclusive
//! take-over marker, or find it held.

use super::guard::ClaimGuard;
use super::record::{
    claim_path, encode, io_err, links_unsupported, new_token, read_claim, unix_now, ClaimConfig, ClaimError, ClaimInfo,
    Holder, Owner, Seen, StaleClaim, StaleReason, ATTEMPTS, CLAIM_VERSION,
};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
