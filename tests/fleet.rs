//! Fleet mode end to end: two usher processes share one keyspace on a real CQL server
//! (`USHER_CQL`; `make test` starts Apache Cassandra) and sync through the outbox. A crowd spread
//! over both nodes at random gets in fairly, within the global capacity and rate; a node killed
//! mid-spike costs nobody their place; a visitor waiting on one node hears of an admission made
//! by the other.

mod common;

use common::crowd::{self, Limits, Origin};
use common::{wait_until, Usher};
use std::path::Path;
use std::time::Duration;

const LIMITS: Limits = Limits {
    capacity: 10,
    admit_per_minute: 1_200, // 20 per second
    burst: 10,
    slack: 0,
    // Two arrivals on different nodes this close may be admitted in either order: a tick on one
    // node may read the queue before the other node's join has landed (one store round trip).
    fifo_tolerance_ms: 0,
    resent: 0,
};

fn contact() -> String {
    std::env::var("USHER_CQL").expect("USHER_CQL names a CQL server, like 127.0.0.1:9042")
}

/// Two nodes on one keyspace, sharing one signing key, each with its own config text.
fn two_nodes(origin: std::net::SocketAddr, config_a: &str, config_b: &str) -> [Usher; 2] {
    let dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    common::ensure_key(dirs[0].path());
    std::fs::copy(
        dirs[0].path().join("key.pem"),
        dirs[1].path().join("key.pem"),
    )
    .expect("share the key");
    // The directories live as long as the test process: the nodes write logs there.
    let [a, b] = dirs.map(|d| d.keep());
    [
        Usher::start(Path::new(&a), origin, config_a),
        Usher::start(Path::new(&b), origin, config_b),
    ]
}

fn admitted(node: &Usher) -> f64 {
    node.metric("usher_admitted_total{via=\"queue\",zone=\"checkout\"}")
        + node.metric("usher_admitted_total{via=\"direct\",zone=\"checkout\"}")
        + node.metric("usher_admitted_total{via=\"returned\",zone=\"checkout\"}")
}

#[test]
#[ignore = "needs a CQL server: set USHER_CQL=host:port (make test starts Cassandra and sets it)"]
fn a_crowd_spread_over_two_nodes_gets_in_fairly_within_global_capacity_and_rate() {
    const VISITORS: usize = 300;
    let keyspace = format!("usher_fleet_{:08x}", rand::random::<u32>());
    let config = fleet_config(&contact(), &keyspace);
    let (origin_addr, origin) = Origin::start();
    let nodes = two_nodes(origin_addr, &config, &config);
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();
    let (visits, elapsed) = crowd::run(&addrs, VISITORS, Duration::from_secs(120));
    let max_active = crowd::check(&origin, visits, VISITORS, &LIMITS);
    let per_node: Vec<f64> = nodes.iter().map(admitted).collect();
    assert_eq!(
        per_node.iter().sum::<f64>() as usize,
        VISITORS,
        "admissions counted by the nodes"
    );
    eprintln!(
        "fleet crowd: {VISITORS} visitors over 2 nodes in {:.1} s, admitted per node {per_node:?}, \
         max {max_active} at the origin (capacity {})",
        elapsed.as_secs_f64(),
        LIMITS.capacity
    );
}

#[test]
#[ignore = "needs a CQL server: set USHER_CQL=host:port (make test starts Cassandra and sets it)"]
fn a_node_killed_mid_spike_costs_nobody_their_place() {
    const VISITORS: usize = 300;
    let keyspace = format!("usher_fleet_{:08x}", rand::random::<u32>());
    let config = fleet_config(&contact(), &keyspace);
    let (origin_addr, origin) = Origin::start();
    let [mut a, b] = two_nodes(origin_addr, &config, &config);
    let addrs = vec![a.addr, b.addr];
    let crowd = std::thread::spawn(move || crowd::run(&addrs, VISITORS, Duration::from_secs(150)));
    wait_until(
        "a third of the crowd to get in",
        Duration::from_secs(60),
        || admitted(&a) + admitted(&b) >= (VISITORS / 3) as f64,
    );
    a.kill9();
    let killed_at = admitted(&b);
    // Node B alone carries on; every visitor of node A finds their place there.
    wait_until(
        "node B to admit more on its own",
        Duration::from_secs(60),
        || admitted(&b) >= killed_at + 30.0,
    );
    let a = a.restart();
    eprintln!("fleet kill -9: node A killed when node B had admitted {killed_at}; restarted");
    let (visits, elapsed) = crowd.join().expect("crowd");
    let limits = Limits {
        // Requests node A forwarded and never answered were sent again through node B.
        resent: 8,
        ..LIMITS
    };
    let max_active = crowd::check(&origin, visits, VISITORS, &limits);
    // The restarted node took its share of the rest of the crowd: it let visitors through
    // (sessions granted before and while it was down) and swapped tokens of visitors whose
    // turn came, which needs the fleet's cursor, caught up through the feed.
    let served = |decision: &str| {
        a.metric(&format!(
            "usher_gate_requests_total{{decision=\"{decision}\",zone=\"checkout\"}}"
        ))
    };
    let (forwarded, claimed) = (served("forward"), served("claim"));
    assert!(
        forwarded > 0.0 && claimed > 0.0,
        "restarted node A forwarded {forwarded} and claimed {claimed}"
    );
    eprintln!(
        "fleet kill -9: {VISITORS} visitors in {:.1} s, max {max_active} at the origin; \
         restarted node A forwarded {forwarded} requests and swapped {claimed} tokens",
        elapsed.as_secs_f64()
    );
}

fn fleet_config(contact: &str, keyspace: &str) -> String {
    format!(
        "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = {}\nadmit_per_minute = {}\nburst = {}\n\
         refresh_interval = \"1s\"\n\
         [store]\nkind = \"scylla\"\ncontact_points = [\"{contact}\"]\nkeyspace = \"{keyspace}\"\n\
         replication_factor = 1\nconsistency = \"quorum\"\nshards = 4\ntimeout = \"10s\"\n\
         sync = \"outbox\"\nfeed_interval = \"100ms\"\ntick = \"200ms\"\n",
        LIMITS.capacity, LIMITS.admit_per_minute, LIMITS.burst
    )
}

#[test]
#[ignore = "needs a CQL server: set USHER_CQL=host:port (make test starts Cassandra and sets it)"]
fn a_visitor_waiting_on_one_node_hears_of_an_admission_made_by_the_other() {
    let keyspace = format!("usher_fleet_{:08x}", rand::random::<u32>());
    let (origin_addr, _origin) = Origin::start();
    let config = fleet_config(&contact(), &keyspace);
    // Node B runs the same zone unpaused: only its exchanger admits.
    let [a, b] = two_nodes(
        origin_addr,
        &config.replace("refresh_interval = \"1s\"", "mode = \"paused\""),
        &config.replace("refresh_interval = \"1s\"", "mode = \"queue_all\""),
    );
    let cookie = a
        .client()
        .get("/checkout", &[])
        .cookie()
        .expect("a place, from node A");
    // Node B admits (its exchanger ticks every 200 ms); node A learns it through the outbox and
    // swaps the token on the next status call.
    let started = std::time::Instant::now();
    wait_until(
        "node A to hear of the admission",
        Duration::from_secs(15),
        || {
            a.client()
                .get("/_usher/status", &[("Cookie", &cookie)])
                .json()["state"]
                == "admitted"
        },
    );
    let heard_after = started.elapsed();
    assert!(
        b.metric("usher_admitted_total{via=\"queue\",zone=\"checkout\"}") >= 1.0,
        "node B admitted"
    );
    assert_eq!(
        a.metric("usher_admitted_total{via=\"queue\",zone=\"checkout\"}"),
        0.0,
        "paused node A did not"
    );
    eprintln!("fleet: node A heard of node B's admission within {heard_after:?}");
}

#[test]
#[ignore = "needs a CQL server: set USHER_CQL=host:port (make test starts Cassandra and sets it)"]
fn an_override_made_on_one_node_is_enforced_by_the_other() {
    let keyspace = format!("usher_fleet_{:08x}", rand::random::<u32>());
    let (origin_addr, _origin) = Origin::start();
    let tokens = tempfile::tempdir().expect("tempdir");
    let token = tokens.path().join("write.token");
    std::fs::write(&token, "fleet-sre-writes-0123456789").expect("token");
    let listen = common::free_addr();
    let admin = format!(
        "[admin]\nlisten = \"{listen}\"\ntokens = [{{ name = \"sre\", file = \"{}\", role = \"write\" }}]\n",
        token.display()
    );
    let config = fleet_config(&contact(), &keyspace);
    let [a, b] = two_nodes(origin_addr, &format!("{config}{admin}"), &config);
    wait_until("the admin listener", Duration::from_secs(10), || {
        std::net::TcpStream::connect(listen).is_ok()
    });
    let rate = "usher_zone_admit_per_minute{zone=\"checkout\"}";
    let paused = "usher_zone_paused{zone=\"checkout\"}";
    assert_eq!(b.metric(rate), LIMITS.admit_per_minute as f64);

    let set = std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
        .args([
            "ctl",
            "--admin",
            &format!("http://{listen}"),
            "--token-file",
        ])
        .arg(&token)
        .args([
            "zone", "checkout", "set", "--rate", "30", "--mode", "paused",
        ])
        .output()
        .expect("usher ctl");
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let started = std::time::Instant::now();
    // feed_interval (100 ms) plus one tick (200 ms); a generous deadline for a loaded machine.
    wait_until(
        "node B to enforce node A's change",
        Duration::from_secs(5),
        || b.metric(rate) == 30.0 && b.metric(paused) == 1.0,
    );
    let enforced_after = started.elapsed();
    // Node B, paused by node A's change, lets nobody in.
    let cookie = b.client().get("/checkout", &[]).cookie().expect("a place");
    let status = b
        .client()
        .get("/_usher/status", &[("Cookie", &cookie)])
        .json();
    assert_eq!(status["state"], "paused", "{status}");
    assert_eq!(a.metric(rate), 30.0);
    eprintln!("fleet: node B enforced node A's override after {enforced_after:?}");
}
