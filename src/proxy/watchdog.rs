//! The origin's deadline to start answering (`read_timeout`), kept apart from how long a
//! response may then sit idle (`idle_timeout`, for WebSockets and streams).
//!
//! Pingora has one upstream read timeout, applied to every read: the response header, each
//! piece of the body, and an upgraded tunnel. usher gives it the idle timeout and keeps the
//! first-byte deadline itself: when it passes before the response header arrived, the watchdog
//! shuts the upstream socket down, Pingora's read fails, and the proxy answers 504. The
//! watchdog holds a duplicate of the socket's descriptor, so the socket it shuts down can never
//! be another connection's, however late it fires.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A first-byte deadline on one upstream connection.
#[derive(Debug)]
pub(super) struct Watchdog {
    task: tokio::task::AbortHandle,
    /// Milliseconds after `start` at which the deadline passes.
    deadline_ms: Arc<AtomicU64>,
    start: Instant,
    timeout: Duration,
}

impl Watchdog {
    /// Arms a deadline `timeout` from now on the socket `fd` (borrowed from Pingora for the
    /// call); `fired` is set when it passes. `None` if the descriptor could not be duplicated.
    pub fn arm(fd: RawFd, timeout: Duration, fired: Arc<AtomicBool>) -> Option<Watchdog> {
        // SAFETY: Pingora hands `connected_to_upstream` the descriptor of the live upstream
        // socket and keeps it open for the duration of the call; it is only borrowed here to
        // duplicate it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let owned: OwnedFd = borrowed.try_clone_to_owned().ok()?;
        let start = Instant::now();
        let deadline_ms = Arc::new(AtomicU64::new(millis(timeout)));
        let deadline = deadline_ms.clone();
        let task = tokio::spawn(async move {
            loop {
                let at = start + Duration::from_millis(deadline.load(Ordering::Relaxed));
                tokio::time::sleep_until(at).await;
                // The deadline may have moved while asleep (more of the request was sent).
                if Instant::now() >= start + Duration::from_millis(deadline.load(Ordering::Relaxed))
                {
                    break;
                }
            }
            fired.store(true, Ordering::Release);
            let socket = std::net::TcpStream::from(owned);
            tracing::debug!(fd = socket.as_raw_fd(), "origin did not answer in time");
            let _ = socket.shutdown(std::net::Shutdown::Both);
        });
        Some(Watchdog {
            task: task.abort_handle(),
            deadline_ms,
            start,
            timeout,
        })
    }

    /// Moves the deadline to `timeout` from now: part of the request body was just sent, and
    /// the origin's time to answer starts when the request is complete.
    pub fn extend(&self) {
        let from_start = millis(self.start.elapsed() + self.timeout);
        self.deadline_ms.fetch_max(from_start, Ordering::Relaxed);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Disarmed: the response began, or the request is over. Dropping the task drops its
        // duplicate descriptor, never the connection.
        self.task.abort();
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[tokio::test]
    async fn a_silent_origin_is_cut_at_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut silent = std::net::TcpStream::connect(addr).expect("connect");
        let (_server, _) = listener.accept().expect("accept");
        let fired = Arc::new(AtomicBool::new(false));
        let dog = Watchdog::arm(silent.as_raw_fd(), Duration::from_millis(50), fired.clone())
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
    }

    #[tokio::test(start_paused = true)]
    async fn a_disarmed_or_extended_watchdog_stays_quiet() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let answered =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (_server, _) = listener.accept().expect("accept");
        let fired = Arc::new(AtomicBool::new(false));
        let timeout = Duration::from_millis(50);
        let dog = Watchdog::arm(answered.as_raw_fd(), timeout, fired.clone()).expect("armed");
        tokio::time::advance(Duration::from_millis(40)).await;
        dog.extend(); // more of the request went out: 50 ms from now
        tokio::time::advance(Duration::from_millis(40)).await;
        tokio::task::yield_now().await;
        assert!(
            !fired.load(Ordering::Acquire),
            "extended past the first deadline"
        );
        drop(dog); // the response header arrived
        tokio::time::advance(Duration::from_secs(1)).await;
        tokio::task::yield_now().await;
        assert!(
            !fired.load(Ordering::Acquire),
            "a disarmed watchdog stays quiet"
        );
        assert!(answered.peer_addr().is_ok(), "the connection is untouched");
    }
}
