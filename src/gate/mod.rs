//! The gate's decision for a request to a protected zone: the one table from (phase, token,
//! zone state) to what happens to the visitor. Pure: it takes plain facts (the zone as it runs
//! now, its schedule phase, the token check, the cached cursor and draw) and returns a
//! [`Decision`]; it never sees a Pingora type or the store, so it is unit-tested and benchmarked
//! without sockets. The room carries decisions out (`room::visit` on the request path,
//! `room::look` for `/_usher/status` and `/_usher/events`).

use crate::admission::{Draw, QueueKey, Trail, VisitorId};
use crate::config::{Mode, ZoneConfig};
use crate::onsale::{self, Phase, Standing};
use crate::token::{Claims, Rejection, TokenKind, Tokens};
use std::sync::Arc;

/// What the zone's cookie turned out to hold.
#[derive(Debug, Clone)]
pub enum TokenCheck {
    /// No cookie for this zone.
    Missing,
    /// A cookie that failed a check: treated exactly like no cookie.
    Rejected(Rejection),
    /// A valid visitor token (a place in the queue).
    Visitor(Arc<Claims>),
    /// A valid access token (a session).
    Access(Arc<Claims>),
}

impl TokenCheck {
    /// The claims of a valid token (a place or a session), if the cookie held one.
    pub fn claims(&self) -> Option<&Arc<Claims>> {
        match self {
            TokenCheck::Visitor(claims) | TokenCheck::Access(claims) => Some(claims),
            TokenCheck::Missing | TokenCheck::Rejected(_) => None,
        }
    }
}

/// Verifies the zone cookie `raw` for `zone` at `now_ms`. `is_revoked` (the node's cache of
/// releases) tells released sessions apart.
pub fn check_token(
    tokens: &Tokens,
    zone: &str,
    raw: Option<&str>,
    is_revoked: impl Fn(VisitorId) -> bool,
    now_ms: u64,
) -> TokenCheck {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return TokenCheck::Missing;
    };
    match tokens.verify(raw, now_ms) {
        Err(reason) => TokenCheck::Rejected(reason),
        Ok(claims) if claims.zone != zone => TokenCheck::Rejected(Rejection::WrongZone),
        // A released session's place is used up too, and a place revoked for sharing is gone.
        Ok(claims) if is_revoked(claims.vid) => TokenCheck::Rejected(Rejection::Revoked),
        Ok(claims) => match claims.typ {
            TokenKind::Visitor => TokenCheck::Visitor(claims),
            TokenKind::Access => TokenCheck::Access(claims),
            TokenKind::Challenge | TokenKind::Identity => {
                TokenCheck::Rejected(Rejection::NotAPlace)
            }
        },
    }
}

/// What the gate knows about a request to a zone. Plain values: no request, no store.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The zone as it runs now ([`crate::zone::Zone::at`]: paused during a pre-queue, with the
    /// event's overrides during a sale).
    pub zone: &'a ZoneConfig,
    /// Where the zone stands in its schedule.
    pub phase: Phase<'a>,
    /// What the zone's cookie holds.
    pub token: &'a TokenCheck,
    /// The zone's cursor as this node knows it.
    pub cursor: QueueKey,
    /// The zone's latest pre-queue draw, if any.
    pub draw: Option<&'a Draw>,
    /// Where the zone's cursor was when (to tell how long ago it passed a place).
    pub passed: Option<&'a Trail>,
    /// A CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`).
    pub preflight: bool,
    /// Newcomers must solve a proof-of-work puzzle before they get a place (the zone's
    /// `proof_of_work` is on, or `auto` and newcomers arrive fast).
    pub challenge: bool,
    /// Now, in ms since the epoch.
    pub now_ms: u64,
}

/// What happens to a visitor: the one table, read by the request path, `/_usher/status` and
/// `/_usher/events` alike. Those that only look (status, events) never join anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A CORS preflight: forwarded, never joins or takes a slot (browsers send no cookies on
    /// preflights, and the real request that follows is gated).
    Preflight,
    /// The gate is off for this zone: forward untouched.
    Passthrough,
    /// The zone is closed: static page, no queue.
    Closed,
    /// The scheduled sale is over: the "sale ended" page for everyone without a session.
    Ended,
    /// A valid session: forward; `renew` asks for a fresh token and a moved slot.
    Forward {
        /// Whether the session should be extended now.
        renew: bool,
    },
    /// A pre-queue member before the draw: the countdown.
    Countdown,
    /// A pre-queue member whose place was just drawn: they take it, positions come after.
    TakeDrawn(QueueKey),
    /// A queued visitor whose turn came: swap their visitor token for an access token.
    Claim(QueueKey),
    /// A visitor the cursor passed more than the zone's `return_window` ago: their place is
    /// void, they join at the back like a newcomer.
    Rejoin,
    /// A queued visitor whose turn has not come: waiting page.
    Wait(QueueKey),
    /// A newcomer takes a place; `may_enter` (mode `auto`): straight in if the zone is quiet.
    Join {
        /// Whether a quiet zone lets them in at once.
        may_enter: bool,
    },
    /// A newcomer during a pre-queue: a place (the token) and the countdown.
    JoinPrequeue,
    /// A newcomer (or a visitor sent to the back) while proof of work is asked: a puzzle, no
    /// place yet; its solution earns the place at the arrival the puzzle carries.
    Challenge,
}

/// The decision for a request. In order: preflights pass; a sale that ended shows its page to
/// all but sessions; `passthrough` and `closed` apply to everyone; a session is forwarded; a
/// place is where the schedule and the cursor put it (unless the cursor passed it longer than
/// `return_window` ago); anyone else is a newcomer, who first gets a puzzle while proof of work
/// is asked.
pub fn decide(facts: &Facts<'_>) -> Decision {
    let zone = facts.zone;
    if facts.preflight {
        return Decision::Preflight;
    }
    let session = matches!(facts.token, TokenCheck::Access(_));
    if let (Phase::Ended(_), false) = (facts.phase, session) {
        return Decision::Ended;
    }
    match zone.mode {
        Mode::Passthrough => return Decision::Passthrough,
        Mode::Closed => return Decision::Closed,
        Mode::Auto | Mode::QueueAll | Mode::Paused => {}
    }
    match facts.token {
        TokenCheck::Access(claims) => Decision::Forward {
            renew: renews(zone, claims, facts.now_ms),
        },
        TokenCheck::Visitor(claims) => {
            match onsale::standing(facts.phase, claims.queue_key(), facts.draw, facts.now_ms) {
                Standing::Prequeue(_) => Decision::Countdown,
                Standing::Drawn { key, .. } => Decision::TakeDrawn(key),
                Standing::Queued(key) if key <= facts.cursor => {
                    let window_ms = zone.defence.return_window.as_millis() as u64;
                    // A priority place sits behind the cursor on purpose: never void.
                    let long_ago = !claims.pri
                        && facts
                            .passed
                            .is_some_and(|t| t.passed_before(key.rank, window_ms, facts.now_ms));
                    match (long_ago, facts.challenge) {
                        (true, true) => Decision::Challenge,
                        (true, false) => Decision::Rejoin,
                        (false, _) => Decision::Claim(key),
                    }
                }
                Standing::Queued(key) => Decision::Wait(key),
            }
        }
        TokenCheck::Missing | TokenCheck::Rejected(_) => match facts.phase {
            _ if facts.challenge => Decision::Challenge,
            Phase::Prequeue(_) => Decision::JoinPrequeue,
            _ => Decision::Join {
                may_enter: zone.mode == Mode::Auto,
            },
        },
    }
}

/// Whether a session is extended now: in its second half when the zone renews sessions, and
/// always when it is provisional (shorter than a session: its first forward was never answered,
/// and the slot is held only for the claim window until the visitor comes back).
fn renews(zone: &ZoneConfig, claims: &Claims, now_ms: u64) -> bool {
    let ttl_s = zone.limits.session_ttl.as_secs();
    let provisional = claims.exp.saturating_sub(claims.iat) < ttl_s;
    let remaining_ms = (claims.exp * 1_000).saturating_sub(now_ms);
    let half_ttl_ms = zone.limits.session_ttl.as_millis() as u64 / 2;
    provisional || (zone.session_renewal && remaining_ms < half_ttl_ms)
}

#[cfg(test)]
mod tests;
