//! What the origin is told, and what it is not: usher's cookies and every `Usher-*` header a
//! client sent are removed (in any case, and with `_` for `-`, which CGI and WSGI servers read
//! as the same name), `X-Forwarded-For`, `-Proto` and `-Host` are set (a client's own values
//! believed only from `[server] trusted_proxies`), and the visitor's session headers are added.

use crate::request::client::{forwarded_for, TrustedProxies};
use crate::room::Forward;
use crate::token::cookie;
use http::header::{self, HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::prelude::*;
use std::net::IpAddr;

/// Whether a header name is one of usher's (`usher-*`, `usher_*`, any case).
fn is_own_header(name: &str) -> bool {
    name.len() > 6
        && name.as_bytes()[..5].eq_ignore_ascii_case(b"usher")
        && matches!(name.as_bytes()[5], b'-' | b'_')
}

pub(super) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Headers a client could use to pass as someone else, dropped unless the peer is trusted.
fn is_client_claim(name: &HeaderName) -> bool {
    *name == X_FORWARDED_FOR
        || *name == X_FORWARDED_PROTO
        || *name == X_FORWARDED_HOST
        || *name == header::FORWARDED
        || *name == X_REAL_IP
}

/// Rewrites `upstream` (a copy of the client's request) for the origin. `peer` is the socket
/// peer, `host` the canonical host the request was for (lower case, no port, as nginx's `$host`),
/// `scheme` what the client spoke to usher (`https` on a TLS listener).
pub(super) fn rewrite(
    upstream: &mut RequestHeader,
    forward: Option<&Forward>,
    cookie_prefix: &str,
    peer: Option<IpAddr>,
    trusted: &TrustedProxies,
    host: Option<&str>,
    scheme: &'static str,
) -> Result<()> {
    strip_own_cookies(upstream, cookie_prefix)?;
    let from_proxy = peer.is_some_and(|ip| trusted.trusts(ip));
    // One pass over the headers: what to drop, and the forwarding headers a proxy sent.
    let mut drop: Vec<HeaderName> = Vec::new();
    let mut xff: Vec<HeaderValue> = Vec::new();
    let (mut proto, mut forwarded_host) = (None, None);
    for (name, value) in upstream.headers.iter() {
        if is_own_header(name.as_str()) || (!from_proxy && is_client_claim(name)) {
            if !drop.contains(name) {
                drop.push(name.clone());
            }
        } else if *name == X_FORWARDED_FOR {
            xff.push(value.clone());
        } else if *name == X_FORWARDED_PROTO {
            proto = Some(value.clone());
        } else if *name == X_FORWARDED_HOST {
            forwarded_host = Some(value.clone());
        }
    }
    for name in &drop {
        upstream.remove_header(name);
    }
    if let Some(peer) = peer {
        let lines: Vec<&[u8]> = xff.iter().map(HeaderValue::as_bytes).collect();
        upstream.insert_header("x-forwarded-for", forwarded_for(peer, &lines, trusted))?;
    }
    match proto {
        Some(proto) => upstream.insert_header("x-forwarded-proto", proto)?,
        None => upstream.insert_header("x-forwarded-proto", scheme)?,
    }
    match (forwarded_host, host) {
        (Some(value), _) => upstream.insert_header("x-forwarded-host", value)?,
        (None, Some(host)) => upstream.insert_header("x-forwarded-host", host)?,
        (None, None) => {}
    }
    if let Some(forward) = forward {
        if let Some(session) = &forward.session {
            upstream.insert_header("usher-visitor", session.visitor.to_string())?;
            upstream.insert_header("usher-zone", session.zone.as_str())?;
        }
        if let Some(queue_ms) = forward.queue_ms {
            upstream.insert_header("usher-queue-time", queue_ms.to_string())?;
        }
    }
    Ok(())
}

/// Removes usher's cookies from `Cookie`, keeping every other cookie byte for byte. Rewrites
/// only when one of usher's is there (requests outside every zone usually carry none).
fn strip_own_cookies(upstream: &mut RequestHeader, prefix: &str) -> Result<()> {
    let Some(cookies) = super::facts::joined(upstream, &header::COOKIE) else {
        return Ok(());
    };
    let Some(kept) = cookie::strip(&cookies, prefix) else {
        return Ok(());
    };
    upstream.remove_header(&header::COOKIE);
    if let Some(kept) = kept {
        let value =
            HeaderValue::from_bytes(&kept).or_err(ErrorType::InvalidHTTPHeader, "cookie header")?;
        upstream.insert_header("cookie", value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&'static str, &[u8])]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/checkout", None).expect("request");
        for (name, value) in headers {
            let value = http::HeaderValue::from_bytes(value).expect("value");
            req.append_header(*name, value).expect("header");
        }
        req
    }

    fn header<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a [u8]> {
        req.headers.get(name).map(|v| v.as_bytes())
    }

    /// `headers` as the origin would get them from `peer` (for the host shop.test).
    fn rewritten(
        headers: &[(&'static str, &[u8])],
        peer: Option<&str>,
        trusted: &TrustedProxies,
    ) -> RequestHeader {
        let mut req = request(headers);
        let peer = peer.map(|p| p.parse::<IpAddr>().expect("ip"));
        rewrite(
            &mut req,
            None,
            "usher",
            peer,
            trusted,
            Some("shop.test"),
            "http",
        )
        .expect("rewrite");
        req
    }

    #[test]
    fn usher_headers_are_dropped_in_every_spelling() {
        for name in [
            "usher-visitor",
            "Usher_Visitor",
            "USHER-ZONE",
            "usher_command",
        ] {
            assert!(is_own_header(name), "{name}");
        }
        for name in ["usher", "usherx-a", "x-usher-visitor", "user-agent"] {
            assert!(!is_own_header(name), "{name}");
        }
        let own: &[(&'static str, &[u8])] = &[
            ("usher-visitor", b"ffff"),
            ("usher_visitor", b"ffff"),
            ("Usher_Zone", b"vip"),
            ("accept", b"*/*"),
        ];
        let req = rewritten(own, None, &TrustedProxies::default());
        let names: Vec<&str> = req.headers.keys().map(|n| n.as_str()).collect();
        assert!(names.iter().all(|n| !is_own_header(n)), "{names:?}");
        assert_eq!(header(&req, "accept"), Some(&b"*/*"[..]));
    }

    #[test]
    fn a_clients_forwarding_claims_are_replaced_unless_it_is_a_trusted_proxy() {
        let lb = TrustedProxies::new(vec!["10.0.0.0/8".parse().expect("cidr")]);
        let claims: &[(&'static str, &[u8])] = &[
            ("x-forwarded-for", b"1.1.1.1"),
            ("x-forwarded-proto", b"https"),
            ("x-forwarded-host", b"evil.test"),
            ("forwarded", b"for=1.1.1.1"),
            ("x-real-ip", b"1.1.1.1"),
        ];
        let req = rewritten(claims, Some("203.0.113.9"), &lb);
        assert_eq!(header(&req, "x-forwarded-for"), Some(&b"203.0.113.9"[..]));
        assert_eq!(header(&req, "x-forwarded-proto"), Some(&b"http"[..]));
        assert_eq!(header(&req, "x-forwarded-host"), Some(&b"shop.test"[..]));
        assert_eq!(header(&req, "forwarded"), None);
        assert_eq!(header(&req, "x-real-ip"), None);

        let req = rewritten(claims, Some("10.0.0.2"), &lb);
        assert_eq!(
            header(&req, "x-forwarded-for"),
            Some(&b"1.1.1.1, 10.0.0.2"[..])
        );
        assert_eq!(header(&req, "x-forwarded-proto"), Some(&b"https"[..]));
        assert_eq!(header(&req, "x-forwarded-host"), Some(&b"evil.test"[..]));
        assert_eq!(header(&req, "forwarded"), Some(&b"for=1.1.1.1"[..]));
    }

    #[test]
    fn a_tls_listener_forwards_https_unless_a_trusted_proxy_said_otherwise() {
        let lb = TrustedProxies::new(vec!["10.0.0.0/8".parse().expect("cidr")]);
        let claim: &[(&'static str, &[u8])] = &[("x-forwarded-proto", b"http")];
        for (peer, expect) in [("203.0.113.9", &b"https"[..]), ("10.0.0.2", b"http")] {
            let mut req = request(claim);
            let peer = peer.parse().ok();
            rewrite(&mut req, None, "usher", peer, &lb, None, "https").expect("rewrite");
            assert_eq!(header(&req, "x-forwarded-proto"), Some(expect), "{peer:?}");
        }
    }

    #[test]
    fn ushers_cookies_are_stripped_whatever_else_the_header_holds() {
        let none = TrustedProxies::default();
        let req = rewritten(
            &[("cookie", b"name=J\xf6rg; usher_checkout=tok; x=1")],
            None,
            &none,
        );
        assert_eq!(header(&req, "cookie"), Some(&b"name=J\xf6rg; x=1"[..]));
        let req = rewritten(
            &[("cookie", b"usher_a=1"), ("cookie", b"usher_b=2")],
            None,
            &none,
        );
        assert_eq!(header(&req, "cookie"), None);
    }
}
