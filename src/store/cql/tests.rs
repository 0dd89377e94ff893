//! The CQL store against a real CQL server (`USHER_CQL=host:port`; `make test` starts Apache
//! Cassandra for it), and its failure path without one.

use super::*;
use crate::clock::SharedClock;
use crate::config::{CqlConsistency, ScyllaConfig};
use crate::store::ChangeFeed;
use std::sync::Arc;
use std::time::Duration;

fn settings(contact: &str) -> ScyllaConfig {
    ScyllaConfig {
        contact_points: vec![contact.to_string()],
        keyspace: format!("usher_test_{:08x}", rand::random::<u32>()),
        replication_factor: 1,
        consistency: CqlConsistency::Quorum,
        timeout: Duration::from_secs(10),
        shards: 4,
        queue_ttl: Duration::from_secs(3_600),
        sync: crate::config::SyncMode::Outbox,
        feed_interval: Duration::from_millis(100),
        feed_safety: Duration::from_secs(2),
        join_settle: Duration::from_millis(250),
    }
}

fn clock() -> SharedClock {
    crate::clock::system()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a CQL server: set USHER_CQL=host:port (make test starts Cassandra and sets it)"]
async fn passes_the_store_contract_on_a_real_cql_server() {
    let contact =
        std::env::var("USHER_CQL").expect("USHER_CQL names a CQL server, like 127.0.0.1:9042");
    let store = CqlStore::connect(&settings(&contact), clock())
        .await
        .expect("connect and create the schema");
    crate::store::contract::check_store(Arc::new(store), "cql_").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a CQL server: set USHER_CQL=host:port (make test starts Cassandra and sets it)"]
async fn schema_creation_is_idempotent() {
    let contact =
        std::env::var("USHER_CQL").expect("USHER_CQL names a CQL server, like 127.0.0.1:9042");
    let s = settings(&contact);
    let first = CqlStore::connect(&s, clock()).await.expect("create");
    let now = crate::clock::Clock::now_ms(&*clock());
    assert!(crate::store::contract::commit(&first, "z", None, &[], now).await);
    let again = CqlStore::connect(&s, clock())
        .await
        .expect("connect to the existing schema");
    assert!(
        again.load("z").await.expect("load").is_some(),
        "the second start kept the data"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_within_the_timeout() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr").to_string();
    drop(closed);
    let mut s = settings(&addr);
    s.timeout = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let outcome = CqlStore::connect(&s, clock()).await;
    assert!(matches!(outcome, Err(StoreError::Unavailable(_))));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a CQL server: set USHER_CQL=host:port (make test starts Cassandra and sets it)"]
async fn the_outbox_tells_another_node_about_every_committed_change() {
    let contact =
        std::env::var("USHER_CQL").expect("USHER_CQL names a CQL server, like 127.0.0.1:9042");
    let s = settings(&contact);
    let node_a = Arc::new(CqlStore::connect(&s, clock()).await.expect("node a"));
    let node_b = Arc::new(CqlStore::connect(&s, clock()).await.expect("node b"));
    let mut heard = node_b.subscribe();
    let tail = tokio::spawn(
        node_b
            .clone()
            .tail_outbox(Duration::from_millis(100), Duration::from_secs(2)),
    );
    let now = crate::clock::Clock::now_ms(&*clock());
    let admitted = QueueKey {
        rank: now - 10,
        visitor: VisitorId(7),
    };
    assert!(crate::store::contract::commit(node_a.as_ref(), "z", None, &[], now).await);
    assert!(crate::store::contract::commit(node_a.as_ref(), "z", Some(1), &[admitted], now).await);
    let to = crate::admission::bucket_of(now + 60_000);
    let claimed = node_a
        .claim("z", admitted.visitor, to, now)
        .await
        .expect("claim");
    assert!(matches!(claimed, Claim::Granted { .. }));
    assert_eq!(
        node_a
            .release("z", admitted.visitor, now)
            .await
            .expect("release"),
        Some(to)
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (mut zone_seen, mut revocation_seen) = (false, false);
    while !(zone_seen && revocation_seen) {
        let change = tokio::time::timeout_at(deadline, heard.recv())
            .await
            .expect("node b heard both changes within 10 s")
            .expect("feed open");
        match change {
            Change::Zone { zone, state } => {
                assert_eq!(&*zone, "z");
                if state.version == 2 {
                    assert_eq!(state.admitted_total, 1);
                    zone_seen = true;
                }
            }
            Change::Revoked {
                visitor, until_s, ..
            } => {
                assert_eq!((visitor, until_s), (admitted.visitor, to));
                revocation_seen = true;
            }
        }
    }
    assert_eq!(
        node_b.active("z", now).await.expect("active"),
        0,
        "node b counts node a's ledger rows: reserved, claimed, released"
    );
    tail.abort();
}
