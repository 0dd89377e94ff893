//! A total deadline for a request's headers (`[server] header_timeout`). Pingora times each
//! read on its own, so a client sending one header line every few seconds (slowloris) holds a
//! connection and its memory for as long as it likes. [`HeaderDeadline`] wraps the client's
//! stream: its reads fail once the headers took longer than the deadline, which ends the
//! connection.
//!
//! The clock starts when the connection opens (for its first request) or at the first byte of
//! each later request (the idle time between requests is `keepalive_timeout`'s). The proxy
//! stops it once the headers are read ([`disarm`], in `early_request_filter`) and sets it for
//! the next request when a request ends ([`arm_next`], in `logging`), so request bodies,
//! event streams and upgraded connections are never cut by it.

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::SslDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// No deadline: the headers were read.
const OFF: u8 = 0;
/// The deadline starts with the next byte read.
const AT_FIRST_BYTE: u8 = 1;
/// The deadline runs.
const RUNNING: u8 = 2;

/// A client stream whose request headers must arrive within a deadline.
#[derive(Debug)]
pub struct HeaderDeadline {
    inner: Stream,
    timeout: Duration,
    /// `OFF`, `AT_FIRST_BYTE` or `RUNNING`: set by the proxy through a shared reference.
    phase: AtomicU8,
    /// When the running deadline passes.
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl HeaderDeadline {
    /// Wraps a new connection's stream; its first request's headers are due `timeout` from now.
    pub fn wrap(inner: Stream, timeout: Duration) -> Stream {
        Box::new(HeaderDeadline {
            inner,
            timeout,
            phase: AtomicU8::new(RUNNING),
            deadline: Instant::now() + timeout,
            sleep: None,
        })
    }

    fn expired() -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, "request headers took too long")
    }
}

/// The headers were read: no deadline until the next request.
pub fn disarm(stream: Option<&Stream>) {
    if let Some(wrapped) = stream.and_then(|s| s.as_any().downcast_ref::<HeaderDeadline>()) {
        wrapped.phase.store(OFF, Ordering::Release);
    }
}

/// A request ended: the next one's headers are due `header_timeout` after its first byte.
pub fn arm_next(stream: Option<&Stream>) {
    if let Some(wrapped) = stream.and_then(|s| s.as_any().downcast_ref::<HeaderDeadline>()) {
        wrapped.phase.store(AT_FIRST_BYTE, Ordering::Release);
    }
}

impl AsyncRead for HeaderDeadline {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let phase = this.phase.load(Ordering::Acquire);
        if phase == OFF {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        let now = Instant::now();
        match (&read, phase) {
            (Poll::Ready(Ok(())), AT_FIRST_BYTE) if buf.filled().len() > before => {
                this.deadline = now + this.timeout;
                let _ = this.phase.compare_exchange(
                    AT_FIRST_BYTE,
                    RUNNING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                return read;
            }
            (Poll::Ready(Ok(())), RUNNING) if now >= this.deadline => {
                return Poll::Ready(Err(Self::expired()))
            }
            (Poll::Pending, RUNNING) => {}
            _ => return read,
        }
        // Nothing to read and the deadline runs: wake when it passes.
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Self::expired())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for HeaderDeadline {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for HeaderDeadline {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for HeaderDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeaderDeadline {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeaderDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
}

impl GetProxyDigest for HeaderDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for HeaderDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, socket_digest: SocketDigest) {
        self.inner.set_socket_digest(socket_digest)
    }
}

#[async_trait]
impl Peek for HeaderDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
