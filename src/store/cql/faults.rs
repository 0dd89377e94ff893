//! The CQL store's error paths, with faults injected by `scylla-proxy`: Overloaded, WriteTimeout
//! and Unavailable (forged error responses) and a dropped connection. Every call must come back
//! as a `StoreError`, without a panic, within the configured timeout plus a small margin.
//!
//! - Connecting: a dry-mode proxy (no database behind it) forges the handshake, so the real
//!   driver session comes up, and answers every QUERY, PREPARE and EXECUTE with the fault.
//!   `connect` cannot get further in dry mode: creating the schema and preparing statements need
//!   real RESULT frames (schema changes, prepared ids and bind-variable metadata), which the
//!   proxy only forges for errors.
//! - Operations (`touch`, `live_after`): a proxy in front of a real CQL server, with a rule that
//!   matches only EXECUTEs of that operation's prepared statement (by its id), so connecting and
//!   every other statement work. Needs `USHER_CQL=host:port` (`make test` starts Cassandra and
//!   sets it).

use super::*;
use crate::clock::SharedClock;
use crate::config::{CqlConsistency, ScyllaConfig};
use scylla_proxy::{
    Condition, Node, Proxy, Reaction, RequestFrame, RequestOpcode, RequestReaction, RequestRule,
    ResponseFrame, RunningProxy, ShardAwareness,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The store's per-call bound in these tests.
const TIMEOUT: Duration = Duration::from_millis(500);
/// What a failing call may take at most: the timeout plus a margin for a loaded machine.
const LIMIT: Duration = Duration::from_millis(1_500);

#[derive(Debug, Clone, Copy)]
enum Fault {
    Overloaded,
    WriteTimeout,
    Unavailable,
    DroppedConnection,
}

impl Fault {
    fn reaction(self) -> RequestReaction {
        match self {
            Fault::Overloaded => RequestReaction::forge().overloaded(),
            Fault::WriteTimeout => RequestReaction::forge().write_timeout(),
            Fault::Unavailable => RequestReaction::forge().unavailable(),
            Fault::DroppedConnection => RequestReaction::drop_connection(),
        }
    }
}

fn settings(contact: SocketAddr) -> ScyllaConfig {
    ScyllaConfig {
        contact_points: vec![contact.to_string()],
        keyspace: format!("usher_faults_{:08x}", rand::random::<u32>()),
        replication_factor: 1,
        consistency: CqlConsistency::One,
        timeout: TIMEOUT,
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

/// A free loopback port: bind port 0, read it back, let it go (the proxy binds it right after;
/// scylla-proxy takes a fixed address and does not report a port-0 binding back).
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The handshake of a node that is not there: OPTIONS, STARTUP and REGISTER succeed.
fn handshake() -> Vec<RequestRule> {
    vec![
        RequestRule(
            Condition::RequestOpcode(RequestOpcode::Options),
            RequestReaction::forge_response(Arc::new(|frame: RequestFrame| {
                ResponseFrame::forged_supported(frame.params, &HashMap::new()).unwrap()
            })),
        ),
        RequestRule(
            Condition::or(
                Condition::RequestOpcode(RequestOpcode::Startup),
                Condition::RequestOpcode(RequestOpcode::Register),
            ),
            RequestReaction::forge_response(Arc::new(|frame: RequestFrame| {
                ResponseFrame::forged_ready(frame.params)
            })),
        ),
    ]
}

/// Stops the proxy. `RunningProxy::finish` (0.0.8) can hit its own `unreachable!("Worker await
/// logic bug!")` when a worker drops its finish guard before its error sender, so it runs in a
/// task whose panic is ignored: the proxy is shut down either way, and a proxy bug is no fault
/// of the store.
async fn shut(proxy: RunningProxy) {
    let _ = tokio::spawn(proxy.finish()).await;
}

fn any_request() -> Condition {
    Condition::any([
        Condition::RequestOpcode(RequestOpcode::Query),
        Condition::RequestOpcode(RequestOpcode::Prepare),
        Condition::RequestOpcode(RequestOpcode::Execute),
        Condition::RequestOpcode(RequestOpcode::Batch),
    ])
}

async fn connect_fails_cleanly(fault: Fault) {
    let addr = free_addr();
    let mut rules = handshake();
    rules.push(RequestRule(any_request(), fault.reaction()));
    let proxy = Proxy::builder()
        .with_node(
            Node::builder()
                .proxy_address(addr)
                .request_rules(rules)
                .build_dry_mode(),
        )
        .build()
        .run()
        .await
        .unwrap();
    let started = Instant::now();
    let outcome = CqlStore::connect(&settings(addr), clock()).await;
    let took = started.elapsed();
    if let Err(e) = &outcome {
        eprintln!("connect under {fault:?}: {e} after {took:?}");
    }
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{fault:?}: connect gave {:?}",
        outcome.map(|_| "a store")
    );
    assert!(took < LIMIT, "{fault:?}: connect took {took:?}");
    shut(proxy).await;
}

#[tokio::test]
async fn connect_fails_cleanly_when_overloaded() {
    connect_fails_cleanly(Fault::Overloaded).await;
}

#[tokio::test]
async fn connect_fails_cleanly_on_write_timeouts() {
    connect_fails_cleanly(Fault::WriteTimeout).await;
}

#[tokio::test]
async fn connect_fails_cleanly_when_unavailable() {
    connect_fails_cleanly(Fault::Unavailable).await;
}

#[tokio::test]
async fn connect_fails_cleanly_when_connections_drop() {
    connect_fails_cleanly(Fault::DroppedConnection).await;
}

/// A store connected through a proxy in front of the real server at `USHER_CQL`, with no rules
/// yet, and its keyspace.
async fn proxied_store() -> (CqlStore, RunningProxy, String) {
    let real: SocketAddr = std::env::var("USHER_CQL")
        .expect("USHER_CQL names a CQL server, like 127.0.0.1:9042")
        .parse()
        .expect("USHER_CQL is an ip:port");
    let addr = free_addr();
    let proxy = Proxy::builder()
        .with_node(
            Node::builder()
                .real_address(real)
                .proxy_address(addr)
                .shard_awareness(ShardAwareness::Unaware)
                .build(),
        )
        .build()
        .run()
        .await
        .unwrap();
    let settings = settings(addr);
    let store = CqlStore::connect(&settings, clock())
        .await
        .expect("connect through the proxy");
    (store, proxy, settings.keyspace)
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Touch,
    LiveAfter,
}

impl Op {
    async fn call(self, store: &CqlStore) -> Result<(), StoreError> {
        let key = QueueKey {
            rank: 1,
            visitor: VisitorId(7),
        };
        match self {
            Op::Touch => store.touch("z", key, 1_000).await,
            Op::LiveAfter => store
                .live_after("z", QueueKey::default(), 0, 10)
                .await
                .map(|_| ()),
        }
    }

    fn statement(self, store: &CqlStore) -> &PreparedStatement {
        match self {
            Op::Touch => &store.statements.touch,
            Op::LiveAfter => &store.statements.scan,
        }
    }
}

async fn op_fails_cleanly(op: Op, fault: Fault) {
    let (store, mut proxy, keyspace) = proxied_store().await;
    op.call(&store)
        .await
        .expect("the operation works through the proxy");
    // Only EXECUTEs of this operation's statement: its prepared id is in the request body.
    let id = op.statement(&store).get_id().to_vec();
    proxy.running_nodes[0].change_request_rules(Some(vec![RequestRule(
        Condition::RequestOpcode(RequestOpcode::Execute)
            .and(Condition::BodyContainsCaseSensitive(id.into_boxed_slice())),
        fault.reaction(),
    )]));
    let started = Instant::now();
    let outcome = op.call(&store).await;
    let took = started.elapsed();
    if let Err(e) = &outcome {
        eprintln!("{op:?} under {fault:?}: {e} after {took:?}");
    }
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{op:?} under {fault:?} gave {outcome:?}"
    );
    assert!(took < LIMIT, "{op:?} under {fault:?} took {took:?}");
    // The rule hit only that statement: other calls still work (after a dropped connection,
    // once the driver has reconnected).
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = store.load("z").await {
        assert!(Instant::now() < deadline, "load never recovered: {e}");
        tokio::task::yield_now().await;
    }
    proxy.running_nodes[0].change_request_rules(None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = op.call(&store).await {
        assert!(Instant::now() < deadline, "{op:?} never recovered: {e}");
        tokio::task::yield_now().await;
    }
    let _ = store
        .session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[])
        .await;
    drop(store);
    shut(proxy).await;
}

macro_rules! op_fault_tests {
    ($($name:ident: $op:expr, $fault:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "needs a CQL server: set USHER_CQL=host:port (make test starts Cassandra and sets it)"]
        async fn $name() {
            op_fails_cleanly($op, $fault).await;
        }
    )*};
}

op_fault_tests! {
    touch_fails_cleanly_when_overloaded: Op::Touch, Fault::Overloaded;
    touch_fails_cleanly_on_a_write_timeout: Op::Touch, Fault::WriteTimeout;
    touch_fails_cleanly_when_unavailable: Op::Touch, Fault::Unavailable;
    touch_fails_cleanly_when_the_connection_drops: Op::Touch, Fault::DroppedConnection;
    live_after_fails_cleanly_when_overloaded: Op::LiveAfter, Fault::Overloaded;
    live_after_fails_cleanly_on_a_write_timeout: Op::LiveAfter, Fault::WriteTimeout;
    live_after_fails_cleanly_when_unavailable: Op::LiveAfter, Fault::Unavailable;
    live_after_fails_cleanly_when_the_connection_drops: Op::LiveAfter, Fault::DroppedConnection;
}
