//! Invariants of the admission math, driven by a manual clock: FIFO, capacity, rate, abandoned
//! entries skipped, claims idempotent, renewal and expiry moving slots.

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
    ledger: Ledger,
    queue: BTreeMap<QueueKey, u64>,
    admitted: Vec<(u64, QueueKey)>,
}

impl Sim {
    fn new(limits: Limits) -> Self {
        Sim {
            clock: ManualClock::new(T0),
            limits,
            state: ZoneState::new(&limits, T0),
            ledger: Ledger::default(),
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

    fn tick(&mut self) -> Vec<QueueKey> {
        let now = self.now();
        let budget = self.state.budget(&self.ledger, &self.limits, now) as usize;
        let seen_since = now.saturating_sub(self.limits.abandon_after.as_millis() as u64);
        let picked: Vec<QueueKey> = self
            .queue
            .range(self.state.cursor..)
            .filter(|(k, seen)| **k > self.state.cursor && **seen >= seen_since)
            .take(budget)
            .map(|(k, _)| *k)
            .collect();
        self.state
            .apply_tick(&mut self.ledger, &picked, &self.limits, now);
        self.admitted.extend(picked.iter().map(|k| (now, *k)));
        picked
    }

    fn claim(&mut self, k: QueueKey) -> ClaimOutcome {
        let now = self.now();
        self.state.claim(&mut self.ledger, &k, &self.limits, now)
    }

    fn active(&self) -> u64 {
        self.ledger.active(self.now())
    }
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
        assert!(matches!(sim.claim(*k), ClaimOutcome::Granted { .. }));
    }
    assert_eq!(sim.active(), 3, "a claim moves a slot, it does not add one");
    let released = sim.ledger.close_session(first[0].visitor);
    assert!(released);
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
        let now = sim.now();
        for seen in sim.queue.values_mut() {
            *seen = now;
        }
        for k in sim.tick() {
            if let ClaimOutcome::Granted { .. } = sim.claim(k) {
                sessions.push(k);
            }
        }
        if !sessions.is_empty() && rand(3) == 0 {
            let k = sessions.remove(rand(sessions.len() as u64) as usize);
            sim.ledger.close_session(k.visitor);
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
        let now = sim.now();
        for seen in sim.queue.values_mut() {
            *seen = now;
        }
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
fn abandoned_entries_are_skipped_and_returning_ones_never_exceed_capacity() {
    let mut sim = Sim::new(limits(2, 6_000, 100));
    let gone = sim.join(1);
    sim.clock.advance(Duration::from_millis(1));
    let here = sim.join(2);
    sim.clock.advance(Duration::from_millis(1));
    let also_here = sim.join(3);
    // Fill the zone so nobody is admitted, then let 40 s pass with only 2 and 3 polling.
    let blocker_a = key(0, 100);
    let blocker_b = key(0, 101);
    sim.ledger
        .open_session(blocker_a.visitor, bucket_of(sim.now() + 120_000));
    sim.ledger
        .open_session(blocker_b.visitor, bucket_of(sim.now() + 120_000));
    sim.clock.advance(Duration::from_secs(40));
    let now = sim.now();
    sim.queue.insert(here, now);
    sim.queue.insert(also_here, now);
    assert!(sim.tick().is_empty());
    sim.ledger.close_session(blocker_a.visitor);
    sim.ledger.close_session(blocker_b.visitor);
    assert_eq!(
        sim.tick(),
        vec![here, also_here],
        "the abandoned entry is skipped"
    );
    assert!(
        sim.state.is_admitted(&gone),
        "the cursor moved past the abandoned entry"
    );
    // The returning visitor ranks before 2 and 3, so they may use this grant's reservation;
    // the last live visitor of the grant then waits first in line, and capacity still holds.
    assert!(matches!(sim.claim(gone), ClaimOutcome::Granted { .. }));
    assert!(matches!(sim.claim(here), ClaimOutcome::Granted { .. }));
    assert_eq!(
        sim.claim(also_here),
        ClaimOutcome::Wait,
        "full: no third slot"
    );
    assert_eq!(sim.active(), 2);
    sim.ledger.close_session(here.visitor);
    assert!(matches!(sim.claim(also_here), ClaimOutcome::Granted { .. }));
    assert_eq!(sim.active(), 2);
}

#[test]
fn claims_are_idempotent_per_visitor() {
    let mut sim = Sim::new(limits(5, 600, 10));
    let k = sim.join(7);
    sim.tick();
    let first = sim.claim(k);
    let second = sim.claim(k);
    assert_eq!(first, second, "a second tab gets the same slot");
    assert_eq!(sim.active(), 1);
    assert_eq!(sim.state.admitted_total, 1);
}

#[test]
fn unclaimed_reservations_lapse_after_the_claim_window() {
    let mut sim = Sim::new(limits(2, 600, 10));
    sim.join(1);
    sim.join(2);
    sim.join(3);
    assert_eq!(sim.tick().len(), 2);
    assert_eq!(sim.active(), 2);
    sim.clock.advance(Duration::from_secs(11));
    let now = sim.now();
    for seen in sim.queue.values_mut() {
        *seen = now;
    }
    assert_eq!(sim.active(), 0, "no-shows give their slots back");
    assert_eq!(sim.tick().len(), 1, "and the next visitor gets one");
}

#[test]
fn renewal_moves_the_slot_and_expiry_frees_it() {
    let mut sim = Sim::new(limits(1, 600, 10));
    let k = sim.join(1);
    sim.tick();
    let ClaimOutcome::Granted { bucket, .. } = sim.claim(k) else {
        panic!("expected a slot");
    };
    sim.clock.advance(Duration::from_secs(50));
    let renewed_to = bucket_of(sim.now() + 60_000);
    assert!(sim.ledger.renew_session(k.visitor, bucket, renewed_to));
    assert!(
        !sim.ledger.renew_session(k.visitor, bucket, renewed_to + 5),
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
    sim.ledger.prune(sim.now());
    assert_eq!(sim.ledger.session_count(), 0);
}

#[test]
fn direct_admission_respects_waiting_capacity_and_rate() {
    let l = limits(2, 60, 1);
    let mut state = ZoneState::new(&l, T0);
    let mut ledger = Ledger::default();
    assert!(
        state
            .admit_directly(&mut ledger, VisitorId(1), false, &l, T0)
            .is_none(),
        "someone waits"
    );
    assert!(state
        .admit_directly(&mut ledger, VisitorId(1), true, &l, T0)
        .is_some());
    assert!(
        state
            .admit_directly(&mut ledger, VisitorId(2), true, &l, T0)
            .is_none(),
        "rate spent"
    );
    assert!(state
        .admit_directly(&mut ledger, VisitorId(2), true, &l, T0 + 1_000)
        .is_some());
    assert!(
        state
            .admit_directly(&mut ledger, VisitorId(3), true, &l, T0 + 5_000)
            .is_none(),
        "full"
    );
    assert_eq!(ledger.active(T0 + 5_000), 2);
}

#[test]
fn released_tokens_are_revoked_until_they_expire() {
    let mut ledger = Ledger::default();
    let v = VisitorId(9);
    ledger.open_session(v, bucket_of(T0 + 60_000));
    assert!(!ledger.is_revoked(v, T0));
    assert!(ledger.close_session(v));
    assert!(ledger.is_revoked(v, T0 + 1_000));
    assert!(!ledger.is_revoked(v, T0 + 61_000));
    assert_eq!(ledger.active(T0), 0);
}

#[test]
fn eta_uses_the_observed_rate_when_it_is_slower() {
    let l = limits(10, 60, 1);
    assert_eq!(
        eta(59, 0.0, &l).seconds,
        60,
        "configured 1/s before anything was observed"
    );
    assert_eq!(eta(59, 0.5, &l).seconds, 120, "observed 0.5/s");
    let e = eta(99, 2.0, &l);
    assert!(e.low <= e.seconds && e.seconds <= e.high);
}
