//! The exchanger: every tick, for every zone, admit as many queued visitors as free slots and the
//! rate allow (`docs/architecture.md`, "State and the exchanger"). It reads the zone state and
//! the slot count, picks the visitors the cursor passed who came back and then the next live
//! entries after the cursor, and commits the advanced state with a compare-and-set; if another
//! node won, it tries again next tick.
//!
//! Every admission goes through here. A newcomer in a quiet zone joins the line and their node
//! runs a tick at once ([`Via::Join`]), so "let them straight in" is still "admit the first in
//! line", and FIFO holds across nodes.
//!
//! Across nodes a join is a write that takes a moment: a tick could read the queue while an
//! earlier arrival's entry is still on its way and admit a later one first. So a tick leaves
//! arrivals younger than `join_settle` alone (zero on the embedded store, where a join is
//! in place before the call returns); FIFO is exact as long as a join's write takes less.

use crate::admission::{Draw, QueueKey, ZoneState};
use crate::clock::SharedClock;
use crate::config::{Mode, ZoneConfig};
use crate::event_log::{Event, EventLog, QUEUE_AT_LEAST_MS, QUEUE_EVERY_MS};
use crate::metrics::{Metrics, SESSION_ENDINGS};
use crate::onsale::{self, Phase};
use crate::store::{Store, StoreError};
use crate::zone::LiveZones;
use std::collections::HashMap;
use std::sync::Arc;

/// What one zone's tick did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickReport {
    /// Visitors admitted.
    pub admitted: u32,
    /// Visitors still queued after the cursor.
    pub waiting: u64,
    /// Occupied slots.
    pub active: u64,
    /// The state this tick committed, if it wrote one.
    pub committed: Option<Arc<ZoneState>>,
    /// The newest state the tick knows: the one it committed, else the one it read. A tick
    /// that found nothing to do may still have read a state another tick (on this node or
    /// another) committed moments ago, newer than the node's cache.
    pub latest: Option<Arc<ZoneState>>,
}

/// Why a tick runs: the `via` label of `usher_admitted_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The periodic tick.
    Schedule,
    /// A newcomer joined a quiet zone.
    Join,
}

impl Via {
    fn label(self) -> &'static str {
        match self {
            Via::Schedule => "queue",
            Via::Join => "direct",
        }
    }
}

/// At most this many skipped places of one tick are logged one by one (`abandoned` events);
/// the metric counts them all.
const ABANDONED_LOGGED: usize = 1_000;

/// The places one tick passes without admitting them.
#[derive(Debug, Default)]
struct Skipped {
    /// How many.
    count: u64,
    /// Their keys, when the event log is on (at most [`ABANDONED_LOGGED`]).
    keys: Vec<QueueKey>,
}

/// What a zone's event log lines need to remember between ticks.
#[derive(Debug, Default)]
struct ZoneLog {
    /// `usher_sessions_ended_total` of the zone when last read.
    ended_seen: u64,
    /// Sessions this node ended (released or revoked) that no tick has yet seen freed: not
    /// expiries.
    ended_owed: u64,
    /// Slots the last tick saw freed that no ending explained yet. A release frees the slot in
    /// the store a moment before it is counted, so a tick can see the slot free first: freed
    /// slots wait one tick before they are called expired.
    freed_held: u64,
    /// When the zone's last `queue` line was logged, and what it said.
    queue_logged: Option<(u64, u64, u64)>,
}

impl ZoneLog {
    /// A tick's expiries: of the slots the last tick held, those no session ending explains
    /// by now. `ended` is the zone's `usher_sessions_ended_total` now, `freed` the slots this
    /// tick saw come free (held until the next tick).
    fn expired(&mut self, ended: u64, freed: u64) -> u64 {
        self.ended_owed += ended.saturating_sub(self.ended_seen);
        self.ended_seen = ended;
        // Endings explain what the last tick held first, then what this one freed.
        let mut explain = |slots: u64| {
            let matched = self.ended_owed.min(slots);
            self.ended_owed -= matched;
            slots - matched
        };
        let expired = explain(self.freed_held);
        self.freed_held = explain(freed);
        expired
    }
}

/// Sets the zone's gauges of the limits in force; `hold`: a schedule holds admissions (a
/// pre-queue's countdown), whatever the mode.
fn show_limits(metrics: &Metrics, zone: &str, config: &ZoneConfig, hold: bool) {
    let labels = &[zone];
    let limits = &config.limits;
    metrics
        .capacity
        .with_label_values(labels)
        .set(i64::from(limits.capacity));
    metrics
        .admit_per_minute
        .with_label_values(labels)
        .set(i64::from(limits.admit_per_minute));
    metrics
        .burst
        .with_label_values(labels)
        .set(i64::from(limits.burst));
    let admits = matches!(config.mode, Mode::Auto | Mode::QueueAll | Mode::Passthrough);
    metrics
        .paused
        .with_label_values(labels)
        .set(i64::from(hold || !admits));
}

/// Advances every zone's cursor.
pub struct Exchanger {
    store: Arc<dyn Store>,
    /// The zones in force (shared with the room: a reload or an override reaches both).
    zones: Arc<LiveZones>,
    /// One tick at a time per zone on this node: a join's tick and the periodic one would only
    /// race each other's compare-and-set.
    turns: HashMap<String, tokio::sync::Mutex<()>>,
    /// How long the newest arrivals are left alone.
    settle: std::time::Duration,
    clock: SharedClock,
    metrics: Metrics,
    /// Where draws, skipped places, returns and expiries are logged (`[events_log]`).
    events: EventLog,
    /// Per zone, for the `expired` and `queue` lines.
    zone_logs: std::sync::Mutex<HashMap<String, ZoneLog>>,
}

impl Exchanger {
    /// Logs draws to `events` (`[events_log]`).
    pub fn set_event_log(&mut self, events: EventLog) {
        self.events = events;
    }

    /// An exchanger for `zones` that leaves arrivals younger than `settle` alone.
    pub fn new(
        store: Arc<dyn Store>,
        zones: Arc<LiveZones>,
        settle: std::time::Duration,
        clock: SharedClock,
        metrics: Metrics,
    ) -> Self {
        let now = clock.now_ms();
        let table = zones.current();
        for zone in table.configs() {
            let phase = onsale::phase(&zone.events, now);
            let hold = matches!(phase, Phase::Prequeue(_));
            show_limits(&metrics, &zone.name, onsale::in_force(zone, phase), hold);
            // Zero from the start, so a rate over them reads 0 rather than nothing.
            metrics.skipped.with_label_values(&[&zone.name]);
            metrics.slots_freed.with_label_values(&[&zone.name]);
            for how in SESSION_ENDINGS {
                metrics.sessions_ended.with_label_values(&[&zone.name, how]);
            }
        }
        // Zones never come or go while the process runs (a reload that would add or remove
        // one is refused), so the turns are fixed.
        let turns = table
            .configs()
            .map(|z| (z.name.clone(), tokio::sync::Mutex::new(())))
            .collect();
        Exchanger {
            store,
            zones,
            turns,
            settle,
            clock,
            metrics,
            events: EventLog::disabled(),
            zone_logs: Default::default(),
        }
    }

    /// How long the newest arrivals are left alone: a newcomer waits this long before the
    /// tick that may let them straight in.
    pub fn settle(&self) -> std::time::Duration {
        self.settle
    }

    /// One pass over every zone; a failing zone does not stop the others. Returns the states
    /// committed.
    pub async fn tick(&self) -> Vec<(String, Arc<ZoneState>)> {
        let timer = self.metrics.tick_seconds.start_timer();
        let mut committed = Vec::new();
        let table = self.zones.current();
        for zone in table.configs() {
            match self.tick_zone(zone, Via::Schedule).await {
                Ok(report) => committed.extend(report.committed.map(|s| (zone.name.clone(), s))),
                Err(e) => {
                    tracing::warn!(zone = %zone.name, error = %e, "exchanger tick failed");
                    self.metrics
                        .store_errors
                        .with_label_values(&[&zone.name, "tick"])
                        .inc();
                }
            }
        }
        timer.observe_duration();
        committed
    }

    /// What the schedule says about this tick: whether admissions are held (a countdown, a
    /// sale that ended, the grace after a draw), and the draw to make when a sale with a
    /// pre-queue has just started. The seed is random; only the tick that wins the
    /// compare-and-set fixes it, so the fleet shares one.
    fn schedule(phase: Phase<'_>, state: &ZoneState, now: u64) -> (bool, Option<Draw>) {
        match phase {
            Phase::Base => (false, None),
            Phase::Prequeue(_) | Phase::Ended(_) => (true, None),
            Phase::Sale(event) if !onsale::has_prequeue(event) => (false, None),
            Phase::Sale(event) => match onsale::draw_of(event, state.draw.as_ref()) {
                Some(drawn) => (onsale::settling(event, drawn, now), None),
                None => (
                    true,
                    Some(Draw {
                        event: event.name.clone(),
                        seed: rand::random(),
                        at_ms: now,
                    }),
                ),
            },
        }
    }

    /// A tick of the zone called `name` (for a newcomer's immediate tick). The exchanger ticks
    /// the zone as configured, whatever phase of its schedule the caller is in: the schedule
    /// (holds, the draw, the sale's overrides) is read from it inside the tick.
    pub async fn tick_named(&self, name: &str, via: Via) -> Result<TickReport, StoreError> {
        let table = self.zones.current();
        let Some(zone) = table.by_name(name) else {
            return Ok(TickReport::default());
        };
        self.tick_zone(&zone.config, via).await
    }

    /// The places between `cursor` and the highest key of `admitted` that the tick passes
    /// without admitting (`fresh` of `admitted` lie after the cursor, the highest among them).
    async fn skipped(
        &self,
        zone: &str,
        cursor: QueueKey,
        admitted: &[QueueKey],
        fresh: u64,
    ) -> Result<Skipped, StoreError> {
        let Some(&to) = admitted.iter().filter(|k| **k > cursor).max() else {
            return Ok(Skipped::default());
        };
        // Strictly between: the other fresh admissions, and the places passed.
        let between = self.store.ahead(zone, cursor, to).await?;
        let count = between.saturating_sub(fresh - 1);
        let mut keys = Vec::new();
        if count > 0 && self.events.enabled() {
            // Up to `to`: the places passed (as many as are logged) and the fresh admissions.
            let limit = (count as usize).min(ABANDONED_LOGGED) + fresh as usize;
            keys = self.store.live_after(zone, cursor, 0, limit).await?;
            keys.retain(|k| *k < to && !admitted.contains(k));
            keys.truncate(ABANDONED_LOGGED);
        }
        Ok(Skipped { count, keys })
    }

    /// Logs the places a committed tick passed (`abandoned`) and the passed visitors it let in
    /// because they came back (`returned`; priority places too).
    fn log_passing(&self, zone: &str, skipped: &Skipped, returned: &[&QueueKey], now: u64) {
        for key in &skipped.keys {
            self.events.record(now, || Event::Abandoned {
                zone: zone.to_string(),
                visitor: key.visitor.to_string(),
                rank_ms: key.rank,
            });
        }
        for key in returned {
            self.events.record(now, || Event::Returned {
                zone: zone.to_string(),
                visitor: key.visitor.to_string(),
                rank_ms: key.rank,
            });
        }
    }

    /// Logs the slots freed since the zone's last committed tick (`freed`, 0 for a tick that
    /// committed nothing) that no session ending on this node explains by the next tick
    /// (`expired`: sessions that ran out, reservations never claimed). Exact on one node; on a
    /// fleet, endings on other nodes read as expiries here.
    fn log_expired(&self, zone: &str, freed: u64, now: u64) {
        if !self.events.enabled() {
            return;
        }
        let ended: u64 = SESSION_ENDINGS
            .iter()
            .map(|how| {
                self.metrics
                    .sessions_ended
                    .with_label_values(&[zone, how])
                    .get()
            })
            .sum();
        let expired = self.zone_log(zone, |log| log.expired(ended, freed));
        if expired > 0 {
            self.events.record(now, || Event::Expired {
                zone: zone.to_string(),
                slots: expired,
            });
        }
    }

    /// Runs `f` on what `zone`'s log lines remember.
    fn zone_log<T>(&self, zone: &str, f: impl FnOnce(&mut ZoneLog) -> T) -> T {
        let mut logs = self.zone_logs.lock().unwrap_or_else(|e| e.into_inner());
        f(logs.entry(zone.to_string()).or_default())
    }

    /// Logs the zone's line and slots when they changed, at most every [`QUEUE_EVERY_MS`],
    /// and every [`QUEUE_AT_LEAST_MS`] when they did not.
    fn log_queue(&self, zone: &str, waiting: u64, active: u64, now: u64) {
        if !self.events.enabled() {
            return;
        }
        let due = self.zone_log(zone, |log| {
            let due = match log.queue_logged {
                None => true,
                Some((at, w, a)) => {
                    let since = now.saturating_sub(at);
                    since >= QUEUE_AT_LEAST_MS
                        || (since >= QUEUE_EVERY_MS && (w, a) != (waiting, active))
                }
            };
            if due {
                log.queue_logged = Some((now, waiting, active));
            }
            due
        });
        if due {
            self.events.record(now, || Event::Queue {
                zone: zone.to_string(),
                waiting,
                active,
            });
        }
    }

    /// One zone's tick.
    pub async fn tick_zone(&self, zone: &ZoneConfig, via: Via) -> Result<TickReport, StoreError> {
        let _turn = match self.turns.get(&zone.name) {
            Some(turn) => Some(turn.lock().await),
            None => None,
        };
        let store = self.store.as_ref();
        let name = zone.name.as_str();
        let now = self.clock.now_ms();
        let phase = onsale::phase(&zone.events, now);
        let config = onsale::in_force(zone, phase);
        let limits = &config.limits;
        show_limits(
            &self.metrics,
            name,
            config,
            matches!(phase, Phase::Prequeue(_)),
        );
        let loaded = store.load(name).await?;
        let expected = loaded.as_ref().map(|s| s.version);
        let read = loaded.clone().map(Arc::new);
        let state = loaded.unwrap_or_else(|| ZoneState::new(limits, now));
        let active = store.active(name, now).await?;
        let (hold, draw) = Self::schedule(phase, &state, now);
        let budget = match config.mode {
            _ if hold => 0,
            Mode::Auto | Mode::QueueAll => state.budget(active, limits, now) as usize,
            Mode::Paused | Mode::Passthrough | Mode::Closed => 0,
        };
        let cursor = state.cursor;
        let seen_since = now.saturating_sub(limits.abandon_after.as_millis() as u64);
        let mut admitted = Vec::new();
        if budget > 0 {
            // Visitors the cursor passed who came back are first in line.
            admitted = store.returned(name, cursor, seen_since, budget).await?;
            let rest = budget - admitted.len();
            if rest > 0 {
                let settled = now.saturating_sub(self.settle.as_millis() as u64);
                let next = store.live_after(name, cursor, seen_since, rest).await?;
                admitted.extend(next.into_iter().take_while(|k| k.rank <= settled));
            }
        }
        let fresh = admitted.iter().filter(|k| **k > cursor).count() as u64;
        // The places the cursor is about to pass without admitting them: their holders were away.
        // Counted (and listed for the event log) before the commit drops their entries.
        let skipped = self.skipped(name, cursor, &admitted, fresh).await?;
        let waiting = store.waiting(name, cursor).await?.saturating_sub(fresh);
        let mut next = state.clone();
        let grant = next.apply_tick(admitted, active, waiting, limits, now);
        if next.cursor != state.cursor {
            let window_ms = config.defence.return_window.as_millis() as u64;
            next.passed.record(next.cursor.rank, window_ms, now);
        }
        if draw.is_some() {
            next.draw = draw.clone();
        }
        // A tick that admits nobody and changes no count is not written: on a shared store
        // every write is a compare-and-set that competes with the other nodes' ticks.
        let changed = !grant.admitted.is_empty()
            || expected.is_none()
            || draw.is_some()
            || next.waiting != state.waiting
            || next.active != state.active;
        let mut report = TickReport {
            admitted: 0,
            waiting: state.waiting.max(waiting),
            active,
            committed: None,
            latest: read,
        };
        let committed = match changed {
            true => store.commit_tick(name, expected, &next, &grant).await?,
            false => None,
        };
        let mut freed = 0;
        if let Some(n) = committed {
            if let Some(draw) = &draw {
                self.events.record(now, || Event::Draw {
                    zone: name.to_string(),
                    event: draw.event.to_string(),
                    seed: format!("{:016x}", draw.seed),
                });
                tracing::info!(
                    zone = name,
                    event = %draw.event,
                    seed = %format!("{:016x}", draw.seed),
                    at = %crate::config::timestamp::format_rfc3339(draw.at_ms),
                    "pre-queue lottery drawn"
                );
            }
            if n > 0 {
                tracing::debug!(zone = name, admitted = n, via = via.label(), "admitted");
            }
            // Visitors the cursor had passed who came back (and priority places, which sit just
            // below the cursor) are admitted first: counted apart.
            let returned: Vec<&QueueKey> = grant
                .admitted
                .iter()
                .filter(|k| **k <= grant.from)
                .collect();
            let came_back = (returned.len() as u64).min(n as u64);
            self.log_passing(name, &skipped, &returned, now);
            self.metrics
                .skipped
                .with_label_values(&[name])
                .inc_by(skipped.count);
            freed = state.active.saturating_sub(active);
            self.metrics
                .slots_freed
                .with_label_values(&[name])
                .inc_by(freed);
            self.metrics
                .admitted
                .with_label_values(&[name, via.label()])
                .inc_by(n as u64 - came_back);
            self.metrics
                .admitted
                .with_label_values(&[name, "returned"])
                .inc_by(came_back);
            let next = Arc::new(next);
            report = TickReport {
                admitted: n,
                waiting,
                active: next.active,
                committed: Some(next.clone()),
                latest: Some(next),
            };
        }
        self.log_expired(name, freed, now);
        self.log_queue(name, report.waiting, report.active, now);
        self.metrics
            .waiting
            .with_label_values(&[name])
            .set(report.waiting as i64);
        self.metrics
            .active
            .with_label_values(&[name])
            .set(report.active as i64);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::ZoneLog;

    #[test]
    fn freed_slots_are_expired_only_if_no_ending_explains_them_by_the_next_tick() {
        let mut log = ZoneLog::default();
        // A release counted before the tick sees its slot free.
        assert_eq!(log.expired(1, 0), 0);
        assert_eq!(log.expired(1, 1), 0);
        assert_eq!(log.expired(1, 0), 0);
        // A release whose slot a tick saw free before it was counted (the race).
        assert_eq!(log.expired(1, 1), 0);
        assert_eq!(
            log.expired(2, 0),
            0,
            "explained a tick later: not an expiry"
        );
        // Two slots run out and one is released: one expiry, a tick later.
        assert_eq!(log.expired(3, 3), 0);
        assert_eq!(log.expired(3, 0), 2);
        assert_eq!(log.expired(3, 0), 0);
        assert_eq!((log.ended_owed, log.freed_held), (0, 0));
    }
}
