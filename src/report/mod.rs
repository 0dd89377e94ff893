//! `usher report`: what a sale looked like, from the event log (`[events_log]`). It reads the
//! log's files (the rotated ones first), keeps one zone's events within a stretch of time, and
//! writes one self-contained HTML page with plots and a CSV beside it.
//!
//! [`lines`] reads each line back and checks it; [`figures`] computes the numbers; [`render`]
//! draws the page and writes the CSV.

pub mod figures;
pub mod lines;
pub mod render;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Why no report was written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A log file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Nothing of the zone in the stretch.
    #[error("no events of zone `{zone}` in {files} file(s) between {from} and {to}")]
    Empty {
        /// The zone.
        zone: String,
        /// How many files were read.
        files: usize,
        /// The stretch's start (RFC 3339, or `the start`).
        from: String,
        /// Its end.
        to: String,
    },
    /// An output file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What to report on.
pub struct Request<'a> {
    /// The log files, oldest first.
    pub files: Vec<PathBuf>,
    /// The zone.
    pub zone: &'a str,
    /// The stretch, ms since the epoch: `[from_ms, to_ms)`.
    pub from_ms: Option<u64>,
    /// Its end.
    pub to_ms: Option<u64>,
    /// The HTML page to write; the CSV goes beside it (`.csv`).
    pub out: PathBuf,
}

/// What a report wrote.
pub struct Written {
    /// The figures it drew.
    pub figures: figures::Figures,
    /// The lines it left out.
    pub skipped: render::Skipped,
    /// The HTML page.
    pub html: PathBuf,
    /// The CSV.
    pub csv: PathBuf,
}

/// Reads every line of `files`, keeping the events `wanted` takes (a sale's log can hold
/// millions of other zones' and times' lines) and counting the lines that do not parse.
pub fn read(
    files: &[PathBuf],
    wanted: impl Fn(&lines::Logged) -> bool,
) -> Result<(Vec<lines::Logged>, render::Skipped), ReportError> {
    let mut events = Vec::new();
    let mut skipped = render::Skipped::default();
    for path in files {
        let file = std::fs::File::open(path).map_err(|source| ReportError::Read {
            path: path.clone(),
            source,
        })?;
        read_lines(BufReader::new(file), &wanted, &mut events, &mut skipped).map_err(|source| {
            ReportError::Read {
                path: path.clone(),
                source,
            }
        })?;
    }
    Ok((events, skipped))
}

/// Reads lines of at most [`lines::MAX_LINE`] bytes from `input`; a longer one is unreadable
/// and skipped to its end without holding it in memory.
fn read_lines(
    mut input: impl BufRead,
    wanted: &impl Fn(&lines::Logged) -> bool,
    events: &mut Vec<lines::Logged>,
    skipped: &mut render::Skipped,
) -> std::io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut input)
            .take(lines::MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && line.len() > lines::MAX_LINE {
            // Too long: drop the rest of it.
            skipped.unreadable += 1;
            let mut rest = Vec::new();
            input.read_until(b'\n', &mut rest)?;
            continue;
        }
        let text = match std::str::from_utf8(&line) {
            Ok(text) => text.trim_end_matches('\n'),
            Err(_) => {
                skipped.unreadable += 1;
                continue;
            }
        };
        match lines::parse(text) {
            Ok(Some(event)) if wanted(&event) => events.push(event),
            Ok(Some(_)) => {}
            Ok(None) => {}
            Err(lines::Skip::Unreadable) => skipped.unreadable += 1,
            Err(lines::Skip::Newer) => skipped.newer += 1,
        }
    }
}

/// Reads the log, computes the figures and writes the page and the CSV.
pub fn write(request: &Request<'_>) -> Result<Written, ReportError> {
    let from = request.from_ms.unwrap_or(0);
    let to = request.to_ms.unwrap_or(u64::MAX);
    let (events, skipped) = read(&request.files, |e| {
        e.zone == request.zone && (from..to).contains(&e.at_ms)
    })?;
    let Some(figures) = figures::compute(request.zone, &events, from, to) else {
        let bound = |ms: Option<u64>, or: &str| {
            ms.map_or(or.to_string(), crate::config::timestamp::format_rfc3339)
        };
        return Err(ReportError::Empty {
            zone: request.zone.to_string(),
            files: request.files.len(),
            from: bound(request.from_ms, "the start"),
            to: bound(request.to_ms, "the end"),
        });
    };
    let csv_path = request.out.with_extension("csv");
    let csv_name = csv_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|source| ReportError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    write(&request.out, render::html(&figures, skipped, &csv_name))?;
    write(&csv_path, render::csv(&figures))?;
    Ok(Written {
        figures,
        skipped,
        html: request.out.clone(),
        csv: csv_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_whole_and_bad_ones_counted() {
        let good = "{\"v\":1,\"at_ms\":1,\"type\":\"expired\",\"zone\":\"z\",\"slots\":1}";
        let mut input = Vec::new();
        input.extend_from_slice(good.as_bytes());
        input.extend_from_slice(b"\n\xff\xfe not utf-8\n");
        input.extend_from_slice(&vec![b'x'; lines::MAX_LINE * 3]);
        input.push(b'\n');
        input.extend_from_slice(b"{\"v\":7}\n\n");
        // The last line, torn by a crash, has no newline.
        input.extend_from_slice(good.as_bytes());
        input.extend_from_slice(b"\n{\"v\":1,\"at_ms\":2,\"ty");
        let (mut events, mut skipped) = (Vec::new(), render::Skipped::default());
        read_lines(&input[..], &|_| true, &mut events, &mut skipped).expect("read");
        assert_eq!(events.len(), 2);
        let (mut none, mut skipped_again) = (Vec::new(), render::Skipped::default());
        read_lines(
            &input[..],
            &|e| e.zone == "y",
            &mut none,
            &mut skipped_again,
        )
        .expect("read");
        assert!(none.is_empty(), "another zone's events are not kept");
        assert_eq!(skipped_again, skipped);
        assert_eq!(
            skipped,
            render::Skipped {
                unreadable: 3,
                newer: 1
            }
        );
    }

    #[test]
    fn a_file_that_cannot_be_read_is_an_error() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = read(&[dir.path().join("nope")], |_| true);
        assert!(matches!(missing, Err(ReportError::Read { .. })));
    }
}
