//! The gate's decision as `/_usher/status` and `/_usher/events` see it: the same table as the
//! request path ([`crate::gate::decide`]), read without joining anyone. A visitor whose turn
//! came claims their slot here too, so a page that only polls or listens can go straight in.

use super::places::Place;
use super::status;
use super::Room;
use crate::gate::{Decision, TokenCheck};
use crate::page::{State, Status};
use crate::token::Claims;
use crate::zone::Zone;

/// What a visitor sees of a decision.
#[derive(Debug)]
pub(super) struct Seen {
    /// The `usher_gate_requests_total` label: `claim` when a slot was claimed, else `status`.
    pub label: &'static str,
    /// Their status.
    pub status: Status,
    /// The access-token cookie of a claim.
    pub set_cookie: Option<String>,
    /// Whether the place's heartbeat was written.
    pub touched: bool,
}

impl Room {
    /// What the holder of `token` sees of `decision` in `zone` (as it runs now). `touch`: write
    /// the place's heartbeat (the status endpoint always does; an event stream every third of
    /// `abandon_after`).
    pub(super) async fn look(
        &self,
        zone: &Zone,
        token: &TokenCheck,
        decision: Decision,
        now: u64,
        touch: bool,
    ) -> Seen {
        let seen = |status: Status| Seen {
            label: "status",
            status,
            set_cookie: None,
            touched: false,
        };
        let plain = |state: State| seen(status::without_place(zone, state, now));
        let claims: Option<&Claims> = token.claims().map(|c| &**c);
        let placed = match (decision, claims) {
            (Decision::Passthrough | Decision::Forward { .. }, _) => return plain(State::Admitted),
            (Decision::Closed, _) => return plain(State::Closed),
            (Decision::Ended, _) => return plain(State::Ended),
            (Decision::Countdown, Some(claims)) => {
                let status = status::without_place(zone, State::Prequeue, now);
                return seen(status.waited_since(claims.rank, now));
            }
            (Decision::TakeDrawn(key), Some(claims)) => {
                self.take_drawn(zone, key, claims, now).await
            }
            (Decision::Claim(key), Some(claims)) => {
                self.claim_or_wait(zone, key, claims, now).await
            }
            (Decision::Wait(key), Some(claims)) if touch => {
                self.wait_in_line(zone, key, claims.rank, now).await
            }
            (Decision::Wait(key), Some(claims)) => {
                let status = self.waiting_status(zone, key, claims.rank, now).await;
                return match status {
                    Ok(status) => seen(status),
                    Err(_) => seen(status::degraded(zone, now)),
                };
            }
            // A newcomer (or a preflight): no place to show; the page gets one by loading.
            _ => return plain(State::NotQueued),
        };
        match placed {
            Ok(Place::Admitted(admitted)) => Seen {
                label: "claim",
                status: status::without_place(zone, State::Admitted, now),
                set_cookie: Some(admitted.cookie),
                touched: true,
            },
            Ok(Place::Waiting(status)) => Seen {
                touched: true,
                ..seen(status)
            },
            Ok(Place::Ended) => plain(State::NotQueued),
            Err(_) => seen(status::degraded(zone, now)),
        }
    }
}
