//! The embedded store: the contract suite, and durability across restarts and torn writes.

use super::*;
use crate::admission::{bucket_of, VisitorId};

const NOW: u64 = 1_800_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_store_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path(), NOW).expect("open"));
    crate::store::contract::check_store(store, "embedded_").await;
}

fn record_with_session() -> ZoneRecord {
    let mut record = crate::store::contract::record();
    record
        .ledger
        .open_session(VisitorId(7), bucket_of(NOW + 60_000));
    record.state.cursor = QueueKey {
        rank: NOW - 1,
        visitor: VisitorId(1),
    };
    record.state.admitted_total = 1;
    record.state.version = 3;
    record
}

#[tokio::test]
async fn state_survives_a_crash_without_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = record_with_session();
    let queued = QueueKey {
        rank: NOW,
        visitor: VisitorId(9),
    };
    {
        let store = EmbeddedStore::open(dir.path(), NOW).expect("open");
        assert!(store
            .compare_and_set("z", None, &record)
            .await
            .expect("cas"));
        store.touch("z", queued, NOW).await.expect("touch");
        // Dropped without a snapshot: only the write-ahead log has the changes.
    }
    let store = EmbeddedStore::open(dir.path(), NOW + 5_000).expect("reopen");
    let restored = store.load("z").await.expect("load").expect("record");
    assert_eq!(restored, record, "zone state and ledger are back");
    assert_eq!(restored.ledger.active(NOW + 5_000), 1);
    assert_eq!(
        store
            .live_after("z", QueueKey::default(), NOW, 10)
            .await
            .expect("scan"),
        vec![queued]
    );
}

#[tokio::test]
async fn a_torn_last_log_line_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = record_with_session();
    {
        let store = EmbeddedStore::open(dir.path(), NOW).expect("open");
        assert!(store
            .compare_and_set("z", None, &record)
            .await
            .expect("cas"));
    }
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("wal.jsonl"))
        .expect("log");
    std::io::Write::write_all(&mut log, b"{\"set\":{\"zone\":\"z\",\"rec").expect("write");
    let store = EmbeddedStore::open(dir.path(), NOW).expect("reopen");
    assert_eq!(store.load("z").await.expect("load"), Some(record));
}

#[tokio::test]
async fn snapshots_fold_the_log_and_keep_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = record_with_session();
    let store = EmbeddedStore::open(dir.path(), NOW).expect("open");
    assert!(store
        .compare_and_set("z", None, &record)
        .await
        .expect("cas"));
    for i in 0..100 {
        let k = QueueKey {
            rank: NOW + i,
            visitor: VisitorId(i as u128),
        };
        store.touch("z", k, NOW).await.expect("touch");
    }
    store.snapshot().expect("snapshot");
    let log_len = std::fs::metadata(dir.path().join("wal.jsonl"))
        .expect("log")
        .len();
    assert_eq!(log_len, 0, "the log is empty after a snapshot");
    drop(store);
    let store = EmbeddedStore::open(dir.path(), NOW).expect("reopen");
    assert_eq!(store.load("z").await.expect("load"), Some(record));
    assert_eq!(store.queue_len("z"), 100);
}

#[tokio::test]
async fn the_change_feed_carries_every_committed_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path(), NOW).expect("open");
    let mut feed = store.subscribe();
    let record = record_with_session();
    assert!(store
        .compare_and_set("z", None, &record)
        .await
        .expect("cas"));
    assert!(!store
        .compare_and_set("z", None, &record)
        .await
        .expect("lost cas"));
    let Change::Zone { zone, record: seen } = feed.try_recv().expect("one change");
    assert_eq!((&*zone, seen.state.version), ("z", 3));
    assert!(
        feed.try_recv().is_err(),
        "a lost compare-and-set publishes nothing"
    );
}
