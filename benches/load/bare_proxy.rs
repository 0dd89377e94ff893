//! A bare Pingora 0.9 pass-through HTTP proxy (no TLS, no logic): the baseline usher's admitted
//! path is measured against in `benches/load/run.sh`. Same server settings as usher's proxy
//! service: one service, one worker thread.
//!
//! Usage: `cargo run --release --example bare_proxy -- --listen 127.0.0.1:8081 --upstream 127.0.0.1:9000`
//!
//! `--respond BYTES` instead answers every request itself from `request_filter` with a fixed HTML
//! body of that size, the way usher writes its waiting page: the floor for usher's waiting page.

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{http_proxy_service, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use std::net::SocketAddr;
use std::time::Duration;

/// Forwards every request to one upstream address, or answers them all with `page`.
struct BareProxy {
    upstream: SocketAddr,
    /// The body to answer with (`--respond`), if any.
    page: Option<Bytes>,
    /// Connect and read timeouts for the upstream, as usher sets them (`--timeouts`).
    timeouts: Option<(Duration, Duration)>,
}

#[async_trait]
impl ProxyHttp for BareProxy {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        let Some(page) = &self.page else {
            return Ok(false);
        };
        // The same response shape as usher's `write_reply`.
        let mut header = ResponseHeader::build(200, Some(3))?;
        header.insert_header("content-type", "text/html; charset=utf-8")?;
        header.insert_header("content-length", page.len().to_string())?;
        header.insert_header("cache-control", "no-store")?;
        session
            .write_response_header(Box::new(header), false)
            .await?;
        session
            .write_response_body(Some(page.clone()), true)
            .await?;
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        if let Some((connect, read)) = self.timeouts {
            peer.options.connection_timeout = Some(connect);
            peer.options.read_timeout = Some(read);
        }
        Ok(Box::new(peer))
    }
}

fn usage(message: &str) -> ! {
    eprintln!("bare_proxy: {message}");
    eprintln!("usage: bare_proxy --listen ADDR (--upstream ADDR [--timeouts] | --respond BYTES)");
    eprintln!("  --timeouts       set usher's default upstream timeouts (connect 2 s, read 30 s)");
    eprintln!("  --respond BYTES  answer every request with a BYTES-long page instead of proxying");
    std::process::exit(2)
}

fn main() {
    let mut listen: Option<String> = None;
    let mut upstream: Option<SocketAddr> = None;
    let mut timeouts = None;
    let mut page = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next(),
            "--upstream" => {
                let text = args
                    .next()
                    .unwrap_or_else(|| usage("--upstream needs a value"));
                upstream = Some(
                    text.parse()
                        .unwrap_or_else(|_| usage(&format!("`{text}` is not an ip:port address"))),
                );
            }
            "--timeouts" => timeouts = Some((Duration::from_secs(2), Duration::from_secs(30))),
            "--respond" => {
                let text = args
                    .next()
                    .unwrap_or_else(|| usage("--respond needs a size"));
                let size: usize = text
                    .parse()
                    .unwrap_or_else(|_| usage(&format!("`{text}` is not a size in bytes")));
                page = Some(html_page(size));
            }
            "-h" | "--help" => usage("a bare pass-through proxy"),
            other => usage(&format!("unknown argument `{other}`")),
        }
    }
    let listen = listen.unwrap_or_else(|| usage("--listen is required"));
    let upstream = match (upstream, &page) {
        (Some(upstream), _) => upstream,
        // Never used: every request is answered before an upstream is picked.
        (None, Some(_)) => SocketAddr::from(([127, 0, 0, 1], 9)),
        (None, None) => usage("--upstream or --respond is required"),
    };

    let conf = ServerConf {
        threads: 1,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(
        &server.configuration,
        BareProxy {
            upstream,
            page,
            timeouts,
        },
    );
    proxy.add_tcp(&listen);
    proxy.threads = Some(1);
    server.add_service(proxy);
    eprintln!("bare_proxy: listening on {listen}");
    server.run_forever()
}

/// An HTML page of exactly `size` bytes (at least the skeleton's).
fn html_page(size: usize) -> Bytes {
    let head = "<!doctype html><html><head><title>Waiting</title></head><body><p>";
    let tail = "</p></body></html>\n";
    let fill = size.saturating_sub(head.len() + tail.len());
    Bytes::from(format!("{head}{}{tail}", "x".repeat(fill)))
}
