//! A node's life against the real binary: SIGHUP reloads and does not end it, SIGTERM exits as
//! soon as the open requests are done, `usher upgrade` replaces it under load without one failed
//! request or one lost place, idle keep-alive connections are closed, and beyond
//! `max_connections` a connection gets a 503 while the probes and `/metrics` still answer.

mod common;

use common::{start_origin, wait_until, Client, Usher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use usher::demo::origin::OriginResponse;

/// An origin whose `/slow` answers after 1.5 s; counts the slow requests it received.
fn origin(slow_seen: Arc<AtomicUsize>) -> SocketAddr {
    start_origin(move |req| {
        let slow_seen = slow_seen.clone();
        async move {
            if req.path == "/slow" {
                slow_seen.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                return OriginResponse::html("slow done".into());
            }
            OriginResponse::html("shop".into())
        }
    })
}

const ZONE: &str = "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 2\nadmit_per_minute = 1\n\
                    burst = 1\nmode = \"queue_all\"\n[store]\ndata_dir = \"data\"\ntick = \"100ms\"\n";

/// [`ZONE`] for load from one address: load generators are one client, whose joins the
/// per-client limits would refuse (these tests are about restarts, not about those limits).
const ZONE_UNDER_LOAD: &str = "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 2\n\
    admit_per_minute = 1\nburst = 1\nmode = \"queue_all\"\n[store]\ndata_dir = \"data\"\n\
    tick = \"100ms\"\n[defence]\nclient_places = 1000000\nclient_joins_per_minute = 1000000\n\
    client_join_burst = 1000000\n";

#[test]
fn sighup_reloads_and_sigterm_exits_once_the_open_request_is_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let slow_seen = Arc::new(AtomicUsize::new(0));
    let mut usher = Usher::start_with(
        dir.path(),
        origin(slow_seen.clone()),
        "grace_period = \"20s\"",
        "",
        ZONE,
    );
    // SIGHUP reloads the config (tests/admin.rs has what a reload changes); it never ends
    // the process, as the signal's default action would.
    usher.signal("HUP");
    wait_until("the reload", Duration::from_secs(5), || {
        usher.metric("usher_config_reloads_total{result=\"ok\"}") == 1.0
    });
    assert!(
        usher.child.try_wait().expect("wait").is_none(),
        "SIGHUP ended usher"
    );
    assert_eq!(usher.client().get("/_usher/health", &[]).status, 200);

    let addr = usher.addr;
    let slow = std::thread::spawn(move || Client::connect(addr).get("/slow", &[]));
    wait_until(
        "the slow request at the origin",
        Duration::from_secs(5),
        || slow_seen.load(Ordering::SeqCst) == 1,
    );
    let signalled = Instant::now();
    usher.signal("TERM");
    let status = usher
        .wait_exit(Duration::from_secs(10))
        .expect("exits well within the 20 s grace period");
    let took = signalled.elapsed();
    assert!(status.success(), "{status}\n{}", usher.log());
    let response = slow.join().expect("slow request");
    assert_eq!(response.status, 200, "the open request was finished");
    assert_eq!(response.text(), "slow done");
    assert!(
        took >= Duration::from_millis(1_000) && took < Duration::from_secs(5),
        "exited {took:?} after SIGTERM: after the open request (about 1.5 s), not the grace period"
    );
}

#[test]
fn sigquit_without_a_new_process_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(dir.path(), origin(Arc::default()), ZONE);
    usher.signal("QUIT");
    wait_until(
        "the failed handover to be logged",
        Duration::from_secs(20),
        || usher.log().contains("still serving"),
    );
    let mut child = usher;
    assert!(child.child.try_wait().expect("wait").is_none());
    assert_eq!(child.client().get("/", &[]).text(), "shop");
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start_with(
        dir.path(),
        origin(Arc::default()),
        "keepalive_timeout = \"1s\"",
        "",
        ZONE,
    );
    let mut stream = TcpStream::connect(usher.addr).expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        .expect("request");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no close within 10 s: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("Connection: keep-alive") || text.contains("connection: keep-alive"),
        "{text}"
    );
    let idle = started.elapsed();
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(5),
        "closed after {idle:?}; keepalive_timeout is 1s"
    );
}

/// A connection that sent one request and stays open.
fn idle_connection(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        .expect("request");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    stream
}

/// One request on a new connection; the raw response.
fn one_shot(addr: SocketAddr, path: &str) -> String {
    one_shot_on(TcpStream::connect(addr).expect("connect"), path, "")
}

/// A newcomer from loopback address number `n` takes a place and comes back with it (as its
/// page does at once), which writes the place to the store.
fn join_and_return(addr: SocketAddr, n: u32) {
    let source = common::AsyncClient::address(n);
    let connect = || common::origins::connect_from(source, addr).expect("connect");
    let joined = one_shot_on(connect(), "/checkout", "");
    let Some(cookie) = joined
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
    else {
        return; // refused (the store could not count the line): nothing to come back with
    };
    let cookie = format!("Cookie: {cookie}\r\n");
    one_shot_on(connect(), "/_usher/status", &cookie);
}

fn one_shot_on(mut stream: TcpStream, path: &str, headers: &str) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // One write: a node over its connection limit answers from the first bytes it reads and
    // closes, and a request written piece by piece would then meet a closed socket.
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: shop.test\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("request");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

#[test]
fn beyond_max_connections_a_connection_gets_503_and_the_probes_still_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start_with(
        dir.path(),
        origin(Arc::default()),
        "max_connections = 3",
        "",
        ZONE,
    );
    let held: Vec<TcpStream> = (0..3).map(|_| idle_connection(usher.addr)).collect();
    let refused = one_shot(usher.addr, "/checkout");
    assert!(refused.starts_with("HTTP/1.1 503 "), "{refused}");
    assert!(refused.contains("Retry-After: 2\r\n"), "{refused}");
    let health = one_shot(usher.addr, "/_usher/health");
    assert!(health.starts_with("HTTP/1.1 200 "), "{health}");
    let ready = one_shot(usher.addr, "/_usher/ready");
    assert!(ready.starts_with("HTTP/1.1 503 "), "{ready}");
    assert!(ready.contains("connection limit"), "{ready}");
    assert!(usher.metric("usher_connections_refused_total") >= 3.0);
    assert_eq!(usher.metric("usher_connections_open"), 3.0);

    drop(held);
    wait_until(
        "a connection to be served again",
        Duration::from_secs(5),
        || one_shot(usher.addr, "/").starts_with("HTTP/1.1 200 "),
    );
    let ready = one_shot(usher.addr, "/_usher/ready");
    assert!(ready.starts_with("HTTP/1.1 200 "), "{ready}");
}

/// A keep-alive client that reconnects when told `Connection: close`; counts what failed.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    slowest_ms: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, requests: Vec<(String, String)>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let slowest_ms = Arc::new(AtomicU64::new(0));
        let threads = requests
            .into_iter()
            .map(|(path, cookie)| {
                let (stop, ok, failures, slowest_ms) = (
                    stop.clone(),
                    ok.clone(),
                    failures.clone(),
                    slowest_ms.clone(),
                );
                std::thread::spawn(move || {
                    let mut conn: Option<BufReader<TcpStream>> = None;
                    while !stop.load(Ordering::SeqCst) {
                        let started = Instant::now();
                        match exchange(addr, &mut conn, &path, &cookie) {
                            Ok(status) if status < 400 => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(status) => failures
                                .lock()
                                .expect("failures")
                                .push(format!("{path}: {status}")),
                            Err(e) => {
                                conn = None;
                                failures
                                    .lock()
                                    .expect("failures")
                                    .push(format!("{path}: {e}"));
                            }
                        }
                        let ms = started.elapsed().as_millis() as u64;
                        slowest_ms.fetch_max(ms, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            slowest_ms,
            threads,
        }
    }

    /// Waits until `more` requests were answered since the call.
    fn wait_for_answers(&self, what: &str, more: u64) {
        let target = self.ok.load(Ordering::SeqCst) + more;
        wait_until(what, Duration::from_secs(20), || {
            self.ok.load(Ordering::SeqCst) >= target
        });
    }

    fn stop(self) -> (u64, Vec<String>, u64) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            thread.join().expect("load thread");
        }
        let failures = self.failures.lock().expect("failures").clone();
        (
            self.ok.load(Ordering::SeqCst),
            failures,
            self.slowest_ms.load(Ordering::SeqCst),
        )
    }
}

/// One request on the kept connection (opened if needed); the status.
fn exchange(
    addr: SocketAddr,
    conn: &mut Option<BufReader<TcpStream>>,
    path: &str,
    cookie: &str,
) -> std::io::Result<u16> {
    if conn.is_none() {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        *conn = Some(BufReader::new(stream));
    }
    let reader = conn.as_mut().expect("connected");
    let cookie = if cookie.is_empty() {
        String::new()
    } else {
        format!("Cookie: {cookie}\r\n")
    };
    write!(
        reader.get_mut(),
        "GET {path} HTTP/1.1\r\nHost: shop.test\r\n{cookie}\r\n"
    )?;
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::other("closed before the response"));
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let (mut length, mut close) = (0usize, false);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(v) = header.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if header == "connection: close" {
            close = true;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    if close {
        *conn = None;
    }
    Ok(status)
}

/// The process `usher upgrade` started, stopped when the test ends.
struct Successor(u32);

impl Drop for Successor {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-9")
            .arg(self.0.to_string())
            .status();
    }
}

/// Runs `usher upgrade` for `usher` (as systemd's `ExecReload` would, with `$NOTIFY_SOCKET`
/// set); the new process's PID, and what it told the service manager.
fn upgrade(usher: &Usher) -> (Successor, String) {
    let notify_path = usher.dir.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // The new process inherits stderr: a file, not a pipe the test would wait on.
    let log = usher.dir.join("upgrade.log");
    let output = Command::new(env!("CARGO_BIN_EXE_usher"))
        .args(["upgrade", "--config"])
        .arg(&usher.config)
        .arg("--pid")
        .arg(usher.child.id().to_string())
        .env("RUST_LOG", "warn")
        .env("NOTIFY_SOCKET", &notify_path)
        .stderr(std::fs::File::create(&log).expect("log file"))
        .output()
        .expect("run usher upgrade");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "usher upgrade failed: {stdout}\n{}\nold process:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        usher.log()
    );
    let pid = stdout
        .split("-> PID ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("no new PID in {stdout:?}"));
    let mut message = [0u8; 256];
    let n = notify.recv(&mut message).expect("a notification");
    (
        Successor(pid),
        String::from_utf8_lossy(&message[..n]).into_owned(),
    )
}

fn status_of(addr: SocketAddr, cookie: &str) -> serde_json::Value {
    Client::connect(addr)
        .get("/_usher/status", &[("Cookie", cookie)])
        .json()
}

#[test]
fn an_upgrade_under_load_fails_no_request_and_keeps_every_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zones = format!("{ZONE_UNDER_LOAD}[events_log]\npath = \"events.jsonl\"\n");
    let mut usher = Usher::start(dir.path(), origin(Arc::default()), &zones);
    // Five visitors wait in line (queue_all, one admission a minute).
    let cookies: Vec<String> = (0..5)
        .map(|_| {
            usher
                .client()
                .get("/checkout", &[])
                .cookie()
                .expect("a visitor token")
        })
        .collect();
    let ranks_before: Vec<u64> = cookies
        .iter()
        .map(|c| common::claims_of(c)["rank"].as_u64().expect("rank"))
        .collect();

    // Shoppers outside the zone, waiting visitors polling (their first poll writes their place),
    // newcomers joining.
    let mut requests: Vec<(String, String)> = (0..3).map(|_| ("/".into(), String::new())).collect();
    requests.extend(cookies.iter().map(|c| ("/_usher/status".into(), c.clone())));
    requests.extend((0..2).map(|_| ("/checkout".into(), String::new())));
    let load = Load::start(usher.addr, requests);
    load.wait_for_answers("load on the old process", 100);
    let handover_from = now_ms();
    let (successor, notified) = upgrade(&usher);
    assert_eq!(
        notified,
        format!("READY=1\nMAINPID={}\n", successor.0),
        "systemd learns the new main process"
    );
    let exited = usher
        .wait_exit(Duration::from_secs(10))
        .expect("the old process exits after the handover");
    assert!(exited.success(), "{exited}\n{}", usher.log());
    let handover_to = now_ms();
    load.wait_for_answers("load on the new process", 100);
    let (ok, failures, slowest_ms) = load.stop();

    assert!(ok > 100, "only {ok} requests answered");
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during the upgrade, first: {:?}",
        failures.len(),
        ok + failures.len() as u64,
        &failures[..failures.len().min(5)]
    );
    assert!(
        slowest_ms < 2_000,
        "the slowest request took {slowest_ms} ms (the store handover pause)"
    );
    eprintln!("upgrade under load: {ok} requests, 0 failed, slowest {slowest_ms} ms");

    // Every waiting visitor kept their place, in the same order.
    let mut positions = Vec::new();
    for cookie in &cookies {
        let status = status_of(usher.addr, cookie);
        assert!(
            status["state"] == "waiting" || status["state"] == "admitted",
            "a place was lost: {status}"
        );
        positions.push(status["position"].as_u64().unwrap_or(0));
    }
    let mut by_rank: Vec<(u64, u64)> = ranks_before.into_iter().zip(positions).collect();
    by_rank.sort();
    assert!(
        by_rank.windows(2).all(|w| w[0].1 <= w[1].1),
        "the line's order changed: {by_rank:?}"
    );

    // Both processes appended to one event log: whole lines only, never two interleaved, and
    // the joins of each (the old one wrote out what it had before it exited).
    let events = dir.path().join("events.jsonl");
    wait_until(
        "joins after the handover in the event log",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&events)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|l| l["type"] == "joined" && l["at_ms"].as_u64() > Some(handover_to))
        },
    );
    let text = std::fs::read_to_string(&events).expect("the event log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a torn line {l:?}: {e}")))
        .collect();
    assert!(lines.iter().all(|l| l["v"] == 1));
    let joined_before = lines
        .iter()
        .filter(|l| l["type"] == "joined" && l["at_ms"].as_u64() < Some(handover_from))
        .count();
    assert!(joined_before > 0, "the old process's joins are in the log");
    drop(successor);
}

fn now_ms() -> u64 {
    usher::clock::system().now_ms()
}

#[test]
fn wrk_sees_no_failed_request_during_an_upgrade() {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("SKIPPED: wrk is not installed (.ci/run installs it)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut usher = Usher::start(dir.path(), origin(Arc::default()), ZONE_UNDER_LOAD);
    // Newcomers joining the line: every request signs a place and counts the line.
    let target = format!("http://{}/checkout", usher.addr);
    let wrk = std::thread::spawn(move || {
        Command::new("wrk")
            .args(["-t1", "-c16", "-d4s", "--latency"])
            .arg(target)
            .output()
    });
    wait_until(
        "wrk's joins on the old process",
        Duration::from_secs(10),
        || usher.metric("usher_gate_requests_total{decision=\"join\",zone=\"checkout\"}") > 100.0,
    );
    let (_successor, _) = upgrade(&usher);
    let exited = usher.wait_exit(Duration::from_secs(10)).expect("old exits");
    assert!(exited.success());
    assert!(
        !wrk.is_finished(),
        "the upgrade finished while wrk was still running"
    );
    let out = wrk.join().expect("wrk thread").expect("wrk ran");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(
        !report.contains("Socket errors") && !report.contains("Non-2xx"),
        "wrk saw failures during the upgrade:\n{report}"
    );
    eprintln!("{report}");
}

#[test]
fn event_streams_end_when_the_node_drains_and_the_process_does_not_wait_for_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut usher = Usher::start_with(
        dir.path(),
        origin(Arc::default()),
        "grace_period = \"20s\"",
        "",
        ZONE,
    );
    let cookie = usher
        .client()
        .get("/checkout", &[])
        .cookie()
        .expect("a place");
    let mut stream = TcpStream::connect(usher.addr).expect("connect");
    write!(
        stream,
        "GET /_usher/events HTTP/1.1\r\nHost: shop.test\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n\r\n"
    )
    .expect("request");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut first = [0u8; 512];
    let n = stream.read(&mut first).expect("the stream starts");
    assert!(
        String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );
    let signalled = Instant::now();
    usher.signal("TERM");
    let mut rest = Vec::new();
    let ended = stream.read_to_end(&mut rest);
    assert!(ended.is_ok(), "the stream ends cleanly: {ended:?}");
    let text = String::from_utf8_lossy(&rest);
    assert!(
        text.ends_with("0\r\n\r\n"),
        "a complete chunked body: {text:?}"
    );
    let status = usher
        .wait_exit(Duration::from_secs(10))
        .expect("exits without waiting for the stream");
    assert!(status.success());
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "took {:?}",
        signalled.elapsed()
    );
}

#[test]
fn a_full_disk_makes_the_node_not_ready_until_it_can_write_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(disk) = common::SmallDisk::mount(
        dir.path(),
        "a_full_disk_makes_the_node_not_ready_until_it_can_write_again",
    ) else {
        return;
    };
    let data = disk.path.clone();
    let usher = Usher::start(dir.path(), origin(Arc::default()), ZONE);
    assert!(one_shot(usher.addr, "/_usher/ready").starts_with("HTTP/1.1 200 "));
    // Fill the disk, then write places until an append fails.
    let ballast = data.join("ballast");
    // Fails with ENOSPC once it has taken what was left, which is the point.
    let _ = std::fs::write(&ballast, vec![0u8; 1024 * 1024]);
    let mut visitors = 0..;
    wait_until("an append to fail", Duration::from_secs(20), || {
        join_and_return(usher.addr, visitors.next().unwrap_or_default());
        one_shot(usher.addr, "/_usher/ready").contains("store cannot write")
    });
    wait_until("usher_ready to say 0", Duration::from_secs(5), || {
        usher.metric("usher_ready") == 0.0
    });
    assert_eq!(
        one_shot(usher.addr, "/_usher/health")
            .lines()
            .next()
            .unwrap_or_default(),
        "HTTP/1.1 200 OK",
        "alive, only not ready"
    );
    // Space comes back: the next join writes, and the node is ready again.
    std::fs::remove_file(&ballast).expect("rm ballast");
    wait_until(
        "the node to be ready again",
        Duration::from_secs(10),
        || {
            join_and_return(usher.addr, visitors.next().unwrap_or_default());
            one_shot(usher.addr, "/_usher/ready").starts_with("HTTP/1.1 200 ")
        },
    );
}
