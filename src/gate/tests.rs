//! The decision table: mode x token x cursor.

use super::*;
use crate::admission::VisitorId;
use crate::config::ZoneConfig;
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

fn claims(typ: TokenKind, rank: u64, exp_s: u64) -> Arc<Claims> {
    Arc::new(Claims {
        iss: "usher".into(),
        typ,
        zone: "z".into(),
        vid: VisitorId(1),
        rank,
        iat: 0,
        exp: exp_s,
        adm: None,
    })
}

fn cursor(rank: u64) -> QueueKey {
    QueueKey {
        rank,
        visitor: VisitorId(u128::MAX),
    }
}

#[test]
fn newcomers_are_admitted_at_once_only_in_auto_mode() {
    let missing = TokenCheck::Missing;
    assert_eq!(
        decide(&zone("auto"), &missing, cursor(0), NOW),
        Decision::AdmitOrJoin
    );
    assert_eq!(
        decide(&zone("queue_all"), &missing, cursor(0), NOW),
        Decision::Join
    );
    assert_eq!(
        decide(&zone("paused"), &missing, cursor(0), NOW),
        Decision::Join
    );
    assert_eq!(
        decide(&zone("passthrough"), &missing, cursor(0), NOW),
        Decision::Passthrough
    );
    assert_eq!(
        decide(&zone("closed"), &missing, cursor(0), NOW),
        Decision::Closed
    );
}

#[test]
fn refused_tokens_are_treated_as_no_token() {
    let forged = TokenCheck::Rejected(crate::token::Rejection::BadSignature);
    assert_eq!(
        decide(&zone("auto"), &forged, cursor(0), NOW),
        Decision::AdmitOrJoin
    );
    assert_eq!(
        decide(&zone("queue_all"), &forged, cursor(0), NOW),
        Decision::Join
    );
}

#[test]
fn visitors_claim_once_the_cursor_passed_them() {
    let visitor = TokenCheck::Visitor(claims(TokenKind::Visitor, 500, NOW / 1_000 + 60));
    let z = zone("queue_all");
    assert!(matches!(
        decide(&z, &visitor, cursor(499), NOW),
        Decision::Wait(_)
    ));
    assert!(matches!(
        decide(&z, &visitor, cursor(500), NOW),
        Decision::Claim(_)
    ));
    // Ties on rank are broken by visitor id: a cursor at (500, 0) has not passed visitor 1.
    let tie = QueueKey {
        rank: 500,
        visitor: VisitorId(0),
    };
    assert!(matches!(decide(&z, &visitor, tie, NOW), Decision::Wait(_)));
}

#[test]
fn sessions_renew_in_their_second_half_only_when_enabled() {
    let z = zone("auto");
    assert_eq!(z.limits.session_ttl, Duration::from_secs(600));
    let fresh = TokenCheck::Access(claims(TokenKind::Access, 1, NOW / 1_000 + 500));
    let old = TokenCheck::Access(claims(TokenKind::Access, 1, NOW / 1_000 + 200));
    assert_eq!(
        decide(&z, &fresh, cursor(0), NOW),
        Decision::Forward { renew: false }
    );
    assert_eq!(
        decide(&z, &old, cursor(0), NOW),
        Decision::Forward { renew: true }
    );
    let mut no_renewal = z.clone();
    no_renewal.session_renewal = false;
    assert_eq!(
        decide(&no_renewal, &old, cursor(0), NOW),
        Decision::Forward { renew: false }
    );
}
