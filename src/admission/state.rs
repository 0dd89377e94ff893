//! A zone's admission state and the three ways a slot is taken: the exchanger's tick (advance the
//! cursor over the next live visitors), a claim (an admitted visitor swaps their visitor token),
//! and a direct admission (a quiet zone lets a newcomer straight in).

use super::{bucket_of, Ledger, Limits, QueueKey, RateBucket, VisitorId};
use serde::{Deserialize, Serialize};

/// One tick's admissions: the visitors up to `upto` hold `unclaimed` reserved slots until
/// `claim_bucket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Highest queue key admitted by this tick.
    pub upto: QueueKey,
    /// Second at which unclaimed reservations lapse.
    pub claim_bucket: u64,
    /// When the tick admitted them.
    pub admitted_at_ms: u64,
    /// Reservations not yet claimed.
    pub unclaimed: u32,
}

/// The zone row: cursor, counters, rate bucket and recent grants. Versioned for compare-and-set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneState {
    /// Every queued visitor with a key at or below the cursor is admitted.
    pub cursor: QueueKey,
    /// Admissions since the zone was created.
    pub admitted_total: u64,
    /// Bumped by every change; the compare-and-set key.
    pub version: u64,
    /// Time of the last exchanger tick.
    pub last_tick_ms: u64,
    /// Rate allowance.
    pub rate: RateBucket,
    /// Smoothed admissions per second, for the ETA.
    pub observed_per_sec: f64,
    /// Grants whose reservations may still be claimed, oldest first.
    pub grants: Vec<Grant>,
}

/// What a claim by an admitted visitor gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// A session slot, expiring at second `bucket`; `admitted_at_ms` is when their turn came.
    Granted {
        /// Expiry bucket of the session.
        bucket: u64,
        /// When the exchanger admitted them (or now, for a direct admission).
        admitted_at_ms: u64,
    },
    /// Their reservation lapsed and the zone is full: they are first in line for the next slot.
    Wait,
}

impl ZoneState {
    /// A new zone at `now_ms` with a full rate bucket.
    pub fn new(limits: &Limits, now_ms: u64) -> Self {
        ZoneState {
            cursor: QueueKey::default(),
            admitted_total: 0,
            version: 0,
            last_tick_ms: now_ms,
            rate: RateBucket::full(limits, now_ms),
            observed_per_sec: 0.0,
            grants: Vec::new(),
        }
    }

    /// Whether `key` has been admitted.
    pub fn is_admitted(&self, key: &QueueKey) -> bool {
        *key <= self.cursor
    }

    /// How many visitors the exchanger may admit now: free slots, capped by the rate allowance.
    pub fn budget(&self, ledger: &Ledger, limits: &Limits, now_ms: u64) -> u32 {
        let mut rate = self.rate;
        rate.refill(limits, now_ms);
        let free = (limits.capacity as u64).saturating_sub(ledger.active(now_ms));
        (free.min(u32::MAX as u64) as u32).min(rate.available())
    }

    /// Applies a tick that admitted `admitted` (live queue keys after the cursor, in order),
    /// reserving their slots until `now + claim_window`.
    pub fn apply_tick(
        &mut self,
        ledger: &mut Ledger,
        admitted: &[QueueKey],
        limits: &Limits,
        now_ms: u64,
    ) {
        self.rate.refill(limits, now_ms);
        let n = admitted.len() as u32;
        let elapsed_s = (now_ms.saturating_sub(self.last_tick_ms) as f64 / 1_000.0).max(0.001);
        if let Some(last) = admitted.last() {
            self.rate.take(n);
            self.cursor = self.cursor.max(*last);
            self.admitted_total += n as u64;
            let claim_bucket = bucket_of(now_ms + limits.claim_window.as_millis() as u64);
            ledger.add(claim_bucket, n as i64);
            self.grants.push(Grant {
                upto: *last,
                claim_bucket,
                admitted_at_ms: now_ms,
                unclaimed: n,
            });
        }
        // Smooth over about ten ticks; only while people wait, so idle time does not drag it down.
        if n > 0 || self.observed_per_sec > 0.0 {
            self.observed_per_sec = 0.9 * self.observed_per_sec + 0.1 * (n as f64 / elapsed_s);
        }
        self.drop_lapsed_grants(now_ms);
        ledger.prune(now_ms);
        self.last_tick_ms = now_ms;
        self.version += 1;
    }

    fn drop_lapsed_grants(&mut self, now_ms: u64) {
        self.grants
            .retain(|g| g.claim_bucket > now_ms / 1_000 && g.unclaimed > 0);
    }

    /// An admitted visitor (key at or below the cursor) asks for their session slot.
    pub fn claim(
        &mut self,
        ledger: &mut Ledger,
        key: &QueueKey,
        limits: &Limits,
        now_ms: u64,
    ) -> ClaimOutcome {
        let bucket = bucket_of(now_ms + limits.session_ttl.as_millis() as u64);
        if let Some(existing) = ledger.session(key.visitor, now_ms) {
            // A second tab or a retried request: same slot, no second admission.
            return ClaimOutcome::Granted {
                bucket: existing,
                admitted_at_ms: self.admitted_at(key, now_ms),
            };
        }
        let live_second = now_ms / 1_000;
        // The grant that covers `key` is the first whose `upto` is at or above it.
        if let Some(grant) = self.grants.iter_mut().find(|g| *key <= g.upto) {
            if grant.unclaimed > 0 && grant.claim_bucket > live_second {
                grant.unclaimed -= 1;
                let admitted_at_ms = grant.admitted_at_ms;
                ledger.add(grant.claim_bucket, -1);
                ledger.open_session(key.visitor, bucket);
                self.version += 1;
                return ClaimOutcome::Granted {
                    bucket,
                    admitted_at_ms,
                };
            }
        }
        // Late (reservation lapsed) or skipped as abandoned and back: a slot only if one is free.
        if ledger.active(now_ms) < limits.capacity as u64 {
            ledger.open_session(key.visitor, bucket);
            self.version += 1;
            ClaimOutcome::Granted {
                bucket,
                admitted_at_ms: now_ms,
            }
        } else {
            ClaimOutcome::Wait
        }
    }

    fn admitted_at(&self, key: &QueueKey, now_ms: u64) -> u64 {
        self.grants
            .iter()
            .find(|g| *key <= g.upto)
            .map_or(now_ms, |g| g.admitted_at_ms)
    }

    /// A newcomer in a quiet zone: admitted at once if a slot and the rate allow and nobody waits.
    /// Returns the session's expiry bucket.
    pub fn admit_directly(
        &mut self,
        ledger: &mut Ledger,
        visitor: VisitorId,
        nobody_waiting: bool,
        limits: &Limits,
        now_ms: u64,
    ) -> Option<u64> {
        if !nobody_waiting || ledger.active(now_ms) >= limits.capacity as u64 {
            return None;
        }
        self.rate.refill(limits, now_ms);
        if self.rate.available() == 0 {
            return None;
        }
        self.rate.take(1);
        self.admitted_total += 1;
        self.version += 1;
        let bucket = bucket_of(now_ms + limits.session_ttl.as_millis() as u64);
        ledger.open_session(visitor, bucket);
        Some(bucket)
    }
}
