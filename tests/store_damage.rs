//! The embedded store's files against damage, with the real binary: real state is written
//! (visitors queue, some are admitted, usher stops with SIGTERM, a few more joins are logged),
//! then each trial damages a copy of the data directory (cut at an offset, or one byte
//! flipped) and starts `usher run` on it. Every start either exits non-zero naming the file and
//! the offset, or comes up with exactly the state written before the damage point. Also: the
//! directory lock between two processes, `usher store verify` and `repair`, and a full disk
//! (a tiny tmpfs) under the store.

mod common;

use common::{ensure_key, free_addr, start_origin, wait_until, Client, Usher};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use usher::admission::{QueueKey, VisitorId};
use usher::demo::origin::OriginResponse;
use usher::store::embedded::EmbeddedStore;
use usher::store::{Store, StoreError};

const CAPACITY: u64 = 3;
const ZONES: &str = "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 3\n\
    admit_per_minute = 600\nburst = 3\nmode = \"queue_all\"\nrefresh_interval = \"500ms\"\n\
    [store]\ndata_dir = \"data\"\ntick = \"100ms\"\n";
/// Joins logged after the SIGTERM, so the log holds records too.
const EXTRA_JOINS: u64 = 3;

fn origin() -> SocketAddr {
    start_origin(
        |_| async move { OriginResponse::html("shop".into()).with_header("x-origin", "1") },
    )
}

fn sigterm(usher: &mut Usher) {
    let pid = usher.child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    wait_until("usher to exit", Duration::from_secs(30), || {
        matches!(usher.child.try_wait(), Ok(Some(_)))
    });
}

/// A data directory with real state: 8 visitors queued, 3 admitted and holding sessions,
/// stopped with SIGTERM, then `EXTRA_JOINS` more joins in the log. Returns the directory
/// (config, key and `data/`).
fn written_state() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut usher = Usher::start(dir.path(), origin(), ZONES);
    let mut cookies: Vec<String> = (0..8)
        .map(|_| {
            usher
                .client()
                .get("/checkout", &[])
                .cookie()
                .expect("a visitor token")
        })
        .collect();
    let mut admitted = 0;
    wait_until("three admissions", Duration::from_secs(20), || {
        for cookie in cookies.iter_mut() {
            let r = usher
                .client()
                .get("/_usher/status", &[("Cookie", cookie.as_str())]);
            if r.json()["state"] == "admitted" {
                if let Some(access) = r.cookie() {
                    *cookie = access;
                    admitted += 1;
                }
            }
        }
        admitted >= CAPACITY
    });
    sigterm(&mut usher);
    drop(usher);
    let data = dir.path().join("data");
    let store = EmbeddedStore::open(&data, now_ms()).expect("open the written store");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for i in 0..EXTRA_JOINS {
        let key = QueueKey {
            rank: now_ms() + 1_000 + i,
            visitor: VisitorId::random(),
        };
        runtime
            .block_on(store.touch("checkout", key, now_ms()))
            .expect("join");
    }
    dir
}

fn now_ms() -> u64 {
    use usher::clock::Clock;
    usher::clock::SystemClock.now_ms()
}

/// The data directory's store files: the snapshot and the one log.
fn store_files(data: &Path) -> (PathBuf, PathBuf) {
    let log = std::fs::read_dir(data)
        .expect("data dir")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("wal-") && n.ends_with(".jsonl"))
        })
        .expect("a log");
    (data.join("snapshot.jsonl"), log)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else if entry.file_name() != "lock"
            && !entry.file_name().to_string_lossy().ends_with(".log")
        {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// How a start went.
enum Start {
    /// Exited with this status and stderr.
    Exited(std::process::ExitStatus, String),
    /// Listening; the child and its metrics address.
    Up(Running, SocketAddr),
}

/// A running child, killed when dropped (also when an assertion fails first).
struct Running(Child);

impl Running {
    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `dir/usher.toml` with fresh ports and `data_dir`; returns its path and the addresses.
fn write_config(
    dir: &Path,
    origin: SocketAddr,
    data_dir: &Path,
) -> (PathBuf, SocketAddr, SocketAddr) {
    let addr = free_addr();
    let metrics = free_addr();
    let key = ensure_key(dir);
    let zones = ZONES.replace(
        "data_dir = \"data\"",
        &format!("data_dir = \"{}\"", data_dir.display()),
    );
    let config = dir.join("usher.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{addr}\"\ngrace_period = \"1s\"\n\
             [upstreams.shop]\naddrs = [\"{origin}\"]\n\
             [tokens]\nsigning_key = {{ kid = \"test\", file = \"{key}\" }}\n\
             [metrics]\nlisten = \"{metrics}\"\n{zones}\n"
        ),
    )
    .expect("config");
    (config, addr, metrics)
}

/// Starts `usher run` in `dir` (a copy of a written state) on fresh ports.
fn start(dir: &Path, origin: SocketAddr) -> Start {
    let (config, addr, metrics) = write_config(dir, origin, &dir.join("data"));
    let stderr = dir.join("stderr.txt");
    let child = Command::new(env!("CARGO_BIN_EXE_usher"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("spawn usher");
    let mut child = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            return Start::Exited(status, std::fs::read_to_string(&stderr).unwrap_or_default());
        }
        if TcpStream::connect(addr).is_ok() && TcpStream::connect(metrics).is_ok() {
            return Start::Up(child, metrics);
        }
        assert!(
            Instant::now() < deadline,
            "usher neither exited nor listened in 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn metric(metrics: SocketAddr, series: &str) -> f64 {
    let body = Client::connect(metrics).get("/metrics", &[]).text();
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Line start offsets of `bytes`, and where each line ends (after its newline).
fn lines(bytes: &[u8]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        out.push((at, at + line.len() as u64));
        at += line.len() as u64;
    }
    out
}

/// The start of the line holding byte `offset` (a line boundary is its own start).
fn line_start(lines: &[(u64, u64)], offset: u64) -> u64 {
    lines
        .iter()
        .find(|(start, end)| offset >= *start && offset < *end)
        .map_or(offset, |(start, _)| *start)
}

/// Up to `n` offsets spread over `0..len`, always with the first and last.
fn sample(len: u64, n: u64) -> Vec<u64> {
    let mut offsets: Vec<u64> = (0..n)
        .map(|i| i * len.saturating_sub(1) / (n - 1).max(1))
        .collect();
    offsets.dedup();
    offsets
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Cut(u64),
    Flip(u64),
}

#[test]
fn every_damaged_start_refuses_naming_the_offset_or_has_exactly_the_state_before_it() {
    let started = Instant::now();
    let written = written_state();
    let origin = origin();
    let (snapshot, log) = store_files(&written.path().join("data"));
    let log_bytes = std::fs::read(&log).expect("log");
    let log_lines = lines(&log_bytes);
    assert_eq!(
        log_lines.len() as u64,
        1 + EXTRA_JOINS,
        "a header and the joins"
    );
    let mut trials = Vec::new();
    for file in [&snapshot, &log] {
        let len = std::fs::metadata(file).expect("len").len();
        for offset in sample(len, 20) {
            trials.push((file.clone(), Damage::Cut(offset)));
            trials.push((file.clone(), Damage::Flip(offset)));
        }
    }
    // Every line boundary of the log, and every last byte of a log line (its newline).
    for (start, end) in &log_lines {
        trials.push((log.clone(), Damage::Cut(*start)));
        trials.push((log.clone(), Damage::Flip(end - 1)));
    }
    let (mut refused, mut opened) = (0, 0);
    for (file, damage) in trials {
        let trial = tempfile::tempdir().expect("tempdir");
        copy_tree(written.path(), trial.path());
        let target = trial
            .path()
            .join("data")
            .join(file.file_name().expect("name"));
        let mut bytes = std::fs::read(&target).expect("read");
        let original = lines(&bytes);
        match damage {
            Damage::Cut(at) => bytes.truncate(at as usize),
            Damage::Flip(at) => bytes[at as usize] ^= 0x20,
        }
        std::fs::write(&target, &bytes).expect("damage");
        let is_log = file == log;
        // What the rules say: a snapshot must be whole; a log may lose its torn last record.
        let expected_joins = match damage {
            _ if !is_log => None,
            Damage::Cut(0) => None,
            Damage::Cut(at) => {
                let whole = original.iter().filter(|(_, end)| *end <= at).count() as u64;
                (whole >= 1).then(|| whole - 1)
            }
            Damage::Flip(at) if at + 1 == bytes.len() as u64 && original.len() > 1 => {
                Some(original.len() as u64 - 2)
            }
            Damage::Flip(_) => None,
        };
        let expected_offset = match damage {
            Damage::Cut(at) | Damage::Flip(at) => line_start(&original, at),
        };
        match start(trial.path(), origin) {
            Start::Exited(status, stderr) => {
                assert!(
                    expected_joins.is_none(),
                    "{damage:?} of {}: refused, but only a torn tail was damaged: {stderr}",
                    target.display()
                );
                assert!(!status.success(), "{damage:?}: exit {status}");
                assert!(
                    stderr.contains(&target.display().to_string()),
                    "{damage:?}: stderr does not name {}: {stderr}",
                    target.display()
                );
                assert!(
                    stderr.contains(&format!("at byte {expected_offset}")),
                    "{damage:?} of {}: stderr does not name byte {expected_offset}: {stderr}",
                    target.display()
                );
                refused += 1;
            }
            Start::Up(child, metrics) => {
                let joins = expected_joins.unwrap_or_else(|| {
                    panic!(
                        "{damage:?} of {}: usher opened a damaged store",
                        target.display()
                    )
                });
                wait_until("two ticks", Duration::from_secs(10), || {
                    metric(metrics, "usher_exchanger_tick_seconds_count") >= 2.0
                });
                assert_eq!(
                    metric(metrics, "usher_sessions_active{zone=\"checkout\"}"),
                    CAPACITY as f64,
                    "{damage:?}: the admitted visitors' sessions, no more"
                );
                assert_eq!(
                    metric(metrics, "usher_queue_waiting{zone=\"checkout\"}"),
                    (8 - CAPACITY + joins) as f64,
                    "{damage:?}: the waiting visitors and the joins before the damage"
                );
                drop(child);
                opened += 1;
            }
        }
    }
    assert!(
        refused > 10 && opened > 2,
        "refused {refused}, opened {opened}"
    );
    eprintln!(
        "store_damage: {refused} refused, {opened} opened, in {:?}",
        started.elapsed()
    );
}

#[test]
fn a_second_process_is_refused_naming_the_first_and_verify_and_repair_wait_their_turn() {
    let written = written_state();
    let origin = origin();
    let Start::Up(first, _) = start(written.path(), origin) else {
        panic!("the written state did not open");
    };
    // The same data directory, by absolute path, from a second config on other ports.
    let second = tempfile::tempdir().expect("tempdir");
    let (config, _, _) = write_config(second.path(), origin, &written.path().join("data"));
    let out = Command::new(env!("CARGO_BIN_EXE_usher"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("in use by usher PID {}", first.id())),
        "{stderr}"
    );
    for command in ["verify", "repair"] {
        let out = Command::new(env!("CARGO_BIN_EXE_usher"))
            .args(["store", command, "--config"])
            .arg(written.path().join("usher.toml"))
            .output()
            .expect("store command");
        assert!(!out.status.success(), "{command} ran beside usher");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("usher PID {}", first.id())),
            "{stderr}"
        );
    }
    drop(first);
}

#[test]
fn verify_names_the_damage_and_repair_keeps_the_valid_prefix() {
    let written = written_state();
    let data = written.path().join("data");
    let (_, log) = store_files(&data);
    let bytes = std::fs::read(&log).expect("log");
    let log_lines = lines(&bytes);
    // Damage the second join: the header and the first join stay valid.
    let (start_of_second, _) = log_lines[2];
    let mut damaged = bytes.clone();
    damaged[start_of_second as usize + 12] ^= 0x01;
    std::fs::write(&log, &damaged).expect("damage");
    let config = written.path().join("usher.toml");
    let store = |command: &str| {
        Command::new(env!("CARGO_BIN_EXE_usher"))
            .args(["store", command, "--config"])
            .arg(&config)
            .output()
            .expect("store command")
    };
    let out = store("verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("stops at byte {start_of_second}")),
        "{stdout}"
    );
    assert!(stdout.contains("format 2"), "{stdout}");
    let out = store("repair");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let lost_bytes = bytes.len() as u64 - start_of_second;
    assert!(
        stdout.contains(&format!(
            "{}: {} records, {lost_bytes} bytes",
            log.display(),
            log_lines.len() - 2
        )),
        "{stdout}"
    );
    let aside: Vec<_> = std::fs::read_dir(&data)
        .expect("data")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "one damaged-<time> directory");
    let moved = data.join(&aside[0]).join(log.file_name().expect("name"));
    assert_eq!(std::fs::read(moved).expect("moved, not deleted"), damaged);
    let out = store("verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let Start::Up(child, metrics) = start(written.path(), origin()) else {
        panic!("the repaired store did not open");
    };
    wait_until("two ticks", Duration::from_secs(10), || {
        metric(metrics, "usher_exchanger_tick_seconds_count") >= 2.0
    });
    assert_eq!(
        metric(metrics, "usher_queue_waiting{zone=\"checkout\"}"),
        (8 - CAPACITY + 1) as f64,
        "the waiting visitors and the first extra join"
    );
    drop(child);
}

#[test]
fn a_full_disk_fails_appends_cleanly_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(disk) = common::SmallDisk::mount(
        dir.path(),
        "a_full_disk_fails_appends_cleanly_and_loses_nothing_acknowledged",
    ) else {
        return;
    };
    let data = disk.path.clone();
    // Space to give back later: enough for the snapshot a reopen writes.
    let ballast = data.join("ballast");
    std::fs::write(&ballast, vec![0u8; 640 * 1024]).expect("ballast");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = EmbeddedStore::open(&data, now_ms()).expect("open");
    let mut acknowledged = 0u64;
    let mut rank = 1_000u64;
    let error = loop {
        rank += 1;
        let key = QueueKey {
            rank,
            visitor: VisitorId::random(),
        };
        match runtime.block_on(store.touch("z", key, 0)) {
            Ok(()) => acknowledged += 1,
            Err(e) => break e,
        }
        assert!(acknowledged < 100_000, "the disk never filled");
    };
    assert!(matches!(error, StoreError::Io(_)), "{error}");
    // More appends fail the same way, and none leaves a partial record.
    for _ in 0..5 {
        rank += 1;
        let key = QueueKey {
            rank,
            visitor: VisitorId::random(),
        };
        assert!(runtime.block_on(store.touch("z", key, 0)).is_err());
    }
    let (_, log) = store_files(&data);
    let bytes = std::fs::read(&log).expect("log");
    assert_eq!(
        bytes.last(),
        Some(&b'\n'),
        "the log ends with a whole record"
    );
    assert_eq!(
        lines(&bytes).len() as u64,
        1 + acknowledged,
        "a header and every acknowledged join"
    );
    // Space comes back: appends work again, and a reopen has every acknowledged record.
    std::fs::remove_file(&ballast).expect("rm ballast");
    for _ in 0..10 {
        rank += 1;
        let key = QueueKey {
            rank,
            visitor: VisitorId::random(),
        };
        runtime
            .block_on(store.touch("z", key, 0))
            .expect("touch after space returns");
        acknowledged += 1;
    }
    assert!(store.healthy());
    drop(store);
    let store = EmbeddedStore::open(&data, now_ms()).expect("reopen");
    assert_eq!(store.queue_len("z") as u64, acknowledged);
}
