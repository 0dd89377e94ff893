//! Where the plain-HTTP listener (`[server] redirect_listen`) sends a request: the same host
//! and target over HTTPS. The host and the target are the client's, so both are read like any
//! other request's: a host that is not canonical-readable, or a target that is not a path, gets
//! no redirect (a 400), and nothing the client sent can make the `Location` point elsewhere
//! (`//evil.test/` stays a path on the visitor's own host).

use super::{host, target};
use std::fmt::Write;

/// The `Location` for `method target` with `Host: host_header` over HTTPS on `https_port`;
/// `None` when the request cannot be read.
pub fn https_location(
    method: &str,
    host_header: Option<&[u8]>,
    raw_target: &[u8],
    https_port: u16,
) -> Option<String> {
    let target = target::parse(method, raw_target).ok()?;
    if target.asterisk {
        return None;
    }
    // An absolute-form target names the host itself (RFC 9112 §3.2.2).
    let host = host::canonical(target.authority.or(host_header)?).ok()?;
    let mut location = String::with_capacity(16 + host.len() + raw_target.len());
    location.push_str("https://");
    match host.contains(':') {
        true => write!(location, "[{host}]").ok()?,
        false => location.push_str(&host),
    }
    if https_port != 443 {
        write!(location, ":{https_port}").ok()?;
    }
    push_escaped(&mut location, target.path);
    if let Some(query) = target.query {
        location.push('?');
        push_escaped(&mut location, query);
    }
    Some(location)
}

/// `bytes` with every byte outside printable ASCII percent-escaped (the target was checked for
/// controls and spaces; what is left is what the client sent, escaped bytes included).
fn push_escaped(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            0x21..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::https_location;
    use proptest::prelude::*;

    /// Method, `Host`, target, HTTPS port, and the `Location` expected.
    type Case = (
        &'static str,
        Option<&'static [u8]>,
        &'static [u8],
        u16,
        Option<&'static str>,
    );

    #[test]
    fn requests_go_to_the_same_place_over_https() {
        let cases: &[Case] = &[
            (
                "GET",
                Some(b"shop.test"),
                b"/checkout?a=1",
                443,
                Some("https://shop.test/checkout?a=1"),
            ),
            (
                "GET",
                Some(b"Shop.Test:80"),
                b"/",
                443,
                Some("https://shop.test/"),
            ),
            (
                "POST",
                Some(b"shop.test"),
                b"/cart",
                8443,
                Some("https://shop.test:8443/cart"),
            ),
            (
                "GET",
                Some(b"[::1]:8080"),
                b"/x",
                443,
                Some("https://[::1]/x"),
            ),
            (
                "GET",
                Some(b"127.0.0.1"),
                b"/x",
                8443,
                Some("https://127.0.0.1:8443/x"),
            ),
            // The path stays a path on the visitor's host.
            (
                "GET",
                Some(b"shop.test"),
                b"//evil.test/x",
                443,
                Some("https://shop.test//evil.test/x"),
            ),
            (
                "GET",
                Some(b"shop.test"),
                b"/%2e%2e/a",
                443,
                Some("https://shop.test/%2e%2e/a"),
            ),
            (
                "GET",
                Some(b"shop.test"),
                b"/caf\xc3\xa9",
                443,
                Some("https://shop.test/caf%C3%A9"),
            ),
            // Absolute form names its own host.
            (
                "GET",
                Some(b"other.test"),
                b"http://shop.test/a?b",
                443,
                Some("https://shop.test/a?b"),
            ),
            // Unreadable: no redirect.
            ("GET", None, b"/", 443, None),
            ("GET", Some(b""), b"/", 443, None),
            ("GET", Some(b"evil.test/x"), b"/", 443, None),
            ("GET", Some(b"a@evil.test"), b"/", 443, None),
            ("GET", Some(b"shop.test"), b"checkout", 443, None),
            ("GET", Some(b"shop.test"), b"/a b", 443, None),
            ("GET", Some(b"shop.test"), b"/a\r\nLocation: x", 443, None),
            ("GET", Some(b"shop.test"), b"/a#frag", 443, None),
            ("OPTIONS", Some(b"shop.test"), b"*", 443, None),
            (
                "GET",
                Some(b"shop.test"),
                b"http://user@evil.test/",
                443,
                None,
            ),
        ];
        for (method, host, target, port, expect) in cases {
            assert_eq!(
                https_location(method, *host, target, *port).as_deref(),
                *expect,
                "{method} {:?} {:?}",
                host.map(String::from_utf8_lossy),
                String::from_utf8_lossy(target)
            );
        }
    }

    proptest! {
        /// Whatever the client sends, no panic, and a redirect only ever to https on a host
        /// with no path, user info or control byte in it.
        #[test]
        fn redirects_never_panic_and_stay_https(
            host in proptest::collection::vec(any::<u8>(), 0..40),
            target in proptest::collection::vec(any::<u8>(), 0..60),
        ) {
            if let Some(location) = https_location("GET", Some(&host), &target, 443) {
                prop_assert!(location.starts_with("https://"));
                let authority = location["https://".len()..].split('/').next().unwrap_or("");
                prop_assert!(!authority.contains('@'));
                prop_assert!(location.bytes().all(|b| (0x21..=0x7e).contains(&b)));
            }
        }
    }
}
