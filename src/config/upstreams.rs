//! `[upstreams.NAME]`: where the shop is (addresses or host names), how to reach it (timeouts,
//! TLS, `Host`), how to tell it is up (health checks) and how requests are spread over it.

use super::checker::Checker;
use super::model::*;
use super::raw::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub(super) fn upstreams(
    c: &mut Checker,
    raw: &BTreeMap<String, RawUpstream>,
    base: &Path,
) -> BTreeMap<String, UpstreamConfig> {
    let mut out = BTreeMap::new();
    if raw.is_empty() {
        c.problem("upstreams", "at least one upstream is required");
    }
    for (name, up) in raw {
        let path = format!("upstreams.{name}");
        c.unknown_keys(&path, &up.extra);
        c.plain_name(&path, name, "metric labels");
        let addrs: Vec<OriginAddr> = match &up.addrs {
            None => {
                c.problem(format!("{path}.addrs"), "is required");
                Vec::new()
            }
            Some(list) if list.is_empty() => {
                c.problem(format!("{path}.addrs"), "must name at least one address");
                Vec::new()
            }
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(i, a)| match origin_addr(a) {
                    Ok(addr) => Some(addr),
                    Err(why) => {
                        c.problem(format!("{path}.addrs[{i}]"), why);
                        None
                    }
                })
                .collect(),
        };
        let connect_timeout =
            c.duration(format!("{path}.connect_timeout"), &up.connect_timeout, "2s");
        let read_timeout = c.duration(format!("{path}.read_timeout"), &up.read_timeout, "30s");
        let idle_timeout = c.duration(format!("{path}.idle_timeout"), &up.idle_timeout, "1h");
        let resolve_every = c.duration(format!("{path}.resolve_every"), &up.resolve_every, "30s");
        for (key, value) in [
            ("connect_timeout", connect_timeout),
            ("read_timeout", read_timeout),
            ("idle_timeout", idle_timeout),
        ] {
            if value.is_zero() {
                c.problem(format!("{path}.{key}"), "must be > 0");
            }
        }
        if resolve_every < Duration::from_secs(1) {
            c.problem(format!("{path}.resolve_every"), "must be at least 1s");
        }
        let tls = tls(c, &path, up, base);
        let host_header = up
            .host_header
            .as_deref()
            .and_then(|text| header_host(c, format!("{path}.host_header"), text));
        let health_check = up
            .health_check
            .as_ref()
            .and_then(|raw| health_check(c, &format!("{path}.health_check"), raw));
        let balance = match up.balance.as_deref() {
            None | Some("round_robin") => Balance::RoundRobin,
            Some("least_connections") => Balance::LeastConnections,
            Some("visitor") => Balance::Visitor,
            Some(other) => {
                c.problem(
                    format!("{path}.balance"),
                    format!(
                        "`{other}` is not a balancing policy: round_robin, least_connections or visitor"
                    ),
                );
                Balance::RoundRobin
            }
        };
        out.insert(
            name.clone(),
            UpstreamConfig {
                name: name.clone(),
                addrs,
                connect_timeout,
                read_timeout,
                idle_timeout,
                resolve_every,
                tls,
                host_header,
                health_check,
                balance,
            },
        );
    }
    out
}

/// `tls`, `sni` and `ca_file`: the last two only with `tls = true`.
fn tls(c: &mut Checker, path: &str, up: &RawUpstream, base: &Path) -> Option<UpstreamTls> {
    let sni = up
        .sni
        .as_deref()
        .and_then(|text| header_host(c, format!("{path}.sni"), text));
    let ca_file = up.ca_file.as_deref().map(|file| base.join(file));
    if let Some(file) = &ca_file {
        if let Err(e) = std::fs::metadata(file) {
            c.problem(
                format!("{path}.ca_file"),
                format!("cannot read {}: {e}", file.display()),
            );
        }
    }
    if up.tls != Some(true) {
        for (key, set) in [("sni", up.sni.is_some()), ("ca_file", ca_file.is_some())] {
            if set {
                c.problem(format!("{path}.{key}"), "only applies with `tls = true`");
            }
        }
        return None;
    }
    Some(UpstreamTls { sni, ca_file })
}

/// A host name (or address) to send as `Host` or SNI: canonical ([`Checker::host`]), and
/// given without a port.
fn header_host(c: &mut Checker, path: String, text: &str) -> Option<String> {
    let host = c.host(path.clone(), text)?;
    // A `:` the canonical form lost was a port's (an IPv6 address keeps its own).
    if text.contains(':') && !host.contains(':') {
        c.problem(path, format!("`{text}` has a port; give the name alone"));
        return None;
    }
    Some(host)
}

fn health_check(c: &mut Checker, path: &str, raw: &RawHealthCheck) -> Option<HealthCheck> {
    c.unknown_keys(path, &raw.extra);
    let probe = match (&raw.path, raw.tcp) {
        (Some(p), None | Some(false))
            if p.starts_with('/') && p.bytes().all(|b| (0x21..0x7f).contains(&b)) =>
        {
            Probe::Http(p.clone())
        }
        (Some(p), None | Some(false)) => {
            c.problem(
                format!("{path}.path"),
                format!("`{p}` is not a path (it starts with `/`, no spaces or controls)"),
            );
            return None;
        }
        (None, Some(true)) => Probe::Tcp,
        (Some(_), Some(true)) => {
            c.problem(
                path.to_string(),
                "is either `path` (HTTP) or `tcp = true`, not both",
            );
            return None;
        }
        (None, _) => {
            c.problem(
                path.to_string(),
                "needs `path = \"/health\"` or `tcp = true`",
            );
            return None;
        }
    };
    let interval = c.duration(format!("{path}.interval"), &raw.interval, "5s");
    let timeout = c.duration(format!("{path}.timeout"), &raw.timeout, "2s");
    if interval < Duration::from_millis(100) {
        c.problem(format!("{path}.interval"), "must be at least 100ms");
    }
    if timeout.is_zero() || timeout > interval.max(Duration::from_millis(100)) {
        c.problem(
            format!("{path}.timeout"),
            "must be > 0 and at most the interval",
        );
    }
    let fall = c.positive(format!("{path}.fall"), raw.fall, false, 2);
    let rise = c.positive(format!("{path}.rise"), raw.rise, false, 2);
    Some(HealthCheck {
        probe,
        interval,
        timeout,
        fall,
        rise,
    })
}

/// An `addrs` entry: `ip:port`, `[ipv6]:port` or `name:port`.
pub(super) fn origin_addr(text: &str) -> Result<OriginAddr, String> {
    let bad = |why: &str| format!("`{text}` {why}; give host:port, like \"shop.internal:8443\"");
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        if addr.port() == 0 {
            return Err(bad("has port 0"));
        }
        return Ok(OriginAddr {
            host: addr.ip().to_string(),
            port: addr.port(),
        });
    }
    let Some((name, port)) = text.rsplit_once(':') else {
        return Err(bad("has no port"));
    };
    let port: u16 = match port.parse() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => return Err(bad("has no valid port")),
    };
    if name.starts_with('[') || name.contains(':') {
        return Err(bad("is not an address"));
    }
    // A name as DNS has it: letters, digits, `-` and `.`, labels of 1 to 63, at most 253.
    let name = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(bad("is not a host name"));
    }
    Ok(OriginAddr {
        host: name.to_ascii_lowercase(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::origin_addr;
    use proptest::prelude::*;

    #[test]
    fn origin_addresses_are_ip_port_or_name_port() {
        for (text, expect) in [
            ("127.0.0.1:8080", Some(("127.0.0.1", 8080))),
            ("[::1]:443", Some(("::1", 443))),
            ("shop.internal:8443", Some(("shop.internal", 8443))),
            ("Shop.Internal.:80", Some(("shop.internal", 80))),
            ("localhost:9000", Some(("localhost", 9000))),
            ("my_host-1.example:1", Some(("my_host-1.example", 1))),
            ("shop.internal", None),
            ("shop.internal:", None),
            ("shop.internal:0", None),
            ("127.0.0.1:0", None),
            ("shop.internal:65536", None),
            ("shop.internal:+80", None),
            ("shop.internal:80x", None),
            (":80", None),
            ("-shop:80", None),
            ("shop..internal:80", None),
            ("shop internal:80", None),
            ("user@shop:80", None),
            ("http://shop:80", None),
            ("shop/x:80", None),
            ("[::1:80", None),
            ("::1:80", None),
            ("sh\u{f6}p:80", None),
            ("", None),
        ] {
            let got = origin_addr(text).ok();
            let got = got.as_ref().map(|a| (a.host.as_str(), a.port));
            assert_eq!(got, expect, "{text:?}");
        }
        let long = format!("{}:80", "a".repeat(64));
        assert!(origin_addr(&long).is_err(), "a label of 64");
        assert!(origin_addr("shop.internal:80")
            .expect("ok")
            .literal()
            .is_none());
        assert!(origin_addr("10.0.0.1:80").expect("ok").literal().is_some());
    }

    proptest! {
        /// No text makes it panic, and what it accepts prints back as itself.
        #[test]
        fn origin_addresses_never_panic(text in ".{0,40}") {
            if let Ok(addr) = origin_addr(&text) {
                prop_assert_eq!(origin_addr(&addr.to_string()), Ok(addr));
            }
        }
    }
}
