//! The transactional outbox: every committed change (a zone's new state, a revocation) is also
//! written to `outbox`, partitioned by 10-second bucket, and every node tails the current
//! buckets. Works on any CQL database.
//!
//! A zone's compare-and-set is a lightweight transaction, and a conditional batch cannot span
//! tables, so the outbox row is written right after the change succeeds rather than in the same
//! batch. A node that dies in between loses only that notification: zone states are whole and
//! versioned, so the zone's next change (at the latest the next exchanger tick while anyone
//! waits) carries everything. Delivery is at-least-once and may reorder across zones; consumers
//! keep the highest version they have seen.

use super::{unavailable, CqlStore};
use crate::admission::{VisitorId, ZoneState};
use crate::store::{Change, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// A change as an outbox row stores it (JSON).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry {
    Zone {
        zone: String,
        state: ZoneState,
    },
    Revoked {
        zone: String,
        visitor: VisitorId,
        until_s: u64,
    },
}

impl Entry {
    fn of(change: &Change) -> Entry {
        match change {
            Change::Zone { zone, state } => Entry::Zone {
                zone: zone.to_string(),
                state: (**state).clone(),
            },
            Change::Revoked {
                zone,
                visitor,
                until_s,
            } => Entry::Revoked {
                zone: zone.to_string(),
                visitor: *visitor,
                until_s: *until_s,
            },
        }
    }

    fn into_change(self) -> Change {
        match self {
            Entry::Zone { zone, state } => Change::Zone {
                zone: Arc::from(zone.as_str()),
                state: Arc::new(state),
            },
            Entry::Revoked {
                zone,
                visitor,
                until_s,
            } => Change::Revoked {
                zone: Arc::from(zone.as_str()),
                visitor,
                until_s,
            },
        }
    }
}

/// Width of an outbox partition.
const BUCKET_MS: u64 = 10_000;

impl CqlStore {
    pub(super) async fn write_outbox(&self, change: &Change) -> Result<(), StoreError> {
        let json = serde_json::to_string(&Entry::of(change)).map_err(unavailable)?;
        let at = self.clock.now_ms();
        let id = rand::random::<i64>();
        self.session
            .execute_unpaged(
                &self.statements.outbox_write,
                ((at / BUCKET_MS) as i64, at as i64, id, json),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Tails the outbox every `interval`, reading `safety` behind the newest row seen so writes
    /// that land late are not skipped, and publishes every zone state newer than the last one
    /// seen for its zone, and every revocation (applying one twice is harmless). Runs until the
    /// task is dropped.
    pub async fn tail_outbox(self: Arc<Self>, interval: Duration, safety: Duration) {
        let safety_ms = safety.as_millis() as u64;
        let mut newest: HashMap<String, u64> = HashMap::new();
        let mut newest_at = 0;
        let mut from = self.clock.now_ms().saturating_sub(safety_ms);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.read_outbox_since(from).await {
                Ok(rows) => {
                    let mut latest_at = from;
                    let now = self.clock.now_ms();
                    for (at, change) in rows {
                        if at > newest_at {
                            // A row not seen before: how long it took to get here.
                            newest_at = at;
                            self.lag_ms.store(now.saturating_sub(at), Ordering::Relaxed);
                        }
                        latest_at = latest_at.max(at);
                        if let Change::Zone { zone, state } = &change {
                            if newest.get(&**zone).is_some_and(|v| *v >= state.version) {
                                continue;
                            }
                            newest.insert(zone.to_string(), state.version);
                        }
                        let _ = self.feed.send(change);
                    }
                    from = latest_at.saturating_sub(safety_ms).max(from);
                }
                Err(e) => tracing::warn!(error = %e, "reading the outbox failed; retrying"),
            }
        }
    }

    async fn read_outbox_since(&self, from: u64) -> Result<Vec<(u64, Change)>, StoreError> {
        let now = self.clock.now_ms();
        let mut out = Vec::new();
        for bucket in from / BUCKET_MS..=now / BUCKET_MS {
            let result = self
                .session
                .execute_unpaged(&self.statements.outbox_read, (bucket as i64, from as i64))
                .await
                .map_err(unavailable)?;
            let rows = result.into_rows_result().map_err(unavailable)?;
            for row in rows.rows::<(i64, String)>().map_err(unavailable)? {
                let (at, json) = row.map_err(unavailable)?;
                match serde_json::from_str::<Entry>(&json) {
                    Ok(entry) => out.push((at as u64, entry.into_change())),
                    Err(e) => tracing::warn!(error = %e, "skipping an unreadable outbox row"),
                }
            }
        }
        out.sort_by_key(|(at, _)| *at);
        Ok(out)
    }
}
