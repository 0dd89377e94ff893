//! The store contract: one suite every backend must pass (the embedded store here; the CQL store
//! runs the same functions when a server is available).

use super::{update_zone, Store, ZoneRecord};
use crate::admission::{Limits, QueueKey, VisitorId, ZoneState};
use std::sync::Arc;
use std::time::Duration;

const NOW: u64 = 1_800_000_000_000;

fn key(rank: u64, visitor: u128) -> QueueKey {
    QueueKey {
        rank,
        visitor: VisitorId(visitor),
    }
}

/// A fresh zone record with small limits, for store tests.
pub(crate) fn record() -> ZoneRecord {
    let limits = Limits {
        capacity: 10,
        admit_per_minute: 60,
        burst: 1,
        session_ttl: Duration::from_secs(60),
        claim_window: Duration::from_secs(10),
        abandon_after: Duration::from_secs(30),
    };
    ZoneRecord {
        state: ZoneState::new(&limits, NOW),
        ledger: Default::default(),
    }
}

/// Runs every contract check against `store`, using zone names prefixed with `prefix`. Call it
/// from a multi-threaded runtime so the concurrent-update check really races.
pub async fn check_store(store: Arc<dyn Store>, prefix: &str) {
    compare_and_set_is_exact(store.as_ref(), &format!("{prefix}cas")).await;
    queue_is_ordered_and_filtered(store.as_ref(), &format!("{prefix}queue")).await;
    concurrent_updates_are_not_lost(store, &format!("{prefix}update")).await;
}

async fn compare_and_set_is_exact(store: &dyn Store, zone: &str) {
    assert!(store.load(zone).await.expect("load").is_none());
    let mut r = record();
    assert!(store.compare_and_set(zone, None, &r).await.expect("create"));
    assert!(
        !store
            .compare_and_set(zone, None, &r)
            .await
            .expect("create twice"),
        "only if absent"
    );
    r.state.version = 1;
    r.state.cursor = key(5, 5);
    assert!(
        !store
            .compare_and_set(zone, Some(7), &r)
            .await
            .expect("stale"),
        "wrong version"
    );
    assert!(store.compare_and_set(zone, Some(0), &r).await.expect("cas"));
    assert_eq!(store.load(zone).await.expect("load"), Some(r));
}

async fn queue_is_ordered_and_filtered(store: &dyn Store, zone: &str) {
    for (rank, visitor, seen) in [
        (30, 1, NOW),
        (10, 2, NOW - 60_000),
        (20, 3, NOW),
        (20, 1, NOW),
    ] {
        store
            .touch(zone, key(rank, visitor), seen)
            .await
            .expect("touch");
    }
    // Touching again is a heartbeat, not a second entry.
    store.touch(zone, key(20, 3), NOW).await.expect("touch");
    assert_eq!(
        store
            .waiting(zone, QueueKey::default())
            .await
            .expect("waiting"),
        4
    );
    let live = store
        .live_after(zone, QueueKey::default(), NOW - 30_000, 10)
        .await
        .expect("scan");
    assert_eq!(
        live,
        vec![key(20, 1), key(20, 3), key(30, 1)],
        "ordered, stale entry skipped"
    );
    let limited = store
        .live_after(zone, key(20, 1), 0, 1)
        .await
        .expect("scan");
    assert_eq!(limited, vec![key(20, 3)], "strictly after, limited");
    assert_eq!(
        store
            .ahead(zone, key(10, 2), key(30, 1))
            .await
            .expect("ahead"),
        2
    );
    assert_eq!(
        store
            .ahead(zone, key(30, 1), key(20, 3))
            .await
            .expect("ahead"),
        0,
        "admitted"
    );
    // A heartbeat revives a stale entry.
    store.touch(zone, key(10, 2), NOW).await.expect("touch");
    assert_eq!(
        store
            .live_after(zone, QueueKey::default(), NOW - 1, 1)
            .await
            .expect("scan"),
        vec![key(10, 2)]
    );
    store
        .forget_through(zone, key(20, 3))
        .await
        .expect("forget");
    assert_eq!(
        store
            .waiting(zone, QueueKey::default())
            .await
            .expect("waiting"),
        1
    );
}

async fn concurrent_updates_are_not_lost(store: Arc<dyn Store>, zone: &str) {
    let tasks: Vec<_> = (0..50u32)
        .map(|i| {
            let store = store.clone();
            let zone = zone.to_string();
            tokio::spawn(async move {
                update_zone(store.as_ref(), &zone, record, |r| {
                    r.state.admitted_total += 1;
                    Some(i)
                })
                .await
                .expect("update")
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let r = store.load(zone).await.expect("load").expect("exists");
    assert_eq!(
        r.state.admitted_total, 50,
        "every update landed exactly once"
    );
}
