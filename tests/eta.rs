//! How honest is the ETA? A deterministic simulation with the real exchanger and the embedded
//! store on a manual clock, stepped one tick (1 s) at a time: a spike of a few thousand visitors
//! in the first seconds plus a trickle of later arrivals, drained steadily. A sample of visitors
//! asks for their status every second (position and ETA, computed as `Room::waiting_status`
//! computes them: `store.ahead` from the cached cursor to the visitor's millisecond, then
//! `admission::eta` from the cached state); the simulation then compares every prediction with
//! the wait that really followed.
//!
//! Asserted per scenario: the median absolute relative error of the best guess, over predictions
//! made after the first minute whose real remaining wait was at least 10 s (shorter waits are
//! dominated by the 1 s tick and would make a one-second miss look like 50 %), is at most 20 %;
//! that at least 80 % of the real waits fall inside the range shown; and that no live visitor's
//! position ever goes up (checked at every status, including the one shown on joining). The
//! figures are printed: `cargo test --test eta -- --nocapture`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::Duration;
use usher::admission::{bucket_of, eta, Eta, Limits, QueueKey, VisitorId, ZoneState};
use usher::clock::ManualClock;
use usher::config::ZoneConfig;
use usher::exchanger::{Exchanger, Via};
use usher::metrics::Metrics;
use usher::store::embedded::EmbeddedStore;
use usher::store::Store;
use usher::zone::{LiveZones, ZoneTable};

const T0: u64 = 1_800_000_000_000;
const ZONE: &str = "checkout";
/// Predictions made earlier than this after the spike are not scored (the issue's "after the
/// first minute": the rate estimate has had a minute to form).
const WARM_UP_MS: u64 = 60_000;
/// Predictions whose real remaining wait was shorter than this are not scored.
const MIN_ACTUAL_S: f64 = 10.0;
/// How often a waiting page checks in (the zone's `refresh_interval` default).
const HEARTBEAT_S: u64 = 5;

/// What visitors do once admitted.
#[derive(Clone, Copy)]
struct Sessions {
    /// They arrive to claim their slot within this many ms of the tick that admitted them.
    claim_within_ms: u64,
    /// Most release their session (origin's release header) after a hold drawn from this
    /// range, in seconds...
    hold_s: (u64, u64),
    /// ...and this share leave silently, so their slot lapses at the session TTL.
    silent: f64,
}

struct Scenario {
    name: String,
    /// The `[zones.checkout]` lines.
    zone: String,
    /// Visitors arriving in the first `spike_ms`.
    spike: usize,
    spike_ms: u64,
    /// Later arrivals: one every `trickle_every_ms` until `trickle_until_ms`.
    trickle_every_ms: u64,
    trickle_until_ms: u64,
    sessions: Sessions,
    /// Every `sample_every`-th visitor (in queue order) asks for their status every second.
    sample_every: usize,
    seed: u64,
}

/// One visitor of the simulation.
struct Visitor {
    key: QueueKey,
    sampled: bool,
    /// When the cursor passed them.
    admitted_ms: Option<u64>,
    /// The last position they were shown (people ahead).
    last_ahead: Option<u64>,
    /// (when, what they were shown) for every status they asked for while waiting.
    predictions: Vec<(u64, Eta)>,
}

/// What an admitted visitor does next.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Act {
    /// Arrives and claims the reserved slot.
    Claim,
    /// Is done: the origin releases the session.
    Release,
}

/// `Act` of visitor `.2` due at ms `.0`; ordered by time first.
type Event = (u64, Act, usize);

/// What one scenario measured.
struct Figures {
    visitors: usize,
    sampled: usize,
    /// Predictions made after the first minute (the ones the 20 % bound is about).
    scored: Summary,
    /// Predictions made in the first minute, for the record.
    first_minute: Summary,
    drained_s: u64,
    position_rises: usize,
}

/// How a set of predictions fared.
struct Summary {
    count: usize,
    /// Median of |eta - actual| / actual.
    median_error: f64,
    p90_error: f64,
    /// Median of (eta - actual) / actual: positive means the ETA ran long.
    median_bias: f64,
    /// Share of real waits inside the range shown.
    coverage: f64,
    /// Median of (high - low) / eta.
    median_width: f64,
}

fn zone_config(zone: &str) -> ZoneConfig {
    let text = format!(
        "[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n\
         [tokens]\nsigning_key = {{ kid = \"k\", env = \"USHER_ETA_SIM_UNUSED\" }}\n\
         [zones.{ZONE}]\npaths = [\"/checkout\"]\nmode = \"queue_all\"\n{zone}\n"
    );
    let config = usher::config::parse(&text, std::path::Path::new(".")).expect("valid config");
    config.zones.into_iter().next().expect("one zone")
}

/// Arrivals in queue order: the spike at random milliseconds (so several share one, as they do
/// in a real spike), then the trickle. Ids are random, as `VisitorId::random` makes them.
fn arrivals(s: &Scenario, rng: &mut StdRng) -> Vec<(u64, VisitorId)> {
    let mut at: Vec<u64> = (0..s.spike)
        .map(|_| T0 + rng.gen_range(0..s.spike_ms))
        .collect();
    at.extend(
        (s.spike_ms..s.trickle_until_ms)
            .step_by(s.trickle_every_ms as usize)
            .map(|ms| T0 + ms),
    );
    // Stable: visitors of the same millisecond keep their arrival order.
    at.sort();
    at.into_iter()
        .map(|ms| (ms, VisitorId(rng.gen())))
        .collect()
}

async fn simulate(s: &Scenario) -> Figures {
    let mut rng = StdRng::seed_from_u64(s.seed);
    let zone = zone_config(&s.zone);
    let limits = zone.limits;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path(), T0).expect("store"));
    let clock = Arc::new(ManualClock::new(T0));
    let exchanger = Exchanger::new(
        store.clone(),
        Arc::new(LiveZones::new(ZoneTable::of(
            std::slice::from_ref(&zone),
            "usher",
            None,
        ))),
        Duration::ZERO,
        clock.clone(),
        Metrics::new(),
    );

    let arriving = arrivals(s, &mut rng);
    let mut visitors: Vec<Visitor> = Vec::with_capacity(arriving.len());
    let mut arrived = 0; // arrivals so far (index into `arriving`)
    let mut first_waiting = 0; // index of the first visitor the cursor has not passed
    let mut events: std::collections::BinaryHeap<std::cmp::Reverse<Event>> = Default::default();
    // What a node's cache holds: the last state a tick committed.
    let mut state: Option<ZoneState> = None;
    let mut position_rises = 0;

    let mut tick = 0u64;
    while first_waiting < arriving.len() || arrived < arriving.len() {
        tick += 1;
        assert!(tick < 6 * 3_600, "{}: the queue never drained", s.name);
        let now = T0 + tick * 1_000;

        // Arrivals since the last tick join; a sampled one is shown a position at once, as the
        // waiting page does.
        while arrived < arriving.len() && arriving[arrived].0 < now {
            let (at, visitor) = arriving[arrived];
            let key = QueueKey { rank: at, visitor };
            store.touch(ZONE, key, at).await.expect("join");
            let sampled = arrived % s.sample_every == 0;
            let mut last_ahead = None;
            if sampled {
                last_ahead = Some(shown(&store, state.as_ref(), key, &limits).await.0);
            }
            visitors.push(Visitor {
                key,
                sampled,
                admitted_ms: None,
                last_ahead,
                predictions: Vec::new(),
            });
            arrived += 1;
        }
        // Waiting pages check in.
        for (i, v) in visitors.iter().enumerate().skip(first_waiting) {
            if v.admitted_ms.is_none() && (i as u64 + tick) % HEARTBEAT_S == 0 {
                store.touch(ZONE, v.key, now).await.expect("heartbeat");
            }
        }
        // Admitted visitors claim and, later, leave.
        while events.peek().is_some_and(|e| e.0 .0 < now) {
            let Some(std::cmp::Reverse((at, act, i))) = events.pop() else {
                break;
            };
            match act {
                Act::Claim => {
                    let to = bucket_of(at + limits.session_ttl.as_millis() as u64);
                    store
                        .claim(ZONE, visitors[i].key.visitor, to, at)
                        .await
                        .expect("claim");
                    if !rng.gen_bool(s.sessions.silent) {
                        let hold = rng.gen_range(s.sessions.hold_s.0..=s.sessions.hold_s.1);
                        events.push(std::cmp::Reverse((at + hold * 1_000, Act::Release, i)));
                    }
                }
                Act::Release => {
                    store
                        .release(ZONE, visitors[i].key.visitor, at)
                        .await
                        .expect("release");
                }
            }
        }

        clock.set(now);
        let report = exchanger
            .tick_zone(&zone, Via::Schedule)
            .await
            .expect("tick");
        if let Some(committed) = report.committed {
            state = Some((*committed).clone());
        }
        let Some(state) = state.as_ref() else {
            continue;
        };

        // Who the cursor passed. `visitors` is in arrival order: queue order, except that the
        // visitors of one millisecond are ordered by id in the queue, so a millisecond the
        // cursor stopped in is checked key by key.
        for (i, v) in visitors.iter_mut().enumerate().skip(first_waiting) {
            if v.key.rank > state.cursor.rank {
                break;
            }
            if v.admitted_ms.is_none() && v.key <= state.cursor {
                v.admitted_ms = Some(now);
                let claim = now + rng.gen_range(0..s.sessions.claim_within_ms);
                events.push(std::cmp::Reverse((claim, Act::Claim, i)));
            }
        }
        while first_waiting < visitors.len() && visitors[first_waiting].admitted_ms.is_some() {
            first_waiting += 1;
        }

        // Sampled visitors ask for their status, as `Room::waiting_status` answers it.
        for v in visitors.iter_mut().skip(first_waiting) {
            if !v.sampled || v.admitted_ms.is_some() {
                continue;
            }
            let (ahead, eta) = shown(&store, Some(state), v.key, &limits).await;
            if v.last_ahead.is_some_and(|last| ahead > last) {
                position_rises += 1;
            }
            v.last_ahead = Some(ahead);
            v.predictions.push((now, eta));
        }
    }

    let mut scored = Score::default();
    let mut first_minute = Score::default();
    for v in visitors.iter().filter(|v| v.sampled) {
        let admitted = v.admitted_ms.expect("everyone gets in");
        for (at, e) in &v.predictions {
            let actual = (admitted - at) as f64 / 1_000.0;
            if actual < MIN_ACTUAL_S {
                continue;
            }
            match at - T0 < WARM_UP_MS {
                true => first_minute.add(e, actual),
                false => scored.add(e, actual),
            }
        }
    }
    assert!(
        scored.errors.len() > 1_000,
        "{}: too few scored predictions ({})",
        s.name,
        scored.errors.len()
    );
    Figures {
        visitors: visitors.len(),
        sampled: visitors.iter().filter(|v| v.sampled).count(),
        scored: scored.summary(),
        first_minute: first_minute.summary(),
        drained_s: tick,
        position_rises,
    }
}

/// Predictions set against the waits that followed.
#[derive(Default)]
struct Score {
    /// (eta - actual) / actual.
    errors: Vec<f64>,
    /// Real waits inside [low, high].
    inside: usize,
    /// (high - low) / best guess.
    widths: Vec<f64>,
}

impl Score {
    fn add(&mut self, e: &Eta, actual: f64) {
        self.errors.push((e.seconds as f64 - actual) / actual);
        if (e.low as f64) <= actual && actual <= e.high as f64 {
            self.inside += 1;
        }
        self.widths
            .push(e.high.saturating_sub(e.low) as f64 / e.seconds.max(1) as f64);
    }

    fn summary(mut self) -> Summary {
        let mut abs: Vec<f64> = self.errors.iter().map(|e| e.abs()).collect();
        Summary {
            count: self.errors.len(),
            median_error: quantile(&mut abs, 0.5),
            p90_error: quantile(&mut abs, 0.9),
            median_bias: quantile(&mut self.errors, 0.5),
            coverage: self.inside as f64 / self.errors.len().max(1) as f64,
            median_width: quantile(&mut self.widths, 0.5),
        }
    }
}

/// What a waiting visitor is shown, as `Room::waiting_status` computes it from a node's cached
/// state: the people ahead, and the ETA.
async fn shown(
    store: &EmbeddedStore,
    cached: Option<&ZoneState>,
    key: QueueKey,
    limits: &Limits,
) -> (u64, Eta) {
    let cursor = cached.map(|s| s.cursor).unwrap_or_default();
    let ahead = store
        .ahead(ZONE, cursor, key.start_of_millisecond())
        .await
        .expect("ahead");
    let observed = cached.map(|s| s.observed).unwrap_or_default();
    (ahead, eta(ahead, &observed, limits))
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() - 1) as f64 * q).round() as usize]
}

fn report(s: &Scenario, f: &Figures) {
    let line = |what: &str, m: &Summary| {
        format!(
            "{what}: {} predictions, median |error| {:.1} %, p90 {:.1} %, median bias {:+.1} %, \
             real wait inside the range {:.1} % (median width {:.0} % of the ETA)",
            m.count,
            m.median_error * 100.0,
            m.p90_error * 100.0,
            m.median_bias * 100.0,
            m.coverage * 100.0,
            m.median_width * 100.0,
        )
    };
    eprintln!(
        "eta {}: {} visitors drained in {} s, {} sampled, position rises {}\n  {}\n  {}",
        s.name,
        f.visitors,
        f.drained_s,
        f.sampled,
        f.position_rises,
        line("after the first minute", &f.scored),
        line("first minute (not bounded)", &f.first_minute),
    );
}

fn check(s: &Scenario, f: &Figures) {
    report(s, f);
    assert_eq!(f.position_rises, 0, "{}: a position went up", s.name);
    assert!(
        f.scored.median_error <= 0.20,
        "{}: median ETA error {:.1} % is above 20 %",
        s.name,
        f.scored.median_error * 100.0
    );
    // The range is the honest part of the promise: most real waits fall inside it.
    assert!(
        f.scored.coverage >= 0.80,
        "{}: only {:.1} % of real waits inside the range",
        s.name,
        f.scored.coverage * 100.0
    );
}

/// Other zones, for a look at how the estimate fares beyond the asserted scenarios (the table in
/// `docs/design-notes.md`). Each `;`-separated scenario is `key=value` words over the spike
/// scenario: `capacity`, `admit_per_minute`, `session_ttl`, `spike`, `hold` (`50-70` s),
/// `silent`, `seed`. For example:
///
/// `ETA_SCENARIOS="capacity=50 hold=55-65; capacity=1000 session_ttl=10m hold=100-200" \
///  cargo test --test eta -- --ignored --nocapture`
#[tokio::test]
#[ignore = "exploration: prints figures for the zones in ETA_SCENARIOS, asserts nothing"]
async fn eta_in_other_zones() {
    let specs = std::env::var("ETA_SCENARIOS")
        .expect("ETA_SCENARIOS names the zones to explore (see this test's doc comment)");
    for spec in specs.split(';').filter(|s| !s.trim().is_empty()) {
        let mut zone = [
            ("capacity", "200"),
            ("admit_per_minute", "6000"),
            ("session_ttl", "2m"),
        ]
        .map(|(k, v)| (k, v.to_string()));
        let mut s = Scenario {
            name: spec.trim().to_string(),
            seed: 7,
            ..spike()
        };
        for word in spec.split_whitespace() {
            let (key, value) = word.split_once('=').expect("key=value");
            match key {
                "spike" => s.spike = value.parse().expect("spike: visitors"),
                "silent" => s.sessions.silent = value.parse().expect("silent: a share"),
                "seed" => s.seed = value.parse().expect("seed: a number"),
                "hold" => {
                    let (a, b) = value.split_once('-').expect("hold: from-to");
                    s.sessions.hold_s = (a.parse().expect("hold"), b.parse().expect("hold"));
                }
                _ => {
                    let slot = zone.iter_mut().find(|(k, _)| *k == key);
                    slot.expect("a known key").1 = value.to_string();
                }
            }
        }
        let [(_, capacity), (_, rate), (_, ttl)] = &zone;
        s.zone =
            format!("capacity = {capacity}\nadmit_per_minute = {rate}\nsession_ttl = \"{ttl}\"\n");
        report(&s, &simulate(&s).await);
    }
}

/// 3,000 visitors in the first 5 s, then one every 3 s for ten minutes; every 15th asks for
/// their status every second.
fn spike() -> Scenario {
    Scenario {
        name: String::new(),
        zone: String::new(),
        spike: 3_000,
        spike_ms: 5_000,
        trickle_every_ms: 3_000,
        trickle_until_ms: 600_000,
        sessions: Sessions {
            claim_within_ms: 3_000,
            hold_s: (30, 90),
            silent: 0.2,
        },
        sample_every: 15,
        seed: 0,
    }
}

/// The rate limits: 5 admissions a second, capacity never in the way.
#[tokio::test]
async fn eta_is_within_20_percent_when_the_rate_limits() {
    let s = Scenario {
        name: "rate-limited".into(),
        zone: "capacity = 10000\nadmit_per_minute = 300\nsession_ttl = \"2m\"\n".into(),
        seed: 1,
        ..spike()
    };
    check(&s, &simulate(&s).await);
}

/// Capacity limits: 200 slots and sessions of about a minute (50 to 70 s; a tenth leave
/// silently and their slot lapses at the 2 minute TTL), so about 3 admissions a second against
/// a configured 100. Slots come back in waves a session apart.
#[tokio::test]
async fn eta_is_within_20_percent_when_capacity_limits() {
    let s = Scenario {
        name: "capacity-limited".into(),
        zone: "capacity = 200\nadmit_per_minute = 6000\nsession_ttl = \"2m\"\n".into(),
        sessions: Sessions {
            claim_within_ms: 3_000,
            hold_s: (50, 70),
            silent: 0.1,
        },
        seed: 2,
        ..spike()
    };
    check(&s, &simulate(&s).await);
}

/// Both limit in turn: 200 slots, sessions of 55 to 65 s (about 3.3 a second) and 5 a second
/// configured, so waves of returning slots are cut to the rate and the gaps between them are
/// capacity's.
#[tokio::test]
async fn eta_is_within_20_percent_when_capacity_and_rate_take_turns() {
    let s = Scenario {
        name: "capacity and rate".into(),
        zone: "capacity = 200\nadmit_per_minute = 300\nsession_ttl = \"2m\"\n".into(),
        sessions: Sessions {
            claim_within_ms: 3_000,
            hold_s: (55, 65),
            silent: 0.0,
        },
        seed: 3,
        ..spike()
    };
    check(&s, &simulate(&s).await);
}
