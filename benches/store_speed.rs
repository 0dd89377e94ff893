//! Store speed: join throughput and exchanger tick time, on the embedded store and (with
//! `USHER_CQL=host:port`, a CQL server such as the Cassandra node `scripts/cassandra.sh` starts)
//! on the CQL store, side by side in one run.
//!
//! - `join`: what a newcomer costs the store: one queue write (`touch` of a new key).
//! - `join+position`: a newcomer's join and their position (`ahead`), as the waiting page asks.
//! - `tick`: one exchanger tick that admits `BUDGET` visitors from a queue of `QUEUED`, and from
//!   a queue of `QUEUED_BIG` (embedded only: a sale with a million waiting).
//! - `touch p99`: the latency of concurrent `touch` calls (existing visitors' heartbeats and
//!   newcomers, 8,000/s) on a store of their own with `QUEUED_BIG` queued, in windows without
//!   and with a concurrent `snapshot()` (embedded only): what a snapshot costs the requests it
//!   overlaps.
//!
//! ```sh
//! cargo bench --bench store_speed                       # embedded only
//! USHER_CQL=127.0.0.1:9042 cargo bench --bench store_speed
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use usher::admission::{QueueKey, VisitorId};
use usher::clock::{ManualClock, SharedClock};
use usher::config::{CqlConsistency, ScyllaConfig, SyncMode, ZoneConfig};
use usher::exchanger::{Exchanger, Via};
use usher::metrics::Metrics;
use usher::store::cql::CqlStore;
use usher::store::embedded::EmbeddedStore;
use usher::store::Store;
use usher::zone::{LiveZones, ZoneTable};

/// Concurrent joiners: a busy node has many requests in flight at once.
const CONCURRENCY: usize = 128;
/// How long each throughput case runs.
const RUN: Duration = Duration::from_secs(5);
/// Queue length for the tick case.
const QUEUED: u64 = 10_000;
/// Queue length for the big cases (embedded only).
const QUEUED_BIG: u64 = 1_000_000;
/// Windows measured for the touch latency, each way.
const WINDOWS: usize = 5;
/// Concurrent touchers in the latency case, each sending one touch every `TOUCH_EVERY`.
const TOUCHERS: usize = 16;
const TOUCH_EVERY: Duration = Duration::from_millis(2);
/// Visitors each tick admits.
const BUDGET: u32 = 100;
/// Ticks measured.
const TICKS: usize = 30;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let clock = usher::clock::system();
    let dir = tempfile::tempdir().expect("tempdir");
    let embedded =
        Arc::new(EmbeddedStore::open(dir.path(), clock.now_ms()).expect("embedded store"));
    let mut stores: Vec<(&str, Arc<dyn Store>)> = vec![("embedded", embedded.clone())];
    if let Ok(contact) = std::env::var("USHER_CQL") {
        let settings = cql_settings(&contact);
        let store = runtime
            .block_on(CqlStore::connect(&settings, clock.clone()))
            .expect("connect to USHER_CQL");
        stores.push(("cql", Arc::new(store)));
    } else {
        eprintln!("USHER_CQL not set: the CQL store is skipped");
    }
    println!("| store | join/s | join+position/s | tick p50 | tick p99 |");
    println!("|---|---|---|---|---|");
    for (name, store) in stores {
        let joins = runtime.block_on(joins_per_second(&store, &clock, false));
        let with_position = runtime.block_on(joins_per_second(&store, &clock, true));
        let (p50, p99, _) = runtime.block_on(tick_times(store, &clock, "bench", QUEUED));
        println!(
            "| {name} | {joins:.0} | {with_position:.0} | {:.1} ms | {:.1} ms |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    let store: Arc<dyn Store> = embedded.clone();
    let (p50, p99, mean) = runtime.block_on(tick_times(store, &clock, "big", QUEUED_BIG));
    println!();
    println!("embedded, {QUEUED_BIG} queued:");
    println!(
        "- tick: mean {:.2} ms, p50 {:.2} ms, p99 {:.2} ms",
        ms(mean),
        ms(p50),
        ms(p99)
    );
    drop(embedded);
    let t = runtime.block_on(touch_latency(&clock));
    println!(
        "- touch p99 (max): {:.2} ms ({:.1} ms) without a snapshot, {:.2} ms ({:.1} ms) during \
         one; the snapshot took {:.0} ms",
        ms(t.quiet.0),
        ms(t.quiet.1),
        ms(t.snapshotting.0),
        ms(t.snapshotting.1),
        ms(t.snapshot)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn cql_settings(contact: &str) -> ScyllaConfig {
    ScyllaConfig {
        contact_points: vec![contact.to_string()],
        keyspace: format!("usher_bench_{:08x}", rand::random::<u32>()),
        replication_factor: 1,
        consistency: CqlConsistency::One,
        timeout: Duration::from_secs(10),
        shards: 16,
        queue_ttl: Duration::from_secs(3_600),
        sync: SyncMode::Outbox,
        feed_interval: Duration::from_millis(500),
        feed_safety: Duration::from_secs(2),
        join_settle: Duration::ZERO,
    }
}

/// Joins per second with `CONCURRENCY` joiners for `RUN`, into a zone of its own.
async fn joins_per_second(store: &Arc<dyn Store>, clock: &SharedClock, position: bool) -> f64 {
    let zone = format!("join{}", u8::from(position));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (store, clock, done, zone) =
                (store.clone(), clock.clone(), done.clone(), zone.clone());
            tokio::spawn(async move {
                while started.elapsed() < RUN {
                    let now = clock.now_ms();
                    let key = QueueKey {
                        rank: now,
                        visitor: VisitorId::random(),
                    };
                    store.touch(&zone, key, now).await.expect("join");
                    if position {
                        store
                            .ahead(&zone, QueueKey::default(), key)
                            .await
                            .expect("position");
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("joiner");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Fills `zone` with `queued` entries seen at `now`; returns their keys.
async fn fill(store: &dyn Store, zone: &str, queued: u64, now: u64) -> Vec<QueueKey> {
    let keys: Vec<QueueKey> = (0..queued)
        .map(|i| QueueKey {
            rank: now - queued + i,
            visitor: VisitorId::random(),
        })
        .collect();
    for chunk in keys.chunks(256) {
        let writes = chunk.iter().map(|k| store.touch(zone, *k, now));
        for w in futures::future::join_all(writes).await {
            w.expect("fill the queue");
        }
    }
    keys
}

/// p50, p99 and mean of `TICKS` ticks, each admitting `BUDGET` from a queue of `queued`.
async fn tick_times(
    store: Arc<dyn Store>,
    clock: &SharedClock,
    name: &str,
    queued: u64,
) -> (Duration, Duration, Duration) {
    let zone = bench_zone(name);
    let now = clock.now_ms();
    fill(&*store, &zone.name, queued, now).await;
    // Ticks a second apart, as the exchanger runs them, on a clock the bench moves.
    let tick_clock = Arc::new(ManualClock::new(now));
    let exchanger = Exchanger::new(
        store,
        Arc::new(LiveZones::new(ZoneTable::of(
            std::slice::from_ref(&zone),
            "usher",
            None,
        ))),
        Duration::ZERO,
        tick_clock.clone(),
        Metrics::new(),
    );
    let mut times = Vec::new();
    for _ in 0..TICKS {
        tick_clock.advance(Duration::from_secs(1));
        let started = Instant::now();
        let report = exchanger
            .tick_zone(&zone, Via::Schedule)
            .await
            .expect("tick");
        times.push(started.elapsed());
        assert!(report.admitted > 0, "the tick admitted nobody: {report:?}");
    }
    let mean = times.iter().sum::<Duration>() / TICKS as u32;
    times.sort();
    (times[TICKS / 2], times[TICKS * 99 / 100], mean)
}

/// Touch latency with `QUEUED_BIG` queued, in `WINDOWS` quiet windows and `WINDOWS` windows
/// each overlapping one `snapshot()` (on a blocking thread). Touchers send at a fixed rate and
/// measure from when each touch was due, so a stall counts for every touch it delays, not
/// once. Returns the p99 and the worst of both, and the longest snapshot.
async fn touch_latency(clock: &SharedClock) -> TouchLatency {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path(), clock.now_ms()).expect("store"));
    let zone = "touch";
    let now = clock.now_ms();
    let keys = Arc::new(fill(&*store, zone, QUEUED_BIG, now).await);
    let (mut quiet, mut busy) = (Vec::new(), Vec::new());
    let mut snapshot = Duration::ZERO;
    for window in 0..2 * WINDOWS {
        let snapshotting = window % 2 == 1;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let started = tokio::time::Instant::now();
        let touchers: Vec<_> = (0..TOUCHERS)
            .map(|t| {
                let (store, keys, stop, clock) =
                    (store.clone(), keys.clone(), stop.clone(), clock.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut i = t * 7_919;
                    let mut due = started;
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep_until(due).await;
                        // Mostly heartbeats of waiting visitors, one newcomer in ten.
                        let key = if i % 10 == 0 {
                            QueueKey {
                                rank: clock.now_ms(),
                                visitor: VisitorId::random(),
                            }
                        } else {
                            keys[i % keys.len()]
                        };
                        i += 1;
                        store.touch(zone, key, clock.now_ms()).await.expect("touch");
                        latencies.push(due.elapsed());
                        due += TOUCH_EVERY;
                    }
                    latencies
                })
            })
            .collect();
        if snapshotting {
            // Let the touchers get going first.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let store = store.clone();
            let took = tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                store.snapshot().expect("snapshot");
                started.elapsed()
            })
            .await
            .expect("snapshot task");
            snapshot = snapshot.max(took);
        }
        // Every window lasts at least as long as a snapshot does, and at least 300 ms.
        let least = snapshot.max(Duration::from_millis(300)) + Duration::from_millis(50);
        tokio::time::sleep_until(started + least).await;
        stop.store(true, Ordering::Relaxed);
        for t in touchers {
            let latencies = t.await.expect("toucher");
            if snapshotting {
                busy.extend(latencies);
            } else {
                quiet.extend(latencies);
            }
        }
    }
    let p99_max = |mut v: Vec<Duration>| {
        v.sort();
        (v[v.len() * 99 / 100], v[v.len() - 1])
    };
    TouchLatency {
        quiet: p99_max(quiet),
        snapshotting: p99_max(busy),
        snapshot,
    }
}

/// What [`touch_latency`] measured: (p99, max) each way, and the longest snapshot.
struct TouchLatency {
    quiet: (Duration, Duration),
    snapshotting: (Duration, Duration),
    snapshot: Duration,
}

/// A zone where neither capacity nor the rate limit a tick: the burst, `BUDGET`, does.
fn bench_zone(name: &str) -> ZoneConfig {
    let text = format!(
        "[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n\
         [tokens]\nsigning_key = {{ kid = \"k\", env = \"USHER_BENCH_UNUSED\" }}\n\
         [zones.{name}]\npaths = [\"/\"]\ncapacity = 1000000\n\
         admit_per_minute = 6000000\nburst = {BUDGET}\nmode = \"queue_all\"\n"
    );
    let config = usher::config::parse(&text, std::path::Path::new(".")).expect("bench config");
    config.zones.into_iter().next().expect("one zone")
}
