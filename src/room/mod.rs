//! The room: carries out the gate's decisions. It owns the zone table, the token service, the
//! store handle, the exchanger and the edge cache (zone states and revocations), and turns a
//! request's facts into an [`Outcome`]: forward (with headers and cookies to add), reply (waiting
//! page, status JSON) or an event stream. It never sees a Pingora type; `proxy` only extracts
//! facts and renders outcomes.
//!
//! Files: `endpoints` (every `/_usher/` path: the one router), `visit` (a request to a zone:
//! carries out [`gate::decide`]), `look` (the same decision seen by `/_usher/status` and
//! `/_usher/events`, which never join anyone), `events` (the stream), `places` (joins, claims,
//! renewals, releases), `origin` (a forward the origin never answered), `status` (statuses of a
//! zone for the page), `limits` (the per-client limits of [`crate::defence`] applied: 429s,
//! shared tokens), `challenge` (proof of work and the challenge hook), `identity` (one
//! identity, one place). It may import everything below it: gate, zone, token, store, exchanger,
//! page, defence.

mod challenge;
mod endpoints;
mod events;
mod identity;
mod limits;
mod look;
mod origin;
mod places;
mod priority;
mod report;
mod status;
mod visit;

pub use challenge::work_of;
pub use endpoints::{readiness_json, Endpoint, HEALTH_JSON};
pub use events::EventStream;
pub use identity::{is_identity, IDENTITY_PARAM};
pub use origin::ErrorAudience;
pub use priority::{MAX_CODES, PRIORITY_PARAM};
pub use report::{EventReport, OverrideReport, Revoked, ZoneReport};

#[cfg(test)]
mod tests;

use crate::admission::{QueueKey, VisitorId, ZoneState};
use crate::clock::SharedClock;
use crate::config::overrides::{self, Overrides};
use crate::config::{Config, StoreErrorPolicy};
use crate::config::{Problem, ZoneConfig};
use crate::defence::{Arrivals, Clients, Sharing};
use crate::event_log::{Event, EventLog};
use crate::exchanger::Exchanger;
use crate::gate::{self, Decision, Facts, TokenCheck};
use crate::metrics::{Metrics, RequestCounters};
use crate::onsale::Phase;
use crate::page::{self, State, Status, Strings};
use crate::store::{Change, Store, StoreError};
use crate::token::{cookie, Tokens};
use crate::zone::{LiveZones, Zone, ZoneTable};
use dashmap::DashMap;
use std::sync::Arc;
use std::time::Duration;

/// The facts of a request the room needs, in canonical form ([`crate::request::View`]);
/// nothing transport-specific.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    /// The canonical host; `None` when the request named none.
    pub host: Option<&'a str>,
    /// The canonical path.
    pub path: &'a str,
    /// The query string, if any.
    pub query: Option<&'a str>,
    /// Every `Cookie` field line, joined with `; `, as bytes.
    pub cookie: Option<&'a [u8]>,
    /// Whether the client asked for JSON (`Accept: application/json`).
    pub wants_json: bool,
    /// Whether the client can show a waiting page: a GET or HEAD that is not a WebSocket upgrade
    /// or a script's request. Others get the status JSON with the zone's `no_page_status`.
    pub shows_pages: bool,
    /// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    pub preflight: bool,
    /// The `Accept-Language` header, if any: picks the waiting page's language.
    pub accept_language: Option<&'a str>,
    /// The `Last-Event-ID` header of a reconnecting event stream.
    pub last_event_id: Option<&'a str>,
    /// The `Usher-Bypass` header (a zone's `bypass.secret` lets its holder skip the line).
    pub bypass: Option<&'a [u8]>,
    /// The client's address (behind `server.trusted_proxies`, the one they reported); `None`
    /// only in tests, where every request is one client.
    pub client: Option<std::net::IpAddr>,
}

/// A visitor's session, as a forward carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The zone's name.
    pub zone: String,
    /// The visitor.
    pub visitor: VisitorId,
    /// Their arrival (the rank in their tokens).
    pub rank: u64,
    /// When they were admitted.
    pub admitted_at_ms: u64,
    /// The second their slot expires in now (after any claim or renewal of this request).
    pub bucket: u64,
}

/// Forward the request upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Upstream name.
    pub upstream: String,
    /// The visitor's session, when the request passed the gate with one.
    pub session: Option<Session>,
    /// Milliseconds the visitor waited in line (for the `Usher-Queue-Time` header).
    pub queue_ms: Option<u64>,
    /// A `Set-Cookie` to add to the response (new or renewed access token).
    pub set_cookie: Option<String>,
}

impl Forward {
    /// A forward without a session.
    fn plain(upstream: &str) -> Self {
        Forward {
            upstream: upstream.to_string(),
            session: None,
            queue_ms: None,
            set_cookie: None,
        }
    }
}

/// `Cache-Control` of answers made for one visitor at one moment.
pub const NO_STORE: &str = "no-store";

/// Answer the request without the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
    /// A `Set-Cookie` to add.
    pub set_cookie: Option<String>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
    /// `Cache-Control`: [`NO_STORE`] for everything but the page's assets.
    pub cache_control: &'static str,
    /// `Vary`, when the body depends on a request header beyond the URL.
    pub vary: Option<&'static str>,
}

impl Reply {
    /// An answer that no cache may keep.
    pub fn fresh(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type,
            body,
            set_cookie: None,
            retry_after: None,
            cache_control: NO_STORE,
            vary: None,
        }
    }
}

/// What to do with a request.
#[derive(Debug)]
pub enum Outcome<'r> {
    /// Proxy it.
    Forward(Forward),
    /// Answer it.
    Reply(Reply),
    /// Stream the visitor's status (`/_usher/events`).
    Events(EventStream<'r>),
}

/// Whether `now` names the zones of `before`, in the same order; else what changed.
fn same_zones(before: &[ZoneConfig], now: &[ZoneConfig]) -> Result<(), String> {
    let names = |zones: &[ZoneConfig]| zones.iter().map(|z| z.name.clone()).collect::<Vec<_>>();
    if names(before) == names(now) {
        return Ok(());
    }
    Err(format!(
        "the zones changed ({} before, {} now): adding, removing or reordering zones needs a \
         restart (`usher upgrade`)",
        names(before).join(", "),
        names(now).join(", ")
    ))
}

/// Why live overrides were not set.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    /// The values break the config's rules; every problem, with its path.
    #[error("{} problem(s)", .0.len())]
    Invalid(Vec<Problem>),
    /// The store could not keep them: nothing changed.
    #[error("the store could not keep the overrides: {0}")]
    Store(StoreError),
}

/// The waiting room of one usher node.
pub struct Room {
    /// The zones in force (shared with the exchanger).
    zones: Arc<LiveZones>,
    /// What the zones in force are made of: the config's zones and the overrides on them.
    settings: std::sync::Mutex<Settings>,
    tokens: Tokens,
    store: Arc<dyn Store>,
    exchanger: Arc<Exchanger>,
    /// Where joins, admissions, releases and overrides are logged (`[events_log]`).
    events: EventLog,
    cache: DashMap<String, Arc<ZoneState>>,
    /// Per zone (by index): the version of the latest cached state, which wakes event streams.
    changes: Vec<tokio::sync::watch::Sender<u64>>,
    /// Released sessions whose access tokens are refused, until the second they would expire.
    revoked: DashMap<VisitorId, u64>,
    clock: SharedClock,
    metrics: Metrics,
    requests: RequestCounters,
    default_upstream: String,
    cookie_secure: bool,
    visitor_ttl: Duration,
    /// Texts of usher's pages outside any zone.
    strings: arc_swap::ArcSwap<Strings>,
    /// What each client did lately, for the per-client limits.
    clients: Clients,
    /// The addresses each token was used from.
    sharing: Sharing,
    /// `server.max_event_streams`.
    max_event_streams: u32,
    /// Newcomers per minute, per zone (for `proof_of_work = "auto"`).
    arrivals: Vec<Arrivals>,
    /// Solved puzzles (by seed), until they expire: a solution is used once.
    used_challenges: DashMap<VisitorId, u64>,
    /// Sessions revoked for sharing, to release in the store at the next tick.
    to_release: std::sync::Mutex<Vec<(String, VisitorId)>>,
    /// The identity cookie's name.
    identity_cookie: String,
    /// When the per-client records were last swept (ms).
    swept_at: std::sync::atomic::AtomicU64,
}

/// The zones as configured and the live overrides laid over them: the table in force is
/// always made from these two ([`Room::put_in_force`]).
struct Settings {
    /// The zones as the config file has them.
    configured: Vec<ZoneConfig>,
    /// Live overrides by zone name (none: the zone runs as configured).
    overrides: std::collections::HashMap<String, Overrides>,
    /// `tokens.cookie_prefix`.
    cookie_prefix: String,
    /// `server.default_host`.
    default_host: Option<String>,
}

impl Settings {
    /// The table these settings make. An override that no longer fits its zone (a reload
    /// changed the zone under it) is logged and left out.
    fn table(&self) -> ZoneTable {
        let zones: Vec<ZoneConfig> = self
            .configured
            .iter()
            .map(|zone| match self.overrides.get(&zone.name) {
                None => zone.clone(),
                Some(o) => overrides::apply(zone, o).unwrap_or_else(|problems| {
                    tracing::warn!(zone = %zone.name, ?problems,
                        "live overrides do not fit the zone as configured; running without them");
                    zone.clone()
                }),
            })
            .collect();
        ZoneTable::of(&zones, &self.cookie_prefix, self.default_host.clone())
    }
}

impl Room {
    /// A room for `config`, signing with `tokens` and keeping state in `store`.
    pub fn new(
        config: &Config,
        tokens: Tokens,
        store: Arc<dyn Store>,
        clock: SharedClock,
        metrics: Metrics,
    ) -> Self {
        let settings = Settings {
            configured: config.zones.clone(),
            overrides: Default::default(),
            cookie_prefix: config.tokens.cookie_prefix.clone(),
            default_host: config.server.default_host.clone(),
        };
        let zones = Arc::new(LiveZones::new(settings.table()));
        let names: Vec<&str> = config.zones.iter().map(|z| z.name.as_str()).collect();
        let requests = RequestCounters::new(&metrics, &names);
        for zone in &names {
            for reason in crate::metrics::CLIENT_REFUSALS {
                metrics.client_refusals.with_label_values(&[zone, reason]);
            }
            metrics.tokens_shared.with_label_values(&[zone]);
        }
        let changes = names
            .iter()
            .map(|_| tokio::sync::watch::Sender::new(0))
            .collect();
        let arrivals = names.iter().map(|_| Arrivals::default()).collect();
        let settle = config
            .store
            .scylla
            .as_ref()
            .map_or(Duration::ZERO, |s| s.join_settle);
        let exchanger = Arc::new(Exchanger::new(
            store.clone(),
            zones.clone(),
            settle,
            clock.clone(),
            metrics.clone(),
        ));
        Room {
            zones,
            settings: std::sync::Mutex::new(settings),
            requests,
            tokens,
            store,
            exchanger,
            events: EventLog::disabled(),
            cache: DashMap::new(),
            changes,
            revoked: DashMap::new(),
            clock,
            metrics,
            default_upstream: config.server.default_upstream.clone(),
            // Over TLS, usher's cookies are never sent back over plain HTTP.
            cookie_secure: config.tokens.cookie_secure || config.server.tls.is_some(),
            visitor_ttl: config.tokens.visitor_ttl,
            strings: arc_swap::ArcSwap::new(config.strings.clone()),
            clients: Clients::default(),
            sharing: Sharing::default(),
            max_event_streams: config.server.max_event_streams,
            arrivals,
            used_challenges: DashMap::new(),
            to_release: std::sync::Mutex::default(),
            swept_at: std::sync::atomic::AtomicU64::new(0),
            identity_cookie: cookie::name(&config.tokens.cookie_prefix, "~identity"),
        }
    }

    /// The room logging what happens to `events` (`[events_log]`), its exchanger the draws.
    pub fn with_event_log(mut self, events: EventLog) -> Self {
        // Nothing holds the exchanger yet: the room was just built.
        match Arc::get_mut(&mut self.exchanger) {
            Some(exchanger) => exchanger.set_event_log(events.clone()),
            None => tracing::warn!("the exchanger is shared already: draws are not logged"),
        }
        self.events = events;
        self
    }

    /// The zone table in force now.
    pub fn zones(&self) -> Arc<ZoneTable> {
        self.zones.current()
    }

    /// The store (tests look behind the room).
    #[cfg(test)]
    pub(crate) fn store_for_tests(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The zone called `name`, as it runs now.
    fn zone_named(&self, name: &str) -> Option<Arc<Zone>> {
        self.zones.current().by_name(name).cloned()
    }

    /// Makes the zone table from the configured zones and their overrides and puts it in
    /// force; wakes every event stream, so open pages show a new message or a pause at once
    /// (changes are rare: one recomputation per open page each).
    fn put_in_force(&self, settings: &Settings) {
        self.zones.replace(settings.table());
        for changes in &self.changes {
            changes.send_modify(|_| {});
        }
    }

    /// The live overrides of zone `name` (empty when it runs as configured).
    pub fn overrides(&self, name: &str) -> Overrides {
        let settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        settings.overrides.get(name).cloned().unwrap_or_default()
    }

    /// Lays `patch` (a JSON object of settings) over zone `name`'s overrides, checks the
    /// result as the config would, writes it to the store (so every node and a restart have
    /// it) and puts it in force here. `Ok(None)`: no such zone.
    pub async fn set_overrides(
        &self,
        name: &str,
        patch: Option<&serde_json::Value>,
        by: &str,
        from: &str,
    ) -> Result<Option<Overrides>, OverrideError> {
        let now = self.clock.now_ms();
        let Some(zone) = self.configured(name) else {
            return Ok(None);
        };
        let next = match patch {
            None => Overrides::default(),
            Some(patch) => self
                .overrides(name)
                .check(&zone, patch, by, from, now)
                .map_err(OverrideError::Invalid)?,
        };
        self.call(name, "overrides", self.store.set_overrides(name, &next))
            .await
            .map_err(OverrideError::Store)?;
        self.take_overrides(name, next.clone());
        self.events.record(now, || Event::Overrides {
            zone: name.to_string(),
            action: if patch.is_some() { "set" } else { "reset" },
            by: by.to_string(),
            settings: serde_json::to_value(&next.settings).unwrap_or_default(),
        });
        Ok(Some(next))
    }

    /// Zone `name` as the config file has it.
    fn configured(&self, name: &str) -> Option<ZoneConfig> {
        let settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        settings.configured.iter().find(|z| z.name == name).cloned()
    }

    /// Puts `overrides` of zone `name` in force if they differ from those in force.
    fn take_overrides(&self, name: &str, overrides: Overrides) {
        let mut settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        let current = settings.overrides.get(name);
        if current.map_or(overrides.is_empty(), |c| *c == overrides) {
            return;
        }
        match overrides.is_empty() {
            true => settings.overrides.remove(name),
            false => settings.overrides.insert(name.to_string(), overrides),
        };
        self.put_in_force(&settings);
    }

    /// Reads every zone's overrides from the store and puts any that changed in force: how a
    /// change made on another node (or before a restart) reaches this one.
    pub async fn load_overrides(&self) -> Result<(), StoreError> {
        let names: Vec<String> = self
            .zones
            .current()
            .configs()
            .map(|z| z.name.clone())
            .collect();
        for name in names {
            let stored = self.store.overrides(&name).await?;
            self.take_overrides(&name, stored.unwrap_or_default());
        }
        Ok(())
    }

    /// Puts a reloaded config's zones (and the texts of pages outside any zone) in force, with
    /// the live overrides kept. Refused (and
    /// nothing changes) when zones were added, removed or reordered: per-zone counters and
    /// streams are laid out at start, so that takes a restart.
    pub fn reload_zones(&self, config: &crate::config::Config) -> Result<(), String> {
        let mut settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        same_zones(&settings.configured, &config.zones)?;
        settings.configured = config.zones.clone();
        settings.default_host = config.server.default_host.clone();
        self.strings.store(config.strings.clone());
        self.put_in_force(&settings);
        Ok(())
    }

    /// Whether `config` can be put in force by [`Room::reload_zones`] (the same zones, in the
    /// same order); else why not.
    pub fn check_zones(&self, config: &crate::config::Config) -> Result<(), String> {
        let settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        same_zones(&settings.configured, &config.zones)
    }

    /// The token service.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Whether the store can write now (readiness).
    pub fn store_healthy(&self) -> bool {
        self.store.healthy()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Where events are logged (`[events_log]`).
    pub fn event_log(&self) -> &EventLog {
        &self.events
    }

    /// The exchanger, which the node's background work ticks.
    pub fn exchanger(&self) -> &Arc<Exchanger> {
        &self.exchanger
    }

    /// Keeps `state` in the edge cache unless a newer version is there already.
    pub fn remember(&self, zone: &str, state: Arc<ZoneState>) {
        let newer = self
            .cache
            .get(zone)
            .is_none_or(|cached| cached.version < state.version);
        if newer {
            let version = state.version;
            self.cache.insert(zone.to_string(), state);
            if let Some(zone) = self.zones.current().by_name(zone) {
                self.changes[zone.index].send_replace(version);
            }
        }
    }

    /// Wakes when the zone's cached state changes (event streams wait on it).
    fn zone_changes(&self, zone: &Zone) -> tokio::sync::watch::Receiver<u64> {
        self.changes[zone.index].subscribe()
    }

    fn cached(&self, zone: &str) -> Option<Arc<ZoneState>> {
        self.cache.get(zone).map(|r| r.value().clone())
    }

    fn is_revoked(&self, visitor: VisitorId, now: u64) -> bool {
        self.revoked
            .get(&visitor)
            .is_some_and(|until| *until > now / 1_000)
    }

    /// Runs one exchanger pass and caches what it committed. The overrides are read first, so
    /// a change made on any node is enforced by this node's next tick.
    pub async fn tick(&self) {
        if let Err(e) = self.load_overrides().await {
            tracing::warn!(error = %e, "reading the live overrides failed; keeping those in force");
        }
        for (zone, state) in self.exchanger.tick().await {
            self.remember(&zone, state);
        }
        // Revocations are only needed until the tokens they refuse expire anyway.
        let now = self.clock.now_ms();
        self.revoked.retain(|_, until| *until > now / 1_000);
        self.settle_limits(now).await;
    }

    /// Loads every zone's state and the revocations in force into the edge cache.
    pub async fn warm(&self) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        for zone in self.zones.current().iter() {
            let name = &zone.config.name;
            if let Some(state) = self.store.load(name).await? {
                self.remember(name, Arc::new(state));
            }
            for (visitor, until) in self.store.revocations(name, now).await? {
                self.revoked.insert(visitor, until);
            }
        }
        self.load_overrides().await
    }

    /// Applies a change from the feed to the edge cache.
    pub fn apply(&self, change: Change) {
        match change {
            Change::Zone { zone, state } => self.remember(&zone, state),
            Change::Revoked {
                visitor, until_s, ..
            } => {
                self.revoked.insert(visitor, until_s);
            }
        }
    }

    /// Applies the change feed to the edge cache until the feed closes.
    pub async fn follow(&self, mut feed: tokio::sync::broadcast::Receiver<Change>) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match feed.recv().await {
                Ok(change) => self.apply(change),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "change feed lagged; reloading zones");
                    if let Err(e) = self.warm().await {
                        tracing::warn!(error = %e, "reloading zones failed");
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Runs a store call with the request-path timeout, counting failures.
    async fn call<T>(
        &self,
        zone: &str,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = self.store.timeout();
        let result = match tokio::time::timeout(limit, fut).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(limit)),
        };
        if let Err(e) = &result {
            tracing::warn!(zone, op, error = %e, "store call failed");
            self.metrics
                .store_errors
                .with_label_values(&[zone, op])
                .inc();
        }
        result
    }

    /// Decides and carries out what happens to a request: a reserved `/_usher/` path, a request
    /// to a zone, or a request outside every zone (forwarded untouched).
    pub async fn handle(&self, req: &RequestFacts<'_>) -> Outcome<'_> {
        let now = self.clock.now_ms();
        if let Some(endpoint) = Endpoint::of(req.path) {
            return self.endpoint(endpoint, req, now).await;
        }
        let table = self.zones.current();
        let Some(zone) = table.find(req.host, req.path) else {
            return Outcome::Forward(Forward::plain(&self.default_upstream));
        };
        let (label, outcome) = self.visit(zone, req, now).await;
        self.requests.inc(zone.index, label);
        outcome
    }

    /// The zone's cursor as this node knows it.
    fn cursor(&self, zone: &Zone) -> QueueKey {
        self.cached(&zone.config.name)
            .map(|s| s.cursor)
            .unwrap_or_default()
    }

    /// The gate's decision for `token` in `zone` (as it runs in `phase`), from the edge cache.
    fn decide(
        &self,
        zone: &Zone,
        phase: Phase<'_>,
        token: &TokenCheck,
        preflight: bool,
        now: u64,
    ) -> Decision {
        // Only whoever may become a newcomer can be asked for a puzzle; sessions go by fast.
        let challenge = !matches!(token, TokenCheck::Access(_)) && self.challenge_asked(zone, now);
        self.decide_with(zone, phase, token, preflight, challenge, now)
    }

    /// [`Room::decide`], with whether a puzzle is asked of newcomers given.
    fn decide_with(
        &self,
        zone: &Zone,
        phase: Phase<'_>,
        token: &TokenCheck,
        preflight: bool,
        challenge: bool,
        now: u64,
    ) -> Decision {
        let state = self.cached(&zone.config.name);
        gate::decide(&Facts {
            zone: &zone.config,
            phase,
            token,
            cursor: state.as_ref().map(|s| s.cursor).unwrap_or_default(),
            draw: state.as_ref().and_then(|s| s.draw.as_ref()),
            passed: state.as_ref().map(|s| &s.passed),
            preflight,
            challenge,
            now_ms: now,
        })
    }

    /// What the zone's cookie in `req` holds; refused tokens are counted by reason.
    fn check(&self, zone: &Zone, req: &RequestFacts<'_>, now: u64) -> TokenCheck {
        let raw = req.cookie.and_then(|c| cookie::find(c, &zone.cookie));
        let check = gate::check_token(
            &self.tokens,
            &zone.config.name,
            raw,
            |visitor| self.is_revoked(visitor, now),
            now,
        );
        let check = self.count_use(zone, req, check, now);
        if let TokenCheck::Rejected(reason) = &check {
            tracing::debug!(zone = %zone.config.name, reason = reason.as_str(), "token refused");
            self.metrics
                .rejections
                .with_label_values(&[reason.as_str()])
                .inc();
        }
        check
    }

    /// The zone's `on_store_error` policy, for a request whose store call failed. `place` is a
    /// new visitor-token cookie to hand out with the degraded waiting page.
    fn store_failed(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        now: u64,
        place: Option<String>,
    ) -> (&'static str, Outcome<'_>) {
        match zone.config.on_store_error {
            StoreErrorPolicy::FailOpen => (
                "fail_open",
                Outcome::Forward(Forward::plain(&zone.config.upstream)),
            ),
            StoreErrorPolicy::FailClosed => (
                "fail_closed",
                self.reply(
                    zone,
                    req,
                    zone.config.waiting_status,
                    &status::degraded(zone, now),
                    place,
                ),
            ),
        }
    }

    /// Adds the published lottery seed to the status of a zone whose pre-queue was drawn.
    fn with_draw(&self, zone: &Zone, mut status: Status) -> Status {
        if let Some(info) = status.event.as_mut() {
            let draw = self.cached(&zone.config.name).and_then(|s| s.draw.clone());
            if let Some(draw) = draw.filter(|d| d.event == info.name) {
                info.draw_seed = Some(format!("{:016x}", draw.seed));
                info.drawn_at_ms = Some(draw.at_ms);
            }
        }
        status
    }

    /// The waiting page, or the status JSON for clients that asked for JSON.
    fn reply(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        status_code: u16,
        status: &Status,
        set_cookie: Option<String>,
    ) -> Outcome<'_> {
        let status = &self.with_draw(zone, status.clone());
        let in_line = matches!(
            status.state,
            State::Waiting | State::Paused | State::Prequeue | State::Challenge
        );
        if !req.shows_pages {
            // A script, a form post or a WebSocket cannot show the page: a machine-readable
            // answer, with when to ask again. The place (cookie) is theirs all the same.
            let code = if in_line {
                zone.config.no_page_status
            } else {
                status_code
            };
            return Outcome::Reply(Reply {
                set_cookie,
                retry_after: Some(status.refresh_ms.div_ceil(1_000).max(1)),
                ..Reply::fresh(code, "application/json", status.to_json())
            });
        }
        if req.wants_json {
            return Outcome::Reply(Reply {
                set_cookie,
                ..Reply::fresh(status_code, "application/json", status.to_json())
            });
        }
        let lang = page::negotiate(req.accept_language);
        let html = page::render(status::look(zone), status, lang);
        Outcome::Reply(Reply {
            set_cookie,
            vary: Some("Accept-Language"),
            ..Reply::fresh(status_code, "text/html; charset=utf-8", html.into_bytes())
        })
    }
}
