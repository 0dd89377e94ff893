//! `usher store verify` and `usher store repair`, as functions that return what they found
//! (main.rs only prints). Both hold the data directory's lock, so they refuse while usher runs.
//! Repair keeps the longest valid prefix of the state and never deletes a file: every file it
//! replaces is moved into `data_dir/damaged-<UTC timestamp>/`.

use super::super::StoreError;
use super::files::{self, FileReport};
use super::lock::DirLock;
use super::wal::{log_name, sync_dir, SNAPSHOT};
use super::EmbeddedStore;
use std::path::{Path, PathBuf};

/// What `verify` found.
#[derive(Debug)]
pub struct Verification {
    /// Every store file, in reading order.
    pub files: Vec<FileReport>,
    /// Why the store would not open (`None`: it would).
    pub problem: Option<StoreError>,
    /// No store files: the store would start empty.
    pub new: bool,
}

impl Verification {
    /// Whether `EmbeddedStore::open` would succeed (cutting off a torn tail is fine).
    pub fn would_open(&self) -> bool {
        self.problem.is_none()
    }
}

/// Reads every file of the store in `dir` without changing any.
pub fn verify(dir: &Path) -> Result<Verification, StoreError> {
    if !dir.is_dir() {
        return Ok(Verification {
            files: Vec::new(),
            problem: None,
            new: true,
        });
    }
    let _held = DirLock::try_acquire(dir)?;
    let reading = files::read_dir(dir)?;
    Ok(Verification {
        files: reading.reports,
        problem: reading.error,
        new: reading.new,
    })
}

/// What `repair` did.
#[derive(Debug)]
pub struct Repair {
    /// What was wrong (`None`: nothing, and nothing was changed).
    pub problem: Option<StoreError>,
    /// Where the replaced files went.
    pub moved_to: Option<PathBuf>,
    /// Every file read, with what the repaired store lost of it.
    pub files: Vec<FileReport>,
    /// Records the repaired store holds.
    pub kept_records: u64,
}

/// Repairs the store in `dir`: keeps the longest valid prefix (a valid snapshot and the valid
/// prefix of its logs; of a damaged snapshot, its valid prefix and none of the logs after
/// it; of format 1 files, every readable record), writes it as a fresh snapshot and log, and
/// moves every file it replaces into `damaged-<UTC timestamp of now_ms>/`. Refuses files of an
/// unknown (newer) format. Does nothing if the store would open as it is.
pub fn repair(dir: &Path, now_ms: u64) -> Result<Repair, StoreError> {
    let held = DirLock::try_acquire(dir)?;
    let reading = files::read_dir(dir)?;
    if reading.error.is_none() && reading.torn.is_empty() {
        return Ok(Repair {
            problem: None,
            moved_to: None,
            files: reading.reports,
            kept_records: reading.records.len() as u64,
        });
    }
    if let Some(e @ StoreError::Unsupported { .. }) = &reading.error {
        if !reading.format_1 {
            return Err(StoreError::Unsupported {
                file: match e {
                    StoreError::Unsupported { file, .. } => file.clone(),
                    _ => dir.to_path_buf(),
                },
                what: format!("{e}; repair does not touch files of another format"),
            });
        }
    }
    let kept_records = reading.records.len() as u64;
    let generation = reading.highest + 1;
    // 1. The repaired state, written whole in a staging directory first.
    let staging = dir.join(".repair");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    {
        let staged = EmbeddedStore::from_records(
            DirLock::try_acquire(&staging)?,
            reading.records,
            reading.highest,
            now_ms,
        );
        staged.close()?;
    }
    // 2. Every old file linked into the damaged directory (a copy that costs nothing).
    let aside = aside_dir(dir, now_ms)?;
    for file in &reading.files {
        if let Some(name) = file.file_name() {
            std::fs::hard_link(file, aside.join(name))?;
        }
    }
    sync_dir(&aside)?;
    // 3. Old files out, new ones in: the snapshot last, by an atomic rename over the old one,
    // so a crash in between leaves a store that refuses to open rather than one that starts
    // empty or half-repaired.
    for file in reading.files.iter().filter(|f| !f.ends_with(SNAPSHOT)) {
        std::fs::remove_file(file)?;
    }
    sync_dir(dir)?;
    let log = log_name(generation);
    std::fs::rename(staging.join(&log), dir.join(&log))?;
    sync_dir(dir)?;
    std::fs::rename(staging.join(SNAPSHOT), dir.join(SNAPSHOT))?;
    sync_dir(dir)?;
    std::fs::remove_dir_all(&staging)?;
    drop(held);
    Ok(Repair {
        problem: reading.error,
        moved_to: Some(aside),
        files: reading.reports,
        kept_records,
    })
}

/// A new `damaged-<UTC timestamp>` directory in `dir`.
fn aside_dir(dir: &Path, now_ms: u64) -> Result<PathBuf, StoreError> {
    let stamp = utc_stamp(now_ms);
    for n in 1u32.. {
        let name = if n == 1 {
            format!("damaged-{stamp}")
        } else {
            format!("damaged-{stamp}-{n}")
        };
        match std::fs::create_dir(dir.join(&name)) {
            Ok(()) => return Ok(dir.join(name)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Unavailable("no free damaged-* name".into()))
}

/// `now_ms` as a UTC timestamp for file names: `20261129T170623Z` (RFC 3339 without the
/// separators, which some tools dislike in names).
pub fn utc_stamp(now_ms: u64) -> String {
    crate::config::timestamp::format_rfc3339(now_ms).replace(['-', ':'], "")
}
