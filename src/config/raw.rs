//! The configuration file as written: serde types that mirror the TOML one to one. Everything is
//! optional or loosely typed here so that `validate` can report every problem at once, with its
//! dotted path; unknown keys land in `extra` maps and are reported the same way.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Keys nobody declared, kept so validation can name them.
pub type Extra = BTreeMap<String, toml::Value>;

/// `[strings.<lang>]` tables: text overrides of the waiting page, by language and key.
pub type RawStrings = BTreeMap<String, BTreeMap<String, String>>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub zones: BTreeMap<String, RawZone>,
    #[serde(default)]
    pub tokens: RawTokens,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub strings: RawStrings,
    #[serde(default)]
    pub defence: RawDefence,
    #[serde(default)]
    pub admin: RawAdmin,
    pub events_log: Option<RawEventsLog>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[events_log]`
#[derive(Debug, Default, Deserialize)]
pub struct RawEventsLog {
    pub path: Option<String>,
    pub rotate_bytes: Option<i64>,
    pub keep: Option<i64>,
    pub queue: Option<i64>,
    pub webhook: Option<RawWebhook>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[events_log] webhook = { url, secret = { env | file }, batch, flush_every }`
#[derive(Debug, Default, Deserialize)]
pub struct RawWebhook {
    pub url: Option<String>,
    pub secret: Option<RawSecret>,
    pub batch: Option<i64>,
    pub flush_every: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[admin]`
#[derive(Debug, Default, Deserialize)]
pub struct RawAdmin {
    pub listen: Option<String>,
    pub tokens: Option<Vec<RawAdminToken>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One of `[admin] tokens = [{ name, env | file, role }]`.
#[derive(Debug, Default, Deserialize)]
pub struct RawAdminToken {
    pub name: Option<String>,
    pub env: Option<String>,
    pub file: Option<String>,
    pub role: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[defence]` and `[zones.NAME.defence]`
#[derive(Debug, Default, Deserialize)]
pub struct RawDefence {
    pub client_places: Option<i64>,
    pub client_joins_per_minute: Option<i64>,
    pub client_join_burst: Option<i64>,
    pub client_block_v4: Option<i64>,
    pub client_block_v6: Option<i64>,
    pub client_event_streams: Option<i64>,
    pub session_clients: Option<i64>,
    pub return_window: Option<String>,
    pub proof_of_work: Option<String>,
    pub pow_difficulty: Option<i64>,
    pub pow_auto_joins_per_minute: Option<i64>,
    pub challenge: Option<RawChallengeHook>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `challenge = { provider, site_key, secret = { env | file }, ... }` in a `[defence]` table.
#[derive(Debug, Default, Deserialize)]
pub struct RawChallengeHook {
    pub provider: Option<String>,
    pub site_key: Option<String>,
    pub secret: Option<RawSecret>,
    pub verify_url: Option<String>,
    pub script_url: Option<String>,
    pub timeout: Option<String>,
    pub on_error: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[zones.NAME.bypass]`
#[derive(Debug, Default, Deserialize)]
pub struct RawBypass {
    pub networks: Option<Vec<String>>,
    pub secret: Option<RawSecret>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A secret by reference: `{ env = "VAR" }` or `{ file = "path" }`, never inline.
#[derive(Debug, Default, Deserialize)]
pub struct RawSecret {
    pub env: Option<String>,
    pub file: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
pub struct RawServer {
    pub listen: Option<String>,
    pub threads: Option<i64>,
    pub default_upstream: Option<String>,
    pub grace_period: Option<String>,
    pub default_host: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub keepalive_timeout: Option<String>,
    pub max_connections: Option<i64>,
    pub header_timeout: Option<String>,
    pub max_event_streams: Option<i64>,
    pub upgrade_sock: Option<String>,
    pub tls: Option<RawTls>,
    pub redirect_listen: Option<String>,
    pub proxy_protocol: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[server] tls`: one `{ cert, key }` or a list of them (chosen by SNI, the first by default).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawTls {
    One(RawCert),
    Many(Vec<RawCert>),
}

/// One certificate chain and its key (PEM files).
#[derive(Debug, Default, Deserialize)]
pub struct RawCert {
    pub cert: Option<String>,
    pub key: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[upstreams.NAME]`
#[derive(Debug, Default, Deserialize)]
pub struct RawUpstream {
    pub addrs: Option<Vec<String>>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub resolve_every: Option<String>,
    pub tls: Option<bool>,
    pub sni: Option<String>,
    pub ca_file: Option<String>,
    pub host_header: Option<String>,
    pub health_check: Option<RawHealthCheck>,
    pub balance: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[upstreams.NAME] health_check`
#[derive(Debug, Default, Deserialize)]
pub struct RawHealthCheck {
    pub path: Option<String>,
    pub tcp: Option<bool>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub fall: Option<i64>,
    pub rise: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[zones.NAME]`
#[derive(Debug, Default, Deserialize)]
pub struct RawZone {
    pub title: Option<String>,
    pub hosts: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub case_sensitive: Option<bool>,
    pub upstream: Option<String>,
    pub capacity: Option<i64>,
    pub admit_per_minute: Option<i64>,
    pub burst: Option<i64>,
    pub session_ttl: Option<String>,
    pub session_renewal: Option<bool>,
    pub claim_window: Option<String>,
    pub abandon_after: Option<String>,
    pub refresh_interval: Option<String>,
    pub mode: Option<String>,
    pub waiting_status: Option<i64>,
    pub no_page_status: Option<i64>,
    pub on_store_error: Option<String>,
    pub template: Option<String>,
    pub message: Option<String>,
    pub bypass: Option<RawBypass>,
    #[serde(default)]
    pub strings: RawStrings,
    pub events: Option<Vec<RawEvent>>,
    pub defence: Option<RawDefence>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[[zones.NAME.events]]`
#[derive(Debug, Default, Deserialize)]
pub struct RawEvent {
    pub name: Option<String>,
    pub title: Option<String>,
    pub prequeue_at: Option<String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub shuffle: Option<bool>,
    pub after_end: Option<String>,
    pub mode: Option<String>,
    pub capacity: Option<i64>,
    pub admit_per_minute: Option<i64>,
    pub burst: Option<i64>,
    pub session_ttl: Option<String>,
    pub template: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[tokens]`
#[derive(Debug, Default, Deserialize)]
pub struct RawTokens {
    pub algorithm: Option<String>,
    pub issuer: Option<String>,
    pub signing_key: Option<RawKey>,
    pub verification_keys: Option<Vec<RawKey>>,
    pub visitor_ttl: Option<String>,
    pub cookie_prefix: Option<String>,
    pub cookie_secure: Option<bool>,
    pub cache_size: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A key reference: `{ kid = "k1", file = "keys/k1.pem" }` or `{ kid = "k1", env = "VAR" }`.
#[derive(Debug, Default, Deserialize)]
pub struct RawKey {
    pub kid: Option<String>,
    pub file: Option<String>,
    pub env: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[store]`
#[derive(Debug, Default, Deserialize)]
pub struct RawStore {
    pub kind: Option<String>,
    pub data_dir: Option<String>,
    pub tick: Option<String>,
    pub snapshot_every: Option<String>,
    pub contact_points: Option<Vec<String>>,
    pub keyspace: Option<String>,
    pub replication_factor: Option<i64>,
    pub consistency: Option<String>,
    pub timeout: Option<String>,
    pub shards: Option<i64>,
    pub queue_ttl: Option<String>,
    pub sync: Option<String>,
    pub feed_interval: Option<String>,
    pub feed_safety: Option<String>,
    pub join_settle: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `[metrics]`
#[derive(Debug, Default, Deserialize)]
pub struct RawMetrics {
    pub listen: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}
