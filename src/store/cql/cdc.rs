//! The native change feed on ScyllaDB (`sync = "cdc"`): reads the CDC logs of `zones` and
//! `sessions` with `scylla-cdc` and turns their rows into [`Change`]s on a broadcast channel.
//! Part of the CQL store; imports `scylla` and `scylla_cdc` and, from the crate, only the store
//! and admission types a [`Change`] carries.
//!
//! - [`CdcTranslator`] is pure: one CDC row in, at most one [`Change`] out. CDC delivers
//!   at-least-once and orders rows only within a partition, so the translator keeps the highest
//!   zone version (and the latest revocation) it has passed on and drops anything not newer.
//! - [`start`] runs one `CDCLogReader` per table. A consumer never returns an error, because an
//!   error stops the whole reader: a row it cannot read is logged and skipped.
//! - Checkpoints: the library's checkpoint table is keyed by stream id alone, and on a vnode
//!   keyspace every CDC table shares the same stream ids, so each node keeps one checkpoint table
//!   per base table (`cdc_checkpoints_<node>_zones`, `cdc_checkpoints_<node>_sessions`). A node
//!   that finds its checkpoints resumes where it stopped, at most [`CdcOptions::resume`] back (it
//!   catches up on revocations it missed while down); a node without them starts now.

#[cfg(test)]
mod tests;

use crate::admission::{VisitorId, ZoneState};
use crate::store::{Change, StoreError};
use async_trait::async_trait;
use scylla::client::session::Session;
use scylla::value::CqlValue;
use scylla_cdc::checkpoints::{CDCCheckpointSaver, TableBackedCheckpointSaver};
use scylla_cdc::consumer::{CDCRow, Consumer, ConsumerFactory, OperationType};
use scylla_cdc::log_reader::{CDCLogReader, CDCLogReaderBuilder};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::broadcast;

/// How often each stream group writes its checkpoint. Every write is one row per stream, and a
/// vnode cluster has thousands of streams, so not often: a resume replays at most this much,
/// which at-least-once consumers absorb anyway.
const CHECKPOINT_PAUSE: Duration = Duration::from_secs(30);

/// Longest node name: `cdc_checkpoints_<node>_sessions` must fit CQL's 48-character table names.
const MAX_NODE_NAME: usize = 48 - "cdc_checkpoints__sessions".len();

/// A base table whose CDC log the feed reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// `zones (zone text PRIMARY KEY, version bigint, state text)`.
    Zones,
    /// `sessions (zone text, visitor text, status text, bucket bigint, admitted_at bigint,
    /// PRIMARY KEY ((zone, visitor)))`.
    Sessions,
}

impl Table {
    /// Both tables, in the order the feed starts their readers.
    pub const ALL: [Table; 2] = [Table::Zones, Table::Sessions];

    /// The base table's name (its log is `<name>_scylla_cdc_log`).
    pub fn name(self) -> &'static str {
        match self {
            Table::Zones => "zones",
            Table::Sessions => "sessions",
        }
    }
}

/// Milliseconds since the Unix epoch at which the row was written (its `cdc$time`), or `None`
/// if that is not a time-based UUID.
pub fn cdc_time_ms(row: &CDCRow<'_>) -> Option<u64> {
    let (secs, nanos) = row.time.get_timestamp()?.to_unix();
    Some(secs * 1_000 + u64::from(nanos) / 1_000_000)
}

/// Turns CDC rows into [`Change`]s, dropping duplicates and rows overtaken by newer ones.
#[derive(Debug, Default)]
pub struct CdcTranslator {
    /// Highest state version passed on, per zone.
    versions: HashMap<Arc<str>, u64>,
    /// Latest `until_s` passed on, per revoked session; pruned once it has passed.
    revoked: HashMap<(Arc<str>, VisitorId), u64>,
    /// Prune `revoked` when it reaches this size (doubling keeps pruning amortised O(1)).
    prune_at: usize,
    /// Newest `cdc$time` seen, in ms; what revocations are pruned against.
    newest_ms: u64,
}

impl CdcTranslator {
    /// A translator that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Newest `cdc$time` among the rows translated so far, in ms since the Unix epoch (0: none).
    #[cfg(test)]
    pub fn newest_ms(&self) -> u64 {
        self.newest_ms
    }

    /// The change one row of `table`'s CDC log stands for, if any: inserts and updates of a
    /// zone's state newer than any passed on, and sessions whose status became `revoked`.
    /// Deletes, pre- and post-images, other session statuses and unreadable rows give `None`.
    pub fn translate(&mut self, table: Table, row: &CDCRow<'_>) -> Option<Change> {
        if let Some(ms) = cdc_time_ms(row) {
            self.newest_ms = self.newest_ms.max(ms);
        }
        // Only writes carry a new state; deletes (incl. TTL expirations) have nothing to apply,
        // and images only exist if someone turns them on for the table.
        if !matches!(
            row.operation,
            OperationType::RowInsert | OperationType::RowUpdate
        ) {
            return None;
        }
        match table {
            Table::Zones => self.zone(row),
            Table::Sessions => self.session(row),
        }
    }

    fn zone(&mut self, row: &CDCRow<'_>) -> Option<Change> {
        let zone = text(row, "zone")?;
        // An update that did not set `state` (our writes always do) has nothing to apply.
        let json = text(row, "state")?;
        let state: ZoneState = match serde_json::from_str(json) {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(zone, error = %e, "cdc: skipping a zone row whose state is not valid JSON");
                return None;
            }
        };
        if self
            .versions
            .get(zone)
            .is_some_and(|seen| *seen >= state.version)
        {
            return None;
        }
        let zone: Arc<str> = Arc::from(zone);
        self.versions.insert(zone.clone(), state.version);
        Some(Change::Zone {
            zone,
            state: Arc::new(state),
        })
    }

    fn session(&mut self, row: &CDCRow<'_>) -> Option<Change> {
        // Reservations and activations are the admission path's business; only releases matter
        // to other nodes, which must refuse the released token.
        if text(row, "status")? != "revoked" {
            return None;
        }
        let zone = text(row, "zone")?;
        let Some(visitor) = text(row, "visitor").and_then(VisitorId::parse) else {
            tracing::warn!(
                zone,
                "cdc: skipping a revocation whose visitor id is not 32 hex digits"
            );
            return None;
        };
        let Some(until_s) = bigint(row, "bucket").and_then(|b| u64::try_from(b).ok()) else {
            tracing::warn!(zone, %visitor, "cdc: skipping a revocation without a valid bucket");
            return None;
        };
        let key = (Arc::<str>::from(zone), visitor);
        if self.revoked.get(&key).is_some_and(|seen| *seen >= until_s) {
            return None;
        }
        self.prune();
        self.revoked.insert(key.clone(), until_s);
        Some(Change::Revoked {
            zone: key.0,
            visitor,
            until_s,
        })
    }

    /// Forgets revocations that have run out: a late duplicate of one would only refuse a token
    /// that is refused anyway until a second that has passed.
    fn prune(&mut self) {
        if self.revoked.len() < self.prune_at {
            return;
        }
        let now_s = self.newest_ms / 1_000;
        self.revoked.retain(|_, until_s| *until_s > now_s);
        self.prune_at = (self.revoked.len() * 2).max(1_024);
    }
}

/// A text column's value; `None` if the column is missing, null or not text.
fn text<'r>(row: &'r CDCRow<'_>, name: &str) -> Option<&'r str> {
    if !row.column_exists(name) {
        return None;
    }
    match row.get_value(name) {
        Some(CqlValue::Text(s)) | Some(CqlValue::Ascii(s)) => Some(s),
        _ => None,
    }
}

/// A bigint column's value; `None` if the column is missing, null or not a bigint.
fn bigint(row: &CDCRow<'_>, name: &str) -> Option<i64> {
    if !row.column_exists(name) {
        return None;
    }
    row.get_value(name).as_ref().and_then(CqlValue::as_bigint)
}

/// What every consumer of one feed shares: readers run one consumer per stream group, in
/// parallel, and duplicates may arrive through any of them.
struct Shared {
    translator: Mutex<CdcTranslator>,
    sender: broadcast::Sender<Change>,
    newest_ms: Arc<AtomicU64>,
}

/// Runs one table's rows through the shared translator.
struct FeedConsumer {
    table: Table,
    shared: Arc<Shared>,
}

#[async_trait]
impl Consumer for FeedConsumer {
    async fn consume_cdc(&mut self, row: CDCRow<'_>) -> anyhow::Result<()> {
        // Never an error: it would stop the reader of every stream; a bad row is logged (by the
        // translator) and skipped. The lock is never held across an await.
        let change = self
            .shared
            .translator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .translate(self.table, &row);
        if let Some(ms) = cdc_time_ms(&row) {
            self.shared.newest_ms.fetch_max(ms, Ordering::Relaxed);
        }
        if let Some(change) = change {
            // No subscriber is fine: the feed only keeps caches warm.
            let _ = self.shared.sender.send(change);
        }
        Ok(())
    }
}

struct FeedConsumerFactory {
    table: Table,
    shared: Arc<Shared>,
}

#[async_trait]
impl ConsumerFactory for FeedConsumerFactory {
    async fn new_consumer(&self) -> Box<dyn Consumer> {
        Box::new(FeedConsumer {
            table: self.table,
            shared: self.shared.clone(),
        })
    }
}

/// Where and how the CDC feed reads.
#[derive(Debug, Clone)]
pub struct CdcOptions {
    /// Keyspace of `zones` and `sessions` (and of this node's checkpoint tables).
    pub keyspace: String,
    /// This node's name: `[a-z0-9_]`, at most 23 characters; names its checkpoint tables, so it
    /// must be unique in the fleet and stable across restarts.
    pub node: String,
    /// How far behind now the readers stay, so rows that land late are not skipped (about 2 s).
    pub safety: Duration,
    /// Pause between two reads of a stream (about 0.5 s).
    pub sleep: Duration,
    /// How far back a restarted node resumes from its checkpoints; zero turns checkpointing off
    /// (every start reads from now, and nothing is written).
    pub resume: Duration,
}

/// The running readers of one feed.
pub struct CdcReaders {
    readers: Vec<CDCLogReader>,
}

impl CdcReaders {
    /// Tells every reader to stop after its current request; the feed's future then ends.
    pub fn stop(&mut self) {
        for reader in &mut self.readers {
            reader.stop();
        }
    }
}

fn unavailable(what: &str, e: anyhow::Error) -> StoreError {
    StoreError::Unavailable(format!("cdc {what}: {e:#}"))
}

/// Whether `table` has a CDC log. Without one the library's reader never ends: it retries
/// fetching stream generations forever (with a warning each time), so this is checked first.
async fn has_cdc_log(session: &Session, keyspace: &str, table: Table) -> Result<bool, StoreError> {
    let log = format!("{}_scylla_cdc_log", table.name());
    let rows = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
            (keyspace, log.as_str()),
        )
        .await
        .map_err(|e| StoreError::Unavailable(format!("cdc: looking up {keyspace}.{log}: {e}")))?
        .into_rows_result()
        .map_err(|e| StoreError::Unavailable(format!("cdc: looking up {keyspace}.{log}: {e}")))?;
    Ok(rows.rows_num() > 0)
}

fn valid_node(node: &str) -> bool {
    !node.is_empty()
        && node.len() <= MAX_NODE_NAME
        && node
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Starts one CDC reader for each of `zones` and `sessions` (created `WITH cdc = {'enabled':
/// true}`; an error if either has no CDC log, as on Cassandra), sending their [`Change`]s to `sender` and storing the newest `cdc$time` seen (ms
/// since the Unix epoch) in `newest_ms`: feed lag is now minus that, while writes happen.
/// `now_ms` is the caller's clock, used only to pick where a resume starts.
///
/// Returns the readers and a future that must be polled (spawned) for the feed to run. It ends
/// when either reader ends: `Err` if one failed, `Ok` if it was stopped. Either way the feed is
/// no longer whole, so the caller stops or restarts it. Dropping the future stops both readers.
pub(super) async fn start(
    session: Arc<Session>,
    options: &CdcOptions,
    now_ms: u64,
    sender: broadcast::Sender<Change>,
    newest_ms: Arc<AtomicU64>,
) -> Result<
    (
        CdcReaders,
        impl Future<Output = Result<(), StoreError>> + Send + 'static,
    ),
    StoreError,
> {
    if !valid_node(&options.node) {
        return Err(StoreError::Unavailable(format!(
            "cdc node name `{}`: use 1 to {MAX_NODE_NAME} characters of a-z, 0-9 and '_'",
            options.node
        )));
    }
    for table in Table::ALL {
        if !has_cdc_log(&session, &options.keyspace, table).await? {
            return Err(StoreError::Unavailable(format!(
                "cdc: {}.{} has no CDC log (is this ScyllaDB, and the table created \
                 WITH cdc = {{'enabled': true}}?)",
                options.keyspace,
                table.name()
            )));
        }
    }
    let shared = Arc::new(Shared {
        translator: Mutex::new(CdcTranslator::new()),
        sender,
        newest_ms,
    });
    let now = Duration::from_millis(now_ms);
    let mut readers = Vec::new();
    let mut handles = Vec::new();
    for table in Table::ALL {
        let mut builder = CDCLogReaderBuilder::new()
            .session(session.clone())
            .keyspace(&options.keyspace)
            .table_name(table.name())
            .start_timestamp(now)
            .safety_interval(options.safety)
            .sleep_interval(options.sleep)
            .consumer_factory(Arc::new(FeedConsumerFactory {
                table,
                shared: shared.clone(),
            }));
        if !options.resume.is_zero() {
            let saver = TableBackedCheckpointSaver::builder()
                .session(session.clone())
                .keyspace(&options.keyspace)
                .table_name(&format!(
                    "cdc_checkpoints_{}_{}",
                    options.node,
                    table.name()
                ))
                .ttl(
                    (options.resume.as_secs() as i64)
                        .saturating_mul(2)
                        .max(3_600),
                )
                .build()
                .await
                .map_err(|e| unavailable("checkpoint table", e))?;
            // Checkpoints from an earlier run: resume (each stream from its own checkpoint, but
            // no further back than `resume`); none: a fresh node starts now.
            let resumes = saver
                .load_last_generation()
                .await
                .map_err(|e| unavailable("checkpoint load", e))?
                .is_some();
            if resumes {
                builder = builder
                    .start_timestamp(now.saturating_sub(options.resume))
                    .should_load_progress(true);
            }
            builder = builder
                .should_save_progress(true)
                .pause_between_saves(CHECKPOINT_PAUSE)
                .checkpoint_saver(Arc::new(saver));
        }
        let (reader, handle) = builder
            .build()
            .await
            .map_err(|e| unavailable(table.name(), e))?;
        readers.push(reader);
        handles.push((table, handle));
    }
    let run = async move {
        let ((table, outcome), _, _rest) = futures::future::select_all(
            handles
                .into_iter()
                .map(|(table, handle)| Box::pin(async move { (table, handle.await) })),
        )
        .await;
        // `_rest` (the other reader's handle) is dropped here, which stops that reader too.
        outcome.map_err(|e| unavailable(&format!("reader of `{}`", table.name()), e))
    };
    Ok((CdcReaders { readers }, run))
}
