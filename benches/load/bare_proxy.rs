//! A bare Pingora 0.9 pass-through HTTP proxy (no TLS, no logic): the baseline usher's admitted
//! path is measured against in `benches/load/run.sh`. Same server settings as usher's proxy
//! service: one service, one worker thread.
//!
//! Usage: `cargo run --release --example bare_proxy -- --listen 127.0.0.1:8081 --upstream 127.0.0.1:9000`

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{http_proxy_service, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use std::net::SocketAddr;

/// Forwards every request to one upstream address.
struct BareProxy {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for BareProxy {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn usage(message: &str) -> ! {
    eprintln!("bare_proxy: {message}");
    eprintln!("usage: bare_proxy --listen ADDR --upstream ADDR");
    std::process::exit(2)
}

fn main() {
    let mut listen: Option<String> = None;
    let mut upstream: Option<SocketAddr> = None;
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
            "-h" | "--help" => usage("a bare pass-through proxy"),
            other => usage(&format!("unknown argument `{other}`")),
        }
    }
    let listen = listen.unwrap_or_else(|| usage("--listen is required"));
    let upstream = upstream.unwrap_or_else(|| usage("--upstream is required"));

    let conf = ServerConf {
        threads: 1,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, BareProxy { upstream });
    proxy.add_tcp(&listen);
    proxy.threads = Some(1);
    server.add_service(proxy);
    eprintln!("bare_proxy: listening on {listen}, forwarding to {upstream}");
    server.run_forever()
}
