//! The admission rate: a token bucket refilled at `admit_per_minute`, holding at most `burst`.
//! In any window of W ms it lets through at most `burst + admit_per_minute * W / 60 000`.

use super::Limits;
use serde::{Deserialize, Serialize};

/// Rate allowance, in thousandths of an admission so that slow rates refill smoothly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateBucket {
    milli_tokens: u64,
    updated_ms: u64,
}

impl RateBucket {
    /// A full bucket at `now_ms`.
    pub fn full(limits: &Limits, now_ms: u64) -> Self {
        RateBucket {
            milli_tokens: limits.burst as u64 * 1_000,
            updated_ms: now_ms,
        }
    }

    /// Adds what accrued since the last update (a clock going backwards adds nothing).
    pub fn refill(&mut self, limits: &Limits, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.updated_ms) as u128;
        // admit_per_minute / 60 000 ms, in milli-tokens: elapsed * apm / 60.
        let accrued = elapsed * limits.admit_per_minute as u128 / 60;
        let cap = limits.burst as u64 * 1_000;
        self.milli_tokens = (self.milli_tokens as u128 + accrued).min(cap as u128) as u64;
        if now_ms > self.updated_ms {
            // Keep the remainder of the division: advance time only by what was converted.
            let used_ms = if limits.admit_per_minute == 0 || self.milli_tokens == cap {
                elapsed
            } else {
                accrued * 60 / limits.admit_per_minute as u128
            };
            self.updated_ms += used_ms as u64;
        }
    }

    /// Whole admissions available now (after a refill).
    pub fn available(&self) -> u32 {
        (self.milli_tokens / 1_000).min(u32::MAX as u64) as u32
    }

    /// Spends `n` admissions; the caller checked `available`.
    pub fn take(&mut self, n: u32) {
        self.milli_tokens = self.milli_tokens.saturating_sub(n as u64 * 1_000);
    }
}
