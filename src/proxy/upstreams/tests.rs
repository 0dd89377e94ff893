//! Pools built from config: names resolved (or refused), reloads that keep what did not change,
//! and each balancing policy's choice.

use super::*;

fn config(upstreams: &str) -> Config {
    let text = format!(
        "{upstreams}[tokens]\nsigning_key = {{ kid = \"k\", env = \"X\" }}\n\
         [zones.a]\npaths = [\"/a\"]\ncapacity = 1\nadmit_per_minute = 60\n"
    );
    crate::config::parse(&text, std::path::Path::new(".")).expect("valid")
}

fn pool(upstreams: &str) -> Upstreams {
    Upstreams::new(&config(upstreams), Metrics::new()).expect("pools")
}

fn addrs(pool: &Upstream) -> Vec<SocketAddr> {
    pool.addresses().into_iter().map(|(a, _)| a).collect()
}

#[test]
fn names_are_resolved_and_a_name_that_does_not_resolve_is_named() {
    let upstreams = pool("[upstreams.shop]\naddrs = [\"localhost:9\", \"127.0.0.7:9\"]\n");
    let shop = upstreams.get("shop").expect("shop");
    let found = addrs(&shop);
    assert!(
        found.contains(&"127.0.0.7:9".parse().expect("addr")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|a| a.ip().is_loopback() && *a != "127.0.0.7:9".parse().expect("addr")),
        "localhost: {found:?}"
    );
    let picked = shop
        .pick(b"", Some("127.0.0.7:9".parse().expect("addr")))
        .expect("an address");
    assert_eq!(
        shop.resolver.host_of(picked.addr),
        "localhost",
        "SNI for a resolved name is the name"
    );
    let literal = "127.0.0.7:9".parse().expect("addr");
    assert_eq!(shop.resolver.host_of(literal), "127.0.0.7");

    let problems = Upstreams::new(
        &config("[upstreams.shop]\naddrs = [\"127.0.0.1:9\", \"no-such-host.invalid:80\"]\n"),
        Metrics::new(),
    )
    .err()
    .expect("refused");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "upstreams.shop.addrs[1]");
    assert!(
        problems[0].message.contains("no-such-host.invalid"),
        "{}",
        problems[0]
    );
}

#[test]
fn a_reload_keeps_unchanged_pools_and_the_ones_it_no_longer_names() {
    let upstreams = pool("[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n");
    let before = upstreams.get("shop").expect("shop");
    let same = config(
        "[server]\ndefault_upstream = \"shop\"\n\
         [upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n[upstreams.new]\naddrs = [\"127.0.0.2:9\"]\n",
    );
    upstreams.replace(&same).expect("reload");
    assert!(
        Arc::ptr_eq(&before, &upstreams.get("shop").expect("shop")),
        "kept, health and all"
    );
    assert_eq!(
        addrs(&upstreams.get("new").expect("new")),
        ["127.0.0.2:9".parse().expect("addr")]
    );

    let moved = config(
        "[server]\ndefault_upstream = \"new\"\n[upstreams.new]\naddrs = [\"127.0.0.3:9\"]\n",
    );
    upstreams.replace(&moved).expect("reload");
    assert_eq!(
        addrs(&upstreams.get("new").expect("new")),
        ["127.0.0.3:9".parse().expect("addr")]
    );
    assert!(
        upstreams.get("shop").is_some(),
        "a request routed to it still finds it"
    );

    let broken = config("[upstreams.new]\naddrs = [\"no-such-host.invalid:80\"]\n");
    assert!(upstreams.replace(&broken).is_err());
    assert_eq!(
        addrs(&upstreams.get("new").expect("new")),
        ["127.0.0.3:9".parse().expect("addr")],
        "unchanged"
    );
}

#[test]
fn round_robin_takes_each_address_in_turn_and_a_retry_avoids_the_failed_one() {
    let upstreams =
        pool("[upstreams.shop]\naddrs = [\"127.0.0.1:1\", \"127.0.0.2:1\", \"127.0.0.3:1\"]\n");
    let shop = upstreams.get("shop").expect("shop");
    let mut seen: Vec<SocketAddr> = (0..6)
        .map(|_| shop.pick(b"", None).expect("pick").addr)
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let failed: SocketAddr = "127.0.0.2:1".parse().expect("addr");
    for _ in 0..10 {
        assert_ne!(shop.pick(b"", Some(failed)).expect("pick").addr, failed);
    }
}

#[test]
fn least_connections_picks_the_address_with_the_fewest_in_flight() {
    let upstreams = pool(
        "[upstreams.shop]\naddrs = [\"127.0.0.1:1\", \"127.0.0.2:1\"]\nbalance = \"least_connections\"\n",
    );
    let shop = upstreams.get("shop").expect("shop");
    // Idle: they take turns.
    let one = shop.pick(b"", None).expect("pick").addr;
    let two = shop.pick(b"", None).expect("pick").addr;
    assert_ne!(one, two, "ties take turns");
    let first = shop.pick(b"", None).expect("pick");
    let second = shop.pick(b"", None).expect("pick");
    assert_ne!(first.addr, second.addr, "the idle one");
    let held = first.addr;
    drop(second);
    // `first` is still in flight: the other one, every time.
    for _ in 0..5 {
        let next = shop.pick(b"", None).expect("pick");
        assert_ne!(next.addr, held);
    }
}

#[test]
fn visitor_hashing_keeps_a_visitor_on_one_address() {
    let upstreams = pool(
        "[upstreams.shop]\naddrs = [\"127.0.0.1:1\", \"127.0.0.2:1\", \"127.0.0.3:1\"]\nbalance = \"visitor\"\n",
    );
    let shop = upstreams.get("shop").expect("shop");
    let mut spread = std::collections::HashSet::new();
    for visitor in 0u32..50 {
        let key = visitor.to_be_bytes();
        let first = shop.pick(&key, None).expect("pick").addr;
        for _ in 0..5 {
            assert_eq!(
                shop.pick(&key, None).expect("pick").addr,
                first,
                "visitor {visitor}"
            );
        }
        spread.insert(first);
    }
    assert_eq!(spread.len(), 3, "visitors are spread over every address");
}

#[test]
fn a_ca_file_is_read_and_checked() {
    let dir = tempfile::tempdir().expect("dir");
    let made =
        rcgen::generate_simple_self_signed(vec!["shop.internal".to_string()]).expect("rcgen");
    std::fs::write(dir.path().join("ca.pem"), made.cert.pem()).expect("write");
    std::fs::write(
        dir.path().join("bad.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("empty.pem"), "").expect("write");
    assert_eq!(read_ca(&dir.path().join("ca.pem")).expect("ca").len(), 1);
    for (file, expect) in [
        ("bad.pem", "cannot be read"),
        ("empty.pem", "no certificate"),
        ("missing.pem", "cannot read"),
    ] {
        let err = read_ca(&dir.path().join(file)).expect_err(file);
        assert!(err.contains(expect), "{file}: {err}");
    }
}

#[tokio::test]
async fn a_name_that_stops_resolving_keeps_its_last_addresses_and_is_counted() {
    let config = config("[upstreams.shop]\naddrs = [\"localhost:9\"]\n");
    let mut shop = config.upstreams["shop"].clone();
    shop.addrs = vec![OriginAddr {
        host: "no-such-host.invalid".into(),
        port: 80,
    }];
    let metrics = Metrics::new();
    let resolver = Resolver::new(&shop, &metrics);
    let last: SocketAddr = "10.9.8.7:80".parse().expect("addr");
    resolver
        .resolved
        .lock()
        .expect("lock")
        .insert(shop.addrs[0].clone(), vec![last]);
    resolver.resolve().await;
    let current: Vec<_> = resolver
        .current()
        .iter()
        .filter_map(|b| b.addr.as_inet().copied())
        .collect();
    assert_eq!(current, [last], "kept");
    let failures = metrics.resolve_failures.with_label_values(&["shop"]).get();
    assert_eq!(failures, 1);
}
