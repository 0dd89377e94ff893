//! The decision table: preflight x phase x mode x token x cursor.

use super::*;
use crate::admission::VisitorId;
use crate::config::{AfterEnd, Event, ZoneConfig};
use std::time::Duration;

const NOW: u64 = 1_800_000_000_000;

fn zone(mode: &str) -> ZoneConfig {
    let text = format!(
        "[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n[tokens]\nsigning_key = {{ kid = \"k\", env = \"X\" }}\n\
         [zones.z]\npaths = [\"/\"]\ncapacity = 5\nadmit_per_minute = 60\nsession_ttl = \"10m\"\nmode = \"{mode}\"\n"
    );
    let config = crate::config::parse(&text, std::path::Path::new(".")).expect("valid");
    config.zones[0].clone()
}

fn claims(typ: TokenKind, rank: u64, iat_s: u64, exp_s: u64) -> Arc<Claims> {
    Arc::new(Claims {
        iss: "usher".into(),
        typ,
        zone: "z".into(),
        vid: VisitorId(1),
        rank,
        iat: iat_s,
        exp: exp_s,
        adm: None,
        pri: false,
    })
}

fn visitor(rank: u64) -> TokenCheck {
    TokenCheck::Visitor(claims(TokenKind::Visitor, rank, 0, NOW / 1_000 + 60))
}

/// A session issued `age_s` ago that lasts `ttl_s` in all.
fn session(age_s: u64, ttl_s: u64) -> TokenCheck {
    let iat = NOW / 1_000 - age_s;
    TokenCheck::Access(claims(TokenKind::Access, 1, iat, iat + ttl_s))
}

fn cursor(rank: u64) -> QueueKey {
    QueueKey {
        rank,
        visitor: VisitorId(u128::MAX),
    }
}

fn facts<'a>(zone: &'a ZoneConfig, token: &'a TokenCheck, cursor_rank: u64) -> Facts<'a> {
    Facts {
        zone,
        phase: Phase::Base,
        token,
        cursor: cursor(cursor_rank),
        draw: None,
        passed: None,
        preflight: false,
        challenge: false,
        now_ms: NOW,
    }
}

fn event(prequeue: u64, start: u64) -> Event {
    Event {
        name: "e".into(),
        title: "E".into(),
        prequeue_at_ms: prequeue,
        starts_at_ms: start,
        ends_at_ms: None,
        shuffle: false,
        after_end: AfterEnd::Ended,
        sale: Arc::new(zone("queue_all")),
    }
}

#[test]
fn newcomers_are_admitted_at_once_only_in_auto_mode() {
    let missing = TokenCheck::Missing;
    let decide_in = |mode: &str| decide(&facts(&zone(mode), &missing, 0));
    assert_eq!(decide_in("auto"), Decision::Join { may_enter: true });
    assert_eq!(decide_in("queue_all"), Decision::Join { may_enter: false });
    assert_eq!(decide_in("paused"), Decision::Join { may_enter: false });
    assert_eq!(decide_in("passthrough"), Decision::Passthrough);
    assert_eq!(decide_in("closed"), Decision::Closed);
}

#[test]
fn refused_tokens_are_treated_as_no_token() {
    let forged = TokenCheck::Rejected(crate::token::Rejection::BadSignature);
    assert_eq!(
        decide(&facts(&zone("auto"), &forged, 0)),
        Decision::Join { may_enter: true }
    );
    assert_eq!(
        decide(&facts(&zone("queue_all"), &forged, 0)),
        Decision::Join { may_enter: false }
    );
}

#[test]
fn preflights_never_join_whatever_the_zone() {
    for mode in ["auto", "queue_all", "paused", "closed", "passthrough"] {
        let z = zone(mode);
        for token in [TokenCheck::Missing, visitor(500), session(0, 600)] {
            let f = Facts {
                preflight: true,
                ..facts(&z, &token, 0)
            };
            assert_eq!(decide(&f), Decision::Preflight, "{mode} {token:?}");
        }
    }
}

#[test]
fn visitors_claim_once_the_cursor_passed_them() {
    let v = visitor(500);
    let z = zone("queue_all");
    assert!(matches!(decide(&facts(&z, &v, 499)), Decision::Wait(_)));
    assert!(matches!(decide(&facts(&z, &v, 500)), Decision::Claim(_)));
    // Ties on rank are broken by visitor id: a cursor at (500, 0) has not passed visitor 1.
    let tie = Facts {
        cursor: QueueKey {
            rank: 500,
            visitor: VisitorId(0),
        },
        ..facts(&z, &v, 0)
    };
    assert!(matches!(decide(&tie), Decision::Wait(_)));
}

#[test]
fn a_place_passed_longer_than_the_return_window_ago_joins_at_the_back() {
    let z = zone("queue_all"); // return_window: 5 minutes
    let mut trail = crate::admission::Trail::default();
    // The cursor passed rank 1_000 at NOW - 10 min and rank 2_000 at NOW - 1 min.
    trail.record(1_000, 300_000, NOW - 600_000);
    trail.record(2_000, 300_000, NOW - 60_000);
    for (rank, expected) in [
        (500, Decision::Rejoin),
        (1_000, Decision::Rejoin),
        (1_500, Decision::Claim(cursor(1_500))),
        (2_000, Decision::Claim(cursor(2_000))),
    ] {
        let v = visitor(rank);
        let f = Facts {
            passed: Some(&trail),
            ..facts(&z, &v, 2_000)
        };
        let decision = decide(&f);
        match (&decision, &expected) {
            (Decision::Claim(a), Decision::Claim(b)) => assert_eq!(a.rank, b.rank, "{rank}"),
            _ => assert_eq!(decision, expected, "{rank}"),
        }
    }
}

#[test]
fn a_priority_place_behind_the_cursor_is_never_sent_to_the_back() {
    let z = zone("queue_all");
    let mut trail = crate::admission::Trail::default();
    trail.record(1_000, 300_000, NOW - 600_000);
    let TokenCheck::Visitor(claims) = visitor(999) else {
        unreachable!()
    };
    let mut priority = (*claims).clone();
    priority.pri = true;
    let v = TokenCheck::Visitor(std::sync::Arc::new(priority));
    let f = Facts {
        passed: Some(&trail),
        ..facts(&z, &v, 1_000)
    };
    assert!(matches!(decide(&f), Decision::Claim(_)), "{:?}", decide(&f));
    let ordinary = visitor(999);
    let f = Facts {
        passed: Some(&trail),
        ..facts(&z, &ordinary, 1_000)
    };
    assert_eq!(decide(&f), Decision::Rejoin);
}

#[test]
fn sessions_renew_in_their_second_half_only_when_enabled() {
    let z = zone("auto");
    assert_eq!(z.limits.session_ttl, Duration::from_secs(600));
    let fresh = session(100, 600);
    let old = session(400, 600);
    assert_eq!(
        decide(&facts(&z, &fresh, 0)),
        Decision::Forward { renew: false }
    );
    assert_eq!(
        decide(&facts(&z, &old, 0)),
        Decision::Forward { renew: true }
    );
    let mut no_renewal = z.clone();
    no_renewal.session_renewal = false;
    assert_eq!(
        decide(&facts(&no_renewal, &old, 0)),
        Decision::Forward { renew: false }
    );
}

#[test]
fn a_provisional_session_always_renews() {
    // Issued for the claim window after a forward the origin never answered.
    let provisional = session(5, 60);
    for renewal in [true, false] {
        let mut z = zone("auto");
        z.session_renewal = renewal;
        assert_eq!(
            decide(&facts(&z, &provisional, 0)),
            Decision::Forward { renew: true },
            "session_renewal = {renewal}"
        );
    }
}

#[test]
fn a_sale_that_ended_shows_its_page_to_all_but_sessions() {
    let ended = event(NOW - 20_000, NOW - 10_000);
    let z = zone("passthrough");
    for token in [TokenCheck::Missing, visitor(NOW - 15_000)] {
        let f = Facts {
            phase: Phase::Ended(&ended),
            ..facts(&z, &token, 0)
        };
        assert_eq!(decide(&f), Decision::Ended, "{token:?}");
    }
    let running = session(10, 600);
    let auto = zone("auto");
    let f = Facts {
        phase: Phase::Ended(&ended),
        ..facts(&auto, &running, 0)
    };
    assert!(
        matches!(decide(&f), Decision::Forward { .. }),
        "a checkout in progress finishes"
    );
}

#[test]
fn the_prequeue_counts_down_and_hands_out_places() {
    let upcoming = event(NOW - 10_000, NOW + 10_000);
    let z = zone("paused");
    let phase = Phase::Prequeue(&upcoming);
    let newcomer = TokenCheck::Missing;
    let f = Facts {
        phase,
        ..facts(&z, &newcomer, 0)
    };
    assert_eq!(decide(&f), Decision::JoinPrequeue);
    let member = visitor(NOW - 5_000);
    let f = Facts {
        phase,
        ..facts(&z, &member, u64::MAX)
    };
    assert_eq!(decide(&f), Decision::Countdown, "no claim before the draw");
    // Someone queued before the pre-queue opened is simply in line.
    let early = visitor(NOW - 60_000);
    let f = Facts {
        phase,
        ..facts(&z, &early, 0)
    };
    assert!(matches!(decide(&f), Decision::Wait(_)));
}

#[test]
fn drawn_members_take_their_places_before_anyone_is_admitted() {
    let started = event(NOW - 20_000, NOW - 1_000);
    let draw = Draw {
        event: "e".into(),
        seed: 7,
        at_ms: NOW - 500,
    };
    let z = zone("queue_all");
    let member = visitor(NOW - 15_000);
    let f = Facts {
        phase: Phase::Sale(&started),
        draw: Some(&draw),
        ..facts(&z, &member, u64::MAX)
    };
    assert!(matches!(decide(&f), Decision::TakeDrawn(_)));
    let undrawn = Facts {
        phase: Phase::Sale(&started),
        ..facts(&z, &member, u64::MAX)
    };
    assert_eq!(
        decide(&undrawn),
        Decision::Countdown,
        "until the draw lands"
    );
}
