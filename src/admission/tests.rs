//! Invariants of the admission math, driven by a manual clock: FIFO, capacity, rate, abandoned
//! entries skipped and put back at the front when they return, claims idempotent, renewal, release
//! and expiry moving slots.

use super::*;
use crate::clock::{Clock, ManualClock};
use std::collections::BTreeMap;
use std::time::Duration;

const T0: u64 = 1_800_000_000_000;

fn limits(capacity: u32, admit_per_minute: u32, burst: u32) -> Limits {
    Limits {
        capacity,
        admit_per_minute,
        burst,
        session_ttl: Duration::from_secs(60),
        claim_window: Duration::from_secs(10),
        abandon_after: Duration::from_secs(30),
    }
}

fn key(rank: u64, visitor: u128) -> QueueKey {
    QueueKey {
        rank,
        visitor: VisitorId(visitor),
    }
}

/// A zone with an in-memory queue, ticked like the exchanger ticks it.
struct Sim {
    clock: ManualClock,
    limits: Limits,
    state: ZoneState,
    slots: Slots,
    queue: BTreeMap<QueueKey, u64>,
    admitted: Vec<(u64, QueueKey)>,
}

impl Sim {
    fn new(limits: Limits) -> Self {
        Sim {
            clock: ManualClock::new(T0),
            limits,
            state: ZoneState::new(&limits, T0),
            slots: Slots::default(),
            queue: BTreeMap::new(),
            admitted: Vec::new(),
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn join(&mut self, visitor: u128) -> QueueKey {
        let k = key(self.now(), visitor);
        self.queue.insert(k, self.now());
        k
    }

    /// Everyone queued polls now.
    fn poll_all(&mut self) {
        let now = self.now();
        for seen in self.queue.values_mut() {
            *seen = now;
        }
    }

    /// The exchanger's tick: returned visitors (at or below the cursor) first, then the live
    /// ones after it, as many as the budget allows.
    fn tick(&mut self) -> Vec<QueueKey> {
        let now = self.now();
        let active = self.slots.ledger.active(now);
        let budget = self.state.budget(active, &self.limits, now) as usize;
        let seen_since = now.saturating_sub(self.limits.abandon_after.as_millis() as u64);
        let cursor = self.state.cursor;
        let live = |(k, seen): (&QueueKey, &u64)| (*seen >= seen_since).then_some(*k);
        let mut picked: Vec<QueueKey> = self.queue.range(..=cursor).filter_map(live).collect();
        picked.extend(
            self.queue
                .range(cursor..)
                .filter(|(k, _)| **k > cursor)
                .filter_map(live),
        );
        picked.truncate(budget);
        let waiting = self
            .queue
            .range(cursor..)
            .filter(|(k, _)| **k > cursor)
            .count();
        let grant =
            self.state
                .apply_tick(picked.clone(), active, waiting as u64, &self.limits, now);
        for k in &grant.admitted {
            let t = slot::reserve(
                self.slots.get(k.visitor),
                grant.claim_bucket,
                grant.admitted_at_ms,
                now,
            );
            self.slots.apply(k.visitor, t);
        }
        // Entries the tick passed or admitted leave; returned ones still waiting stay.
        let cursor = self.state.cursor;
        self.queue
            .retain(|k, _| !(grant.admitted.contains(k) || (*k > grant.from && *k <= cursor)));
        self.admitted.extend(picked.iter().map(|k| (now, *k)));
        picked
    }

    fn claim(&mut self, k: QueueKey) -> Claim {
        let now = self.now();
        let to = bucket_of(now + self.limits.session_ttl.as_millis() as u64);
        let t = slot::claim(self.slots.get(k.visitor), to, now);
        self.slots.apply(k.visitor, t)
    }

    fn release(&mut self, k: QueueKey) -> Option<u64> {
        let now = self.now();
        let t = slot::release(self.slots.get(k.visitor), now);
        self.slots.apply(k.visitor, t)
    }

    /// A visitor passed by the cursor comes back: they are in line again, at their rank.
    fn come_back(&mut self, k: QueueKey) {
        let now = self.now();
        self.queue.insert(k, now);
    }

    fn active(&self) -> u64 {
        self.slots.ledger.active(self.now())
    }
}

fn granted(c: Claim) -> bool {
    matches!(c, Claim::Granted { .. })
}

#[test]
fn admits_in_fifo_order_within_capacity() {
    let mut sim = Sim::new(limits(3, 600, 10));
    let keys: Vec<QueueKey> = (0..10)
        .map(|i| {
            sim.clock.advance(Duration::from_millis(5));
            sim.join(i)
        })
        .collect();
    let first = sim.tick();
    assert_eq!(first, keys[..3], "the three oldest go first");
    assert_eq!(sim.active(), 3, "reservations occupy slots");
    assert!(sim.tick().is_empty(), "full: nobody else goes in");
    for k in &first {
        assert!(granted(sim.claim(*k)));
    }
    assert_eq!(sim.active(), 3, "a claim moves a slot, it does not add one");
    assert!(sim.release(first[0]).is_some());
    assert_eq!(
        sim.tick(),
        keys[3..4],
        "one freed slot lets exactly the next one in"
    );
}

#[test]
fn capacity_and_fifo_hold_under_random_traffic() {
    let mut sim = Sim::new(limits(7, 1_200, 5));
    let mut rng_state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move |n: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % n
    };
    let mut sessions: Vec<QueueKey> = Vec::new();
    let mut next_visitor = 0u128;
    for _ in 0..2_000 {
        sim.clock.advance(Duration::from_millis(50 + rand(400)));
        for _ in 0..rand(4) {
            next_visitor += 1;
            sim.join(next_visitor);
        }
        // Everyone queued keeps polling, so nobody is abandoned here.
        sim.poll_all();
        for k in sim.tick() {
            if granted(sim.claim(k)) {
                sessions.push(k);
            }
        }
        if !sessions.is_empty() && rand(3) == 0 {
            let k = sessions.remove(rand(sessions.len() as u64) as usize);
            sim.release(k);
        }
        assert!(sim.active() <= 7, "capacity exceeded: {}", sim.active());
    }
    let ranks: Vec<QueueKey> = sim.admitted.iter().map(|(_, k)| *k).collect();
    assert!(
        ranks.len() > 500,
        "the simulation admitted enough to mean something"
    );
    assert!(
        ranks.windows(2).all(|w| w[0] < w[1]),
        "FIFO inversion in admission order"
    );
}

#[test]
fn rate_never_exceeds_rate_plus_burst_in_any_window() {
    let l = limits(10_000, 120, 4); // 2 per second, burst 4
    let mut sim = Sim::new(l);
    for i in 0..2_000 {
        sim.join(i);
    }
    for _ in 0..600 {
        sim.clock.advance(Duration::from_millis(250));
        sim.poll_all();
        sim.tick();
    }
    let times: Vec<u64> = sim.admitted.iter().map(|(t, _)| *t).collect();
    // 150 s at 2/s plus the burst of 4.
    assert!(
        times.len() >= 295 && times.len() <= 304,
        "admitted {}",
        times.len()
    );
    for (i, start) in times.iter().enumerate() {
        for window_ms in [1_000u64, 10_000, 60_000] {
            let in_window = times[i..]
                .iter()
                .take_while(|t| **t < start + window_ms)
                .count() as u64;
            let allowed = l.burst as u64 + l.admit_per_minute as u64 * window_ms / 60_000;
            assert!(
                in_window <= allowed,
                "{in_window} admissions in {window_ms} ms > {allowed}"
            );
        }
    }
}

#[test]
fn abandoned_entries_are_skipped_and_returning_ones_go_first() {
    let mut sim = Sim::new(limits(2, 6_000, 100));
    let gone = sim.join(1);
    sim.clock.advance(Duration::from_millis(1));
    let here = sim.join(2);
    sim.clock.advance(Duration::from_millis(1));
    let also_here = sim.join(3);
    sim.clock.advance(Duration::from_millis(1));
    let later = sim.join(4);
    // 40 s pass with only 2, 3 and 4 polling: 1 is abandoned.
    sim.clock.advance(Duration::from_secs(40));
    for k in [here, also_here, later] {
        sim.come_back(k);
    }
    assert_eq!(
        sim.tick(),
        vec![here, also_here],
        "the abandoned entry is skipped"
    );
    assert!(
        sim.state.is_admitted(&gone),
        "the cursor moved past the abandoned entry"
    );
    assert_eq!(
        sim.claim(gone),
        Claim::NotReserved,
        "no slot was held for 1"
    );
    assert!(granted(sim.claim(here)));
    assert!(granted(sim.claim(also_here)));
    assert_eq!(sim.active(), 2);
    // 1 is back: in line again at their rank, ahead of 4 who never left.
    sim.come_back(gone);
    sim.poll_all();
    assert!(sim.tick().is_empty(), "full: nobody goes in");
    sim.release(here);
    assert_eq!(sim.tick(), vec![gone], "the returning visitor goes first");
    assert!(granted(sim.claim(gone)));
    sim.release(also_here);
    assert_eq!(sim.tick(), vec![later]);
    assert!(sim.active() <= 2);
}

#[test]
fn claims_are_idempotent_per_visitor() {
    let mut sim = Sim::new(limits(5, 600, 10));
    let k = sim.join(7);
    sim.tick();
    let first = sim.claim(k);
    let second = sim.claim(k);
    assert!(granted(first));
    assert_eq!(first, second, "a second tab gets the same slot");
    assert_eq!(sim.active(), 1);
    assert_eq!(sim.state.admitted_total, 1);
}

#[test]
fn a_retried_reservation_is_not_counted_twice() {
    let mut slots = Slots::default();
    let v = VisitorId(3);
    for _ in 0..2 {
        let t = slot::reserve(slots.get(v), bucket_of(T0 + 10_000), T0, T0);
        slots.apply(v, t);
    }
    assert_eq!(slots.ledger.active(T0), 1);
    let t = slot::claim(slots.get(v), bucket_of(T0 + 60_000), T0);
    slots.apply(v, t);
    let t = slot::reserve(slots.get(v), bucket_of(T0 + 10_000), T0, T0);
    assert!(
        !slots.apply(v, t),
        "an active session is not reserved again"
    );
    assert_eq!(slots.ledger.active(T0), 1);
}

#[test]
fn unclaimed_reservations_lapse_after_the_claim_window() {
    let mut sim = Sim::new(limits(2, 600, 10));
    let first = sim.join(1);
    sim.join(2);
    sim.join(3);
    assert_eq!(sim.tick().len(), 2);
    assert_eq!(sim.active(), 2);
    sim.clock.advance(Duration::from_secs(11));
    sim.poll_all();
    assert_eq!(sim.active(), 0, "no-shows give their slots back");
    assert_eq!(sim.claim(first), Claim::NotReserved, "too late");
    assert_eq!(sim.tick().len(), 1, "and the next visitor gets one");
}

#[test]
fn renewal_moves_the_slot_and_expiry_frees_it() {
    let mut sim = Sim::new(limits(1, 600, 10));
    let k = sim.join(1);
    sim.tick();
    let Claim::Granted { bucket, .. } = sim.claim(k) else {
        panic!("expected a slot");
    };
    sim.clock.advance(Duration::from_secs(50));
    let now = sim.now();
    let renewed_to = bucket_of(now + 60_000);
    let t = slot::renew(sim.slots.get(k.visitor), bucket, renewed_to, now);
    assert!(sim.slots.apply(k.visitor, t));
    let t = slot::renew(sim.slots.get(k.visitor), bucket, renewed_to + 5, now);
    assert!(
        !sim.slots.apply(k.visitor, t),
        "a stale renewal (parallel request) moves nothing"
    );
    sim.clock.advance(Duration::from_secs(20));
    assert_eq!(
        sim.active(),
        1,
        "renewed: still active after the original expiry"
    );
    sim.clock.advance(Duration::from_secs(45));
    assert_eq!(sim.active(), 0, "expired: the slot leaked out");
    sim.slots.prune(sim.now());
    assert!(sim.slots.by_visitor.is_empty());
}

#[test]
fn released_sessions_end_the_place_and_free_the_slot() {
    let mut sim = Sim::new(limits(1, 600, 10));
    let k = sim.join(9);
    sim.tick();
    let Claim::Granted { bucket, .. } = sim.claim(k) else {
        panic!("expected a slot");
    };
    assert_eq!(
        sim.release(k),
        Some(bucket),
        "revoked until it would have expired"
    );
    assert_eq!(sim.release(k), None, "a second release frees nothing");
    assert_eq!(sim.active(), 0);
    assert_eq!(sim.claim(k), Claim::Ended, "the visitor token is used up");
    let next = sim.join(10);
    assert_eq!(
        sim.tick(),
        vec![next],
        "the freed slot goes to the next in line"
    );
}

#[test]
fn a_quiet_zone_is_told_apart_from_a_busy_one() {
    let l = limits(2, 60, 1);
    let mut state = ZoneState::new(&l, T0);
    assert!(state.looks_quiet(&l, T0));
    state.apply_tick(vec![key(T0, 1)], 0, 0, &l, T0);
    assert!(!state.looks_quiet(&l, T0), "rate spent");
    assert!(state.looks_quiet(&l, T0 + 1_000), "rate refilled");
    state.apply_tick(vec![key(T0 + 1_000, 2)], 1, 3, &l, T0 + 1_000);
    assert!(!state.looks_quiet(&l, T0 + 5_000), "people wait, and full");
}
