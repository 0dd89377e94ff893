//! The per-client limits with a manual clock: floods, households, lapses, streams, sharing.

use super::*;

const T0: u64 = 1_800_000_000_000;
const LAPSE: u64 = 120_000;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

fn rules() -> Defence {
    Defence::default()
}

#[test]
fn a_flood_from_one_address_gets_the_burst_then_the_rate() {
    let clients = Clients::default();
    let bot = ip("198.51.100.7");
    let granted = (0..5_000)
        .filter(|i| {
            let at = T0 + i / 4; // 5,000 requests in 1.25 s
            clients
                .join(0, bot, VisitorId(*i as u128), &rules(), LAPSE, at)
                .is_ok()
        })
        .count();
    assert_eq!(
        granted, 10,
        "the burst, and the rate's share of 1.25 s rounds down"
    );
    match clients.join(0, bot, VisitorId(9_999), &rules(), LAPSE, T0 + 1_250) {
        Err(Refused::JoinRate { retry_after_s }) => assert!((1..=3).contains(&retry_after_s)),
        other => panic!("{other:?}"),
    }
    // A minute later: 20 more, never above client_places however long the flood lasts.
    let mut total = granted;
    for s in 1..=600u64 {
        for i in 0..10 {
            let v = VisitorId(u128::from(s * 100 + i));
            if clients
                .join(0, bot, v, &rules(), LAPSE, T0 + s * 1_000)
                .is_ok()
            {
                total += 1;
            }
        }
        let live = clients.places(0, bot, LAPSE, T0 + s * 1_000);
        assert!(live <= 50, "at {s}s the bot holds {live} places");
    }
    // 10 minutes: the rate allows 200 more, the lapse of unseen places lets them through.
    assert!(total > 50 && total <= 10 + 200, "{total}");
}

#[test]
fn a_household_gets_in_and_other_clients_are_not_counted_against_it() {
    let clients = Clients::default();
    let home = ip("203.0.113.10");
    for i in 0..6 {
        assert_eq!(
            clients.join(0, home, VisitorId(i), &rules(), LAPSE, T0 + i as u64 * 500),
            Ok(())
        );
    }
    for other in 0..100u32 {
        let addr = IpAddr::from([10, 0, (other / 256) as u8, other as u8]);
        assert_eq!(
            clients.join(0, addr, VisitorId(1), &rules(), LAPSE, T0),
            Ok(())
        );
    }
    // Another zone is counted apart.
    assert_eq!(
        clients.join(1, home, VisitorId(7), &rules(), LAPSE, T0),
        Ok(())
    );
    assert_eq!(clients.places(0, home, LAPSE, T0 + 3_000), 6);
}

#[test]
fn live_places_stay_counted_while_seen_and_lapse_when_not() {
    let strict = Defence {
        client_places: 2,
        ..rules()
    };
    let clients = Clients::default();
    let c = ip("192.0.2.1");
    assert!(clients.join(0, c, VisitorId(1), &strict, LAPSE, T0).is_ok());
    assert!(clients.join(0, c, VisitorId(2), &strict, LAPSE, T0).is_ok());
    match clients.join(0, c, VisitorId(3), &strict, LAPSE, T0 + 1_000) {
        Err(Refused::Places { retry_after_s }) => assert_eq!(retry_after_s, 60, "capped"),
        other => panic!("{other:?}"),
    }
    // Visitor 1 keeps its page open; visitor 2 went away.
    clients.seen(0, c, VisitorId(1), T0 + 100_000);
    assert!(clients
        .join(0, c, VisitorId(3), &strict, LAPSE, T0 + 119_000)
        .is_err());
    assert!(clients
        .join(0, c, VisitorId(3), &strict, LAPSE, T0 + 120_001)
        .is_ok());
    assert!(clients
        .join(0, c, VisitorId(4), &strict, LAPSE, T0 + 121_000)
        .is_err());
    // An admitted visitor's place is done.
    clients.done(0, c, VisitorId(1));
    assert!(clients
        .join(0, c, VisitorId(4), &strict, LAPSE, T0 + 121_000)
        .is_ok());
}

#[test]
fn event_streams_are_capped_per_client_and_per_node() {
    let clients = Clients::default();
    let rules = Defence {
        client_event_streams: 2,
        ..rules()
    };
    let a = ip("192.0.2.1");
    let b = ip("192.0.2.2");
    let first = clients.open_stream(0, a, &rules, 3, T0).expect("first");
    let second = clients.open_stream(0, a, &rules, 3, T0).expect("second");
    assert_eq!(
        clients.open_stream(0, a, &rules, 3, T0).err(),
        Some(Refused::Streams)
    );
    let other = clients
        .open_stream(0, b, &rules, 3, T0)
        .expect("another client");
    assert_eq!(
        clients.open_stream(0, b, &rules, 3, T0).err(),
        Some(Refused::Streams),
        "the node is full"
    );
    assert_eq!(clients.open_streams(), 3);
    drop(first);
    assert_eq!(clients.open_streams(), 2);
    let again = clients
        .open_stream(0, a, &rules, 3, T0)
        .expect("a slot came free");
    drop((second, other, again));
    assert_eq!(clients.open_streams(), 0);
}

#[test]
fn a_direct_session_is_remembered_until_it_expires() {
    let clients = Clients::default();
    let c = ip("192.0.2.9");
    assert_eq!(clients.direct(0, c, T0), None);
    let direct = Direct {
        visitor: VisitorId(5),
        rank: T0,
        admitted_at_ms: T0,
        bucket: T0 / 1_000 + 600,
    };
    clients.set_direct(0, c, direct, &rules(), T0);
    assert_eq!(clients.direct(0, c, T0 + 1_000), Some(direct));
    assert_eq!(clients.direct(1, c, T0 + 1_000), None, "per zone");
    assert_eq!(clients.direct(0, c, T0 + 600_000), None, "expired");
}

#[test]
fn the_sweep_forgets_clients_that_limit_nothing() {
    let clients = Clients::default();
    let rules = rules();
    for i in 0..1_000u32 {
        let addr = IpAddr::from(i.to_be_bytes());
        clients
            .join(0, addr, VisitorId(1), &rules, LAPSE, T0)
            .expect("join");
    }
    let held = clients
        .open_stream(0, ip("192.0.2.1"), &rules, 10, T0)
        .expect("stream");
    let zone_rules = |zone: usize| (zone == 0).then_some((&rules, LAPSE));
    clients.sweep(zone_rules, T0 + 60_000);
    assert_eq!(clients.len(), 1_001, "live places and streams are kept");
    clients.sweep(zone_rules, T0 + LAPSE + 60_000);
    assert_eq!(clients.len(), 1, "only the open stream's client is left");
    drop(held);
    clients.sweep(zone_rules, T0 + LAPSE + 60_000);
    assert!(clients.is_empty());
}

#[test]
fn a_session_used_from_too_many_addresses_is_noticed() {
    let sharing = Sharing::default();
    let v = VisitorId(42);
    for (addr, ok) in [
        ("192.0.2.1", true),
        ("192.0.2.1", true),
        ("198.51.100.2", true), // the phone left the Wi-Fi
        ("203.0.113.3", true),
        ("203.0.113.4", false),
        ("192.0.2.1", true), // the owner still gets through until revoked
    ] {
        assert_eq!(
            sharing.used_from(0, v, ip(addr), 3, T0 / 1_000 + 60),
            ok,
            "{addr}"
        );
    }
    assert!(
        sharing.used_from(1, v, ip("203.0.113.4"), 3, T0 / 1_000 + 60),
        "per zone"
    );
    sharing.sweep(T0 / 1_000 + 61);
    assert!(sharing.is_empty());
}

#[test]
fn arrivals_per_minute_slide() {
    let arrivals = Arrivals::default();
    assert_eq!(arrivals.per_minute(T0), 0);
    for i in 0..600 {
        arrivals.record(T0 + i * 100); // 10 a second for a minute
    }
    let rate = arrivals.per_minute(T0 + 60_000);
    assert!((590..=610).contains(&rate), "{rate}");
    // Half a minute of silence: about half of it is still in the last minute.
    let rate = arrivals.per_minute(T0 + 90_000);
    assert!((250..=350).contains(&rate), "{rate}");
    assert_eq!(arrivals.per_minute(T0 + 200_000), 0, "long quiet");
}
