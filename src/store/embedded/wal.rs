//! Writing the embedded store's files: the log of the current generation (`wal-<N>.jsonl`),
//! appended one record per `write` call, and the snapshot (`snapshot.jsonl`), replaced
//! atomically (write a temporary file, fsync, rename, fsync the directory). A new log is made
//! the same way, header first, so a log under its real name always has a whole header.
//!
//! A failed append is cut back off the file at once (`set_len` to the last good length), so no
//! later record ever follows a partial one; if even the cut fails the log refuses appends until
//! a later one manages the cut first.

use super::super::StoreError;
use super::format::{self, FileKind};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The snapshot's file name.
pub const SNAPSHOT: &str = "snapshot.jsonl";
/// The log of format 1 (one log, no generations).
pub const OLD_LOG: &str = "wal.jsonl";
/// Temporary files are the real name plus this.
pub const TMP: &str = ".tmp";

/// The log file of `generation`.
pub fn log_name(generation: u64) -> String {
    format!("wal-{generation}.jsonl")
}

/// The generation in a log file's name, if it is one.
pub fn log_generation(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".jsonl")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Makes renames and removals in `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The log being appended to.
pub(super) struct Log {
    file: File,
    path: PathBuf,
    generation: u64,
    /// The end of the last whole record.
    good_len: u64,
    /// False while a failed append's partial record could not be cut off.
    healthy: bool,
    /// The last append failed (a full disk): the node is not ready until one succeeds.
    failing: bool,
    /// Tests only: the next write stops after this many bytes and fails.
    #[cfg(test)]
    pub(super) fail_write_after: Option<usize>,
    /// Tests only: how many cut-backs fail.
    #[cfg(test)]
    pub(super) failed_cuts: u32,
}

impl Log {
    /// Makes a new, durable log of `generation` in `dir`, holding only its header.
    pub(super) fn create(dir: &Path, generation: u64) -> Result<Log, StoreError> {
        let path = dir.join(log_name(generation));
        let tmp = dir.join(format!("{}{TMP}", log_name(generation)));
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let mut file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&tmp)?;
        let header = format::encode_header(FileKind::Log, generation);
        file.write_all(&header)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        sync_dir(dir)?;
        Ok(Log {
            file,
            path,
            generation,
            good_len: header.len() as u64,
            healthy: true,
            failing: false,
            #[cfg(test)]
            fail_write_after: None,
            #[cfg(test)]
            failed_cuts: 0,
        })
    }

    /// This log's generation.
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether appends go through: no partial record is left and the last append worked.
    pub(super) fn healthy(&self) -> bool {
        self.healthy && !self.failing
    }

    /// Appends one encoded record and hands it to the OS before returning (no fsync: a
    /// process crash keeps it, a power cut may not).
    pub(super) fn append(&mut self, line: &[u8]) -> Result<(), StoreError> {
        if !self.healthy {
            // A partial record is still there: cut it off before writing anything after it.
            self.cut()?;
            self.healthy = true;
            tracing::info!(file = %self.path.display(), "the log is writable again");
        }
        // One write call per record, so a crash can tear at most the last line.
        match self.write(line) {
            Ok(()) => {
                self.good_len += line.len() as u64;
                if std::mem::take(&mut self.failing) {
                    tracing::info!(file = %self.path.display(), "appends to the log work again");
                }
                Ok(())
            }
            Err(e) => {
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::error!(file = %self.path.display(), error = %e,
                        "an append to the log failed; the node is not ready until one succeeds");
                }
                if let Err(cut) = self.cut() {
                    self.healthy = false;
                    tracing::error!(file = %self.path.display(), error = %cut,
                        "cannot cut a failed append off the log; refusing appends until it can");
                }
                Err(e.into())
            }
        }
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some(written) = self.fail_write_after.take() {
            let written = written.min(line.len());
            self.file.write_all(&line[..written])?;
            return Err(std::io::Error::other("injected write failure"));
        }
        self.file.write_all(line)
    }

    /// Truncates the file to its last whole record.
    fn cut(&mut self) -> std::io::Result<()> {
        #[cfg(test)]
        if self.failed_cuts > 0 {
            self.failed_cuts -= 1;
            return Err(std::io::Error::other("injected cut failure"));
        }
        self.file.set_len(self.good_len)
    }
}

/// Replaces the snapshot in `dir` with one of `generation` holding `records` (encoded lines).
pub(super) fn write_snapshot(
    dir: &Path,
    generation: u64,
    records: impl Iterator<Item = Vec<u8>>,
) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{SNAPSHOT}{TMP}"));
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
    out.write_all(&format::encode_header(FileKind::Snapshot, generation))?;
    let mut count = 0u64;
    for record in records {
        out.write_all(&record)?;
        count += 1;
    }
    out.write_all(&format::encode_trailer(count))?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    fs::rename(&tmp, dir.join(SNAPSHOT))?;
    sync_dir(dir)?;
    Ok(())
}

/// Removes the logs older than `generation` (folded into its snapshot) and leftover temporary
/// files. Only called once the snapshot of `generation` is durable.
pub(super) fn remove_before(dir: &Path, generation: u64) -> Result<(), StoreError> {
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let old_log = log_generation(name).is_some_and(|g| g < generation);
        let leftover = name.ends_with(TMP)
            && (name.starts_with(SNAPSHOT) || log_generation(&name[..name.len() - 4]).is_some());
        if old_log || leftover {
            match fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
    }
    sync_dir(dir)?;
    Ok(())
}
