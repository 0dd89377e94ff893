//! The CQL store against a real CQL server (`USHER_CQL=host:port`; `make test` starts Apache
//! Cassandra for it), and its failure path without one.

use super::*;
use crate::clock::SharedClock;
use crate::config::{CqlConsistency, ScyllaConfig};
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
    assert!(first
        .compare_and_set("z", None, &crate::store::contract::record())
        .await
        .expect("cas"));
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
async fn the_outbox_tells_another_node_about_every_committed_record() {
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
    let mut record = crate::store::contract::record();
    assert!(node_a
        .compare_and_set("z", None, &record)
        .await
        .expect("create"));
    record.state.version = 1;
    record.state.admitted_total = 7;
    assert!(node_a
        .compare_and_set("z", Some(0), &record)
        .await
        .expect("cas"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let change = tokio::time::timeout_at(deadline, heard.recv())
            .await
            .expect("node b heard the change within 10 s")
            .expect("feed open");
        let Change::Zone { zone, record: seen } = change;
        assert_eq!(&*zone, "z");
        if seen.state.version == 1 {
            assert_eq!(seen.state.admitted_total, 7);
            break;
        }
    }
    tail.abort();
}
