//! The embedded store's files: `snapshot.jsonl` (the state at the last compaction) and `wal.jsonl`
//! (every change since), both one JSON record per line. A torn last line (a crash mid-write) is
//! ignored; a snapshot is replaced atomically (write, fsync, rename).

use super::super::StoreError;
use crate::admission::{Grant, QueueKey, Slot, Slots, VisitorId, ZoneState};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// One logged change.
#[derive(Debug, Serialize, Deserialize)]
// Externally tagged: internally tagged enums buffer their content, and a buffered map cannot
// turn the JSON string keys of the ledger back into numbers.
#[serde(rename_all = "snake_case")]
pub(super) enum WalRecord {
    /// A tick committed: the new zone state, its grant (which says which queue entries left),
    /// and the visitors a slot was reserved for.
    Tick {
        zone: String,
        state: Box<ZoneState>,
        grant: Box<Grant>,
        reserved: Vec<VisitorId>,
    },
    /// A queue entry added.
    Join { zone: String, key: QueueKey },
    /// A visitor's slot changed, with the ledger moves that went with it.
    Slot {
        zone: String,
        visitor: VisitorId,
        slot: Slot,
        moves: Vec<(u64, i64)>,
    },
    /// A zone's slots and ledger as a whole (snapshots only).
    Slots { zone: String, slots: Box<Slots> },
}

/// The log file and where the snapshot goes.
pub(super) struct Wal {
    dir: PathBuf,
    file: File,
}

const SNAPSHOT: &str = "snapshot.jsonl";
const LOG: &str = "wal.jsonl";

fn read_records(path: &Path, out: &mut Vec<WalRecord>) -> Result<(), StoreError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for line in BufReader::new(file).lines() {
        let line = line?;
        match serde_json::from_str(&line) {
            Ok(record) => out.push(record),
            // Only the last line can be torn by a crash; anything after it was never acknowledged.
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable tail of the log");
                break;
            }
        }
    }
    Ok(())
}

impl Wal {
    /// Opens the log in `dir` (created if missing) and returns every record to replay, snapshot first.
    pub(super) fn open(dir: &Path) -> Result<(Self, Vec<WalRecord>), StoreError> {
        fs::create_dir_all(dir)?;
        let mut records = Vec::new();
        read_records(&dir.join(SNAPSHOT), &mut records)?;
        read_records(&dir.join(LOG), &mut records)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(LOG))?;
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                file,
            },
            records,
        ))
    }

    /// Appends one record and hands it to the OS before returning.
    pub(super) fn append(&mut self, record: &WalRecord) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write call per record, so a crash can tear at most the last line.
        self.file.write_all(&line)?;
        Ok(())
    }

    /// Replaces the snapshot with `records` and empties the log.
    pub(super) fn rewrite(&mut self, records: &[WalRecord]) -> Result<(), StoreError> {
        let tmp = self.dir.join(format!("{SNAPSHOT}.tmp"));
        {
            let mut out = std::io::BufWriter::new(File::create(&tmp)?);
            for record in records {
                serde_json::to_writer(&mut out, record).map_err(std::io::Error::other)?;
                out.write_all(b"\n")?;
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(SNAPSHOT))?;
        self.file.set_len(0)?;
        self.file.sync_all()?;
        Ok(())
    }
}
