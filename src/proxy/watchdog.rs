//! The origin's deadline to start answering (`read_timeout`), kept apart from how long a
//! response may then sit idle (`idle_timeout`, for WebSockets and streams).
//!
//! Pingora has one upstream read timeout, applied to every read: the response header, each
//! piece of the body, and an upgraded tunnel. usher gives it the idle timeout and keeps the
//! first-byte deadline itself: when it passes before the response header arrived, the socket is
//! shut down, Pingora's read fails, and the proxy answers 504.
//!
//! One [`Watchdogs`] per proxy holds every armed deadline; a sweeper task looks at them every
//! [`SWEEP`]. Arming and disarming are a map insert and remove, no task per request (a task per
//! request cost about a sixth of the admitted path's throughput). Each armed deadline holds a
//! duplicate of the socket's descriptor, so the socket it shuts down can never be another
//! connection's, however late it fires.

use std::collections::BTreeMap;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// How often the sweeper looks for passed deadlines: how late a 504 may come.
pub(super) const SWEEP: Duration = Duration::from_millis(50);

/// A deadline's place in the map: when it passes, and a number that tells equal times apart.
type Key = (Instant, u64);

struct Armed {
    socket: OwnedFd,
    fired: Arc<AtomicBool>,
}

/// Every armed first-byte deadline of one proxy.
#[derive(Default)]
pub(super) struct Watchdogs {
    armed: Mutex<BTreeMap<Key, Armed>>,
    next: AtomicU64,
    sweeper: OnceLock<()>,
}

/// One armed deadline; dropping it disarms it.
pub(super) struct Watchdog {
    dogs: Arc<Watchdogs>,
    key: Key,
    timeout: Duration,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog").field("key", &self.key).finish()
    }
}

impl Watchdogs {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Armed>> {
        // A panic while holding the lock leaves a consistent map: go on with it.
        self.armed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arms a deadline `timeout` from now on the socket `fd` (borrowed from Pingora for the
    /// call); `fired` is set when it passes. `None` if the descriptor could not be duplicated.
    pub fn arm(
        self: &Arc<Self>,
        fd: RawFd,
        timeout: Duration,
        fired: Arc<AtomicBool>,
    ) -> Option<Watchdog> {
        // SAFETY: Pingora hands `connected_to_upstream` the descriptor of the live upstream
        // socket and keeps it open for the duration of the call; it is only borrowed here to
        // duplicate it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = borrowed.try_clone_to_owned().ok()?;
        self.sweeper.get_or_init(|| {
            let dogs = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut every = tokio::time::interval(SWEEP);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    match dogs.upgrade() {
                        Some(dogs) => dogs.sweep(Instant::now()),
                        None => return,
                    }
                }
            });
        });
        let key = (
            Instant::now() + timeout,
            self.next.fetch_add(1, Ordering::Relaxed),
        );
        self.lock().insert(key, Armed { socket, fired });
        Some(Watchdog {
            dogs: self.clone(),
            key,
            timeout,
        })
    }

    /// Fires every deadline that passed by `now`: marks it and shuts its socket down.
    fn sweep(&self, now: Instant) {
        let passed = {
            let mut armed = self.lock();
            let later = armed.split_off(&(now, u64::MAX));
            std::mem::replace(&mut *armed, later)
        };
        for (_, dog) in passed {
            dog.fired.store(true, Ordering::Release);
            let socket = std::net::TcpStream::from(dog.socket);
            tracing::debug!(peer = ?socket.peer_addr().ok(), "origin did not answer in time");
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Watchdog {
    /// Moves the deadline to its timeout from now: part of the request body was just sent, and
    /// the origin's time to answer starts when the request is complete.
    pub fn extend(&mut self) {
        let key = (
            Instant::now() + self.timeout,
            self.dogs.next.fetch_add(1, Ordering::Relaxed),
        );
        let mut armed = self.dogs.lock();
        if let Some(dog) = armed.remove(&self.key) {
            armed.insert(key, dog);
            self.key = key;
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Disarmed: the response began, or the request is over. The duplicate descriptor is
        // closed outside the lock.
        let dog = self.dogs.lock().remove(&self.key);
        drop(dog);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    fn connected() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }

    #[tokio::test]
    async fn a_silent_origin_is_cut_at_the_deadline() {
        let dogs = Arc::new(Watchdogs::default());
        let (mut silent, _server) = connected();
        let fired = Arc::new(AtomicBool::new(false));
        let dog = dogs
            .arm(silent.as_raw_fd(), Duration::from_millis(50), fired.clone())
            .expect("armed");
        // The shutdown ends a blocking read with end-of-file.
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = [0u8; 1];
            silent.read(&mut buf)
        });
        let n = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("cut within the deadline")
            .expect("joined")
            .expect("read");
        assert_eq!(n, 0);
        assert!(fired.load(Ordering::Acquire));
        drop(dog);
        assert!(dogs.lock().is_empty(), "nothing left armed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_disarmed_or_extended_watchdog_stays_quiet() {
        let dogs = Arc::new(Watchdogs::default());
        let (answered, _server) = connected();
        let fired = Arc::new(AtomicBool::new(false));
        let timeout = Duration::from_millis(500);
        let mut dog = dogs
            .arm(answered.as_raw_fd(), timeout, fired.clone())
            .expect("armed");
        tokio::time::advance(Duration::from_millis(400)).await;
        dog.extend(); // more of the request went out: 500 ms from now
        tokio::time::advance(Duration::from_millis(400)).await;
        dogs.sweep(Instant::now());
        assert!(
            !fired.load(Ordering::Acquire),
            "extended past the first deadline"
        );
        drop(dog); // the response header arrived
        tokio::time::advance(Duration::from_secs(5)).await;
        dogs.sweep(Instant::now());
        assert!(
            !fired.load(Ordering::Acquire),
            "a disarmed watchdog stays quiet"
        );
        assert!(dogs.lock().is_empty());
        assert!(answered.peer_addr().is_ok(), "the connection is untouched");
    }
}
