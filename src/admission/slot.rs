//! A visitor's slot: reserved by the tick that admitted them, active once they claim it,
//! revoked when the origin releases it. Every store keeps one per admitted visitor and changes it
//! only through these transitions, each of which says how the ledger moves, so the slot count
//! and the slots agree on every backend (the embedded store applies a transition under a lock;
//! the CQL store applies it as a compare-and-set on the visitor's own row).

use super::{Ledger, VisitorId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Where a slot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotStatus {
    /// Held for an admitted visitor until `bucket` (the end of the claim window).
    Reserved,
    /// A session, expiring at `bucket`.
    Active,
    /// Released: the visitor's access token is refused until `bucket`.
    Revoked,
}

impl SlotStatus {
    /// The name stored in the CQL `sessions` table.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotStatus::Reserved => "reserved",
            SlotStatus::Active => "active",
            SlotStatus::Revoked => "revoked",
        }
    }

    /// Parses [`SlotStatus::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "reserved" => Some(SlotStatus::Reserved),
            "active" => Some(SlotStatus::Active),
            "revoked" => Some(SlotStatus::Revoked),
            _ => None,
        }
    }
}

/// One visitor's slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// Reserved, active or revoked.
    pub status: SlotStatus,
    /// Second at which it expires (or the revocation ends).
    pub bucket: u64,
    /// When the visitor's turn came.
    pub admitted_at_ms: u64,
}

impl Slot {
    /// Whether the slot still means something at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.bucket > now_ms / 1_000
    }
}

/// What a claim by an admitted visitor (queue key at or below the cursor) gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// A session expiring at second `bucket`. A second tab gets the same one.
    Granted {
        /// Expiry bucket of the session.
        bucket: u64,
        /// When the exchanger admitted them.
        admitted_at_ms: u64,
    },
    /// No reservation: it lapsed, the cursor passed them while they were away, or the tick
    /// that admitted them has not finished writing it. They go back in line at the front.
    NotReserved,
    /// Their session was released: this place is used up.
    Ended,
}

/// A transition: what the caller gets, the slot to write (if it changes), and the ledger moves
/// (bucket, delta) that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition<T> {
    /// The answer.
    pub outcome: T,
    /// The slot after the transition; `None`: unchanged.
    pub next: Option<Slot>,
    /// Ledger deltas.
    pub moves: Vec<(u64, i64)>,
}

impl<T> Transition<T> {
    fn unchanged(outcome: T) -> Self {
        Transition {
            outcome,
            next: None,
            moves: Vec::new(),
        }
    }
}

/// Reserves a slot for an admitted visitor until `claim_bucket`. A live reservation or session
/// is kept as it is (a retried tick must not count a visitor twice).
pub fn reserve(
    current: Option<&Slot>,
    claim_bucket: u64,
    admitted_at_ms: u64,
    now_ms: u64,
) -> Transition<bool> {
    match current {
        Some(slot) if slot.is_live(now_ms) && slot.status != SlotStatus::Revoked => {
            Transition::unchanged(false)
        }
        _ => Transition {
            outcome: true,
            next: Some(Slot {
                status: SlotStatus::Reserved,
                bucket: claim_bucket,
                admitted_at_ms,
            }),
            moves: vec![(claim_bucket, 1)],
        },
    }
}

/// Turns a reservation into a session expiring at `to`.
pub fn claim(current: Option<&Slot>, to: u64, now_ms: u64) -> Transition<Claim> {
    match current {
        Some(slot) if slot.is_live(now_ms) => match slot.status {
            SlotStatus::Reserved => Transition {
                outcome: Claim::Granted {
                    bucket: to,
                    admitted_at_ms: slot.admitted_at_ms,
                },
                next: Some(Slot {
                    status: SlotStatus::Active,
                    bucket: to,
                    admitted_at_ms: slot.admitted_at_ms,
                }),
                moves: vec![(slot.bucket, -1), (to, 1)],
            },
            SlotStatus::Active => Transition::unchanged(Claim::Granted {
                bucket: slot.bucket,
                admitted_at_ms: slot.admitted_at_ms,
            }),
            SlotStatus::Revoked => Transition::unchanged(Claim::Ended),
        },
        _ => Transition::unchanged(Claim::NotReserved),
    }
}

/// Moves an active session from bucket `from` to `to`; false if it is not in `from` (already
/// renewed by a parallel request, released, or expired).
pub fn renew(current: Option<&Slot>, from: u64, to: u64, now_ms: u64) -> Transition<bool> {
    match current {
        Some(slot)
            if slot.status == SlotStatus::Active && slot.bucket == from && slot.is_live(now_ms) =>
        {
            Transition {
                outcome: true,
                next: Some(Slot {
                    bucket: to,
                    ..*slot
                }),
                moves: vec![(from, -1), (to, 1)],
            }
        }
        _ => Transition::unchanged(false),
    }
}

/// Frees an active session and revokes its token until it would have expired anyway. Returns
/// that second, or `None` if there was no live session.
pub fn release(current: Option<&Slot>, now_ms: u64) -> Transition<Option<u64>> {
    match current {
        Some(slot) if slot.status == SlotStatus::Active && slot.is_live(now_ms) => Transition {
            outcome: Some(slot.bucket),
            next: Some(Slot {
                status: SlotStatus::Revoked,
                ..*slot
            }),
            moves: vec![(slot.bucket, -1)],
        },
        _ => Transition::unchanged(None),
    }
}

/// Slots and their ledger in memory: the embedded store's, and the simulations'.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slots {
    /// The slot count by expiry second.
    pub ledger: Ledger,
    /// Every visitor's slot.
    pub by_visitor: HashMap<VisitorId, Slot>,
}

impl Slots {
    /// Applies a transition computed for `visitor`; returns its outcome.
    pub fn apply<T>(&mut self, visitor: VisitorId, t: Transition<T>) -> T {
        if let Some(next) = t.next {
            self.by_visitor.insert(visitor, next);
        }
        for (bucket, delta) in t.moves {
            self.ledger.add(bucket, delta);
        }
        t.outcome
    }

    /// The slot of `visitor`.
    pub fn get(&self, visitor: VisitorId) -> Option<&Slot> {
        self.by_visitor.get(&visitor)
    }

    /// Forgets expired slots and ledger buckets.
    pub fn prune(&mut self, now_ms: u64) {
        self.ledger.prune(now_ms);
        self.by_visitor.retain(|_, slot| slot.is_live(now_ms));
    }
}
