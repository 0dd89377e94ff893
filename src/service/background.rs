//! The background work of a node, as one Pingora background service: open the store (at once,
//! or during an upgrade once the previous process released it), warm the edge cache, follow
//! the change feed, run the exchanger every tick, fold the write-ahead log into a snapshot now
//! and then, and at shutdown drain the node and exit as soon as the open requests are done.

use crate::clock::SharedClock;
use crate::lifecycle::Lifecycle;
use crate::room::Room;
use crate::store::deferred::Deferred;
use crate::store::embedded::EmbeddedStore;
use crate::store::ChangeFeed;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long a plain shutdown waits for idle keep-alive connections to close.
const IDLE_LINGER: Duration = Duration::from_secs(1);

/// How long a handover waits for gate decisions already running (each is a few store calls).
const DECISIONS_DRAIN: Duration = Duration::from_secs(2);

/// The embedded store of an upgrade, still held by the previous process.
pub struct Takeover {
    /// `store.data_dir`.
    pub dir: PathBuf,
    /// How long to wait for the previous process to release it.
    pub wait: Duration,
}

/// Everything a node does besides answering requests.
pub struct NodeWork {
    /// The room whose cache is kept warm.
    pub room: Arc<Room>,
    /// The origin pools, whose names and health this work keeps current.
    pub upstreams: Arc<crate::proxy::Upstreams>,
    /// The change feed that keeps the edge cache warm.
    pub feed: Arc<dyn ChangeFeed>,
    /// The embedded store, snapshotted periodically and at shutdown; `None` for the CQL store.
    pub embedded: Option<Arc<Deferred>>,
    /// Set during an upgrade: the file that tells the previous process this one is accepting
    /// connections (then it stops accepting and releases the store).
    pub upgrade_marker: Option<PathBuf>,
    /// Set during an upgrade: the store to open once the previous process let go of it.
    pub takeover: Option<Takeover>,
    /// The node's phase, shared with the proxy.
    pub lifecycle: Arc<Lifecycle>,
    /// The node's clock.
    pub clock: SharedClock,
    /// Exchanger period.
    pub tick: Duration,
    /// Snapshot period.
    pub snapshot_every: Duration,
    /// How long a shutdown waits for open requests.
    pub grace_period: Duration,
}

#[async_trait]
impl BackgroundService for NodeWork {
    /// Warms the edge cache before the proxy (which depends on this service) opens its listener.
    /// During an upgrade the proxy starts at once (it holds requests until the store is open).
    async fn start_with_ready_notifier(
        &self,
        shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        if let Some(marker) = &self.upgrade_marker {
            // The proxy starts accepting on the inherited sockets now; the previous process
            // stops once it sees the marker.
            ready.notify_ready();
            if let Err(e) = std::fs::write(marker, std::process::id().to_string()) {
                tracing::error!(marker = %marker.display(), error = %e, "cannot tell the previous process to stop; exiting");
                std::process::exit(1);
            }
            if let Some(takeover) = &self.takeover {
                self.take_over(takeover).await;
            }
            self.warm().await;
            self.lifecycle.store_opened();
        } else {
            self.warm().await;
            self.lifecycle.store_opened();
            ready.notify_ready();
        }
        super::notify::ready();
        self.start(shutdown).await;
    }

    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.upstreams.start();
        let feed = self.feed.subscribe();
        // Changes between the warm-up and this subscription: load once more.
        self.warm().await;
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
                    let ready = self.lifecycle.readiness(self.room.store_healthy()).is_ok();
                    self.room.metrics().ready.set(i64::from(ready));
                    let lag = self.feed.lag_ms() as f64 / 1_000.0;
                    self.room.metrics().feed_lag.set(lag);
                }
                _ = snapshot.tick() => self.snapshot().await,
                _ = shutdown.changed() => break,
            }
        }
        follower.abort();
        self.room.metrics().ready.set(0);
        self.drain().await;
        // The event log's writer takes its queue every 50 ms: what was logged last goes to the
        // file before the process ends.
        if !self
            .room
            .event_log()
            .flush(std::time::Duration::from_secs(2))
        {
            tracing::warn!("the event log could not be written out before the exit");
        }
        // Pingora would now wait out the whole grace period; the work is done, so go.
        std::process::exit(0);
    }
}

impl NodeWork {
    async fn warm(&self) {
        if let Err(e) = self.room.warm().await {
            tracing::error!(error = %e, "loading zone state failed");
        }
    }

    /// Opens the store the previous process is about to release; a node that cannot is no
    /// use, so it says why and exits.
    async fn take_over(&self, takeover: &Takeover) {
        let Some(deferred) = &self.embedded else {
            return;
        };
        let (dir, wait, now_ms) = (takeover.dir.clone(), takeover.wait, self.clock.now_ms());
        let started = std::time::Instant::now();
        tracing::info!(data_dir = %dir.display(), "waiting for the previous process to release the store");
        let opened =
            tokio::task::spawn_blocking(move || EmbeddedStore::open_waiting(&dir, now_ms, wait))
                .await;
        match opened {
            Ok(Ok(store)) => {
                deferred.open(Arc::new(store));
                tracing::info!(
                    waited_ms = started.elapsed().as_millis() as u64,
                    "store taken over"
                );
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "usher: cannot take over the store; exiting");
                std::process::exit(1);
            }
            Err(e) => {
                tracing::error!(error = %e, "usher: opening the store failed; exiting");
                std::process::exit(1);
            }
        }
    }

    /// Shutdown: the listener stopped accepting and event streams are ending. A handover closes
    /// the store for the successor as soon as the running gate decisions are done; then the
    /// open requests get up to the grace period, and a plain shutdown saves the state.
    async fn drain(&self) {
        let handing_over = self.lifecycle.is_handing_over();
        let store = self.embedded.as_ref().and_then(|d| d.get().cloned());
        if let (true, Some(store)) = (handing_over, &store) {
            if !self.lifecycle.close_decisions(DECISIONS_DRAIN).await {
                tracing::warn!("gate decisions still running after {DECISIONS_DRAIN:?}; closing the store anyway");
            }
            let store = store.clone();
            match tokio::task::spawn_blocking(move || store.close()).await {
                Ok(Ok(())) => tracing::info!("store saved and handed over to the new process"),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "closing the store for the new process failed")
                }
                Err(e) => {
                    tracing::error!(error = %e, "closing the store for the new process failed")
                }
            }
        }
        let open = self.lifecycle.requests();
        if !self.lifecycle.wait_for_requests(self.grace_period).await {
            tracing::warn!(
                open = self.lifecycle.requests(),
                grace_period = ?self.grace_period,
                "grace period over with requests still open"
            );
        } else if open > 0 {
            tracing::info!(open, "open requests finished");
        }
        // A keep-alive connection idle when the drain began may carry one more request (it is
        // answered with `Connection: close`); closing it under the client could lose that one.
        // During an upgrade such a connection gets until the grace period to go; otherwise a
        // short linger, so that an idle browser does not hold the exit.
        let linger = if handing_over {
            self.grace_period
        } else {
            IDLE_LINGER
        };
        self.lifecycle.wait_for_connections(linger).await;
        if !handing_over {
            self.snapshot().await;
        }
        tracing::info!("background work stopped; state saved");
    }

    async fn snapshot(&self) {
        let Some(store) = self.embedded.as_ref().and_then(|d| d.get().cloned()) else {
            return;
        };
        // Off the runtime's threads: a snapshot of a long queue writes for a while.
        let started = std::time::Instant::now();
        match tokio::task::spawn_blocking(move || store.snapshot()).await {
            Ok(Ok(())) => {
                let took_ms = started.elapsed().as_millis() as u64;
                tracing::debug!(took_ms, "snapshot written");
            }
            Ok(Err(e)) => tracing::error!(error = %e, "writing the snapshot failed"),
            Err(e) => tracing::error!(error = %e, "writing the snapshot failed"),
        }
    }
}
