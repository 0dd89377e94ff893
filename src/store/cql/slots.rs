//! Visitors' slots and the slot ledger in CQL.
//!
//! - `sessions`: one partition per (zone, visitor). A slot changes only through the transitions
//!   of [`crate::admission::slot`], each applied as a lightweight transaction on that visitor's
//!   own row (`IF NOT EXISTS`, or `IF status = ? AND bucket = ?` on what was read), so claims,
//!   renewals and releases on different visitors never contend, and two tabs of one visitor
//!   cannot take two slots. Rows carry a TTL a little past their bucket.
//! - `ledger`: slot counts by ((zone, shard), expiry second, node). Each node writes only its own
//!   rows, all in the shard its id hashes to (a node's ledger write is one single-partition
//!   batch, applied atomically; the nodes' writes spread over the shards),
//!   with the absolute count it keeps in memory and a client timestamp that grows with every
//!   write, so the last count written wins even if two writes race on the wire. No counters, no
//!   contention; a zone's active slots are the sum over nodes of the buckets after now.
//!   A node that restarts writes under a new id; its old rows stay valid until they expire.

use super::{applied, unavailable, CqlStore};
use crate::admission::slot::Transition;
use crate::admission::{Grant, Ledger, Slot, SlotStatus, VisitorId};
use crate::store::StoreError;
use futures::future::join_all;
use scylla::statement::batch::{Batch, BatchType};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// How long rows outlive their bucket, so a slightly slow clock never drops a live one.
const TTL_MARGIN_S: u64 = 60;

/// How many times a slot transition is retried when another request changed the row first.
const MAX_ATTEMPTS: usize = 8;

/// This node's share of the ledger.
pub(super) struct NodeLedger {
    /// Random per process: a restarted node starts fresh rows instead of guessing old counts.
    node: String,
    counts: Mutex<HashMap<String, Ledger>>,
    /// Buckets whose count changed but may not be stored yet (a write failed or is in flight),
    /// with the timestamp of the latest write of that count: the next write for the zone stores
    /// them too, so a failed write is repaired.
    unstored: Mutex<HashMap<(String, u64), i64>>,
    /// The last write timestamp used, in microseconds.
    last_write_us: AtomicU64,
}

impl NodeLedger {
    /// This node's id in the ledger.
    pub(super) fn node(&self) -> &str {
        &self.node
    }

    pub(super) fn new() -> Self {
        NodeLedger {
            node: format!("{:016x}", rand::random::<u64>()),
            counts: Mutex::new(HashMap::new()),
            unstored: Mutex::new(HashMap::new()),
            last_write_us: AtomicU64::new(0),
        }
    }

    /// Applies `moves` to this node's counts; returns the count of every bucket to write (those
    /// touched, and those of the zone not stored yet) and a write timestamp later than any used
    /// before.
    fn apply(&self, zone: &str, moves: &[(u64, i64)], now_ms: u64) -> (Vec<(u64, i64)>, i64) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut unstored = self.unstored.lock().unwrap_or_else(|p| p.into_inner());
        let ledger = counts.entry(zone.to_string()).or_default();
        let oldest = now_ms.saturating_sub(TTL_MARGIN_S * 1_000);
        ledger.prune(oldest);
        unstored.retain(|(_, bucket), _| *bucket * 1_000 > oldest);
        let stamp = self.next_stamp(now_ms);
        for (bucket, delta) in moves {
            ledger.add(*bucket, *delta);
        }
        // Every count of the zone not known to be stored is written again with this stamp.
        for (bucket, _) in moves {
            unstored.insert((zone.to_string(), *bucket), stamp);
        }
        let mut written = Vec::new();
        for ((z, bucket), latest) in unstored.iter_mut() {
            if z == zone {
                *latest = stamp;
                written.push((*bucket, ledger.count(*bucket)));
            }
        }
        (written, stamp)
    }
}

impl NodeLedger {
    /// The count of `bucket` in `zone` was stored by the write stamped `stamp`; a later write of
    /// the same bucket still pending keeps it listed.
    fn stored(&self, zone: &str, bucket: u64, stamp: i64) {
        let mut unstored = self.unstored.lock().unwrap_or_else(|p| p.into_inner());
        let key = (zone.to_string(), bucket);
        if unstored.get(&key) == Some(&stamp) {
            unstored.remove(&key);
        }
    }

    /// A write timestamp (µs) later than any used before.
    fn next_stamp(&self, now_ms: u64) -> i64 {
        let now_us = now_ms * 1_000;
        let previous = self
            .last_write_us
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now_us.max(last + 1))
            })
            .unwrap_or(0);
        now_us.max(previous + 1) as i64
    }
}

fn ttl_until(bucket: u64, now_ms: u64) -> i32 {
    (bucket.saturating_sub(now_ms / 1_000) + TTL_MARGIN_S).min(i32::MAX as u64) as i32
}

impl CqlStore {
    /// The slot of `visitor`, read at the statement's consistency.
    pub(super) async fn read_slot(
        &self,
        zone: &str,
        visitor: VisitorId,
        serial: bool,
    ) -> Result<Option<Slot>, StoreError> {
        let statement = if serial {
            &self.statements.slot_read_serial
        } else {
            &self.statements.slot_read
        };
        let result = self
            .session
            .execute_unpaged(statement, (zone, visitor.to_string()))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        let row = result
            .maybe_first_row::<(Option<String>, Option<i64>, Option<i64>)>()
            .map_err(unavailable)?;
        Ok(row.and_then(|(status, bucket, admitted_at)| {
            Some(Slot {
                status: SlotStatus::parse(status.as_deref()?)?,
                bucket: bucket? as u64,
                admitted_at_ms: admitted_at.unwrap_or(0) as u64,
            })
        }))
    }

    /// Writes `next` if the row still holds `current`; an unknown outcome (timeout) is read
    /// back at SERIAL.
    async fn write_slot(
        &self,
        zone: &str,
        visitor: VisitorId,
        current: Option<&Slot>,
        next: &Slot,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let visitor_text = visitor.to_string();
        let ttl = ttl_until(next.bucket, now_ms);
        let outcome = match current {
            None => {
                let values = (
                    zone,
                    &visitor_text,
                    next.status.as_str(),
                    next.bucket as i64,
                    next.admitted_at_ms as i64,
                    ttl,
                );
                self.session
                    .execute_unpaged(&self.statements.slot_insert, values)
                    .await
            }
            Some(current) => {
                let values = (
                    ttl,
                    next.status.as_str(),
                    next.bucket as i64,
                    next.admitted_at_ms as i64,
                    zone,
                    &visitor_text,
                    current.status.as_str(),
                    current.bucket as i64,
                );
                self.session
                    .execute_unpaged(&self.statements.slot_update, values)
                    .await
            }
        };
        match outcome {
            Ok(result) => applied(result),
            Err(e) => match self.read_slot(zone, visitor, true).await {
                Ok(now) => Ok(now.as_ref() == Some(next)),
                Err(_) => Err(unavailable(e)),
            },
        }
    }

    /// Reads `visitor`'s slot, computes `transition`, and writes it as a compare-and-set on the
    /// row, retrying if another request changed the row first; then moves this node's ledger.
    pub(super) async fn change_slot<T>(
        &self,
        zone: &str,
        visitor: VisitorId,
        now_ms: u64,
        transition: impl Fn(Option<&Slot>) -> Transition<T>,
    ) -> Result<T, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let current = self.read_slot(zone, visitor, false).await?;
            let t = transition(current.as_ref());
            let Some(next) = t.next else {
                return Ok(t.outcome);
            };
            if self
                .write_slot(zone, visitor, current.as_ref(), &next, now_ms)
                .await?
            {
                self.move_slots(zone, &t.moves, now_ms).await?;
                return Ok(t.outcome);
            }
        }
        Err(StoreError::Unavailable(format!(
            "slot of {visitor} in `{zone}` kept changing under {MAX_ATTEMPTS} attempts"
        )))
    }

    /// Writes a reservation for every visitor a committed tick admitted, in parallel; each is an
    /// `IF NOT EXISTS` on the visitor's own row, so a visitor granted twice (a race between two
    /// nodes' ticks) holds one. Returns how many may have been written: a write with an unknown
    /// outcome counts, because the ledger must never count fewer slots than exist. The caller
    /// moves the ledger (it counted the grant before the tick's compare-and-set).
    pub(super) async fn reserve(&self, zone: &str, grant: &Grant, now_ms: u64) -> u32 {
        let reservation = Slot {
            status: SlotStatus::Reserved,
            bucket: grant.claim_bucket,
            admitted_at_ms: grant.admitted_at_ms,
        };
        let written = join_all(
            grant
                .admitted
                .iter()
                .map(|key| self.write_slot(zone, key.visitor, None, &reservation, now_ms)),
        )
        .await;
        let mut reserved = 0;
        for w in written {
            match w {
                Ok(applied) => reserved += applied as u32,
                Err(e) => {
                    tracing::warn!(zone, error = %e, "a reservation's outcome is unknown");
                    reserved += 1;
                }
            }
        }
        reserved
    }

    /// Moves this node's ledger by `moves` and writes the new counts (and any count an earlier
    /// write failed to store).
    pub(super) async fn move_slots(
        &self,
        zone: &str,
        moves: &[(u64, i64)],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let (counts, stamp) = self.ledger.apply(zone, moves, now_ms);
        if counts.is_empty() {
            return Ok(());
        }
        // One unlogged batch on the zone's ledger partition: applied atomically and in
        // isolation, so a reader never sees a claim's -1 without its +1 (and admits one too many).
        let ledger_write = &self.statements.ledger_write;
        let mut batch = Batch::new(BatchType::Unlogged);
        for _ in &counts {
            batch.append_statement(ledger_write.clone());
        }
        if let Some(consistency) = ledger_write.get_consistency() {
            batch.set_consistency(consistency);
        }
        batch.set_request_timeout(ledger_write.get_request_timeout());
        batch.set_is_idempotent(true);
        let node = self.ledger.node.as_str();
        let shard = self.ledger_shard();
        let values: Vec<_> = counts
            .iter()
            .map(|(bucket, slots)| {
                let ttl = ttl_until(*bucket, now_ms);
                (zone, shard, *bucket as i64, node, *slots, ttl, stamp)
            })
            .collect();
        self.session
            .batch(&batch, values)
            .await
            .map_err(unavailable)?;
        for (bucket, _) in &counts {
            self.ledger.stored(zone, *bucket, stamp);
        }
        Ok(())
    }

    /// The ledger shard this node writes to.
    fn ledger_shard(&self) -> i32 {
        let id = u64::from_str_radix(&self.ledger.node, 16).unwrap_or(0);
        (id % self.shards as u64) as i32
    }

    /// Slots occupied at `now_ms`: every node's counts of the buckets after now, every shard
    /// read in parallel.
    pub(super) async fn count_slots(&self, zone: &str, now_ms: u64) -> Result<u64, StoreError> {
        use futures::StreamExt;
        let first_live = (now_ms / 1_000) as i64;
        let sums = self
            .on_every_shard(|shard| async move {
                let mut rows = self
                    .session
                    .execute_iter(
                        self.statements.ledger_read.clone(),
                        (zone, shard, first_live),
                    )
                    .await
                    .map_err(unavailable)?
                    .rows_stream::<(Option<i64>,)>()
                    .map_err(unavailable)?;
                let mut sum = 0i64;
                while let Some(row) = rows.next().await {
                    sum += row.map_err(unavailable)?.0.unwrap_or(0);
                }
                Ok(sum)
            })
            .await?;
        let total: i64 = sums.into_iter().sum();
        Ok(total.max(0) as u64)
    }
}
