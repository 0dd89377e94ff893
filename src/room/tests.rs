//! The room end to end without sockets: a manual clock, the embedded store and the exchanger,
//! driven through `Room::handle` exactly as the proxy drives it.

use super::*;
use crate::admission::{Claim, QueueKey};
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::store::embedded::EmbeddedStore;
use crate::token::{Claims, Keyring};

const T0: u64 = 1_800_000_000_000;

struct Harness {
    clock: Arc<ManualClock>,
    room: Room,
    _dir: tempfile::TempDir,
}

/// A key in a fresh temp dir and a config with one zone, `checkout`, written as `zone` (TOML
/// lines of `[zones.checkout]`); data goes to `<dir>/data`.
fn room_config(zone: &str) -> (Config, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = crate::token::keys::generate_ed25519().0;
    std::fs::write(dir.path().join("k.pem"), key).expect("key");
    let text = format!(
        "[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n\
         [tokens]\nsigning_key = {{ kid = \"k\", file = \"k.pem\" }}\n\
         [store]\ndata_dir = \"data\"\n\
         [zones.checkout]\npaths = [\"/checkout\"]\n{zone}\n"
    );
    let config = crate::config::parse(&text, dir.path()).expect("valid");
    (config, dir)
}

fn harness(zone_extra: &str) -> Harness {
    let (config, dir) = room_config(&format!(
        "title = \"Big <Show>\"\ncapacity = 2\nadmit_per_minute = 60\nburst = 2\n\
         session_ttl = \"60s\"\nclaim_window = \"10s\"\n{zone_extra}"
    ));
    let clock = Arc::new(ManualClock::new(T0));
    let store = Arc::new(EmbeddedStore::open(&config.store.data_dir, T0).expect("store"));
    let tokens = Tokens::new(Keyring::load(&config.tokens).expect("keys"), "usher", 1_000);
    let room = Room::new(&config, tokens, store, clock.clone(), Metrics::new());
    Harness {
        clock,
        room,
        _dir: dir,
    }
}

impl Harness {
    /// One exchanger pass, as the node's background work runs it.
    async fn tick(&self) {
        self.room.tick().await;
    }
}

/// A browser: keeps the cookie usher sets.
#[derive(Default)]
struct Visitor {
    cookie: Option<String>,
}

impl Visitor {
    async fn get(&mut self, h: &Harness, path: &str) -> Outcome {
        let (path, query) = path
            .split_once('?')
            .map_or((path, None), |(p, q)| (p, Some(q)));
        let facts = RequestFacts {
            host: "shop.test",
            path,
            query,
            cookie: self.cookie.as_deref(),
            wants_json: false,
            shows_pages: true,
            accept_language: None,
        };
        let outcome = h.room.handle(&facts).await;
        let set = match &outcome {
            Outcome::Forward(f) => f.set_cookie.clone(),
            Outcome::Reply(r) => r.set_cookie.clone(),
        };
        if let Some(set) = set {
            self.cookie = set.split(';').next().map(str::to_string);
        }
        outcome
    }

    async fn status(&mut self, h: &Harness) -> serde_json::Value {
        match self.get(h, "/_usher/status").await {
            Outcome::Reply(r) => serde_json::from_slice(&r.body).expect("json"),
            other => panic!("status was forwarded: {other:?}"),
        }
    }

    fn claims(&self, h: &Harness) -> Claims {
        let cookie = self.cookie.as_deref().expect("a cookie");
        let token = cookie.split_once('=').expect("name=value").1;
        (*h.room
            .tokens()
            .verify(token, h.clock.now_ms())
            .expect("valid"))
        .clone()
    }
}

fn forwarded(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Forward(f) if f.session.is_some())
}

#[tokio::test]
async fn quiet_zone_admits_then_queues_then_lets_the_next_one_in() {
    let h = harness("");
    let mut a = Visitor::default();
    let mut b = Visitor::default();
    let mut c = Visitor::default();
    assert!(
        forwarded(&a.get(&h, "/checkout").await),
        "quiet: straight in"
    );
    assert!(
        forwarded(&b.get(&h, "/checkout").await),
        "burst of 2 allows a second"
    );
    h.clock.advance(Duration::from_millis(5));
    let page = c.get(&h, "/checkout").await;
    let Outcome::Reply(reply) = page else {
        panic!("the third visitor should wait");
    };
    let html = String::from_utf8(reply.body).expect("utf8");
    assert!(html.contains("Big &lt;Show&gt;"), "title escaped");
    assert!(
        html.contains("http-equiv=\"refresh\""),
        "refreshes without JavaScript"
    );
    assert_eq!(c.status(&h).await["position"], 1);
    // Full: ticks admit nobody until a slot frees.
    h.clock.advance(Duration::from_secs(2));
    h.tick().await;
    assert_eq!(c.status(&h).await["state"], "waiting");
    assert!(
        forwarded(&a.get(&h, "/checkout/pay").await),
        "a keeps going with its session"
    );
    h.room.release("checkout", a.claims(&h).vid).await;
    assert!(
        !forwarded(&a.get(&h, "/checkout").await),
        "a released token is refused"
    );
    h.tick().await;
    let status = c.status(&h).await;
    assert_eq!(
        status["state"], "admitted",
        "the status call swapped the token: {status}"
    );
    assert!(forwarded(&c.get(&h, "/checkout").await));
}

#[tokio::test]
async fn the_queue_is_fifo_and_positions_count_down() {
    let h = harness("mode = \"queue_all\"");
    let mut visitors: Vec<Visitor> = Vec::new();
    for _ in 0..5 {
        h.clock.advance(Duration::from_millis(3));
        let mut v = Visitor::default();
        assert!(
            !forwarded(&v.get(&h, "/checkout").await),
            "queue_all queues everyone"
        );
        visitors.push(v);
    }
    for (i, v) in visitors.iter_mut().enumerate() {
        assert_eq!(v.status(&h).await["position"], i as u64 + 1);
    }
    h.tick().await;
    let mut admitted = Vec::new();
    for v in visitors.iter_mut() {
        admitted.push(v.status(&h).await["state"] == "admitted");
    }
    assert_eq!(
        admitted,
        [true, true, false, false, false],
        "the two oldest, nobody else"
    );
    assert_eq!(
        visitors[2].status(&h).await["position"],
        1,
        "positions moved up"
    );
    assert_eq!(visitors[4].status(&h).await["ahead"], 2);
}

#[tokio::test]
async fn a_visitor_whose_entry_was_lost_keeps_their_place_from_the_token() {
    let h = harness("mode = \"queue_all\"");
    let mut early = Visitor::default();
    early.get(&h, "/checkout").await;
    let token_cookie = early.cookie.clone();
    h.clock.advance(Duration::from_millis(10));
    let mut late = Visitor::default();
    late.get(&h, "/checkout").await;
    // Simulate a lost entry: a fresh store would not know `early`; the token still carries the
    // rank, and the next request re-joins at it.
    early.cookie = token_cookie;
    assert_eq!(early.status(&h).await["position"], 1);
    assert_eq!(late.status(&h).await["position"], 2);
}

#[tokio::test]
async fn closed_and_passthrough_modes() {
    let closed = harness("mode = \"closed\"");
    let Outcome::Reply(reply) = Visitor::default().get(&closed, "/checkout").await else {
        panic!("closed zones answer themselves");
    };
    assert_eq!(reply.status, 503);
    let open = harness("mode = \"passthrough\"");
    let outcome = Visitor::default().get(&open, "/checkout").await;
    assert!(matches!(
        outcome,
        Outcome::Forward(Forward {
            session: None,
            set_cookie: None,
            ..
        })
    ));
}

#[tokio::test]
async fn forged_tokens_are_never_forwarded_and_are_counted() {
    let h = harness("mode = \"queue_all\"");
    let mut v = Visitor {
        cookie: Some("usher_checkout=eyJhbGciOiJub25lIn0.eyJ6b25lIjoiY2hlY2tvdXQifQ.".into()),
    };
    let outcome = v.get(&h, "/checkout").await;
    assert!(!forwarded(&outcome));
    let metrics = String::from_utf8(h.room.metrics().render()).expect("utf8");
    assert!(
        metrics.contains("usher_token_rejections_total{reason=\"alg_none\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn sessions_renew_while_active_and_keep_one_slot() {
    let h = harness("");
    let mut a = Visitor::default();
    assert!(forwarded(&a.get(&h, "/checkout").await));
    let first = a.claims(&h);
    h.clock.advance(Duration::from_secs(40));
    assert!(forwarded(&a.get(&h, "/checkout").await));
    let renewed = a.claims(&h);
    assert!(renewed.exp > first.exp, "the token was renewed");
    h.clock.advance(Duration::from_secs(30));
    assert!(
        forwarded(&a.get(&h, "/checkout").await),
        "still valid after the first expiry"
    );
    let active = h.room.store.active("checkout", h.clock.now_ms()).await;
    assert_eq!(active.expect("active"), 1, "one slot, moved, not two");
}

#[tokio::test]
async fn json_clients_get_the_status_instead_of_the_page() {
    let h = harness("mode = \"queue_all\"");
    let facts = RequestFacts {
        host: "shop.test",
        path: "/checkout",
        query: None,
        cookie: None,
        wants_json: true,
        shows_pages: true,
        accept_language: None,
    };
    let Outcome::Reply(reply) = h.room.handle(&facts).await else {
        panic!("queued");
    };
    assert_eq!(reply.content_type, "application/json");
    let status: serde_json::Value = serde_json::from_slice(&reply.body).expect("json");
    assert_eq!(status["state"], "waiting");
    assert_eq!(status["position"], 1);
    assert!(reply.set_cookie.is_some(), "apps get their place too");
}

#[tokio::test]
async fn requests_that_cannot_show_a_page_get_json_with_retry_after_and_still_a_place() {
    let h = harness("mode = \"queue_all\"\nrefresh_interval = \"1500ms\"");
    let post = RequestFacts {
        host: "shop.test",
        path: "/checkout",
        query: None,
        cookie: None,
        wants_json: false,
        shows_pages: false,
        accept_language: None,
    };
    let Outcome::Reply(reply) = h.room.handle(&post).await else {
        panic!("queued");
    };
    assert_eq!(reply.status, 429);
    assert_eq!(reply.content_type, "application/json");
    assert_eq!(
        reply.retry_after,
        Some(2),
        "the refresh interval, rounded up"
    );
    let status: serde_json::Value = serde_json::from_slice(&reply.body).expect("json");
    assert_eq!(
        (status["state"].as_str(), status["position"].as_u64()),
        (Some("waiting"), Some(1))
    );
    assert!(
        reply.set_cookie.is_some(),
        "the place is theirs all the same"
    );
    let page = Visitor::default().get(&h, "/checkout").await;
    assert!(
        matches!(
            page,
            Outcome::Reply(Reply {
                status: 200,
                retry_after: None,
                ..
            })
        ),
        "a browser's page load still gets the page: {page:?}"
    );
}

#[tokio::test]
async fn the_change_feed_wakes_the_edge_cache() {
    let (config, _dir) = room_config("capacity = 2\nadmit_per_minute = 60\nmode = \"queue_all\"");
    let clock = Arc::new(ManualClock::new(T0));
    let store = Arc::new(EmbeddedStore::open(&config.store.data_dir, T0).expect("store"));
    let tokens = Tokens::new(Keyring::load(&config.tokens).expect("keys"), "usher", 1_000);
    let room = Arc::new(Room::new(
        &config,
        tokens,
        store.clone(),
        clock.clone(),
        Metrics::new(),
    ));
    let feed = crate::store::ChangeFeed::subscribe(store.as_ref());
    let follower = tokio::spawn({
        let room = room.clone();
        async move { room.follow(feed).await }
    });
    let facts = RequestFacts {
        host: "h",
        path: "/checkout",
        query: None,
        cookie: None,
        wants_json: false,
        shows_pages: true,
        accept_language: None,
    };
    room.handle(&facts).await;
    // The exchanger commits to the store; only the feed brings the state to the cache.
    room.exchanger().tick().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while room
        .cached("checkout")
        .is_none_or(|r| r.admitted_total == 0)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the feed never reached the cache"
        );
        tokio::task::yield_now().await;
    }
    follower.abort();
}

/// A store that is down: every call fails, or never answers.
struct BrokenStore {
    hang: bool,
}

#[async_trait::async_trait]
impl crate::store::Store for BrokenStore {
    async fn load(&self, _: &str) -> Result<Option<ZoneState>, StoreError> {
        self.fail().await
    }
    async fn commit_tick(
        &self,
        _: &str,
        _: Option<u64>,
        _: &ZoneState,
        _: &crate::admission::Grant,
    ) -> Result<Option<u32>, StoreError> {
        self.fail().await
    }
    async fn touch(&self, _: &str, _: QueueKey, _: u64) -> Result<(), StoreError> {
        self.fail().await
    }
    async fn live_after(
        &self,
        _: &str,
        _: QueueKey,
        _: u64,
        _: usize,
    ) -> Result<Vec<QueueKey>, StoreError> {
        self.fail().await
    }
    async fn returned(
        &self,
        _: &str,
        _: QueueKey,
        _: u64,
        _: usize,
    ) -> Result<Vec<QueueKey>, StoreError> {
        self.fail().await
    }
    async fn ahead(&self, _: &str, _: QueueKey, _: QueueKey) -> Result<u64, StoreError> {
        self.fail().await
    }
    async fn waiting(&self, _: &str, _: QueueKey) -> Result<u64, StoreError> {
        self.fail().await
    }
    async fn claim(&self, _: &str, _: VisitorId, _: u64, _: u64) -> Result<Claim, StoreError> {
        self.fail().await
    }
    async fn renew(
        &self,
        _: &str,
        _: VisitorId,
        _: u64,
        _: u64,
        _: u64,
    ) -> Result<bool, StoreError> {
        self.fail().await
    }
    async fn release(&self, _: &str, _: VisitorId, _: u64) -> Result<Option<u64>, StoreError> {
        self.fail().await
    }
    async fn active(&self, _: &str, _: u64) -> Result<u64, StoreError> {
        self.fail().await
    }
    async fn revocations(&self, _: &str, _: u64) -> Result<Vec<(VisitorId, u64)>, StoreError> {
        self.fail().await
    }
}

impl BrokenStore {
    async fn fail<T>(&self) -> Result<T, StoreError> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

fn broken_room(policy: &str, hang: bool) -> (Room, tempfile::TempDir) {
    let (config, dir) = room_config(&format!(
        "capacity = 2\nadmit_per_minute = 60\non_store_error = \"{policy}\""
    ));
    let tokens = Tokens::new(Keyring::load(&config.tokens).expect("keys"), "usher", 1_000);
    let room = Room::new(
        &config,
        tokens,
        Arc::new(BrokenStore { hang }),
        Arc::new(ManualClock::new(T0)),
        Metrics::new(),
    );
    (room, dir)
}

const NEWCOMER: RequestFacts<'static> = RequestFacts {
    host: "shop.test",
    path: "/checkout",
    query: None,
    cookie: None,
    wants_json: true,
    shows_pages: true,
    accept_language: None,
};

#[tokio::test]
async fn store_down_fail_closed_keeps_the_shop_protected_and_still_hands_out_places() {
    let (room, _dir) = broken_room("fail_closed", false);
    let Outcome::Reply(reply) = room.handle(&NEWCOMER).await else {
        panic!("fail_closed must not forward");
    };
    let status: serde_json::Value = serde_json::from_slice(&reply.body).expect("json");
    assert_eq!(status["state"], "waiting");
    assert_eq!(status["degraded"], true);
    assert!(
        reply.set_cookie.is_some(),
        "the place (rank) travels in the token"
    );
    let metrics = String::from_utf8(room.metrics().render()).expect("utf8");
    assert!(
        metrics.contains("usher_store_errors_total{op=\"touch\",zone=\"checkout\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn store_down_fail_open_forwards() {
    let (room, _dir) = broken_room("fail_open", false);
    let outcome = room.handle(&NEWCOMER).await;
    assert!(
        matches!(outcome, Outcome::Forward(Forward { session: None, .. })),
        "{outcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_store_times_out_instead_of_hanging_the_request() {
    let (room, _dir) = broken_room("fail_closed", true);
    let started = tokio::time::Instant::now();
    let outcome = room.handle(&NEWCOMER).await;
    assert!(matches!(outcome, Outcome::Reply(_)));
    let waited = started.elapsed();
    assert!(
        waited >= STORE_TIMEOUT && waited < STORE_TIMEOUT * 3,
        "waited {waited:?}"
    );
}
