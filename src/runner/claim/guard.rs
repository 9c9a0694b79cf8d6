//! A held claim: its heartbeat thread, the check before publishing, and release.

use super::record::{encode, io_err, links_unsupported, read_claim, unix_now, ClaimConfig, ClaimError, ClaimInfo};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};

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
    pub(super) fn start(
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
