//! Places in line and slots: joining (and, in a quiet zone, an exchanger tick at once so the
//! newcomer walks straight in), waiting, claiming a slot when the turn comes, session renewal and
//! release. Slots change only through the store's per-visitor operations; the zone state only
//! through the exchanger.

use super::status::{State, Status};
use super::{Forward, Outcome, RequestFacts, Room};
use crate::admission::{bucket_of, eta, Claim, QueueKey, VisitorId};
use crate::config::Mode;
use crate::exchanger::Via;
use crate::onsale::{self, Standing};
use crate::store::StoreError;
use crate::token::{cookie, Claims, TokenKind};
use crate::zone::Zone;

/// Where a visitor with a visitor token stands after asking.
pub(super) enum Place {
    /// Their turn came: here is their access token cookie.
    Admitted {
        /// `Set-Cookie` value with the access token.
        token: String,
        /// Milliseconds they waited.
        queue_ms: u64,
        /// The visitor.
        visitor: VisitorId,
    },
    /// Still in line.
    Waiting(Status),
    /// Their session was released: the place is used up.
    Ended,
}

impl Room {
    fn access_cookie(&self, zone: &Zone, base: &Claims, bucket: u64, adm: u64, now: u64) -> String {
        let claims = Claims {
            iss: self.tokens.issuer().to_string(),
            typ: TokenKind::Access,
            zone: zone.config.name.clone(),
            vid: base.vid,
            rank: base.rank,
            iat: now / 1_000,
            exp: bucket,
            adm: Some(adm),
        };
        let max_age = bucket.saturating_sub(now / 1_000);
        cookie::set(
            &zone.cookie,
            &self.tokens.sign(&claims),
            max_age,
            self.cookie_secure,
        )
    }

    /// Where the holder of a visitor token stands in the schedule: in the queue (at their
    /// arrival, or at their drawn place after a pre-queue lottery), or still in the pre-queue.
    pub(super) fn standing<'z>(&self, zone: &'z Zone, claims: &Claims, now: u64) -> Standing<'z> {
        let draw = self.cached(&zone.config.name).and_then(|s| s.draw.clone());
        let phase = onsale::phase(&zone.schedule, now);
        onsale::standing(phase, claims.queue_key(), draw.as_ref(), now)
    }

    /// Where the holder of a valid visitor token stands; claims their slot if their turn came.
    pub(super) async fn place(
        &self,
        zone: &Zone,
        claims: &Claims,
        now: u64,
    ) -> Result<Place, StoreError> {
        let key = match self.standing(zone, claims, now) {
            Standing::Queued(key) => key,
            Standing::Prequeue(_) => {
                let status = Status::without_place(zone, State::Prequeue, now);
                return Ok(Place::Waiting(status.waited_since(claims.rank, now)));
            }
            // Drawn: take the place now; positions are shown once everyone had the chance.
            Standing::Drawn { key, .. } => {
                let name = zone.config.name.as_str();
                self.call(name, "touch", self.store.touch(name, key, now))
                    .await?;
                let status = Status::without_place(zone, State::Prequeue, now);
                return Ok(Place::Waiting(status.waited_since(claims.rank, now)));
            }
        };
        if key <= self.cursor(zone) {
            if let Some(place) = self.claim(zone, claims, now).await? {
                return Ok(place);
            }
        }
        self.wait_in_line(zone, key, claims.rank, now).await
    }

    /// Claims the slot of a visitor the cursor passed. `None`: no slot was reserved for them
    /// (it lapsed, they were away, or their join landed after the tick), so they wait again,
    /// first in line.
    async fn claim(
        &self,
        zone: &Zone,
        claims: &Claims,
        now: u64,
    ) -> Result<Option<Place>, StoreError> {
        let name = zone.config.name.as_str();
        let to = bucket_of(now + zone.config.limits.session_ttl.as_millis() as u64);
        let claimed = self
            .call(name, "claim", self.store.claim(name, claims.vid, to, now))
            .await?;
        Ok(match claimed {
            Claim::Granted {
                bucket,
                admitted_at_ms,
            } => Some(Place::Admitted {
                token: self.access_cookie(zone, claims, bucket, admitted_at_ms, now),
                queue_ms: admitted_at_ms.saturating_sub(claims.rank),
                visitor: claims.vid,
            }),
            Claim::Ended => Some(Place::Ended),
            Claim::NotReserved => None,
        })
    }

    /// A heartbeat (and a re-join at the token's rank if the entry was lost), and the status.
    pub(super) async fn wait_in_line(
        &self,
        zone: &Zone,
        key: QueueKey,
        joined_at: u64,
        now: u64,
    ) -> Result<Place, StoreError> {
        let name = zone.config.name.as_str();
        self.call(name, "touch", self.store.touch(name, key, now))
            .await?;
        self.waiting_status(zone, key, joined_at, now)
            .await
            .map(Place::Waiting)
    }

    /// A queued visitor's status; `joined_at` is their arrival (the rank in their token).
    pub(super) async fn waiting_status(
        &self,
        zone: &Zone,
        key: QueueKey,
        joined_at: u64,
        now: u64,
    ) -> Result<Status, StoreError> {
        let name = zone.config.name.as_str();
        let cached = self.cached(name);
        let cursor = cached.as_ref().map(|s| s.cursor).unwrap_or_default();
        let counted_to = key.start_of_millisecond();
        let ahead = self
            .call(name, "ahead", self.store.ahead(name, cursor, counted_to))
            .await?;
        let observed = cached.map(|s| s.observed).unwrap_or_default();
        let state = if zone.config.mode == Mode::Paused {
            State::Paused
        } else {
            State::Waiting
        };
        Ok(Status::waiting(
            zone,
            state,
            ahead,
            eta(ahead, &observed, &zone.config.limits),
            joined_at,
            now,
        ))
    }

    fn visitor_claims(&self, zone: &Zone, visitor: VisitorId, now: u64) -> Claims {
        Claims {
            iss: self.tokens.issuer().to_string(),
            typ: TokenKind::Visitor,
            zone: zone.config.name.clone(),
            vid: visitor,
            rank: now,
            iat: now / 1_000,
            exp: (now + self.visitor_ttl.as_millis() as u64) / 1_000,
            adm: None,
        }
    }

    /// A new place in line: visitor claims with rank = now, and the cookie that carries them.
    pub(super) fn mint_place(&self, zone: &Zone, now: u64) -> (Claims, String) {
        let claims = self.visitor_claims(zone, VisitorId::random(), now);
        let cookie = cookie::set(
            &zone.cookie,
            &self.tokens.sign(&claims),
            self.visitor_ttl.as_secs(),
            self.cookie_secure,
        );
        (claims, cookie)
    }

    /// A newcomer takes a place in line: a visitor token with rank = now and a queue entry.
    /// If `may_enter` and the zone looks quiet, the node runs an exchanger tick at once, and a
    /// newcomer who is first in line walks straight in. Otherwise, the waiting page. If the
    /// store fails, the zone's policy applies; fail-closed zones still hand out the token,
    /// since the place is in it.
    pub(super) async fn join(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        now: u64,
        may_enter: bool,
    ) -> (&'static str, Outcome) {
        let name = zone.config.name.as_str();
        let (claims, token) = self.mint_place(zone, now);
        let key = claims.queue_key();
        let touched = self.store.touch(name, key, now);
        if self.call(name, "touch", touched).await.is_err() {
            return self.store_failed(zone, req, now, Some(token));
        }
        let quiet = self
            .cached(name)
            .is_none_or(|s| s.looks_quiet(&zone.config.limits, now));
        if may_enter && quiet {
            // Joins still being written elsewhere get the time to land before this one goes in.
            let settle = self.exchanger.settle();
            if !settle.is_zero() {
                tokio::time::sleep(settle).await;
            }
            let tick = self.exchanger.tick_named(name, Via::Join);
            // A failed tick costs nothing: the newcomer is in line and the next tick sees them.
            if let Ok(report) = self.call(name, "tick", tick).await {
                // What it committed, or what another tick committed just before it.
                if let Some(state) = report.latest {
                    self.remember(name, state);
                }
            }
            if key <= self.cursor(zone) {
                if let Ok(Some(Place::Admitted { token, visitor, .. })) =
                    self.claim(zone, &claims, now).await
                {
                    let forward = Outcome::Forward(Forward {
                        upstream: zone.config.upstream.clone(),
                        session: Some((zone.config.name.clone(), visitor)),
                        queue_ms: Some(0),
                        set_cookie: Some(token),
                    });
                    return ("admit", forward);
                }
            }
        }
        match self.waiting_status(zone, key, now, now).await {
            Ok(status) => (
                "join",
                self.reply(zone, req, zone.config.waiting_status, &status, Some(token)),
            ),
            Err(_) => self.store_failed(zone, req, now, Some(token)),
        }
    }

    /// Extends an active session: moves its slot and returns the new access cookie.
    pub(super) async fn renew(&self, zone: &Zone, claims: &Claims, now: u64) -> Option<String> {
        let name = zone.config.name.as_str();
        let to = bucket_of(now + zone.config.limits.session_ttl.as_millis() as u64);
        let renew = self.store.renew(name, claims.vid, claims.exp, to, now);
        match self.call(name, "renew", renew).await {
            Ok(true) => Some(self.access_cookie(zone, claims, to, claims.adm.unwrap_or(now), now)),
            // Already renewed by a parallel request, or the store is down: keep the old token.
            _ => None,
        }
    }

    /// The origin is done with `visitor` (`Usher-Command: release`): frees their slot and
    /// revokes their token. Returns the `Set-Cookie` that deletes it.
    pub async fn release(&self, zone_name: &str, visitor: VisitorId) -> Option<String> {
        let zone = self.zones.by_name(zone_name)?;
        let now = self.clock.now_ms();
        let release = self.store.release(zone_name, visitor, now);
        if let Ok(Some(until)) = self.call(zone_name, "release", release).await {
            self.revoked.insert(visitor, until);
            self.requests.inc(zone.index, "release");
        }
        Some(cookie::clear(&zone.cookie, self.cookie_secure))
    }
}
