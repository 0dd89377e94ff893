//! The per-client limits of [`crate::defence`] applied to requests: a newcomer over a limit gets
//! a `429` (the page, or JSON for scripts and apps, with `Retry-After`) and no place; a token
//! used from more than `session_clients` addresses is revoked; event streams are counted.

use super::{Outcome, Reply, RequestFacts, Room};
use crate::admission::VisitorId;
use crate::defence::{Direct, Refused, StreamPermit};
use crate::gate::TokenCheck;
use crate::page::{self, origin_error};
use crate::request::client::block_of;
use crate::token::{Claims, Rejection};
use crate::zone::Zone;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

/// How often the records of clients that limit nothing any more are dropped (ms).
const SWEEP_EVERY_MS: u64 = 10_000;

impl Room {
    /// Whom the per-client limits count `req` as in `zone`: its address block. `None` when the
    /// request carries no address (tests only).
    pub(super) fn client_of(&self, zone: &Zone, req: &RequestFacts<'_>) -> Option<IpAddr> {
        let rules = &zone.config.defence;
        req.client
            .map(|ip| block_of(ip, rules.client_block_v4, rules.client_block_v6))
    }

    /// Counts a new place for `visitor` against the client of `req`, or says why it may not
    /// have one.
    pub(super) fn take_place(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        visitor: VisitorId,
        now: u64,
    ) -> Result<(), Refused> {
        let Some(client) = self.client_of(zone, req) else {
            return Ok(());
        };
        let lapse_ms = zone.config.limits.abandon_after.as_millis() as u64;
        let rules = &zone.config.defence;
        self.clients
            .join(zone.index, client, visitor, rules, lapse_ms, now)
    }

    /// The place of `visitor` ended: they are in.
    pub(super) fn place_done(&self, zone: &Zone, req: &RequestFacts<'_>, visitor: VisitorId) {
        if let Some(client) = self.client_of(zone, req) {
            self.clients.done(zone.index, client, visitor);
        }
    }

    /// The session the client of `req` walked straight into, while it lasts and was not
    /// released: a client that keeps no cookies gets it again instead of another slot.
    pub(super) fn direct_session(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        now: u64,
    ) -> Option<Direct> {
        let client = self.client_of(zone, req)?;
        let direct = self.clients.direct(zone.index, client, now)?;
        (!self.is_revoked(direct.visitor, now)).then_some(direct)
    }

    /// Remembers the session the client of `req` walked straight into.
    pub(super) fn remember_direct(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        direct: Direct,
        now: u64,
    ) {
        if let Some(client) = self.client_of(zone, req) {
            let rules = &zone.config.defence;
            self.clients
                .set_direct(zone.index, client, direct, rules, now);
        }
    }

    /// The `429` for a client over a limit, counted by reason.
    pub(super) fn limited(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        refused: Refused,
    ) -> Outcome<'_> {
        Outcome::Reply(self.limited_reply(zone, req, refused))
    }

    fn limited_reply(&self, zone: &Zone, req: &RequestFacts<'_>, refused: Refused) -> Reply {
        let reason = refused.reason();
        tracing::debug!(zone = %zone.config.name, reason, client = ?req.client, "client limited");
        self.metrics
            .client_refusals
            .with_label_values(&[&zone.config.name, reason])
            .inc();
        let retry_after = refused.retry_after_s();
        let reply = if req.wants_json || !req.shows_pages {
            Reply::fresh(
                429,
                "application/json",
                origin_error::limited_json(reason, retry_after),
            )
        } else {
            let lang = page::negotiate(req.accept_language);
            let html = origin_error::limited_page(reason, &zone.config.strings, lang, retry_after);
            Reply {
                vary: Some("Accept-Language"),
                ..Reply::fresh(429, "text/html; charset=utf-8", html.into_bytes())
            }
        };
        Reply {
            retry_after: Some(retry_after),
            ..reply
        }
    }

    /// Counts an event stream for the client of `req`, or the `429` that sends the page back
    /// to polling.
    pub(super) fn open_stream(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        now: u64,
    ) -> Result<Option<StreamPermit<'_>>, Reply> {
        let Some(client) = self.client_of(zone, req) else {
            return Ok(None);
        };
        let rules = &zone.config.defence;
        match self
            .clients
            .open_stream(zone.index, client, rules, self.max_event_streams, now)
        {
            Ok(permit) => {
                self.metrics
                    .event_streams_open
                    .set(i64::from(self.clients.open_streams()));
                Ok(Some(permit))
            }
            Err(refused) => Err(self.limited_reply(zone, req, refused)),
        }
    }

    /// What the checked token of `req` means once the addresses it came from are counted: a
    /// place or session seen from more than `session_clients` addresses is revoked on this node
    /// at once (and in the store at the next tick) and refused as [`Rejection::Shared`]; a
    /// place seen again stays live for the client limits.
    pub(super) fn count_use(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        check: TokenCheck,
        now: u64,
    ) -> TokenCheck {
        let (Some(address), Some(claims)) = (req.client, check.claims()) else {
            return check;
        };
        let claims: &Claims = claims;
        let limit = zone.config.defence.session_clients;
        if self
            .sharing
            .used_from(zone.index, claims.vid, address, limit, claims.exp)
        {
            if let (TokenCheck::Visitor(_), Some(client)) = (&check, self.client_of(zone, req)) {
                self.clients.seen(zone.index, client, claims.vid, now);
            }
            return check;
        }
        tracing::info!(zone = %zone.config.name, visitor = %claims.vid, "token used from too many addresses; revoked");
        self.metrics
            .tokens_shared
            .with_label_values(&[&zone.config.name])
            .inc();
        self.revoked.insert(claims.vid, claims.exp);
        if let TokenCheck::Access(_) = check {
            self.to_release
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((zone.config.name.clone(), claims.vid));
        }
        TokenCheck::Rejected(Rejection::Shared)
    }

    /// Releases in the store the sessions revoked for sharing (so the fleet refuses them and
    /// their slots free), and forgets client records that limit nothing any more.
    pub(super) async fn settle_limits(&self, now: u64) {
        let pending =
            std::mem::take(&mut *self.to_release.lock().unwrap_or_else(|e| e.into_inner()));
        for (zone, visitor) in pending {
            // A failure is counted and logged by `call`; the node refuses the token already.
            let _ = self.end_session(&zone, visitor, now, "revoked").await;
        }
        // Streams end without telling anyone: the gauge is brought up to date every tick.
        self.metrics
            .event_streams_open
            .set(i64::from(self.clients.open_streams()));
        let last = self.swept_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) < SWEEP_EVERY_MS {
            return;
        }
        self.swept_at.store(now, Ordering::Relaxed);
        let zones = self.zones.current();
        self.clients.sweep(
            |index| {
                let zone = zones.get(index)?;
                let lapse_ms = zone.config.limits.abandon_after.as_millis() as u64;
                Some((&zone.config.defence, lapse_ms))
            },
            now,
        );
        self.sharing.sweep(now / 1_000);
        self.forget_used_challenges(now);
    }
}
