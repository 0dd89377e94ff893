//! The store contract: one suite every backend must pass (the embedded store here; the CQL store
//! runs the same functions when a server is available).

use super::Store;
use crate::admission::{bucket_of, Claim, Limits, QueueKey, VisitorId, ZoneState};
use std::sync::Arc;
use std::time::Duration;

const NOW: u64 = 1_800_000_000_000;

fn key(rank: u64, visitor: u128) -> QueueKey {
    QueueKey {
        rank,
        visitor: VisitorId(visitor),
    }
}

/// Small limits, for store tests.
pub(crate) fn limits() -> Limits {
    Limits {
        capacity: 10,
        admit_per_minute: 60,
        burst: 1,
        session_ttl: Duration::from_secs(60),
        claim_window: Duration::from_secs(10),
        abandon_after: Duration::from_secs(30),
    }
}

/// A fresh zone state at `now`.
pub(crate) fn state(now: u64) -> ZoneState {
    ZoneState::new(&limits(), now)
}

/// Commits a tick at `now` that admits `admitted` on top of the stored state (or a fresh one,
/// if `expected` is `None`); returns whether it applied.
pub(crate) async fn commit(
    store: &dyn Store,
    zone: &str,
    expected: Option<u64>,
    admitted: &[QueueKey],
    now: u64,
) -> bool {
    let mut next = match expected {
        Some(_) => store.load(zone).await.expect("load").unwrap_or(state(now)),
        None => state(now),
    };
    let grant = next.apply_tick(admitted.to_vec(), 0, 0, &limits(), now);
    store
        .commit_tick(zone, expected, &next, &grant)
        .await
        .expect("commit")
        .is_some()
}

/// Runs every contract check against `store`, using zone names prefixed with `prefix`. Call it
/// from a multi-threaded runtime so the concurrency checks really race.
pub async fn check_store(store: Arc<dyn Store>, prefix: &str) {
    commit_is_an_exact_compare_and_set(store.as_ref(), &format!("{prefix}cas")).await;
    queue_is_ordered_and_filtered(store.as_ref(), &format!("{prefix}queue")).await;
    slots_follow_their_life(store.as_ref(), &format!("{prefix}slots")).await;
    an_identity_keeps_its_first_arrival(store.as_ref(), &format!("{prefix}identity")).await;
    overrides_are_replaced_whole(store.as_ref(), &format!("{prefix}overrides")).await;
    codes_grant_each_use_once(store.clone(), &format!("{prefix}codes")).await;
    concurrent_writers_lose_nothing(store, &format!("{prefix}race")).await;
}

async fn overrides_are_replaced_whole(store: &dyn Store, zone: &str) {
    use crate::config::overrides::Overrides;
    assert_eq!(store.overrides(zone).await.expect("none yet"), None);
    let (o, problems) = Overrides::default().patched(
        zone,
        &serde_json::json!({"admit_per_minute": 30, "message": "soon"}),
        "sre",
        "10.0.0.5",
        NOW,
    );
    assert!(problems.is_empty(), "{problems:?}");
    store.set_overrides(zone, &o).await.expect("set");
    assert_eq!(store.overrides(zone).await.expect("read"), Some(o));
    store
        .set_overrides(zone, &Overrides::default())
        .await
        .expect("clear");
    assert!(store
        .overrides(zone)
        .await
        .expect("read")
        .is_none_or(|o| o.is_empty()));
}

async fn codes_grant_each_use_once(store: Arc<dyn Store>, zone: &str) {
    use super::PriorityCode;
    let until_s = NOW / 1_000 + 600;
    let code = |hash: &str, uses| PriorityCode {
        hash: hash.to_string(),
        uses,
        until_s,
    };
    store
        .add_codes(zone, &[code("twice", 2), code("five", 5), code("old", 3)])
        .await
        .expect("add");
    let take = |hash: &'static str, now: u64| {
        let store = store.clone();
        let zone = zone.to_string();
        async move { store.use_code(&zone, hash, now).await.expect("use") }
    };
    assert!(take("twice", NOW).await);
    assert!(take("twice", NOW).await);
    assert!(!take("twice", NOW).await, "used up");
    assert!(!take("unknown", NOW).await);
    assert!(!take("old", (until_s + 1) * 1_000).await, "expired");
    // Twenty at once: five get a use, whatever the interleaving.
    let tasks: Vec<_> = (0..20).map(|_| tokio::spawn(take("five", NOW))).collect();
    let mut granted = 0;
    for task in tasks {
        granted += u32::from(task.await.expect("task"));
    }
    assert_eq!(granted, 5, "each use granted once");
}

async fn an_identity_keeps_its_first_arrival(store: &dyn Store, zone: &str) {
    let (alice, bob) = (VisitorId(0xa11ce), VisitorId(0xb0b));
    let until = NOW / 1_000 + 600;
    let rank = |visitor, rank| store.identity_rank(zone, visitor, rank, until, NOW);
    assert_eq!(rank(alice, 100).await.expect("first"), 100);
    assert_eq!(
        rank(alice, 250).await.expect("second device"),
        100,
        "the first arrival"
    );
    assert_eq!(rank(bob, 300).await.expect("another identity"), 300);
    assert_eq!(
        store
            .identity_rank("other-zone-of-identity", alice, 400, until, NOW)
            .await
            .expect("another zone"),
        400,
        "per zone"
    );
}

async fn commit_is_an_exact_compare_and_set(store: &dyn Store, zone: &str) {
    assert!(store.load(zone).await.expect("load").is_none());
    assert!(commit(store, zone, None, &[], NOW).await, "create");
    assert!(!commit(store, zone, None, &[], NOW).await, "only if absent");
    assert!(
        !commit(store, zone, Some(7), &[], NOW).await,
        "wrong version"
    );
    assert!(commit(store, zone, Some(1), &[key(5, 5)], NOW).await);
    let loaded = store.load(zone).await.expect("load").expect("exists");
    assert_eq!((loaded.version, loaded.cursor), (2, key(5, 5)));
    assert_eq!(loaded.admitted_total, 1);
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
    let start = QueueKey::default();
    assert_eq!(store.waiting(zone, start).await.expect("waiting"), 4);
    let live = store
        .live_after(zone, start, NOW - 30_000, 10)
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
            .live_after(zone, start, NOW - 1, 1)
            .await
            .expect("scan"),
        vec![key(10, 2)]
    );
    // A tick admitting up to (20, 3) drops those entries.
    assert!(
        commit(
            store,
            zone,
            None,
            &[key(10, 2), key(20, 1), key(20, 3)],
            NOW
        )
        .await
    );
    assert_eq!(store.waiting(zone, start).await.expect("waiting"), 1);
    assert!(
        store
            .returned(zone, key(20, 3), 0, 10)
            .await
            .expect("returned")
            .is_empty(),
        "nobody came back yet"
    );
    // A visitor the cursor passed comes back: found at or below the cursor, in order.
    store.touch(zone, key(15, 9), NOW).await.expect("touch");
    // One the tick admitted (holding a reservation) is not "returned", even if its entry is back.
    store.touch(zone, key(20, 1), NOW).await.expect("touch");
    store
        .touch(zone, key(12, 9), NOW - 60_000)
        .await
        .expect("touch");
    assert_eq!(
        store
            .returned(zone, key(20, 3), NOW - 30_000, 10)
            .await
            .expect("returned"),
        vec![key(15, 9)],
        "live ones only"
    );
    assert_eq!(
        store.waiting(zone, key(20, 3)).await.expect("waiting"),
        1,
        "returned visitors are not counted as waiting after the cursor"
    );
}

async fn slots_follow_their_life(store: &dyn Store, zone: &str) {
    let (a, b) = (key(NOW - 2, 21), key(NOW - 1, 22));
    assert!(commit(store, zone, None, &[a, b], NOW).await);
    assert_eq!(
        store.active(zone, NOW).await.expect("active"),
        2,
        "reserved"
    );
    let to = bucket_of(NOW + 60_000);
    let granted = Claim::Granted {
        bucket: to,
        admitted_at_ms: NOW,
    };
    assert_eq!(
        store.claim(zone, a.visitor, to, NOW).await.expect("claim"),
        granted
    );
    assert_eq!(
        store
            .claim(zone, a.visitor, to + 9, NOW + 1)
            .await
            .expect("claim"),
        granted,
        "a second tab gets the same session"
    );
    assert_eq!(
        store.active(zone, NOW).await.expect("active"),
        2,
        "moved, not added"
    );
    assert_eq!(
        store
            .claim(zone, VisitorId(99), to, NOW)
            .await
            .expect("claim"),
        Claim::NotReserved
    );
    assert!(store
        .renew(zone, a.visitor, to, to + 30, NOW)
        .await
        .expect("renew"));
    assert!(
        !store
            .renew(zone, a.visitor, to, to + 60, NOW)
            .await
            .expect("renew"),
        "a stale renewal moves nothing"
    );
    assert_eq!(
        store.active(zone, (to + 10) * 1_000).await.expect("active"),
        1,
        "after the old expiry the renewed session still counts; b's reservation lapsed"
    );
    assert_eq!(
        store
            .claim(zone, b.visitor, to, (to + 10) * 1_000)
            .await
            .expect("claim"),
        Claim::NotReserved,
        "too late"
    );
    assert_eq!(
        store.release(zone, a.visitor, NOW).await.expect("release"),
        Some(to + 30)
    );
    assert_eq!(
        store.release(zone, a.visitor, NOW).await.expect("release"),
        None
    );
    assert_eq!(
        store.revocations(zone, NOW).await.expect("revocations"),
        vec![(a.visitor, to + 30)],
        "a starting node can load the revocation"
    );
    assert_eq!(
        store.active(zone, NOW).await.expect("active"),
        1,
        "b's reservation"
    );
    assert_eq!(
        store.claim(zone, a.visitor, to, NOW).await.expect("claim"),
        Claim::Ended,
        "a released place is used up"
    );
}

async fn concurrent_writers_lose_nothing(store: Arc<dyn Store>, zone: &str) {
    let visitors: Vec<QueueKey> = (0..20)
        .map(|i| key(NOW - 100 + i, 100 + i as u128))
        .collect();
    assert!(commit(store.as_ref(), zone, None, &visitors, NOW).await);
    // Ticks racing from one version: exactly one wins.
    let ticks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let zone = zone.to_string();
            tokio::spawn(async move { commit(store.as_ref(), &zone, Some(1), &[], NOW).await })
        })
        .collect();
    let mut won = 0;
    for t in ticks {
        won += t.await.expect("task") as usize;
    }
    assert_eq!(won, 1, "one tick per version");
    // Every visitor claims from three tabs at once: one session each, the count stays exact.
    let to = bucket_of(NOW + 60_000);
    let claims: Vec<_> = visitors
        .iter()
        .flat_map(|k| std::iter::repeat_n(k.visitor, 3))
        .map(|v| {
            let store = store.clone();
            let zone = zone.to_string();
            tokio::spawn(async move { store.claim(&zone, v, to, NOW).await.expect("claim") })
        })
        .collect();
    for c in claims {
        assert!(matches!(c.await.expect("task"), Claim::Granted { .. }));
    }
    assert_eq!(store.active(zone, NOW).await.expect("active"), 20);
    assert_eq!(
        store
            .active(zone, (NOW / 1_000 + 30) * 1_000)
            .await
            .expect("active"),
        20,
        "every reservation became a session"
    );
}
