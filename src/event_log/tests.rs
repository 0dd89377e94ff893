//! The event log's lines, its file's rotation, its queue's limit and the webhook's signature.

use super::writer::RotatingFile;
use super::*;
use crate::config::EventsLogConfig;

/// Polls `done` until it holds, for at most 10 s.
fn wait_for(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A log to `events.jsonl` in `dir`, without a webhook, holding `queue` events.
fn file_log(dir: &std::path::Path, queue: usize) -> EventsLogConfig {
    EventsLogConfig {
        queue,
        ..EventsLogConfig::to_file(dir.join("events.jsonl"))
    }
}

fn joined(n: u64) -> Event {
    Event::Joined {
        zone: "checkout".into(),
        visitor: format!("{n:032x}"),
        rank_ms: 1_000 + n,
        eta_s: 60,
    }
}

#[test]
fn every_line_carries_the_version_the_time_and_the_type() {
    let line = render(&joined(7), 1_796_000_000_000);
    let json: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(json["v"], SCHEMA_VERSION);
    assert_eq!(json["at_ms"], 1_796_000_000_000u64);
    assert_eq!(json["type"], "joined");
    assert_eq!(json["zone"], "checkout");
    assert_eq!(json["visitor"], "00000000000000000000000000000007");
    assert_eq!(json["eta_s"], 60);
    assert!(!line.contains('\n'));
    let admitted = Event::Admitted {
        zone: "checkout".into(),
        visitor: "ab".into(),
        rank_ms: 5,
        waited_ms: 1234,
        via: "queue",
    };
    let json: serde_json::Value = serde_json::from_str(&render(&admitted, 9)).expect("JSON");
    assert_eq!(json["type"], "admitted");
    assert_eq!(json["waited_ms"], 1234);
    assert_eq!(json["via"], "queue");
    // A zone name with quotes or newlines stays one line of valid JSON.
    let odd = Event::Released {
        zone: "a\"b\nc".into(),
        visitor: "x".into(),
    };
    let line = render(&odd, 1);
    assert!(!line.contains('\n'));
    let json: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(json["zone"], "a\"b\nc");
}

#[test]
fn the_file_rotates_by_size_and_keeps_the_newest() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("logs/usher.jsonl");
    let mut file = RotatingFile::open(&path, 100, 2).expect("open");
    for n in 0..20 {
        file.append(&format!("{{\"n\":{n:>40}}}")).expect("append");
    }
    file.flush().expect("flush");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let current = read(&path);
    let one = read(&dir.path().join("logs/usher.jsonl.1"));
    let two = read(&dir.path().join("logs/usher.jsonl.2"));
    assert!(!dir.path().join("logs/usher.jsonl.3").exists(), "keep = 2");
    for text in [&current, &one, &two] {
        assert!(text.len() <= 100, "{text}");
        assert!(text
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    }
    // The newest lines, in order: .2, .1, then the current file.
    let all: Vec<u64> = [two, one, current]
        .iter()
        .flat_map(|t| {
            t.lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).expect("json");
                    v["n"].as_u64().expect("n")
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(all.last(), Some(&19));
    assert!(all.windows(2).all(|w| w[1] == w[0] + 1), "{all:?}");
    // Reopened, it appends.
    drop(file);
    let mut again = RotatingFile::open(&path, 1_000_000, 2).expect("reopen");
    again.append("{\"n\":20}").expect("append");
    again.flush().expect("flush");
    assert!(read(&path).ends_with("{\"n\":20}\n"));
}

#[test]
fn a_full_queue_drops_events_and_counts_them() {
    let dir = tempfile::tempdir().expect("dir");
    let metrics = Metrics::new();
    let config = file_log(dir.path(), 1);
    let log = EventLog::start(&config, metrics.clone()).expect("start");
    assert!(log.enabled());
    for n in 0..2_000 {
        log.record(n, || joined(n));
    }
    let dropped = metrics
        .events_dropped
        .with_label_values(&["queue_full"])
        .get();
    assert!(dropped > 0, "a one-event queue overflows");
    drop(log);
    wait_for(|| metrics.events_logged.get() + dropped == 2_000);
    // A line is counted when it is appended; the file has it once the writer flushes, when the
    // queue is idle or the last sender is gone (it ran once in CI between the two).
    let lines = || std::fs::read_to_string(&config.path).map_or(0, |t| t.lines().count() as u64);
    wait_for(|| lines() == metrics.events_logged.get());
    assert!(!EventLog::disabled().enabled());
    EventLog::disabled().record(1, || unreachable!("a disabled log builds no event"));
}

#[test]
fn the_webhook_signature_is_hmac_sha256() {
    // RFC 4231, test case 2.
    assert_eq!(
        signature(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn an_idle_webhook_waits_for_a_line_and_an_open_batch_for_its_flush() {
    let flush = std::time::Duration::from_secs(2);
    assert_eq!(
        webhook::wait(None, flush),
        None,
        "no batch: block until a line comes"
    );
    let just = std::time::Instant::now();
    assert!(webhook::wait(Some(just), flush)
        .is_some_and(|left| left > std::time::Duration::from_secs(1)));
    let long_ago = just - std::time::Duration::from_secs(5);
    assert_eq!(
        webhook::wait(Some(long_ago), flush),
        Some(std::time::Duration::ZERO)
    );
}

#[test]
fn a_flush_puts_every_logged_event_in_the_file_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let config = file_log(dir.path(), 100);
    let log = EventLog::start(&config, Metrics::new()).expect("start");
    for n in 0..50 {
        log.record(n, || joined(n));
    }
    assert!(log.flush(std::time::Duration::from_secs(5)));
    // No waiting: the flush answered once the lines were written.
    let text = std::fs::read_to_string(&config.path).expect("file");
    assert_eq!(text.lines().count(), 50);
    assert!(EventLog::disabled().flush(std::time::Duration::ZERO));
}

#[test]
fn the_files_of_a_log_are_the_rotated_ones_oldest_first_then_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    for name in ["e.jsonl.1", "e.jsonl.3"] {
        std::fs::write(dir.path().join(name), "").expect("write");
    }
    let config = EventsLogConfig {
        keep: 3,
        ..EventsLogConfig::to_file(dir.path().join("e.jsonl"))
    };
    let names: Vec<String> = super::files(&config)
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["e.jsonl.3", "e.jsonl.1", "e.jsonl"]);
}
