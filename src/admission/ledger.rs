//! The slot ledger, which is the leaky bucket: slots counted by the second at which they expire.
//! Admitting k visitors adds k at `now + claim_window`; a claim moves one slot to the session's
//! expiry; renewal moves it again; release removes it. Active sessions are the sum of the buckets
//! after now, so the cost is O(buckets), never O(sessions). The ledger also remembers which bucket
//! each claimed visitor's slot sits in, so claims, renewals and releases are idempotent.

use super::VisitorId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The expiry bucket (a second, rounded up) of an instant in ms.
pub fn bucket_of(ms: u64) -> u64 {
    ms.div_ceil(1_000)
}

/// Slots by expiry second, plus the bucket of every claimed session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    buckets: BTreeMap<u64, i64>,
    sessions: HashMap<VisitorId, u64>,
    /// Released sessions, refused until their token would have expired anyway.
    #[serde(default)]
    revoked: HashMap<VisitorId, u64>,
}

impl Ledger {
    /// Adds `delta` slots that expire at second `bucket`.
    pub fn add(&mut self, bucket: u64, delta: i64) {
        let count = self.buckets.entry(bucket).or_insert(0);
        *count += delta;
        if *count == 0 {
            self.buckets.remove(&bucket);
        }
    }

    /// Slots still occupied at `now_ms`.
    pub fn active(&self, now_ms: u64) -> u64 {
        let first_live = now_ms / 1_000 + 1;
        let sum: i64 = self.buckets.range(first_live..).map(|(_, n)| *n).sum();
        sum.max(0) as u64
    }

    /// Forgets buckets that have expired by `now_ms` and the sessions in them.
    pub fn prune(&mut self, now_ms: u64) {
        let first_live = now_ms / 1_000 + 1;
        self.buckets = self.buckets.split_off(&first_live);
        self.sessions.retain(|_, bucket| *bucket >= first_live);
        self.revoked.retain(|_, bucket| *bucket >= first_live);
    }

    /// The bucket of `visitor`'s session, if it holds one that is still live at `now_ms`.
    pub fn session(&self, visitor: VisitorId, now_ms: u64) -> Option<u64> {
        self.sessions
            .get(&visitor)
            .copied()
            .filter(|bucket| *bucket > now_ms / 1_000)
    }

    /// Records a session slot for `visitor` expiring at second `bucket`.
    pub fn open_session(&mut self, visitor: VisitorId, bucket: u64) {
        self.revoked.remove(&visitor);
        self.add(bucket, 1);
        if let Some(old) = self.sessions.insert(visitor, bucket) {
            self.add(old, -1);
        }
    }

    /// Moves `visitor`'s slot from bucket `from` to `to`; false if the session is not in `from`
    /// (already renewed by a parallel request, released, or expired).
    pub fn renew_session(&mut self, visitor: VisitorId, from: u64, to: u64) -> bool {
        match self.sessions.get_mut(&visitor) {
            Some(bucket) if *bucket == from => {
                *bucket = to;
                self.add(from, -1);
                self.add(to, 1);
                true
            }
            _ => false,
        }
    }

    /// Frees `visitor`'s slot and revokes their token until it would have expired; false if
    /// there was no slot.
    pub fn close_session(&mut self, visitor: VisitorId) -> bool {
        match self.sessions.remove(&visitor) {
            Some(bucket) => {
                self.add(bucket, -1);
                self.revoked.insert(visitor, bucket);
                true
            }
            None => false,
        }
    }

    /// Whether `visitor`'s session was released and their access token must be refused.
    pub fn is_revoked(&self, visitor: VisitorId, now_ms: u64) -> bool {
        self.revoked
            .get(&visitor)
            .is_some_and(|bucket| *bucket > now_ms / 1_000)
    }

    /// Number of sessions the ledger tracks (live or not yet pruned).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }
}
