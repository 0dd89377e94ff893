//! `GET /_usher/events`: the visitor's status as Server-Sent Events, pushed when it changes.
//!
//! A stream wakes when the node's edge cache learns a new zone state (from its own exchanger or
//! the change feed), never on a per-visitor timer, so a node with 20,000 open pages reads the
//! store once per tick, not 20,000 times. What a wake costs is local: the position comes from the
//! store's position index (in memory on both stores). The stream only writes to the store to
//! keep the place alive (a heartbeat every third of `abandon_after`) and to claim the slot when
//! the cursor passes the visitor, so the page can go straight in.
//!
//! The shown position never goes up: a visitor who was passed while away and comes back goes in
//! ahead of the rest, which would push everyone behind them down by one. The stream keeps the
//! best position it (or, through `Last-Event-ID`, the previous connection) showed.

use super::Room;
use crate::defence::StreamPermit;
use crate::gate::TokenCheck;
use crate::page::{State, Status};
use crate::zone::Zone;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often an idle stream sends a comment, so proxies and load balancers keep it open and a
/// closed tab is noticed (the write fails).
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// How long one stream lasts before it ends and the browser opens a new one (`EventSource`
/// reconnects by itself after `retry`, carrying `Last-Event-ID`). A client that stopped
/// reading is noticed by the kernel only once its buffers fill, which a quiet stream never
/// does: this bounds how long such a client holds a descriptor.
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// An open event stream of one visitor.
pub struct EventStream<'r> {
    room: &'r Room,
    /// The zone as it ran at the last status (taken again from the room each time, so a
    /// reload or an operator's override reaches open pages).
    zone: Arc<Zone>,
    /// What the visitor's cookie held when the stream opened.
    token: TokenCheck,
    wake: watch::Receiver<u64>,
    /// Best position shown so far (0: none yet).
    best: u64,
    /// The id of the last event sent; an unchanged status is not sent again.
    last_id: Option<String>,
    /// When the stream last refreshed the visitor's place in the store (ms).
    touched_at: u64,
    /// Whether the next call must compute without waiting.
    due: bool,
    /// The stream said its last word (admitted, ended, closed, not queued).
    done: bool,
    /// When the stream ends on its own ([`MAX_AGE`]).
    ends_at: tokio::time::Instant,
    /// Counts the stream against its client's and the node's caps while it is open.
    _permit: Option<StreamPermit<'r>>,
}

impl std::fmt::Debug for EventStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("zone", &self.zone.config.name)
            .field("best", &self.best)
            .field("done", &self.done)
            .finish()
    }
}

impl<'r> EventStream<'r> {
    /// A stream for the holder of `token` in `zone`; `last_event_id` is the `Last-Event-ID`
    /// header of a reconnecting `EventSource`.
    pub(super) fn open(
        room: &'r Room,
        zone: Arc<Zone>,
        token: TokenCheck,
        last_event_id: Option<&str>,
        permit: Option<StreamPermit<'r>>,
    ) -> Self {
        EventStream {
            room,
            wake: room.zone_changes(&zone),
            zone,
            token,
            best: last_event_id.and_then(shown_position).unwrap_or(0),
            last_id: None,
            // The first status writes the place: a newcomer's page load did not (its place is
            // written once its holder comes back, and opening the stream is coming back).
            touched_at: 0,
            due: true,
            done: false,
            ends_at: tokio::time::Instant::now() + MAX_AGE,
            _permit: permit,
        }
    }
}

impl EventStream<'_> {
    /// The `retry:` preamble: how long a browser waits before reconnecting.
    pub fn preamble(&self) -> String {
        let retry_ms = self.zone.config.refresh_interval.as_millis();
        format!("retry: {retry_ms}\n\n")
    }

    /// The next piece of the stream to write: an event when the status changed, a heartbeat
    /// comment after [`HEARTBEAT`] of silence, `None` once the stream is over.
    pub async fn next(&mut self) -> Option<String> {
        if self.done || tokio::time::Instant::now() >= self.ends_at {
            return None;
        }
        let deadline = (tokio::time::Instant::now() + HEARTBEAT).min(self.ends_at);
        loop {
            if !self.due {
                let touch_in = self.touch_in();
                let phase_in = self.phase_change_in();
                tokio::select! {
                    _ = tokio::time::sleep(phase_in) => {}
                    changed = self.wake.changed() => {
                        if changed.is_err() {
                            return None; // the room is shutting down
                        }
                    }
                    _ = tokio::time::sleep(touch_in) => {}
                    _ = tokio::time::sleep_until(deadline) => {
                        if deadline >= self.ends_at {
                            return None;
                        }
                        return Some(": ping\n\n".into());
                    }
                }
            }
            self.due = false;
            let status = self.status().await;
            if let Some(event) = self.event(status) {
                return Some(event);
            }
        }
    }

    /// Time until the zone's schedule changes phase (a countdown ends, a sale ends); a day when
    /// nothing is scheduled.
    fn phase_change_in(&self) -> Duration {
        let now = self.room.clock.now_ms();
        crate::onsale::next_change(&self.zone.schedule, now)
            .map_or(Duration::from_secs(86_400), |at| {
                Duration::from_millis(at - now)
            })
    }

    /// Time until the place needs its next heartbeat in the store.
    fn touch_in(&self) -> Duration {
        let every = self.touch_every();
        let since = self.room.clock.now_ms().saturating_sub(self.touched_at);
        every.saturating_sub(Duration::from_millis(since))
    }

    /// A third of `abandon_after`, so a live page is never taken for a closed tab.
    fn touch_every(&self) -> Duration {
        (self.zone.config.limits.abandon_after / 3).max(Duration::from_secs(1))
    }

    /// The visitor's status now: the gate's decision on the edge cache, seen without joining.
    async fn status(&mut self) -> Status {
        let room = self.room;
        let now = room.clock.now_ms();
        if let Some(current) = room.zone_named(&self.zone.config.name) {
            self.zone = current;
        }
        let (zone, phase) = self.zone.at(now);
        let decision = room.decide(zone, phase, &self.token, false, now);
        let touch = self.touch_in().is_zero();
        let seen = room.look(zone, &self.token, decision, now, touch).await;
        if seen.touched {
            self.touched_at = now;
        }
        seen.status
    }

    /// Turns a status into an event, unless it says nothing new.
    fn event(&mut self, status: Status) -> Option<String> {
        let mut status = self.room.with_draw(&self.zone, status);
        let waiting = matches!(
            status.state,
            State::Waiting | State::Paused | State::Prequeue
        );
        if waiting && !status.degraded && status.position > 0 {
            if self.best > 0 && status.position > self.best {
                status.position = self.best;
                status.ahead = self.best - 1;
            }
            self.best = status.position;
        }
        if !waiting {
            self.done = true;
        }
        let id = event_id(&status);
        if self.last_id.as_deref() == Some(id.as_str()) && !self.done {
            return None;
        }
        let json = String::from_utf8(status.to_json()).unwrap_or_default();
        let event = format!("event: status\nid: {id}\ndata: {json}\n\n");
        self.last_id = Some(id);
        Some(event)
    }
}

/// An event id that changes when anything the page shows changes, and carries the position
/// shown, so a reconnecting browser's `Last-Event-ID` keeps the position from going up.
fn event_id(status: &Status) -> String {
    format!(
        "{}.{}.{}.{}.{:x}",
        status.position,
        state_code(status.state),
        status.eta_seconds,
        u8::from(status.degraded),
        text_hash(&status.message)
    )
}

/// A short hash of the operator's notice, so a new notice is a new event.
fn text_hash(text: &str) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = foldhash::fast::FixedState::with_seed(0).build_hasher();
    hasher.write(text.as_bytes());
    hasher.finish() as u32
}

fn state_code(state: State) -> &'static str {
    match state {
        State::Waiting => "w",
        State::Paused => "p",
        State::Admitted => "a",
        State::Closed => "c",
        State::NotQueued => "n",
        State::Prequeue => "q",
        State::Ended => "e",
        State::Challenge => "x",
    }
}

/// The position an earlier event showed, from its id.
fn shown_position(last_event_id: &str) -> Option<u64> {
    last_event_id
        .split('.')
        .next()?
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::shown_position;

    #[test]
    fn reads_the_position_back_from_an_event_id() {
        assert_eq!(shown_position("17.w.34.0"), Some(17));
        assert_eq!(shown_position("0.a.0.0"), None);
        assert_eq!(shown_position("garbage"), None);
        assert_eq!(shown_position(""), None);
    }
}
