//! Positions in line without counting the queue on every page view: each node keeps an index of
//! the queue after the cursor (the edge cache of `docs/architecture.md`).
//!
//! The index is a sorted scan of every shard plus this node's own joins since; a position is two
//! binary searches. When it is older than [`INDEX_AGE`], the next position asked reads only the
//! tail of the queue (entries ranked from a little before the newest one it has: new arrivals
//! rank now), and every [`FULL_SCAN_EVERY`] the whole queue, which also catches visitors who
//! re-joined at an old rank and entries that left. What the index misses is other nodes' joins
//! since the last read, which can only stand before a newcomer of this node if they joined in
//! the same moment: a position can be short by those for up to [`INDEX_AGE`]. The cost is about
//! one read of each new entry per node, instead of a `COUNT` over the queue ahead of every
//! waiting visitor at every refresh (measured: 496 joins with a position per second against
//! 35 000 joins without; see benches/README.md).

use super::{key_values, unavailable, CqlStore};
use crate::admission::{QueueKey, VisitorId};
use crate::store::StoreError;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How old an index may be before the next position asked reads the queue's tail.
pub(super) const INDEX_AGE: Duration = Duration::from_secs(1);

/// How often the index reads the whole queue again.
pub(super) const FULL_SCAN_EVERY: Duration = Duration::from_secs(30);

/// How far before the newest entry it has a tail read starts: joins written a little late.
const TAIL_OVERLAP_MS: u64 = 5_000;

/// One zone's queue after a cursor, as of a scan, plus this node's joins since.
#[derive(Debug, Default)]
struct Index {
    /// When the queue was last read (whole or tail), and when it was last read whole.
    built_ms: u64,
    full_ms: u64,
    cursor: QueueKey,
    /// Every queued key after `cursor` at the scan, sorted.
    scanned: Vec<QueueKey>,
    /// This node's joins since the scan that the scan did not have, sorted. New arrivals have
    /// the highest ranks, so inserts are appends.
    recent: Vec<QueueKey>,
}

impl Index {
    fn contains(&self, key: &QueueKey) -> bool {
        self.scanned.binary_search(key).is_ok() || self.recent.binary_search(key).is_ok()
    }

    fn add(&mut self, key: QueueKey) {
        if key > self.cursor && !self.contains(&key) {
            let at = self.recent.partition_point(|k| *k < key);
            self.recent.insert(at, key);
        }
    }

    /// Folds a tail read (sorted) into the scanned keys, without duplicates.
    fn merge_tail(&mut self, tail: Vec<QueueKey>) {
        let mut merged = Vec::with_capacity(self.scanned.len() + tail.len());
        let (mut a, mut b) = (
            self.scanned.drain(..).peekable(),
            tail.into_iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x < y => a.next(),
                (Some(x), Some(y)) if x > y => b.next(),
                (Some(_), Some(_)) => {
                    b.next();
                    a.next()
                }
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            merged.extend(next);
        }
        drop(a);
        self.scanned = merged;
        let scanned = &self.scanned;
        self.recent.retain(|k| scanned.binary_search(k).is_err());
    }

    /// Keys in the index strictly after `after` and strictly before `before`.
    fn between(&self, after: QueueKey, before: QueueKey) -> u64 {
        let count = |keys: &[QueueKey]| {
            let from = keys.partition_point(|k| *k <= after);
            let to = keys.partition_point(|k| *k < before);
            to.saturating_sub(from) as u64
        };
        count(&self.scanned) + count(&self.recent)
    }
}

/// Every zone's index on this node.
#[derive(Default)]
pub(super) struct Positions {
    zones: Mutex<HashMap<String, Arc<Mutex<Index>>>>,
    /// One rebuild at a time: page views that find the index old wait for the same scan.
    rebuilding: tokio::sync::Mutex<()>,
}

impl Positions {
    fn zone(&self, zone: &str) -> Option<Arc<Mutex<Index>>> {
        let zones = self.zones.lock().unwrap_or_else(|p| p.into_inner());
        zones.get(zone).cloned()
    }

    /// Records a join of this node, so its own newcomers count at once.
    pub(super) fn joined(&self, zone: &str, key: QueueKey) {
        if let Some(index) = self.zone(zone) {
            index.lock().unwrap_or_else(|p| p.into_inner()).add(key);
        }
    }

    /// Drops what a committed tick of this node removed from the queue: the keys after `from`
    /// up to `cursor`, and `admitted` ones.
    pub(super) fn forgot(
        &self,
        zone: &str,
        from: QueueKey,
        cursor: QueueKey,
        admitted: &[QueueKey],
    ) {
        if let Some(index) = self.zone(zone) {
            let mut index = index.lock().unwrap_or_else(|p| p.into_inner());
            let gone = |k: &QueueKey| (*k > from && *k <= cursor) || admitted.contains(k);
            index.scanned.retain(|k| !gone(k));
            index.recent.retain(|k| !gone(k));
        }
    }
}

impl CqlStore {
    /// How many queued keys stand strictly between `after` and `before`, from an index at most
    /// [`INDEX_AGE`] old that covers `after`.
    pub(super) async fn count_between(
        &self,
        zone: &str,
        after: QueueKey,
        before: QueueKey,
    ) -> Result<u64, StoreError> {
        let index = self.fresh_index(zone, after).await?;
        let index = index.lock().unwrap_or_else(|p| p.into_inner());
        Ok(index.between(after, before))
    }

    /// Records this node's join in the index.
    pub(super) fn note_join(&self, zone: &str, key: QueueKey) {
        self.positions.joined(zone, key);
    }

    async fn fresh_index(
        &self,
        zone: &str,
        cursor: QueueKey,
    ) -> Result<Arc<Mutex<Index>>, StoreError> {
        let usable = |index: &Arc<Mutex<Index>>, now: u64| {
            let i = index.lock().unwrap_or_else(|p| p.into_inner());
            i.cursor <= cursor && now.saturating_sub(i.built_ms) < INDEX_AGE.as_millis() as u64
        };
        if let Some(index) = self.positions.zone(zone) {
            if usable(&index, self.clock.now_ms()) {
                return Ok(index);
            }
        }
        let _turn = self.positions.rebuilding.lock().await;
        let now = self.clock.now_ms();
        if let Some(index) = self.positions.zone(zone) {
            if usable(&index, now) {
                return Ok(index);
            }
        }
        // A tail read while the index is recent enough and covers the cursor; else the whole.
        if let Some(old) = self.positions.zone(zone) {
            let tail_from = {
                let i = old.lock().unwrap_or_else(|p| p.into_inner());
                let full_age = now.saturating_sub(i.full_ms);
                let newest = i.scanned.last().max(i.recent.last()).map_or(0, |k| k.rank);
                (i.cursor <= cursor && full_age < FULL_SCAN_EVERY.as_millis() as u64).then(|| {
                    QueueKey {
                        rank: newest.saturating_sub(TAIL_OVERLAP_MS),
                        visitor: VisitorId::default(),
                    }
                    .max(i.cursor)
                })
            };
            if let Some(from) = tail_from {
                let tail = self.scan_after(zone, from).await?;
                let mut i = old.lock().unwrap_or_else(|p| p.into_inner());
                i.merge_tail(tail);
                i.built_ms = now;
                drop(i);
                return Ok(old);
            }
        }
        let scanned = self.scan_after(zone, cursor).await?;
        let mut index = Index {
            built_ms: now,
            full_ms: now,
            cursor,
            scanned,
            recent: Vec::new(),
        };
        // Joins of this node that landed after the scan read their shard stay counted.
        if let Some(old) = self.positions.zone(zone) {
            let old = old.lock().unwrap_or_else(|p| p.into_inner());
            for key in old
                .recent
                .iter()
                .filter(|k| k.rank >= now.saturating_sub(1_000))
            {
                index.add(*key);
            }
        }
        let index = Arc::new(Mutex::new(index));
        let mut zones = self
            .positions
            .zones
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        zones.insert(zone.to_string(), index.clone());
        Ok(index)
    }

    /// Every queued key after `cursor`, all shards read in parallel (paged), merged in order.
    async fn scan_after(&self, zone: &str, cursor: QueueKey) -> Result<Vec<QueueKey>, StoreError> {
        let (rank, visitor) = key_values(cursor);
        let (rank, visitor) = (&rank, &visitor);
        let per_shard = self
            .on_every_shard(|shard| async move {
                let mut rows = self
                    .session
                    .execute_iter(
                        self.statements.scan_all.clone(),
                        (zone, shard, *rank, visitor.clone()),
                    )
                    .await
                    .map_err(unavailable)?
                    .rows_stream::<(i64, String)>()
                    .map_err(unavailable)?;
                let mut keys = Vec::new();
                while let Some(row) = rows.next().await {
                    let (r, v) = row.map_err(unavailable)?;
                    if let Some(visitor) = VisitorId::parse(&v) {
                        keys.push(QueueKey {
                            rank: r as u64,
                            visitor,
                        });
                    }
                }
                Ok(keys)
            })
            .await?;
        let mut merged: Vec<QueueKey> = per_shard.into_iter().flatten().collect();
        merged.sort_unstable();
        Ok(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(rank: u64, visitor: u128) -> QueueKey {
        QueueKey {
            rank,
            visitor: VisitorId(visitor),
        }
    }

    #[test]
    fn positions_count_scanned_and_own_joins_once() {
        let mut index = Index {
            cursor: key(10, 0),
            scanned: vec![key(11, 1), key(12, 2), key(20, 3)],
            ..Index::default()
        };
        index.add(key(21, 4));
        index.add(key(12, 2));
        index.add(key(5, 9));
        assert_eq!(
            index.recent,
            vec![key(21, 4)],
            "own join kept once; admitted ignored"
        );
        assert_eq!(index.between(key(10, 0), key(21, 4)), 3);
        assert_eq!(
            index.between(key(11, 1), key(99, 0)),
            3,
            "a later cursor counts from it"
        );
        // A tail read brings other nodes' joins and this node's own; nothing is counted twice.
        index.merge_tail(vec![key(20, 3), key(21, 4), key(22, 5)]);
        assert_eq!(
            index.scanned,
            vec![key(11, 1), key(12, 2), key(20, 3), key(21, 4), key(22, 5)]
        );
        assert!(index.recent.is_empty());
        assert_eq!(index.between(key(10, 0), key(30, 0)), 5);
    }
}
