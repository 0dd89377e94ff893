//! The embedded store: zones in memory behind one mutex each, made durable by a write-ahead log
//! that is folded into a snapshot now and then. Every change is appended to the log before the
//! call returns, so `kill -9` loses nothing that was acknowledged (the log is written to the OS,
//! not fsynced: a process crash keeps it, a power cut may not). The change feed is an in-process
//! broadcast.

mod wal;

#[cfg(test)]
mod tests;

use super::{Change, ChangeFeed, Store, StoreError, ZoneRecord};
use crate::admission::QueueKey;
use async_trait::async_trait;
use dashmap::DashMap;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;
use wal::{Wal, WalRecord};

/// One zone's data: the versioned record and the queue.
#[derive(Debug, Default)]
struct ZoneData {
    record: Option<ZoneRecord>,
    queue: Queue,
}

/// The queue: keys in order (so a position is two binary searches, not a count) and when each
/// was last seen. New arrivals have the highest ranks, so inserts are appends.
#[derive(Debug, Default)]
struct Queue {
    keys: Vec<QueueKey>,
    seen: HashMap<QueueKey, u64>,
}

impl Queue {
    /// Adds `key` or refreshes its last-seen time; true if it was new.
    fn touch(&mut self, key: QueueKey, now_ms: u64) -> bool {
        if let Some(seen) = self.seen.get_mut(&key) {
            *seen = (*seen).max(now_ms);
            return false;
        }
        let at = self.keys.partition_point(|k| *k < key);
        self.keys.insert(at, key);
        self.seen.insert(key, now_ms);
        true
    }

    /// Index of the first key strictly after `key`.
    fn after(&self, key: QueueKey) -> usize {
        self.keys.partition_point(|k| *k <= key)
    }

    /// Drops every key at or below `cursor`.
    fn forget_through(&mut self, cursor: QueueKey) {
        let end = self.after(cursor);
        for key in self.keys.drain(..end) {
            self.seen.remove(&key);
        }
    }

    fn len(&self) -> usize {
        self.keys.len()
    }
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
            WalRecord::Set { zone, record } => lock(&self.zone(&zone)).record = Some(*record),
            WalRecord::Join { zone, key } => {
                lock(&self.zone(&zone)).queue.touch(key, now_ms);
            }
            WalRecord::Forget { zone, cursor } => {
                lock(&self.zone(&zone)).queue.forget_through(cursor)
            }
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
                    record: Box::new(record.clone()),
                });
            }
            for key in &data.queue.keys {
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
            record: Box::new(record.clone()),
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
        if data.queue.seen.contains_key(&key) {
            data.queue.touch(key, now_ms);
            return Ok(());
        }
        // Logged before it is applied, so an acknowledged join survives a crash.
        self.log(&WalRecord::Join {
            zone: zone.to_string(),
            key,
        })?;
        data.queue.touch(key, now_ms);
        Ok(())
    }

    async fn live_after(
        &self,
        zone: &str,
        after: QueueKey,
        seen_since_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueueKey>, StoreError> {
        let handle = self.zone(zone);
        let data = lock(&handle);
        let queue = &data.queue;
        Ok(queue.keys[queue.after(after)..]
            .iter()
            .filter(|key| {
                queue
                    .seen
                    .get(key)
                    .is_some_and(|seen| *seen >= seen_since_ms)
            })
            .take(limit)
            .copied()
            .collect())
    }

    async fn ahead(&self, zone: &str, cursor: QueueKey, key: QueueKey) -> Result<u64, StoreError> {
        if key <= cursor {
            return Ok(0);
        }
        let handle = self.zone(zone);
        let data = lock(&handle);
        let first = data.queue.after(cursor);
        let mine = data.queue.keys.partition_point(|k| *k < key);
        Ok(mine.saturating_sub(first) as u64)
    }

    async fn waiting(&self, zone: &str, cursor: QueueKey) -> Result<u64, StoreError> {
        let handle = self.zone(zone);
        let data = lock(&handle);
        Ok((data.queue.len() - data.queue.after(cursor)) as u64)
    }

    async fn forget_through(&self, zone: &str, cursor: QueueKey) -> Result<(), StoreError> {
        let handle = self.zone(zone);
        let mut data = lock(&handle);
        if data.queue.keys.first().is_some_and(|k| *k <= cursor) {
            self.log(&WalRecord::Forget {
                zone: zone.to_string(),
                cursor,
            })?;
            data.queue.forget_through(cursor);
        }
        Ok(())
    }
}

impl ChangeFeed for EmbeddedStore {
    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }
}
