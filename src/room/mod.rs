//! The room: carries out the gate's decisions. It owns the zone table, the token service, the
//! store handle and the edge cache of zone records, and turns a request's facts into an
//! [`Outcome`]: forward (with headers and cookies to add) or reply (waiting page, status JSON).
//! It never sees a Pingora type; `proxy` only extracts facts and renders outcomes.

mod endpoints;
pub mod page;
mod places;
pub mod status;

#[cfg(test)]
mod tests;

use crate::admission::{VisitorId, ZoneState};
use crate::clock::SharedClock;
use crate::config::{Config, StoreErrorPolicy};
use crate::gate::{self, Decision, TokenCheck};
use crate::metrics::{Metrics, RequestCounters};
use crate::store::{Change, Store, StoreError, ZoneRecord};
use crate::token::{cookie, Tokens};
use crate::zone::{Zone, ZoneTable};
use dashmap::DashMap;
use status::{State, Status};
use std::sync::Arc;
use std::time::Duration;

/// How long a store operation may take on the request path before the zone's policy applies,
/// unless the config sets one (`store.timeout` of the CQL store).
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The facts of a request the room needs; nothing transport-specific.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// Normalized host (lower case, no port).
    pub host: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// The query string, if any.
    pub query: Option<&'a str>,
    /// The `Cookie` header, if any.
    pub cookie: Option<&'a str>,
    /// Whether the client asked for JSON (`Accept: application/json`).
    pub wants_json: bool,
}

/// Forward the request upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Upstream name.
    pub upstream: String,
    /// The zone and visitor, when the request passed the gate with a session.
    pub session: Option<(String, VisitorId)>,
    /// Milliseconds the visitor waited in line (for the `Usher-Queue-Time` header).
    pub queue_ms: Option<u64>,
    /// A `Set-Cookie` to add to the response (new or renewed access token).
    pub set_cookie: Option<String>,
}

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
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Proxy it.
    Forward(Forward),
    /// Answer it.
    Reply(Reply),
}

/// The waiting room of one usher node.
pub struct Room {
    zones: ZoneTable,
    tokens: Tokens,
    store: Arc<dyn Store>,
    cache: DashMap<String, Arc<ZoneRecord>>,
    clock: SharedClock,
    metrics: Metrics,
    requests: RequestCounters,
    default_upstream: String,
    cookie_secure: bool,
    visitor_ttl: Duration,
    store_timeout: Duration,
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
        let zones = ZoneTable::new(config);
        let names: Vec<&str> = zones.iter().map(|z| z.config.name.as_str()).collect();
        let requests = RequestCounters::new(&metrics, &names);
        Room {
            zones,
            requests,
            tokens,
            store,
            cache: DashMap::new(),
            clock,
            metrics,
            default_upstream: config.server.default_upstream.clone(),
            cookie_secure: config.tokens.cookie_secure,
            visitor_ttl: config.tokens.visitor_ttl,
            store_timeout: config
                .store
                .scylla
                .as_ref()
                .map_or(STORE_TIMEOUT, |s| s.timeout),
        }
    }

    /// The zone table.
    pub fn zones(&self) -> &ZoneTable {
        &self.zones
    }

    /// The token service.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The zone record a zone starts with.
    pub fn initial_record(&self, zone: &Zone) -> ZoneRecord {
        ZoneRecord {
            state: ZoneState::new(&zone.config.limits, self.clock.now_ms()),
            ledger: Default::default(),
        }
    }

    /// Keeps `record` in the edge cache unless a newer version is there already.
    pub fn remember(&self, zone: &str, record: Arc<ZoneRecord>) {
        let newer = self
            .cache
            .get(zone)
            .is_none_or(|cached| cached.state.version < record.state.version);
        if newer {
            self.cache.insert(zone.to_string(), record);
        }
    }

    fn cached(&self, zone: &str) -> Option<Arc<ZoneRecord>> {
        self.cache.get(zone).map(|r| r.value().clone())
    }

    /// Loads every zone's record into the edge cache.
    pub async fn warm(&self) -> Result<(), StoreError> {
        for zone in self.zones.iter() {
            if let Some(record) = self.store.load(&zone.config.name).await? {
                self.remember(&zone.config.name, Arc::new(record));
            }
        }
        Ok(())
    }

    /// Applies the change feed to the edge cache until the feed closes.
    pub async fn follow(&self, mut feed: tokio::sync::broadcast::Receiver<Change>) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match feed.recv().await {
                Ok(Change::Zone { zone, record }) => self.remember(&zone, record),
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
        let result = match tokio::time::timeout(self.store_timeout, fut).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(self.store_timeout)),
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

    /// Decides and carries out what happens to a request.
    pub async fn handle(&self, req: &RequestFacts<'_>) -> Outcome {
        let now = self.clock.now_ms();
        if let Some(endpoint) = req.path.strip_prefix("/_usher/") {
            return self.endpoint(endpoint, req, now).await;
        }
        let Some(zone) = self.zones.find(req.host, req.path) else {
            return Outcome::Forward(Forward {
                upstream: self.default_upstream.clone(),
                session: None,
                queue_ms: None,
                set_cookie: None,
            });
        };
        let name = zone.config.name.as_str();
        let record = self.cached(name);
        let check = self.check(zone, req, record.as_deref(), now);
        let cursor = record.map(|r| r.state.cursor).unwrap_or_default();
        let decision = gate::decide(&zone.config, &check, cursor, now);
        let (label, outcome) = self.carry_out(zone, decision, &check, req, now).await;
        self.requests.inc(zone.index, label);
        outcome
    }

    fn check(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        record: Option<&ZoneRecord>,
        now: u64,
    ) -> TokenCheck {
        let raw = req.cookie.and_then(|c| cookie::find(c, &zone.cookie));
        let check = gate::check_token(
            &self.tokens,
            &zone.config.name,
            raw,
            record.map(|r| &r.ledger),
            now,
        );
        if let TokenCheck::Rejected(reason) = &check {
            tracing::debug!(zone = %zone.config.name, reason = reason.as_str(), "token refused");
            self.metrics
                .rejections
                .with_label_values(&[reason.as_str()])
                .inc();
        }
        check
    }

    async fn carry_out(
        &self,
        zone: &Zone,
        decision: Decision,
        check: &TokenCheck,
        req: &RequestFacts<'_>,
        now: u64,
    ) -> (&'static str, Outcome) {
        let forward = |session, queue_ms, set_cookie| {
            Outcome::Forward(Forward {
                upstream: zone.config.upstream.clone(),
                session,
                queue_ms,
                set_cookie,
            })
        };
        let result = match decision {
            Decision::Passthrough => return ("passthrough", forward(None, None, None)),
            Decision::Closed => {
                let status = Status::without_place(zone, State::Closed, now);
                return ("closed", self.reply(zone, req, 503, &status, None));
            }
            Decision::Forward { renew } => {
                let TokenCheck::Access(claims) = check else {
                    return ("forward", forward(None, None, None));
                };
                let set_cookie = if renew {
                    self.renew(zone, claims, now).await
                } else {
                    None
                };
                let queue_ms = claims.adm.map(|adm| adm.saturating_sub(claims.rank));
                return (
                    "forward",
                    forward(
                        Some((zone.config.name.clone(), claims.vid)),
                        queue_ms,
                        set_cookie,
                    ),
                );
            }
            Decision::Claim(_) | Decision::Wait(_) => {
                let TokenCheck::Visitor(claims) = check else {
                    return ("join", self.join(zone, req, now).await);
                };
                self.place(zone, claims, now)
                    .await
                    .map(|place| match place {
                        places::Place::Admitted {
                            token,
                            queue_ms,
                            visitor,
                        } => (
                            "claim",
                            forward(
                                Some((zone.config.name.clone(), visitor)),
                                Some(queue_ms),
                                Some(token),
                            ),
                        ),
                        places::Place::Waiting(status) => (
                            "wait",
                            self.reply(zone, req, zone.config.waiting_status, &status, None),
                        ),
                    })
            }
            Decision::AdmitOrJoin => match self.admit_directly(zone, now).await {
                Ok(Some((visitor, token))) => Ok((
                    "admit",
                    forward(
                        Some((zone.config.name.clone(), visitor)),
                        Some(0),
                        Some(token),
                    ),
                )),
                Ok(None) => Ok(("join", self.join(zone, req, now).await)),
                Err(e) => Err(e),
            },
            Decision::Join => Ok(("join", self.join(zone, req, now).await)),
        };
        result.unwrap_or_else(|_| {
            // A visitor who has a place keeps it; anyone else gets one now, stamped with their
            // arrival, so a store outage costs nobody their turn.
            let place = match check {
                TokenCheck::Visitor(_) => None,
                _ => Some(self.mint_place(zone, now).1),
            };
            self.store_failed(zone, req, now, place)
        })
    }

    /// The zone's `on_store_error` policy, for a request whose store call failed. `place` is a
    /// new visitor-token cookie to hand out with the degraded waiting page.
    fn store_failed(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        now: u64,
        place: Option<String>,
    ) -> (&'static str, Outcome) {
        match zone.config.on_store_error {
            StoreErrorPolicy::FailOpen => (
                "fail_open",
                Outcome::Forward(Forward {
                    upstream: zone.config.upstream.clone(),
                    session: None,
                    queue_ms: None,
                    set_cookie: None,
                }),
            ),
            StoreErrorPolicy::FailClosed => {
                let mut status = Status::waiting(zone, State::Waiting, 0, Default::default(), now);
                status.degraded = true;
                (
                    "fail_closed",
                    self.reply(zone, req, zone.config.waiting_status, &status, place),
                )
            }
        }
    }

    /// The waiting page, or the status JSON for clients that asked for JSON.
    fn reply(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        status_code: u16,
        status: &Status,
        set_cookie: Option<String>,
    ) -> Outcome {
        let (content_type, body) = if req.wants_json {
            ("application/json", status.to_json())
        } else if status.state == State::Closed {
            (
                "text/html; charset=utf-8",
                page::closed(&zone.config.title).into_bytes(),
            )
        } else {
            (
                "text/html; charset=utf-8",
                page::waiting(status).into_bytes(),
            )
        };
        Outcome::Reply(Reply {
            status: status_code,
            content_type,
            body,
            set_cookie,
        })
    }
}
