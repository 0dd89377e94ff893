//! The gate's decision for a request to a protected zone. Pure: it takes plain request facts
//! (the zone, the token check, the cached cursor) and returns a [`Decision`]; it never sees a
//! Pingora type or the store, so it is unit-tested and benchmarked without sockets.

use crate::admission::{QueueKey, VisitorId};
use crate::config::{Mode, ZoneConfig};
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
        Ok(claims) => match claims.typ {
            TokenKind::Visitor => TokenCheck::Visitor(claims),
            TokenKind::Access if is_revoked(claims.vid) => TokenCheck::Rejected(Rejection::Revoked),
            TokenKind::Access => TokenCheck::Access(claims),
        },
    }
}

/// What to do with a request to a protected zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The gate is off for this zone: forward untouched.
    Passthrough,
    /// The zone is closed: static page, no queue.
    Closed,
    /// A valid session: forward; `renew` asks for a fresh token and a moved slot.
    Forward {
        /// Whether the session should be extended now.
        renew: bool,
    },
    /// A queued visitor whose turn came: swap their visitor token for an access token.
    Claim(QueueKey),
    /// A queued visitor whose turn has not come: waiting page.
    Wait(QueueKey),
    /// A newcomer in `auto` mode: admit at once if the zone is quiet, else join.
    AdmitOrJoin,
    /// A newcomer who must queue.
    Join,
}

/// Decides for a request with token `token` to `zone`, whose cursor is `cursor`.
pub fn decide(zone: &ZoneConfig, token: &TokenCheck, cursor: QueueKey, now_ms: u64) -> Decision {
    match zone.mode {
        Mode::Passthrough => return Decision::Passthrough,
        Mode::Closed => return Decision::Closed,
        Mode::Auto | Mode::QueueAll | Mode::Paused => {}
    }
    match token {
        TokenCheck::Access(claims) => {
            let remaining_ms = (claims.exp * 1_000).saturating_sub(now_ms);
            let half_ttl = zone.limits.session_ttl.as_millis() as u64 / 2;
            Decision::Forward {
                renew: zone.session_renewal && remaining_ms < half_ttl,
            }
        }
        TokenCheck::Visitor(claims) => {
            let key = claims.queue_key();
            if key <= cursor {
                Decision::Claim(key)
            } else {
                Decision::Wait(key)
            }
        }
        TokenCheck::Missing | TokenCheck::Rejected(_) => match zone.mode {
            Mode::Auto => Decision::AdmitOrJoin,
            _ => Decision::Join,
        },
    }
}

#[cfg(test)]
mod tests;
