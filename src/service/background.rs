//! The background work of a node, as one Pingora background service: warm the edge cache, follow
//! the change feed, run the exchanger every tick, and (embedded store) fold the write-ahead log
//! into a snapshot, and write a final one on shutdown.

use crate::room::Room;
use crate::store::embedded::EmbeddedStore;
use crate::store::ChangeFeed;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;
use std::sync::Arc;
use std::time::Duration;

/// Everything a node does besides answering requests.
pub struct NodeWork {
    /// The room whose cache is kept warm.
    pub room: Arc<Room>,
    /// The change feed that keeps the edge cache warm.
    pub feed: Arc<dyn ChangeFeed>,
    /// The embedded store, snapshotted periodically and at shutdown; `None` for the CQL store.
    pub embedded: Option<Arc<EmbeddedStore>>,
    /// Exchanger period.
    pub tick: Duration,
    /// Snapshot period.
    pub snapshot_every: Duration,
}

#[async_trait]
impl BackgroundService for NodeWork {
    /// Warms the edge cache before the proxy (which depends on this service) opens its listener.
    async fn start_with_ready_notifier(
        &self,
        shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        if let Err(e) = self.room.warm().await {
            tracing::error!(error = %e, "loading zone state failed");
        }
        ready.notify_ready();
        self.start(shutdown).await;
    }

    async fn start(&self, mut shutdown: ShutdownWatch) {
        let feed = self.feed.subscribe();
        // Changes between the warm-up and this subscription: load once more.
        if let Err(e) = self.room.warm().await {
            tracing::error!(error = %e, "loading zone state failed");
        }
        let room = self.room.clone();
        let follower = tokio::spawn(async move { room.follow(feed).await });
        let mut tick = tokio::time::interval(self.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut snapshot = tokio::time::interval(self.snapshot_every);
        snapshot.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(tick = ?self.tick, "exchanger running");
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.room.tick().await;
                    let lag = self.feed.lag_ms() as f64 / 1_000.0;
                    self.room.metrics().feed_lag.set(lag);
                }
                _ = snapshot.tick() => self.snapshot(),
                _ = shutdown.changed() => break,
            }
        }
        follower.abort();
        self.snapshot();
        tracing::info!("background work stopped; state saved");
    }
}

impl NodeWork {
    fn snapshot(&self) {
        let Some(store) = &self.embedded else {
            return;
        };
        // A few milliseconds of file IO; fine on the background runtime.
        if let Err(e) = store.snapshot() {
            tracing::error!(error = %e, "writing the snapshot failed");
        }
    }
}
