//! The embedded store: the contract suite, and durability across restarts and torn writes
//! (damage, generations, locks and failed writes: `files_tests.rs`).

use super::*;
use crate::admission::{bucket_of, VisitorId};
use crate::store::contract::{commit, state};

const NOW: u64 = 1_800_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_store_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path(), NOW).expect("open"));
    crate::store::contract::check_store(store, "embedded_").await;
}

fn key(rank: u64, visitor: u128) -> QueueKey {
    QueueKey {
        rank,
        visitor: VisitorId(visitor),
    }
}

/// A zone where visitor 7 was admitted and holds a session, visitor 8 holds a reservation and
/// visitor 9 waits. Returns the session's bucket.
async fn admitted_claimed_and_waiting(store: &EmbeddedStore) -> u64 {
    for k in [key(NOW - 3, 7), key(NOW - 2, 8), key(NOW, 9)] {
        store.touch("z", k, NOW).await.expect("touch");
    }
    let admitted = vec![key(NOW - 3, 7), key(NOW - 2, 8)];
    assert!(commit(store, "z", None, &admitted, NOW).await);
    let to = bucket_of(NOW + 60_000);
    let claimed = store
        .claim("z", VisitorId(7), to, NOW)
        .await
        .expect("claim");
    assert!(matches!(claimed, Claim::Granted { .. }));
    to
}

#[tokio::test]
async fn state_survives_a_crash_without_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (before, to) = {
        let store = EmbeddedStore::open(dir.path(), NOW).expect("open");
        let to = admitted_claimed_and_waiting(&store).await;
        // Dropped without a snapshot: only the write-ahead log has the changes.
        (store.load("z").await.expect("load"), to)
    };
    let store = EmbeddedStore::open(dir.path(), NOW + 5_000).expect("reopen");
    assert_eq!(
        store.load("z").await.expect("load"),
        before,
        "zone state is back"
    );
    assert_eq!(
        store.active("z", NOW + 5_000).await.expect("active"),
        2,
        "the session and the reservation still hold their slots"
    );
    assert_eq!(
        store
            .claim("z", VisitorId(7), to + 30, NOW + 5_000)
            .await
            .expect("claim"),
        Claim::Granted {
            bucket: to,
            admitted_at_ms: NOW
        },
        "the session is the same one"
    );
    assert!(
        matches!(
            store
                .claim("z", VisitorId(8), to, NOW + 5_000)
                .await
                .expect("claim"),
            Claim::Granted { .. }
        ),
        "the reservation can still be claimed"
    );
    assert_eq!(
        store
            .live_after("z", QueueKey::default(), NOW, 10)
            .await
            .expect("scan"),
        vec![key(NOW, 9)],
        "admitted entries left the queue, the waiting one is back"
    );
}

#[tokio::test]
async fn identities_places_survive_a_crash_and_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let until = NOW / 1_000 + 600;
    let (alice, bob) = (VisitorId(0xa11ce), VisitorId(0xb0b));
    {
        let store = EmbeddedStore::open(dir.path(), NOW).expect("open");
        store
            .identity_rank("z", alice, 100, until, NOW)
            .await
            .expect("alice");
        // Dropped without a snapshot: the log has it.
    }
    {
        let store = EmbeddedStore::open(dir.path(), NOW + 1_000).expect("reopen");
        let rank = store
            .identity_rank("z", alice, 900, until, NOW + 1_000)
            .await;
        assert_eq!(rank.expect("alice again"), 100, "from the log");
        store
            .identity_rank("z", bob, 200, until, NOW)
            .await
            .expect("bob");
        store.close().expect("close: the final snapshot");
    }
    let store = EmbeddedStore::open(dir.path(), NOW + 2_000).expect("reopen");
    for (who, first) in [(alice, 100), (bob, 200)] {
        let rank = store.identity_rank("z", who, 999, until, NOW + 2_000).await;
        assert_eq!(rank.expect("again"), first, "from the snapshot");
    }
    // Past its time, an identity's place is a new one.
    let later = (until + 1) * 1_000;
    let rank = store
        .identity_rank("z", alice, later, until + 600, later)
        .await;
    assert_eq!(rank.expect("expired"), later);
}

#[tokio::test]
async fn codes_and_overrides_survive_a_crash_and_a_snapshot() {
    use crate::config::overrides::Overrides;
    use crate::store::PriorityCode;
    let dir = tempfile::tempdir().expect("tempdir");
    let (overrides, _) = Overrides::default().patched(
        "z",
        &serde_json::json!({"mode": "paused"}),
        "sre",
        "::1",
        NOW,
    );
    let code = PriorityCode {
        hash: "h".into(),
        uses: 3,
        until_s: NOW / 1_000 + 600,
    };
    {
        let store = EmbeddedStore::open(dir.path(), NOW).expect("open");
        store.add_codes("z", &[code]).await.expect("codes");
        assert!(store.use_code("z", "h", NOW).await.expect("use"));
        store.set_overrides("z", &overrides).await.expect("set");
        // Dropped without a snapshot: the log has it.
    }
    {
        let store = EmbeddedStore::open(dir.path(), NOW).expect("reopen");
        assert_eq!(
            store.overrides("z").await.expect("read"),
            Some(overrides.clone())
        );
        assert!(store
            .use_code("z", "h", NOW)
            .await
            .expect("second use, from the log"));
        store.close().expect("close: the final snapshot");
    }
    let store = EmbeddedStore::open(dir.path(), NOW).expect("reopen");
    assert_eq!(store.overrides("z").await.expect("read"), Some(overrides));
    assert!(store
        .use_code("z", "h", NOW)
        .await
        .expect("third, from the snapshot"));
    assert!(!store.use_code("z", "h", NOW).await.expect("none left"));
}

#[tokio::test]
async fn a_torn_last_log_line_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = EmbeddedStore::open(dir.path(), NOW).expect("open");
        admitted_claimed_and_waiting(&store).await;
    }
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("wal-1.jsonl"))
        .expect("log");
    std::io::Write::write_all(&mut log, b"0badc0de {\"tick\":{\"zone\":\"z\",\"sta")
        .expect("write");
    let store = EmbeddedStore::open(dir.path(), NOW).expect("reopen");
    assert_eq!(
        store.load("z").await.expect("load").map(|s| s.version),
        Some(1)
    );
    assert_eq!(store.active("z", NOW).await.expect("active"), 2);
}

#[tokio::test]
async fn snapshots_fold_the_log_and_keep_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path(), NOW).expect("open");
    admitted_claimed_and_waiting(&store).await;
    store
        .release("z", VisitorId(7), NOW)
        .await
        .expect("release");
    for i in 0..100 {
        store
            .touch("z", key(NOW + 1 + i, i as u128), NOW)
            .await
            .expect("touch");
    }
    let before = store.load("z").await.expect("load");
    store.snapshot().expect("snapshot");
    assert!(
        !dir.path().join("wal-1.jsonl").exists(),
        "the old log is gone"
    );
    let log = std::fs::read(dir.path().join("wal-2.jsonl")).expect("log");
    assert_eq!(
        log.iter().filter(|b| **b == b'\n').count(),
        1,
        "the new log holds only its header"
    );
    drop(store);
    let store = EmbeddedStore::open(dir.path(), NOW).expect("reopen");
    assert_eq!(store.load("z").await.expect("load"), before);
    assert_eq!(store.queue_len("z"), 101);
    assert_eq!(
        store.active("z", NOW).await.expect("active"),
        1,
        "8's reservation"
    );
    assert_eq!(
        store.revocations("z", NOW).await.expect("revocations"),
        vec![(VisitorId(7), bucket_of(NOW + 60_000))],
        "the release is remembered"
    );
}

#[tokio::test]
async fn the_change_feed_carries_every_committed_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path(), NOW).expect("open");
    let mut feed = store.subscribe();
    assert!(commit(&store, "z", None, &[], NOW).await);
    assert!(!commit(&store, "z", None, &[], NOW).await, "lost");
    let Ok(Change::Zone { zone, state: seen }) = feed.try_recv() else {
        panic!("expected a zone change");
    };
    assert_eq!((&*zone, seen.version), ("z", state(NOW).version + 1));
    assert!(
        feed.try_recv().is_err(),
        "a lost compare-and-set publishes nothing"
    );
}
