//! The ETA: the zone's admission rate as the exchanger observes it, smoothed, and the wait it
//! implies for a visitor some places from the front, shown as a range. Pure: the exchanger's
//! tick feeds [`ObservedRate::observe`] with its clock's `now_ms`.
//!
//! Why it is built this way (measured by `tests/eta.rs`; figures in `docs/design-notes.md`):
//! - Only ticks that admitted all they were allowed while people still waited are a measure of
//!   the zone's pace. A tick that emptied the queue measured demand, and one in a paused zone
//!   with free slots the operator; both are left out.
//! - The smoothing is by time (an exponential moving average whose weights decay with elapsed
//!   milliseconds, not with ticks), and corrected for its start: until its memory is full it is
//!   the average of what was seen, not dragged towards the zero it started from.
//! - Its memory follows the zone's turnover (capacity / rate: how long the bucket takes to empty
//!   and refill). When capacity limits, slots free up as sessions end, and sessions of similar
//!   length make admissions come in waves one session apart; an average over a fixed 10 s
//!   followed each wave up and down (43 % median error with 55-65 s sessions). Two turnovers
//!   smooth the waves out and still follow a zone whose sessions get longer within a few.
//! - The range widens while less than a minute of pace was seen, by the pace's noise over the
//!   wait, and, until a session TTL and a couple of turnovers were seen, at its slow end towards
//!   the pace of sessions that last their full TTL. It never promises a wait shorter than the
//!   configured rate allows.

use super::Limits;
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// The smoothing's memory, in turnovers of the zone's capacity.
const MEMORY_TURNOVERS: f64 = 2.0;
/// Bounds of the smoothing's memory, in ms: at least a minute, so a burst does not dominate;
/// at most 15 minutes, so a zone whose pace changed is followed within a quarter of an hour.
const MEMORY_MS: (f64, f64) = (60_000.0, 900_000.0);
/// Half-width of the range (relative to the rate) once the estimate is mature and steady.
const SPREAD_BASE: f64 = 0.15;
/// Added to the half-width in proportion to how little of a minute's pace was seen.
const SPREAD_YOUNG: f64 = 1.0;
/// Multiplies the pace's relative noise (one standard deviation over the wait) in the
/// half-width.
const SPREAD_NOISE: f64 = 1.0;

/// Estimated wait, as a range in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Eta {
    /// Best guess.
    pub seconds: u64,
    /// Lower end of the range.
    pub low: u64,
    /// Upper end of the range.
    pub high: u64,
}

/// What the exchanger has learnt about a zone's admission pace. Part of the zone state,
/// flattened into it: the first and last fields keep the keys they had there, and the others
/// default, so zone states written before them still load, and older nodes read newer ones.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ObservedRate {
    /// Smoothed admissions per second while people waited (0: nothing observed yet).
    #[serde(rename = "observed_per_sec")]
    pub per_sec: f64,
    /// How full the smoothing's memory is, 0 to 1: the share of the average's weight that real
    /// observations carry.
    #[serde(default, rename = "observed_weight")]
    pub weight: f64,
    /// Smoothed variance of the per-window rate around `per_sec`, in (admissions/s)².
    #[serde(default, rename = "observed_variance")]
    pub variance: f64,
    /// How long the pace has been observed, in ms (windows that measured it).
    #[serde(default, rename = "observed_ms")]
    pub seen_ms: u64,
    /// Start of the window being measured (ms), and admissions in it.
    #[serde(default, rename = "rate_window")]
    pub window: (u64, u64),
}

impl ObservedRate {
    /// Nothing observed yet; the first window starts at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        ObservedRate {
            window: (now_ms, 0),
            ..ObservedRate::default()
        }
    }

    /// Folds a tick that admitted `admitted` into the estimate. `constrained`: the tick
    /// admitted all that capacity and the rate allowed and people were still waiting, so it
    /// measured the zone's pace. Windows are at least a second long, so ticks run on demand do
    /// not make the rate jump; a window that ends with an unconstrained tick is dropped.
    pub fn observe(&mut self, admitted: u64, constrained: bool, limits: &Limits, now_ms: u64) {
        let (start, count) = self.window;
        let count = count + admitted;
        let elapsed_ms = now_ms.saturating_sub(start);
        if elapsed_ms < 1_000 {
            self.window = (start, count);
            return;
        }
        self.window = (now_ms, 0);
        if !constrained {
            return;
        }
        self.seen_ms = self.seen_ms.saturating_add(elapsed_ms);
        let rate = count as f64 * 1_000.0 / elapsed_ms as f64;
        let decay = (-(elapsed_ms as f64) / self.memory_ms(limits)).exp();
        self.weight = self.weight * decay + (1.0 - decay);
        // The gain of a bias-corrected moving average: 1 for the first window, then down to
        // (1 - decay) once the memory is full.
        let gain = ((1.0 - decay) / self.weight).min(1.0);
        let diff = rate - self.per_sec;
        self.per_sec += gain * diff;
        self.variance = (1.0 - gain) * (self.variance + gain * diff * diff);
    }

    /// How long the smoothing remembers, in ms: a couple of turnovers of the zone's capacity
    /// at the pace seen so far (the configured one before anything was seen), within
    /// [`MEMORY_MS`].
    fn memory_ms(&self, limits: &Limits) -> f64 {
        let pace = match self.per_sec > 0.0 {
            true => self.per_sec,
            false => limits.admit_per_minute as f64 / 60.0,
        };
        let turnover_ms = limits.capacity as f64 / pace.max(1e-3) * 1_000.0;
        (MEMORY_TURNOVERS * turnover_ms).clamp(MEMORY_MS.0, MEMORY_MS.1)
    }

    /// How much of the estimate is still guesswork, 0 to 1, on two scales. `evidence`: how
    /// little of the last minute's worth of pace was seen (the same in a zone that remembers
    /// 15 minutes as in one that remembers one). `sessions`: how much of the memory (a couple
    /// of turnovers) or of one session TTL has not been seen yet: a capacity-limited zone shows
    /// its pace only once sessions end, and the slots of visitors who leave without a release
    /// come back only at the TTL.
    fn youth(&self, limits: &Limits) -> (f64, f64) {
        let empty = 1.0 - self.weight.clamp(0.0, 1.0);
        let minutes = self.memory_ms(limits) / 60_000.0;
        let ttl_ms = limits.session_ttl.as_millis().max(1) as f64;
        let short_of_ttl = 1.0 - (self.seen_ms as f64 / ttl_ms).min(1.0);
        (empty.powf(minutes), empty.max(short_of_ttl))
    }
}

/// The wait for someone `ahead` places from the front, given what was observed of the zone's
/// pace and its configured limits.
///
/// The best guess divides the places by the observed rate, capped by the configured one (a
/// lowered `admit_per_minute` applies at once). Before anything was observed it assumes the
/// configured rate, and the range reaches to what the zone would manage if every session
/// lasted its full TTL, since capacity may turn out to be the tighter limit.
pub fn eta(ahead: u64, observed: &ObservedRate, limits: &Limits) -> Eta {
    let configured = limits.admit_per_minute as f64 / 60.0;
    let places = ahead as f64 + 1.0;
    let ttl_s = limits.session_ttl.as_secs_f64().max(1.0);
    let by_ttl = (limits.capacity as f64 / ttl_s).min(configured);
    if observed.per_sec <= 0.01 {
        return Eta {
            seconds: (places / configured).ceil() as u64,
            low: (places / configured).floor() as u64,
            high: (places / by_ttl).ceil() as u64,
        };
    }
    let rate = observed.per_sec.min(configured);
    let seconds = places / rate;
    // The pace's noise averages out over the wait: one standard deviation of the mean rate
    // over `seconds` one-second windows, relative to the rate.
    let noise = observed.variance.max(0.0).sqrt() / rate / seconds.max(1.0).sqrt();
    let (evidence, sessions) = observed.youth(limits);
    let spread = 1.0 + SPREAD_BASE + SPREAD_YOUNG * evidence + SPREAD_NOISE * noise;
    let fastest = (rate * spread).min(configured);
    // Until sessions have had time to end, the slow end also reaches towards the pace of
    // sessions that last their full TTL: a capacity-limited zone first fills its bucket at the
    // configured rate, and how fast slots come back shows only as sessions end.
    let slowest = rate / spread;
    let slowest = slowest.min(by_ttl.powf(sessions) * slowest.powf(1.0 - sessions));
    Eta {
        seconds: seconds.ceil() as u64,
        low: (places / fastest).floor() as u64,
        high: (places / slowest).ceil() as u64,
    }
}
