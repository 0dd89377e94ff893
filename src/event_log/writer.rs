//! The event log's file: lines appended by one thread, the file rotated when it passes its size
//! (`usher.jsonl` -> `usher.jsonl.1` -> … -> `usher.jsonl.<keep>`, the oldest removed).

use super::{render, webhook, Item};
use crate::metrics::Metrics;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

/// How often the writer takes what is queued. It sleeps in between rather than waiting on the
/// queue, so that queuing an event never has to wake it: a wake-up is a system call, and the
/// request that logs pays for it (measured: a join took 17 µs longer with a waiting writer,
/// `cargo bench --bench hot_paths -- newcomer`). Lines reach the file within this.
const DRAIN_EVERY: Duration = Duration::from_millis(50);

/// The `n`th rotated file of the log at `path`: `path.n` (1 is the newest).
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// An append-only file that rotates by size.
pub struct RotatingFile {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
    rotate_bytes: u64,
    keep: u32,
}

impl RotatingFile {
    /// Opens (appends to) `path`, creating its directory.
    pub fn open(path: &Path, rotate_bytes: u64, keep: u32) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            written,
            rotate_bytes,
            keep,
        })
    }

    /// Appends one line, rotating first if it would pass the size.
    pub fn append(&mut self, line: &str) -> std::io::Result<()> {
        if self.written > 0 && self.written + line.len() as u64 + 1 > self.rotate_bytes {
            self.rotate()?;
        }
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.written += line.len() as u64 + 1;
        Ok(())
    }

    /// Writes what is buffered.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn numbered(&self, n: u32) -> PathBuf {
        rotated(&self.path, n)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        if self.keep == 0 {
            let file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&self.path)?;
            self.out = BufWriter::new(file);
            self.written = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(self.numbered(self.keep));
        for n in (1..self.keep).rev() {
            let from = self.numbered(n);
            if from.exists() {
                std::fs::rename(&from, self.numbered(n + 1))?;
            }
        }
        std::fs::rename(&self.path, self.numbered(1))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.out = BufWriter::new(file);
        self.written = 0;
        Ok(())
    }
}

/// The writer thread: every [`DRAIN_EVERY`], takes every event queued, renders each as a line,
/// appends it (and hands it to the webhook) and flushes; ends when every sender is gone.
pub fn run(
    mut file: RotatingFile,
    events: Receiver<Item>,
    webhook: Option<webhook::Sender>,
    metrics: Metrics,
) {
    loop {
        let mut gone = false;
        let mut wrote = false;
        loop {
            let (event, at_ms) = match events.try_recv() {
                Ok(Item::Event(event, at_ms)) => (event, at_ms),
                Ok(Item::Flush(done)) => {
                    if let Err(e) = file.flush() {
                        tracing::error!(error = %e, "cannot write the event log");
                    }
                    let _ = done.try_send(());
                    continue;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    gone = true;
                    break;
                }
            };
            let line = render(&event, at_ms);
            match file.append(&line) {
                Ok(()) => metrics.events_logged.inc(),
                Err(e) => {
                    metrics.events_dropped.with_label_values(&["write"]).inc();
                    tracing::error!(error = %e, "cannot write the event log");
                }
            }
            wrote = true;
            if let Some(webhook) = &webhook {
                webhook.send(line);
            }
        }
        if wrote {
            if let Err(e) = file.flush() {
                tracing::error!(error = %e, "cannot write the event log");
            }
        }
        if gone {
            return;
        }
        std::thread::sleep(DRAIN_EVERY);
    }
}
