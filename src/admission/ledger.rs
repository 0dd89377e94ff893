//! The slot ledger, which is the leaky bucket: slots counted by the second at which they expire.
//! Admitting k visitors adds k at `now + claim_window`; a claim moves one slot to the session's
//! expiry; renewal moves it again; release removes it. Active sessions are the sum of the buckets
//! after now, so the cost is O(buckets), never O(sessions). Counts are deltas, so ledgers written
//! by different nodes add up: a fleet's active sessions are the sum over its nodes' ledgers.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The expiry bucket (a second, rounded up) of an instant in ms.
pub fn bucket_of(ms: u64) -> u64 {
    ms.div_ceil(1_000)
}

/// Slots by expiry second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    buckets: BTreeMap<u64, i64>,
}

impl Ledger {
    /// Adds `delta` slots that expire at second `bucket`; returns the bucket's new count.
    pub fn add(&mut self, bucket: u64, delta: i64) -> i64 {
        let count = self.buckets.entry(bucket).or_insert(0);
        *count += delta;
        let now = *count;
        if now == 0 {
            self.buckets.remove(&bucket);
        }
        now
    }

    /// The count of one bucket.
    pub fn count(&self, bucket: u64) -> i64 {
        self.buckets.get(&bucket).copied().unwrap_or(0)
    }

    /// Slots still occupied at `now_ms`.
    pub fn active(&self, now_ms: u64) -> u64 {
        let first_live = now_ms / 1_000 + 1;
        let sum: i64 = self.buckets.range(first_live..).map(|(_, n)| *n).sum();
        sum.max(0) as u64
    }

    /// Forgets buckets that have expired by `now_ms`.
    pub fn prune(&mut self, now_ms: u64) {
        let first_live = now_ms / 1_000 + 1;
        self.buckets = self.buckets.split_off(&first_live);
    }

    /// The non-empty buckets, oldest first.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, i64)> + '_ {
        self.buckets.iter().map(|(b, n)| (*b, *n))
    }
}
