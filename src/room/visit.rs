//! A request to a zone: the gate decides ([`crate::gate::decide`]), this carries it out. Every
//! outcome has a label for `usher_gate_requests_total`.

use super::places::Place;
use super::status;
use super::{Forward, Outcome, RequestFacts, Room, Session};
use crate::config::Mode;
use crate::gate::Decision;
use crate::page::State;
use crate::store::StoreError;
use crate::zone::Zone;

impl Room {
    /// What happens to a request to `zone`.
    pub(super) async fn visit(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        now: u64,
    ) -> (&'static str, Outcome<'_>) {
        let (zone, phase) = zone.at(now);
        // Staff and monitors skip the line (and take no slot): decided before any token.
        if let Some(bypass) = &zone.config.bypass {
            if bypass.lets_in(req.client, req.bypass) {
                return (
                    "bypass",
                    Outcome::Forward(Forward::plain(&zone.config.upstream)),
                );
            }
        }
        let token = self.check(zone, req, now);
        let decision = self.decide(zone, phase, &token, req.preflight, now);
        let forward = |session: Option<Session>, queue_ms, set_cookie| {
            Outcome::Forward(Forward {
                upstream: zone.config.upstream.clone(),
                session,
                queue_ms,
                set_cookie,
            })
        };
        // A priority link: whoever would wait (or start waiting) takes a priority place; one
        // who holds one already (the page reloaded at the link's URL) keeps it.
        let would_wait = matches!(
            decision,
            Decision::Join { .. } | Decision::Rejoin | Decision::Challenge | Decision::Wait(_)
        );
        let has_priority = token.claims().is_some_and(|c| c.pri);
        if would_wait && !has_priority {
            if let Some(code) = super::endpoints::query_param(req.query, super::PRIORITY_PARAM) {
                if let Some(redeemed) = self.redeem(zone, req, code, now).await {
                    return redeemed;
                }
            }
        }
        if matches!(
            decision,
            Decision::Join { .. } | Decision::JoinPrequeue | Decision::Rejoin | Decision::Challenge
        ) {
            self.note_newcomer(zone, now);
        }
        let claims = token.claims().cloned();
        let placed: Result<Place, StoreError> = match (decision, claims) {
            (Decision::Preflight, _) => return ("preflight", forward(None, None, None)),
            (Decision::Passthrough, _) => return ("passthrough", forward(None, None, None)),
            (Decision::Closed, _) => {
                let status = status::without_place(zone, State::Closed, now);
                return ("closed", self.reply(zone, req, 503, &status, None));
            }
            (Decision::Ended, _) => {
                let status = status::without_place(zone, State::Ended, now);
                return ("ended", self.reply(zone, req, 503, &status, None));
            }
            (Decision::Join { may_enter }, _) => return self.join(zone, req, now, may_enter).await,
            (Decision::Challenge, _) => return self.challenge(zone, req, now),
            // A place passed long ago is void: its holder starts again at the back.
            (Decision::Rejoin, _) => {
                let may_enter = zone.config.mode == Mode::Auto;
                return self.join(zone, req, now, may_enter).await;
            }
            (Decision::JoinPrequeue, _) => {
                return match self.prequeue_newcomer(zone, req, None, now).await {
                    Ok((status, cookie)) => {
                        let code = zone.config.waiting_status;
                        let reply = self.reply(zone, req, code, &status, Some(cookie));
                        ("prequeue", reply)
                    }
                    Err(refused) => ("limited", self.limited(zone, req, refused)),
                };
            }
            (Decision::Forward { renew }, Some(claims)) => {
                let renewed = if renew {
                    self.renew(zone, &claims, now).await
                } else {
                    None
                };
                let (set_cookie, bucket) = match renewed {
                    Some((cookie, bucket)) => (Some(cookie), bucket),
                    None => (None, claims.exp),
                };
                let admitted_at_ms = claims.adm.unwrap_or(claims.rank);
                let session = Session {
                    zone: zone.config.name.clone(),
                    visitor: claims.vid,
                    rank: claims.rank,
                    admitted_at_ms,
                    bucket,
                };
                let queue_ms = claims.adm.map(|adm| adm.saturating_sub(claims.rank));
                return ("forward", forward(Some(session), queue_ms, set_cookie));
            }
            (Decision::Countdown, Some(claims)) => Ok(Place::Waiting(
                status::without_place(zone, State::Prequeue, now).waited_since(claims.rank, now),
            )),
            (Decision::TakeDrawn(key), Some(claims)) => {
                self.take_drawn(zone, key, &claims, now).await
            }
            (Decision::Claim(key), Some(claims)) => {
                self.claim_or_wait(zone, key, &claims, now).await
            }
            (Decision::Wait(key), Some(claims)) => {
                self.wait_in_line(zone, key, claims.rank, now).await
            }
            // A decision about a token the request did not carry cannot happen; the newcomer's
            // way is the safe one.
            (_, None) => return self.join(zone, req, now, false).await,
        };
        match placed {
            Ok(Place::Admitted(admitted)) => {
                self.place_done(zone, req, admitted.visitor);
                let queue_ms = admitted.queue_ms();
                let (session, cookie) = admitted.into_session(zone);
                (
                    "claim",
                    forward(Some(session), Some(queue_ms), Some(cookie)),
                )
            }
            Ok(Place::Waiting(status)) => (
                "wait",
                self.reply(zone, req, zone.config.waiting_status, &status, None),
            ),
            // Their session was released: this place is used up, they start again.
            Ok(Place::Ended) => {
                let may_enter = zone.config.mode == Mode::Auto;
                self.join(zone, req, now, may_enter).await
            }
            // A visitor who has a place keeps it (it is in their token).
            Err(_) => self.store_failed(zone, req, now, None),
        }
    }
}
