//! The embedded store: zones (state, queue, slots and ledger) in memory behind one mutex each,
//! made durable by a write-ahead log that is folded into a snapshot now and then. Every change is appended to the log before the
//! call returns, so `kill -9` loses nothing that was acknowledged (the log is written to the OS,
//! not fsynced: a process crash keeps it, a power cut may not). The change feed is an in-process
//! broadcast.

mod wal;

#[cfg(test)]
mod tests;

use super::{Change, ChangeFeed, Store, StoreError};
use crate::admission::slot::{self, Transition};
use crate::admission::{Claim, Grant, QueueKey, Slot, SlotStatus, Slots, VisitorId, ZoneState};
use async_trait::async_trait;
use dashmap::DashMap;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;
use wal::{Wal, WalRecord};

/// One zone's data: the versioned state, the queue, and the slots with their ledger.
#[derive(Debug, Default)]
struct ZoneData {
    state: Option<ZoneState>,
    queue: Queue,
    slots: Slots,
}

impl ZoneData {
    /// Applies a committed tick (live, or replayed from the log).
    fn apply_tick(&mut self, state: ZoneState, grant: &Grant, reserved: &[VisitorId]) {
        let (bucket, at_ms) = (grant.claim_bucket, grant.admitted_at_ms);
        for visitor in reserved {
            let reservation = Slot {
                status: SlotStatus::Reserved,
                bucket,
                admitted_at_ms: at_ms,
            };
            self.slots.by_visitor.insert(*visitor, reservation);
            self.slots.ledger.add(bucket, 1);
        }
        self.queue.forget(grant.from, state.cursor, &grant.admitted);
        self.state = Some(state);
    }
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

    /// Live keys at or below `cursor`, up to `limit`.
    fn live_through(&self, cursor: QueueKey, seen_since_ms: u64, limit: usize) -> Vec<QueueKey> {
        self.live(&self.keys[..self.after(cursor)], seen_since_ms, limit)
    }

    /// Live keys after `key`, up to `limit`.
    fn live_after(&self, key: QueueKey, seen_since_ms: u64, limit: usize) -> Vec<QueueKey> {
        self.live(&self.keys[self.after(key)..], seen_since_ms, limit)
    }

    fn live(&self, keys: &[QueueKey], seen_since_ms: u64, limit: usize) -> Vec<QueueKey> {
        keys.iter()
            .filter(|key| {
                self.seen
                    .get(key)
                    .is_some_and(|seen| *seen >= seen_since_ms)
            })
            .take(limit)
            .copied()
            .collect()
    }

    /// Drops the keys after `from` up to `cursor`, and `admitted` ones at or below `from`.
    fn forget(&mut self, from: QueueKey, cursor: QueueKey, admitted: &[QueueKey]) {
        let (start, end) = (self.after(from), self.after(cursor));
        for key in self.keys.drain(start..end.max(start)) {
            self.seen.remove(&key);
        }
        for key in admitted.iter().filter(|k| **k <= from) {
            if self.seen.remove(key).is_some() {
                let at = self.keys.partition_point(|k| k < key);
                self.keys.remove(at);
            }
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
            WalRecord::Tick {
                zone,
                state,
                grant,
                reserved,
            } => lock(&self.zone(&zone)).apply_tick(*state, &grant, &reserved),
            WalRecord::Join { zone, key } => {
                lock(&self.zone(&zone)).queue.touch(key, now_ms);
            }
            WalRecord::Slot {
                zone,
                visitor,
                slot,
                moves,
            } => {
                let transition = Transition {
                    outcome: (),
                    next: Some(slot),
                    moves,
                };
                lock(&self.zone(&zone)).slots.apply(visitor, transition);
            }
            WalRecord::Slots { zone, slots } => lock(&self.zone(&zone)).slots = *slots,
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
            // The state as a tick that admitted nobody and leaves the queue alone.
            if let Some(state) = &data.state {
                let grant = Grant {
                    from: state.cursor,
                    ..Grant::default()
                };
                records.push(WalRecord::Tick {
                    zone: name.to_string(),
                    state: Box::new(state.clone()),
                    grant: Box::new(grant),
                    reserved: Vec::new(),
                });
            }
            for key in &data.queue.keys {
                records.push(WalRecord::Join {
                    zone: name.to_string(),
                    key: *key,
                });
            }
            records.push(WalRecord::Slots {
                zone: name.to_string(),
                slots: Box::new(data.slots.clone()),
            });
        }
        lock(&self.wal).rewrite(&records)
    }

    /// Number of queue entries kept for `zone` (admitted ones are forgotten at each tick).
    pub fn queue_len(&self, zone: &str) -> usize {
        lock(&self.zone(zone)).queue.len()
    }
}

impl EmbeddedStore {
    /// Computes a transition of `visitor`'s slot under the zone's lock, logs it if it changes
    /// anything, applies it, and returns its outcome.
    fn change_slot<T>(
        &self,
        zone: &str,
        visitor: VisitorId,
        transition: impl FnOnce(Option<&Slot>) -> Transition<T>,
    ) -> Result<T, StoreError> {
        let handle = self.zone(zone);
        let mut data = lock(&handle);
        let t = transition(data.slots.get(visitor));
        if let Some(slot) = t.next {
            self.log(&WalRecord::Slot {
                zone: zone.to_string(),
                visitor,
                slot,
                moves: t.moves.clone(),
            })?;
        }
        Ok(data.slots.apply(visitor, t))
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn load(&self, zone: &str) -> Result<Option<ZoneState>, StoreError> {
        Ok(lock(&self.zone(zone)).state.clone())
    }

    async fn commit_tick(
        &self,
        zone: &str,
        expected: Option<u64>,
        state: &ZoneState,
        grant: &Grant,
    ) -> Result<Option<u32>, StoreError> {
        let handle = self.zone(zone);
        let mut data = lock(&handle);
        if data.state.as_ref().map(|s| s.version) != expected {
            return Ok(None);
        }
        let now = state.last_tick_ms;
        data.slots.prune(now);
        let reserved: Vec<VisitorId> = grant
            .admitted
            .iter()
            .map(|k| k.visitor)
            .filter(|v| slot::reserve(data.slots.get(*v), grant.claim_bucket, now, now).outcome)
            .collect();
        self.log(&WalRecord::Tick {
            zone: zone.to_string(),
            state: Box::new(state.clone()),
            grant: Box::new(grant.clone()),
            reserved: reserved.clone(),
        })?;
        data.apply_tick(state.clone(), grant, &reserved);
        drop(data);
        // Nobody listening is fine: the feed only wakes caches.
        let _ = self.feed.send(Change::Zone {
            zone: Arc::from(zone),
            state: Arc::new(state.clone()),
        });
        Ok(Some(reserved.len() as u32))
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
        Ok(lock(&self.zone(zone))
            .queue
            .live_after(after, seen_since_ms, limit))
    }

    async fn returned(
        &self,
        zone: &str,
        cursor: QueueKey,
        seen_since_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueueKey>, StoreError> {
        let handle = self.zone(zone);
        let data = lock(&handle);
        let now = data.state.as_ref().map_or(0, |s| s.last_tick_ms);
        let holds_slot = |k: &QueueKey| data.slots.get(k.visitor).is_some_and(|s| s.is_live(now));
        let mut returned = data.queue.live_through(cursor, seen_since_ms, usize::MAX);
        returned.retain(|k| !holds_slot(k));
        returned.truncate(limit);
        Ok(returned)
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

    async fn claim(
        &self,
        zone: &str,
        visitor: VisitorId,
        to: u64,
        now_ms: u64,
    ) -> Result<Claim, StoreError> {
        self.change_slot(zone, visitor, |current| slot::claim(current, to, now_ms))
    }

    async fn renew(
        &self,
        zone: &str,
        visitor: VisitorId,
        from: u64,
        to: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        self.change_slot(zone, visitor, |current| {
            slot::renew(current, from, to, now_ms)
        })
    }

    async fn release(
        &self,
        zone: &str,
        visitor: VisitorId,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        let until = self.change_slot(zone, visitor, |current| slot::release(current, now_ms))?;
        if let Some(until_s) = until {
            let _ = self.feed.send(Change::Revoked {
                zone: Arc::from(zone),
                visitor,
                until_s,
            });
        }
        Ok(until)
    }

    async fn active(&self, zone: &str, now_ms: u64) -> Result<u64, StoreError> {
        Ok(lock(&self.zone(zone)).slots.ledger.active(now_ms))
    }

    async fn revocations(
        &self,
        zone: &str,
        now_ms: u64,
    ) -> Result<Vec<(VisitorId, u64)>, StoreError> {
        let handle = self.zone(zone);
        let data = lock(&handle);
        Ok(data
            .slots
            .by_visitor
            .iter()
            .filter(|(_, s)| s.status == SlotStatus::Revoked && s.is_live(now_ms))
            .map(|(v, s)| (*v, s.bucket))
            .collect())
    }
}

impl ChangeFeed for EmbeddedStore {
    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }
}

// INTERIM (replaced by the data_dir lock on branch store-truth).
impl EmbeddedStore {
    /// Opens the store once no other process holds it.
    pub fn open_waiting(
        dir: &Path,
        now_ms: u64,
        wait: std::time::Duration,
    ) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + wait;
        std::thread::sleep(std::time::Duration::from_millis(50));
        loop {
            match Self::open(dir, now_ms) {
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                other => return other,
            }
        }
    }

    /// Writes the final snapshot for a successor.
    pub fn close(&self) -> Result<(), StoreError> {
        self.snapshot()
    }
}
