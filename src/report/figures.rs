//! The numbers of a report, from the event log's lines of one zone: counts, the wait's
//! distribution, the ETA each visitor was told against their real wait, and the same over time
//! in bins. Pure: no files, no clock.

use super::lines::{Logged, What};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Bin widths a report may use, ms: the narrowest that gives at most [`MAX_BINS`] bins.
const BIN_WIDTHS: [u64; 10] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000, 21_600_000, 86_400_000,
];

/// At most this many points over time.
pub const MAX_BINS: u64 = 120;

/// One stretch of time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bin {
    /// Its start, ms since the epoch.
    pub start_ms: u64,
    /// Newcomers who took a place.
    pub joined: u64,
    /// Admissions, every way.
    pub admitted: u64,
    /// Places the line passed while their holders were away.
    pub abandoned: u64,
    /// Passed visitors who came back and went in.
    pub came_back: u64,
    /// Sessions the origin ended.
    pub released: u64,
    /// Slots that ran out without anyone ending them.
    pub expired: u64,
    /// The longest line seen in it (the last one seen before, when no node logged one in it).
    pub waiting: Option<u64>,
    /// The most occupied slots seen in it (carried like `waiting`).
    pub active: Option<u64>,
    /// The admissions' waits, ms (direct ones wait nothing and are left out).
    pub waits_ms: Vec<u64>,
}

/// Everything a report shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// The zone.
    pub zone: String,
    /// The stretch reported, ms since the epoch: `[from_ms, to_ms)`.
    pub from_ms: u64,
    /// Its end.
    pub to_ms: u64,
    /// The width of each bin, ms.
    pub bin_ms: u64,
    /// The bins, in order, covering the stretch.
    pub bins: Vec<Bin>,
    /// Newcomers who took a place.
    pub joined: u64,
    /// Admissions by `via`.
    pub admitted: BTreeMap<String, u64>,
    /// Places passed while their holders were away.
    pub abandoned: u64,
    /// Of those, how many came back and went in.
    pub came_back: u64,
    /// Sessions the origin ended.
    pub released: u64,
    /// Slots that expired.
    pub expired: u64,
    /// Every wait in line, ms, sorted (admissions `queue` and `priority`).
    pub waits_ms: Vec<u64>,
    /// For every visitor whose join and admission are both in the stretch: the ETA they were
    /// told (s) and the wait they had (ms).
    pub eta_vs_wait: Vec<(u64, u64)>,
    /// The longest line any node logged.
    pub peak_waiting: u64,
}

impl Figures {
    /// Admissions, every way.
    pub fn admitted_total(&self) -> u64 {
        self.admitted.values().sum()
    }

    /// The `p`-th percentile of the waits (nearest rank), ms.
    pub fn wait_percentile(&self, p: f64) -> Option<u64> {
        percentile(&self.waits_ms, p)
    }
}

/// The `p`-th percentile (0 < p ≤ 100) of `sorted` by nearest rank: the smallest value with at
/// least p % of the values at or below it.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The bin width for a stretch of `span_ms`.
pub fn bin_width(span_ms: u64) -> u64 {
    BIN_WIDTHS
        .iter()
        .copied()
        .find(|w| span_ms.div_ceil(*w) <= MAX_BINS)
        .unwrap_or(BIN_WIDTHS[BIN_WIDTHS.len() - 1])
}

/// The figures of `zone` over `[from_ms, to_ms)` from `events` (in any order; others' zones
/// and times are left out). `None` when the zone has no event in the stretch.
pub fn compute(zone: &str, events: &[Logged], from_ms: u64, to_ms: u64) -> Option<Figures> {
    let mut mine: Vec<&Logged> = events
        .iter()
        .filter(|e| e.zone == zone && e.at_ms >= from_ms && e.at_ms < to_ms)
        .collect();
    if mine.is_empty() {
        return None;
    }
    mine.sort_by_key(|e| e.at_ms);
    // Without bounds given, the stretch is the events' own.
    let from_ms = from_ms.max(mine[0].at_ms);
    let to_ms = to_ms.min(mine[mine.len() - 1].at_ms + 1);
    let bin_ms = bin_width(to_ms - from_ms);
    let first = from_ms - from_ms % bin_ms;
    let count = (to_ms - first).div_ceil(bin_ms);
    let mut bins: Vec<Bin> = (0..count)
        .map(|i| Bin {
            start_ms: first + i * bin_ms,
            ..Bin::default()
        })
        .collect();

    let mut figures = Figures {
        zone: zone.to_string(),
        from_ms,
        to_ms,
        bin_ms,
        ..Figures::default()
    };
    let mut etas: HashMap<&str, u64> = HashMap::new();
    let mut away: HashSet<&str> = HashSet::new();
    for event in &mine {
        let bin = &mut bins[((event.at_ms - first) / bin_ms) as usize];
        match &event.what {
            What::Joined { visitor, eta_s } => {
                figures.joined += 1;
                bin.joined += 1;
                etas.insert(visitor, *eta_s);
            }
            What::Admitted {
                visitor,
                waited_ms,
                via,
            } => {
                *figures.admitted.entry(via.clone()).or_default() += 1;
                bin.admitted += 1;
                if via != "direct" {
                    figures.waits_ms.push(*waited_ms);
                    bin.waits_ms.push(*waited_ms);
                }
                if let Some(eta_s) = etas.remove(visitor.as_str()) {
                    figures.eta_vs_wait.push((eta_s, *waited_ms));
                }
                if away.remove(visitor.as_str()) {
                    figures.came_back += 1;
                    bin.came_back += 1;
                }
            }
            What::Abandoned { visitor } => {
                figures.abandoned += 1;
                bin.abandoned += 1;
                away.insert(visitor);
            }
            // Counted at the admission that follows (a `returned` line comes first).
            What::Returned { .. } => {}
            What::Released { .. } => {
                figures.released += 1;
                bin.released += 1;
            }
            What::Expired { slots } => {
                figures.expired += slots;
                bin.expired += slots;
            }
            What::Queue { waiting, active } => {
                figures.peak_waiting = figures.peak_waiting.max(*waiting);
                bin.waiting = Some(bin.waiting.unwrap_or(0).max(*waiting));
                bin.active = Some(bin.active.unwrap_or(0).max(*active));
            }
            What::Other => {}
        }
    }
    // A bin no node logged the line in shows the last length seen.
    let (mut waiting, mut active) = (None, None);
    for bin in &mut bins {
        waiting = bin.waiting.or(waiting);
        active = bin.active.or(active);
        bin.waiting = waiting;
        bin.active = active;
        bin.waits_ms.sort_unstable();
    }
    figures.waits_ms.sort_unstable();
    figures.bins = bins;
    Some(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at_ms: u64, what: What) -> Logged {
        Logged {
            at_ms,
            zone: "checkout".into(),
            what,
        }
    }

    fn admitted(visitor: &str, waited_ms: u64, via: &str) -> What {
        What::Admitted {
            visitor: visitor.into(),
            waited_ms,
            via: via.into(),
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&values, 50.0), Some(5));
        assert_eq!(percentile(&values, 90.0), Some(9));
        assert_eq!(percentile(&values, 99.0), Some(10));
        assert_eq!(percentile(&values, 100.0), Some(10));
        assert_eq!(percentile(&values, 0.0), Some(1));
        assert_eq!(percentile(&[7], 50.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn bins_are_the_narrowest_giving_at_most_120() {
        assert_eq!(bin_width(0), 1_000);
        assert_eq!(bin_width(120_000), 1_000);
        assert_eq!(bin_width(120_001), 5_000);
        assert_eq!(bin_width(3_600_000), 30_000);
        assert_eq!(bin_width(2 * 3_600_000), 60_000);
        assert_eq!(bin_width(u64::MAX), 86_400_000);
    }

    #[test]
    fn a_small_sale_adds_up() {
        let t = 1_800_000_000_000;
        let events = vec![
            at(
                t,
                What::Joined {
                    visitor: "a".into(),
                    eta_s: 10,
                },
            ),
            at(t + 1, admitted("d", 0, "direct")),
            at(
                t + 2,
                What::Joined {
                    visitor: "b".into(),
                    eta_s: 20,
                },
            ),
            at(
                t + 3,
                What::Joined {
                    visitor: "c".into(),
                    eta_s: 30,
                },
            ),
            at(
                t + 500,
                What::Queue {
                    waiting: 3,
                    active: 1,
                },
            ),
            at(t + 12_000, admitted("a", 12_000, "queue")),
            at(
                t + 13_000,
                What::Abandoned {
                    visitor: "b".into(),
                },
            ),
            at(t + 14_000, admitted("c", 13_998, "queue")),
            at(
                t + 20_000,
                What::Returned {
                    visitor: "b".into(),
                },
            ),
            at(t + 20_100, admitted("b", 20_098, "queue")),
            at(
                t + 21_000,
                What::Released {
                    visitor: "a".into(),
                },
            ),
            at(t + 25_000, What::Expired { slots: 2 }),
            // Another zone, and a line outside the stretch.
            Logged {
                zone: "other".into(),
                ..at(t + 5, admitted("x", 1, "queue"))
            },
            at(t + 99_000, admitted("late", 1, "queue")),
        ];
        let f = compute("checkout", &events, 0, t + 60_000).expect("events");
        assert_eq!((f.from_ms, f.to_ms), (t, t + 25_001));
        assert_eq!(f.bin_ms, 1_000);
        assert_eq!(f.bins.len(), 26);
        assert_eq!(f.joined, 3);
        assert_eq!(f.admitted_total(), 4);
        assert_eq!(f.admitted["queue"], 3);
        assert_eq!(f.admitted["direct"], 1);
        assert_eq!((f.abandoned, f.came_back), (1, 1));
        assert_eq!((f.released, f.expired), (1, 2));
        assert_eq!(f.waits_ms, vec![12_000, 13_998, 20_098]);
        assert_eq!(f.wait_percentile(50.0), Some(13_998));
        assert_eq!(
            f.eta_vs_wait,
            vec![(10, 12_000), (30, 13_998), (20, 20_098)]
        );
        assert_eq!(f.peak_waiting, 3);
        // The line's length carries over bins without a sample.
        assert_eq!(f.bins[0].waiting, Some(3));
        assert_eq!(f.bins[25].waiting, Some(3));
        assert_eq!(f.bins[20].came_back, 1);
        let binned: u64 = f.bins.iter().map(|b| b.admitted).sum();
        assert_eq!(binned, 4);
        assert!(compute("checkout", &events, t + 26_000, t + 90_000).is_none());
        assert!(compute("nowhere", &events, 0, u64::MAX).is_none());
    }
}
