//! The zone table on canonical paths and hosts.

use super::*;
use crate::request::path::canonical;

fn table(server: &str) -> ZoneTable {
    let text = format!(
        r#"
        [server]
        {server}
        [upstreams.shop]
        addrs = ["127.0.0.1:9000"]
        [tokens]
        signing_key = {{ kid = "k", env = "UNUSED" }}
        [zones.checkout]
        paths = ["/Checkout/"]
        capacity = 1
        admit_per_minute = 1
        [zones.express]
        paths = ["/checkout/express"]
        capacity = 1
        admit_per_minute = 1
        [zones.vip]
        hosts = ["VIP.example.com."]
        paths = ["/checkout", "/vip"]
        capacity = 1
        admit_per_minute = 1
        [zones.exact]
        paths = ["/API/Cart"]
        case_sensitive = true
        capacity = 1
        admit_per_minute = 1
    "#
    );
    let config = crate::config::parse(&text, std::path::Path::new(".")).expect("valid");
    ZoneTable::new(&config)
}

fn name(t: &ZoneTable, host: Option<&str>, raw_path: &str) -> Option<String> {
    let path = canonical(raw_path.as_bytes()).expect("readable");
    t.find(host, &path).map(|z| z.config.name.clone())
}

#[test]
fn longest_prefix_then_specific_host_wins() {
    let t = table("");
    let shop = Some("shop.example.com");
    let vip = Some("vip.example.com");
    assert_eq!(
        name(&t, shop, "/checkout/cart").as_deref(),
        Some("checkout")
    );
    assert_eq!(
        name(&t, shop, "/checkout/express/1").as_deref(),
        Some("express")
    );
    assert_eq!(name(&t, vip, "/checkout").as_deref(), Some("vip"));
    assert_eq!(
        name(&t, vip, "/checkout/express").as_deref(),
        Some("express")
    );
    assert_eq!(name(&t, shop, "/"), None);
    assert_eq!(
        t.by_name("vip").map(|z| z.cookie.as_str()),
        Some("usher_vip")
    );
}

#[test]
fn paths_match_canonically_and_on_segment_boundaries() {
    let t = table("");
    let shop = Some("shop.example.com");
    for spelling in [
        "/checkout",
        "/CHECKOUT",
        "/%43heckout",
        "//checkout/",
        "/checkout;jsessionid=1",
        "/checkout.json",
    ] {
        assert_eq!(
            name(&t, shop, spelling).as_deref(),
            Some("checkout"),
            "{spelling}"
        );
    }
    for other in ["/checkoutx", "/checkouts", "/check"] {
        assert_eq!(name(&t, shop, other), None, "{other}");
    }
    // A case-sensitive zone compares as written.
    assert_eq!(name(&t, shop, "/API/Cart/1").as_deref(), Some("exact"));
    assert_eq!(name(&t, shop, "/api/cart/1"), None);
}

#[test]
fn a_host_no_zone_names_fails_closed_or_is_the_default_host() {
    let t = table("");
    // A host-scoped zone guards its paths also for requests that name no host or a stray one:
    // a single-site origin serves them as the shop.
    for host in [
        None,
        Some("127.0.0.1"),
        Some("stray.example.org"),
        Some("shop.example.com"),
    ] {
        assert_eq!(name(&t, host, "/vip").as_deref(), Some("vip"), "{host:?}");
    }

    let with_default = table("default_host = \"shop.example.com\"");
    assert_eq!(
        name(&with_default, None, "/vip"),
        None,
        "taken for the shop"
    );
    assert_eq!(name(&with_default, Some("10.0.0.1"), "/vip"), None);
    assert_eq!(
        name(&with_default, None, "/checkout").as_deref(),
        Some("checkout")
    );
    // On equal prefixes, a host no zone names gets the zone for every host.
    assert_eq!(name(&t, None, "/checkout").as_deref(), Some("checkout"));
    let vip_default = table("default_host = \"vip.example.com\"");
    assert_eq!(name(&vip_default, None, "/vip").as_deref(), Some("vip"));
}
