//! The exchanger: every tick, for every zone, admit as many queued visitors as free slots and the
//! rate allow (DESIGN §4). It reads the zone record, picks the next live queue entries after the
//! cursor, and compare-and-sets the advanced record; if another writer won, it tries next tick.

use crate::admission::ZoneState;
use crate::clock::SharedClock;
use crate::config::{Mode, ZoneConfig};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, ZoneRecord};
use std::sync::Arc;

/// What one zone's tick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TickReport {
    /// Visitors admitted.
    pub admitted: u32,
    /// Visitors still queued after the cursor.
    pub waiting: u64,
    /// Occupied slots.
    pub active: u64,
}

/// Advances every zone's cursor.
pub struct Exchanger {
    store: Arc<dyn Store>,
    zones: Vec<ZoneConfig>,
    clock: SharedClock,
    metrics: Metrics,
}

impl Exchanger {
    /// An exchanger for `zones`.
    pub fn new(
        store: Arc<dyn Store>,
        zones: Vec<ZoneConfig>,
        clock: SharedClock,
        metrics: Metrics,
    ) -> Self {
        for zone in &zones {
            metrics
                .capacity
                .with_label_values(&[&zone.name])
                .set(zone.limits.capacity as i64);
        }
        Exchanger {
            store,
            zones,
            clock,
            metrics,
        }
    }

    /// One pass over every zone; a failing zone does not stop the others.
    pub async fn tick(&self) {
        let timer = self.metrics.tick_seconds.start_timer();
        for zone in &self.zones {
            if let Err(e) = self.tick_zone(zone).await {
                tracing::warn!(zone = %zone.name, error = %e, "exchanger tick failed");
                self.metrics
                    .store_errors
                    .with_label_values(&[&zone.name, "tick"])
                    .inc();
            }
        }
        timer.observe_duration();
    }

    /// One zone's tick.
    pub async fn tick_zone(&self, zone: &ZoneConfig) -> Result<TickReport, StoreError> {
        let name = zone.name.as_str();
        let limits = &zone.limits;
        let now = self.clock.now_ms();
        let loaded = self.store.load(name).await?;
        let expected = loaded.as_ref().map(|r| r.state.version);
        let record = loaded.unwrap_or_else(|| ZoneRecord {
            state: ZoneState::new(limits, now),
            ledger: Default::default(),
        });
        let budget = match zone.mode {
            Mode::Auto | Mode::QueueAll => record.state.budget(&record.ledger, limits, now),
            Mode::Paused | Mode::Passthrough | Mode::Closed => 0,
        };
        let admitted = if budget > 0 {
            let seen_since = now.saturating_sub(limits.abandon_after.as_millis() as u64);
            self.store
                .live_after(name, record.state.cursor, seen_since, budget as usize)
                .await?
        } else {
            Vec::new()
        };
        let waiting_before = self.store.waiting(name, record.state.cursor).await?;
        let mut next = record.clone();
        next.state
            .apply_tick(&mut next.ledger, &admitted, limits, now);
        // A tick that admits nobody and expires nothing is not written: on a shared store every
        // write is a compare-and-set that competes with claims and releases.
        let changed = !admitted.is_empty()
            || next.ledger != record.ledger
            || next.state.grants != record.state.grants
            || expected.is_none();
        let mut report = TickReport {
            admitted: 0,
            waiting: waiting_before,
            active: record.ledger.active(now),
        };
        if changed && self.store.compare_and_set(name, expected, &next).await? {
            // Admitted entries (by this tick, or directly since the last one) leave the queue.
            self.store.forget_through(name, next.state.cursor).await?;
            if !admitted.is_empty() {
                tracing::debug!(zone = name, admitted = admitted.len(), "admitted");
            }
            report = TickReport {
                admitted: admitted.len() as u32,
                waiting: waiting_before - admitted.len() as u64,
                active: next.ledger.active(now),
            };
            self.metrics
                .admitted
                .with_label_values(&[name, "queue"])
                .inc_by(admitted.len() as u64);
        }
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
