//! The CQL store: state in ScyllaDB (or any CQL database: the tests run it on Apache Cassandra)
//! through the `scylla` driver. The only module that imports `scylla`.
//!
//! - `zones`: one small row per zone (cursor, rate bucket, counters); the exchanger's
//!   compare-and-set is a lightweight transaction on `version`, once per tick fleet-wide. Only
//!   column 0 (`[applied]`) of an LWT answer is read: ScyllaDB returns the whole row, Cassandra
//!   only `[applied]`. A timed-out LWT is an unknown outcome, so it is read back at SERIAL
//!   consistency before anyone retries.
//! - `queue`: partitioned by (zone, shard) so no partition is hot; clustered by (rank, visitor).
//!   Scans and counts ask every shard in parallel and merge (scatter-gather). Entries carry a TTL,
//!   so a sale's queue cleans itself up.
//! - `sessions` and `ledger` ([`slots`]): one partition per visitor, and slot counts per node,
//!   partitioned by (zone, shard) with each node writing to the shard its id hashes to.
//!
//! Every call is bounded by the configured timeout (the driver's request timeout).

mod schema;

#[cfg(test)]
mod tests;

mod outbox;
mod positions;
mod slots;

#[cfg(test)]
mod faults;

mod cdc;

use super::{Change, ChangeFeed, Store, StoreError};
use crate::admission::{Claim, Grant, QueueKey, VisitorId, ZoneState};
use crate::clock::SharedClock;
use crate::config::{CqlConsistency, ScyllaConfig, SyncMode};
use async_trait::async_trait;
use futures::future::join_all;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::{CqlValue, Row};
use std::sync::atomic::{AtomicU64, Ordering};
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
    scan_all: PreparedStatement,
    scan_through: PreparedStatement,
    forget: PreparedStatement,
    forget_one: PreparedStatement,
    slot_read: PreparedStatement,
    slot_read_serial: PreparedStatement,
    slot_insert: PreparedStatement,
    slot_update: PreparedStatement,
    ledger_write: PreparedStatement,
    ledger_read: PreparedStatement,
    revoked_write: PreparedStatement,
    revoked_read: PreparedStatement,
    outbox_write: PreparedStatement,
    outbox_read: PreparedStatement,
    identity_insert: PreparedStatement,
    identity_read_serial: PreparedStatement,
}

/// State in a CQL database.
pub struct CqlStore {
    session: Arc<Session>,
    /// The change feed in use: `Cdc` or `Outbox` (`auto` resolved at connect).
    sync: SyncMode,
    /// How long the newest change from another node took to arrive, in ms.
    lag_ms: Arc<AtomicU64>,
    statements: Statements,
    shards: u32,
    queue_ttl_s: i32,
    clock: SharedClock,
    feed: broadcast::Sender<Change>,
    /// This node's slot counts, which only this node writes.
    ledger: slots::NodeLedger,
    /// This node's index of the queue, for positions.
    positions: positions::Positions,
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
        let sync = schema::create(&session, settings).await?;
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
        let load_cql = format!("SELECT state FROM {ks}.zones WHERE zone = ?");
        let mut load_serial = prepare(load_cql.clone(), false).await?;
        load_serial.set_consistency(Consistency::Serial);
        let slot_read_cql = format!(
            "SELECT status, bucket, admitted_at FROM {ks}.sessions WHERE zone = ? AND visitor = ?"
        );
        let mut slot_read_serial = prepare(slot_read_cql.clone(), false).await?;
        slot_read_serial.set_consistency(Consistency::Serial);
        let mut identity_read_serial = prepare(
            format!("SELECT rank FROM {ks}.identities WHERE zone = ? AND visitor = ?"),
            false,
        )
        .await?;
        identity_read_serial.set_consistency(Consistency::Serial);
        let statements = Statements {
            identity_insert: prepare(
                format!(
                    "INSERT INTO {ks}.identities (zone, visitor, rank) VALUES (?, ?, ?) \
                     IF NOT EXISTS USING TTL ?"
                ),
                true,
            )
            .await?,
            identity_read_serial,
            load: prepare(load_cql, false).await?,
            load_serial,
            create: prepare(
                format!("INSERT INTO {ks}.zones (zone, version, state) VALUES (?, ?, ?) IF NOT EXISTS"),
                true,
            )
            .await?,
            update: prepare(
                format!("UPDATE {ks}.zones SET version = ?, state = ? WHERE zone = ? IF version = ?"),
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
            scan_all: prepare(
                format!(
                    "SELECT rank, visitor FROM {ks}.queue WHERE zone = ? AND shard = ? \
                     AND (rank, visitor) > (?, ?)"
                ),
                false,
            )
            .await?,
            scan_through: prepare(
                format!(
                    "SELECT rank, visitor, last_seen FROM {ks}.queue WHERE zone = ? AND shard = ? \
                     AND (rank, visitor) > (?, ?) AND (rank, visitor) <= (?, ?) LIMIT ?"
                ),
                false,
            )
            .await?,
            slot_read: prepare(slot_read_cql, false).await?,
            slot_read_serial,
            slot_insert: prepare(
                format!(
                    "INSERT INTO {ks}.sessions (zone, visitor, status, bucket, admitted_at) \
                     VALUES (?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?"
                ),
                true,
            )
            .await?,
            slot_update: prepare(
                format!(
                    "UPDATE {ks}.sessions USING TTL ? SET status = ?, bucket = ?, admitted_at = ? \
                     WHERE zone = ? AND visitor = ? IF status = ? AND bucket = ?"
                ),
                true,
            )
            .await?,
            ledger_write: prepare(
                format!(
                    "INSERT INTO {ks}.ledger (zone, shard, bucket, node, slots) VALUES (?, ?, ?, ?, ?) \
                     USING TTL ? AND TIMESTAMP ?"
                ),
                false,
            )
            .await?,
            revoked_write: prepare(
                format!(
                    "INSERT INTO {ks}.revoked (zone, shard, visitor, until) VALUES (?, ?, ?, ?) \
                     USING TTL ?"
                ),
                false,
            )
            .await?,
            revoked_read: prepare(
                format!("SELECT visitor, until FROM {ks}.revoked WHERE zone = ? AND shard = ?"),
                false,
            )
            .await?,
            ledger_read: prepare(
                format!(
                    "SELECT slots FROM {ks}.ledger WHERE zone = ? AND shard = ? AND bucket > ?"
                ),
                false,
            )
            .await?,
            forget: prepare(
                format!(
                    "DELETE FROM {ks}.queue WHERE zone = ? AND shard = ? \
                     AND (rank, visitor) > (?, ?) AND (rank, visitor) <= (?, ?)"
                ),
                false,
            )
            .await?,
            forget_one: prepare(
                format!(
                    "DELETE FROM {ks}.queue WHERE zone = ? AND shard = ? AND rank = ? AND visitor = ?"
                ),
                false,
            )
            .await?,
            outbox_write: prepare(
                format!("INSERT INTO {ks}.outbox (bucket, at, id, change) VALUES (?, ?, ?, ?)"),
                false,
            )
            .await?,
            outbox_read: prepare(
                format!("SELECT at, change FROM {ks}.outbox WHERE bucket = ? AND at > ?"),
                false,
            )
            .await?,
        };
        Ok(CqlStore {
            session: Arc::new(session),
            sync,
            lag_ms: Arc::new(AtomicU64::new(0)),
            statements,
            shards: settings.shards.max(1),
            queue_ttl_s: settings.queue_ttl.as_secs().min(i32::MAX as u64) as i32,
            clock,
            feed: broadcast::channel(4_096).0,
            ledger: slots::NodeLedger::new(),
            positions: positions::Positions::default(),
        })
    }

    fn shard_of(&self, visitor: VisitorId) -> i32 {
        (visitor.0 % self.shards as u128) as i32
    }

    fn shards(&self) -> impl Iterator<Item = i32> {
        0..self.shards as i32
    }

    async fn read_state(
        &self,
        statement: &PreparedStatement,
        zone: &str,
    ) -> Result<Option<ZoneState>, StoreError> {
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

impl CqlStore {
    /// Takes back `n` slots counted for a grant that did not happen.
    async fn uncount(&self, zone: &str, bucket: u64, n: i64, now_ms: u64) {
        if n <= 0 {
            return;
        }
        if let Err(e) = self.move_slots(zone, &[(bucket, -n)], now_ms).await {
            // The count stays in memory and is stored with the next write (or lapses with the
            // bucket): too many slots for a while, never too few.
            tracing::warn!(zone, error = %e, "taking back the count of a lost tick failed");
        }
    }

    /// The zone row's compare-and-set.
    async fn set_state(
        &self,
        zone: &str,
        expected: Option<u64>,
        state: &ZoneState,
        json: &str,
    ) -> Result<bool, StoreError> {
        let version = state.version as i64;
        let outcome = match expected {
            None => {
                self.session
                    .execute_unpaged(&self.statements.create, (zone, version, json))
                    .await
            }
            Some(old) => {
                self.session
                    .execute_unpaged(&self.statements.update, (version, json, zone, old as i64))
                    .await
            }
        };
        match outcome {
            Ok(result) => applied(result),
            // A timed-out LWT may or may not have applied: read back at SERIAL, which completes
            // any in-flight Paxos round, and see whose state is there.
            Err(e) => match self.read_state(&self.statements.load_serial, zone).await {
                Ok(current) => Ok(current.as_ref() == Some(state)),
                Err(_) => Err(unavailable(e)),
            },
        }
    }

    /// The queue entries at or below `cursor`, across shards, merged in order.
    async fn scan_through(
        &self,
        zone: &str,
        cursor: QueueKey,
        seen_since_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueueKey>, StoreError> {
        let (rank, visitor) = key_values(cursor);
        let (rank, visitor) = (&rank, &visitor);
        let per_shard = join_all(self.shards().map(|shard| async move {
            let page = (limit.max(1) * 2).min(5_000) as i32;
            let mut live = Vec::new();
            let mut from = (-1i64, String::new());
            loop {
                let values = (zone, shard, from.0, &from.1, rank, visitor, page);
                let result = self
                    .session
                    .execute_unpaged(&self.statements.scan_through, values)
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
                    if let Some(visitor) = VisitorId::parse(&v) {
                        if last_seen.unwrap_or(0) as u64 >= seen_since_ms && live.len() < limit {
                            live.push(QueueKey {
                                rank: r as u64,
                                visitor,
                            });
                        }
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

    /// Drops the queue entries a committed tick is done with: those after `grant.from` up to
    /// `cursor` (a range delete on every shard), and the admitted ones at or below `grant.from`.
    async fn forget(&self, zone: &str, grant: &Grant, cursor: QueueKey) -> Result<(), StoreError> {
        let (from_rank, from_visitor) = key_values(grant.from);
        let (to_rank, to_visitor) = key_values(cursor);
        let range = (&from_rank, &from_visitor, &to_rank, &to_visitor);
        let ranges = self.shards().filter(|_| cursor > grant.from).map(|shard| {
            let (fr, fv, tr, tv) = range;
            self.session
                .execute_unpaged(&self.statements.forget, (zone, shard, fr, fv, tr, tv))
        });
        let returned = grant
            .admitted
            .iter()
            .filter(|k| **k <= grant.from)
            .map(|k| {
                let (rank, visitor) = key_values(*k);
                let shard = self.shard_of(k.visitor);
                self.session
                    .execute_unpaged(&self.statements.forget_one, (zone, shard, rank, visitor))
            });
        let (ranges, returned) = futures::join!(join_all(ranges), join_all(returned));
        for d in ranges.into_iter().chain(returned) {
            d.map_err(unavailable)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Store for CqlStore {
    async fn load(&self, zone: &str) -> Result<Option<ZoneState>, StoreError> {
        self.read_state(&self.statements.load, zone).await
    }

    async fn commit_tick(
        &self,
        zone: &str,
        expected: Option<u64>,
        state: &ZoneState,
        grant: &Grant,
    ) -> Result<Option<u32>, StoreError> {
        let json = serde_json::to_string(state).map_err(unavailable)?;
        // The grant is counted before the state is visible, so no tick that sees the new cursor
        // can read a slot count without these reservations (and over-admit). A lost tick takes
        // its count back; until then the count errs on the safe side.
        let granted = grant.admitted.len() as i64;
        let bucket = grant.claim_bucket;
        let now = state.last_tick_ms;
        if granted > 0 {
            self.move_slots(zone, &[(bucket, granted)], now).await?;
        }
        let won = match self.set_state(zone, expected, state, &json).await {
            Ok(won) => won,
            Err(e) => {
                self.uncount(zone, bucket, granted, now).await;
                return Err(e);
            }
        };
        if !won {
            self.uncount(zone, bucket, granted, now).await;
            return Ok(None);
        }
        // The state is committed. What follows can fail without undoing it: a visitor whose
        // reservation was not written finds none, waits first in line, and the next tick
        // admits them; entries not forgotten are forgotten by the next tick.
        let reserved = self.reserve(zone, grant, now).await;
        // Visitors who already held a slot (granted twice in a race) were counted above.
        self.uncount(zone, bucket, granted - reserved as i64, now)
            .await;
        if let Err(e) = self.forget(zone, grant, state.cursor).await {
            tracing::warn!(zone, error = %e, "dropping admitted queue entries failed");
        }
        self.positions
            .forgot(zone, grant.from, state.cursor, &grant.admitted);
        // Published only now, so no node sees the cursor pass a visitor before their slot exists.
        self.publish(Change::Zone {
            zone: Arc::from(zone),
            state: Arc::new(state.clone()),
        })
        .await;
        Ok(Some(reserved))
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
        self.note_join(zone, key);
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
        self.count_between(zone, cursor, key).await
    }

    async fn waiting(&self, zone: &str, cursor: QueueKey) -> Result<u64, StoreError> {
        let end = QueueKey {
            rank: u64::MAX,
            visitor: VisitorId(u128::MAX),
        };
        self.count_between(zone, cursor, end).await
    }

    async fn returned(
        &self,
        zone: &str,
        cursor: QueueKey,
        seen_since_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueueKey>, StoreError> {
        // Entries of visitors holding a slot are ones a tick just admitted and has not dropped
        // yet; returned visitors are rare, so one slot read each is cheap.
        let now = self.clock.now_ms();
        let candidates = self
            .scan_through(zone, cursor, seen_since_ms, limit * 2 + 8)
            .await?;
        let slots = join_all(
            candidates
                .iter()
                .map(|k| self.read_slot(zone, k.visitor, false)),
        )
        .await;
        let mut returned = Vec::new();
        for (key, slot) in candidates.into_iter().zip(slots) {
            // A live slot of any kind: admitted (reserved or active), or released and done.
            let holds = slot?.is_some_and(|s| s.is_live(now));
            if !holds && returned.len() < limit {
                returned.push(key);
            }
        }
        Ok(returned)
    }

    async fn claim(
        &self,
        zone: &str,
        visitor: VisitorId,
        to: u64,
        now_ms: u64,
    ) -> Result<Claim, StoreError> {
        self.change_slot(zone, visitor, now_ms, |current| {
            crate::admission::slot::claim(current, to, now_ms)
        })
        .await
    }

    async fn renew(
        &self,
        zone: &str,
        visitor: VisitorId,
        from: u64,
        to: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        self.change_slot(zone, visitor, now_ms, |current| {
            crate::admission::slot::renew(current, from, to, now_ms)
        })
        .await
    }

    async fn identity_rank(
        &self,
        zone: &str,
        visitor: VisitorId,
        rank: u64,
        until_s: u64,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        let ttl = until_s
            .saturating_sub(now_ms / 1_000)
            .clamp(1, i32::MAX as u64) as i32;
        let values = (zone, visitor_text(visitor), rank as i64, ttl);
        let inserted = self
            .session
            .execute_unpaged(&self.statements.identity_insert, values)
            .await;
        let error = match inserted.map(applied) {
            Ok(Ok(true)) => return Ok(rank),
            Ok(Ok(false)) => None,
            Ok(Err(e)) => Some(e),
            // A timed-out LWT may or may not have applied: the row read at SERIAL says.
            Err(e) => Some(unavailable(e)),
        };
        let read = self
            .session
            .execute_unpaged(
                &self.statements.identity_read_serial,
                (zone, visitor_text(visitor)),
            )
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        let first = read
            .maybe_first_row::<(Option<i64>,)>()
            .map_err(unavailable)?
            .and_then(|(rank,)| rank);
        match (first, error) {
            (Some(first), _) => Ok(first as u64),
            (None, Some(e)) => Err(e),
            (None, None) => Err(unavailable(
                "an identity's place was neither written nor found",
            )),
        }
    }

    async fn release(
        &self,
        zone: &str,
        visitor: VisitorId,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        let until = self
            .change_slot(zone, visitor, now_ms, |current| {
                crate::admission::slot::release(current, now_ms)
            })
            .await?;
        if let Some(until_s) = until {
            // Listed by zone for nodes that start later; the slot row already refuses the claim.
            let ttl = until_s
                .saturating_sub(now_ms / 1_000)
                .max(1)
                .min(i32::MAX as u64) as i32;
            let values = (
                zone,
                self.shard_of(visitor),
                visitor.to_string(),
                until_s as i64,
                ttl,
            );
            let listed = self
                .session
                .execute_unpaged(&self.statements.revoked_write, values)
                .await;
            if let Err(e) = listed {
                tracing::warn!(zone, error = %e, "listing a revocation failed");
            }
            self.publish(Change::Revoked {
                zone: Arc::from(zone),
                visitor,
                until_s,
            })
            .await;
        }
        Ok(until)
    }

    async fn active(&self, zone: &str, now_ms: u64) -> Result<u64, StoreError> {
        self.count_slots(zone, now_ms).await
    }

    async fn revocations(
        &self,
        zone: &str,
        now_ms: u64,
    ) -> Result<Vec<(VisitorId, u64)>, StoreError> {
        use futures::StreamExt;
        let now_s = now_ms / 1_000;
        let per_shard = join_all(self.shards().map(|shard| async move {
            let mut rows = self
                .session
                .execute_iter(self.statements.revoked_read.clone(), (zone, shard))
                .await
                .map_err(unavailable)?
                .rows_stream::<(String, i64)>()
                .map_err(unavailable)?;
            let mut found = Vec::new();
            while let Some(row) = rows.next().await {
                let (visitor, until) = row.map_err(unavailable)?;
                if let Some(visitor) = VisitorId::parse(&visitor) {
                    if until as u64 > now_s {
                        found.push((visitor, until as u64));
                    }
                }
            }
            Ok::<_, StoreError>(found)
        }))
        .await;
        let mut all = Vec::new();
        for shard in per_shard {
            all.extend(shard?);
        }
        Ok(all)
    }
}

impl ChangeFeed for CqlStore {
    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    fn lag_ms(&self) -> u64 {
        self.lag_ms.load(Ordering::Relaxed)
    }
}

impl CqlStore {
    /// Tells this node's subscribers at once, and the other nodes through the outbox (with
    /// `sync = "cdc"` the other nodes read the tables' CDC logs instead).
    async fn publish(&self, change: Change) {
        let _ = self.feed.send(change.clone());
        if self.sync == SyncMode::Cdc {
            return;
        }
        if let Err(e) = self.write_outbox(&change).await {
            // The change is written; the other nodes see it with the next change or reload.
            tracing::warn!(error = %e, "writing the outbox failed");
        }
    }
}

impl CqlStore {
    /// The change feed in use: `Cdc` on ScyllaDB (unless `sync = "outbox"`), else `Outbox`.
    pub fn sync(&self) -> SyncMode {
        self.sync
    }

    /// Runs this node's side of the change feed until it fails (CDC) or forever (outbox):
    /// every change other nodes make reaches [`ChangeFeed::subscribe`]rs, and
    /// [`ChangeFeed::lag_ms`] tracks how late.
    pub async fn follow_feed(self: Arc<Self>, settings: ScyllaConfig) -> Result<(), StoreError> {
        if self.sync == SyncMode::Outbox {
            self.tail_outbox(settings.feed_interval, settings.feed_safety)
                .await;
            return Ok(());
        }
        let newest_ms = Arc::new(AtomicU64::new(0));
        let options = cdc::CdcOptions {
            keyspace: settings.keyspace.clone(),
            node: self.ledger.node().to_string(),
            safety: settings.feed_safety,
            sleep: settings.feed_interval,
            // No checkpoints: a node starts reading at now; zone states are whole, so the next
            // change brings it up to date, and `Room::warm` loads them at start.
            resume: std::time::Duration::ZERO,
        };
        let (mut readers, feed) = cdc::start(
            self.session.clone(),
            &options,
            self.clock.now_ms(),
            self.feed.clone(),
            newest_ms.clone(),
        )
        .await?;
        let lag = self.lag_ms.clone();
        let clock = self.clock.clone();
        let mut seen = 0;
        let watch = async move {
            let mut ticker = tokio::time::interval(settings.feed_interval);
            loop {
                ticker.tick().await;
                let newest = newest_ms.load(Ordering::Relaxed);
                if newest > seen {
                    seen = newest;
                    lag.store(clock.now_ms().saturating_sub(newest), Ordering::Relaxed);
                }
            }
        };
        let result = tokio::select! {
            result = feed => result,
            _ = watch => Ok(()),
        };
        readers.stop();
        result
    }
}
