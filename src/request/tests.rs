//! Table tests of the canonical view with malformed and adversarial values, and property tests:
//! nothing panics, and canonical forms are fixed points.

use super::client::{block_of, client_ip, forwarded_for, Cidr, TrustedProxies};
use super::path::{canonical, fold, has_prefix, PathError};
use super::target::TargetError;
use super::{host, view, Raw, Refusal};
use proptest::prelude::*;
use std::net::IpAddr;

fn path(raw: &str) -> Result<String, PathError> {
    canonical(raw.as_bytes()).map(|p| p.into_owned())
}

#[test]
fn spellings_of_one_path_have_one_canonical_form() {
    let checkout = [
        "/checkout",
        "/%63heckout",
        "/%63%68%65%63%6b%6f%75%74",
        "/%2563heckout",
        "/%252563heckout",
        "//checkout",
        "///checkout//",
        "/\\checkout",
        "/%5ccheckout",
        "/%2fcheckout",
        "/;x/checkout",
        "/checkout;jsessionid=1",
        "/checkout/",
        "/\u{FF43}heckout",
        "/%EF%BD%83heckout",
        "/\u{FF0F}checkout",
    ];
    for raw in checkout {
        assert_eq!(path(raw).as_deref(), Ok("/checkout"), "{raw:?}");
    }
    assert_eq!(path("/"), Ok("/".into()));
    assert_eq!(path(""), Ok("/".into()));
    assert_eq!(path("/Checkout"), Ok("/Checkout".into()), "case is kept");
    assert_eq!(path("/caf%C3%A9"), Ok("/café".into()));
    assert_eq!(
        path("/100%25off"),
        Ok("/100%25off".into()),
        "a literal % stays escaped"
    );
    assert_eq!(path("/a%2525zz"), Ok("/a%25zz".into()));
    assert_eq!(path("/.well-known/x"), Ok("/.well-known/x".into()));
    assert_eq!(path("/a...b"), Ok("/a...b".into()));
}

#[test]
fn unreadable_paths_are_refused() {
    let cases = [
        ("/%", PathError::BadEscape),
        ("/%6", PathError::BadEscape),
        ("/%zz", PathError::BadEscape),
        ("/%u0063heckout", PathError::BadEscape),
        ("/%%", PathError::BadEscape),
        ("/%00", PathError::ControlChar),
        ("/%2500", PathError::ControlChar),
        ("/check%09out", PathError::ControlChar),
        ("/check%0d%0aout", PathError::ControlChar),
        ("/%7f", PathError::ControlChar),
        ("/%c0%af", PathError::NotUtf8),
        ("/%ff", PathError::NotUtf8),
        ("/%ed%a0%80", PathError::NotUtf8),
        ("/%C3", PathError::NotUtf8),
        ("/%2525252525252525252563", PathError::BadEscape),
        ("/./checkout", PathError::DotSegment),
        ("/%2e/checkout", PathError::DotSegment),
        ("/%2E%2E/checkout", PathError::DotSegment),
        ("/static/../checkout", PathError::DotSegment),
        ("/static/%2e%2e/checkout", PathError::DotSegment),
        ("/static%2f..%2fcheckout", PathError::DotSegment),
        ("/static/..;/checkout", PathError::DotSegment),
        ("/static\\..\\checkout", PathError::DotSegment),
        ("/checkout/..", PathError::DotSegment),
        ("/checkout/.", PathError::DotSegment),
        ("/..", PathError::DotSegment),
        ("/\u{FF0E}\u{FF0E}/checkout", PathError::DotSegment),
    ];
    for (raw, error) in cases {
        assert_eq!(path(raw), Err(error), "{raw:?}");
    }
    assert_eq!(canonical(b"/\xff"), Err(PathError::NotUtf8));
    assert_eq!(canonical(b"/a\x00"), Err(PathError::ControlChar));
}

#[test]
fn folding_catches_letters_routers_compare_as_ascii() {
    assert_eq!(fold("/Checkout"), "/checkout");
    assert_eq!(fold("/CHECKOUT"), "/checkout");
    assert_eq!(fold("/\u{17F}eats"), "/seats", "long s compares as S");
    assert_eq!(fold("/\u{212A}art"), "/kart", "the Kelvin sign is K");
    assert_eq!(fold("/\u{131}nfo"), "/info", "dotless i upper-cases to I");
    assert_eq!(fold("/CAFÉ"), "/café");
    assert!(matches!(fold("/checkout"), std::borrow::Cow::Borrowed(_)));
}

#[test]
fn prefixes_match_on_segment_boundaries() {
    let yes = [
        ("/checkout", "/checkout"),
        ("/checkout/pay", "/checkout"),
        ("/checkout.json", "/checkout"),
        ("/checkout/", "/"),
        ("/anything", "/"),
        ("/api/cart/1", "/api/cart"),
    ];
    for (p, prefix) in yes {
        assert!(has_prefix(p, prefix), "{p} under {prefix}");
    }
    let no = [
        ("/checkoutx", "/checkout"),
        ("/checkouts", "/checkout"),
        ("/soldoutX", "/soldout"),
        ("/check", "/checkout"),
        ("/api/cartoon", "/api/cart"),
    ];
    for (p, prefix) in no {
        assert!(!has_prefix(p, prefix), "{p} not under {prefix}");
    }
}

#[test]
fn hosts_have_one_canonical_form() {
    for raw in [
        "shop.test",
        "Shop.Test",
        "shop.test.",
        "shop.test:8080",
        "SHOP.TEST.:80",
        " shop.test ",
        "shop.test..",
    ] {
        assert_eq!(
            host::canonical(raw.as_bytes()).as_deref(),
            Ok("shop.test"),
            "{raw:?}"
        );
    }
    assert_eq!(host::canonical(b"[::1]:8080").as_deref(), Ok("::1"));
    assert_eq!(host::canonical(b"[::1]").as_deref(), Ok("::1"));
    assert_eq!(host::canonical(b"127.0.0.1:80").as_deref(), Ok("127.0.0.1"));
    use host::HostError::*;
    for (raw, error) in [
        (&b""[..], Empty),
        (b":80", Empty),
        (b".", Empty),
        (b"shop.test:http", BadPort),
        (b"shop.test:123456", BadPort),
        (b"shop.test:80:80", BadPort),
        (b"user@shop.test", BadChar),
        (b"shop%2etest", BadChar),
        (b"shop.test,evil.test", BadChar),
        (b"shop test", BadChar),
        (b"sh\xc3\xb6p.test", BadChar),
        (b"\xff", BadChar),
        (b"[::1", BadLiteral),
        (b"[::1]x", BadLiteral),
        (b"[]", BadLiteral),
        (b"[shop.test]", BadLiteral),
    ] {
        assert_eq!(host::canonical(raw), Err(error), "{raw:?}");
    }
}

fn raw<'a>(method: &'a str, target: &'a str, hosts: &'a [&'a [u8]]) -> Raw<'a> {
    Raw {
        method,
        http10: false,
        target: target.as_bytes(),
        hosts,
        authority: None,
    }
}

#[test]
fn request_targets_are_origin_absolute_or_asterisk_form() {
    let host: &[&[u8]] = &[b"shop.test"];
    let v = view(raw("GET", "/%63heckout?x=1&zone=z", host)).expect("origin-form");
    assert_eq!(
        (v.host.as_deref(), v.path.as_ref()),
        (Some("shop.test"), "/checkout")
    );
    assert_eq!(v.query, Some("x=1&zone=z"));

    let v = view(raw("GET", "HTTP://Shop.Test:80/vip?q", &[])).expect("absolute-form");
    assert_eq!(
        (v.host.as_deref(), v.path.as_ref()),
        (Some("shop.test"), "/vip")
    );
    assert_eq!(v.query, Some("q"));
    let v = view(raw("GET", "http://shop.test", host)).expect("absolute-form, no path");
    assert_eq!(v.path, "/");
    let v = view(raw("GET", "https://shop.test?q=1", host)).expect("no path, a query");
    assert_eq!((v.path.as_ref(), v.query), ("/", Some("q=1")));

    let v = view(raw("OPTIONS", "*", host)).expect("asterisk-form");
    assert!(v.asterisk);

    for (method, target, error) in [
        ("GET", "x:/checkout", TargetError::Form),
        ("GET", "checkout", TargetError::Form),
        ("GET", "", TargetError::Form),
        ("GET", "ftp://shop.test/checkout", TargetError::Form),
        ("GET", "http:/checkout", TargetError::Form),
        ("GET", "http:///checkout", TargetError::Form),
        (
            "GET",
            "http://user:pw@shop.test/checkout",
            TargetError::UserInfo,
        ),
        ("GET", "*", TargetError::Asterisk),
        ("CONNECT", "shop.test:443", TargetError::Form),
        ("GET", "/check out", TargetError::BadByte),
        ("GET", "/checkout#x", TargetError::BadByte),
        ("GET", "/check\tout", TargetError::BadByte),
    ] {
        assert_eq!(
            view(raw(method, target, host)),
            Err(Refusal::Target(error)),
            "{method} {target:?}"
        );
    }
    assert_eq!(
        view(raw("GET", "/%zz", host)),
        Err(Refusal::Path(PathError::BadEscape))
    );
}

#[test]
fn an_http2_authority_names_the_host_and_a_host_field_must_agree() {
    let h2 = |authority: &'static [u8], hosts: &'static [&'static [u8]]| {
        view(Raw {
            method: "GET",
            http10: false,
            target: b"/checkout",
            hosts,
            authority: Some(authority),
        })
        .map(|v| v.host.map(|h| h.into_owned()))
    };
    assert_eq!(h2(b"shop.test:8443", &[]), Ok(Some("shop.test".into())));
    assert_eq!(
        h2(b"Shop.Test", &[b"shop.test:443"]),
        Ok(Some("shop.test".into()))
    );
    assert_eq!(
        h2(b"shop.test", &[b"admin.test"]),
        Err(Refusal::HostConflict)
    );
    assert_eq!(
        h2(b"shop.test", &[b"a.test", b"b.test"]),
        Err(Refusal::DuplicateHost)
    );
    assert!(h2(b"shop test", &[]).is_err());
    assert!(h2(b"", &[]).is_err());
}

#[test]
fn the_host_is_required_single_and_consistent() {
    let get = |target: &'static str, hosts: &'static [&'static [u8]], http10: bool| {
        view(Raw {
            method: "GET",
            http10,
            target: target.as_bytes(),
            hosts,
            authority: None,
        })
    };
    assert_eq!(get("/vip", &[], false), Err(Refusal::MissingHost));
    assert_eq!(get("/vip", &[b""], false), Err(Refusal::MissingHost));
    assert_eq!(get("/vip", &[b"  "], false), Err(Refusal::MissingHost));
    assert_eq!(get("/vip", &[], true).map(|v| v.host), Ok(None));
    assert_eq!(
        get("/vip", &[b"a.test", b"a.test"], false),
        Err(Refusal::DuplicateHost)
    );
    assert_eq!(
        get("http://shop.test/vip", &[b"other.test"], false),
        Err(Refusal::HostConflict)
    );
    assert_eq!(
        get("http://shop.test/vip", &[b"Shop.Test.:80"], false)
            .map(|v| v.host.map(|h| h.into_owned())),
        Ok(Some("shop.test".into())),
        "the same host spelled differently is no conflict"
    );
    assert_eq!(
        get("http://shop.test/vip", &[], false).map(|v| v.host.map(|h| h.into_owned())),
        Ok(Some("shop.test".into())),
        "absolute-form names the host"
    );
    assert!(matches!(
        get("/vip", &[b"shop.test:x"], false),
        Err(Refusal::Host(_))
    ));
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

#[test]
fn cidrs_parse_and_contain() {
    let block: Cidr = "10.0.0.0/8".parse().expect("cidr");
    assert!(block.contains(ip("10.200.3.4")));
    assert!(block.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6");
    assert!(!block.contains(ip("11.0.0.1")));
    assert!(!block.contains(ip("::1")));
    let one: Cidr = "::1".parse().expect("one address");
    assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
    let all: Cidr = "0.0.0.0/0".parse().expect("everything");
    assert!(all.contains(ip("1.2.3.4")));
    let v6: Cidr = "2001:db8::/32".parse().expect("v6 block");
    assert!(v6.contains(ip("2001:db8:1::1")) && !v6.contains(ip("2001:db9::1")));
    for bad in [
        "",
        "10.0.0.0/33",
        "::/129",
        "10.0.0/8",
        "shop.test",
        "10.0.0.0/x",
        "/8",
    ] {
        assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
    }
}

#[test]
fn the_client_is_the_rightmost_address_no_trusted_proxy_wrote() {
    let lb = TrustedProxies::new(vec!["10.0.0.0/8".parse().expect("cidr")]);
    let none = TrustedProxies::default();
    let client = |peer: &str, xff: &[&[u8]], trusted: &TrustedProxies| {
        client_ip(ip(peer), xff, trusted).to_string()
    };
    // An untrusted peer is the client, whatever it claims.
    assert_eq!(client("203.0.113.9", &[b"1.1.1.1"], &lb), "203.0.113.9");
    assert_eq!(client("10.0.0.2", &[b"1.1.1.1"], &none), "10.0.0.2");
    // Behind the load balancer: the rightmost untrusted entry.
    assert_eq!(
        client("10.0.0.2", &[b"6.6.6.6, 203.0.113.9"], &lb),
        "203.0.113.9"
    );
    assert_eq!(
        client("10.0.0.2", &[b"6.6.6.6", b"203.0.113.9, 10.0.0.7"], &lb),
        "203.0.113.9",
        "several field lines, a second trusted hop"
    );
    assert_eq!(
        client("10.0.0.2", &[b"[2001:db8::1]:4711"], &lb),
        "2001:db8::1"
    );
    assert_eq!(
        client("10.0.0.2", &[b"203.0.113.9:4711"], &lb),
        "203.0.113.9"
    );
    assert_eq!(
        client("10.0.0.2", &[], &lb),
        "10.0.0.2",
        "no header: the proxy"
    );
    assert_eq!(
        client("10.0.0.2", &[b"203.0.113.9, garbage"], &lb),
        "10.0.0.2",
        "garbage never becomes an identity"
    );
    assert_eq!(client("10.0.0.2", &[b"\xff"], &lb), "10.0.0.2");
    assert_eq!(client("::ffff:203.0.113.9", &[], &none), "203.0.113.9");

    assert_eq!(
        forwarded_for(ip("203.0.113.9"), &[b"1.1.1.1"], &lb),
        "203.0.113.9",
        "a client's own list is replaced"
    );
    assert_eq!(
        forwarded_for(ip("10.0.0.2"), &[b"1.1.1.1,203.0.113.9"], &lb),
        "1.1.1.1, 203.0.113.9, 10.0.0.2"
    );
}

/// Bytes that matter to the canonicalizer, so random paths hit its corners often.
#[test]
fn clients_are_counted_by_address_block() {
    for (addr, v4, v6, expected) in [
        ("203.0.113.77", 32, 128, "203.0.113.77"),
        ("203.0.113.77", 24, 128, "203.0.113.0"),
        ("203.0.113.77", 16, 64, "203.0.0.0"),
        ("::ffff:203.0.113.77", 24, 64, "203.0.113.0"),
        ("2001:db8:1:2:3:4:5:6", 32, 64, "2001:db8:1:2::"),
        ("2001:db8:1:2:3:4:5:6", 32, 128, "2001:db8:1:2:3:4:5:6"),
        ("2001:db8:1:2:3:4:5:6", 32, 48, "2001:db8:1::"),
        ("2001:db8:1:2:3:4:5:6", 32, 0, "::"),
        ("10.1.2.3", 0, 128, "0.0.0.0"),
        ("10.1.2.3", 200, 200, "10.1.2.3"),
    ] {
        assert_eq!(
            block_of(ip(addr), v4, v6),
            ip(expected),
            "{addr} /{v4} /{v6}"
        );
    }
}

fn adversarial_path() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop_oneof![
        Just(b"/".to_vec()),
        Just(b"\\".to_vec()),
        Just(b".".to_vec()),
        Just(b"..".to_vec()),
        Just(b";".to_vec()),
        Just(b"%".to_vec()),
        Just(b"%25".to_vec()),
        Just(b"%2e".to_vec()),
        Just(b"%2F".to_vec()),
        Just(b"%5c".to_vec()),
        Just(b"%3b".to_vec()),
        Just(b"%c3%a9".to_vec()),
        Just(b"%EF%BC%8F".to_vec()),
        Just("\u{FF0E}".as_bytes().to_vec()),
        Just("\u{FF05}".as_bytes().to_vec()),
        Just(b"%00".to_vec()),
        Just(b"4".to_vec()),
        Just(b"1".to_vec()),
        Just(b"c".to_vec()),
        Just(b"C".to_vec()),
        Just("\u{17F}".as_bytes().to_vec()),
        Just("\u{130}".as_bytes().to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(pieces, 0..24).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_000, ..ProptestConfig::default() })]

    #[test]
    fn canonical_paths_are_fixed_points(raw in adversarial_path()) {
        if let Ok(once) = canonical(&raw) {
            let twice = canonical(once.as_bytes());
            prop_assert_eq!(twice.as_deref(), Ok(once.as_ref()));
            prop_assert!(once.starts_with('/'));
            prop_assert!(!once.contains("//") && !once.contains('\\') && !once.contains(';'));
            prop_assert!(once.split('/').all(|s| s != "." && s != ".."));
            prop_assert!(once == "/" || !once.ends_with('/'));
        }
    }

    #[test]
    fn folding_is_idempotent(raw in adversarial_path(), text in "\\PC*") {
        if let Ok(p) = canonical(&raw) {
            let once = fold(&p).into_owned();
            let twice = fold(&once).into_owned();
            prop_assert_eq!(twice, once);
        }
        let once = fold(&text).into_owned();
        let twice = fold(&once).into_owned();
        prop_assert_eq!(twice, once);
    }

    #[test]
    fn nothing_panics_on_any_request(
        method in prop_oneof![Just("GET"), Just("OPTIONS"), Just("CONNECT")],
        target in prop_oneof![adversarial_path(), any::<Vec<u8>>()],
        scheme in prop_oneof![Just(&b""[..]), Just(&b"http://"[..]), Just(&b"HTTPS://"[..])],
        hosts in prop::collection::vec(any::<Vec<u8>>(), 0..3),
        http10 in any::<bool>(),
    ) {
        let target = [scheme, &target[..]].concat();
        let hosts: Vec<&[u8]> = hosts.iter().map(Vec::as_slice).collect();
        let _ = view(Raw { method, http10, target: &target, hosts: &hosts, authority: None });
        for h in &hosts {
            if let Ok(once) = host::canonical(h) {
                let twice = host::canonical(once.as_bytes());
                prop_assert_eq!(twice.as_deref(), Ok(once.as_ref()));
            }
        }
    }

    #[test]
    fn client_addresses_never_panic(
        peer in any::<[u8; 16]>(),
        xff in prop::collection::vec(any::<Vec<u8>>(), 0..3),
        trusted in any::<bool>(),
    ) {
        let peer = IpAddr::from(peer);
        let lines: Vec<&[u8]> = xff.iter().map(Vec::as_slice).collect();
        let proxies = if trusted {
            TrustedProxies::new(vec!["::/0".parse().expect("cidr"), "0.0.0.0/0".parse().expect("cidr")])
        } else {
            TrustedProxies::default()
        };
        let _ = client_ip(peer, &lines, &proxies);
        let _ = forwarded_for(peer, &lines, &proxies);
    }

    #[test]
    fn address_blocks_never_panic_and_contain_the_address(
        addr in any::<[u8; 16]>(), v4 in any::<u8>(), v6 in any::<u8>(),
    ) {
        let ip = IpAddr::from(addr);
        let block = block_of(ip, v4, v6);
        prop_assert_eq!(block_of(block, v4, v6), block, "a block is its own block");
        let bits = if block.is_ipv4() { v4.min(32) } else { v6.min(128) };
        let cidr: Cidr = format!("{block}/{bits}").parse().expect("a block is a cidr");
        prop_assert!(cidr.contains(ip));
    }

    #[test]
    fn cidrs_never_panic(text in "\\PC{0,48}") {
        let _ = text.parse::<Cidr>();
    }
}
