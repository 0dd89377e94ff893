//! The transactional outbox: every committed zone record is also written to `outbox`, partitioned
//! by 10-second bucket, and every node tails the current buckets. Works on any CQL database.
//!
//! A zone's compare-and-set is a lightweight transaction, and a conditional batch cannot span
//! tables, so the outbox row is written right after the compare-and-set succeeds rather than in
//! the same batch. A node that dies in between loses only that notification: records are whole
//! and versioned, so the zone's next change (at the latest the next exchanger tick while anyone
//! waits) carries everything. Delivery is at-least-once and may reorder across zones; consumers
//! keep the highest version they have seen.

use super::{unavailable, CqlStore};
use crate::store::{Change, StoreError, ZoneRecord};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Width of an outbox partition.
const BUCKET_MS: u64 = 10_000;

impl CqlStore {
    pub(super) async fn write_outbox(
        &self,
        zone: &str,
        version: u64,
        json: &str,
    ) -> Result<(), StoreError> {
        let at = self.clock.now_ms();
        self.session
            .execute_unpaged(
                &self.statements.outbox_write,
                (
                    (at / BUCKET_MS) as i64,
                    at as i64,
                    zone,
                    version as i64,
                    json,
                ),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Tails the outbox every `interval`, reading `safety` behind the newest row seen so writes
    /// that land late are not skipped, and publishes every record newer than the last one seen
    /// for its zone. Runs until the task is dropped.
    pub async fn tail_outbox(self: Arc<Self>, interval: Duration, safety: Duration) {
        let safety_ms = safety.as_millis() as u64;
        let mut newest: HashMap<String, u64> = HashMap::new();
        let mut from = self.clock.now_ms().saturating_sub(safety_ms);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.read_outbox_since(from).await {
                Ok(rows) => {
                    let mut latest_at = from;
                    for (at, zone, record) in rows {
                        latest_at = latest_at.max(at);
                        let version = record.state.version;
                        if newest.get(&zone).is_some_and(|v| *v >= version) {
                            continue;
                        }
                        newest.insert(zone.clone(), version);
                        let _ = self.feed.send(Change::Zone {
                            zone: Arc::from(zone.as_str()),
                            record: Arc::new(record),
                        });
                    }
                    from = latest_at.saturating_sub(safety_ms).max(from);
                }
                Err(e) => tracing::warn!(error = %e, "reading the outbox failed; retrying"),
            }
        }
    }

    async fn read_outbox_since(
        &self,
        from: u64,
    ) -> Result<Vec<(u64, String, ZoneRecord)>, StoreError> {
        let now = self.clock.now_ms();
        let mut out = Vec::new();
        for bucket in from / BUCKET_MS..=now / BUCKET_MS {
            let result = self
                .session
                .execute_unpaged(&self.statements.outbox_read, (bucket as i64, from as i64))
                .await
                .map_err(unavailable)?;
            let rows = result.into_rows_result().map_err(unavailable)?;
            for row in rows
                .rows::<(i64, String, i64, String)>()
                .map_err(unavailable)?
            {
                let (at, zone, _version, json) = row.map_err(unavailable)?;
                if let Ok(record) = serde_json::from_str::<ZoneRecord>(&json) {
                    out.push((at as u64, zone, record));
                }
            }
        }
        out.sort_by_key(|(at, _, _)| *at);
        Ok(out)
    }
}
