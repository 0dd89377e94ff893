//! The CDC feed: the translator and the consumer on synthetic CDC rows (no server), and the whole
//! feed against a real ScyllaDB when `USHER_SCYLLA` names one.

use super::*;
use crate::admission::ZoneState;
use scylla::cluster::metadata::{ColumnType, NativeType};
use scylla::frame::response::result::{ColumnSpec, TableSpec};
use scylla::response::query_result::ColumnSpecs;
use scylla::value::{CqlTimeuuid, Row};
use scylla_cdc::consumer::CDCRowSchema;

/// The CDC operations the translator sees, as `cdc$operation` stores them (TTL expirations are
/// the negated delete codes).
const UPDATE: i8 = 1;
const INSERT: i8 = 2;
const ROW_DELETE: i8 = 3;
const PARTITION_DELETE: i8 = 4;
const EXPIRED_ROW: i8 = -3;

const T0_MS: u64 = 1_750_000_000_000;
const VISITOR: &str = "0123456789abcdef0123456789abcdef";

/// A CDC log table's columns, in the order ScyllaDB lays them out, and the schema built from them.
struct Log {
    names: Vec<&'static str>,
    schema: CDCRowSchema,
}

impl Log {
    fn new(
        table: &'static str,
        base: &[(&'static str, NativeType)],
        deletable: &[&'static str],
    ) -> Log {
        use NativeType::*;
        let mut columns = vec![
            ("cdc$stream_id", Blob),
            ("cdc$time", Timeuuid),
            ("cdc$batch_seq_no", Int),
        ];
        columns.extend_from_slice(base);
        let deleted: Vec<&'static str> = deletable
            .iter()
            .map(|c| &*Box::leak(format!("cdc$deleted_{c}").into_boxed_str()))
            .collect();
        columns.extend(deleted.iter().map(|d| (*d, Boolean)));
        columns.extend([
            ("cdc$end_of_batch", Boolean),
            ("cdc$operation", TinyInt),
            ("cdc$ttl", BigInt),
        ]);
        let log = Box::leak(format!("{table}_scylla_cdc_log").into_boxed_str());
        let specs: Vec<ColumnSpec<'static>> = columns
            .iter()
            .map(|(name, typ)| {
                ColumnSpec::borrowed(
                    name,
                    ColumnType::Native(typ.clone()),
                    TableSpec::borrowed("ks", log),
                )
            })
            .collect();
        Log {
            names: columns.iter().map(|(n, _)| *n).collect(),
            schema: CDCRowSchema::new(ColumnSpecs::new(&specs)),
        }
    }

    fn zones() -> Log {
        use NativeType::*;
        Log::new(
            "zones",
            &[("zone", Text), ("version", BigInt), ("state", Text)],
            &["version", "state"],
        )
    }

    fn sessions() -> Log {
        use NativeType::*;
        Log::new(
            "sessions",
            &[
                ("zone", Text),
                ("visitor", Text),
                ("status", Text),
                ("bucket", BigInt),
                ("admitted_at", BigInt),
            ],
            &["status", "bucket", "admitted_at"],
        )
    }

    /// One log row written at `ms` with operation `op`; base columns not named are null.
    fn row(&self, op: i8, ms: u64, values: &[(&str, CqlValue)]) -> CDCRow<'_> {
        let columns = self
            .names
            .iter()
            .map(|name| match *name {
                "cdc$stream_id" => Some(CqlValue::Blob(vec![7; 16])),
                "cdc$time" => Some(CqlValue::Timeuuid(timeuuid(ms))),
                "cdc$batch_seq_no" => Some(CqlValue::Int(0)),
                "cdc$end_of_batch" => Some(CqlValue::Boolean(true)),
                "cdc$operation" => Some(CqlValue::TinyInt(op)),
                "cdc$ttl" => None,
                name => values
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone()),
            })
            .collect();
        CDCRow::from_row(Row { columns }, &self.schema)
    }
}

/// A version-1 (time-based) UUID for `ms`, as ScyllaDB writes `cdc$time`.
fn timeuuid(ms: u64) -> CqlTimeuuid {
    // 100-ns ticks since 1582-10-15, the Gregorian epoch of version-1 UUIDs.
    let ticks = ms * 10_000 + 0x01B2_1DD2_1381_4000;
    CqlTimeuuid::from_fields(
        ticks as u32,
        (ticks >> 32) as u16,
        ((ticks >> 48) as u16 & 0x0fff) | 0x1000,
        &[0x80, 0, 0, 0, 0, 0, 0, 1],
    )
}

fn state(version: u64, admitted_total: u64) -> ZoneState {
    let mut state = crate::store::contract::state(T0_MS);
    state.version = version;
    state.admitted_total = admitted_total;
    state
}

fn text(s: &str) -> CqlValue {
    CqlValue::Text(s.to_string())
}

/// A write of the zone row, as the compare-and-set makes it: version and state together.
fn zone_values(zone: &str, s: &ZoneState) -> Vec<(&'static str, CqlValue)> {
    vec![
        ("zone", text(zone)),
        ("version", CqlValue::BigInt(s.version as i64)),
        ("state", text(&serde_json::to_string(s).unwrap())),
    ]
}

fn session_values(status: &str, bucket: i64) -> Vec<(&'static str, CqlValue)> {
    vec![
        ("zone", text("z")),
        ("visitor", text(VISITOR)),
        ("status", text(status)),
        ("bucket", CqlValue::BigInt(bucket)),
        ("admitted_at", CqlValue::BigInt(T0_MS as i64)),
    ]
}

/// The zone and state of a `Change::Zone`; panics on anything else.
fn zone_change(change: Option<Change>) -> (String, Arc<ZoneState>) {
    match change {
        Some(Change::Zone { zone, state }) => (zone.to_string(), state),
        other => panic!("expected a zone change, got {other:?}"),
    }
}

#[test]
fn cdc_time_is_read_back_from_the_time_uuid() {
    let log = Log::zones();
    let row = log.row(INSERT, T0_MS + 1_234, &[]);
    assert_eq!(cdc_time_ms(&row), Some(T0_MS + 1_234));
}

#[test]
fn an_insert_becomes_a_zone_change() {
    let log = Log::zones();
    let mut t = CdcTranslator::new();
    let (zone, seen) = zone_change(t.translate(
        Table::Zones,
        &log.row(INSERT, T0_MS, &zone_values("checkout", &state(0, 0))),
    ));
    assert_eq!(zone, "checkout");
    assert_eq!(*seen, state(0, 0));
    assert_eq!(t.newest_ms(), T0_MS);
}

#[test]
fn an_update_becomes_a_zone_change() {
    let log = Log::zones();
    let mut t = CdcTranslator::new();
    zone_change(t.translate(
        Table::Zones,
        &log.row(INSERT, T0_MS, &zone_values("z", &state(0, 0))),
    ));
    let (_, seen) = zone_change(t.translate(
        Table::Zones,
        &log.row(UPDATE, T0_MS + 10, &zone_values("z", &state(1, 7))),
    ));
    assert_eq!((seen.version, seen.admitted_total), (1, 7));
    assert_eq!(t.newest_ms(), T0_MS + 10);
}

#[test]
fn deletes_are_ignored() {
    let log = Log::zones();
    let mut t = CdcTranslator::new();
    let key = [("zone", text("z"))];
    for op in [ROW_DELETE, PARTITION_DELETE, EXPIRED_ROW] {
        assert!(
            t.translate(Table::Zones, &log.row(op, T0_MS, &key))
                .is_none(),
            "operation {op}"
        );
    }
    // Even a delete row that somehow carries a state is not a new state.
    let full = zone_values("z", &state(3, 0));
    assert!(t
        .translate(Table::Zones, &log.row(ROW_DELETE, T0_MS, &full))
        .is_none());
    // Ignoring them did not record anything: the zone's first write still gets through.
    zone_change(t.translate(Table::Zones, &log.row(UPDATE, T0_MS, &full)));
}

#[test]
fn a_duplicate_row_produces_nothing_the_second_time() {
    let log = Log::zones();
    let mut t = CdcTranslator::new();
    let row = zone_values("z", &state(2, 1));
    zone_change(t.translate(Table::Zones, &log.row(UPDATE, T0_MS, &row)));
    assert!(t
        .translate(Table::Zones, &log.row(UPDATE, T0_MS, &row))
        .is_none());
}

#[test]
fn an_older_version_after_a_newer_one_is_dropped_per_zone() {
    let log = Log::zones();
    let mut t = CdcTranslator::new();
    let (_, seen) = zone_change(t.translate(
        Table::Zones,
        &log.row(UPDATE, T0_MS + 5, &zone_values("a", &state(5, 50))),
    ));
    assert_eq!(seen.version, 5);
    assert!(t
        .translate(
            Table::Zones,
            &log.row(UPDATE, T0_MS + 4, &zone_values("a", &state(4, 40)))
        )
        .is_none());
    // Versions are per zone: another zone's version 4 is news.
    let (zone, seen) = zone_change(t.translate(
        Table::Zones,
        &log.row(UPDATE, T0_MS + 4, &zone_values("b", &state(4, 40))),
    ));
    assert_eq!((zone.as_str(), seen.version), ("b", 4));
    // And zone a still moves on.
    let (_, seen) = zone_change(t.translate(
        Table::Zones,
        &log.row(UPDATE, T0_MS + 6, &zone_values("a", &state(6, 60))),
    ));
    assert_eq!(seen.version, 6);
}

#[test]
fn a_state_that_is_not_json_is_skipped() {
    let log = Log::zones();
    let mut t = CdcTranslator::new();
    for bad in ["{not json", "{\"version\": 3}", ""] {
        let row = [
            ("zone", text("z")),
            ("version", CqlValue::BigInt(3)),
            ("state", text(bad)),
        ];
        assert!(t
            .translate(Table::Zones, &log.row(UPDATE, T0_MS, &row))
            .is_none());
    }
    // An update without a state (null) is skipped too.
    let no_state = [("zone", text("z")), ("version", CqlValue::BigInt(3))];
    assert!(t
        .translate(Table::Zones, &log.row(UPDATE, T0_MS, &no_state))
        .is_none());
    // The bad rows left no trace: version 3 itself still gets through.
    let (_, seen) = zone_change(t.translate(
        Table::Zones,
        &log.row(UPDATE, T0_MS, &zone_values("z", &state(3, 0))),
    ));
    assert_eq!(seen.version, 3);
}

#[test]
fn a_revocation_becomes_a_revoked_change_once() {
    let log = Log::sessions();
    let mut t = CdcTranslator::new();
    let row = session_values("revoked", 1_750_000_600);
    match t.translate(Table::Sessions, &log.row(UPDATE, T0_MS, &row)) {
        Some(Change::Revoked {
            zone,
            visitor,
            until_s,
        }) => {
            assert_eq!(&*zone, "z");
            assert_eq!(visitor, VisitorId::parse(VISITOR).unwrap());
            assert_eq!(until_s, 1_750_000_600);
        }
        other => panic!("expected a revocation, got {other:?}"),
    }
    assert!(
        t.translate(Table::Sessions, &log.row(UPDATE, T0_MS, &row))
            .is_none(),
        "a redelivered revocation is not news"
    );
    // A later revocation of the same session with a later bucket is.
    let later = session_values("revoked", 1_750_000_900);
    assert!(matches!(
        t.translate(Table::Sessions, &log.row(UPDATE, T0_MS + 1, &later)),
        Some(Change::Revoked {
            until_s: 1_750_000_900,
            ..
        })
    ));
}

#[test]
fn reservations_and_activations_are_ignored() {
    let log = Log::sessions();
    let mut t = CdcTranslator::new();
    for (op, status) in [(INSERT, "reserved"), (UPDATE, "active"), (INSERT, "active")] {
        let row = session_values(status, 1_750_000_600);
        assert!(
            t.translate(Table::Sessions, &log.row(op, T0_MS, &row))
                .is_none(),
            "{status}"
        );
    }
    // A session row deleted (or expired) is no revocation either.
    let key = [("zone", text("z")), ("visitor", text(VISITOR))];
    assert!(t
        .translate(Table::Sessions, &log.row(ROW_DELETE, T0_MS, &key))
        .is_none());
}

#[test]
fn unreadable_revocations_are_skipped() {
    let log = Log::sessions();
    let mut t = CdcTranslator::new();
    let mut bad_visitor = session_values("revoked", 1_750_000_600);
    bad_visitor[1] = ("visitor", text("not-hex"));
    let mut no_bucket = session_values("revoked", 0);
    no_bucket.retain(|(n, _)| *n != "bucket");
    let negative = session_values("revoked", -5);
    for row in [bad_visitor, no_bucket, negative] {
        assert!(t
            .translate(Table::Sessions, &log.row(UPDATE, T0_MS, &row))
            .is_none());
    }
}

#[test]
fn expired_revocations_are_forgotten_but_live_ones_kept() {
    let log = Log::sessions();
    let mut t = CdcTranslator::new();
    let now_s = T0_MS / 1_000;
    // 1,100 revocations that ran out a second before now, then one that is still live.
    for i in 0..1_100u32 {
        let row = [
            ("zone", text("z")),
            ("visitor", text(&format!("{i:032x}"))),
            ("status", text("revoked")),
            ("bucket", CqlValue::BigInt(now_s as i64 - 1)),
        ];
        assert!(t
            .translate(Table::Sessions, &log.row(UPDATE, T0_MS, &row))
            .is_some());
    }
    let live = session_values("revoked", now_s as i64 + 60);
    assert!(t
        .translate(Table::Sessions, &log.row(UPDATE, T0_MS, &live))
        .is_some());
    assert!(
        t.revoked.len() < 1_000,
        "pruned: {} remembered",
        t.revoked.len()
    );
    assert!(t
        .translate(Table::Sessions, &log.row(UPDATE, T0_MS, &live))
        .is_none());
}

#[tokio::test]
async fn the_consumer_sends_changes_and_never_fails_on_a_bad_row() {
    let (sender, mut heard) = broadcast::channel(16);
    let newest_ms = Arc::new(AtomicU64::new(0));
    let shared = Arc::new(Shared {
        translator: Mutex::new(CdcTranslator::new()),
        sender,
        newest_ms: newest_ms.clone(),
    });
    let zones = FeedConsumerFactory {
        table: Table::Zones,
        shared: shared.clone(),
    };
    let sessions = FeedConsumerFactory {
        table: Table::Sessions,
        shared,
    };
    let (zone_log, session_log) = (Log::zones(), Log::sessions());
    let mut a = zones.new_consumer().await;
    let mut b = zones.new_consumer().await;
    let mut s = sessions.new_consumer().await;
    let bad = [("zone", text("z")), ("state", text("{"))];
    a.consume_cdc(zone_log.row(UPDATE, T0_MS, &bad))
        .await
        .expect("a bad row is skipped, not an error");
    a.consume_cdc(zone_log.row(UPDATE, T0_MS + 1, &zone_values("z", &state(1, 1))))
        .await
        .unwrap();
    // The same row through another stream group's consumer: shared dedup drops it.
    b.consume_cdc(zone_log.row(UPDATE, T0_MS + 1, &zone_values("z", &state(1, 1))))
        .await
        .unwrap();
    s.consume_cdc(session_log.row(UPDATE, T0_MS + 3, &session_values("revoked", 99)))
        .await
        .unwrap();
    s.consume_cdc(session_log.row(UPDATE, T0_MS + 2, &session_values("active", 99)))
        .await
        .unwrap();
    let (zone, seen) = zone_change(heard.try_recv().ok());
    assert_eq!((zone.as_str(), seen.version), ("z", 1));
    assert!(matches!(
        heard.try_recv(),
        Ok(Change::Revoked { until_s: 99, .. })
    ));
    assert!(heard.try_recv().is_err(), "nothing else was sent");
    assert_eq!(newest_ms.load(Ordering::Relaxed), T0_MS + 3);
}

#[test]
fn node_names_must_fit_a_checkpoint_table_name() {
    assert!(valid_node("node_1"));
    assert!(valid_node(&"a".repeat(MAX_NODE_NAME)));
    assert_eq!(
        format!("cdc_checkpoints_{}_sessions", "a".repeat(MAX_NODE_NAME)).len(),
        48
    );
    for bad in ["", "Node", "node-1", "a.b", &"a".repeat(MAX_NODE_NAME + 1)] {
        assert!(!valid_node(bad), "{bad:?}");
    }
}

// `USHER_SCYLLA=host:port` names a ScyllaDB node (CDC exists only there, not on Cassandra):
// `cargo test cdc -- --include-ignored` with it set runs the whole feed against that server.
// Without it the test fails, so it never passes silently; `make test` (which starts only
// Cassandra, since no ScyllaDB can run on the CI machine) skips it by name and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ScyllaDB: set USHER_SCYLLA=host:port"]
async fn the_feed_delivers_zone_changes_and_revocations_from_scylladb() {
    let contact = std::env::var("USHER_SCYLLA")
        .expect("USHER_SCYLLA=host:port must name a ScyllaDB node for this test");
    let session = Arc::new(
        scylla::client::session_builder::SessionBuilder::new()
            .known_node(&contact)
            .build()
            .await
            .expect("connect to USHER_SCYLLA"),
    );
    let ks = format!("usher_cdc_{:08x}", rand::random::<u32>());
    for ddl in [
        format!(
            "CREATE KEYSPACE {ks} WITH replication = \
             {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        ),
        format!(
            "CREATE TABLE {ks}.zones (zone text PRIMARY KEY, version bigint, state text) \
             WITH cdc = {{'enabled': true}}"
        ),
        format!(
            "CREATE TABLE {ks}.sessions (zone text, visitor text, status text, bucket bigint, \
             admitted_at bigint, PRIMARY KEY ((zone, visitor))) WITH cdc = {{'enabled': true}}"
        ),
    ] {
        session.query_unpaged(ddl, &[]).await.expect("schema");
    }
    session.await_schema_agreement().await.expect("agreement");
    let (sender, mut heard) = broadcast::channel(64);
    let newest_ms = Arc::new(AtomicU64::new(0));
    let options = CdcOptions {
        keyspace: ks.clone(),
        node: "test_node".to_string(),
        safety: Duration::from_secs(2),
        sleep: Duration::from_millis(500),
        resume: Duration::from_secs(60),
    };
    let now_ms = crate::clock::system().now_ms();
    let (mut readers, feed) = start(session.clone(), &options, now_ms, sender, newest_ms.clone())
        .await
        .expect("start the feed");
    let feed = tokio::spawn(feed);

    let written = state(1, 7);
    session
        .query_unpaged(
            format!("INSERT INTO {ks}.zones (zone, version, state) VALUES (?, ?, ?)"),
            ("z", 1i64, serde_json::to_string(&written).unwrap()),
        )
        .await
        .expect("write the zone");
    session
        .query_unpaged(
            format!(
                "UPDATE {ks}.sessions SET status = 'revoked', bucket = ? \
                 WHERE zone = ? AND visitor = ?"
            ),
            (1_999_999_999i64, "z", VISITOR),
        )
        .await
        .expect("revoke");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (mut zone_seen, mut revoked_seen) = (false, false);
    while !(zone_seen && revoked_seen) {
        let change = tokio::time::timeout_at(deadline, heard.recv())
            .await
            .expect("both changes within 60 s")
            .expect("feed open");
        match change {
            Change::Zone { zone, state } => {
                assert_eq!((&*zone, &*state), ("z", &written));
                zone_seen = true;
            }
            Change::Revoked {
                zone,
                visitor,
                until_s,
            } => {
                assert_eq!(&*zone, "z");
                assert_eq!(visitor, VisitorId::parse(VISITOR).unwrap());
                assert_eq!(until_s, 1_999_999_999);
                revoked_seen = true;
            }
        }
    }
    assert!(newest_ms.load(Ordering::Relaxed) >= now_ms.saturating_sub(5_000));
    readers.stop();
    feed.abort();
    let _ = session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await;
}

/// On a CQL server without CDC (Apache Cassandra, at `USHER_CQL`), starting the feed must fail
/// at once instead of hanging (the library's reader would retry forever) or panicking, so the
/// caller can report it and fall back to the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a CQL server: set USHER_CQL=host:port (make test starts Cassandra and sets it)"]
async fn on_a_server_without_cdc_the_feed_does_not_start() {
    let contact =
        std::env::var("USHER_CQL").expect("USHER_CQL names a CQL server, like 127.0.0.1:9042");
    let session = Arc::new(
        scylla::client::session_builder::SessionBuilder::new()
            .known_node(&contact)
            .build()
            .await
            .expect("connect to USHER_CQL"),
    );
    let ks = format!("usher_cdc_{:08x}", rand::random::<u32>());
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE {ks} WITH replication = \
                 {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            ),
            &[],
        )
        .await
        .expect("keyspace");
    let options = CdcOptions {
        keyspace: ks.clone(),
        node: "test_node".to_string(),
        safety: Duration::from_secs(2),
        sleep: Duration::from_millis(500),
        resume: Duration::from_secs(60),
    };
    let (sender, _heard) = broadcast::channel(4);
    let now_ms = crate::clock::system().now_ms();
    let outcome = match start(
        session.clone(),
        &options,
        now_ms,
        sender,
        Default::default(),
    )
    .await
    {
        Err(e) => Err(e),
        Ok((_readers, feed)) => tokio::time::timeout(Duration::from_secs(30), feed)
            .await
            .expect("the feed ends within 30 s"),
    };
    eprintln!("feed on a server without CDC: {outcome:?}");
    assert!(matches!(outcome, Err(StoreError::Unavailable(_))));
    let _ = session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await;
}
