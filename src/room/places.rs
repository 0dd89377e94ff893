//! Places in line and slots: joining (and, in a quiet zone, an exchanger tick at once so the
//! newcomer walks straight in), waiting, claiming a slot when the turn comes, session renewal and
//! release. Slots change only through the store's per-visitor operations; the zone state only
//! through the exchanger.

use super::status;
use super::{Forward, Outcome, RequestFacts, Room, Session};
use crate::admission::{bucket_of, eta, Claim, QueueKey, VisitorId};
use crate::config::Mode;
use crate::defence::Direct;
use crate::event_log::Event;
use crate::exchanger::Via;
use crate::page::{State, Status};
use crate::store::StoreError;
use crate::token::{cookie, Claims, TokenKind};
use crate::zone::Zone;

/// A visitor whose turn came and who now holds a session.
#[derive(Debug)]
pub(super) struct Admitted {
    /// `Set-Cookie` value with the access token.
    pub cookie: String,
    /// The visitor.
    pub visitor: VisitorId,
    /// Their arrival.
    pub rank: u64,
    /// When they were admitted.
    pub admitted_at_ms: u64,
    /// The second their slot expires.
    pub bucket: u64,
}

impl Admitted {
    /// The session without its cookie, for the client's record of it.
    pub fn direct(&self) -> Direct {
        Direct {
            visitor: self.visitor,
            rank: self.rank,
            admitted_at_ms: self.admitted_at_ms,
            bucket: self.bucket,
        }
    }

    /// Milliseconds they waited.
    pub fn queue_ms(&self) -> u64 {
        self.admitted_at_ms.saturating_sub(self.rank)
    }

    /// The session to forward with, and the cookie to set.
    pub fn into_session(self, zone: &Zone) -> (Session, String) {
        let session = Session {
            zone: zone.config.name.clone(),
            visitor: self.visitor,
            rank: self.rank,
            admitted_at_ms: self.admitted_at_ms,
            bucket: self.bucket,
        };
        (session, self.cookie)
    }
}

/// Who a newcomer's place is for: a fresh visitor now, or the visitor and arrival a solved
/// puzzle carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Arrival {
    /// The visitor.
    pub visitor: VisitorId,
    /// Their arrival (the place's rank).
    pub rank: u64,
}

/// What became of a newcomer.
#[derive(Debug)]
pub(super) enum Joined {
    /// They walked straight in.
    Admitted(Admitted),
    /// They have a place: their status, and the cookie that carries the place.
    Waiting {
        /// Their status (boxed: the enum's other variants are small).
        status: Box<Status>,
        /// `Set-Cookie` with the visitor token.
        cookie: String,
    },
    /// Their client is over a limit: no place.
    Limited(crate::defence::Refused),
    /// The store failed; the place is in the cookie all the same.
    StoreFailed {
        /// `Set-Cookie` with the visitor token.
        cookie: String,
    },
}

/// Where a visitor with a visitor token stands after asking.
#[derive(Debug)]
pub(super) enum Place {
    /// Their turn came: here is their session.
    Admitted(Admitted),
    /// Still in line.
    Waiting(Status),
    /// Their session was released: the place is used up.
    Ended,
}

impl Room {
    /// The `Set-Cookie` of an access token for `visitor` (arrived at `rank`, admitted at `adm`)
    /// whose slot expires at second `bucket`.
    pub(super) fn access_cookie(
        &self,
        zone: &Zone,
        visitor: VisitorId,
        rank: u64,
        bucket: u64,
        adm: u64,
        now: u64,
    ) -> String {
        let claims = Claims {
            iss: self.tokens.issuer().to_string(),
            typ: TokenKind::Access,
            zone: zone.config.name.clone(),
            vid: visitor,
            rank,
            iat: now / 1_000,
            exp: bucket,
            adm: Some(adm),
            pri: false,
        };
        let max_age = bucket.saturating_sub(now / 1_000);
        cookie::set(
            &zone.cookie,
            &self.tokens.sign(&claims),
            max_age,
            self.cookie_secure,
        )
    }

    /// A pre-queue member whose place was just drawn takes it now (a heartbeat at the drawn
    /// key); positions are shown once everyone had the chance.
    pub(super) async fn take_drawn(
        &self,
        zone: &Zone,
        key: QueueKey,
        claims: &Claims,
        now: u64,
    ) -> Result<Place, StoreError> {
        let name = zone.config.name.as_str();
        self.call(name, "touch", self.store.touch(name, key, now))
            .await?;
        let status = status::without_place(zone, State::Prequeue, now);
        Ok(Place::Waiting(status.waited_since(claims.rank, now)))
    }

    /// A visitor the cursor passed claims their slot; if none was reserved for them (it lapsed,
    /// they were away, or their join landed after the tick that passed them) they wait again,
    /// first in line.
    pub(super) async fn claim_or_wait(
        &self,
        zone: &Zone,
        key: QueueKey,
        claims: &Claims,
        now: u64,
    ) -> Result<Place, StoreError> {
        if let Some(place) = self.claim(zone, claims, now).await? {
            // Every queued visitor's admission passes here (page load or status poll).
            if let Place::Admitted(admitted) = &place {
                self.metrics
                    .queue_wait
                    .with_label_values(&[&zone.config.name])
                    .observe(admitted.queue_ms() as f64 / 1_000.0);
                let via = if claims.pri { "priority" } else { "queue" };
                self.log_admission(&zone.config.name, admitted, via, now);
            }
            return Ok(place);
        }
        self.wait_in_line(zone, key, claims.rank, now).await
    }

    /// Claims the slot of a visitor the cursor passed. `None`: no slot was reserved for them.
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
            } => Some(Place::Admitted(Admitted {
                cookie: self.access_cookie(
                    zone,
                    claims.vid,
                    claims.rank,
                    bucket,
                    admitted_at_ms,
                    now,
                ),
                visitor: claims.vid,
                rank: claims.rank,
                admitted_at_ms,
                bucket,
            })),
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
        Ok(status::waiting(
            zone,
            state,
            ahead,
            eta(ahead, &observed, &zone.config.limits),
            joined_at,
            now,
        ))
    }

    /// Visitor claims for `visitor` arriving at `rank` (a newcomer now, or the arrival a solved
    /// puzzle carries).
    pub(super) fn visitor_claims(
        &self,
        zone: &Zone,
        visitor: VisitorId,
        rank: u64,
        now: u64,
    ) -> Claims {
        Claims {
            iss: self.tokens.issuer().to_string(),
            typ: TokenKind::Visitor,
            zone: zone.config.name.clone(),
            vid: visitor,
            rank,
            iat: now / 1_000,
            exp: (now + self.visitor_ttl.as_millis() as u64) / 1_000,
            adm: None,
            pri: false,
        }
    }

    /// A place in line for `arrival` (a fresh visitor at rank = now when `None`), and the
    /// cookie that carries it.
    pub(super) fn mint_place(
        &self,
        zone: &Zone,
        arrival: Option<Arrival>,
        now: u64,
    ) -> (Claims, String) {
        let Arrival { visitor, rank } = arrival.unwrap_or(Arrival {
            visitor: VisitorId::random(),
            rank: now,
        });
        let claims = self.visitor_claims(zone, visitor, rank, now);
        let cookie = self.place_cookie(zone, &claims);
        (claims, cookie)
    }

    /// The `Set-Cookie` that carries the place `claims` describe.
    pub(super) fn place_cookie(&self, zone: &Zone, claims: &Claims) -> String {
        cookie::set(
            &zone.cookie,
            &self.tokens.sign(claims),
            self.visitor_ttl.as_secs(),
            self.cookie_secure,
        )
    }

    /// Logs an admission, `direct`, from the line (`queue`) or a priority place, to
    /// `[events_log]`.
    fn log_admission(&self, zone: &str, admitted: &Admitted, via: &'static str, now: u64) {
        self.events.record(now, || Event::Admitted {
            zone: zone.to_string(),
            visitor: admitted.visitor.to_string(),
            rank_ms: admitted.rank,
            waited_ms: admitted.queue_ms(),
            via,
        });
    }

    /// A newcomer takes a place in line (see [`Room::place_newcomer`]) and gets the outcome
    /// for the request: forwarded if they walked straight in, else the waiting page with
    /// their place, a `429` over a client limit, or the zone's store-error policy.
    pub(super) async fn join(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        now: u64,
        may_enter: bool,
    ) -> (&'static str, Outcome<'_>) {
        match self.place_newcomer(zone, req, now, may_enter, None).await {
            Joined::Admitted(admitted) => {
                let queue_ms = admitted.queue_ms();
                let (session, cookie) = admitted.into_session(zone);
                let forward = Outcome::Forward(Forward {
                    upstream: zone.config.upstream.clone(),
                    session: Some(session),
                    queue_ms: Some(queue_ms),
                    set_cookie: Some(cookie),
                });
                ("admit", forward)
            }
            Joined::Waiting { status, cookie } => (
                "join",
                self.reply(zone, req, zone.config.waiting_status, &status, Some(cookie)),
            ),
            Joined::Limited(refused) => ("limited", self.limited(zone, req, refused)),
            Joined::StoreFailed { cookie } => self.store_failed(zone, req, now, Some(cookie)),
        }
    }

    /// A newcomer (arriving as `arrival`, else now as a fresh visitor) takes a place in line,
    /// if their client may have another ([`crate::defence`]). If `may_enter` and the zone
    /// looks quiet, the place is written at once and the node runs an exchanger tick, and a
    /// newcomer who is first in line walks straight in (a client that keeps no cookies and
    /// walked in before gets that session again, not another slot). Otherwise the place is
    /// only in the token: it is written to the store when its holder comes back (the page's
    /// event stream, a poll, a reload), at the rank the token carries. A place taken and
    /// thrown away costs no write and holds up nobody. If the store fails, a fail-closed zone
    /// still hands out the token, since the place is in it.
    pub(super) async fn place_newcomer(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        now: u64,
        may_enter: bool,
        arrival: Option<Arrival>,
    ) -> Joined {
        let name = zone.config.name.as_str();
        let quiet = self
            .cached(name)
            .is_none_or(|s| s.looks_quiet(&zone.config.limits, now));
        let straight_in = may_enter && quiet;
        if straight_in {
            if let Some(direct) = self.direct_session(zone, req, now) {
                return Joined::Admitted(self.admitted_again(zone, direct, now));
            }
        }
        let arrival = match self.newcomer_arrival(zone, req, arrival, now).await {
            Ok(arrival) => arrival,
            Err(refused) => return Joined::Limited(refused),
        };
        let (claims, token) = self.mint_place(zone, Some(arrival), now);
        let key = claims.queue_key();
        if straight_in {
            let touched = self.store.touch(name, key, now);
            if self.call(name, "touch", touched).await.is_err() {
                return Joined::StoreFailed { cookie: token };
            }
            if let Some(admitted) = self.enter_if_first(zone, &claims, now).await {
                self.place_done(zone, req, claims.vid);
                self.log_admission(name, &admitted, "direct", now);
                self.remember_direct(zone, req, admitted.direct(), now);
                return Joined::Admitted(admitted);
            }
        }
        match self.waiting_status(zone, key, claims.rank, now).await {
            Ok(status) => {
                self.metrics
                    .eta_shown
                    .with_label_values(&[name])
                    .observe(status.eta_seconds as f64);
                self.events.record(now, || Event::Joined {
                    zone: name.to_string(),
                    visitor: claims.vid.to_string(),
                    rank_ms: claims.rank,
                    eta_s: status.eta_seconds,
                });
                Joined::Waiting {
                    status: Box::new(status),
                    cookie: token,
                }
            }
            Err(_) => Joined::StoreFailed { cookie: token },
        }
    }

    /// Who a newcomer's place is for, once their client's limits allow one: the identity's
    /// place (at its first arrival) for a visitor the shop named, else `arrival` (a solved
    /// challenge's), else a fresh visitor now. The limits come first, so a refused flood costs
    /// no signature and no store call.
    async fn newcomer_arrival(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        arrival: Option<Arrival>,
        now: u64,
    ) -> Result<Arrival, crate::defence::Refused> {
        let rank = arrival.map_or(now, |a| a.rank);
        let identity = self.identity_of(zone, req, now);
        let visitor = match (&identity, arrival) {
            (Some(identity), _) => identity.vid,
            (None, Some(arrival)) => arrival.visitor,
            (None, None) => VisitorId::random(),
        };
        self.take_place(zone, req, visitor, now)?;
        let rank = match identity {
            Some(_) => self.identity_rank(zone, visitor, rank, now).await,
            None => rank,
        };
        Ok(Arrival { visitor, rank })
    }

    /// A newcomer during a scheduled sale's pre-queue: a place (one lottery ticket per
    /// identity, too) and the countdown, as the status and the cookie that carries the place;
    /// nothing is written until the draw.
    pub(super) async fn prequeue_newcomer(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        arrival: Option<Arrival>,
        now: u64,
    ) -> Result<(Status, String), crate::defence::Refused> {
        let arrival = self.newcomer_arrival(zone, req, arrival, now).await?;
        let (claims, cookie) = self.mint_place(zone, Some(arrival), now);
        let status =
            status::without_place(zone, State::Prequeue, now).waited_since(claims.rank, now);
        Ok((status, cookie))
    }

    /// Runs a tick for a newcomer in a quiet zone and claims their slot if it admitted them.
    async fn enter_if_first(&self, zone: &Zone, claims: &Claims, now: u64) -> Option<Admitted> {
        let name = zone.config.name.as_str();
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
        if claims.queue_key() > self.cursor(zone) {
            return None;
        }
        match self.claim(zone, claims, now).await {
            Ok(Some(Place::Admitted(admitted))) => Some(admitted),
            _ => None,
        }
    }

    /// The session a client without cookies walked into before, handed out again: the same
    /// visitor and slot, no store write.
    fn admitted_again(&self, zone: &Zone, direct: Direct, now: u64) -> Admitted {
        Admitted {
            cookie: self.access_cookie(
                zone,
                direct.visitor,
                direct.rank,
                direct.bucket,
                direct.admitted_at_ms,
                now,
            ),
            visitor: direct.visitor,
            rank: direct.rank,
            admitted_at_ms: direct.admitted_at_ms,
            bucket: direct.bucket,
        }
    }

    /// Extends an active session: moves its slot and returns the new access cookie and the
    /// second the slot now expires.
    pub(super) async fn renew(
        &self,
        zone: &Zone,
        claims: &Claims,
        now: u64,
    ) -> Option<(String, u64)> {
        let name = zone.config.name.as_str();
        let to = bucket_of(now + zone.config.limits.session_ttl.as_millis() as u64);
        let renew = self.store.renew(name, claims.vid, claims.exp, to, now);
        match self.call(name, "renew", renew).await {
            Ok(true) => {
                let adm = claims.adm.unwrap_or(now);
                let cookie = self.access_cookie(zone, claims.vid, claims.rank, to, adm, now);
                Some((cookie, to))
            }
            // Already renewed by a parallel request, or the store is down: keep the old token.
            _ => None,
        }
    }

    /// The origin is done with `visitor` (`Usher-Command: release`): frees their slot and
    /// revokes their token. Returns the `Set-Cookie` that deletes it.
    pub async fn release(&self, zone_name: &str, visitor: VisitorId) -> Option<String> {
        let zone = self.zone_named(zone_name)?;
        let now = self.clock.now_ms();
        if let Ok(Some(_)) = self.end_session(zone_name, visitor, now, "released").await {
            self.requests.inc(zone.index, "release");
            self.events.record(now, || Event::Released {
                zone: zone_name.to_string(),
                visitor: visitor.to_string(),
            });
        }
        Some(cookie::clear(&zone.cookie, self.cookie_secure))
    }

    /// Frees `visitor`'s slot in the store and refuses their token on this node (the change
    /// feed tells the others); `how` is the `usher_sessions_ended_total` label (one of
    /// [`crate::metrics::SESSION_ENDINGS`]). `Ok(None)`: they held no session.
    pub(super) async fn end_session(
        &self,
        zone_name: &str,
        visitor: VisitorId,
        now: u64,
        how: &'static str,
    ) -> Result<Option<u64>, StoreError> {
        let release = self.store.release(zone_name, visitor, now);
        let until = self.call(zone_name, "release", release).await?;
        if let Some(until) = until {
            self.revoked.insert(visitor, until);
            self.metrics
                .sessions_ended
                .with_label_values(&[zone_name, how])
                .inc();
        }
        Ok(until)
    }
}
