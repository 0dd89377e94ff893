//! The embedded store's file format (version 2), one record per line:
//! `<crc32 of the JSON, 8 lowercase hex digits> <JSON>\n`. Every file starts with a header
//! (`{"usher_store":2,"file":"snapshot"|"log","generation":N}`); a snapshot ends with a trailer
//! (`{"end":{"records":N}}`) so one cut at a line boundary is caught. [`scan`] reads a file's
//! bytes and says where it stops and why; it never panics, whatever the bytes. Imports only
//! the records it carries.

use crate::admission::{Grant, QueueKey, Slot, Slots, VisitorId, ZoneState};
use crate::config::overrides::Overrides;
use serde::{Deserialize, Serialize};

/// The format this usher writes and reads.
pub const FORMAT: u32 = 2;

/// One logged change (log files), or part of the state (snapshots).
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
    /// An identity's place: its arrival, kept until `until_s`.
    Identity {
        zone: String,
        visitor: VisitorId,
        rank: u64,
        until_s: u64,
    },
    /// Priority codes added.
    Codes {
        zone: String,
        codes: Vec<crate::store::PriorityCode>,
    },
    /// One use of a priority code taken.
    CodeUsed { zone: String, hash: String },
    /// The zone's live overrides, replaced whole (empty: none).
    Overrides { zone: String, overrides: Overrides },
}

/// Which kind of file a header opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// The state at the start of a log generation.
    Snapshot,
    /// The changes since the snapshot of the same generation.
    Log,
}

/// The first record of every file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The format version.
    pub usher_store: u32,
    /// Snapshot or log.
    pub file: FileKind,
    /// A snapshot of generation N is followed by the log of generation N.
    pub generation: u64,
}

/// Only the version, to refuse other formats before reading any further.
#[derive(Deserialize)]
struct Version {
    usher_store: u32,
}

/// The last record of a snapshot.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trailer {
    end: End,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct End {
    records: u64,
}

/// One line: checksum, space, JSON, newline. One allocation: the JSON is written after room
/// for the checksum, which is filled in last.
pub(super) fn encode(payload: &impl Serialize) -> Vec<u8> {
    let mut line = Vec::with_capacity(128);
    line.extend_from_slice(b"00000000 ");
    // Serializing our own records into memory cannot fail: no maps with non-string keys that
    // serde_json cannot write (the ledger's numeric keys become strings).
    if serde_json::to_writer(&mut line, payload).is_err() {
        line.truncate(9);
    }
    let crc = crc32fast::hash(&line[9..]);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, digit) in line[..8].iter_mut().enumerate() {
        *digit = HEX[(crc >> (28 - 4 * i) & 0xf) as usize];
    }
    line.push(b'\n');
    line
}

pub(super) fn encode_header(file: FileKind, generation: u64) -> Vec<u8> {
    encode(&Header {
        usher_store: FORMAT,
        file,
        generation,
    })
}

pub(super) fn encode_trailer(records: u64) -> Vec<u8> {
    encode(&Trailer {
        end: End { records },
    })
}

/// The JSON of a line (without its newline) whose checksum matches.
fn checked(line: &[u8]) -> Result<&[u8], String> {
    let (Some(crc), Some(b' ')) = (line.get(..8), line.get(8)) else {
        return Err("not a record (no checksum)".into());
    };
    // Lowercase hex only: any changed byte is damage, even one that would still parse.
    let lowercase_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    let expected = Some(crc)
        .filter(|crc| crc.iter().all(lowercase_hex))
        .and_then(|crc| std::str::from_utf8(crc).ok())
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or_else(|| "not a record (no checksum)".to_string())?;
    let json = &line[9..];
    let actual = crc32fast::hash(json);
    if actual != expected {
        return Err(format!(
            "bad checksum (the line says {expected:08x}, its content has {actual:08x})"
        ));
    }
    Ok(json)
}

/// Where a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Read to the end: the file is whole.
    End,
    /// The log's last record was cut short by a crash (no newline, or a run of NUL bytes):
    /// normal, dropped when the store opens.
    Torn {
        /// Where the torn record starts (the file's good length).
        offset: u64,
        /// Bytes after it.
        dropped: u64,
    },
    /// Damage: the file cannot be trusted from `offset` on.
    Damaged {
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong with it.
        what: String,
    },
    /// Not a format this usher reads.
    Unsupported {
        /// Which format, and what to do.
        what: String,
    },
}

/// What [`scan`] read from one file.
#[derive(Debug)]
pub(super) struct Scan {
    /// The header, if it was readable.
    pub header: Option<Header>,
    /// The records read, in order (header and trailer not included).
    pub records: Vec<WalRecord>,
    /// The end of the last good record (header and trailer included).
    pub good_len: u64,
    /// Why reading stopped.
    pub stop: Stop,
}

/// What an older usher (format 1: plain JSON lines, no header) wrote.
pub(super) const FORMAT_1: &str = "written by an older usher (store format 1: no header, no \
     checksums); this usher reads format 2 only. Convert it with `usher store repair --config \
     FILE` (it keeps every readable record and moves the old files aside)";

/// Reads `bytes` as a file of `kind`: header, records, and (snapshots) the trailer.
pub(super) fn scan(bytes: &[u8], kind: FileKind) -> Scan {
    let mut scan = Scan {
        header: None,
        records: Vec::new(),
        good_len: 0,
        stop: Stop::End,
    };
    let mut trailer = None;
    let mut pos = 0usize;
    while pos < bytes.len() {
        let offset = pos as u64;
        let rest = &bytes[pos..];
        let Some(newline) = rest.iter().position(|b| *b == b'\n') else {
            // No newline: a record cut short by a crash (or a trailing run of NUL bytes, which
            // some file systems leave after one). Normal only at the end of a log, after its
            // header.
            scan.stop = if kind == FileKind::Log && scan.header.is_some() && trailer.is_none() {
                Stop::Torn {
                    offset,
                    dropped: rest.len() as u64,
                }
            } else {
                Stop::Damaged {
                    offset,
                    what: "the last line is incomplete (no newline): the file was cut short".into(),
                }
            };
            return scan;
        };
        let line = &rest[..newline];
        if trailer.is_some() {
            scan.stop = Stop::Damaged {
                offset,
                what: "data after the trailer".into(),
            };
            return scan;
        }
        let json = match checked(line) {
            Ok(json) => json,
            Err(what) => {
                scan.stop = if scan.header.is_none() && line.first() == Some(&b'{') {
                    Stop::Unsupported {
                        what: FORMAT_1.into(),
                    }
                } else {
                    Stop::Damaged { offset, what }
                };
                return scan;
            }
        };
        if scan.header.is_none() {
            match read_header(json, kind) {
                Ok(header) => scan.header = Some(header),
                Err(stop) => {
                    scan.stop = stop.at(offset);
                    return scan;
                }
            }
        } else {
            match serde_json::from_slice::<WalRecord>(json) {
                Ok(record) => scan.records.push(record),
                Err(e) => match serde_json::from_slice::<Trailer>(json) {
                    Ok(t) if kind == FileKind::Snapshot => trailer = Some(t.end.records),
                    _ => {
                        scan.stop = Stop::Damaged {
                            offset,
                            what: format!("unreadable record ({e})"),
                        };
                        return scan;
                    }
                },
            }
        }
        pos += newline + 1;
        scan.good_len = pos as u64;
    }
    let end = bytes.len() as u64;
    if scan.header.is_none() {
        scan.stop = Stop::Damaged {
            offset: 0,
            what: "empty: no header".into(),
        };
    } else if kind == FileKind::Snapshot {
        let count = scan.records.len() as u64;
        match trailer {
            None => {
                scan.stop = Stop::Damaged {
                    offset: end,
                    what: format!(
                        "ends after {count} records without its trailer: the snapshot was cut short"
                    ),
                }
            }
            Some(n) if n != count => {
                scan.stop = Stop::Damaged {
                    offset: end,
                    what: format!("the trailer counts {n} records, the file has {count}"),
                }
            }
            Some(_) => {}
        }
    }
    scan
}

/// A header problem, before its offset (always 0) is known.
enum HeaderProblem {
    Damaged(String),
    Unsupported(String),
}

impl HeaderProblem {
    fn at(self, offset: u64) -> Stop {
        match self {
            HeaderProblem::Damaged(what) => Stop::Damaged { offset, what },
            HeaderProblem::Unsupported(what) => Stop::Unsupported { what },
        }
    }
}

fn read_header(json: &[u8], kind: FileKind) -> Result<Header, HeaderProblem> {
    let version = serde_json::from_slice::<Version>(json)
        .map_err(|e| HeaderProblem::Damaged(format!("no header ({e})")))?;
    if version.usher_store != FORMAT {
        return Err(HeaderProblem::Unsupported(format!(
            "store format {} is not one this usher reads (it reads {FORMAT}); run the usher \
             that wrote it, or move the files away",
            version.usher_store
        )));
    }
    let header: Header = serde_json::from_slice(json)
        .map_err(|e| HeaderProblem::Damaged(format!("unreadable header ({e})")))?;
    if header.file != kind {
        return Err(HeaderProblem::Damaged(format!(
            "the header says this is a {:?} file, not a {kind:?} file",
            header.file
        )));
    }
    Ok(header)
}

/// Reads format 1 (plain JSON lines) up to the first unreadable line: the records and the
/// length they cover. For `usher store repair` only.
pub(super) fn scan_format_1(bytes: &[u8]) -> (Vec<WalRecord>, u64) {
    let mut records = Vec::new();
    let mut pos = 0usize;
    while let Some(newline) = bytes[pos..].iter().position(|b| *b == b'\n') {
        match serde_json::from_slice(&bytes[pos..pos + newline]) {
            Ok(record) => records.push(record),
            Err(_) => break,
        }
        pos += newline + 1;
    }
    (records, pos as u64)
}

/// How many records the lines of `bytes` held (a last one without a newline counts, a
/// snapshot's trailer does not): the records lost with a cut-off part of a file, roughly.
pub(super) fn lines_in(bytes: &[u8], kind: FileKind) -> u64 {
    let newlines = bytes.iter().filter(|b| **b == b'\n').count() as u64;
    let lines = newlines + u64::from(bytes.last().is_some_and(|b| *b != b'\n'));
    let last = bytes
        .strip_suffix(b"\n")
        .unwrap_or(bytes)
        .rsplit(|b| *b == b'\n')
        .next()
        .unwrap_or_default();
    let trailer = kind == FileKind::Snapshot
        && checked(last).is_ok_and(|json| serde_json::from_slice::<Trailer>(json).is_ok());
    lines - u64::from(trailer)
}
