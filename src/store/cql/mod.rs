//! The CQL store: state in ScyllaDB (or any CQL database: the tests run it on Apache Cassandra)
//! through the `scylla` driver. The only module that imports `scylla`.
//!
//! - `zones`: one row per zone holding the versioned record; the compare-and-set is a
//!   lightweight transaction on `version`. Only column 0 (`[applied]`) of an LWT answer is read:
//!   ScyllaDB returns the whole row, Cassandra only `[applied]`. A timed-out LWT is an unknown
//!   outcome, so it is read back at SERIAL consistency before anyone retries.
//! - `queue`: partitioned by (zone, shard) so no partition is hot; clustered by (rank, visitor).
//!   Scans and counts ask every shard in parallel and merge (scatter-gather). Entries carry a TTL,
//!   so a sale's queue cleans itself up.
//!
//! Every call is bounded by the configured timeout (the driver's request timeout).

mod schema;

#[cfg(test)]
mod tests;

mod outbox;

use super::{Change, ChangeFeed, Store, StoreError, ZoneRecord};
use crate::admission::{QueueKey, VisitorId};
use crate::clock::SharedClock;
use crate::config::{CqlConsistency, ScyllaConfig};
use async_trait::async_trait;
use futures::future::join_all;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::{CqlValue, Row};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Prepared statements, one per operation.
struct Statements {
    load: PreparedStatement,
    load_serial: PreparedStatement,
    create: PreparedStatement,
    update: PreparedStatement,
    touch: PreparedStatement,
    scan: PreparedStatement,
    count_between: PreparedStatement,
    count_after: PreparedStatement,
    forget: PreparedStatement,
    outbox_write: PreparedStatement,
    outbox_read: PreparedStatement,
}

/// State in a CQL database.
pub struct CqlStore {
    session: Session,
    statements: Statements,
    shards: u32,
    queue_ttl_s: i32,
    clock: SharedClock,
    feed: broadcast::Sender<Change>,
}

fn consistency(c: CqlConsistency) -> Consistency {
    match c {
        CqlConsistency::One => Consistency::One,
        CqlConsistency::LocalOne => Consistency::LocalOne,
        CqlConsistency::Quorum => Consistency::Quorum,
        CqlConsistency::LocalQuorum => Consistency::LocalQuorum,
        CqlConsistency::All => Consistency::All,
    }
}

/// The serial consistency that goes with a data-center-local or global consistency.
fn serial(c: CqlConsistency) -> SerialConsistency {
    match c {
        CqlConsistency::LocalOne | CqlConsistency::LocalQuorum => SerialConsistency::LocalSerial,
        _ => SerialConsistency::Serial,
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn visitor_text(v: VisitorId) -> String {
    v.to_string()
}

impl CqlStore {
    /// Connects, creates (or checks) the keyspace and tables, and prepares every statement.
    pub async fn connect(
        settings: &ScyllaConfig,
        clock: SharedClock,
    ) -> Result<CqlStore, StoreError> {
        let session = SessionBuilder::new()
            .known_nodes(&settings.contact_points)
            .connection_timeout(settings.timeout)
            .build()
            .await
            .map_err(unavailable)?;
        schema::create(&session, settings).await?;
        let ks = &settings.keyspace;
        let prepare = |cql: String, lwt: bool| {
            let session = &session;
            async move {
                let mut statement = session.prepare(cql).await.map_err(unavailable)?;
                statement.set_request_timeout(Some(settings.timeout));
                statement.set_consistency(consistency(settings.consistency));
                if lwt {
                    statement.set_serial_consistency(Some(serial(settings.consistency)));
                } else {
                    statement.set_is_idempotent(true);
                }
                Ok::<_, StoreError>(statement)
            }
        };
        let mut load_serial = prepare(
            format!("SELECT record FROM {ks}.zones WHERE zone = ?"),
            false,
        )
        .await?;
        load_serial.set_consistency(Consistency::Serial);
        let statements = Statements {
            load: prepare(format!("SELECT record FROM {ks}.zones WHERE zone = ?"), false).await?,
            load_serial,
            create: prepare(
                format!("INSERT INTO {ks}.zones (zone, version, record) VALUES (?, ?, ?) IF NOT EXISTS"),
                true,
            )
            .await?,
            update: prepare(
                format!("UPDATE {ks}.zones SET version = ?, record = ? WHERE zone = ? IF version = ?"),
                true,
            )
            .await?,
            touch: prepare(
                format!(
                    "UPDATE {ks}.queue USING TTL ? SET last_seen = ? \
                     WHERE zone = ? AND shard = ? AND rank = ? AND visitor = ?"
                ),
                false,
            )
            .await?,
            scan: prepare(
                format!(
                    "SELECT rank, visitor, last_seen FROM {ks}.queue \
                     WHERE zone = ? AND shard = ? AND (rank, visitor) > (?, ?) LIMIT ?"
                ),
                false,
            )
            .await?,
            count_between: prepare(
                format!(
                    "SELECT COUNT(*) FROM {ks}.queue WHERE zone = ? AND shard = ? \
                     AND (rank, visitor) > (?, ?) AND (rank, visitor) < (?, ?)"
                ),
                false,
            )
            .await?,
            count_after: prepare(
                format!(
                    "SELECT COUNT(*) FROM {ks}.queue WHERE zone = ? AND shard = ? \
                     AND (rank, visitor) > (?, ?)"
                ),
                false,
            )
            .await?,
            forget: prepare(
                format!(
                    "DELETE FROM {ks}.queue WHERE zone = ? AND shard = ? AND (rank, visitor) <= (?, ?)"
                ),
                false,
            )
            .await?,
            outbox_write: prepare(
                format!(
                    "INSERT INTO {ks}.outbox (bucket, at, zone, version, record) VALUES (?, ?, ?, ?, ?)"
                ),
                false,
            )
            .await?,
            outbox_read: prepare(
                format!("SELECT at, zone, version, record FROM {ks}.outbox WHERE bucket = ? AND at > ?"),
                false,
            )
            .await?,
        };
        Ok(CqlStore {
            session,
            statements,
            shards: settings.shards.max(1),
            queue_ttl_s: settings.queue_ttl.as_secs().min(i32::MAX as u64) as i32,
            clock,
            feed: broadcast::channel(4_096).0,
        })
    }

    fn shard_of(&self, visitor: VisitorId) -> i32 {
        (visitor.0 % self.shards as u128) as i32
    }

    fn shards(&self) -> impl Iterator<Item = i32> {
        0..self.shards as i32
    }

    async fn read_record(
        &self,
        statement: &PreparedStatement,
        zone: &str,
    ) -> Result<Option<ZoneRecord>, StoreError> {
        let result = self
            .session
            .execute_unpaged(statement, (zone,))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        let row = result
            .maybe_first_row::<(Option<String>,)>()
            .map_err(unavailable)?;
        match row {
            Some((Some(json),)) => serde_json::from_str(&json).map(Some).map_err(unavailable),
            _ => Ok(None),
        }
    }

    /// Sums `COUNT(*)` over every shard.
    async fn count(
        &self,
        statement: &PreparedStatement,
        zone: &str,
        bounds: &[(i64, String)],
    ) -> Result<u64, StoreError> {
        let counts = join_all(self.shards().map(|shard| async move {
            let result = match bounds {
                [(r1, v1)] => {
                    self.session
                        .execute_unpaged(statement, (zone, shard, r1, v1))
                        .await
                }
                [(r1, v1), (r2, v2)] => {
                    self.session
                        .execute_unpaged(statement, (zone, shard, r1, v1, r2, v2))
                        .await
                }
                _ => unreachable!("one or two bounds"),
            }
            .map_err(unavailable)?;
            let rows = result.into_rows_result().map_err(unavailable)?;
            let (n,) = rows.first_row::<(i64,)>().map_err(unavailable)?;
            Ok::<u64, StoreError>(n.max(0) as u64)
        }))
        .await;
        counts.into_iter().sum()
    }
}

fn key_values(key: QueueKey) -> (i64, String) {
    (key.rank as i64, visitor_text(key.visitor))
}

/// Whether an LWT answer says it applied: column 0, `[applied]`, whatever follows it.
fn applied(result: scylla::response::query_result::QueryResult) -> Result<bool, StoreError> {
    let rows = result.into_rows_result().map_err(unavailable)?;
    let row = rows.maybe_first_row::<Row>().map_err(unavailable)?;
    Ok(matches!(
        row.and_then(|r| r.columns.into_iter().next().flatten()),
        Some(CqlValue::Boolean(true))
    ))
}

#[async_trait]
impl Store for CqlStore {
    async fn load(&self, zone: &str) -> Result<Option<ZoneRecord>, StoreError> {
        self.read_record(&self.statements.load, zone).await
    }

    async fn compare_and_set(
        &self,
        zone: &str,
        expected: Option<u64>,
        record: &ZoneRecord,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(record).map_err(unavailable)?;
        let version = record.state.version as i64;
        let outcome = match expected {
            None => {
                self.session
                    .execute_unpaged(&self.statements.create, (zone, version, &json))
                    .await
            }
            Some(old) => {
                self.session
                    .execute_unpaged(&self.statements.update, (version, &json, zone, old as i64))
                    .await
            }
        };
        let applied = match outcome {
            Ok(result) => applied(result)?,
            // A timed-out LWT may or may not have applied: read back at SERIAL, which completes
            // any in-flight Paxos round, and see whose record is there.
            Err(e) => match self.read_record(&self.statements.load_serial, zone).await {
                Ok(current) => current.as_ref() == Some(record),
                Err(_) => return Err(unavailable(e)),
            },
        };
        if applied {
            self.publish(zone, record, &json).await;
        }
        Ok(applied)
    }

    async fn touch(&self, zone: &str, key: QueueKey, now_ms: u64) -> Result<(), StoreError> {
        let (rank, visitor) = key_values(key);
        self.session
            .execute_unpaged(
                &self.statements.touch,
                (
                    self.queue_ttl_s,
                    now_ms as i64,
                    zone,
                    self.shard_of(key.visitor),
                    rank,
                    visitor,
                ),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn live_after(
        &self,
        zone: &str,
        after: QueueKey,
        seen_since_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueueKey>, StoreError> {
        let (rank, visitor) = key_values(after);
        let (rank, visitor) = (&rank, &visitor);
        // Each shard's first `limit` live entries, merged: the global first `limit` are among them.
        let per_shard = join_all(self.shards().map(|shard| async move {
            let mut live = Vec::new();
            let mut from = (*rank, visitor.clone());
            loop {
                let page = (limit.max(1) * 2).min(5_000) as i32;
                let result = self
                    .session
                    .execute_unpaged(&self.statements.scan, (zone, shard, from.0, &from.1, page))
                    .await
                    .map_err(unavailable)?;
                let rows = result.into_rows_result().map_err(unavailable)?;
                let mut seen_rows = 0;
                for row in rows
                    .rows::<(i64, String, Option<i64>)>()
                    .map_err(unavailable)?
                {
                    let (r, v, last_seen) = row.map_err(unavailable)?;
                    seen_rows += 1;
                    from = (r, v.clone());
                    let Some(visitor) = VisitorId::parse(&v) else {
                        continue;
                    };
                    if last_seen.unwrap_or(0) as u64 >= seen_since_ms && live.len() < limit {
                        live.push(QueueKey {
                            rank: r as u64,
                            visitor,
                        });
                    }
                }
                if live.len() >= limit || seen_rows < page {
                    return Ok::<_, StoreError>(live);
                }
            }
        }))
        .await;
        let mut merged = Vec::new();
        for shard in per_shard {
            merged.extend(shard?);
        }
        merged.sort_unstable();
        merged.truncate(limit);
        Ok(merged)
    }

    async fn ahead(&self, zone: &str, cursor: QueueKey, key: QueueKey) -> Result<u64, StoreError> {
        if key <= cursor {
            return Ok(0);
        }
        self.count(
            &self.statements.count_between,
            zone,
            &[key_values(cursor), key_values(key)],
        )
        .await
    }

    async fn waiting(&self, zone: &str, cursor: QueueKey) -> Result<u64, StoreError> {
        self.count(&self.statements.count_after, zone, &[key_values(cursor)])
            .await
    }

    async fn forget_through(&self, zone: &str, cursor: QueueKey) -> Result<(), StoreError> {
        let (rank, visitor) = key_values(cursor);
        let (rank, visitor) = (&rank, &visitor);
        let deleted = join_all(self.shards().map(|shard| async move {
            self.session
                .execute_unpaged(&self.statements.forget, (zone, shard, rank, visitor))
                .await
                .map_err(unavailable)
        }))
        .await;
        for d in deleted {
            d?;
        }
        Ok(())
    }
}

impl ChangeFeed for CqlStore {
    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }
}

impl CqlStore {
    /// Tells this node's subscribers at once, and the other nodes through the outbox.
    async fn publish(&self, zone: &str, record: &ZoneRecord, json: &str) {
        let _ = self.feed.send(Change::Zone {
            zone: Arc::from(zone),
            record: Arc::new(record.clone()),
        });
        if let Err(e) = self.write_outbox(zone, record.state.version, json).await {
            // The record is written; the other nodes see it with the next change or reload.
            tracing::warn!(zone, error = %e, "writing the outbox failed");
        }
    }
}
