//! Store speed: join throughput and exchanger tick time, on the embedded store and (with
//! `USHER_CQL=host:port`, a CQL server such as the Cassandra node `scripts/cassandra.sh` starts)
//! on the CQL store, side by side in one run.
//!
//! - `join`: what a newcomer costs the store: one queue write (`touch` of a new key).
//! - `join+position`: a newcomer's join and their position (`ahead`), as the waiting page asks.
//! - `tick`: one exchanger tick that admits `BUDGET` visitors from a queue of `QUEUED`.
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

/// Concurrent joiners: a busy node has many requests in flight at once.
const CONCURRENCY: usize = 128;
/// How long each throughput case runs.
const RUN: Duration = Duration::from_secs(5);
/// Queue length for the tick case.
const QUEUED: u64 = 10_000;
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
    let mut stores: Vec<(&str, Arc<dyn Store>)> = vec![(
        "embedded",
        Arc::new(EmbeddedStore::open(dir.path(), clock.now_ms()).expect("embedded store")),
    )];
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
        let (p50, p99) = runtime.block_on(tick_times(store, &clock));
        println!(
            "| {name} | {joins:.0} | {with_position:.0} | {:.1} ms | {:.1} ms |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
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

/// p50 and p99 of `TICKS` ticks, each admitting `BUDGET` from a queue of `QUEUED`.
async fn tick_times(store: Arc<dyn Store>, clock: &SharedClock) -> (Duration, Duration) {
    let zone = bench_zone();
    let now = clock.now_ms();
    let keys: Vec<QueueKey> = (0..QUEUED)
        .map(|i| QueueKey {
            rank: now - QUEUED + i,
            visitor: VisitorId::random(),
        })
        .collect();
    for chunk in keys.chunks(256) {
        let writes = chunk.iter().map(|k| store.touch(&zone.name, *k, now));
        for w in futures::future::join_all(writes).await {
            w.expect("fill the queue");
        }
    }
    // Ticks a second apart, as the exchanger runs them, on a clock the bench moves.
    let tick_clock = Arc::new(ManualClock::new(now));
    let exchanger = Exchanger::new(
        store,
        vec![zone.clone()],
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
    times.sort();
    (times[TICKS / 2], times[TICKS * 99 / 100])
}

/// A zone where neither capacity nor the rate limit a tick: the burst, `BUDGET`, does.
fn bench_zone() -> ZoneConfig {
    let text = format!(
        "[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n\
         [tokens]\nsigning_key = {{ kid = \"k\", env = \"USHER_BENCH_UNUSED\" }}\n\
         [zones.bench]\npaths = [\"/\"]\ncapacity = 1000000\n\
         admit_per_minute = 6000000\nburst = {BUDGET}\nmode = \"queue_all\"\n"
    );
    let config = usher::config::parse(&text, std::path::Path::new(".")).expect("bench config");
    config.zones.into_iter().next().expect("one zone")
}
