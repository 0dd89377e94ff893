//! The embedded store: zones in memory behind one mutex each, made durable by a write-ahead log
//! that is folded into a snapshot now and then. Every change is appended to the log before the
//! call returns, so `kill -9` loses nothing that was acknowledged (the log is written to the OS,
//! not fsynced: a process crash keeps it, a power cut may not). The change feed is an in-process
//! broadcast.

mod wal;

#[cfg(test)]
mod tests;

use super::{Change, ChangeFeed, Store, StoreError, ZoneRecord};
use crate::admission::{QueueKey, VisitorId};
use async_trait::async_trait;
use dashmap::DashMap;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;
use wal::{Wal, WalRecord};

/// One zone's data: the versioned record and the queue (key -> last seen, ms).
#[derive(Debug, Default)]
struct ZoneData {
    record: Option<ZoneRecord>,
    queue: BTreeMap<QueueKey, u64>,
}

/// Single-node state on local disk.
pub struct EmbeddedStore {
    zones: DashMap<Arc<str>, Arc<Mutex<ZoneData>>>,
    wal: Mutex<Wal>,
    feed: broadcast::Sender<Change>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves data that is still consistent (every change is
    // applied before it is logged), so recover instead of poisoning the whole store.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`: loads the snapshot, replays the log, and compacts.
    /// Restored queue entries count as seen at `now_ms`.
    pub fn open(dir: &Path, now_ms: u64) -> Result<Self, StoreError> {
        let (wal, restored) = Wal::open(dir)?;
        let store = EmbeddedStore {
            zones: DashMap::new(),
            wal: Mutex::new(wal),
            feed: broadcast::channel(4_096).0,
        };
        for record in restored {
            store.replay(record, now_ms);
        }
        store.snapshot()?;
        Ok(store)
    }

    fn zone(&self, zone: &str) -> Arc<Mutex<ZoneData>> {
        if let Some(data) = self.zones.get(zone) {
            return data.clone();
        }
        self.zones.entry(Arc::from(zone)).or_default().clone()
    }

    fn replay(&self, record: WalRecord, now_ms: u64) {
        match record {
            WalRecord::Set { zone, record } => lock(&self.zone(&zone)).record = Some(record),
            WalRecord::Join { zone, key } => {
                lock(&self.zone(&zone)).queue.insert(key, now_ms);
            }
            WalRecord::Forget { zone, cursor } => forget(&mut lock(&self.zone(&zone)), cursor),
        }
    }

    fn log(&self, record: &WalRecord) -> Result<(), StoreError> {
        lock(&self.wal).append(record)
    }

    /// Writes every zone to a fresh snapshot and empties the log. Called at open, periodically,
    /// and at shutdown.
    pub fn snapshot(&self) -> Result<(), StoreError> {
        let mut names: Vec<Arc<str>> = self.zones.iter().map(|e| e.key().clone()).collect();
        names.sort();
        let handles: Vec<_> = names.iter().map(|n| self.zone(n)).collect();
        // Zone locks before the log lock, in name order: the same order writers use.
        let guards: Vec<_> = handles.iter().map(|h| lock(h)).collect();
        let mut records = Vec::new();
        for (name, data) in names.iter().zip(&guards) {
            if let Some(record) = &data.record {
                records.push(WalRecord::Set {
                    zone: name.to_string(),
                    record: record.clone(),
                });
            }
            for key in data.queue.keys() {
                records.push(WalRecord::Join {
                    zone: name.to_string(),
                    key: *key,
                });
            }
        }
        lock(&self.wal).rewrite(&records)
    }

    /// Number of queue entries kept for `zone` (admitted ones are forgotten at each tick).
    pub fn queue_len(&self, zone: &str) -> usize {
        lock(&self.zone(zone)).queue.len()
    }
}

fn forget(data: &mut ZoneData, cursor: QueueKey) {
    // The smallest key above the cursor: keep everything from there on.
    let keep_from = match cursor.visitor.0.checked_add(1) {
        Some(next) => QueueKey {
            rank: cursor.rank,
            visitor: VisitorId(next),
        },
        None => QueueKey {
            rank: cursor.rank.saturating_add(1),
            visitor: VisitorId(0),
        },
    };
    data.queue = data.queue.split_off(&keep_from);
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn load(&self, zone: &str) -> Result<Option<ZoneRecord>, StoreError> {
        Ok(lock(&self.zone(zone)).record.clone())
    }

    async fn compare_and_set(
        &self,
        zone: &str,
        expected: Option<u64>,
        record: &ZoneRecord,
    ) -> Result<bool, StoreError> {
        let handle = self.zone(zone);
        let mut data = lock(&handle);
        if data.record.as_ref().map(|r| r.state.version) != expected {
            return Ok(false);
        }
        self.log(&WalRecord::Set {
            zone: zone.to_string(),
            record: record.clone(),
        })?;
        data.record = Some(record.clone());
        drop(data);
        // Nobody listening is fine: the feed only wakes caches.
        let _ = self.feed.send(Change::Zone {
            zone: Arc::from(zone),
            record: Arc::new(record.clone()),
        });
        Ok(true)
    }

    async fn touch(&self, zone: &str, key: QueueKey, now_ms: u64) -> Result<(), StoreError> {
        let handle = self.zone(zone);
        let mut data = lock(&handle);
        if let Some(seen) = data.queue.get_mut(&key) {
            *seen = (*seen).max(now_ms);
            return Ok(());
        }
        self.log(&WalRecord::Join {
            zone: zone.to_string(),
            key,
        })?;
        data.queue.insert(key, now_ms);
        Ok(())
    }

    async fn live_after(
        &self,
        zone: &str,
        after: QueueKey,
        seen_since_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueueKey>, StoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let handle = self.zone(zone);
        let data = lock(&handle);
        Ok(data
            .queue
            .range((Excluded(after), Unbounded))
            .filter(|(_, seen)| **seen >= seen_since_ms)
            .take(limit)
            .map(|(key, _)| *key)
            .collect())
    }

    async fn ahead(&self, zone: &str, cursor: QueueKey, key: QueueKey) -> Result<u64, StoreError> {
        use std::ops::Bound::Excluded;
        if key <= cursor {
            return Ok(0);
        }
        let handle = self.zone(zone);
        let data = lock(&handle);
        Ok(data.queue.range((Excluded(cursor), Excluded(key))).count() as u64)
    }

    async fn waiting(&self, zone: &str, cursor: QueueKey) -> Result<u64, StoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let handle = self.zone(zone);
        let data = lock(&handle);
        Ok(data.queue.range((Excluded(cursor), Unbounded)).count() as u64)
    }

    async fn forget_through(&self, zone: &str, cursor: QueueKey) -> Result<(), StoreError> {
        let handle = self.zone(zone);
        let mut data = lock(&handle);
        if data.queue.first_key_value().is_some_and(|(k, _)| *k <= cursor) {
            self.log(&WalRecord::Forget {
                zone: zone.to_string(),
                cursor,
            })?;
            forget(&mut data, cursor);
        }
        Ok(())
    }
}

impl ChangeFeed for EmbeddedStore {
    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }
}
