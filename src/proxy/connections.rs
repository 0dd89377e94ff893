//! Every client connection, counted: beyond `[server] max_connections` a new connection gets
//! a short `503` with `Retry-After` and is closed, so a flood of idle or slow connections cannot
//! take the node's last file descriptors (the store, `/metrics` and the origin connections
//! need them too). `/_usher/health` and `/_usher/ready` are still answered on such a
//! connection, so probes see a full node as alive but not ready.
//!
//! Every HTTP/1 connection it serves gets the request-header deadline ([`HeaderDeadline`]);
//! HTTP/2 multiplexes requests on one connection, so its reads never pause between headers and
//! a per-connection header deadline would cut long-lived streams (Pingora's HTTP/2 server
//! bounds its own handshake). It also keeps idle keep-alive connections open through a drain
//! (see `cleanup`).
//!
//! On a plain listener with `[server] proxy_protocol`, it reads the PROXY header first
//! ([`proxy_header`]; a TLS listener reads it before the handshake instead).

use super::header_deadline::HeaderDeadline;
use super::proxy_header;
use crate::lifecycle::{Lifecycle, NotReady};
use crate::metrics::Metrics;
use crate::room::{readiness_json, HEALTH_JSON};
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long an over-limit connection is given to send its request line.
const OVER_LIMIT_READ: Duration = Duration::from_millis(500);

/// A server app (the proxy) behind a connection counter and limit.
pub struct Connections<A> {
    app: Arc<A>,
    lifecycle: Arc<Lifecycle>,
    metrics: Metrics,
    max: usize,
    /// `[server] header_timeout`.
    header_timeout: Duration,
    /// Read a PROXY protocol header first (a plain listener with `proxy_protocol`).
    proxy_header: bool,
}

impl<A> Connections<A> {
    /// `app` serving at most `max` connections at once, each given `header_timeout` to send
    /// each request's headers.
    pub fn new(
        app: A,
        lifecycle: Arc<Lifecycle>,
        metrics: Metrics,
        max: usize,
        header_timeout: Duration,
    ) -> Self {
        Connections {
            app: Arc::new(app),
            lifecycle,
            metrics,
            max,
            header_timeout,
            proxy_header: false,
        }
    }

    /// Every connection starts with a PROXY protocol header, read before anything else.
    pub fn with_proxy_header(mut self) -> Self {
        self.proxy_header = true;
        self
    }

    /// The stream with its PROXY header read; `None` (counted) without a valid one.
    async fn read_proxy_header(&self, stream: Stream) -> Option<Stream> {
        let mut l4 = match stream.into_any().downcast::<L4Stream>() {
            Ok(l4) => l4,
            Err(_) => {
                tracing::error!("a PROXY protocol listener was handed a stream that is not TCP");
                return None;
            }
        };
        proxy_header::read(&mut l4, self.header_timeout, &self.metrics)
            .await
            .ok()
            .map(|()| l4 as Stream)
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Connections<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let stream = match self.proxy_header {
            true => self.read_proxy_header(stream).await?,
            false => stream,
        };
        let _open = self.lifecycle.connection();
        self.metrics.connections_open.inc();
        let reused = if self.lifecycle.connections() > self.max {
            self.metrics.connections_refused.inc();
            over_limit(stream, self.lifecycle.readiness(true).is_ok()).await;
            None
        } else {
            let stream = match stream.selected_alpn_proto() {
                Some(ALPN::H2) => stream,
                _ => HeaderDeadline::wrap(stream, self.header_timeout),
            };
            self.app.process_new(stream, shutdown).await
        };
        self.metrics.connections_open.dec();
        reused
    }

    /// Pingora's proxy drops every keep-alive connection waiting for its next request when
    /// the listener stops; a client sending that request at that moment gets a reset, a
    /// failed request. Left alone, such a connection carries its next request, answered with
    /// `Connection: close`, and the drain waits for it (`service::background`).
    async fn cleanup(&self) {}
}

/// The answer on a connection beyond the limit, from its request line alone.
async fn over_limit(mut stream: Stream, serving: bool) {
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(OVER_LIMIT_READ, stream.read(&mut buf)).await;
    let line = match read {
        Ok(Ok(n)) => &buf[..n],
        _ => &[][..],
    };
    let answer = over_limit_answer(line, serving);
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

/// What a connection beyond the limit is told, given the start of its request.
fn over_limit_answer(request: &[u8], serving: bool) -> String {
    let path = request
        .strip_prefix(b"GET ")
        .and_then(|rest| rest.split(|b| *b == b' ').next())
        .unwrap_or_default();
    let (status, extra, body) = match path {
        b"/_usher/health" => ("200 OK", "", HEALTH_JSON.to_string()),
        b"/_usher/ready" => {
            let why = match serving {
                true => NotReady::ConnectionLimit,
                false => NotReady::Draining,
            };
            ("503 Service Unavailable", "", readiness_json(Err(why)).1)
        }
        _ => (
            "503 Service Unavailable",
            "Retry-After: 2\r\n",
            "{\"error\":\"this node is at its connection limit; retry shortly\"}".to_string(),
        ),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::over_limit_answer;

    #[test]
    fn over_the_limit_only_probes_get_a_real_answer() {
        for (request, status) in [
            (&b"GET /_usher/health HTTP/1.1\r\n"[..], "200"),
            (b"GET /_usher/ready HTTP/1.1\r\n", "503"),
            (b"GET /checkout HTTP/1.1\r\n", "503"),
            (b"POST /_usher/health HTTP/1.1\r\n", "503"),
            (b"GET /_usher/healthz HTTP/1.1\r\n", "503"),
            (b"", "503"),
            (b"\xff\xfe garbage", "503"),
        ] {
            let answer = over_limit_answer(request, true);
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status} ")),
                "{request:?}: {answer}"
            );
            assert!(answer.contains("Connection: close\r\n"));
        }
        assert!(over_limit_answer(b"GET /x HTTP/1.1\r\n", true).contains("Retry-After: 2\r\n"));
    }
}
