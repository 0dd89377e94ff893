//! Places in line and slots: joining, waiting, claiming a slot when the turn comes, direct
//! admission in quiet times, session renewal and release. Every write is a compare-and-set
//! through [`update_zone`]; the record written goes straight into the edge cache.

use super::status::{State, Status};
use super::{Outcome, RequestFacts, Room};
use crate::admission::{eta, ClaimOutcome, VisitorId};
use crate::config::Mode;
use crate::store::{update_zone, StoreError, ZoneRecord};
use crate::token::{cookie, Claims, TokenKind};
use crate::zone::Zone;
use std::sync::Arc;

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
}

impl Room {
    /// Applies `change` to `zone`'s record and caches the result.
    async fn update<T>(
        &self,
        zone: &Zone,
        op: &'static str,
        change: impl FnMut(&mut ZoneRecord) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        let name = zone.config.name.as_str();
        let updated = self
            .call(
                name,
                op,
                update_zone(
                    self.store.as_ref(),
                    name,
                    || self.initial_record(zone),
                    change,
                ),
            )
            .await?;
        Ok(updated.map(|(outcome, record)| {
            self.remember(name, Arc::new(record));
            outcome
        }))
    }

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

    /// Where the holder of a valid visitor token stands; claims their slot if their turn came.
    pub(super) async fn place(
        &self,
        zone: &Zone,
        claims: &Claims,
        now: u64,
    ) -> Result<Place, StoreError> {
        let name = zone.config.name.as_str();
        let key = claims.queue_key();
        let limits = zone.config.limits;
        let cursor = self
            .cached(name)
            .map(|r| r.state.cursor)
            .unwrap_or_default();
        if key <= cursor {
            let claimed = self
                .update(zone, "claim", |record| {
                    Some(record.state.claim(&mut record.ledger, &key, &limits, now))
                })
                .await?;
            return Ok(match claimed {
                Some(ClaimOutcome::Granted {
                    bucket,
                    admitted_at_ms,
                }) => Place::Admitted {
                    token: self.access_cookie(zone, claims, bucket, admitted_at_ms, now),
                    queue_ms: admitted_at_ms.saturating_sub(claims.rank),
                    visitor: claims.vid,
                },
                // First in line: the next free slot is theirs.
                _ => Place::Waiting(Status::waiting(
                    zone,
                    State::Waiting,
                    0,
                    eta(0, 0.0, &limits),
                    now,
                )),
            });
        }
        // A heartbeat, and a re-join at the token's rank if the entry was lost.
        self.call(name, "touch", self.store.touch(name, key, now))
            .await?;
        let ahead = self
            .call(name, "ahead", self.store.ahead(name, cursor, key))
            .await?;
        let observed = self.cached(name).map_or(0.0, |r| r.state.observed_per_sec);
        let state = if zone.config.mode == Mode::Paused {
            State::Paused
        } else {
            State::Waiting
        };
        Ok(Place::Waiting(Status::waiting(
            zone,
            state,
            ahead,
            eta(ahead, observed, &limits),
            now,
        )))
    }

    /// In a quiet `auto` zone, admits a newcomer at once: returns their id and access cookie,
    /// or `None` if someone is waiting or there is no slot or rate allowance.
    pub(super) async fn admit_directly(
        &self,
        zone: &Zone,
        now: u64,
    ) -> Result<Option<(VisitorId, String)>, StoreError> {
        let name = zone.config.name.as_str();
        let limits = zone.config.limits;
        let cursor = self
            .cached(name)
            .map(|r| r.state.cursor)
            .unwrap_or_default();
        let seen_since = now.saturating_sub(limits.abandon_after.as_millis() as u64);
        let queued = self
            .call(
                name,
                "live_after",
                self.store.live_after(name, cursor, seen_since, 1),
            )
            .await?;
        if !queued.is_empty() {
            return Ok(None);
        }
        let visitor = VisitorId::random();
        let admitted = self
            .update(zone, "admit", |record| {
                record
                    .state
                    .admit_directly(&mut record.ledger, visitor, true, &limits, now)
            })
            .await?;
        Ok(admitted.map(|bucket| {
            self.metrics
                .admitted
                .with_label_values(&[name, "direct"])
                .inc();
            let claims = self.visitor_claims(zone, visitor, now);
            (visitor, self.access_cookie(zone, &claims, bucket, now, now))
        }))
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

    /// A newcomer queues: a visitor token with rank = now, a queue entry, the waiting page.
    /// If the store fails, the zone's policy applies; fail-closed zones still hand out the
    /// token, since the place is in it.
    pub(super) async fn join(&self, zone: &Zone, req: &RequestFacts<'_>, now: u64) -> Outcome {
        let (claims, token) = self.mint_place(zone, now);
        let status = match self.place(zone, &claims, now).await {
            Ok(Place::Waiting(status)) => status,
            // A fresh rank is never at or below the cursor; treat the impossible as waiting.
            Ok(Place::Admitted { .. }) => {
                Status::waiting(zone, State::Waiting, 0, Default::default(), now)
            }
            Err(_) => return self.store_failed(zone, req, now, Some(token)).1,
        };
        self.reply(zone, req, zone.config.waiting_status, &status, Some(token))
    }

    /// Extends an active session: moves its slot and returns the new access cookie.
    pub(super) async fn renew(&self, zone: &Zone, claims: &Claims, now: u64) -> Option<String> {
        let limits = zone.config.limits;
        let to = crate::admission::bucket_of(now + limits.session_ttl.as_millis() as u64);
        let moved = self
            .update(zone, "renew", |record| {
                record
                    .ledger
                    .renew_session(claims.vid, claims.exp, to)
                    .then_some(())
            })
            .await;
        match moved {
            Ok(Some(())) => {
                Some(self.access_cookie(zone, claims, to, claims.adm.unwrap_or(now), now))
            }
            // Already renewed by a parallel request, or the store is down: keep the old token.
            _ => None,
        }
    }

    /// The origin is done with `visitor` (`Usher-Command: release`): frees their slot and
    /// revokes their token. Returns the `Set-Cookie` that deletes it.
    pub async fn release(&self, zone_name: &str, visitor: VisitorId) -> Option<String> {
        let zone = self.zones.by_name(zone_name)?;
        let released = self
            .update(zone, "release", |record| {
                record.ledger.close_session(visitor).then_some(())
            })
            .await;
        if let Ok(Some(())) = released {
            self.requests.inc(zone.index, "release");
        }
        Some(cookie::clear(&zone.cookie, self.cookie_secure))
    }
}
