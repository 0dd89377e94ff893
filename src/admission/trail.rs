//! Where the cursor was when: a few samples of (time, cursor rank), enough to tell whether a
//! place was passed more than `return_window` ago. A visitor the cursor skipped while they were
//! away may come back and go in first, but only within that window; a place parked to be
//! redeemed later joins at the back.
//!
//! Samples are at least a sixteenth of the window apart (at least a second); the newest one
//! moves forward with the cursor until the next is due, so a sample's time is never earlier
//! than when the cursor reached its rank: a visitor is never sent back early, and at most a
//! sixteenth of the window late. One sample older than the window is kept; the rest go.

use serde::{Deserialize, Serialize};

/// The cursor's recent path, oldest first: `(at_ms, cursor_rank)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Trail(Vec<(u64, u64)>);

impl Trail {
    /// Whether there are no samples (a new zone, or one whose cursor never moved).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// Records that the cursor stands at `cursor_rank` at `now_ms`, for a window of
    /// `window_ms`.
    pub fn record(&mut self, cursor_rank: u64, window_ms: u64, now_ms: u64) {
        let spacing = (window_ms / 16).max(1_000);
        let n = self.0.len();
        let head_due = n < 2 || now_ms >= self.0[n - 2].0.saturating_add(spacing);
        match self.0.last_mut() {
            Some(last) if last.1 >= cursor_rank && last.0 <= now_ms => {}
            Some(last) if !head_due => *last = (now_ms, cursor_rank),
            _ => self.0.push((now_ms, cursor_rank)),
        }
        // Keep one sample older than the window: it bounds everything before it.
        let horizon = now_ms.saturating_sub(window_ms);
        while self.0.len() > 2 && self.0[1].0 < horizon {
            self.0.remove(0);
        }
    }

    /// Whether the cursor passed `rank` more than `window_ms` before `now_ms`, as far as the
    /// samples tell (when they cannot tell, it did not).
    pub fn passed_before(&self, rank: u64, window_ms: u64, now_ms: u64) -> bool {
        self.0
            .iter()
            .find(|(_, cursor)| *cursor >= rank)
            .is_some_and(|(at, _)| at.saturating_add(window_ms) < now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::Trail;

    const T0: u64 = 1_800_000_000_000;
    const WINDOW: u64 = 300_000;

    #[test]
    fn a_place_passed_within_the_window_keeps_its_rank_and_later_does_not() {
        let mut trail = Trail::default();
        // The cursor moves one second of arrivals per second, ticking every 200 ms, for an hour.
        for step in 0..18_000u64 {
            let now = T0 + step * 200;
            trail.record(now - 60_000, WINDOW, now);
            assert!(
                trail.samples().len() <= 19,
                "bounded: {}",
                trail.samples().len()
            );
        }
        let now = T0 + 18_000 * 200;
        // Arrival a minute before `passed_at` was passed then.
        let rank_passed_at = |passed_at: u64| passed_at - 60_000;
        for (passed_ago_s, long_ago) in [
            (10, false),
            (200, false),
            (299, false),
            (300 + 300 / 16 + 1, true),
            (900, true),
            (3_000, true),
        ] {
            let rank = rank_passed_at(now - passed_ago_s * 1_000);
            assert_eq!(
                trail.passed_before(rank, WINDOW, now),
                long_ago,
                "passed {passed_ago_s}s ago"
            );
        }
        // Not passed at all yet.
        assert!(!trail.passed_before(now, WINDOW, now));
    }

    #[test]
    fn an_empty_or_young_trail_sends_nobody_back() {
        let mut trail = Trail::default();
        assert!(!trail.passed_before(1, WINDOW, T0));
        trail.record(T0 - 1_000, WINDOW, T0);
        assert!(!trail.passed_before(T0 - 5_000, WINDOW, T0 + 200_000));
        assert!(trail.passed_before(T0 - 5_000, WINDOW, T0 + WINDOW + 1));
    }

    #[test]
    fn a_cursor_that_stands_still_adds_no_samples() {
        let mut trail = Trail::default();
        for step in 0..1_000 {
            trail.record(T0 - 10_000, WINDOW, T0 + step * 1_000);
        }
        assert_eq!(trail.samples(), &[(T0, T0 - 10_000)]);
    }

    #[test]
    fn it_reads_back_from_json() {
        let mut trail = Trail::default();
        trail.record(5, WINDOW, T0);
        let json = serde_json::to_string(&trail).expect("json");
        assert_eq!(json, format!("[[{T0},5]]"));
        assert_eq!(serde_json::from_str::<Trail>(&json).expect("back"), trail);
    }
}
