//! `[server] proxy_protocol`: every connection to the listener starts with a PROXY protocol
//! header (an AWS NLB or HAProxy in front), read here off the raw TCP stream before anything
//! else (before the TLS handshake on a TLS listener). The client address it carries replaces
//! the socket's peer in the connection's socket digest, so the gate's per-client limits, the
//! logs and `X-Forwarded-For` all see the visitor rather than the balancer.
//!
//! A connection without a valid header within `header_timeout` is closed and counted
//! (`usher_proxy_protocol_refused_total`): on such a listener, a client that reached usher
//! directly must not be able to name its own address. The parsing is
//! [`crate::request::proxy_protocol`]; this file only reads and applies it.

use crate::metrics::Metrics;
use crate::request::proxy_protocol::{parse, Parsed, ProxyHeaderError};
use async_trait::async_trait;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest};
use std::os::unix::io::AsRawFd;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The longest header: a v2 header's 16 fixed bytes and its largest body.
const MAX_HEADER: usize = 16 + u16::MAX as usize;

/// Why a connection's header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bytes are not a header.
    #[error(transparent)]
    Header(#[from] ProxyHeaderError),
    /// The connection ended, failed or took too long.
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the PROXY header at the start of `stream` (within `timeout`), puts back the bytes
/// that followed it, and makes the address it names the stream's peer. A connection without a
/// valid header is counted in `metrics` (the caller closes it).
pub async fn read(
    stream: &mut L4Stream,
    timeout: Duration,
    metrics: &Metrics,
) -> Result<(), ReadError> {
    let read = read_header(stream, timeout).await;
    if let Err(e) = &read {
        metrics.proxy_headers_refused.inc();
        tracing::debug!(error = %e, "connection refused: no PROXY protocol header");
    }
    read
}

async fn read_header(stream: &mut L4Stream, timeout: Duration) -> Result<(), ReadError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    let header = loop {
        if let Parsed::Header(header) = parse(&buf)? {
            break header;
        }
        if buf.len() >= MAX_HEADER {
            return Err(ProxyHeaderError::Malformed("longer than any header").into());
        }
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))??;
        if read == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        buf.extend_from_slice(&chunk[..read]);
    };
    stream.rewind(&buf[header.len..]);
    if let Some(source) = header.source {
        let digest = SocketDigest::from_raw_fd(stream.as_raw_fd());
        let _ = digest.peer_addr.set(Some(source.into()));
        stream.set_socket_digest(digest);
    }
    Ok(())
}

/// Reads the header before the TLS handshake of a TLS listener.
pub struct BeforeTls {
    /// `[server] header_timeout`.
    pub timeout: Duration,
    /// Counts refused connections.
    pub metrics: Metrics,
}

#[async_trait]
impl PreTlsProcess for BeforeTls {
    async fn process(&self, stream: &mut L4Stream) -> pingora::Result<()> {
        read(stream, self.timeout, &self.metrics)
            .await
            .map_err(|e| pingora::Error::explain(pingora::ErrorType::AcceptError, e.to_string()))
    }
}
