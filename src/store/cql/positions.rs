//! Positions in line without counting the queue on every page view: each node keeps an index of
//! the queue after the cursor (DESIGN §5's edge-cache "queue index for positions").
//!
//! The index is one sorted scan of every shard, at most [`INDEX_AGE`] old, plus this node's own
//! joins since that scan. A position is then two binary searches. What the index misses is other
//! nodes' joins since the scan, which can only stand before a newcomer of this node if they
//! joined in the same moment: a position can be short by those for up to [`INDEX_AGE`]. The cost
//! is one scan of the queue per zone per [`INDEX_AGE`] per node, instead of a `COUNT` over the
//! queue ahead of every waiting visitor at every refresh (measured: 496 joins with a position
//! per second against 35 000 joins without; see benches/README.md).

use super::{key_values, unavailable, CqlStore};
use crate::admission::{QueueKey, VisitorId};
use crate::store::StoreError;
use futures::future::join_all;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How old an index may be before the next position asked for rebuilds it.
pub(super) const INDEX_AGE: Duration = Duration::from_secs(1);

/// One zone's queue after a cursor, as of a scan, plus this node's joins since.
#[derive(Debug, Default)]
struct Index {
    built_ms: u64,
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
        let scanned = self.scan_after(zone, cursor).await?;
        let mut index = Index {
            built_ms: now,
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
        let per_shard = join_all(self.shards().map(|shard| async move {
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
            Ok::<_, StoreError>(keys)
        }))
        .await;
        let mut merged = Vec::new();
        for shard in per_shard {
            merged.extend(shard?);
        }
        merged.sort_unstable();
        Ok(merged)
    }
}
