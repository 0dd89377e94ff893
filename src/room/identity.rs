//! One identity, one place. The shop can tell usher who a visitor is: an `Usher-Identity`
//! response header (on login, say), which usher turns into an identity cookie, or a link
//! carrying a signed identity token (`?usher_identity=`, made with `usher identity sign`).
//! A newcomer with an identity takes the identity's place: its keyed id as the visitor, and
//! the first arrival any device of that identity had in the zone (kept in the store, so every
//! node agrees). Two devices of one identity hold one queue entry and, once admitted, one slot.
//!
//! What an identity does not merge: a session that began before the identity was known keeps
//! its own slot until it ends (the identity's place is then recorded at that session's arrival,
//! so a second device goes in at the same rank).

use super::{RequestFacts, Room, Session};
use crate::admission::VisitorId;
use crate::token::{cookie, Claims, TokenKind};
use crate::zone::Zone;
use std::sync::Arc;

/// The query parameter of a signed identity link.
pub const IDENTITY_PARAM: &str = "usher_identity";

/// How long an identity cookie lasts.
pub const IDENTITY_COOKIE_TTL_S: u64 = 86_400;

/// The longest identity the origin may send.
const MAX_IDENTITY_LEN: usize = 256;

/// Whether `value` can be an identity: 1 to 256 visible ASCII characters.
pub fn is_identity(value: &[u8]) -> bool {
    (1..=MAX_IDENTITY_LEN).contains(&value.len()) && value.iter().all(|b| (0x21..=0x7e).contains(b))
}

impl Room {
    /// The origin named the visitor of this response in `Usher-Identity`: the `Set-Cookie`
    /// of their identity cookie (`<prefix>_~identity`: `~` is in no zone's name, so it never
    /// names a zone's cookie, and it is stripped before the origin like every other), and, if
    /// the response is for a `session`, the identity's place recorded at that session's
    /// arrival, so its other devices go in at the same rank. `None` when the value cannot be
    /// an identity.
    pub async fn identity_named(
        &self,
        identity: &[u8],
        session: Option<&Session>,
    ) -> Option<String> {
        let identity = std::str::from_utf8(identity)
            .ok()
            .filter(|i| is_identity(i.as_bytes()))?;
        let now = self.clock.now_ms();
        let id = self.tokens.identity_id(identity);
        let recorded_at = session.and_then(|s| Some((self.zone_named(&s.zone)?, s.rank)));
        if let Some((zone, rank)) = recorded_at {
            self.identity_rank(&zone, id, rank, now).await;
        }
        let token = self
            .tokens
            .identity_token(id, "*", IDENTITY_COOKIE_TTL_S, now);
        Some(cookie::set(
            &self.identity_cookie,
            &token,
            IDENTITY_COOKIE_TTL_S,
            self.cookie_secure,
        ))
    }

    /// The identity `req` carries for `zone`: a signed link's, else the identity cookie's.
    pub(super) fn identity_of(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        now: u64,
    ) -> Option<Arc<Claims>> {
        let from_link = super::endpoints::query_param(req.query, IDENTITY_PARAM);
        let from_cookie = req
            .cookie
            .and_then(|c| cookie::find(c, &self.identity_cookie));
        [from_link, from_cookie]
            .into_iter()
            .flatten()
            .find_map(|raw| {
                let claims = self.tokens.verify(raw, now).ok()?;
                let fits = claims.typ == TokenKind::Identity
                    && (claims.zone == "*" || claims.zone == zone.config.name);
                fits.then_some(claims)
            })
    }

    /// The arrival of identity `visitor`'s place in `zone`: the first any of its devices had
    /// (`rank` if this is the first). When the store cannot say, `rank`: the device then has a
    /// place of its own arrival, under the identity.
    pub(super) async fn identity_rank(
        &self,
        zone: &Zone,
        visitor: VisitorId,
        rank: u64,
        now: u64,
    ) -> u64 {
        let name = zone.config.name.as_str();
        let until_s = (now + self.visitor_ttl.as_millis() as u64) / 1_000;
        let first = self.store.identity_rank(name, visitor, rank, until_s, now);
        self.call(name, "identity", first).await.unwrap_or(rank)
    }
}

#[cfg(test)]
mod tests {
    use super::is_identity;
    use proptest::prelude::*;

    #[test]
    fn identities_are_short_visible_ascii() {
        for ok in [&b"42"[..], b"user-1", b"alice@example.com", &[b'x'; 256]] {
            assert!(is_identity(ok), "{ok:?}");
        }
        for bad in [
            &b""[..],
            b"has space",
            b"tab\t",
            b"caf\xc3\xa9",
            b"nul\0",
            &[b'x'; 257],
        ] {
            assert!(!is_identity(bad), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_are_judged_without_panicking(value in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = is_identity(&value);
        }
    }
}
