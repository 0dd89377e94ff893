//! The CQL store's change feed: this node's own changes go to its subscribers at once and to
//! the other nodes through the outbox table (or, on ScyllaDB with `sync = "cdc"`, through the
//! tables' CDC logs, which `follow_feed` reads), with the feed's lag measured.

use super::{cdc, CqlStore};
use crate::config::{ScyllaConfig, SyncMode};
use crate::store::{Change, ChangeFeed, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast;

impl ChangeFeed for CqlStore {
    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    fn lag_ms(&self) -> u64 {
        self.lag_ms.load(Ordering::Relaxed)
    }
}

impl CqlStore {
    /// Tells this node's subscribers at once, and the other nodes through the outbox (with
    /// `sync = "cdc"` the other nodes read the tables' CDC logs instead).
    pub(super) async fn publish(&self, change: Change) {
        let _ = self.feed.send(change.clone());
        if self.sync == SyncMode::Cdc {
            return;
        }
        if let Err(e) = self.write_outbox(&change).await {
            // The change is written; the other nodes see it with the next change or reload.
            tracing::warn!(error = %e, "writing the outbox failed");
        }
    }
}

impl CqlStore {
    /// The change feed in use: `Cdc` on ScyllaDB (unless `sync = "outbox"`), else `Outbox`.
    pub fn sync(&self) -> SyncMode {
        self.sync
    }

    /// Runs this node's side of the change feed until it fails (CDC) or forever (outbox):
    /// every change other nodes make reaches [`ChangeFeed::subscribe`]rs, and
    /// [`ChangeFeed::lag_ms`] tracks how late.
    pub async fn follow_feed(self: Arc<Self>, settings: ScyllaConfig) -> Result<(), StoreError> {
        if self.sync == SyncMode::Outbox {
            self.tail_outbox(settings.feed_interval, settings.feed_safety)
                .await;
            return Ok(());
        }
        let newest_ms = Arc::new(AtomicU64::new(0));
        let options = cdc::CdcOptions {
            keyspace: settings.keyspace.clone(),
            node: self.ledger.node().to_string(),
            safety: settings.feed_safety,
            sleep: settings.feed_interval,
            // No checkpoints: a node starts reading at now; zone states are whole, so the next
            // change brings it up to date, and `Room::warm` loads them at start.
            resume: std::time::Duration::ZERO,
        };
        let (mut readers, feed) = cdc::start(
            self.session.clone(),
            &options,
            self.clock.now_ms(),
            self.feed.clone(),
            newest_ms.clone(),
        )
        .await?;
        let lag = self.lag_ms.clone();
        let clock = self.clock.clone();
        let mut seen = 0;
        let watch = async move {
            let mut ticker = tokio::time::interval(settings.feed_interval);
            loop {
                ticker.tick().await;
                let newest = newest_ms.load(Ordering::Relaxed);
                if newest > seen {
                    seen = newest;
                    lag.store(clock.now_ms().saturating_sub(newest), Ordering::Relaxed);
                }
            }
        };
        let result = tokio::select! {
            result = feed => result,
            _ = watch => Ok(()),
        };
        readers.stop();
        result
    }
}
