//! The room end to end without sockets: a manual clock, the embedded store and the exchanger,
//! driven through `Room::handle` exactly as the proxy drives it.

use super::*;
use crate::admission::{Claim, QueueKey};
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::store::embedded::EmbeddedStore;
use crate::store::DEFAULT_TIMEOUT;
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
    let log = crate::config::EventsLogConfig::to_file(dir.path().join("events.jsonl"));
    let events = crate::event_log::EventLog::start(&log, Metrics::new()).expect("event log");
    let room =
        Room::new(&config, tokens, store, clock.clone(), Metrics::new()).with_event_log(events);
    Harness {
        clock,
        room,
        _dir: dir,
    }
}

impl Harness {
    /// The event log's lines of `kind`, once there are at least `n` (the writer thread flushes
    /// within a fraction of a second).
    fn logged(&self, kind: &str, n: usize) -> Vec<serde_json::Value> {
        let path = self._dir.path().join("events.jsonl");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|l| l["type"] == kind)
                .collect();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{n} `{kind}` lines: {lines:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

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
    async fn get<'h>(&mut self, h: &'h Harness, path: &str) -> Outcome<'h> {
        let (path, query) = path
            .split_once('?')
            .map_or((path, None), |(p, q)| (p, Some(q)));
        let facts = RequestFacts {
            host: Some("shop.test"),
            path,
            query,
            cookie: self.cookie.as_deref().map(str::as_bytes),
            wants_json: false,
            shows_pages: true,
            accept_language: None,
            preflight: false,
            last_event_id: None,
            bypass: None,
            client: None,
        };
        let outcome = h.room.handle(&facts).await;
        let set = match &outcome {
            Outcome::Forward(f) => f.set_cookie.clone(),
            Outcome::Reply(r) => r.set_cookie.clone(),
            Outcome::Events(_) => None,
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

fn forwarded(outcome: &Outcome<'_>) -> bool {
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
        host: Some("shop.test"),
        path: "/checkout",
        query: None,
        cookie: None,
        wants_json: true,
        shows_pages: true,
        accept_language: None,
        preflight: false,
        last_event_id: None,
        bypass: None,
        client: None,
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
        host: Some("shop.test"),
        path: "/checkout",
        query: None,
        cookie: None,
        wants_json: false,
        shows_pages: false,
        accept_language: None,
        preflight: false,
        last_event_id: None,
        bypass: None,
        client: None,
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
        host: Some("h"),
        path: "/checkout",
        query: None,
        cookie: None,
        wants_json: false,
        shows_pages: true,
        accept_language: None,
        preflight: false,
        last_event_id: None,
        bypass: None,
        client: None,
    };
    let cookie = match room.handle(&facts).await {
        Outcome::Reply(reply) => reply.set_cookie.expect("a place"),
        other => panic!("{other:?}"),
    };
    // The page comes back with its place, which writes it to the store.
    let cookie = cookie.split(';').next().expect("name=value").to_string();
    room.handle(&RequestFacts {
        path: "/_usher/status",
        cookie: Some(cookie.as_bytes()),
        ..facts
    })
    .await;
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
    async fn identity_rank(
        &self,
        _: &str,
        _: VisitorId,
        _: u64,
        _: u64,
        _: u64,
    ) -> Result<u64, StoreError> {
        self.fail().await
    }
    async fn active(&self, _: &str, _: u64) -> Result<u64, StoreError> {
        self.fail().await
    }
    async fn add_codes(&self, _: &str, _: &[crate::store::PriorityCode]) -> Result<(), StoreError> {
        self.fail().await
    }
    async fn use_code(&self, _: &str, _: &str, _: u64) -> Result<bool, StoreError> {
        self.fail().await
    }
    async fn overrides(
        &self,
        _: &str,
    ) -> Result<Option<crate::config::overrides::Overrides>, StoreError> {
        self.fail().await
    }
    async fn set_overrides(
        &self,
        _: &str,
        _: &crate::config::overrides::Overrides,
    ) -> Result<(), StoreError> {
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
    host: Some("shop.test"),
    path: "/checkout",
    query: None,
    cookie: None,
    wants_json: true,
    shows_pages: true,
    accept_language: None,
    preflight: false,
    last_event_id: None,
    bypass: None,
    client: None,
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
        waited >= DEFAULT_TIMEOUT && waited < DEFAULT_TIMEOUT * 3,
        "waited {waited:?}"
    );
}

/// The event stream `v` would open from its page, as the proxy opens it.
async fn events<'h>(h: &'h Harness, v: &Visitor, last_event_id: Option<&str>) -> EventStream<'h> {
    let facts = RequestFacts {
        host: Some("shop.test"),
        path: "/_usher/events",
        query: None,
        cookie: v.cookie.as_deref().map(str::as_bytes),
        wants_json: false,
        shows_pages: true,
        accept_language: None,
        preflight: false,
        last_event_id,
        bypass: None,
        client: None,
    };
    match h.room.handle(&facts).await {
        Outcome::Events(stream) => stream,
        other => panic!("not a stream: {other:?}"),
    }
}

/// The status JSON of an SSE event (`None` for a heartbeat).
fn event_status(event: &str) -> Option<serde_json::Value> {
    assert!(
        event.ends_with("\n\n"),
        "events end with a blank line: {event:?}"
    );
    if event.starts_with(':') {
        return None;
    }
    assert!(event.starts_with("event: status\nid: "), "{event:?}");
    let data = event.lines().find_map(|l| l.strip_prefix("data: "))?;
    Some(serde_json::from_str(data).expect("json"))
}

#[tokio::test]
async fn the_event_stream_pushes_positions_then_the_turn_and_ends() {
    let h = harness("mode = \"queue_all\"");
    let mut visitors: Vec<Visitor> = Vec::new();
    for _ in 0..3 {
        h.clock.advance(Duration::from_millis(3));
        let mut v = Visitor::default();
        v.get(&h, "/checkout").await;
        // Its page comes back (a poll, or its own stream): that writes the place.
        v.status(&h).await;
        visitors.push(v);
    }
    let mut stream = events(&h, &visitors[2], None).await;
    assert!(stream.preamble().starts_with("retry: "));
    let first = event_status(&stream.next().await.expect("event")).expect("status");
    assert_eq!(
        (first["state"].as_str(), first["position"].as_u64()),
        (Some("waiting"), Some(3))
    );
    // The tick admits the two in front (capacity 2); the stream wakes from the cached zone
    // state, not from a timer.
    h.clock.advance(Duration::from_secs(2));
    h.tick().await;
    let status = event_status(&stream.next().await.expect("event")).expect("status");
    assert_eq!(status["position"], 1, "{status}");
    // The first one goes in and finishes; the freed slot is the third one's turn.
    assert!(forwarded(&visitors[0].get(&h, "/checkout").await));
    h.room.release("checkout", visitors[0].claims(&h).vid).await;
    h.clock.advance(Duration::from_secs(1));
    h.tick().await;
    let last = event_status(&stream.next().await.expect("event")).expect("status");
    assert_eq!(last["state"], "admitted", "{last}");
    assert!(
        stream.next().await.is_none(),
        "the stream ends with the turn"
    );
    // The page then goes to the URL it was served at, and its claim gets the same session.
    assert!(forwarded(&visitors[2].get(&h, "/checkout").await));
}

#[tokio::test(start_paused = true)]
async fn an_idle_stream_sends_heartbeats_and_no_repeats() {
    let h = harness("mode = \"queue_all\"");
    let mut v = Visitor::default();
    v.get(&h, "/checkout").await;
    let mut stream = events(&h, &v, None).await;
    assert!(event_status(&stream.next().await.expect("event")).is_some());
    let started = tokio::time::Instant::now();
    let next = stream.next().await.expect("heartbeat");
    assert_eq!(
        next, ": ping\n\n",
        "nothing changed: a heartbeat, not the same status again"
    );
    assert!(started.elapsed() >= super::events::HEARTBEAT);
}

#[tokio::test(start_paused = true)]
async fn a_stream_ends_after_its_maximum_age_so_a_reader_that_stopped_lets_go() {
    let h = harness("mode = \"queue_all\"");
    let mut v = Visitor::default();
    v.get(&h, "/checkout").await;
    let mut stream = events(&h, &v, None).await;
    let started = tokio::time::Instant::now();
    let mut pieces = 0;
    while stream.next().await.is_some() {
        pieces += 1;
        assert!(pieces < 100, "the stream never ended");
    }
    let lasted = started.elapsed();
    assert!(
        lasted >= super::events::MAX_AGE
            && lasted < super::events::MAX_AGE + Duration::from_secs(1),
        "{lasted:?}"
    );
    assert!(pieces >= 10, "heartbeats all along: {pieces}");
}

#[tokio::test]
async fn a_reconnecting_stream_never_shows_a_higher_position() {
    let h = harness("mode = \"queue_all\"");
    let mut visitors: Vec<Visitor> = Vec::new();
    for _ in 0..3 {
        h.clock.advance(Duration::from_millis(3));
        let mut v = Visitor::default();
        v.get(&h, "/checkout").await;
        // Its page comes back (a poll, or its own stream): that writes the place.
        v.status(&h).await;
        visitors.push(v);
    }
    // The previous connection showed position 2 (say, before someone came back ahead).
    let mut stream = events(&h, &visitors[2], Some("2.w.3.0")).await;
    let status = event_status(&stream.next().await.expect("event")).expect("status");
    assert_eq!(
        (status["position"].as_u64(), status["ahead"].as_u64()),
        (Some(2), Some(1))
    );
}

#[tokio::test]
async fn a_stream_without_a_place_says_so_once_and_ends() {
    let h = harness("");
    let stranger = Visitor::default();
    let mut stream = events(&h, &stranger, None).await;
    let status = event_status(&stream.next().await.expect("event")).expect("status");
    assert_eq!(status["state"], "not_queued");
    assert!(stream.next().await.is_none());
}

/// `[[zones.checkout.events]]` lines for an event whose pre-queue opens `open` after T0,
/// starting `start` and ending `end` after T0.
fn event_toml(open: u64, start: u64, end: u64, extra: &str) -> String {
    let at = |s: u64| crate::config::timestamp::format_rfc3339(T0 + s * 1_000);
    format!(
        "[[zones.checkout.events]]\nname = \"launch\"\ntitle = \"The Launch\"\n\
         prequeue_at = \"{}\"\nstarts_at = \"{}\"\nends_at = \"{}\"\n{extra}\n",
        at(open),
        at(start),
        at(end)
    )
}

fn reply_of<'o>(outcome: &'o Outcome<'_>) -> &'o Reply {
    match outcome {
        Outcome::Reply(reply) => reply,
        other => panic!("not a reply: {other:?}"),
    }
}

#[tokio::test]
async fn a_scheduled_sale_counts_down_draws_the_prequeue_then_ends() {
    // Closed before the event; the sale admits with the event's own limits (capacity 10,
    // 180/min, burst 3): three a tick, so the order of admission shows the draw.
    let events = event_toml(
        60,
        120,
        600,
        "capacity = 10\nadmit_per_minute = 180\nburst = 3\nmode = \"auto\"",
    );
    let h = harness(&format!(
        "mode = \"closed\"\nrefresh_interval = \"2s\"\n{events}"
    ));
    let mut early = Visitor::default();
    assert_eq!(
        reply_of(&early.get(&h, "/checkout").await).status,
        503,
        "closed before"
    );
    assert!(early.cookie.is_none());

    // The pre-queue opens: arrivals get a countdown and a place; nothing is admitted.
    h.clock.advance(Duration::from_secs(60));
    let mut members: Vec<Visitor> = Vec::new();
    for _ in 0..6 {
        h.clock.advance(Duration::from_secs(5));
        let mut v = Visitor::default();
        let page = v.get(&h, "/checkout").await;
        assert_eq!(reply_of(&page).status, 200);
        assert!(v.cookie.is_some(), "a pre-queue place");
        let status = v.status(&h).await;
        assert_eq!(status["state"], "prequeue", "{status}");
        assert_eq!(status["event"]["name"], "launch");
        assert_eq!(status["event"]["starts_at_ms"], T0 + 120_000);
        members.push(v);
    }
    h.tick().await;
    assert_eq!(
        members[0].status(&h).await["state"],
        "prequeue",
        "nobody goes in early"
    );

    // The sale starts: the first tick draws the seed and admits nobody yet.
    h.clock
        .advance(Duration::from_secs(120) - Duration::from_secs(90));
    // The first arrival of the sale finds a quiet `auto` zone, and still waits: their
    // join's tick is the draw, and the pre-queue goes first.
    let mut late = Visitor::default();
    assert!(
        !forwarded(&late.get(&h, "/checkout").await),
        "no walking in at the start"
    );
    h.tick().await;
    let status = members[0].status(&h).await;
    let seed = status["event"]["draw_seed"]
        .as_str()
        .expect("published seed")
        .to_string();
    assert_eq!(
        status["state"], "prequeue",
        "positions wait for the grace: {status}"
    );
    // The draw is in the event log, with the seed the pages publish.
    let draws = h.logged("draw", 1);
    assert_eq!(draws[0]["zone"], "checkout");
    assert_eq!(draws[0]["event"], "launch");
    let logged_seed = draws[0]["seed"].as_str().expect("seed");
    assert_eq!(
        u64::from_str_radix(logged_seed, 16).ok(),
        u64::from_str_radix(&seed, 16).ok()
    );
    // Everyone's page asks during the grace, which takes their drawn places.
    for v in members.iter_mut() {
        v.status(&h).await;
    }
    h.clock.advance(Duration::from_secs(4));
    h.tick().await;

    // Admitted in lottery order, computed independently from the published seed.
    let zones = h.room.zones();
    let Some(launch) = zones.by_name("checkout").and_then(|z| z.schedule.first()) else {
        panic!("the event");
    };
    let seed = u64::from_str_radix(&seed, 16).expect("hex seed");
    let mut expected: Vec<usize> = (0..members.len()).collect();
    expected.sort_by_key(|&i| crate::onsale::lottery_key(launch, seed, members[i].claims(&h).vid));
    let admitted = |statuses: Vec<serde_json::Value>| -> Vec<usize> {
        (0..statuses.len())
            .filter(|&i| statuses[i]["state"] == "admitted")
            .collect()
    };
    let mut batches = Vec::new();
    for _ in 0..2 {
        let mut statuses = Vec::new();
        for v in members.iter_mut() {
            statuses.push(v.status(&h).await);
        }
        batches.push(admitted(statuses));
        h.clock.advance(Duration::from_secs(1));
        h.tick().await;
    }
    let mut first_three = expected[..3].to_vec();
    first_three.sort();
    assert_eq!(
        batches[0], first_three,
        "the first tick takes the first three drawn"
    );
    // The event log has their admissions, from the line.
    let logged = h.logged("admitted", 3);
    let mut logged: Vec<String> = logged[..3]
        .iter()
        .inspect(|l| assert_eq!(l["via"], "queue", "{l}"))
        .map(|l| l["visitor"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut drawn: Vec<String> = first_three
        .iter()
        .map(|&i| members[i].claims(&h).vid.to_string())
        .collect();
    logged.sort();
    drawn.sort();
    assert_eq!(logged, drawn);
    assert_eq!(
        batches[1],
        (0..6).collect::<Vec<_>>(),
        "the next tick the other three"
    );
    let late_status = late.status(&h).await;
    assert_eq!(
        late_status["state"], "admitted",
        "then the later arrival: {late_status}"
    );

    // The sale ends: newcomers see "sale ended"; sessions in progress go on.
    h.clock.advance(Duration::from_secs(600));
    let mut after = Visitor::default();
    let ended = after.get(&h, "/checkout").await;
    assert_eq!(reply_of(&ended).status, 503);
    assert_eq!(after.status(&h).await["state"], "ended");
}

/// A request to `path` from `client`, with `cookie`, as a script that asked for JSON.
fn json_facts<'a>(
    path: &'a str,
    query: Option<&'a str>,
    cookie: Option<&'a str>,
    client: &str,
) -> RequestFacts<'a> {
    RequestFacts {
        host: Some("shop.test"),
        path,
        query,
        cookie: cookie.map(str::as_bytes),
        wants_json: true,
        shows_pages: true,
        accept_language: None,
        preflight: false,
        last_event_id: None,
        bypass: None,
        client: Some(client.parse().expect("ip")),
    }
}

impl Harness {
    /// `path` (with `query`) asked by `client` as a script would, with `cookie`: the reply.
    async fn ask(
        &self,
        path: &str,
        query: Option<&str>,
        cookie: Option<&str>,
        client: &str,
    ) -> Reply {
        replied(
            self.room
                .handle(&json_facts(path, query, cookie, client))
                .await,
        )
    }
}

fn replied(outcome: Outcome<'_>) -> Reply {
    match outcome {
        Outcome::Reply(reply) => reply,
        other => panic!("not a reply: {other:?}"),
    }
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_string()
}

#[tokio::test]
async fn a_puzzle_comes_first_and_its_solution_earns_the_place_at_the_arrival() {
    let h = harness("mode = \"queue_all\"\n[zones.checkout.defence]\nproof_of_work = \"on\"\npow_difficulty = 8");
    let arrived = h.clock.now_ms();
    let first = h.ask("/checkout", None, None, "192.0.2.1").await;
    let status: serde_json::Value = serde_json::from_slice(&first.body).expect("json");
    assert_eq!(status["state"], "challenge", "{status}");
    let challenge = &status["challenge"];
    assert_eq!(
        (challenge["bits"].as_u64(), challenge["algorithm"].as_str()),
        (Some(8), Some("sha256"))
    );
    let kept = cookie_pair(
        first
            .set_cookie
            .as_deref()
            .expect("the puzzle is kept in a cookie"),
    );
    assert!(kept.starts_with("usher_checkout.challenge="), "{kept}");
    // A reload with the cookie gets the same puzzle (the same arrival), and no place.
    let again = h.ask("/checkout", None, Some(&kept), "192.0.2.1").await;
    let again: serde_json::Value = serde_json::from_slice(&again.body).expect("json");
    assert_eq!(again["challenge"]["token"], challenge["token"]);
    assert_eq!(
        h.room
            .store
            .waiting("checkout", QueueKey::default())
            .await
            .expect("count"),
        0,
        "nothing written"
    );

    let token = challenge["token"].as_str().expect("token");
    let seed = challenge["seed"].as_str().expect("seed");
    let nonce = (0..)
        .find(|n| challenge::work_of(seed, *n) >= 8)
        .expect("a nonce");
    let wrong = (0..)
        .find(|n| challenge::work_of(seed, *n) < 8)
        .expect("a wrong nonce");
    h.clock.advance(Duration::from_secs(3)); // the phone took its time
    let solve = |nonce: u64| format!("zone=checkout&challenge={token}&nonce={nonce}");
    for (query, code, error) in [
        (solve(wrong), 403, "challenge_unsolved"),
        (
            format!("zone=checkout&challenge=x.y.z&nonce={nonce}"),
            400,
            "challenge_invalid",
        ),
        (
            format!("zone=checkout&challenge={token}"),
            400,
            "nonce_missing",
        ),
    ] {
        let r = h
            .ask("/_usher/solve", Some(&query), None, "192.0.2.1")
            .await;
        assert_eq!(r.status, code, "{query}");
        assert!(String::from_utf8_lossy(&r.body).contains(error), "{query}");
    }
    let query = solve(nonce);
    let solved = h
        .ask("/_usher/solve", Some(&query), None, "192.0.2.1")
        .await;
    assert_eq!(
        solved.status,
        200,
        "{}",
        String::from_utf8_lossy(&solved.body)
    );
    let place = cookie_pair(solved.set_cookie.as_deref().expect("a place"));
    let claims = h
        .room
        .tokens()
        .verify(place.split_once('=').expect("pair").1, h.clock.now_ms())
        .expect("valid");
    assert_eq!(claims.typ, crate::token::TokenKind::Visitor);
    assert_eq!(
        claims.rank, arrived,
        "the place ranks from the arrival, not the solution"
    );
    assert_eq!(claims.vid.to_string(), seed);
    // Used once.
    let replay = h
        .ask("/_usher/solve", Some(&query), None, "192.0.2.9")
        .await;
    assert_eq!(replay.status, 409);
    // The place works like any other.
    let status = h
        .ask("/_usher/status", None, Some(&place), "192.0.2.1")
        .await;
    let status: serde_json::Value = serde_json::from_slice(&status.body).expect("json");
    assert_eq!(
        (status["state"].as_str(), status["position"].as_u64()),
        (Some("waiting"), Some(1))
    );
    // A challenge token is never a place.
    let forged = format!("usher_checkout={token}");
    let r = h.ask("/checkout", None, Some(&forged), "192.0.2.1").await;
    let r: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(r["state"], "challenge");
}

#[tokio::test]
async fn auto_proof_of_work_starts_when_newcomers_arrive_fast() {
    let h = harness("mode = \"queue_all\"\n[zones.checkout.defence]\nproof_of_work = \"auto\"\npow_auto_joins_per_minute = 20\nclient_join_burst = 1000\nclient_places = 1000");
    let mut states = Vec::new();
    for i in 0..40 {
        h.clock.advance(Duration::from_millis(100));
        let client = format!("192.0.2.{}", i + 1);
        let r = h.ask("/checkout", None, None, &client).await;
        let status: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        states.push(status["state"].as_str().unwrap_or_default().to_string());
    }
    assert!(states[..20].iter().all(|s| s == "waiting"), "{states:?}");
    assert!(states[21..].iter().all(|s| s == "challenge"), "{states:?}");
    // Two quiet minutes later it is off again.
    h.clock.advance(Duration::from_secs(120));
    let r = h.ask("/checkout", None, None, "192.0.2.200").await;
    let status: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(status["state"], "waiting");
}

#[tokio::test]
async fn one_client_gets_the_burst_of_places_then_429_with_retry_after() {
    let h = harness("mode = \"queue_all\"");
    let mut places = 0;
    let mut refused = None;
    for _ in 0..100 {
        let r = h.ask("/checkout", None, None, "198.51.100.7").await;
        match r.status {
            200 => places += 1,
            429 => refused = Some(r),
            other => panic!("{other}"),
        }
    }
    assert_eq!(places, 10, "client_join_burst");
    let refused = refused.expect("refusals");
    assert!(refused.set_cookie.is_none(), "no place");
    assert_eq!(
        refused.retry_after,
        Some(3),
        "one place every 3 s at 20 a minute"
    );
    let body: serde_json::Value = serde_json::from_slice(&refused.body).expect("json");
    assert_eq!(body["reason"], "join_rate");
    let metric = h
        .room
        .metrics()
        .client_refusals
        .with_label_values(&["checkout", "join_rate"])
        .get();
    assert_eq!(metric, 90);
    // Another client is not held back.
    let other = h.ask("/checkout", None, None, "198.51.100.8").await;
    assert_eq!(other.status, 200);
}

#[tokio::test]
async fn a_cookieless_client_in_auto_mode_holds_one_slot() {
    let h = harness("mode = \"auto\"");
    for _ in 0..10 {
        let outcome = h
            .room
            .handle(&json_facts("/checkout", None, None, "203.0.113.5"))
            .await;
        assert!(forwarded(&outcome), "{outcome:?}");
    }
    assert_eq!(
        h.room
            .store
            .active("checkout", h.clock.now_ms())
            .await
            .expect("active"),
        1
    );
    // Another client gets a slot of its own.
    assert!(forwarded(
        &h.room
            .handle(&json_facts("/checkout", None, None, "203.0.113.6"))
            .await
    ));
    assert_eq!(
        h.room
            .store
            .active("checkout", h.clock.now_ms())
            .await
            .expect("active"),
        2
    );
}

#[tokio::test]
async fn a_session_used_from_too_many_addresses_is_revoked() {
    let h = harness("mode = \"auto\"");
    let first = h
        .room
        .handle(&json_facts("/checkout", None, None, "203.0.113.5"))
        .await;
    let Outcome::Forward(forward) = first else {
        panic!("straight in")
    };
    let session = cookie_pair(forward.set_cookie.as_deref().expect("access"));
    for client in ["203.0.113.5", "198.51.100.1", "198.51.100.2"] {
        assert!(
            forwarded(
                &h.room
                    .handle(&json_facts("/checkout", None, Some(&session), client))
                    .await
            ),
            "{client}"
        );
    }
    // The fourth address: the token is shared; it is refused everywhere from now on.
    let shared = h
        .room
        .handle(&json_facts(
            "/checkout",
            None,
            Some(&session),
            "198.51.100.3",
        ))
        .await;
    assert!(
        !matches!(&shared, Outcome::Forward(f) if f.session.as_ref().is_some_and(|s| s.visitor.to_string() == common_vid(&h, &session)))
    );
    let owner = h
        .room
        .handle(&json_facts(
            "/checkout",
            None,
            Some(&session),
            "203.0.113.5",
        ))
        .await;
    assert!(
        !matches!(&owner, Outcome::Forward(f) if f.session.as_ref().is_some_and(|s| s.visitor.to_string() == common_vid(&h, &session))),
        "revoked for its owner too"
    );
    assert_eq!(
        h.room
            .metrics()
            .tokens_shared
            .with_label_values(&["checkout"])
            .get(),
        1
    );
    // The next tick releases it in the store: the fleet refuses it too, and its slot is free.
    h.tick().await;
    let vid = common_vid(&h, &session);
    let now = h.clock.now_ms();
    let revoked = h
        .room
        .store
        .revocations("checkout", now)
        .await
        .expect("revocations");
    assert!(
        revoked.iter().any(|(v, _)| v.to_string() == vid),
        "{revoked:?}"
    );
}

fn common_vid(h: &Harness, cookie: &str) -> String {
    let token = cookie.split_once('=').expect("pair").1;
    let claims = h
        .room
        .tokens()
        .verify(token, h.clock.now_ms())
        .expect("signed by us");
    claims.vid.to_string()
}

#[tokio::test]
async fn a_place_passed_longer_than_the_return_window_ago_goes_to_the_back() {
    let h = harness("mode = \"queue_all\"\nabandon_after = \"10s\"\nrefresh_interval = \"1s\"\n[zones.checkout.defence]\nreturn_window = \"30s\"");
    // A visitor takes a place, comes back once, and goes away.
    let mut away = Visitor::default();
    away.get(&h, "/checkout").await;
    away.status(&h).await;
    let rank = away.claims(&h).rank;
    // Others keep their pages open; the cursor passes the one who went away.
    let mut others = Vec::new();
    for _ in 0..3 {
        h.clock.advance(Duration::from_millis(10));
        let mut v = Visitor::default();
        v.get(&h, "/checkout").await;
        v.status(&h).await;
        others.push(v);
    }
    for _ in 0..40 {
        h.clock.advance(Duration::from_secs(1));
        for v in &mut others {
            v.status(&h).await;
        }
        h.tick().await;
    }
    // 40 s later, past the 30 s window: the old place is void; a new one at the back.
    let outcome = away.get(&h, "/checkout").await;
    assert!(!forwarded(&outcome));
    let claims = away.claims(&h);
    assert!(
        claims.rank > rank + 30_000,
        "a new arrival: {} vs {rank}",
        claims.rank
    );
}

#[tokio::test]
async fn every_device_of_one_identity_shares_one_place_and_one_slot() {
    let h = harness("mode = \"queue_all\"");
    let now = h.clock.now_ms();
    let link = h.room.tokens().identity_token(
        h.room.tokens().identity_id("alice@example.com"),
        "*",
        3_600,
        now,
    );
    let query = format!("{}={link}", super::IDENTITY_PARAM);
    // A stranger joins first, then Alice's phone, then (later) Alice's laptop on another network.
    let stranger = h.ask("/checkout", None, None, "192.0.2.10").await;
    let stranger = cookie_pair(stranger.set_cookie.as_deref().expect("place"));
    h.clock.advance(Duration::from_secs(1));
    let phone = h.ask("/checkout", Some(&query), None, "192.0.2.11").await;
    let phone = cookie_pair(phone.set_cookie.as_deref().expect("place"));
    h.clock.advance(Duration::from_secs(30));
    let laptop = h
        .ask("/checkout", Some(&query), None, "198.51.100.12")
        .await;
    let laptop = cookie_pair(laptop.set_cookie.as_deref().expect("place"));
    let claims = |c: &str| {
        h.room
            .tokens()
            .verify(c.split_once('=').expect("pair").1, h.clock.now_ms())
            .expect("valid")
    };
    let (p, l) = (claims(&phone), claims(&laptop));
    assert_eq!(p.vid, h.room.tokens().identity_id("alice@example.com"));
    assert_eq!(
        (l.vid, l.rank),
        (p.vid, p.rank),
        "the laptop joins at the phone's arrival"
    );
    assert!(p.rank > claims(&stranger).rank, "behind whoever came first");
    // Both come back: one queue entry. The tick admits the stranger and Alice: two slots.
    for (cookie, client) in [
        (&stranger, "192.0.2.10"),
        (&phone, "192.0.2.11"),
        (&laptop, "198.51.100.12"),
    ] {
        h.room
            .handle(&json_facts("/_usher/status", None, Some(cookie), client))
            .await;
    }
    assert_eq!(
        h.room
            .store
            .waiting("checkout", QueueKey::default())
            .await
            .expect("waiting"),
        2
    );
    h.clock.advance(Duration::from_secs(2));
    h.tick().await;
    for (cookie, client) in [(&phone, "192.0.2.11"), (&laptop, "198.51.100.12")] {
        let outcome = h
            .room
            .handle(&json_facts("/checkout", None, Some(cookie), client))
            .await;
        assert!(forwarded(&outcome), "{client}: {outcome:?}");
    }
    let active = h
        .room
        .store
        .active("checkout", h.clock.now_ms())
        .await
        .expect("active");
    assert_eq!(
        active, 2,
        "the stranger's reservation and Alice's one session"
    );
    // A token for another zone, or a forged one, is no identity here.
    let other = h.room.tokens().identity_token(
        h.room.tokens().identity_id("alice@example.com"),
        "other",
        3_600,
        now,
    );
    let query = format!("{}={other}", super::IDENTITY_PARAM);
    let r = h.ask("/checkout", Some(&query), None, "192.0.2.13").await;
    let c = claims(&cookie_pair(r.set_cookie.as_deref().expect("place")));
    assert_ne!(c.vid, p.vid);
}

#[tokio::test]
async fn the_limits_in_force_are_the_metrics_and_the_admin_report() {
    let events = event_toml(
        60,
        120,
        600,
        "capacity = 10\nadmit_per_minute = 180\nmode = \"auto\"",
    );
    let h = harness(&format!("mode = \"queue_all\"\n{events}"));
    let gauges = |h: &Harness| {
        let m = h.room.metrics();
        let get = |g: &prometheus::IntGaugeVec| g.with_label_values(&["checkout"]).get();
        (
            get(&m.capacity),
            get(&m.admit_per_minute),
            get(&m.burst),
            get(&m.paused),
        )
    };
    h.tick().await;
    assert_eq!(gauges(&h), (2, 60, 2, 0), "the zone's own");
    h.clock.advance(Duration::from_secs(70));
    h.tick().await;
    assert_eq!(gauges(&h).3, 1, "the pre-queue admits nobody");
    h.clock.advance(Duration::from_secs(60));
    h.tick().await;
    assert_eq!(gauges(&h), (10, 180, 3, 0), "the sale's");
    let report = h
        .room
        .zone_report("checkout", h.clock.now_ms())
        .expect("zone");
    assert_eq!(
        (report.capacity, report.admit_per_minute, report.burst),
        (10, 180, 3)
    );
    assert_eq!(report.event.map(|e| e.phase), Some("sale"));
}

#[tokio::test]
async fn passed_places_returns_releases_and_expiries_are_counted_and_logged() {
    let h = harness("mode = \"queue_all\"\nabandon_after = \"10s\"\nrefresh_interval = \"1s\"");
    let zone = "checkout";
    let metrics = h.room.metrics().clone();
    let count = |c: &prometheus::IntCounterVec, labels: &[&str]| c.with_label_values(labels).get();
    // Three visitors take places (written once their page comes back); the first two go
    // away, the third keeps their page open.
    let mut away = [Visitor::default(), Visitor::default()];
    for v in &mut away {
        v.get(&h, "/checkout").await;
        v.status(&h).await;
        h.clock.advance(Duration::from_millis(10));
    }
    let mut stays = Visitor::default();
    stays.get(&h, "/checkout").await;
    for _ in 0..11 {
        h.clock.advance(Duration::from_secs(1));
        stays.status(&h).await;
    }
    // The line passes both places for the visitor still there.
    h.tick().await;
    assert!(forwarded(&stays.get(&h, "/checkout").await));
    assert_eq!(count(&metrics.skipped, &[zone]), 2);
    assert_eq!(count(&metrics.admitted, &[zone, "queue"]), 1);
    let abandoned = h.logged("abandoned", 2);
    let ids: Vec<String> = away.iter().map(|v| v.claims(&h).vid.to_string()).collect();
    let logged: Vec<&str> = abandoned
        .iter()
        .map(|l| l["visitor"].as_str().expect("visitor"))
        .collect();
    assert_eq!(logged, ids, "in line order");
    assert_eq!(abandoned[0]["rank_ms"], away[0].claims(&h).rank);

    // One comes back: first in line at the next tick, counted as returned, not skipped again.
    let back = &mut away[0];
    back.status(&h).await;
    h.tick().await;
    let status = back.status(&h).await;
    assert_eq!(status["state"], "admitted", "{status}");
    assert_eq!(count(&metrics.admitted, &[zone, "returned"]), 1);
    assert_eq!(count(&metrics.skipped, &[zone]), 2);
    let returned = h.logged("returned", 1);
    assert_eq!(returned[0]["visitor"], ids[0].as_str());

    // The origin releases the returned visitor; the other session runs out (60 s).
    let vid = back.claims(&h).vid;
    assert!(h.room.release(zone, vid).await.is_some());
    assert_eq!(count(&metrics.sessions_ended, &[zone, "released"]), 1);
    h.tick().await;
    h.clock.advance(Duration::from_secs(61));
    h.tick().await;
    // A freed slot is called expired a tick later, if no ending explains it by then.
    h.clock.advance(Duration::from_secs(1));
    h.tick().await;
    assert_eq!(
        count(&metrics.slots_freed, &[zone]),
        2,
        "one released, one expired"
    );
    assert_eq!(count(&metrics.sessions_ended, &[zone, "revoked"]), 0);
    let expired = h.logged("expired", 1);
    let slots: u64 = expired
        .iter()
        .map(|l| l["slots"].as_u64().expect("slots"))
        .sum();
    assert_eq!(slots, 1, "the released one is not an expiry: {expired:?}");
}
