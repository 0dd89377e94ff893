//! A Pingora request header read into usher's plain types: the raw parts for the canonical
//! [`crate::request::View`], and the [`RequestFacts`] the room decides on.

use crate::request::Raw;
use crate::room::RequestFacts;
use http::header::{self, HeaderName};
use pingora::http::RequestHeader;
use std::borrow::Cow;

/// Header names looked up on every request, built once: a lookup by `&str` parses the name
/// each time.
pub(super) const X_REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");
/// `Last-Event-ID`, sent by a reconnecting `EventSource`.
pub(super) const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
/// A zone's bypass secret (dropped before forwarding, like every `Usher-*` header).
const USHER_BYPASS: HeaderName = HeaderName::from_static("usher-bypass");

/// Every value of header `name`, as bytes.
pub(super) fn values<'a>(req: &'a RequestHeader, name: &HeaderName) -> Vec<&'a [u8]> {
    req.headers
        .get_all(name)
        .iter()
        .map(|v| v.as_bytes())
        .collect()
}

/// All values of header `name` joined with "; " (HTTP/2 may split `Cookie`), as bytes,
/// borrowed in the common case of a single line.
pub(super) fn joined<'a>(req: &'a RequestHeader, name: &HeaderName) -> Option<Cow<'a, [u8]>> {
    let mut all = req.headers.get_all(name).iter().map(|v| v.as_bytes());
    let first = all.next()?;
    let Some(second) = all.next() else {
        return Some(Cow::Borrowed(first));
    };
    let mut joined = [first, b"; ", second].concat();
    for more in all {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(more);
    }
    Some(Cow::Owned(joined))
}

/// A header's value as text, if it is text.
pub(super) fn text<'a>(req: &'a RequestHeader, name: &HeaderName) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request line and `Host` lines, for [`crate::request::view`].
pub(super) fn raw<'a>(req: &'a RequestHeader, hosts: &'a [&'a [u8]]) -> Raw<'a> {
    Raw {
        method: req.method.as_str(),
        http10: req.version < http::Version::HTTP_11,
        target: req.raw_path(),
        hosts,
        authority: authority(req),
    }
}

/// HTTP/2's `:authority` (Pingora keeps it in the URI); `None` for HTTP/1, whose URI authority
/// is an absolute-form target's, read from the target itself.
pub(super) fn authority(req: &RequestHeader) -> Option<&[u8]> {
    match req.version {
        http::Version::HTTP_2 => req.uri.authority().map(|a| a.as_str().as_bytes()),
        _ => None,
    }
}

/// Whether the client can show a waiting page: a GET or HEAD that is neither a WebSocket (or
/// other protocol) upgrade nor a script's request (`X-Requested-With: XMLHttpRequest`, which
/// jQuery-era and many app clients send; `fetch` calls that ask for JSON are `wants_json`).
pub(super) fn shows_pages(req: &RequestHeader) -> bool {
    let page_method = req.method == http::Method::GET || req.method == http::Method::HEAD;
    let script =
        text(req, &X_REQUESTED_WITH).is_some_and(|v| v.eq_ignore_ascii_case("xmlhttprequest"));
    page_method && !is_upgrade(req) && !script
}

/// Where a client sent back to retry goes: the target as it sent it when that is a plain
/// path, else the canonical one (never an absolute URL: the retry stays on this host).
pub(super) fn retry_target(req: &RequestHeader, path: &str, query: Option<&str>) -> String {
    match req.uri.path_and_query() {
        Some(original)
            if req.uri.scheme().is_none()
                && original.as_str().starts_with('/')
                && !original.as_str().starts_with("//") =>
        {
            original.as_str().to_string()
        }
        _ => match query {
            Some(query) => format!("{path}?{query}"),
            None => path.to_string(),
        },
    }
}

/// A protocol upgrade (WebSocket).
pub(super) fn is_upgrade(req: &RequestHeader) -> bool {
    req.headers.contains_key(header::UPGRADE)
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`. Browsers
/// never send cookies on one, so it must not be taken for a newcomer.
pub(super) fn is_preflight(req: &RequestHeader) -> bool {
    req.method == http::Method::OPTIONS
        && req.headers.contains_key(header::ORIGIN)
        && req
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The facts the room decides on, from the canonical `host` and `path` and the header.
pub(super) fn facts<'a>(
    req: &'a RequestHeader,
    host: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
    cookie: Option<&'a [u8]>,
) -> RequestFacts<'a> {
    let wants_json = text(req, &header::ACCEPT)
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
    RequestFacts {
        host,
        path,
        query,
        cookie,
        wants_json,
        shows_pages: shows_pages(req),
        preflight: is_preflight(req),
        accept_language: text(req, &header::ACCEPT_LANGUAGE),
        last_event_id: text(req, &LAST_EVENT_ID),
        bypass: req.headers.get(&USHER_BYPASS).map(|v| v.as_bytes()),
        client: None,
    }
}

/// The client of `req` from socket peer `peer`: the peer, or behind trusted proxies the
/// address they reported ([`crate::request::client::client_ip`]). `None` for a peer that is
/// not an IP socket (never on usher's TCP listener).
pub(super) fn client(
    req: &RequestHeader,
    peer: Option<std::net::IpAddr>,
    trusted: &crate::request::client::TrustedProxies,
) -> Option<std::net::IpAddr> {
    let lines = values(req, &super::upstream_headers::X_FORWARDED_FOR);
    Some(crate::request::client::client_ip(peer?, &lines, trusted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, headers: &[(&'static str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build(method, b"/checkout", None).expect("request");
        for (name, value) in headers {
            req.append_header(*name, *value).expect("header");
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

    #[test]
    fn preflights_are_options_with_origin_and_a_requested_method() {
        let preflight = [
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
        ];
        assert!(is_preflight(&request("OPTIONS", &preflight)));
        assert!(!is_preflight(&request("OPTIONS", &preflight[..1])));
        assert!(!is_preflight(&request("OPTIONS", &[])));
        assert!(!is_preflight(&request("GET", &preflight)));
    }

    #[test]
    fn cookie_lines_are_joined_as_bytes() {
        let mut req = request("GET", &[("cookie", "a=1")]);
        assert_eq!(joined(&req, &header::COOKIE).as_deref(), Some(&b"a=1"[..]));
        req.append_header(
            "cookie",
            http::HeaderValue::from_bytes(b"b=\xff").expect("value"),
        )
        .expect("header");
        assert_eq!(
            joined(&req, &header::COOKIE).as_deref(),
            Some(&b"a=1; b=\xff"[..])
        );
        assert_eq!(joined(&req, &LAST_EVENT_ID), None);
    }
}
