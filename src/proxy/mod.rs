//! The Pingora glue: the only place besides `service` that imports Pingora. Each phase of
//! [`ProxyHttp`] does one thing:
//!
//! - `request_filter` reads the request into its canonical view ([`crate::request`]; what
//!   cannot be read gets a 400 and never reaches the origin) and hands the facts to the
//!   [`Room`]; a reply or an event stream is written straight away, a forward is kept for the
//!   next phases.
//! - `upstream_peer` picks the upstream address; `connected_to_upstream` arms the first-byte
//!   deadline ([`watchdog`]); `upstream_request_filter` rewrites the headers
//!   ([`upstream_headers`]).
//! - `upstream_response_filter` disarms the deadline; `response_filter` sets usher's cookies
//!   (and makes such responses private to caches), honours `Usher-Command: release`, and frames
//!   bodies for HTTP/1.0 clients.
//! - `fail_to_proxy` answers for an origin that never answered: usher's page or JSON, 502 or
//!   504 with `Retry-After`, and the visitor keeps their session.
//!
//! The origin receives the request target exactly as the client sent it; usher decided on the
//! canonical form.
//!
//! Around every connection, [`connections::Connections`] counts it and answers beyond the
//! node's connection limit. The [`Lifecycle`] decides what a request may do while the node
//! starts, drains or hands over to a new process: wait for the store, or be sent to retry.

mod connections;
mod facts;
mod header_deadline;
pub mod proxy_header;
mod upstream_headers;
mod upstreams;
mod watchdog;
mod writers;

use crate::config::{Balance, Config};
use crate::lifecycle::{Lifecycle, RequestGuard};
use crate::page::OriginError;
use crate::request::client::TrustedProxies;
use crate::request::{self, Refusal};
use crate::room::{Endpoint, ErrorAudience, Forward, Outcome, RequestFacts, Room};
use crate::token::cookie;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use watchdog::{Watchdog, Watchdogs};

pub use connections::Connections;
pub use upstreams::{Upstream, Upstreams};

/// usher as a Pingora proxy.
pub struct UsherProxy {
    room: Arc<Room>,
    upstreams: Arc<Upstreams>,
    cookie_prefix: String,
    trusted: TrustedProxies,
    /// `[server] default_host`: the `Host` sent for a request that named none (HTTP/1.0).
    default_host: Option<String>,
    /// The first-byte deadlines of requests on their way to the origin.
    watchdogs: Arc<Watchdogs>,
    /// Starting, serving, draining or handed over.
    lifecycle: Arc<Lifecycle>,
    /// `[server] keepalive_timeout`, in whole seconds.
    keepalive_secs: u64,
    /// How long a request waits for a store that is not open yet (an upgrade).
    store_wait: Duration,
    /// What visitors speak to the listener: `https` with `[server] tls`.
    scheme: &'static str,
}

/// Per-request state, from the gate's forward to the end of the response.
#[derive(Default)]
pub struct RequestCtx {
    /// The forward decided in `request_filter`.
    forward: Option<Forward>,
    /// Who an error page would be for.
    audience: Option<ErrorAudience>,
    /// The canonical host the request was for (for `X-Forwarded-Host`).
    host: Option<String>,
    /// The client speaks HTTP/1.0: no chunked bodies.
    http10: bool,
    /// The origin began its response.
    answered: bool,
    /// The first-byte deadline passed.
    timed_out: Arc<AtomicBool>,
    /// The first-byte deadline of the current upstream connection.
    watchdog: Option<Watchdog>,
    /// Counts the request as open until it ends (a shutdown waits for it).
    open: Option<RequestGuard>,
    /// The forward's upstream, looked up once: the request keeps it through a reload.
    upstream: Option<Arc<Upstream>>,
    /// The origin address of the current attempt, counted in flight while held.
    picked: Option<upstreams::Picked>,
    /// When the current attempt's connection was ready (its response time starts there).
    sent_at: Option<std::time::Instant>,
    /// The address whose connection failed, which the retry avoids.
    failed: Option<std::net::SocketAddr>,
}

impl UsherProxy {
    /// The proxy of `room` for `config`: its upstreams, cookie prefix and `[server]` settings.
    pub fn new(
        room: Arc<Room>,
        config: &Config,
        lifecycle: Arc<Lifecycle>,
        upstreams: Arc<Upstreams>,
    ) -> Self {
        UsherProxy {
            room,
            upstreams,
            cookie_prefix: config.tokens.cookie_prefix.clone(),
            trusted: config.server.trusted_proxies.clone(),
            default_host: config.server.default_host.clone(),
            watchdogs: Arc::default(),
            lifecycle,
            keepalive_secs: config.server.keepalive_timeout.as_secs().max(1),
            store_wait: config.server.grace_period + STORE_WAIT_MARGIN,
            scheme: match config.server.tls {
                Some(_) => "https",
                None => "http",
            },
        }
    }

    /// The forward's upstream, from the table in force when the request first asks.
    fn upstream(&self, ctx: &mut RequestCtx) -> Result<Arc<Upstream>> {
        if let Some(upstream) = &ctx.upstream {
            return Ok(upstream.clone());
        }
        let name = ctx
            .forward
            .as_ref()
            .map(|f| f.upstream.as_str())
            .unwrap_or_default();
        let upstream = self.upstreams.get(name).ok_or_else(|| {
            Error::explain(ErrorType::InternalError, format!("no upstream `{name}`"))
        })?;
        ctx.upstream = Some(upstream.clone());
        Ok(upstream)
    }

    /// A 400 for a request usher cannot read: said plainly, counted, and the connection closed
    /// (what else the client sent on it cannot be trusted to be framed as it thinks).
    async fn refuse(&self, session: &mut Session, refusal: Refusal) -> Result<bool> {
        self.room
            .metrics()
            .refused
            .with_label_values(&[refusal.reason()])
            .inc();
        tracing::debug!(reason = %refusal, "request refused");
        let reply = crate::room::Reply::fresh(
            400,
            "text/plain; charset=utf-8",
            format!("usher: bad request: {refusal}\n").into_bytes(),
        );
        writers::reply(session, reply, true).await?;
        Ok(true)
    }
}

/// How much longer than the previous process's grace period a request waits for the store
/// during an upgrade (the successor opens it once the predecessor closed it).
const STORE_WAIT_MARGIN: Duration = Duration::from_secs(10);

/// `/_usher/ready`: 200 when this node takes new visitors, else 503 with the reason (a load
/// balancer stops sending new visitors; `/_usher/health` only says the process answers).
fn readiness(lifecycle: &Lifecycle, store_healthy: bool) -> crate::room::Reply {
    let (status, body) = crate::room::readiness_json(lifecycle.readiness(store_healthy));
    crate::room::Reply::fresh(status, "application/json", body.into_bytes())
}

/// What kind of origin failure `e` is, or `None` when the origin is not to blame.
fn origin_error(e: &Error, timed_out: bool) -> Option<OriginError> {
    if timed_out {
        return Some(OriginError::Timeout);
    }
    if *e.esource() != ErrorSource::Upstream {
        return None;
    }
    Some(match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            OriginError::Timeout
        }
        _ => OriginError::Unreachable,
    })
}

/// The `class` label of `usher_upstream_responses_total`.
fn status_class(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// What `balance = "visitor"` hashes: the visitor's id, or for a request without a session
/// (a path outside every zone) its client's address.
fn balance_key(ctx: &RequestCtx, session: &Session) -> Vec<u8> {
    let visitor = ctx.forward.as_ref().and_then(|f| f.session.as_ref());
    match visitor {
        Some(s) => s.visitor.0.to_be_bytes().to_vec(),
        None => session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_string().into_bytes())
            .unwrap_or_default(),
    }
}

/// Whether the current attempt may be retried on another address of its upstream: once per
/// request, and only when there is another. The failed address is avoided by the next pick.
fn retry_elsewhere(ctx: &mut RequestCtx) -> bool {
    let (Some(upstream), Some(picked)) = (&ctx.upstream, &ctx.picked) else {
        return false;
    };
    let another = upstream.addresses().iter().any(|(a, _)| *a != picked.addr);
    if ctx.failed.is_some() || !another {
        return false;
    }
    ctx.failed = Some(picked.addr);
    upstream.retried();
    true
}

/// `Cache-Control` for a response that carries one of usher's cookies: whatever the origin
/// said, no shared cache may keep it (it would hand one visitor's slot to others).
fn private_cache_control(origin: Option<&str>) -> String {
    let directives: Vec<&str> = origin
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    let strict = |d: &&str| d.eq_ignore_ascii_case("private") || d.eq_ignore_ascii_case("no-store");
    // What speaks to shared caches goes; the rest of the origin's word stands.
    let shared = |d: &&str| {
        d.eq_ignore_ascii_case("public")
            || d.get(..8)
                .is_some_and(|p| p.eq_ignore_ascii_case("s-maxage"))
    };
    let mut kept: Vec<&str> = Vec::with_capacity(directives.len() + 1);
    if !directives.iter().any(strict) {
        kept.push("private");
    }
    kept.extend(directives.iter().filter(|d| !shared(d)));
    kept.join(", ")
}

#[async_trait]
impl ProxyHttp for UsherProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx::default()
    }

    /// HTTP/1.1 pipelining: requests sent back to back on one connection are answered in order
    /// (Pingora otherwise answers the first and closes the connection).
    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<()> {
        header_deadline::disarm(session.as_downstream().stream());
        session.as_downstream_mut().set_pipelining_enabled(true);
        ctx.open = Some(self.lifecycle.request());
        // HTTP/1.1 keeps a connection open for good unless told otherwise; Pingora turns
        // keep-alive off by itself for HTTP/1.0 and once the node drains.
        if session.as_downstream().get_keepalive().is_some() {
            session.set_keepalive(Some(self.keepalive_secs));
        }
        Ok(())
    }

    /// Runs the gate on the request's canonical view: a reply (waiting page, status, a 400)
    /// or an event stream ends the request here.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let req = session.req_header();
        let hosts = facts::values(req, &http::header::HOST);
        let raw = facts::raw(req, &hosts);
        ctx.http10 = raw.http10;
        let view = match request::view(raw) {
            Ok(view) => view,
            Err(refusal) => return self.refuse(session, refusal).await,
        };
        let cookie = facts::joined(req, &http::header::COOKIE);
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let facts = RequestFacts {
            client: facts::client(req, peer, &self.trusted),
            ..facts::facts(
                req,
                view.host.as_deref(),
                &view.path,
                view.query,
                cookie.as_deref(),
            )
        };

        let upgrade = facts::is_upgrade(req);
        let audience = ErrorAudience::of(&facts);
        let host = view.host.as_deref().map(str::to_string);
        let endpoint = Endpoint::of(&view.path);
        if endpoint == Some(Endpoint::Ready) {
            let reply = readiness(&self.lifecycle, self.room.store_healthy());
            writers::reply(session, reply, ctx.http10).await?;
            return Ok(true);
        }
        if endpoint != Some(Endpoint::Health)
            && !self.lifecycle.is_store_open()
            && !self.lifecycle.wait_for_store(self.store_wait).await
        {
            let reply = readiness(&self.lifecycle, false);
            writers::reply(session, reply, true).await?;
            return Ok(true);
        }
        let Some(deciding) = self.lifecycle.decision() else {
            // This process handed the store to its successor: the client asks again on a
            // fresh connection, which the successor accepts.
            let target = facts::retry_target(req, &view.path, view.query);
            writers::retry_elsewhere(session, &target).await?;
            return Ok(true);
        };
        let outcome = self.room.handle(&facts).await;
        // The store work is done (an event stream ends before a handover closes the store).
        drop(deciding);
        match outcome {
            Outcome::Forward(forward) => {
                ctx.forward = Some(forward);
                ctx.audience = Some(audience);
                ctx.host = host;
                if upgrade {
                    // An upgraded connection (WebSocket) reads the client for as long as it is
                    // open; it may idle as long as the upstream allows.
                    let idle = self.upstream(ctx)?.config.idle_timeout;
                    session.set_read_timeout(Some(idle));
                }
                Ok(false)
            }
            Outcome::Reply(reply) => {
                let http10 = ctx.http10;
                writers::reply(session, reply, http10).await?;
                Ok(true)
            }
            Outcome::Events(events) => {
                let http10 = ctx.http10;
                // Every stream but the admitted visitor's ends with a failed write: the page
                // was closed. These are the visitor's; `suppress_error_log` keeps them out of
                // the error log.
                writers::events(session, events, http10, &self.lifecycle)
                    .await
                    .map_err(|e| e.into_down())?;
                Ok(true)
            }
        }
    }

    /// An address of the decided upstream, by its balancing policy (avoiding one that just
    /// failed to connect); TLS, SNI and roots as configured. Reads may idle for `idle_timeout`
    /// once the response began; the first byte has `read_timeout` ([`watchdog`]).
    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let upstream = self.upstream(ctx)?;
        // Only consistent hashing needs a key: the visitor, or the client of a request without
        // a session.
        let key = match upstream.config.balance {
            Balance::Visitor => balance_key(ctx, session),
            _ => Vec::new(),
        };
        // The previous attempt's hold ends before the next one is counted.
        ctx.picked = None;
        let picked = upstream.pick(&key, ctx.failed).ok_or_else(|| {
            Error::explain(
                ErrorType::InternalError,
                format!("upstream `{}` has no address", upstream.config.name),
            )
        })?;
        let peer = upstream.peer(&picked);
        ctx.picked = Some(picked);
        Ok(Box::new(peer))
    }

    /// A connection that could not be made is tried once more on another address: nothing
    /// reached the origin, so any method is safe to send again.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Self::CTX,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let (Some(upstream), Some(picked)) = (ctx.upstream.clone(), ctx.picked.as_ref()) else {
            return e;
        };
        let kind = match e.etype() {
            ErrorType::ConnectTimedout => "timeout",
            _ => "connect",
        };
        upstream.failed(picked.addr, kind);
        e.set_retry(retry_elsewhere(ctx));
        e
    }

    /// Arms the first-byte deadline on the connection the request goes out on.
    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let timeout = self.upstream(ctx)?.config.read_timeout;
        ctx.watchdog = self.watchdogs.arm(fd, timeout, ctx.timed_out.clone());
        ctx.sent_at = Some(std::time::Instant::now());
        Ok(())
    }

    /// The origin's time to answer starts when the whole request is out.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(watchdog) = &mut ctx.watchdog {
            watchdog.extend();
        }
        Ok(())
    }

    /// Strips usher's cookies and spoofable headers; adds the visitor's and the forwarding
    /// headers.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        upstream_headers::rewrite(
            upstream_request,
            ctx.forward.as_ref(),
            &self.cookie_prefix,
            peer,
            &self.trusted,
            ctx.host.as_deref(),
            self.scheme,
        )?;
        // A shop that routes by name gets the name it expects.
        if let Some(host) = self.upstream(ctx)?.config.host_header.as_deref() {
            upstream_request.insert_header("host", host)?;
        }
        // Pingora sends HTTP/1.1 upstream, where a Host is required: an HTTP/2 request's is its
        // `:authority`; a request that named none (HTTP/1.0) was gated as the default host, and
        // goes to the origin as such.
        if !upstream_request.headers.contains_key("host") {
            let authority = facts::authority(session.req_header())
                .and_then(|a| http::HeaderValue::from_bytes(a).ok());
            if let Some(authority) = authority {
                upstream_request.insert_header("host", authority)?;
            } else if let Some(host) = &self.default_host {
                upstream_request.insert_header("host", host.as_str())?;
            }
        }
        Ok(())
    }

    /// The origin answered: the first-byte deadline is met.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        ctx.watchdog = None;
        ctx.answered = true;
        let elapsed = ctx.sent_at.map(|sent| sent.elapsed());
        if let (Some(picked), Some(elapsed)) = (&ctx.picked, elapsed) {
            picked.hold.answered(elapsed);
        }
        if let Some(forward) = &ctx.forward {
            let zone = forward.session.as_ref().map_or("none", |s| s.zone.as_str());
            let metrics = self.room.metrics();
            metrics
                .upstream_responses
                .with_label_values(&[
                    zone,
                    &forward.upstream,
                    status_class(upstream_response.status),
                ])
                .inc();
            if let Some(elapsed) = elapsed {
                metrics
                    .upstream_response
                    .with_label_values(&[zone, &forward.upstream])
                    .observe(elapsed.as_secs_f64());
            }
        }
        Ok(())
    }

    /// Adds the access-token cookie (and keeps such a response out of shared caches);
    /// `Usher-Command: release` frees the visitor's slot. HTTP/1.0 clients get the body
    /// unchunked, until the connection closes.
    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if ctx.http10 && upstream_response.headers.contains_key("transfer-encoding") {
            upstream_response.remove_header("transfer-encoding");
            upstream_response.insert_header("connection", "close")?;
            session.set_keepalive(None);
        }
        let Some(forward) = ctx.forward.as_ref() else {
            return Ok(());
        };
        let release = upstream_response
            .headers
            .get("usher-command")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"release"));
        upstream_response.remove_header("usher-command");
        // The shop names the visitor: an identity cookie, and the identity's place recorded at
        // this session's arrival. The header itself never reaches the visitor.
        if let Some(identity) = upstream_response.remove_header("usher-identity") {
            let named = self
                .room
                .identity_named(identity.as_bytes(), forward.session.as_ref());
            if let Some(cookie) = named.await {
                upstream_response.append_header("set-cookie", cookie)?;
            }
        }
        let cookie = match (&forward.session, release) {
            (Some(s), true) => self.room.release(&s.zone, s.visitor).await,
            _ => forward.set_cookie.clone(),
        };
        if let Some(cookie) = cookie {
            upstream_response.append_header("set-cookie", cookie)?;
        }
        let ours = upstream_response
            .headers
            .get_all("set-cookie")
            .iter()
            .any(|v| cookie::is_own_set_cookie(v.as_bytes(), &self.cookie_prefix));
        if ours {
            let origin = upstream_response
                .headers
                .get("cache-control")
                .and_then(|v| v.to_str().ok());
            let private = private_cache_control(origin);
            upstream_response.insert_header("cache-control", private)?;
        }
        Ok(())
    }

    /// An error after the connection was made. An idempotent request whose connection failed
    /// before the origin answered is tried once more on another address (the origin may have
    /// died under it); a request cut by the first-byte deadline is not retried (it would wait
    /// the whole deadline again).
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Self::CTX,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let timed_out = ctx.timed_out.load(Ordering::Acquire);
        if let (Some(upstream), Some(picked)) = (&ctx.upstream, &ctx.picked) {
            if *e.esource() == ErrorSource::Upstream {
                upstream.failed(picked.addr, if timed_out { "timeout" } else { "closed" });
            }
        }
        let retryable = !timed_out
            && session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated();
        if !retryable {
            e.set_retry(false);
        } else if !ctx.answered && *e.esource() == ErrorSource::Upstream && retry_elsewhere(ctx) {
            e.set_retry(true);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    /// The request failed for good. When the origin never answered, the visitor gets usher's
    /// page (or JSON): 502 or 504 with `Retry-After`, keeping their session with its slot held
    /// for the claim window. Never Pingora's blank error.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        ctx.watchdog = None;
        let no_reuse = |code| FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        };
        let dead = matches!(
            e.etype(),
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed
        );
        if *e.esource() == ErrorSource::Downstream && dead {
            return no_reuse(0); // the client is gone
        }
        if session.response_written().is_some() {
            return no_reuse(0); // mid-response: nothing can be said any more
        }
        let timed_out = ctx.timed_out.load(Ordering::Acquire);
        let reply = match (origin_error(e, timed_out), ctx.forward.as_ref()) {
            (Some(kind), Some(forward)) => {
                let mut set_cookie = forward.set_cookie.clone();
                if let (false, Some(s)) = (ctx.answered, &forward.session) {
                    if let Some(provisional) = self.room.forward_failed(s).await {
                        set_cookie = Some(provisional);
                    }
                }
                let audience = ctx.audience.unwrap_or(ErrorAudience {
                    json: true,
                    lang: crate::page::Lang::En,
                });
                let zone = forward.session.as_ref().map(|s| s.zone.as_str());
                self.room
                    .origin_error(&forward.upstream, zone, kind, audience, set_cookie)
            }
            _ => {
                let code = match e.etype() {
                    ErrorType::HTTPStatus(code) => *code,
                    _ if *e.esource() == ErrorSource::Downstream => 400,
                    _ => 500,
                };
                crate::room::Reply::fresh(code, "text/plain; charset=utf-8", Vec::new())
            }
        };
        let code = reply.status;
        if let Err(write) = writers::reply(session, reply, true).await {
            tracing::debug!(error = %write, "could not write the error answer");
        }
        no_reuse(code)
    }

    /// Disarms a first-byte deadline still armed (the request ended another way),
    /// and sets the header deadline for the connection's next request.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Self::CTX) {
        ctx.watchdog = None;
        header_deadline::arm_next(session.as_downstream().stream());
    }

    /// Visitors closing tabs mid-request are normal during an on-sale; keep them out of the
    /// error log (Pingora logs every one otherwise).
    fn suppress_error_log(&self, _session: &Session, _ctx: &Self::CTX, error: &Error) -> bool {
        *error.esource() == ErrorSource::Downstream
            && matches!(
                error.etype(),
                ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_with_ushers_cookie_are_private() {
        for (origin, expected) in [
            (None, "private"),
            (Some("public, max-age=60"), "private, max-age=60"),
            (Some("max-age=60, s-maxage=600"), "private, max-age=60"),
            (Some("no-store"), "no-store"),
            (Some("private, max-age=5"), "private, max-age=5"),
            (Some("Public, no-store"), "no-store"),
            (Some(""), "private"),
        ] {
            assert_eq!(private_cache_control(origin), expected, "{origin:?}");
        }
    }

    #[test]
    fn statuses_are_counted_by_class() {
        for (status, class) in [
            (101, "1xx"),
            (200, "2xx"),
            (204, "2xx"),
            (304, "3xx"),
            (404, "4xx"),
            (429, "4xx"),
            (500, "5xx"),
            (503, "5xx"),
            (599, "5xx"),
        ] {
            let status = http::StatusCode::from_u16(status).expect("status");
            assert_eq!(status_class(status), class, "{status}");
        }
    }

    #[test]
    fn origin_failures_are_told_apart() {
        let up = |t: ErrorType| {
            let mut e = Error::new(t);
            e.as_up();
            e
        };
        assert_eq!(
            origin_error(&up(ErrorType::ConnectRefused), false),
            Some(OriginError::Unreachable)
        );
        assert_eq!(
            origin_error(&up(ErrorType::ConnectionClosed), false),
            Some(OriginError::Unreachable)
        );
        assert_eq!(
            origin_error(&up(ErrorType::ConnectTimedout), false),
            Some(OriginError::Timeout)
        );
        assert_eq!(
            origin_error(&up(ErrorType::ConnectionClosed), true),
            Some(OriginError::Timeout),
            "the watchdog cut it"
        );
        let mut down = Error::new(ErrorType::ReadError);
        down.as_down();
        assert_eq!(origin_error(&down, false), None);
    }
}
