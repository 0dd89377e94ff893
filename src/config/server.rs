//! `[server]`.

use super::checker::Checker;
use super::model::*;
use super::raw::*;
use crate::request::client::{Cidr, TrustedProxies};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

pub(super) fn server(
    c: &mut Checker,
    raw: &RawServer,
    upstreams: &BTreeMap<String, UpstreamConfig>,
    base: &std::path::Path,
) -> ServerConfig {
    c.unknown_keys("server", &raw.extra);
    let listen = c
        .addr(
            "server.listen".into(),
            raw.listen.as_deref().unwrap_or("127.0.0.1:8080"),
        )
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let threads = c.positive("server.threads".into(), raw.threads, false, 1) as usize;
    let default_upstream = match (&raw.default_upstream, upstreams.len()) {
        (Some(name), _) => {
            if !upstreams.contains_key(name) {
                c.problem(
                    "server.default_upstream",
                    format!("no upstream is called `{name}`"),
                );
            }
            name.clone()
        }
        (None, 1) => upstreams.keys().next().cloned().unwrap_or_default(),
        (None, 0) => String::new(),
        (None, _) => {
            c.problem(
                "server.default_upstream",
                "is required when there is more than one upstream",
            );
            String::new()
        }
    };
    let grace_period = c.duration("server.grace_period".into(), &raw.grace_period, "10s");
    let default_host = raw
        .default_host
        .as_deref()
        .and_then(|text| c.host("server.default_host".into(), text));
    let trusted_proxies = TrustedProxies::new(
        raw.trusted_proxies
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, text)| match text.parse::<Cidr>() {
                Ok(cidr) => Some(cidr),
                Err(e) => {
                    c.problem(format!("server.trusted_proxies[{i}]"), e.to_string());
                    None
                }
            })
            .collect(),
    );
    let keepalive_timeout = c.duration(
        "server.keepalive_timeout".into(),
        &raw.keepalive_timeout,
        "60s",
    );
    if keepalive_timeout < Duration::from_secs(1) {
        c.problem("server.keepalive_timeout", "must be at least 1s");
    }
    let header_timeout = c.duration("server.header_timeout".into(), &raw.header_timeout, "10s");
    if header_timeout < Duration::from_secs(1) {
        c.problem("server.header_timeout", "must be at least 1s");
    }
    let max_event_streams = c.positive(
        "server.max_event_streams".into(),
        raw.max_event_streams,
        false,
        10_000,
    );
    let tls = tls(c, raw.tls.as_ref(), base);
    let redirect_listen = raw
        .redirect_listen
        .as_deref()
        .and_then(|text| c.addr("server.redirect_listen".into(), text));
    if redirect_listen.is_some() && tls.is_none() {
        c.problem(
            "server.redirect_listen",
            "redirects to HTTPS, so it needs `server.tls`",
        );
    }
    if redirect_listen == Some(listen) {
        c.problem("server.redirect_listen", "must differ from `server.listen`");
    }
    let max_connections = raw.max_connections.map(|_| {
        c.positive(
            "server.max_connections".into(),
            raw.max_connections,
            false,
            1,
        )
    });
    ServerConfig {
        listen,
        threads,
        default_upstream,
        grace_period,
        default_host,
        trusted_proxies,
        keepalive_timeout,
        max_connections,
        header_timeout,
        max_event_streams,
        // Resolved against the data directory once `[store]` is read.
        upgrade_sock: std::path::PathBuf::new(),
        tls,
        redirect_listen,
        proxy_protocol: raw.proxy_protocol.unwrap_or(false),
    }
}

/// `[server] tls`: the certificate files (read and checked by `crate::tls` at start, by
/// `usher check` and on a reload).
fn tls(c: &mut Checker, raw: Option<&RawTls>, base: &std::path::Path) -> Option<TlsConfig> {
    let (certs, one) = match raw? {
        RawTls::One(cert) => (std::slice::from_ref(cert), true),
        RawTls::Many(certs) => (certs.as_slice(), false),
    };
    if certs.is_empty() {
        c.problem("server.tls", "must name at least one certificate");
        return None;
    }
    let mut files = Vec::new();
    for (i, cert) in certs.iter().enumerate() {
        let path = match one {
            true => "server.tls".to_string(),
            false => format!("server.tls[{i}]"),
        };
        c.unknown_keys(&path, &cert.extra);
        let mut file = |key: &str, value: &Option<String>| match value.as_deref() {
            None | Some("") => {
                c.problem(format!("{path}.{key}"), "is required (a PEM file)");
                None
            }
            Some(name) => Some(base.join(name)),
        };
        if let (Some(cert), Some(key)) = (file("cert", &cert.cert), file("key", &cert.key)) {
            files.push(CertFiles { cert, key });
        }
    }
    Some(TlsConfig { certs: files })
}
