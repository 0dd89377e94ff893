//! Statuses of a zone: fills the page's plain [`Heading`] from the zone and its schedule, so
//! the page renderer never sees a zone.

use crate::admission::Eta;
use crate::onsale::{self, Phase};
use crate::page::{EventInfo, Heading, Look, State, Status};
use crate::zone::Zone;

/// The event in force at `now_ms` (pre-queue, sale, or ended), else the next one.
fn event_info(zone: &Zone, now_ms: u64) -> Option<EventInfo> {
    let event = match onsale::phase(&zone.schedule, now_ms) {
        Phase::Prequeue(e) | Phase::Sale(e) | Phase::Ended(e) => e,
        Phase::Base => zone.schedule.iter().find(|e| e.prequeue_at_ms > now_ms)?,
    };
    Some(EventInfo {
        name: event.name.clone(),
        title: event.title.clone(),
        prequeue_at_ms: event.prequeue_at_ms,
        starts_at_ms: event.starts_at_ms,
        ends_at_ms: event.ends_at_ms.unwrap_or(0),
        draw_seed: None,
        drawn_at_ms: None,
    })
}

/// What every status of `zone` says about it at `now_ms`.
pub(super) fn heading(zone: &Zone, now_ms: u64) -> Heading {
    Heading {
        zone: zone.config.name.clone(),
        title: zone.config.title.clone(),
        refresh_ms: zone.config.refresh_interval.as_millis() as u64,
        event: event_info(zone, now_ms),
        message: zone.config.message.clone(),
    }
}

/// A status of `zone` without a position.
pub(super) fn without_place(zone: &Zone, state: State, now_ms: u64) -> Status {
    Status::without_place(heading(zone, now_ms), state, now_ms)
}

/// A waiting visitor's status in `zone`.
pub(super) fn waiting(
    zone: &Zone,
    state: State,
    ahead: u64,
    eta: Eta,
    joined_at_ms: u64,
    now_ms: u64,
) -> Status {
    Status::waiting(
        heading(zone, now_ms),
        state,
        ahead,
        eta,
        joined_at_ms,
        now_ms,
    )
}

/// A waiting visitor's status when the store could not be asked.
pub(super) fn degraded(zone: &Zone, now_ms: u64) -> Status {
    Status::degraded(heading(zone, now_ms), now_ms)
}

/// How `zone`'s pages look.
pub(super) fn look(zone: &Zone) -> Look<'_> {
    Look {
        template: zone.config.template.as_deref(),
        strings: &zone.config.strings,
    }
}
