//! Reading a data directory as a whole: which files are there, whether they chain (the snapshot
//! of generation N, then the logs N, N+1, ... with no gap), and the longest valid prefix of the
//! state they hold. One reading serves `open` (refuse on any damage), `usher store verify`
//! (report every file) and `usher store repair` (keep the longest valid prefix). Reads only;
//! never changes a file.

use super::super::StoreError;
use super::format::{self, FileKind, Header, Stop, WalRecord};
use super::wal::{log_generation, log_name, OLD_LOG, SNAPSHOT, TMP};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What one file holds, and what keeping the longest valid prefix would lose of it.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its header (`None` for format 1 or an unreadable header).
    pub header: Option<Header>,
    /// Records readable, header and trailer not counted.
    pub records: u64,
    /// Where reading stopped, and why.
    pub stop: Stop,
    /// Why the file is not (fully) part of the state, if it is not.
    pub note: Option<String>,
    /// Records of it the state does not include (lines, for unreadable parts).
    pub lost_records: u64,
    /// Bytes of it the state does not include.
    pub lost_bytes: u64,
}

/// A data directory, read.
#[derive(Debug, Default)]
pub(super) struct Reading {
    /// Every store file, in reading order.
    pub reports: Vec<FileReport>,
    /// Why the store would not open, if it would not (the first problem met).
    pub error: Option<StoreError>,
    /// The longest valid prefix of the state: snapshot records, then log records.
    pub records: Vec<WalRecord>,
    /// The generation of the last log read (0 for a new store).
    pub generation: u64,
    /// The highest generation any file claims (so a repair starts above it).
    pub highest: u64,
    /// Torn log tails: file, its good length, bytes after it.
    pub torn: Vec<(PathBuf, u64, u64)>,
    /// No store files at all.
    pub new: bool,
    /// Format 1 files.
    pub format_1: bool,
    /// Every store file (to move aside on repair).
    pub files: Vec<PathBuf>,
}

fn damaged(file: &Path, offset: u64, what: impl Into<String>) -> StoreError {
    StoreError::Damaged {
        file: file.to_path_buf(),
        offset,
        what: what.into(),
    }
}

impl Reading {
    /// Records the first problem only: it is the one the operator must see.
    fn fail(&mut self, error: StoreError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }
}

/// The error a file's stop means, if it is one (a torn log tail is not).
fn stop_error(path: &Path, stop: &Stop) -> Option<StoreError> {
    match stop {
        Stop::End | Stop::Torn { .. } => None,
        Stop::Damaged { offset, what } => Some(damaged(path, *offset, what.clone())),
        Stop::Unsupported { what } => Some(StoreError::Unsupported {
            file: path.to_path_buf(),
            what: what.clone(),
        }),
    }
}

/// Reads every store file in `dir`. Only I/O errors (a file that exists but cannot be read)
/// are `Err`; damage is in the [`Reading`].
pub(super) fn read_dir(dir: &Path) -> Result<Reading, StoreError> {
    let mut reading = Reading::default();
    let mut logs = BTreeMap::new();
    let (mut snapshot, mut old_log) = (false, false);
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let store_file = if name == SNAPSHOT {
            snapshot = true;
            true
        } else if name == OLD_LOG {
            old_log = true;
            true
        } else if let Some(generation) = log_generation(name) {
            logs.insert(generation, dir.join(name));
            true
        } else {
            name.ends_with(TMP) && (name.starts_with("snapshot") || name.starts_with("wal"))
        };
        if store_file {
            reading.files.push(dir.join(name));
        }
    }
    reading.files.sort();
    let snapshot_path = dir.join(SNAPSHOT);
    let first = if snapshot {
        let bytes = std::fs::read(&snapshot_path)?;
        let scan = format::scan(&bytes, FileKind::Snapshot);
        let is_format_1 =
            matches!(&scan.stop, Stop::Unsupported { what } if what == format::FORMAT_1);
        if is_format_1 || old_log {
            return read_format_1(dir, Some(bytes), reading);
        }
        Some((bytes, scan))
    } else if old_log {
        return read_format_1(dir, None, reading);
    } else {
        None
    };
    reading.highest = logs.keys().next_back().copied().unwrap_or(0);
    let Some((bytes, scan)) = first else {
        let Some((generation, path)) = logs.iter().next() else {
            reading.new = true;
            return Ok(reading);
        };
        reading.fail(damaged(
            &snapshot_path,
            0,
            format!(
                "missing, but {} (log generation {generation}) follows a snapshot: the \
                 snapshot was deleted or lost",
                path.display()
            ),
        ));
        for path in logs.values() {
            report_unapplied(&mut reading, path, FileKind::Log, "its snapshot is missing")?;
        }
        return Ok(reading);
    };
    let size = bytes.len() as u64;
    let records = scan.records.len() as u64;
    let whole = scan.stop == Stop::End;
    if let Some(h) = scan.header {
        reading.highest = reading.highest.max(h.generation);
    }
    if let Some(error) = stop_error(&snapshot_path, &scan.stop) {
        reading.fail(error);
    }
    let lost = &bytes[scan.good_len as usize..];
    reading.reports.push(FileReport {
        path: snapshot_path.clone(),
        size,
        header: scan.header,
        records,
        stop: scan.stop,
        note: None,
        lost_records: format::lines_in(lost, FileKind::Snapshot),
        lost_bytes: size - scan.good_len,
    });
    reading.records = scan.records;
    let Some(header) = scan.header.filter(|_| whole) else {
        for path in logs.values() {
            report_unapplied(
                &mut reading,
                path,
                FileKind::Log,
                "the snapshot before it is damaged, so it cannot be applied",
            )?;
        }
        return Ok(reading);
    };
    let base = header.generation;
    reading.generation = base;
    reading.highest = reading.highest.max(base);
    if !logs.contains_key(&base) {
        reading.fail(damaged(
            &dir.join(log_name(base)),
            0,
            format!(
                "missing: {} (generation {base}) is followed by this log, which was deleted or lost",
                snapshot_path.display()
            ),
        ));
    }
    let mut expected = base;
    for (generation, path) in &logs {
        let generation = *generation;
        if generation < base {
            report_unapplied(
                &mut reading,
                path,
                FileKind::Log,
                "older than the snapshot, which holds its records (left by an interrupted \
                 snapshot; removed at the next one)",
            )?;
            if let Some(report) = reading.reports.last_mut() {
                (report.lost_records, report.lost_bytes) = (0, 0);
            }
            continue;
        }
        if generation != expected || reading.error.is_some() {
            if reading.error.is_none() {
                reading.fail(damaged(
                    path,
                    0,
                    format!(
                        "log generation {generation} does not follow generation {} (log {} is \
                         missing)",
                        expected.saturating_sub(1).max(base),
                        log_name(expected)
                    ),
                ));
            }
            report_unapplied(
                &mut reading,
                path,
                FileKind::Log,
                "an earlier file is damaged or missing, so it cannot be applied",
            )?;
            continue;
        }
        expected += 1;
        let bytes = std::fs::read(path)?;
        let mut scan = format::scan(&bytes, FileKind::Log);
        if let Some(h) = scan.header.filter(|h| h.generation != generation) {
            scan.stop = Stop::Damaged {
                offset: 0,
                what: format!(
                    "the header says generation {}, the file name {generation}",
                    h.generation
                ),
            };
            scan.records.clear();
            scan.good_len = 0;
        }
        let size = bytes.len() as u64;
        if let Some(error) = stop_error(path, &scan.stop) {
            reading.fail(error);
        }
        if let Stop::Torn { offset, dropped } = scan.stop {
            reading.torn.push((path.clone(), offset, dropped));
        }
        reading.generation = generation;
        reading.reports.push(FileReport {
            path: path.clone(),
            size,
            header: scan.header,
            records: scan.records.len() as u64,
            stop: scan.stop,
            note: None,
            lost_records: format::lines_in(&bytes[scan.good_len as usize..], FileKind::Log),
            lost_bytes: size - scan.good_len,
        });
        reading.records.extend(scan.records);
    }
    Ok(reading)
}

/// Reports a file whose records are not part of the state.
fn report_unapplied(
    reading: &mut Reading,
    path: &Path,
    kind: FileKind,
    why: &str,
) -> Result<(), StoreError> {
    let bytes = std::fs::read(path)?;
    let scan = format::scan(&bytes, kind);
    let readable = scan.records.len() as u64;
    if let Some(h) = scan.header {
        reading.highest = reading.highest.max(h.generation);
    }
    reading.reports.push(FileReport {
        path: path.to_path_buf(),
        size: bytes.len() as u64,
        header: scan.header,
        records: readable,
        stop: scan.stop,
        note: Some(why.into()),
        lost_records: readable + format::lines_in(&bytes[scan.good_len as usize..], kind),
        lost_bytes: bytes.len() as u64,
    });
    Ok(())
}

/// Format 1: a refusal, and (for `repair`) the records it holds up to the first unreadable
/// line of each file, as format 1 read them.
fn read_format_1(
    dir: &Path,
    snapshot: Option<Vec<u8>>,
    mut reading: Reading,
) -> Result<Reading, StoreError> {
    reading.format_1 = true;
    let mut files = Vec::new();
    if let Some(bytes) = snapshot {
        files.push((dir.join(SNAPSHOT), bytes));
    }
    let log = dir.join(OLD_LOG);
    match std::fs::read(&log) {
        Ok(bytes) => files.push((log, bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let Some((first, _)) = files.first() else {
        return Ok(reading);
    };
    reading.fail(StoreError::Unsupported {
        file: first.clone(),
        what: format::FORMAT_1.into(),
    });
    for (path, bytes) in files {
        let (records, good_len) = format::scan_format_1(&bytes);
        let size = bytes.len() as u64;
        reading.reports.push(FileReport {
            path,
            size,
            header: None,
            records: records.len() as u64,
            stop: Stop::Unsupported {
                what: "store format 1".into(),
            },
            note: None,
            lost_records: format::lines_in(&bytes[good_len as usize..], FileKind::Log),
            lost_bytes: size - good_len,
        });
        reading.records.extend(records);
    }
    Ok(reading)
}
