//! The CQL store against a real CQL server (`USHER_CQL=host:port`; `make test` starts Apache
//! Cassandra for it), and its failure path without one.

use super::*;
use std::sync::Arc;

fn settings(contact: &str) -> CqlSettings {
    CqlSettings {
        contact_points: vec![contact.to_string()],
        keyspace: format!("usher_test_{:08x}", rand::random::<u32>()),
        replication_factor: 1,
        shards: 4,
        timeout: Duration::from_secs(10),
        queue_ttl: Duration::from_secs(3_600),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a CQL server: set USHER_CQL=host:port (make test starts Cassandra and sets it)"]
async fn passes_the_store_contract_on_a_real_cql_server() {
    let contact =
        std::env::var("USHER_CQL").expect("USHER_CQL names a CQL server, like 127.0.0.1:9042");
    let store = CqlStore::connect(&settings(&contact))
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
    let first = CqlStore::connect(&s).await.expect("create");
    assert!(first
        .compare_and_set("z", None, &crate::store::contract::record())
        .await
        .expect("cas"));
    let again = CqlStore::connect(&s)
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
    let outcome = CqlStore::connect(&s).await;
    assert!(matches!(outcome, Err(StoreError::Unavailable(_))));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
