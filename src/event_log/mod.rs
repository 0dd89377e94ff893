//! The event log (`[events_log]`): what happened to visitors and zones, as JSON lines for other
//! tools (a data warehouse, a SIEM, `usher report`), written to a file that rotates by size and
//! optionally POSTed to a webhook in batches signed with HMAC-SHA256.
//!
//! It never slows a request: [`EventLog::record`] builds the event only when the log is on,
//! puts it in a bounded queue and returns (the line is rendered by the writer);
//! a full queue drops the event and counts it (`usher_events_dropped_total{reason="queue_full"}`).
//! A writer thread ([`writer`]) appends the lines and rotates the file; a webhook thread
//! ([`webhook`]) batches them, signs each batch and retries with backoff, dropping (and
//! counting) what it cannot keep up with.
//!
//! One schema, versioned ([`SCHEMA_VERSION`]); `docs/events-log.md` documents every field.

mod webhook;
mod writer;

pub use webhook::signature;

use crate::config::EventsLogConfig;
use crate::metrics::Metrics;
use serde::Serialize;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

/// The `v` field of every line; bumped when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// How often at most each node logs each zone's [`Event::Queue`] while the line or the slots
/// change, in ms.
pub const QUEUE_EVERY_MS: u64 = 1_000;

/// How often at least each node logs each zone's [`Event::Queue`], in ms.
pub const QUEUE_AT_LEAST_MS: u64 = 60_000;

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A newcomer took a place in line and was shown an ETA.
    Joined {
        /// The zone.
        zone: String,
        /// The visitor (32 hex digits).
        visitor: String,
        /// Their arrival, ms since the epoch (their place in line).
        rank_ms: u64,
        /// The wait they were told, in seconds.
        eta_s: u64,
    },
    /// A visitor went in: at once (`direct`), after waiting (`queue`), or on a priority place
    /// (`priority`).
    Admitted {
        /// The zone.
        zone: String,
        /// The visitor.
        visitor: String,
        /// Their arrival, ms since the epoch.
        rank_ms: u64,
        /// How long they waited, ms.
        waited_ms: u64,
        /// `direct`, `queue` or `priority`.
        via: &'static str,
    },
    /// The origin ended a visitor's session (`Usher-Command: release`).
    Released {
        /// The zone.
        zone: String,
        /// The visitor.
        visitor: String,
    },
    /// Slots that came free without anyone ending them: sessions that ran out and reservations
    /// never claimed, since the zone's previous tick (one event per tick that saw some).
    Expired {
        /// The zone.
        zone: String,
        /// How many.
        slots: u64,
    },
    /// The zone's line and slots as a node's exchanger saw them, so a report can draw the
    /// line's length over time: from every node, when they changed (at most every
    /// [`QUEUE_EVERY_MS`]) and every [`QUEUE_AT_LEAST_MS`] anyway.
    Queue {
        /// The zone.
        zone: String,
        /// Visitors queued after the cursor.
        waiting: u64,
        /// Occupied slots.
        active: u64,
    },
    /// The line passed a place whose holder had not been seen within `abandon_after`.
    Abandoned {
        /// The zone.
        zone: String,
        /// The visitor.
        visitor: String,
        /// Their arrival, ms since the epoch.
        rank_ms: u64,
    },
    /// A visitor the line had passed came back and was let in first (priority places too,
    /// which are placed where the line has just passed).
    Returned {
        /// The zone.
        zone: String,
        /// The visitor.
        visitor: String,
        /// Their arrival, ms since the epoch.
        rank_ms: u64,
    },
    /// An operator changed a zone's live overrides (`set`) or dropped them all (`reset`).
    Overrides {
        /// The zone.
        zone: String,
        /// `set` or `reset`.
        action: &'static str,
        /// The admin token's name.
        by: String,
        /// The overrides in force afterwards, by setting.
        settings: serde_json::Value,
    },
    /// A pre-queue lottery was drawn.
    Draw {
        /// The zone.
        zone: String,
        /// The scheduled sale.
        event: String,
        /// The published seed (16 hex digits).
        seed: String,
    },
}

/// One line of the log: the event with its version and time.
#[derive(Debug, Serialize)]
struct Line<'a> {
    v: u32,
    at_ms: u64,
    #[serde(flatten)]
    event: &'a Event,
}

/// Renders `event` at `at_ms` as one JSON line (without the newline).
pub fn render(event: &Event, at_ms: u64) -> String {
    let line = Line {
        v: SCHEMA_VERSION,
        at_ms,
        event,
    };
    serde_json::to_string(&line).unwrap_or_default()
}

/// The files of the log `config` writes, oldest first: the rotated ones that exist
/// (`FILE.<keep>` … `FILE.1`), then `FILE`.
pub fn files(config: &EventsLogConfig) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = (1..=config.keep)
        .rev()
        .map(|n| writer::rotated(&config.path, n))
        .filter(|p| p.exists())
        .collect();
    files.push(config.path.clone());
    files
}

/// What the writer thread is handed.
enum Item {
    /// An event and when it happened.
    Event(Event, u64),
    /// Write out everything before this, then say so.
    Flush(SyncSender<()>),
}

/// Where events go; a disabled log (no `[events_log]`) takes them and does nothing.
#[derive(Clone, Default)]
pub struct EventLog {
    /// The writer's queue, and the metrics its drops are counted in; `None` when disabled.
    queue: Option<(SyncSender<Item>, Metrics)>,
}

impl EventLog {
    /// No log.
    pub fn disabled() -> Self {
        EventLog::default()
    }

    /// Opens the file of `config` (creating its directory) and starts the writer and, with a
    /// webhook, the sender. Fails if the file cannot be opened.
    pub fn start(config: &EventsLogConfig, metrics: Metrics) -> std::io::Result<Self> {
        let webhook = config
            .webhook
            .clone()
            .map(|hook| webhook::Sender::start(hook, metrics.clone()));
        let file = writer::RotatingFile::open(&config.path, config.rotate_bytes, config.keep)?;
        let (queue, events) = sync_channel::<Item>(config.queue);
        let writer_metrics = metrics.clone();
        std::thread::Builder::new()
            .name("usher-events".into())
            .spawn(move || writer::run(file, events, webhook, writer_metrics))?;
        Ok(EventLog {
            queue: Some((queue, metrics)),
        })
    }

    /// Whether events are logged at all.
    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Logs the event `event` makes, at `at_ms`, without waiting: nothing is built when the log
    /// is off, and a full queue drops it (counted).
    pub fn record(&self, at_ms: u64, event: impl FnOnce() -> Event) {
        let Some((queue, metrics)) = &self.queue else {
            return;
        };
        let dropped = match queue.try_send(Item::Event(event(), at_ms)) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => "queue_full",
            Err(TrySendError::Disconnected(_)) => "writer_gone",
        };
        metrics.events_dropped.with_label_values(&[dropped]).inc();
    }

    /// Waits until every event logged so far is in the file, for at most `wait` (the node's last
    /// step before it exits: the writer only takes the queue every 50 ms). False if it timed out.
    pub fn flush(&self, wait: std::time::Duration) -> bool {
        let Some((queue, _)) = &self.queue else {
            return true;
        };
        let deadline = std::time::Instant::now() + wait;
        let (done, flushed) = sync_channel(1);
        let mut item = Item::Flush(done);
        loop {
            match queue.try_send(item) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if std::time::Instant::now() >= deadline {
                        return false;
                    }
                    item = back;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        flushed.recv_timeout(left).is_ok()
    }
}

#[cfg(test)]
mod tests;
