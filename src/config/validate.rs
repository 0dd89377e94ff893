//! Raw file types -> validated model, collecting every problem with its dotted path.

use super::model::*;
use super::raw::*;
use super::{page, parse_duration, Problem};
use crate::admission::Limits;
use crate::page::Strings;
use crate::request::client::{Cidr, TrustedProxies};
use crate::request::{host, path};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Collects problems while reading values with defaults.
pub(super) struct Checker {
    /// Every problem found so far.
    problems: Vec<Problem>,
}

impl Checker {
    pub(super) fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(super) fn unknown_keys(&mut self, path: &str, extra: &Extra) {
        for key in extra.keys() {
            let full = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            self.problem(full, "unknown key");
        }
    }

    pub(super) fn duration(
        &mut self,
        path: String,
        value: &Option<String>,
        default: &str,
    ) -> Duration {
        let text = value.as_deref().unwrap_or(default);
        match parse_duration(text) {
            Ok(d) => d,
            Err(message) => {
                self.problem(path, message);
                Duration::from_secs(1)
            }
        }
    }

    fn addr(&mut self, path: String, text: &str) -> Option<SocketAddr> {
        match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.problem(
                    path,
                    format!("`{text}` is not an ip:port address, like \"127.0.0.1:8080\""),
                );
                None
            }
        }
    }

    /// A host name in its canonical form (lower case, no port or trailing dot).
    fn host(&mut self, path: String, text: &str) -> Option<String> {
        match host::canonical(text.as_bytes()) {
            Ok(host) => Some(host.into_owned()),
            Err(e) => {
                self.problem(path, format!("`{text}` is not a host name: {e}"));
                None
            }
        }
    }

    pub(super) fn positive(
        &mut self,
        path: String,
        value: Option<i64>,
        required: bool,
        default: i64,
    ) -> u32 {
        match value {
            None if required => {
                self.problem(path, "is required");
                1
            }
            None => default.max(1) as u32,
            Some(v) if v <= 0 => {
                self.problem(path, "must be > 0");
                1
            }
            Some(v) if v > u32::MAX as i64 => {
                self.problem(path, "is too large");
                1
            }
            Some(v) => v as u32,
        }
    }
}

impl Checker {
    /// A `fail_open` / `fail_closed` value at `path` (default `fail_closed`).
    pub(super) fn policy(&mut self, path: String, value: Option<&str>) -> StoreErrorPolicy {
        match value {
            None | Some("fail_closed") => StoreErrorPolicy::FailClosed,
            Some("fail_open") => StoreErrorPolicy::FailOpen,
            Some(other) => {
                self.problem(
                    path,
                    format!("`{other}` is not one of: fail_open, fail_closed"),
                );
                StoreErrorPolicy::FailClosed
            }
        }
    }

    /// A `mode` value, or `default` when absent.
    pub(super) fn mode(&mut self, path: String, value: Option<&str>, default: Mode) -> Mode {
        match value {
            None => default,
            Some(text) => Mode::parse(text).unwrap_or_else(|| {
                self.problem(
                    path,
                    format!("`{text}` is not one of: auto, queue_all, paused, passthrough, closed"),
                );
                default
            }),
        }
    }
}

/// A zone's path prefix in the canonical form requests are matched on (folded unless the zone
/// is case-sensitive), or `None` after reporting why it cannot be one.
fn zone_path(c: &mut Checker, at: &str, text: &str, case_sensitive: bool) -> Option<String> {
    if !text.starts_with('/') {
        c.problem(at, "must start with '/'");
        return None;
    }
    let canonical = match path::canonical(text.as_bytes()) {
        Ok(p) => p,
        Err(e) => {
            c.problem(at, format!("`{text}` is not a readable path: {e}"));
            return None;
        }
    };
    let canonical = if case_sensitive {
        canonical.into_owned()
    } else {
        path::fold(&canonical).into_owned()
    };
    if canonical == "/_usher" || canonical.starts_with("/_usher/") {
        c.problem(at, "/_usher/ is reserved for usher");
        return None;
    }
    Some(canonical)
}

pub(super) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Validates a raw configuration; `base` resolves relative paths. Returns every problem found.
pub fn validate(raw: RawConfig, base: &Path) -> Result<Config, Vec<Problem>> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    c.unknown_keys("", &raw.extra);

    let upstreams = upstreams(&mut c, &raw.upstreams);
    let server = server(&mut c, &raw.server, &upstreams);
    let strings = Arc::new(page::strings(
        &mut c,
        "strings",
        &raw.strings,
        &Strings::default(),
    ));
    let defence = super::defence::top(&mut c, &raw.defence, base);
    let zones = zones(
        &mut c,
        &raw.zones,
        &upstreams,
        &server.default_upstream,
        base,
        &strings,
        &defence,
    );
    let tokens = tokens(&mut c, &raw.tokens, base);

    let store = store(&mut c, &raw.store, base);
    let server = ServerConfig {
        upgrade_sock: match &raw.server.upgrade_sock {
            Some(path) => base.join(path),
            None => store.data_dir.join("upgrade.sock"),
        },
        ..server
    };
    // A Unix socket path is at most 107 bytes long.
    if server.upgrade_sock.as_os_str().len() > 107 {
        c.problem(
            "server.upgrade_sock",
            format!(
                "`{}` is longer than a Unix socket path may be (107 bytes); set a shorter one",
                server.upgrade_sock.display()
            ),
        );
    }

    c.unknown_keys("metrics", &raw.metrics.extra);
    let metrics = MetricsConfig {
        listen: raw
            .metrics
            .listen
            .as_deref()
            .and_then(|text| c.addr("metrics.listen".into(), text)),
    };

    if c.problems.is_empty() {
        Ok(Config {
            server,
            upstreams,
            zones,
            tokens,
            store,
            metrics,
            strings,
        })
    } else {
        Err(c.problems)
    }
}

fn upstreams(
    c: &mut Checker,
    raw: &BTreeMap<String, RawUpstream>,
) -> BTreeMap<String, UpstreamConfig> {
    let mut out = BTreeMap::new();
    if raw.is_empty() {
        c.problem("upstreams", "at least one upstream is required");
    }
    for (name, up) in raw {
        let path = format!("upstreams.{name}");
        c.unknown_keys(&path, &up.extra);
        if !is_plain_name(name) {
            c.problem(&path, "names use only a-z, 0-9, '_' and '-'");
        }
        let addrs: Vec<SocketAddr> = match &up.addrs {
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
                .filter_map(|(i, a)| c.addr(format!("{path}.addrs[{i}]"), a))
                .collect(),
        };
        let connect_timeout =
            c.duration(format!("{path}.connect_timeout"), &up.connect_timeout, "2s");
        let read_timeout = c.duration(format!("{path}.read_timeout"), &up.read_timeout, "30s");
        let idle_timeout = c.duration(format!("{path}.idle_timeout"), &up.idle_timeout, "1h");
        for (key, value) in [
            ("connect_timeout", connect_timeout),
            ("read_timeout", read_timeout),
            ("idle_timeout", idle_timeout),
        ] {
            if value.is_zero() {
                c.problem(format!("{path}.{key}"), "must be > 0");
            }
        }
        out.insert(
            name.clone(),
            UpstreamConfig {
                name: name.clone(),
                addrs,
                connect_timeout,
                read_timeout,
                idle_timeout,
            },
        );
    }
    out
}

fn server(
    c: &mut Checker,
    raw: &RawServer,
    upstreams: &BTreeMap<String, UpstreamConfig>,
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
    }
}

/// The zones; `base` resolves their template paths, `strings` are the page's texts with the
/// file's top-level overrides.
fn zones(
    c: &mut Checker,
    raw: &BTreeMap<String, RawZone>,
    upstreams: &BTreeMap<String, UpstreamConfig>,
    default_upstream: &str,
    base: &Path,
    strings: &Arc<Strings>,
    defence: &super::defence::Top,
) -> Vec<ZoneConfig> {
    let mut out = Vec::new();
    let mut claimed: BTreeMap<(String, String), String> = BTreeMap::new();
    for (name, z) in raw {
        let path = format!("zones.{name}");
        c.unknown_keys(&path, &z.extra);
        if !is_plain_name(name) {
            c.problem(
                &path,
                "names use only a-z, 0-9, '_' and '-' (they appear in cookies)",
            );
        }
        let hosts: Vec<String> = z
            .hosts
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, h)| c.host(format!("{path}.hosts[{i}]"), h))
            .collect();
        let case_sensitive = z.case_sensitive.unwrap_or(false);
        let raw_paths = z.paths.clone().unwrap_or_default();
        if raw_paths.is_empty() {
            c.problem(
                format!("{path}.paths"),
                "must name at least one path prefix",
            );
        }
        let mut paths = Vec::new();
        for (i, p) in raw_paths.iter().enumerate() {
            let at = format!("{path}.paths[{i}]");
            let Some(canonical) = zone_path(c, &at, p, case_sensitive) else {
                continue;
            };
            let host_keys = if hosts.is_empty() {
                vec!["*".to_string()]
            } else {
                hosts.clone()
            };
            for host in host_keys {
                // Compared folded: a case-sensitive `/Checkout` and a folded `/checkout` overlap.
                let key = (host.clone(), path::fold(&canonical).into_owned());
                if let Some(other) = claimed.insert(key, name.clone()) {
                    c.problem(
                        &at,
                        format!("`{p}` on host `{host}` is already in zone `{other}`"),
                    );
                }
            }
            paths.push(canonical);
        }
        let upstream = z
            .upstream
            .clone()
            .unwrap_or_else(|| default_upstream.to_string());
        if !upstreams.contains_key(&upstream) && !upstreams.is_empty() {
            c.problem(
                format!("{path}.upstream"),
                format!("no upstream is called `{upstream}`"),
            );
        }
        let capacity = c.positive(format!("{path}.capacity"), z.capacity, true, 1);
        let admit_per_minute = c.positive(
            format!("{path}.admit_per_minute"),
            z.admit_per_minute,
            true,
            1,
        );
        let burst = c.positive(
            format!("{path}.burst"),
            z.burst,
            false,
            admit_per_minute.div_ceil(60) as i64,
        );
        let session_ttl = c.duration(format!("{path}.session_ttl"), &z.session_ttl, "10m");
        let claim_window = c.duration(format!("{path}.claim_window"), &z.claim_window, "60s");
        let abandon_after = c.duration(format!("{path}.abandon_after"), &z.abandon_after, "2m");
        let refresh_interval = c.duration(
            format!("{path}.refresh_interval"),
            &z.refresh_interval,
            "5s",
        );
        if session_ttl < Duration::from_secs(1) {
            c.problem(format!("{path}.session_ttl"), "must be at least 1s");
        }
        if claim_window < Duration::from_secs(1) {
            c.problem(format!("{path}.claim_window"), "must be at least 1s");
        }
        if refresh_interval.is_zero() {
            c.problem(format!("{path}.refresh_interval"), "must be > 0");
        }
        if abandon_after <= refresh_interval {
            c.problem(
                format!("{path}.abandon_after"),
                "must be longer than refresh_interval, or waiting visitors would be skipped",
            );
        }
        let mode = c.mode(format!("{path}.mode"), z.mode.as_deref(), Mode::Auto);
        let waiting_status = match z.waiting_status {
            None => 200,
            Some(s @ (200 | 202 | 429 | 503)) => s as u16,
            Some(_) => {
                c.problem(
                    format!("{path}.waiting_status"),
                    "must be one of 200, 202, 429, 503",
                );
                200
            }
        };
        let no_page_status = match z.no_page_status {
            None => 429,
            Some(s @ (429 | 503)) => s as u16,
            Some(_) => {
                c.problem(format!("{path}.no_page_status"), "must be 429 or 503");
                429
            }
        };
        let on_store_error = c.policy(
            format!("{path}.on_store_error"),
            z.on_store_error.as_deref(),
        );
        let template = page::template(c, &format!("{path}.template"), z.template.as_deref(), base);
        let strings = if z.strings.is_empty() {
            strings.clone()
        } else {
            let path = format!("{path}.strings");
            Arc::new(page::strings(c, &path, &z.strings, strings))
        };
        let mut zone = ZoneConfig {
            name: name.clone(),
            title: z.title.clone().unwrap_or_else(|| name.clone()),
            hosts,
            paths,
            case_sensitive,
            upstream,
            limits: Limits {
                capacity,
                admit_per_minute,
                burst,
                session_ttl,
                claim_window,
                abandon_after,
            },
            session_renewal: z.session_renewal.unwrap_or(true),
            refresh_interval,
            mode,
            waiting_status,
            no_page_status,
            on_store_error,
            template,
            strings,
            events: Vec::new(),
            defence: super::defence::zone(c, name, z.defence.as_ref(), defence, claim_window, base),
        };
        let events = z.events.as_deref().unwrap_or(&[]);
        zone.events = super::events::events(c, &path, events, &zone, base);
        out.push(zone);
    }
    out
}

fn key_ref(c: &mut Checker, path: String, raw: &RawKey, base: &Path) -> KeyRef {
    c.unknown_keys(&path, &raw.extra);
    let kid = raw.kid.clone().unwrap_or_else(|| {
        c.problem(format!("{path}.kid"), "is required");
        String::new()
    });
    let source = match (&raw.file, &raw.env) {
        (Some(file), None) => KeySource::File(base.join(file)),
        (None, Some(var)) => KeySource::Env(var.clone()),
        (Some(_), Some(_)) => {
            c.problem(&path, "set either file or env, not both");
            KeySource::Env(String::new())
        }
        (None, None) => {
            c.problem(
                &path,
                "needs file = \"...\" or env = \"...\" (keys are never inline)",
            );
            KeySource::Env(String::new())
        }
    };
    KeyRef { kid, source, path }
}

fn tokens(c: &mut Checker, raw: &RawTokens, base: &Path) -> TokenConfig {
    c.unknown_keys("tokens", &raw.extra);
    let algorithm = match raw.algorithm.as_deref() {
        None | Some("EdDSA") => TokenAlgorithm::EdDsa,
        Some("HS256") => TokenAlgorithm::Hs256,
        Some(other) => {
            c.problem(
                "tokens.algorithm",
                format!("`{other}` is not one of: EdDSA, HS256"),
            );
            TokenAlgorithm::EdDsa
        }
    };
    let signing_key = match &raw.signing_key {
        Some(key) => key_ref(c, "tokens.signing_key".into(), key, base),
        None => {
            c.problem(
                "tokens.signing_key",
                "is required (run `usher keygen` to make one)",
            );
            KeyRef {
                kid: String::new(),
                source: KeySource::Env(String::new()),
                path: "tokens.signing_key".into(),
            }
        }
    };
    let verification_keys: Vec<KeyRef> = raw
        .verification_keys
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, k)| key_ref(c, format!("tokens.verification_keys[{i}]"), k, base))
        .collect();
    let mut kids = BTreeSet::new();
    for key in std::iter::once(&signing_key).chain(&verification_keys) {
        if !key.kid.is_empty() && !kids.insert(key.kid.clone()) {
            c.problem(
                format!("{}.kid", key.path),
                format!("`{}` is used twice", key.kid),
            );
        }
    }
    let cookie_prefix = raw.cookie_prefix.clone().unwrap_or_else(|| "usher".into());
    if !is_plain_name(&cookie_prefix) {
        c.problem("tokens.cookie_prefix", "use only a-z, 0-9, '_' and '-'");
    }
    let cache_size =
        c.positive("tokens.cache_size".into(), raw.cache_size, false, 100_000) as usize;
    TokenConfig {
        algorithm,
        issuer: raw.issuer.clone().unwrap_or_else(|| "usher".into()),
        signing_key,
        verification_keys,
        visitor_ttl: c.duration("tokens.visitor_ttl".into(), &raw.visitor_ttl, "24h"),
        cookie_prefix,
        cookie_secure: raw.cookie_secure.unwrap_or(false),
        cache_size,
    }
}

fn store(c: &mut Checker, raw: &RawStore, base: &Path) -> StoreConfig {
    c.unknown_keys("store", &raw.extra);
    let scylla = match raw.kind.as_deref().unwrap_or("embedded") {
        "embedded" => {
            let scylla_only = [
                ("contact_points", raw.contact_points.is_some()),
                ("keyspace", raw.keyspace.is_some()),
                ("replication_factor", raw.replication_factor.is_some()),
                ("consistency", raw.consistency.is_some()),
                ("shards", raw.shards.is_some()),
                ("sync", raw.sync.is_some()),
                ("timeout", raw.timeout.is_some()),
                ("queue_ttl", raw.queue_ttl.is_some()),
                ("feed_interval", raw.feed_interval.is_some()),
                ("feed_safety", raw.feed_safety.is_some()),
                ("join_settle", raw.join_settle.is_some()),
            ];
            for (key, set) in scylla_only {
                if set {
                    c.problem(format!("store.{key}"), "only applies to kind = \"scylla\"");
                }
            }
            None
        }
        "scylla" => Some(scylla(c, raw)),
        other => {
            c.problem(
                "store.kind",
                format!("`{other}` is not one of: embedded, scylla"),
            );
            None
        }
    };
    let store = StoreConfig {
        data_dir: base.join(raw.data_dir.as_deref().unwrap_or("data")),
        tick: c.duration("store.tick".into(), &raw.tick, "1s"),
        snapshot_every: c.duration("store.snapshot_every".into(), &raw.snapshot_every, "30s"),
        scylla,
    };
    if store.tick.is_zero() || store.tick > Duration::from_secs(60) {
        c.problem("store.tick", "must be between 1ms and 60s");
    }
    store
}

fn scylla(c: &mut Checker, raw: &RawStore) -> ScyllaConfig {
    let contact_points = raw.contact_points.clone().unwrap_or_default();
    if contact_points.is_empty() {
        c.problem("store.contact_points", "name at least one host:port");
    }
    let keyspace = raw.keyspace.clone().unwrap_or_else(|| "usher".into());
    if !keyspace
        .chars()
        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        || keyspace.is_empty()
    {
        c.problem("store.keyspace", "use only a-z, 0-9 and '_'");
    }
    let consistency = match raw.consistency.as_deref().unwrap_or("local_quorum") {
        "one" => CqlConsistency::One,
        "local_one" => CqlConsistency::LocalOne,
        "quorum" => CqlConsistency::Quorum,
        "local_quorum" => CqlConsistency::LocalQuorum,
        "all" => CqlConsistency::All,
        other => {
            c.problem(
                "store.consistency",
                format!("`{other}` is not one of: one, local_one, quorum, local_quorum, all"),
            );
            CqlConsistency::LocalQuorum
        }
    };
    let sync = match raw.sync.as_deref().unwrap_or("auto") {
        "auto" => SyncMode::Auto,
        "cdc" => SyncMode::Cdc,
        "outbox" => SyncMode::Outbox,
        other => {
            c.problem(
                "store.sync",
                format!("`{other}` is not one of: auto, cdc, outbox"),
            );
            SyncMode::Auto
        }
    };
    ScyllaConfig {
        contact_points,
        keyspace,
        replication_factor: c.positive(
            "store.replication_factor".into(),
            raw.replication_factor,
            false,
            3,
        ),
        consistency,
        timeout: c.duration("store.timeout".into(), &raw.timeout, "2s"),
        shards: c.positive("store.shards".into(), raw.shards, false, 16),
        queue_ttl: c.duration("store.queue_ttl".into(), &raw.queue_ttl, "6h"),
        sync,
        feed_interval: c.duration("store.feed_interval".into(), &raw.feed_interval, "500ms"),
        feed_safety: c.duration("store.feed_safety".into(), &raw.feed_safety, "2s"),
        join_settle: c.duration("store.join_settle".into(), &raw.join_settle, "250ms"),
    }
}
