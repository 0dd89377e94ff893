//! Scheduled on-sales (`[[zones.NAME.events]]`): which phase a zone is in at a given time, the
//! configuration in force, and the pre-queue lottery. Pure: time comes from the caller.
//!
//! The lottery stores nothing per visitor. A pre-queue member's token carries their arrival
//! (inside `[prequeue_at, starts_at)`) and their id. At `starts_at` the exchanger that wins the
//! tick fixes a random seed in the zone state; from then on every node maps each member to a
//! place inside the pre-queue window by a keyed hash, `SHA-256(seed ‖ visitor id)`, so the
//! pre-queue is a uniform random order, ahead of everyone who came later (their ranks are
//! `>= starts_at`), and anyone holding the seed can re-run it. Members go into the queue at
//! their drawn place when their page next asks, which is why the exchanger waits
//! [`draw_grace`] after the draw before admitting anyone: open pages (woken at once by the
//! change feed) and polling ones (within a refresh interval) take their places first.

use crate::admission::{Draw, QueueKey, VisitorId};
use crate::config::{AfterEnd, Event, ZoneConfig};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Where a zone stands in its schedule.
#[derive(Debug, Clone, Copy)]
pub enum Phase<'a> {
    /// No event in force: the zone's own mode and limits.
    Base,
    /// Between `prequeue_at` and `starts_at`: a countdown, arrivals join the pre-queue,
    /// nobody is admitted.
    Prequeue(&'a Event),
    /// Between `starts_at` and `ends_at`: the sale, with the event's overrides.
    Sale(&'a Event),
    /// After `ends_at` of an event with `after_end = "ended"`, until the next pre-queue.
    Ended(&'a Event),
}

/// The phase of a zone with these `events` (in time order) at `now_ms`.
pub fn phase(events: &[Event], now_ms: u64) -> Phase<'_> {
    let mut phase = Phase::Base;
    for event in events {
        if now_ms < event.prequeue_at_ms {
            break;
        }
        phase = if now_ms < event.starts_at_ms {
            Phase::Prequeue(event)
        } else if event.ends_at_ms.is_none_or(|end| now_ms < end) {
            Phase::Sale(event)
        } else if event.after_end == AfterEnd::Ended {
            Phase::Ended(event)
        } else {
            Phase::Base
        };
    }
    phase
}

/// The configuration in force during `phase`: the sale's overrides, or the zone's own.
pub fn in_force<'a>(zone: &'a ZoneConfig, phase: Phase<'a>) -> &'a ZoneConfig {
    match phase {
        Phase::Sale(event) => &event.sale,
        _ => zone,
    }
}

/// How long after the draw (or, without a lottery, after the start) the exchanger waits before
/// admitting, so pre-queue members take their places first.
pub fn draw_grace(zone: &ZoneConfig) -> Duration {
    zone.refresh_interval + Duration::from_secs(1)
}

/// The lottery hash of a visitor under `seed`: the first 8 bytes of
/// `SHA-256(seed as 8 big-endian bytes ‖ visitor id as 16 big-endian bytes)`, big-endian.
pub fn lottery_hash(seed: u64, visitor: VisitorId) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_be_bytes());
    hasher.update(visitor.0.to_be_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// A pre-queue member's drawn place: a rank inside the pre-queue window, so the pre-queue goes
/// ahead of later arrivals and behind anyone who queued before it opened.
pub fn lottery_key(event: &Event, seed: u64, visitor: VisitorId) -> QueueKey {
    let span = event
        .starts_at_ms
        .saturating_sub(event.prequeue_at_ms)
        .max(1);
    QueueKey {
        rank: event.prequeue_at_ms + lottery_hash(seed, visitor) % span,
        visitor,
    }
}

/// Where a visitor with a place stands.
#[derive(Debug, Clone, Copy)]
pub enum Standing<'a> {
    /// In the queue at this key.
    Queued(QueueKey),
    /// A pre-queue member before the draw: a countdown; nothing of theirs is in the store.
    Prequeue(&'a Event),
    /// A pre-queue member whose place is drawn (`key`) while the exchanger still waits for the
    /// others to take theirs ([`draw_grace`]): they take it now, positions are shown after.
    Drawn {
        /// The event.
        event: &'a Event,
        /// Their drawn place.
        key: QueueKey,
    },
}

/// Whether an event has a pre-queue (and so a draw at its start).
pub fn has_prequeue(event: &Event) -> bool {
    event.prequeue_at_ms < event.starts_at_ms
}

/// Whether the exchanger still holds admissions after `draw` (the grace after the draw).
pub fn settling(event: &Event, draw: &Draw, now_ms: u64) -> bool {
    now_ms < draw.at_ms + draw_grace(&event.sale).as_millis() as u64
}

/// The zone's draw for `event`, if it happened.
pub fn draw_of<'d>(event: &Event, draw: Option<&'d Draw>) -> Option<&'d Draw> {
    draw.filter(|d| d.event == event.name)
}

/// Where the holder of a visitor token with `key` (their arrival) stands at `now_ms`, given the
/// zone's latest `draw`. Without `shuffle` the pre-queue keeps its arrival order.
pub fn standing<'a>(
    phase: Phase<'a>,
    key: QueueKey,
    draw: Option<&Draw>,
    now_ms: u64,
) -> Standing<'a> {
    let event = match phase {
        Phase::Prequeue(event) | Phase::Sale(event) if event.in_prequeue(key.rank) => event,
        _ => return Standing::Queued(key),
    };
    let Some(draw) = draw_of(event, draw).filter(|_| matches!(phase, Phase::Sale(_))) else {
        return Standing::Prequeue(event);
    };
    let key = if event.shuffle {
        lottery_key(event, draw.seed, key.visitor)
    } else {
        key
    };
    if settling(event, draw, now_ms) {
        Standing::Drawn { event, key }
    } else {
        Standing::Queued(key)
    }
}

/// The next time after `now_ms` at which a schedule's phase changes, if any.
pub fn next_change(events: &[Event], now_ms: u64) -> Option<u64> {
    events
        .iter()
        .flat_map(|e| [Some(e.prequeue_at_ms), Some(e.starts_at_ms), e.ends_at_ms])
        .flatten()
        .filter(|t| *t > now_ms)
        .min()
}

#[cfg(test)]
mod tests;
