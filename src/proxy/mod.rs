//! The Pingora glue: the only place besides `service` that imports Pingora. `request_filter`
//! extracts the request's facts and hands them to the [`Room`]; a reply is written straight away,
//! a forward picks the upstream, strips usher's cookies and spoofable headers from the upstream
//! request, and adds `Usher-Visitor` / `Usher-Zone` / `Usher-Queue-Time`. `response_filter` sets
//! cookies and honours the origin's `Usher-Command: release`.

use crate::config::UpstreamConfig;
use crate::room::{EventStream, Forward, Outcome, Reply, RequestFacts, Room};
use crate::zone::normalize_host;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Headers usher sets for the origin; anything a client sends under these names is dropped.
const OWN_HEADERS: [&str; 4] = [
    "usher-visitor",
    "usher-zone",
    "usher-queue-time",
    "usher-command",
];

/// How long a write to an event stream may block before the visitor is taken for gone.
const SSE_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// An upstream's addresses with a round-robin cursor.
struct Upstream {
    config: UpstreamConfig,
    next: AtomicUsize,
}

/// usher as a Pingora proxy.
pub struct UsherProxy {
    room: Arc<Room>,
    upstreams: HashMap<String, Upstream>,
    cookie_prefix: String,
    /// `<cookie_prefix>_`, the start of every usher cookie name.
    cookie_marker: String,
}

/// Per-request state: the forward decided in `request_filter`.
#[derive(Default)]
pub struct RequestCtx {
    forward: Option<Forward>,
}

impl UsherProxy {
    /// A proxy for `room` over `upstreams`.
    pub fn new(
        room: Arc<Room>,
        upstreams: impl IntoIterator<Item = UpstreamConfig>,
        cookie_prefix: &str,
    ) -> Self {
        let upstreams = upstreams
            .into_iter()
            .map(|config| {
                (
                    config.name.clone(),
                    Upstream {
                        config,
                        next: AtomicUsize::new(0),
                    },
                )
            })
            .collect();
        UsherProxy {
            room,
            upstreams,
            cookie_prefix: cookie_prefix.to_string(),
            cookie_marker: format!("{cookie_prefix}_"),
        }
    }
}

/// All values of header `name` joined with "; " (HTTP/2 may split `Cookie`), borrowed in the
/// common case of a single line.
fn joined_header<'a>(req: &'a RequestHeader, name: &str) -> Option<Cow<'a, str>> {
    let mut values = req
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let first = values.next()?;
    match values.next() {
        None => Some(Cow::Borrowed(first)),
        Some(second) => {
            let mut all = vec![first, second];
            all.extend(values);
            Some(Cow::Owned(all.join("; ")))
        }
    }
}

/// Whether the client can show a waiting page: a GET or HEAD that is neither a WebSocket (or
/// other protocol) upgrade nor a script's request (`X-Requested-With: XMLHttpRequest`, which
/// jQuery-era and many app clients send; `fetch` calls that ask for JSON are `wants_json`).
fn shows_pages(req: &RequestHeader) -> bool {
    let page_method = req.method == http::Method::GET || req.method == http::Method::HEAD;
    let upgrade = req.headers.contains_key("upgrade");
    let script = req
        .headers
        .get("x-requested-with")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("xmlhttprequest"));
    page_method && !upgrade && !script
}

async fn write_reply(session: &mut Session, reply: Reply) -> Result<()> {
    let mut header = ResponseHeader::build(reply.status, Some(5))?;
    header.insert_header("content-type", reply.content_type)?;
    header.insert_header("content-length", reply.body.len().to_string())?;
    header.insert_header("cache-control", reply.cache_control)?;
    if let Some(vary) = reply.vary {
        header.insert_header("vary", vary)?;
    }
    if let Some(cookie) = reply.set_cookie {
        header.insert_header("set-cookie", cookie)?;
    }
    if let Some(seconds) = reply.retry_after {
        header.insert_header("retry-after", seconds.to_string())?;
    }
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session
        .write_response_body(Some(Bytes::from(reply.body)), true)
        .await?;
    Ok(())
}

/// Streams `/_usher/events` until the stream ends or the visitor goes away (a write fails).
async fn write_events(session: &mut Session, mut events: EventStream<'_>) -> Result<()> {
    let mut header = ResponseHeader::build(200, Some(5))?;
    header.insert_header("content-type", "text/event-stream")?;
    header.insert_header("cache-control", "no-store")?;
    // nginx and similar buffer responses unless told not to.
    header.insert_header("x-accel-buffering", "no")?;
    header.insert_header("transfer-encoding", "chunked")?;
    // An open stream never reads again; the default read timeout would cut it after 60 s.
    session.set_read_timeout(None);
    // A visitor whose browser stopped reading must not hold the connection forever.
    session.set_write_timeout(Some(SSE_WRITE_TIMEOUT));
    session
        .write_response_header(Box::new(header), false)
        .await?;
    let preamble = events.preamble();
    session
        .write_response_body(Some(Bytes::from(preamble)), false)
        .await?;
    while let Some(chunk) = events.next().await {
        session
            .write_response_body(Some(Bytes::from(chunk)), false)
            .await?;
    }
    session.write_response_body(None, true).await?;
    Ok(())
}

#[async_trait]
impl ProxyHttp for UsherProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx::default()
    }

    /// Runs the gate: a reply (waiting page, status) ends the request here.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let req = session.req_header();
        let host = req
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.host())
            .map(normalize_host)
            .unwrap_or_default();
        let cookie = joined_header(req, "cookie");
        let wants_json = req
            .headers
            .get("accept")
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
        let facts = RequestFacts {
            host: &host,
            path: req.uri.path(),
            query: req.uri.query(),
            cookie: cookie.as_deref(),
            wants_json,
            shows_pages: shows_pages(req),
            accept_language: req
                .headers
                .get("accept-language")
                .and_then(|v| v.to_str().ok()),
        };
        if facts.path == "/_usher/events" {
            let last_event_id = req
                .headers
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let written = match self.room.events(&facts, last_event_id.as_deref()) {
                Ok(events) => write_events(session, events).await,
                Err(reply) => write_reply(session, reply).await,
            };
            // Every stream but the admitted visitor's ends with a failed write: the page was
            // closed. Pingora's write errors do not say whose they are; these are the
            // visitor's, so `suppress_error_log` keeps them out of the error log.
            written.map_err(|e| e.into_down())?;
            return Ok(true);
        }
        match self.room.handle(&facts).await {
            Outcome::Forward(forward) => {
                ctx.forward = Some(forward);
                Ok(false)
            }
            Outcome::Reply(reply) => {
                write_reply(session, reply).await?;
                Ok(true)
            }
        }
    }

    /// The decided upstream, round-robin over its addresses.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let name = ctx
            .forward
            .as_ref()
            .map(|f| f.upstream.as_str())
            .unwrap_or_default();
        let upstream = self.upstreams.get(name).ok_or_else(|| {
            Error::explain(ErrorType::InternalError, format!("no upstream `{name}`"))
        })?;
        let addrs = &upstream.config.addrs;
        let i = upstream.next.fetch_add(1, Ordering::Relaxed) % addrs.len().max(1);
        let addr = addrs.get(i).ok_or_else(|| {
            Error::explain(
                ErrorType::InternalError,
                format!("upstream `{name}` has no address"),
            )
        })?;
        let mut peer = HttpPeer::new(*addr, false, String::new());
        peer.options.connection_timeout = Some(upstream.config.connect_timeout);
        peer.options.read_timeout = Some(upstream.config.read_timeout);
        Ok(Box::new(peer))
    }

    /// Strips usher's cookies and spoofable headers; adds the visitor's headers.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        // Rewrite `Cookie` only when it carries one of usher's cookies (the hot path usually
        // does, but requests outside every zone usually don't).
        let stripped = joined_header(upstream_request, "cookie")
            .filter(|cookie| cookie.contains(&self.cookie_marker))
            .map(|cookie| crate::token::cookie::strip(&cookie, &self.cookie_prefix));
        if let Some(kept) = stripped {
            upstream_request.remove_header("cookie");
            if let Some(kept) = kept {
                upstream_request.insert_header("cookie", kept)?;
            }
        }
        for name in OWN_HEADERS {
            if upstream_request.headers.contains_key(name) {
                upstream_request.remove_header(name);
            }
        }
        if let Some(forward) = &ctx.forward {
            if let Some((zone, visitor)) = &forward.session {
                upstream_request.insert_header("usher-visitor", visitor.to_string())?;
                upstream_request.insert_header("usher-zone", zone.as_str())?;
            }
            if let Some(queue_ms) = forward.queue_ms {
                upstream_request.insert_header("usher-queue-time", queue_ms.to_string())?;
            }
        }
        Ok(())
    }

    /// Adds the access-token cookie; `Usher-Command: release` frees the visitor's slot.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let Some(forward) = ctx.forward.take() else {
            return Ok(());
        };
        let release = upstream_response
            .headers
            .get("usher-command")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"release"));
        upstream_response.remove_header("usher-command");
        let cookie = match (&forward.session, release) {
            (Some((zone, visitor)), true) => self.room.release(zone, *visitor).await,
            _ => forward.set_cookie,
        };
        if let Some(cookie) = cookie {
            upstream_response.append_header("set-cookie", cookie)?;
        }
        Ok(())
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

    fn request(method: &str, headers: &[(&'static str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build(method, b"/checkout", None).expect("request");
        for (name, value) in headers {
            req.insert_header(*name, *value).expect("header");
        }
        req
    }

    #[test]
    fn only_plain_page_loads_can_show_the_waiting_page() {
        assert!(shows_pages(&request("GET", &[])));
        assert!(shows_pages(&request("HEAD", &[("accept", "text/html")])));
        assert!(!shows_pages(&request("POST", &[])), "a form or API post");
        assert!(!shows_pages(&request("DELETE", &[])));
        assert!(!shows_pages(&request(
            "GET",
            &[("connection", "upgrade"), ("upgrade", "websocket")]
        )));
        assert!(!shows_pages(&request(
            "GET",
            &[("x-requested-with", "XMLHttpRequest")]
        )));
    }
}
