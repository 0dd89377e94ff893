//! The load client of `benches/load/sse.sh`: how many concurrent `GET /_usher/events` visitors
//! one usher node holds, what memory each costs, and what a wake storm (every stream told its new
//! position at each tick) costs in CPU.
//!
//! Phases, against a running usher whose bench zone is `queue_all` with capacity = burst =
//! `--decoys` (the script writes that config):
//! 1. serve the demo shop on `--origin` (usher's upstream: it answers `Usher-Command: release`);
//! 2. decoys join, are admitted and claim every slot, so nothing is admitted until step 6;
//! 3. `--streams` newcomers join (bounded in flight, keep-alive, connections closed after);
//! 4. one SSE stream per newcomer, at most `--connect-concurrency` of them connecting or waiting
//!    for their first event at once (the accept backlog is never overrun);
//! 5. usher's RSS with every stream open, and its CPU while they idle;
//! 6. the wake storm: a decoy slot freed every `1 / --admit-per-second` s for `--window` s, so
//!    every tick admits and every waiting stream gets an event per tick: events/s, usher's CPU,
//!    how long a tick's wave takes to reach every stream, streams closed early.
//!
//! Prints a report and two `MEM|` / `STORM|` markdown rows for the script. One current-thread
//! runtime, so the client never takes more than one of the machine's cores from usher.
//!
//! ```sh
//! cargo bench --bench sse_clients -- --addr 127.0.0.1:PORT --origin 127.0.0.1:PORT2 \
//!     --pid USHER_PID --streams 1000 --decoys 250
//! ```

mod http;
mod measure;
mod places;
mod stream;

use clap::Parser;
use measure::{open_fds, percentile, rss_kib, CpuMeter};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stream::{End, Record, Shared};
use tokio::sync::{mpsc, watch, Semaphore};

#[derive(Parser)]
struct Args {
    /// usher's proxy address.
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Where to serve the demo shop, usher's upstream.
    #[arg(long)]
    origin: Option<SocketAddr>,
    /// usher's process id, for its memory and CPU in /proc.
    #[arg(long)]
    pid: Option<u32>,
    /// Concurrent SSE visitors.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Slots held by decoys: the zone's capacity and burst (at least admit-per-second x window).
    #[arg(long, default_value_t = 250)]
    decoys: usize,
    /// Joins in flight at once (one keep-alive connection each).
    #[arg(long, default_value_t = 256)]
    join_concurrency: usize,
    /// Streams connecting or waiting for their first event at once.
    #[arg(long, default_value_t = 500)]
    connect_concurrency: usize,
    /// Slots freed (so visitors admitted) per second during the window.
    #[arg(long, default_value_t = 10)]
    admit_per_second: u32,
    /// Length of the wake-storm window, s.
    #[arg(long, default_value_t = 20)]
    window: u64,
    /// How long the idle CPU is measured with every stream open, s.
    #[arg(long, default_value_t = 5)]
    idle: u64,
    /// Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    /// A pause longer than this between arrivals starts a new wave, ms (less than the tick).
    #[arg(long, default_value_t = 250)]
    wave_gap_ms: u32,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn log(message: impl AsRef<str>) {
    eprintln!("[sse_clients] {}", message.as_ref());
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (Some(addr), Some(origin), Some(pid)) = (args.addr, args.origin, args.pid) else {
        // `cargo test --benches` runs this without arguments: nothing to measure then.
        println!("sse_clients: needs --addr, --origin and --pid; run benches/load/sse.sh");
        return Ok(());
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(&args, addr, origin, pid))
}

async fn run(args: &Args, addr: SocketAddr, origin: SocketAddr, pid: u32) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(origin).await?;
    let shop = tokio::spawn(usher::demo::origin::serve(listener, usher::demo::shop));
    let n = args.streams;
    let (rss_start, anon_start) = rss_kib(pid);
    log(format!(
        "load average at the start: {}",
        measure::load_average()
    ));

    log(format!("{} decoys take every slot", args.decoys));
    let decoys = places::fill_slots(addr, args.decoys).await?;

    log(format!(
        "{n} visitors join ({} in flight)",
        args.join_concurrency
    ));
    let joins_started = Instant::now();
    let (cookies, join_failures) = places::join(addr, n, args.join_concurrency).await;
    let join_time = joins_started.elapsed();
    log(format!(
        "{} joined in {:.1} s ({:.0}/s), {join_failures} failed",
        cookies.len(),
        join_time.as_secs_f64(),
        cookies.len() as f64 / join_time.as_secs_f64()
    ));
    // The next tick commits the new waiting count; let it pass so the streams open on a
    // quiet zone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_joined, anon_joined) = rss_kib(pid);

    let shared = Arc::new(Shared {
        addr,
        connecting: Arc::new(Semaphore::new(args.connect_concurrency)),
        events: AtomicU64::new(0),
        recording: AtomicBool::new(false),
        base: Instant::now(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (setup_tx, mut setup_rx) = mpsc::unbounded_channel();
    let opening = Instant::now();
    let setup_usher = CpuMeter::start(pid, args.clk_tck);
    let setup_client = CpuMeter::start(0, args.clk_tck);
    let tasks: Vec<_> = cookies
        .into_iter()
        .map(|cookie| {
            let task = stream::run(shared.clone(), cookie, setup_tx.clone(), stop_rx.clone());
            tokio::spawn(task)
        })
        .collect();
    drop(setup_tx);
    let opened = tasks.len();
    let (mut latencies, mut setup_errors) = (Vec::with_capacity(opened), HashMap::new());
    let mut progress = tokio::time::interval(Duration::from_secs(2));
    let setup_deadline = Instant::now() + Duration::from_secs(60 + opened as u64 / 100);
    while latencies.len() + setup_errors.values().sum::<usize>() < opened {
        tokio::select! {
            setup = setup_rx.recv() => match setup {
                Some(Ok(latency)) => latencies.push(latency),
                Some(Err(why)) => *setup_errors.entry(why).or_insert(0) += 1,
                None => break,
            },
            _ = progress.tick() => {
                log(format!("streams with their first event: {}/{opened}", latencies.len()));
                if Instant::now() > setup_deadline {
                    log("setup deadline passed");
                    break;
                }
            }
        }
    }
    let setup_time = opening.elapsed();
    let (_, setup_usher_cpu) = setup_usher.read();
    let (_, setup_client_cpu) = setup_client.read();
    latencies.sort();
    log(format!(
        "{}/{opened} streams got their first event in {:.1} s; setup errors: {setup_errors:?}",
        latencies.len(),
        setup_time.as_secs_f64()
    ));

    // Idle: every stream open and quiet (only the 15 s heartbeats).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_open, anon_open) = rss_kib(pid);
    let fds = open_fds(pid);
    let idle_meter = CpuMeter::start(pid, args.clk_tck);
    let idle_events = shared.events.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(args.idle)).await;
    let (_, idle_cpu) = idle_meter.read();
    let idle_events = shared.events.load(Ordering::Relaxed) - idle_events;
    log(format!(
        "idle: RSS {:.1} MiB, {fds} fds, usher CPU {idle_cpu:.1} %, {idle_events} events",
        mib(rss_open)
    ));

    // The wake storm.
    let released = Arc::new(AtomicUsize::new(0));
    let releaser = tokio::spawn(places::release(
        addr,
        decoys,
        args.admit_per_second,
        released.clone(),
    ));
    shared.recording.store(true, Ordering::Relaxed);
    let usher_meter = CpuMeter::start(pid, args.clk_tck);
    let client_meter = CpuMeter::start(0, args.clk_tck);
    let events_before = shared.events.load(Ordering::Relaxed);
    let storm_started = Instant::now();
    let mut rss_peak = rss_open;
    let mut last = events_before;
    for second in 1..=args.window {
        tokio::time::sleep_until((storm_started + Duration::from_secs(second)).into()).await;
        rss_peak = rss_peak.max(rss_kib(pid).0);
        let now = shared.events.load(Ordering::Relaxed);
        log(format!("storm {second:>3} s: {} events", now - last));
        last = now;
    }
    shared.recording.store(false, Ordering::Relaxed);
    let storm_time = storm_started.elapsed().as_secs_f64();
    let (usher_cpu_s, usher_cpu) = usher_meter.read();
    let (_, client_cpu) = client_meter.read();
    let storm_events = shared.events.load(Ordering::Relaxed) - events_before;
    releaser.abort();
    let (rss_after, _) = rss_kib(pid);

    let _ = stop_tx.send(true);
    let mut records: Vec<Record> = Vec::with_capacity(opened);
    for task in tasks {
        records.push(task.await?);
    }
    shop.abort();

    let mut ends: HashMap<String, usize> = HashMap::new();
    let (mut arrivals, mut gaps) = (Vec::new(), Vec::new());
    for record in &records {
        let key = match &record.end {
            End::Open => "open".to_string(),
            End::Admitted => "admitted".to_string(),
            End::Failed(why) => format!("failed: {why}"),
        };
        *ends.entry(key).or_insert(0) += 1;
        arrivals.extend_from_slice(&record.arrivals);
        gaps.extend(record.arrivals.windows(2).map(|w| w[1] - w[0]));
    }
    arrivals.sort_unstable();
    gaps.sort_unstable();
    let waves = measure::waves(&arrivals, args.wave_gap_ms);
    let mut spreads: Vec<u32> = waves.iter().map(|w| w.spread_ms).collect();
    spreads.sort_unstable();
    let mut wave_sizes: Vec<usize> = waves.iter().map(|w| w.events).collect();
    wave_sizes.sort_unstable();
    let failed: usize = ends
        .iter()
        .filter(|(k, _)| k.starts_with("failed"))
        .map(|(_, v)| v)
        .sum();

    let per_stream_kib = (anon_open as f64 - anon_joined as f64) / latencies.len().max(1) as f64;
    let per_place_kib = (anon_joined as f64 - anon_start as f64) / n.max(1) as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let events_per_s = storm_events as f64 / storm_time;
    let us_per_event = usher_cpu_s * 1e6 / storm_events.max(1) as f64;
    println!("sse_clients: {n} streams against usher pid {pid}");
    println!(
        "  usher RSS (VmRSS / RssAnon, MiB): start {:.1} / {:.1}, after {n} joins {:.1} / {:.1}, \
         streams open {:.1} / {:.1}, storm peak {:.1}, after storm {:.1}",
        mib(rss_start),
        mib(anon_start),
        mib(rss_joined),
        mib(anon_joined),
        mib(rss_open),
        mib(anon_open),
        mib(rss_peak),
        mib(rss_after)
    );
    println!(
        "  per place in line {per_place_kib:.2} KiB, per open stream {per_stream_kib:.2} KiB \
         (RssAnon); usher fds {fds}"
    );
    println!(
        "  joins: {:.0}/s, {join_failures} failed; streams: {}/{opened} got a first event in \
         {:.1} s ({:.0}/s), connect-to-first-event p50 {:.1} ms p99 {:.1} ms; setup errors {setup_errors:?}",
        (n - join_failures) as f64 / join_time.as_secs_f64(),
        latencies.len(),
        setup_time.as_secs_f64(),
        latencies.len() as f64 / setup_time.as_secs_f64(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
    );
    println!(
        "  setup: usher CPU {setup_usher_cpu:.0} %, client CPU {setup_client_cpu:.0} %; \
         load average at the end {}",
        measure::load_average()
    );
    println!(
        "  idle ({} s): usher CPU {idle_cpu:.1} %, {idle_events} events",
        args.idle
    );
    println!(
        "  storm ({storm_time:.1} s, {} slots freed): {storm_events} events, {events_per_s:.0}/s, \
         usher CPU {usher_cpu:.0} % ({us_per_event:.1} us/event), client CPU {client_cpu:.0} %",
        released.load(Ordering::Relaxed)
    );
    println!(
        "  waves: {} (events per wave p50 {}), spread first-to-last event p50 {} ms, max {} ms; \
         per-stream gap between events p50 {} ms, p99 {} ms, max {} ms",
        waves.len(),
        percentile(&wave_sizes, 50.0),
        percentile(&spreads, 50.0),
        spreads.last().copied().unwrap_or(0),
        percentile(&gaps, 50.0),
        percentile(&gaps, 99.0),
        gaps.last().copied().unwrap_or(0)
    );
    println!("  streams at the end: {ends:?}");
    println!(
        "MEM| {n} | {} | {:.1} | {:.1} | {:.1} | {per_stream_kib:.1} | {:.1} | {:.0} | {:.0} | {idle_cpu:.1} |",
        latencies.len(),
        mib(rss_start),
        mib(rss_joined),
        mib(rss_open),
        setup_time.as_secs_f64(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
    );
    println!(
        "STORM| {n} | {events_per_s:.0} | {usher_cpu:.0} | {us_per_event:.1} | {} | {} | {} | {} | {:.1} | {failed} |",
        percentile(&spreads, 50.0),
        spreads.last().copied().unwrap_or(0),
        percentile(&gaps, 50.0),
        percentile(&gaps, 99.0),
        mib(rss_peak),
    );
    Ok(())
}
