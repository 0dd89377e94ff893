//! A zone's queue in memory: keys in order (so a position is two binary searches, not a count)
//! and when each was last seen. New arrivals have the highest ranks, so inserts are appends;
//! each tick drops the front, so the keys are a `VecDeque` (dropping 100 of a million keys off
//! a `Vec`'s front moves the other 32 MB).

use crate::admission::QueueKey;
use std::collections::{HashMap, VecDeque};

#[derive(Debug, Default)]
pub(super) struct Queue {
    pub(super) keys: VecDeque<QueueKey>,
    pub(super) seen: HashMap<QueueKey, u64>,
}

impl Queue {
    /// Adds `key` or refreshes its last-seen time; true if it was new.
    pub(super) fn touch(&mut self, key: QueueKey, now_ms: u64) -> bool {
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
    pub(super) fn after(&self, key: QueueKey) -> usize {
        self.keys.partition_point(|k| *k <= key)
    }

    /// Index of the first key at or after `key`.
    pub(super) fn before(&self, key: QueueKey) -> usize {
        self.keys.partition_point(|k| *k < key)
    }

    /// Live keys at or below `cursor`, up to `limit`.
    pub(super) fn live_through(
        &self,
        cursor: QueueKey,
        seen_since_ms: u64,
        limit: usize,
    ) -> Vec<QueueKey> {
        self.live(self.keys.range(..self.after(cursor)), seen_since_ms, limit)
    }

    /// Live keys after `key`, up to `limit`.
    pub(super) fn live_after(
        &self,
        key: QueueKey,
        seen_since_ms: u64,
        limit: usize,
    ) -> Vec<QueueKey> {
        self.live(self.keys.range(self.after(key)..), seen_since_ms, limit)
    }

    fn live<'a>(
        &self,
        keys: impl Iterator<Item = &'a QueueKey>,
        seen_since_ms: u64,
        limit: usize,
    ) -> Vec<QueueKey> {
        keys.filter(|key| {
            self.seen
                .get(key)
                .is_some_and(|seen| *seen >= seen_since_ms)
        })
        .take(limit)
        .copied()
        .collect()
    }

    /// Drops the keys after `from` up to `cursor`, and `admitted` ones at or below `from`.
    pub(super) fn forget(&mut self, from: QueueKey, cursor: QueueKey, admitted: &[QueueKey]) {
        let (start, end) = (self.after(from), self.after(cursor));
        for key in self.keys.drain(start..end.max(start)) {
            self.seen.remove(&key);
        }
        for key in admitted.iter().filter(|k| **k <= from) {
            if self.seen.remove(key).is_some() {
                let at = self.before(*key);
                self.keys.remove(at);
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }
}
