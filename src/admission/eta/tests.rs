//! The rate estimate and the ETA range, on hand-made admission patterns: windows of a second,
//! only constrained ticks counted, a start that is not dragged from zero, waves smoothed out, and
//! a range that widens while young or noisy.

use super::*;
use crate::admission::{QueueKey, VisitorId, ZoneState};
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

fn mature(per_sec: f64, variance: f64) -> ObservedRate {
    ObservedRate {
        per_sec,
        weight: 1.0,
        variance,
        seen_ms: 3_600_000,
        window: (T0, 0),
    }
}

#[test]
fn ticks_within_a_second_are_measured_as_one_window() {
    let l = limits(100, 6_000, 100);
    let mut rate = ObservedRate::new(T0);
    // Ten ticks 1 ms apart (ticks run on demand), one admission each: 10 in ~a second, not
    // 1 000 per second.
    for i in 0..10 {
        rate.observe(1, true, &l, T0 + i);
    }
    assert_eq!(rate.per_sec, 0.0, "no window closed yet");
    rate.observe(0, true, &l, T0 + 1_000);
    assert!((rate.per_sec - 10.0).abs() < 1e-9, "{}", rate.per_sec);
}

#[test]
fn the_estimate_starts_from_what_was_seen_not_from_zero() {
    let l = limits(100, 6_000, 100);
    let mut rate = ObservedRate::new(T0);
    rate.observe(5, true, &l, T0 + 1_000);
    assert!((rate.per_sec - 5.0).abs() < 1e-9, "{}", rate.per_sec);
    assert!(
        rate.weight > 0.0 && rate.weight < 0.05,
        "young: {}",
        rate.weight
    );
    for s in 2..=600 {
        rate.observe(5, true, &l, T0 + s * 1_000);
    }
    assert!((rate.per_sec - 5.0).abs() < 1e-9, "{}", rate.per_sec);
    assert!(
        rate.weight > 0.99,
        "mature after ten minutes: {}",
        rate.weight
    );
    assert!(rate.variance < 1e-9, "a steady pace has no noise");
}

#[test]
fn only_ticks_held_back_by_capacity_or_rate_measure_the_pace() {
    let l = limits(1_000, 600, 10); // 10 a second
    let mut state = ZoneState::new(&l, T0);
    let mut next = 0u128;
    // The next `n` in line (queued long before).
    let mut admit = |n: u128| -> Vec<QueueKey> {
        next += n;
        (next - n..next)
            .map(|v| QueueKey {
                rank: T0 - 1_000_000 + v as u64,
                visitor: VisitorId(v),
            })
            .collect()
    };
    for s in 1..=30 {
        let now = T0 + s * 1_000;
        state.apply_tick(admit(10), 0, 500, &l, now);
    }
    let paced = state.observed.per_sec;
    assert!((paced - 10.0).abs() < 0.5, "rate-limited at 10/s: {paced}");
    // The queue runs dry: ticks admit the two who come each second and nobody is left. That
    // is demand, not the zone's pace.
    for s in 31..=60 {
        let now = T0 + s * 1_000;
        state.apply_tick(admit(2), 0, 0, &l, now);
    }
    assert_eq!(
        state.observed.per_sec, paced,
        "demand-limited ticks left out"
    );
    // Capacity full, people waiting: nobody admitted is the pace.
    for s in 61..=120 {
        let now = T0 + s * 1_000;
        state.apply_tick(Vec::new(), 1_000, 100, &l, now);
    }
    assert!(
        state.observed.per_sec < paced / 2.0,
        "{}",
        state.observed.per_sec
    );
}

/// Capacity 200 and sessions of about a minute: slots free up in waves, 20 a second for 10 s,
/// then nothing for 50 s; the pace is 200 a minute.
#[test]
fn waves_of_sessions_ending_are_smoothed_out() {
    let l = limits(200, 6_000, 100);
    let mut rate = ObservedRate::new(T0);
    let mean = 200.0 / 60.0;
    let (mut lowest, mut highest) = (f64::MAX, 0.0f64);
    for s in 1..=1_200u64 {
        let admitted = if (s - 1) % 60 < 10 { 20 } else { 0 };
        rate.observe(admitted, true, &l, T0 + s * 1_000);
        if s > 300 {
            lowest = lowest.min(rate.per_sec);
            highest = highest.max(rate.per_sec);
        }
    }
    // A 10 s average swings from about 13 a second to nearly nothing.
    assert!(
        lowest > mean * 0.75 && highest < mean * 1.3,
        "{lowest:.2}..{highest:.2} around {mean:.2}"
    );
}

#[test]
fn before_anything_is_observed_the_configured_rate_is_the_guess_and_the_ttl_the_limit() {
    let l = limits(10, 60, 1); // 1 a second; 10 sessions of at most 60 s: 1/6 a second
    let e = eta(59, &ObservedRate::default(), &l);
    assert_eq!((e.seconds, e.low, e.high), (60, 60, 360));
}

#[test]
fn the_observed_rate_counts_when_slower_and_the_configured_one_caps_it() {
    let l = limits(10, 60, 1);
    assert_eq!(
        eta(59, &mature(0.5, 0.0), &l).seconds,
        120,
        "observed 0.5/s"
    );
    let e = eta(59, &mature(2.0, 0.0), &l);
    assert_eq!(e.seconds, 60, "configured 1/s caps it");
    assert_eq!(e.low, 60, "never sooner than the configured rate allows");
    assert!(e.high > e.seconds);
}

#[test]
fn the_range_is_wider_while_young_or_noisy() {
    let l = limits(1_000, 6_000, 100);
    let steady = eta(999, &mature(5.0, 0.0), &l);
    assert_eq!(steady.seconds, 200);
    assert!(
        steady.low >= 170 && steady.high <= 235,
        "mature and steady: {steady:?}"
    );
    let young = eta(
        999,
        &ObservedRate {
            weight: 0.2,
            ..mature(5.0, 0.0)
        },
        &l,
    );
    assert!(
        young.low < steady.low && young.high > steady.high,
        "{young:?}"
    );
    let noisy = eta(999, &mature(5.0, 400.0), &l);
    assert!(
        noisy.low < steady.low && noisy.high > steady.high,
        "{noisy:?}"
    );
    // Noise averages out over a long wait.
    let far = eta(99_999, &mature(5.0, 400.0), &l);
    let relative = |e: Eta| e.high as f64 / e.seconds as f64;
    assert!(relative(far) < relative(noisy), "{far:?} vs {noisy:?}");
    for e in [steady, young, noisy, far] {
        assert!(e.low <= e.seconds && e.seconds <= e.high, "{e:?}");
    }
}

#[test]
fn zone_states_written_before_the_estimate_had_a_struct_still_load() {
    let l = limits(10, 60, 1);
    let mut state = ZoneState::new(&l, T0);
    state.observed = mature(2.5, 1.0);
    let json = serde_json::to_value(&state).expect("json");
    assert_eq!(json["observed_per_sec"], 2.5, "the key older nodes read");
    assert!(json.get("rate_window").is_some());
    let mut old = json.clone();
    for key in ["observed_weight", "observed_variance", "observed_ms"] {
        old.as_object_mut().expect("an object").remove(key);
    }
    let loaded: ZoneState = serde_json::from_value(old).expect("an older state loads");
    assert_eq!(loaded.observed.per_sec, 2.5);
    assert_eq!(loaded.observed.window, state.observed.window);
    assert_eq!((loaded.observed.weight, loaded.observed.seen_ms), (0.0, 0));
}
