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
//! - `identities`: one partition per identity, its first arrival (an LWT insert-if-absent).
//! - `codes`: priority codes by hash, uses taken with a compare-and-set on `uses`.
//! - `overrides`: one row per zone, its live overrides as JSON (every node reads it each tick).
//!
//! Every call is bounded by the configured timeout (the driver's request timeout), which the
//! store also reports to the room ([`Store::timeout`]). Files: `statements` (every prepared
//! statement), `queue` (the queue's scans, through one per-shard helper), `positions` (the
//! position index), `slots`, `feed` (publishing and following changes: `outbox`, `cdc`),
//! `schema`.

mod schema;

#[cfg(test)]
mod tests;

mod feed;
mod outbox;
mod positions;
mod queue;
mod slots;
mod statements;

#[cfg(test)]
mod faults;

mod cdc;

use super::{Change, Store, StoreError};
use crate::admission::{Claim, Grant, QueueKey, VisitorId, ZoneState};
use crate::clock::SharedClock;
use crate::config::overrides::Overrides;
use crate::config::{ScyllaConfig, SyncMode};
use crate::store::PriorityCode;
use async_trait::async_trait;
use futures::future::join_all;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};
use statements::Statements;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::sync::broadcast;

/// State in a CQL database.
pub struct CqlStore {
    session: Arc<Session>,
    /// The change feed in use: `Cdc` or `Outbox` (`auto` resolved at connect).
    sync: SyncMode,
    /// How long the newest change from another node took to arrive, in ms.
    lag_ms: Arc<AtomicU64>,
    statements: Statements,
    /// `store.timeout`: every call's bound (the driver's request timeout).
    timeout: std::time::Duration,
    shards: u32,
    queue_ttl_s: i32,
    clock: SharedClock,
    feed: broadcast::Sender<Change>,
    /// This node's slot counts, which only this node writes.
    ledger: slots::NodeLedger,
    /// This node's index of the queue, for positions.
    positions: positions::Positions,
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
        let statements = Statements::prepare(&session, settings).await?;
        Ok(CqlStore {
            session: Arc::new(session),
            sync,
            lag_ms: Arc::new(AtomicU64::new(0)),
            statements,
            timeout: settings.timeout,
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
        self.live_keys(zone, Some(after), None, seen_since_ms, limit)
            .await
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
            .live_keys(zone, None, Some(cursor), seen_since_ms, limit * 2 + 8)
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

    async fn add_codes(&self, zone: &str, codes: &[PriorityCode]) -> Result<(), StoreError> {
        let now_s = self.clock.now_ms() / 1_000;
        for code in codes {
            let ttl = code.until_s.saturating_sub(now_s).clamp(1, i32::MAX as u64) as i32;
            let values = (
                zone,
                code.hash.as_str(),
                code.uses.min(i32::MAX as u32) as i32,
                code.until_s as i64,
                ttl,
            );
            self.session
                .execute_unpaged(&self.statements.code_insert, values)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn use_code(&self, zone: &str, hash: &str, now_ms: u64) -> Result<bool, StoreError> {
        // Read, then take one use with a compare-and-set; a lost race reads again.
        for _ in 0..8 {
            let rows = self
                .session
                .execute_unpaged(&self.statements.code_read_serial, (zone, hash))
                .await
                .map_err(unavailable)?
                .into_rows_result()
                .map_err(unavailable)?;
            let Some((uses, until)) = rows
                .maybe_first_row::<(Option<i32>, Option<i64>)>()
                .map_err(unavailable)?
            else {
                return Ok(false);
            };
            let (uses, until) = (uses.unwrap_or(0), until.unwrap_or(0));
            if uses <= 0 || until as u64 <= now_ms / 1_000 {
                return Ok(false);
            }
            let taken = self
                .session
                .execute_unpaged(&self.statements.code_use, (uses - 1, zone, hash, uses))
                .await
                .map_err(unavailable)?;
            if applied(taken)? {
                return Ok(true);
            }
        }
        Err(unavailable("a priority code is contended; try again"))
    }

    async fn overrides(&self, zone: &str) -> Result<Option<Overrides>, StoreError> {
        let rows = self
            .session
            .execute_unpaged(&self.statements.overrides_read, (zone,))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        let Some((text,)) = rows
            .maybe_first_row::<(Option<String>,)>()
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        match text.as_deref().map(Overrides::from_json) {
            None => Ok(None),
            Some(Some(overrides)) => Ok(Some(overrides)),
            // Written by a newer usher, or damaged: not something to run a zone with.
            Some(None) => Err(unavailable(format!(
                "the overrides row of zone `{zone}` cannot be read"
            ))),
        }
    }

    async fn set_overrides(&self, zone: &str, overrides: &Overrides) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(
                &self.statements.overrides_write,
                (zone, overrides.to_json()),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
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
        let per_shard = self
            .on_every_shard(|shard| async move {
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
                Ok(found)
            })
            .await?;
        Ok(per_shard.into_iter().flatten().collect())
    }

    fn timeout(&self) -> std::time::Duration {
        self.timeout
    }
}
