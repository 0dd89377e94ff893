//! `usher report` on a recorded spike: a crowd through the real binary with `[events_log]` on,
//! some visitors who take a place and close the tab, then the report's figures held against
//! the crowd's own numbers (from their tokens) and usher's metrics.

mod common;

use common::crowd::{self, Origin, Visit};
use common::{wait_until, AsyncClient, Usher};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const FIRST_CROWD: usize = 40;
const QUITTERS: u32 = 8;
const SECOND_CROWD: usize = 20;

/// `n` visitors who take a place, come back once (so the place is written) and leave.
fn quitters(addr: std::net::SocketAddr, n: u32) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for i in 0..n {
            let source = AsyncClient::address(5_000 + i);
            let mut client = AsyncClient::connect_from(addr, source)
                .await
                .expect("connect");
            let page = client.get("/checkout", None).await.expect("page");
            assert!(page.header("x-origin").is_none(), "a quitter waits");
            let cookie = page.cookie().expect("a place");
            let status = client
                .get("/_usher/status", Some(&cookie))
                .await
                .expect("status");
            assert_eq!(status.json()["state"], "waiting");
        }
    });
}

/// The nearest-rank percentile, as the report computes it.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[test]
fn a_report_of_a_recorded_spike_tells_the_crowds_own_numbers() {
    let (origin_addr, _origin) = Origin::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(
        dir.path(),
        origin_addr,
        "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 5\nadmit_per_minute = 300\n\
         burst = 5\nrefresh_interval = \"500ms\"\nabandon_after = \"3s\"\n\
         [store]\ndata_dir = \"data\"\ntick = \"100ms\"\n\
         [events_log]\npath = \"events/usher.jsonl\"\n",
    );
    let addr = usher.addr;
    // A crowd; once it queues, visitors who leave; behind them a second crowd, so the line
    // passes the places they left. At 5 a second the first crowd takes 7 s or more, so the
    // line reaches the leavers well after `abandon_after`, while a visitor who polls stays
    // live unless a poll is 3 s late.
    let first =
        std::thread::spawn(move || crowd::run(&[addr], FIRST_CROWD, Duration::from_secs(90)));
    wait_until("a line", WAIT, || {
        usher.metric("usher_queue_waiting{zone=\"checkout\"}") > 0.0
    });
    quitters(addr, QUITTERS);
    let second = std::thread::spawn(move || {
        crowd::run_from(&[addr], 1_000, SECOND_CROWD, Duration::from_secs(90))
    });
    let mut visits: Vec<Visit> = first.join().expect("first crowd").0;
    visits.extend(second.join().expect("second crowd").0);
    assert_eq!(visits.len(), FIRST_CROWD + SECOND_CROWD);
    assert_eq!(
        usher.metric("usher_skipped_total{zone=\"checkout\"}"),
        f64::from(QUITTERS),
        "the line passed every place left behind"
    );
    let log = dir.path().join("events/usher.jsonl");
    wait_until("every admission and release in the log", WAIT, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        ["admitted", "released"]
            .iter()
            .all(|t| text.matches(&format!("\"type\":\"{t}\"")).count() == visits.len())
    });

    // The report, by the real binary.
    let out = dir.path().join("sale.html");
    let report = Command::new(env!("CARGO_BIN_EXE_usher"))
        .args(["report", "--config"])
        .arg(dir.path().join("usher.toml"))
        .args(["--zone", "checkout", "--out"])
        .arg(&out)
        .output()
        .expect("usher report");
    let stdout = String::from_utf8_lossy(&report.stdout);
    assert!(
        report.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let html = std::fs::read_to_string(&out).expect("the page");
    let csv = std::fs::read_to_string(dir.path().join("sale.csv")).expect("the csv");
    // The docs' example report comes from this run (docs/report.md says how).
    if let Some(keep) = std::env::var_os("USHER_REPORT_KEEP") {
        let keep = std::path::Path::new(&keep);
        std::fs::copy(&out, keep.join("sale.html")).expect("keep the page");
        std::fs::copy(dir.path().join("sale.csv"), keep.join("sale.csv")).expect("keep the csv");
    }
    std::fs::copy(&out, "/tmp/sale.html").unwrap();
    std::fs::copy(dir.path().join("sale.csv"), "/tmp/sale.csv").unwrap();
    std::fs::copy(&log, "/tmp/sale.jsonl").unwrap();

    // The crowd's own numbers.
    let direct = visits.iter().filter(|v| v.direct).count();
    let queued = visits.len() - direct;
    let mut waits: Vec<u64> = visits
        .iter()
        .filter(|v| !v.direct)
        .map(Visit::waited_ms)
        .collect();
    waits.sort_unstable();
    let secs = |ms: u64| format!("{:.1} s", ms as f64 / 1e3);
    let row = |name: &str, value: String| format!("<tr><th>{name}</th><td>{value}</td></tr>");

    // The summary.
    let joined = queued + QUITTERS as usize;
    assert!(
        html.contains(&row("Took a place in line", joined.to_string())),
        "{html:.4000}"
    );
    assert!(html.contains(&row("Admitted", visits.len().to_string())));
    assert!(html.contains(&row("&nbsp;&nbsp;via queue", queued.to_string())));
    for (name, p) in [
        ("median", 50.0),
        ("90th percentile", 90.0),
        ("99th percentile", 99.0),
    ] {
        let want = row(
            &format!("Time in line, {name}"),
            secs(percentile(&waits, p)),
        );
        assert!(html.contains(&want), "{want} in {html:.4000}");
    }
    let longest = row("Time in line, longest", secs(*waits.last().expect("waits")));
    assert!(html.contains(&longest), "{longest}");
    assert!(html.contains(&row(
        "Places abandoned (passed while away)",
        QUITTERS.to_string()
    )));
    assert!(html.contains(&row("&nbsp;&nbsp;gone for good", QUITTERS.to_string())));
    assert!(html.contains(&row(
        "Sessions released by the shop",
        visits.len().to_string()
    )));
    // Every slot was released; none ran out.
    assert!(
        html.contains(&row("Slots expired", "0".into())),
        "{html:.4000}"
    );
    assert_eq!(html.matches("<svg").count(), 4, "four plots");
    assert!(!html.contains("could not be drawn"));
    assert!(
        html.contains(&format!("a visitor ({queued})")),
        "one dot per visitor who waited"
    );
    assert!(
        stdout.contains(&format!("median wait {}", secs(percentile(&waits, 50.0)))),
        "{stdout}"
    );

    // The CSV: its bins add up to the same.
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(!rows.is_empty());
    let column = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let sum = |name: &str| -> u64 {
        let i = column(name);
        rows.iter()
            .map(|r| r[i].parse::<u64>().expect("a count"))
            .sum()
    };
    assert_eq!(sum("joined"), joined as u64);
    assert_eq!(sum("admitted"), visits.len() as u64);
    assert_eq!(sum("abandoned"), u64::from(QUITTERS));
    assert_eq!(sum("came_back"), 0);
    assert_eq!(sum("released"), visits.len() as u64);
    let peak = rows
        .iter()
        .filter_map(|r| r[column("queue_waiting")].parse::<u64>().ok())
        .max()
        .expect("the line's length");
    assert!(peak > 0 && peak <= joined as u64, "peak line {peak}");

    // A stretch with nothing in it says so and writes nothing.
    let empty = Command::new(env!("CARGO_BIN_EXE_usher"))
        .args([
            "report",
            "--zone",
            "checkout",
            "--from",
            "2001-01-01T00:00:00Z",
            "--to",
            "2001-01-02T00:00:00Z",
            "--out",
        ])
        .arg(dir.path().join("none.html"))
        .arg("--log")
        .arg(&log)
        .output()
        .expect("usher report");
    assert!(!empty.status.success());
    let said = String::from_utf8_lossy(&empty.stderr);
    assert!(said.contains("no events of zone `checkout`"), "{said}");
    assert!(!dir.path().join("none.html").exists());

    // Bounds the wrong way round, or not a time: a clear line, exit 1.
    for (from, to, said) in [
        (
            "2001-01-02T00:00:00Z",
            "2001-01-01T00:00:00Z",
            "--from must be before --to",
        ),
        (
            "yesterday",
            "2001-01-01T00:00:00Z",
            "--from `yesterday` is not an RFC 3339 time",
        ),
    ] {
        let refused = Command::new(env!("CARGO_BIN_EXE_usher"))
            .args([
                "report", "--zone", "checkout", "--from", from, "--to", to, "--log",
            ])
            .arg(&log)
            .output()
            .expect("usher report");
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(said), "{stderr}");
    }
}
