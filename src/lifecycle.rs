//! Where a node is in its life, shared by the proxy (which answers requests) and the service
//! (which starts, drains and hands over the node): whether the store is open yet, whether the
//! node is draining, and how many connections, requests and gate decisions are in flight.
//!
//! The phases, in order (`docs/architecture.md`, "Restarts and upgrades"):
//!
//! - **starting**: listening, but the store is not open yet (an upgrade waits for the previous
//!   process to release the data directory); requests that need the store wait for it.
//! - **serving**.
//! - **draining**: a shutdown or an upgrade began; the listener no longer accepts, event streams
//!   end (browsers reconnect, to the successor if there is one), open requests finish.
//! - **handed over** (upgrade only): the store was closed for the successor; a request that
//!   still reaches this process is sent back to the client to retry on a fresh connection.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The node's phase and its in-flight counters.
#[derive(Debug)]
pub struct Lifecycle {
    /// Read on every request: an atomic, where `store_open` wakes the waiters.
    open: AtomicBool,
    store_open: watch::Sender<bool>,
    draining: watch::Sender<bool>,
    /// Set once the store is being closed for a successor: no new gate decision may start.
    closing: AtomicBool,
    handing_over: AtomicBool,
    connections: AtomicUsize,
    requests: AtomicUsize,
    decisions: AtomicUsize,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            open: AtomicBool::new(false),
            store_open: watch::channel(false).0,
            draining: watch::channel(false).0,
            closing: AtomicBool::new(false),
            handing_over: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            decisions: AtomicUsize::new(0),
        }
    }
}

/// Why a node is not ready for new visitors (`/_usher/ready` says it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The store is not open yet.
    Starting,
    /// The node is shutting down or handing over to a new process.
    Draining,
    /// The store cannot write (a full disk, a failed snapshot).
    StoreUnhealthy,
    /// The node is at `server.max_connections`.
    ConnectionLimit,
}

impl NotReady {
    /// A short reason for the readiness document and logs.
    pub fn reason(self) -> &'static str {
        match self {
            NotReady::Starting => "starting",
            NotReady::Draining => "draining",
            NotReady::StoreUnhealthy => "store cannot write",
            NotReady::ConnectionLimit => "connection limit",
        }
    }
}

impl Lifecycle {
    /// The store is open: requests waiting for it go on.
    pub fn store_opened(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.store_open.send_replace(true);
    }

    /// Whether the store is open.
    pub fn is_store_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Waits until the store is open, at most `limit`; true if it is.
    pub async fn wait_for_store(&self, limit: Duration) -> bool {
        let mut open = self.store_open.subscribe();
        let opened = tokio::time::timeout(limit, open.wait_for(|open| *open)).await;
        matches!(opened, Ok(Ok(_)))
    }

    /// A shutdown or an upgrade began.
    pub fn begin_drain(&self, handing_over: bool) {
        self.handing_over.store(handing_over, Ordering::SeqCst);
        self.draining.send_replace(true);
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Whether this drain hands the node over to a new process.
    pub fn is_handing_over(&self) -> bool {
        self.handing_over.load(Ordering::SeqCst)
    }

    /// Resolves when the node starts draining (event streams end on it).
    pub async fn drained(&self) {
        let mut draining = self.draining.subscribe();
        let _ = draining.wait_for(|d| *d).await;
    }

    /// Readiness for new visitors, given whether the store can write.
    pub fn readiness(&self, store_healthy: bool) -> Result<(), NotReady> {
        if self.is_draining() {
            Err(NotReady::Draining)
        } else if !self.is_store_open() {
            Err(NotReady::Starting)
        } else if !store_healthy {
            Err(NotReady::StoreUnhealthy)
        } else {
            Ok(())
        }
    }

    /// Counts an open client connection until the guard drops.
    pub fn connection(&self) -> InFlight<'_> {
        InFlight::new(&self.connections)
    }

    /// Open client connections.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Counts a request until the guard drops (an owned guard: it lives in the request's
    /// context).
    pub fn request(self: &Arc<Self>) -> RequestGuard {
        self.requests.fetch_add(1, Ordering::SeqCst);
        RequestGuard(self.clone())
    }

    /// Requests in flight (forwards and event streams included).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Starts a gate decision (the part of a request that uses the store), unless the store is
    /// being closed for a successor: then `None`, and the request must not touch the store.
    pub fn decision(&self) -> Option<InFlight<'_>> {
        // Counted before the flag is read, and the closer sets the flag before it reads the
        // count (both SeqCst): either the closer waits for this decision or this decision sees
        // the flag.
        let guard = InFlight::new(&self.decisions);
        (!self.closing.load(Ordering::SeqCst)).then_some(guard)
    }

    /// Stops new gate decisions and waits (at most `limit`) for the running ones to finish;
    /// true if none is left.
    pub async fn close_decisions(&self, limit: Duration) -> bool {
        self.closing.store(true, Ordering::SeqCst);
        wait_for_zero(&self.decisions, limit).await
    }

    /// Whether the store was closed for a successor.
    pub fn is_handed_over(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Waits (at most `limit`) until no client connection is open; true if none is.
    pub async fn wait_for_connections(&self, limit: Duration) -> bool {
        wait_for_zero(&self.connections, limit).await
    }

    /// Waits (at most `limit`) until no request is in flight; true if none is.
    pub async fn wait_for_requests(&self, limit: Duration) -> bool {
        wait_for_zero(&self.requests, limit).await
    }
}

/// Polls a counter down to zero. Polling (every 5 ms) keeps the hot path to one atomic add and
/// one subtract per request; this runs only at shutdown.
async fn wait_for_zero(counter: &AtomicUsize, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if counter.load(Ordering::SeqCst) == 0 {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A request in flight, counted until dropped.
#[derive(Debug)]
pub struct RequestGuard(Arc<Lifecycle>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One unit of in-flight work, counted until dropped.
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_decision_started_before_the_close_is_waited_for_and_none_starts_after() {
        let life = Lifecycle::default();
        let running = life.decision().expect("open");
        assert!(
            !life.close_decisions(Duration::from_millis(20)).await,
            "a running decision holds the close"
        );
        assert!(life.decision().is_none(), "no decision starts once closing");
        drop(running);
        assert!(life.close_decisions(Duration::from_millis(20)).await);
        assert!(life.is_handed_over());
    }

    #[tokio::test]
    async fn readiness_follows_the_phases() {
        let life = Lifecycle::default();
        assert_eq!(life.readiness(true), Err(NotReady::Starting));
        life.store_opened();
        assert!(life.wait_for_store(Duration::from_millis(1)).await);
        assert_eq!(life.readiness(true), Ok(()));
        assert_eq!(life.readiness(false), Err(NotReady::StoreUnhealthy));
        life.begin_drain(false);
        assert_eq!(life.readiness(true), Err(NotReady::Draining));
        // Resolves at once: the drain began.
        life.drained().await;
    }

    #[tokio::test]
    async fn counters_go_back_down() {
        let life = Arc::new(Lifecycle::default());
        {
            let _c = life.connection();
            let _r = life.request();
            assert_eq!((life.connections(), life.requests()), (1, 1));
            assert!(!life.wait_for_requests(Duration::from_millis(10)).await);
        }
        assert_eq!((life.connections(), life.requests()), (0, 0));
        assert!(life.wait_for_requests(Duration::from_millis(10)).await);
    }
}
