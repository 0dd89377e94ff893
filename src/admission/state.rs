//! A zone's admission state: the cursor, the rate bucket and the counters the exchanger's tick
//! advances. This is the only state every node competes for (one small row, changed by
//! compare-and-set once per tick); slots live in the ledger and per-visitor [`super::Slot`]s.

use super::{bucket_of, Limits, ObservedRate, QueueKey, RateBucket, Trail};
use serde::{Deserialize, Serialize};

/// One tick's admissions: whom to reserve a slot for, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Grant {
    /// The cursor before the tick: queue entries after it and up to the new cursor leave the
    /// queue (admitted, or passed while away), and so do the admitted ones at or below it.
    pub from: QueueKey,
    /// The admitted queue entries (visitors passed by the cursor who came back first, then the
    /// next ones after the cursor), in the order they were admitted.
    pub admitted: Vec<QueueKey>,
    /// Second at which unclaimed reservations lapse.
    pub claim_bucket: u64,
    /// When the tick admitted them.
    pub admitted_at_ms: u64,
}

/// The zone row: cursor, counters and rate bucket. Versioned for compare-and-set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneState {
    /// Every queued visitor with a key at or below the cursor is admitted.
    pub cursor: QueueKey,
    /// Admissions since the zone was created.
    pub admitted_total: u64,
    /// Bumped by every change; the compare-and-set key.
    pub version: u64,
    /// Time of the last written tick.
    pub last_tick_ms: u64,
    /// Rate allowance.
    pub rate: RateBucket,
    /// The admission pace observed while people waited, for the ETA (flattened: its fields
    /// are keys of this record, as they were before it was a struct of its own).
    #[serde(flatten)]
    pub observed: ObservedRate,
    /// Visitors queued after the cursor, as of the last tick (for status pages and to tell a
    /// quiet zone from a busy one without asking the store).
    #[serde(default)]
    pub waiting: u64,
    /// Occupied slots as of the last tick.
    #[serde(default)]
    pub active: u64,
    /// The latest pre-queue lottery: its seed is fixed once, by the tick that crossed the
    /// event's start, and published with the zone state (and logged) so the draw is auditable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draw: Option<Draw>,
    /// Where the cursor was when, over the zone's `return_window`: a place passed longer ago
    /// joins at the back when its holder comes back.
    #[serde(default, skip_serializing_if = "Trail::is_empty")]
    pub passed: Trail,
}

/// A pre-queue lottery, drawn at an event's `starts_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draw {
    /// The event's name.
    pub event: String,
    /// The seed of the keyed hash that orders the pre-queue.
    pub seed: u64,
    /// When it was drawn (ms since the epoch).
    pub at_ms: u64,
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
            observed: ObservedRate::new(now_ms),
            waiting: 0,
            active: 0,
            draw: None,
            passed: Trail::default(),
        }
    }

    /// Whether `key` has been admitted.
    pub fn is_admitted(&self, key: &QueueKey) -> bool {
        *key <= self.cursor
    }

    /// How many visitors a tick may admit now, given `active` occupied slots: free slots, capped
    /// by the rate allowance.
    pub fn budget(&self, active: u64, limits: &Limits, now_ms: u64) -> u32 {
        let mut rate = self.rate;
        rate.refill(limits, now_ms);
        let free = (limits.capacity as u64).saturating_sub(active);
        (free.min(u32::MAX as u64) as u32).min(rate.available())
    }

    /// Whether a tick now would likely admit someone, judged from this (possibly cached) state
    /// alone: nobody was waiting at the last tick, and a slot and the rate seemed free.
    pub fn looks_quiet(&self, limits: &Limits, now_ms: u64) -> bool {
        self.waiting == 0 && self.budget(self.active, limits, now_ms) > 0
    }

    /// Applies a tick that admitted `admitted` (queue keys, each counted once), with `active`
    /// slots occupied before it and `waiting` visitors left after the cursor. Returns the grant
    /// whose slots must be reserved until `now + claim_window`.
    pub fn apply_tick(
        &mut self,
        admitted: Vec<QueueKey>,
        active: u64,
        waiting: u64,
        limits: &Limits,
        now_ms: u64,
    ) -> Grant {
        // Whether the tick admitted all it was allowed to with people left over: only then
        // does it measure the zone's pace.
        let allowed = self.budget(active, limits, now_ms) as u64;
        self.rate.refill(limits, now_ms);
        let from = self.cursor;
        let n = admitted.len() as u64;
        if let Some(highest) = admitted.iter().max() {
            self.rate.take(n as u32);
            self.cursor = self.cursor.max(*highest);
            self.admitted_total += n;
        }
        let constrained = waiting > 0 && n >= allowed;
        self.observed.observe(n, constrained, limits, now_ms);
        self.waiting = waiting;
        self.active = active + n;
        self.last_tick_ms = now_ms;
        self.version += 1;
        Grant {
            from,
            admitted,
            claim_bucket: bucket_of(now_ms + limits.claim_window.as_millis() as u64),
            admitted_at_ms: now_ms,
        }
    }
}
