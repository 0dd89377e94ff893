//! The validated configuration: the types the rest of usher reads. Built once by
//! [`super::validate`]; nothing here knows about TOML.

use crate::admission::Limits;
use crate::page::{Strings, Template};
use crate::request::client::TrustedProxies;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The proxy listener and process settings.
    pub server: ServerConfig,
    /// Origins by name.
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Protected zones, in file order of their names.
    pub zones: Vec<ZoneConfig>,
    /// Token signing and cookies.
    pub tokens: TokenConfig,
    /// Where state lives.
    pub store: StoreConfig,
    /// The Prometheus listener.
    pub metrics: MetricsConfig,
    /// The admin API.
    pub admin: AdminConfig,
    /// The event log; `None` without `[events_log]`.
    pub events_log: Option<EventsLogConfig>,
    /// The page's texts with the file's `[strings.<lang>]` applied, for usher's pages outside
    /// any zone (the origin error page of an unprotected path).
    pub strings: Arc<Strings>,
}

impl Config {
    /// The zone called `name`.
    pub fn zone(&self, name: &str) -> Option<&ZoneConfig> {
        self.zones.iter().find(|z| z.name == name)
    }
}

/// `[server]`
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address the proxy listens on.
    pub listen: SocketAddr,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// Upstream for requests that match no zone.
    pub default_upstream: String,
    /// How long a graceful shutdown waits for open requests.
    pub grace_period: Duration,
    /// The host a request is taken to be for when it names none (HTTP/1.0) or a host no zone
    /// names (an IP address, a stray name). `None`: such requests are matched against every
    /// zone, host-scoped ones included, so they fail closed.
    pub default_host: Option<String>,
    /// Peers whose `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` are believed.
    pub trusted_proxies: TrustedProxies,
    /// How long a client connection may stay idle between requests (whole seconds).
    pub keepalive_timeout: Duration,
    /// Open client connections this node serves at most; beyond it a connection gets a short
    /// 503 (the health and readiness endpoints still answer). `None`: derived from the
    /// open-file limit at start.
    pub max_connections: Option<u32>,
    /// How long a client may take to send a request's headers, from its first byte (from the
    /// connection's start for the first request).
    pub header_timeout: Duration,
    /// Event streams this node keeps open at once; beyond it pages poll.
    pub max_event_streams: u32,
    /// The Unix socket a new process receives the listening sockets on during an upgrade
    /// (default: `upgrade.sock` in the data directory).
    pub upgrade_sock: std::path::PathBuf,
    /// `listen` speaks TLS (HTTP/2 and HTTP/1.1 by ALPN) with these certificates; `None`: plain
    /// HTTP (TLS ends in front of usher).
    pub tls: Option<TlsConfig>,
    /// A plain-HTTP listener that sends every request to the same place over HTTPS.
    pub redirect_listen: Option<SocketAddr>,
    /// Every connection to `listen` starts with a PROXY protocol (v1 or v2) header, whose source
    /// address is the client's.
    pub proxy_protocol: bool,
}

/// `[server] tls`: the visitors' certificates. The first is served to a client that names no
/// host (or one no certificate is for); the others are chosen by SNI. Re-read on a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate files, in the order given.
    pub certs: Vec<CertFiles>,
}

/// A certificate chain and its private key, PEM files (paths resolved against the config's
/// directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The chain, leaf first.
    pub cert: std::path::PathBuf,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
}

/// `[events_log]`: JSON lines of what happened, to a rotating file and optionally a webhook.
#[derive(Debug, Clone)]
pub struct EventsLogConfig {
    /// The file (relative paths resolved against the config's directory).
    pub path: std::path::PathBuf,
    /// The file is rotated when it would pass this size.
    pub rotate_bytes: u64,
    /// Rotated files kept (`FILE.1` … `FILE.<keep>`).
    pub keep: u32,
    /// Events held in memory before new ones are dropped (and counted).
    pub queue: usize,
    /// Batches POSTed to a collector, signed.
    pub webhook: Option<WebhookConfig>,
}

impl EventsLogConfig {
    /// `rotate_bytes` unless set: 100 MiB.
    pub const DEFAULT_ROTATE_BYTES: u64 = 104_857_600;
    /// `keep` unless set.
    pub const DEFAULT_KEEP: u32 = 5;
    /// `queue` unless set.
    pub const DEFAULT_QUEUE: usize = 10_000;

    /// `[events_log] path = "…"` and nothing else: every other key at its default, no webhook.
    pub fn to_file(path: std::path::PathBuf) -> Self {
        EventsLogConfig {
            path,
            rotate_bytes: Self::DEFAULT_ROTATE_BYTES,
            keep: Self::DEFAULT_KEEP,
            queue: Self::DEFAULT_QUEUE,
            webhook: None,
        }
    }
}

/// `[events_log] webhook`.
#[derive(Clone)]
pub struct WebhookConfig {
    /// Where batches are POSTed (`http://` or `https://`).
    pub url: String,
    /// The HMAC-SHA256 key of `Usher-Signature`.
    pub secret: String,
    /// Lines per POST at most.
    pub batch: usize,
    /// A batch is sent at least this often while lines come.
    pub flush_every: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("batch", &self.batch)
            .field("flush_every", &self.flush_every)
            .finish_non_exhaustive()
    }
}

/// `[upstreams.NAME]`
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// The upstream's name.
    pub name: String,
    /// Origin addresses (literal or host names, resolved at start and every `resolve_every`).
    pub addrs: Vec<OriginAddr>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// How long the origin may take to start its response (from the end of the request to the
    /// first byte of the response header).
    pub read_timeout: Duration,
    /// How long a response being streamed or an upgraded connection (WebSocket) may stay idle.
    pub idle_timeout: Duration,
    /// How often host names in `addrs` are resolved again.
    pub resolve_every: Duration,
    /// Connect to the origin over TLS; `None`: plain TCP.
    pub tls: Option<UpstreamTls>,
    /// The `Host` the origin is sent (for shops that route by name); `None`: the visitor's.
    pub host_header: Option<String>,
    /// Active health checks; `None`: every address is taken to be up.
    pub health_check: Option<HealthCheck>,
    /// How a request picks an address.
    pub balance: Balance,
}

/// One entry of an upstream's `addrs`: a host (an IP address or a name) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OriginAddr {
    /// An IP address (without brackets) or a host name (lower case).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl OriginAddr {
    /// The address itself when the host is an IP address (no lookup needed).
    pub fn literal(&self) -> Option<SocketAddr> {
        let ip: std::net::IpAddr = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port))
    }
}

impl std::fmt::Display for OriginAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "[{}]:{}", self.host, self.port),
            false => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// `[upstreams.NAME] tls = true` with its `sni` and `ca_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The name sent in SNI and verified against the origin's certificate; `None`: each
    /// address's own host (its name, or its IP address).
    pub sni: Option<String>,
    /// The roots the origin's certificate is verified against (PEM); `None`: the system's.
    pub ca_file: Option<std::path::PathBuf>,
}

/// `[upstreams.NAME] health_check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// `GET path` answered with a 2xx, or a TCP (TLS) connection.
    pub probe: Probe,
    /// Time between checks of each address.
    pub interval: Duration,
    /// How long one check may take.
    pub timeout: Duration,
    /// Consecutive failed checks that take an address out.
    pub fall: u32,
    /// Consecutive passed checks that put it back.
    pub rise: u32,
}

/// What a health check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `GET` this path (with the upstream's `Host`), expecting a 2xx.
    Http(String),
    /// Open a connection (and the TLS handshake, on a TLS upstream).
    Tcp,
}

/// `[upstreams.NAME] balance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Each address in turn (the default).
    RoundRobin,
    /// The address with the fewest requests in flight.
    LeastConnections,
    /// Consistent hashing by visitor: an admitted visitor stays on one origin machine while it
    /// is up.
    Visitor,
}

/// What a zone does with visitors (`mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Queue only when full, over rate, or when others already wait (the default).
    Auto,
    /// Every new visitor queues, even when there is room.
    QueueAll,
    /// The queue forms but nobody is admitted.
    Paused,
    /// The gate is off: every request is forwarded.
    Passthrough,
    /// A static "closed" page; no queue.
    Closed,
}

impl Mode {
    /// Parses the config spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "auto" => Mode::Auto,
            "queue_all" => Mode::QueueAll,
            "paused" => Mode::Paused,
            "passthrough" => Mode::Passthrough,
            "closed" => Mode::Closed,
            _ => return None,
        })
    }

    /// The config spelling, also used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::QueueAll => "queue_all",
            Mode::Paused => "paused",
            Mode::Passthrough => "passthrough",
            Mode::Closed => "closed",
        }
    }
}

/// What the gate does when the store cannot answer (`on_store_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorPolicy {
    /// Forward the request: the shop stays reachable, unprotected.
    FailOpen,
    /// Answer with the waiting page: the shop stays protected, nobody new gets in.
    FailClosed,
}

/// `[zones.NAME]`
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    /// The zone's name (the key in the file); used in cookies, tokens and metric labels.
    pub name: String,
    /// What visitors see as the event name.
    pub title: String,
    /// Lower-cased host names; empty means every host.
    pub hosts: Vec<String>,
    /// Path prefixes that belong to the zone, in canonical form ([`crate::request::path`]),
    /// folded unless `case_sensitive`.
    pub paths: Vec<String>,
    /// Whether paths match case-sensitively (by default `/Checkout` is `/checkout`, as Express
    /// and IIS route it).
    pub case_sensitive: bool,
    /// Upstream that serves the zone.
    pub upstream: String,
    /// Capacity, rate and timing of admission.
    pub limits: Limits,
    /// Whether an active visitor's session is extended.
    pub session_renewal: bool,
    /// How often a waiting page refreshes itself.
    pub refresh_interval: Duration,
    /// The zone's mode.
    pub mode: Mode,
    /// HTTP status of the waiting page.
    pub waiting_status: u16,
    /// HTTP status for requests that cannot show a page (not a GET or HEAD, a WebSocket
    /// upgrade, a script's request): the status JSON with `Retry-After`.
    pub no_page_status: u16,
    /// What happens when the store fails.
    pub on_store_error: StoreErrorPolicy,
    /// The zone's own waiting-page template (`template`), parsed and checked at load; `None`
    /// means the built-in page.
    pub template: Option<Arc<Template>>,
    /// The waiting page's texts in every language, with the file's `[strings.<lang>]` and the
    /// zone's own overrides applied.
    pub strings: Arc<Strings>,
    /// A notice shown on every waiting page of the zone (`message`, or set live through the
    /// admin API); empty: none.
    pub message: String,
    /// Scheduled on-sales, in time order (never overlapping).
    pub events: Vec<Event>,
    /// What one client may do in the zone (`[defence]` with the zone's overrides).
    pub defence: Defence,
    /// Who skips the line (`[zones.NAME.bypass]`): staff networks, synthetic monitors.
    pub bypass: Option<Arc<Bypass>>,
}

/// `[zones.NAME.bypass]`: requests that skip the queue, forwarded without a session and
/// counted (`usher_gate_requests_total{decision="bypass"}`): from a client in `networks`, or
/// carrying `Usher-Bypass: <secret>` (never forwarded: every `Usher-*` header is dropped).
#[derive(Clone, PartialEq, Eq)]
pub struct Bypass {
    /// Client address blocks (the client behind `server.trusted_proxies`).
    pub networks: Vec<crate::request::client::Cidr>,
    /// The `Usher-Bypass` header's value, compared in constant time.
    pub secret: Option<String>,
}

impl std::fmt::Debug for Bypass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("Bypass")
            .field("networks", &self.networks)
            .field("secret", &self.secret.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Bypass {
    /// Whether a request from `client` with `Usher-Bypass: header` skips the line.
    pub fn lets_in(&self, client: Option<std::net::IpAddr>, header: Option<&[u8]>) -> bool {
        let by_network = client.is_some_and(|ip| self.networks.iter().any(|n| n.contains(ip)));
        let by_secret = match (&self.secret, header) {
            (Some(secret), Some(presented)) => {
                let (a, b) = (secret.as_bytes(), presented.trim_ascii());
                a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
            }
            _ => false,
        };
        by_network || by_secret
    }
}

/// `[defence]` / `[zones.NAME.defence]`: per-client limits, so that one client (an address, or
/// an address block) cannot farm places. Counted per node: behind a load balancer without
/// client affinity a client may hold up to this much on each node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defence {
    /// Live places (in line, seen within `abandon_after`) one client may hold in the zone.
    pub client_places: u32,
    /// How fast one client may take new places: the refill of a token bucket.
    pub client_joins_per_minute: u32,
    /// How many places one client may take at once (the bucket's size).
    pub client_join_burst: u32,
    /// IPv4 clients are counted by address block of this prefix length (32: one address).
    pub client_block_v4: u8,
    /// IPv6 clients are counted by address block of this prefix length (128: one address).
    pub client_block_v6: u8,
    /// Open event streams one client may hold in the zone; beyond it the page polls.
    pub client_event_streams: u32,
    /// Distinct client addresses one session or place may be used from before it is revoked.
    pub session_clients: u32,
    /// How long after the cursor passed a place its holder may come back and go in first;
    /// later they join at the back.
    pub return_window: Duration,
    /// Whether a newcomer must solve a proof-of-work puzzle before taking a place.
    pub proof_of_work: ProofOfWork,
    /// The puzzle's difficulty: leading zero bits of a SHA-256 (about 2^bits hashes).
    pub pow_difficulty: u8,
    /// With `proof_of_work = "auto"`: newcomers per minute on this node above which the puzzle
    /// is asked.
    pub pow_auto_joins_per_minute: u32,
    /// A CAPTCHA provider's widget that every newcomer passes instead of the puzzle.
    pub challenge: Option<Arc<ChallengeHook>>,
}

/// `challenge = { ... }`: a CAPTCHA provider (Turnstile, hCaptcha, reCAPTCHA) whose widget the
/// waiting page shows to newcomers and whose answer usher checks with the provider's
/// `siteverify`.
#[derive(Clone, PartialEq, Eq)]
pub struct ChallengeHook {
    /// Which provider's widget and script.
    pub provider: CaptchaProvider,
    /// The site key the widget is rendered with (public).
    pub site_key: String,
    /// The secret `siteverify` is called with.
    pub secret: String,
    /// Where answers are checked (the provider's `siteverify`, or a stand-in).
    pub verify_url: String,
    /// The provider's script (rendered explicitly, with `onload`).
    pub script_url: String,
    /// How long a check may take.
    pub timeout: Duration,
    /// When the check cannot be made (timeout, provider down): let the newcomer have their place
    /// (`FailOpen`) or ask them to try again (`FailClosed`).
    pub on_error: StoreErrorPolicy,
}

impl std::fmt::Debug for ChallengeHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("ChallengeHook")
            .field("provider", &self.provider)
            .field("site_key", &self.site_key)
            .field("verify_url", &self.verify_url)
            .field("timeout", &self.timeout)
            .field("on_error", &self.on_error)
            .finish_non_exhaustive()
    }
}

/// A CAPTCHA provider: its widget's JavaScript global and its default URLs. All three render
/// the same way (`render(element, { sitekey, callback })`) and check answers the same way (a
/// form post of `secret`, `response` and `remoteip` answered with `{"success": ...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptchaProvider {
    /// Cloudflare Turnstile.
    Turnstile,
    /// hCaptcha.
    HCaptcha,
    /// Google reCAPTCHA (v2).
    ReCaptcha,
}

impl CaptchaProvider {
    /// The provider called `name` in config.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "turnstile" => Some(CaptchaProvider::Turnstile),
            "hcaptcha" => Some(CaptchaProvider::HCaptcha),
            "recaptcha" => Some(CaptchaProvider::ReCaptcha),
            _ => None,
        }
    }

    /// The name in config and in the status JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptchaProvider::Turnstile => "turnstile",
            CaptchaProvider::HCaptcha => "hcaptcha",
            CaptchaProvider::ReCaptcha => "recaptcha",
        }
    }

    /// The provider's `siteverify`.
    pub fn verify_url(self) -> &'static str {
        match self {
            CaptchaProvider::Turnstile => {
                "https://challenges.cloudflare.com/turnstile/v0/siteverify"
            }
            CaptchaProvider::HCaptcha => "https://api.hcaptcha.com/siteverify",
            CaptchaProvider::ReCaptcha => "https://www.google.com/recaptcha/api/siteverify",
        }
    }

    /// The provider's widget script.
    pub fn script_url(self) -> &'static str {
        match self {
            CaptchaProvider::Turnstile => "https://challenges.cloudflare.com/turnstile/v0/api.js",
            CaptchaProvider::HCaptcha => "https://js.hcaptcha.com/1/api.js",
            CaptchaProvider::ReCaptcha => "https://www.google.com/recaptcha/api.js",
        }
    }
}

/// `proof_of_work`: when newcomers must solve a puzzle before they get a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofOfWork {
    /// Never.
    Off,
    /// Always.
    On,
    /// While newcomers arrive faster than `pow_auto_joins_per_minute`.
    Auto,
}

impl Default for Defence {
    /// The defaults: a flood from one address holds at most 50 places and takes 10 at once and
    /// 20 a minute after that, while a household or an office behind one address gets in.
    fn default() -> Self {
        Defence {
            client_places: 50,
            client_joins_per_minute: 20,
            client_join_burst: 10,
            client_block_v4: 32,
            client_block_v6: 128,
            client_event_streams: 16,
            session_clients: 3,
            return_window: Duration::from_secs(300),
            proof_of_work: ProofOfWork::Off,
            pow_difficulty: 18,
            pow_auto_joins_per_minute: 600,
            challenge: None,
        }
    }
}

/// `[[zones.NAME.events]]`: a scheduled on-sale. From `prequeue_at` arrivals join a pre-queue
/// (a countdown page); at `starts_at` the pre-queue is drawn by lottery (when `shuffle`) and the
/// sale runs with the event's overrides; after `ends_at` the zone shows a "sale ended" page or
/// goes back to its base mode.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event's name (unique in its zone; logged with the draw).
    pub name: String,
    /// What visitors see as the event name.
    pub title: String,
    /// When the pre-queue opens (ms since the epoch); equal to `starts_at_ms` without one.
    pub prequeue_at_ms: u64,
    /// When the sale starts.
    pub starts_at_ms: u64,
    /// When the sale ends; `None`: it does not.
    pub ends_at_ms: Option<u64>,
    /// Whether the pre-queue is ordered by lottery at `starts_at` (otherwise by arrival).
    pub shuffle: bool,
    /// What follows `ends_at`.
    pub after_end: AfterEnd,
    /// The zone as it runs during the sale: the base zone with the event's overrides.
    pub sale: std::sync::Arc<ZoneConfig>,
}

impl Event {
    /// Whether a visitor who arrived at `rank` (ms) is a pre-queue member of this event.
    pub fn in_prequeue(&self, rank: u64) -> bool {
        (self.prequeue_at_ms..self.starts_at_ms).contains(&rank)
    }
}

/// What a zone does after an event's `ends_at` (`after_end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterEnd {
    /// A "sale ended" page; nobody new gets in until the next event.
    Ended,
    /// The zone's own mode and limits again.
    Base,
}

/// Token algorithm (`tokens.algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAlgorithm {
    /// Ed25519 signatures (the default): the origin can verify with the public key alone.
    EdDsa,
    /// HMAC-SHA256 with a shared secret.
    Hs256,
}

/// Where a key's bytes come from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file path (PEM for EdDSA, raw secret for HS256).
    File(PathBuf),
    /// An environment variable holding the PEM or secret.
    Env(String),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material; the source is not secret, so show it.
        match self {
            KeySource::File(path) => write!(f, "File({})", path.display()),
            KeySource::Env(var) => write!(f, "Env({var})"),
        }
    }
}

/// A key reference with its id.
#[derive(Debug, Clone)]
pub struct KeyRef {
    /// Key id, carried in the token header.
    pub kid: String,
    /// Where to read it.
    pub source: KeySource,
    /// Dotted config path, for error messages.
    pub path: String,
}

/// `[tokens]`
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// Signature algorithm.
    pub algorithm: TokenAlgorithm,
    /// `iss` claim written and required.
    pub issuer: String,
    /// The key new tokens are signed with (also accepted for verification).
    pub signing_key: KeyRef,
    /// Further keys accepted for verification, for rotation.
    pub verification_keys: Vec<KeyRef>,
    /// How long a visitor token (a place in the queue) stays valid.
    pub visitor_ttl: Duration,
    /// Cookie names are `<prefix>_<zone>`.
    pub cookie_prefix: String,
    /// Adds `Secure` to cookies (set it when clients reach usher over TLS).
    pub cookie_secure: bool,
    /// Verified tokens kept in memory so steady-state requests skip the signature check.
    pub cache_size: usize,
}

/// `[store]`
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory of the embedded store's snapshot and write-ahead log.
    pub data_dir: PathBuf,
    /// Exchanger period.
    pub tick: Duration,
    /// How often the write-ahead log is folded into a snapshot.
    pub snapshot_every: Duration,
    /// Set for `kind = "scylla"`: the shared CQL store of a fleet.
    pub scylla: Option<ScyllaConfig>,
}

/// How nodes learn about each other's changes (`store.sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// CDC on ScyllaDB, the outbox elsewhere (default).
    Auto,
    /// ScyllaDB change data capture.
    Cdc,
    /// The transactional outbox table, tailed by every node; works on any CQL database.
    Outbox,
}

/// Read and write consistency of the CQL store (`store.consistency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CqlConsistency {
    /// `ONE`
    One,
    /// `LOCAL_ONE`
    LocalOne,
    /// `QUORUM`
    Quorum,
    /// `LOCAL_QUORUM` (default)
    LocalQuorum,
    /// `ALL`
    All,
}

/// `[store] kind = "scylla"`
#[derive(Debug, Clone)]
pub struct ScyllaConfig {
    /// `host:port` of one or more nodes.
    pub contact_points: Vec<String>,
    /// Keyspace holding usher's tables (created if missing).
    pub keyspace: String,
    /// Replication factor of a keyspace usher creates.
    pub replication_factor: u32,
    /// Consistency of reads and writes (LWTs use the matching serial consistency).
    pub consistency: CqlConsistency,
    /// Upper bound of every store call.
    pub timeout: Duration,
    /// Queue partitions per zone.
    pub shards: u32,
    /// How long a queue entry lives after its last heartbeat.
    pub queue_ttl: Duration,
    /// Change feed.
    pub sync: SyncMode,
    /// How often a node polls the feed.
    pub feed_interval: Duration,
    /// How far behind now the feed reads, so late writes are not skipped.
    pub feed_safety: Duration,
    /// How long the newest arrivals are left alone by the exchanger, so a join still being
    /// written (on this node or another) is not overtaken by a later one.
    pub join_settle: Duration,
}

/// `[metrics]`
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Address of the `/metrics` listener; `None` turns it off.
    pub listen: Option<SocketAddr>,
}

/// `[admin]`: the admin API's listener and who may use it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminConfig {
    /// Address of the admin API; `None` turns it off.
    pub listen: Option<SocketAddr>,
    /// The bearer tokens it accepts.
    pub tokens: Vec<AdminToken>,
}

/// What an admin token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRole {
    /// Read zones and the audit log.
    Read,
    /// Read, and change (revoke visitors, and the levers to come).
    Write,
}

/// One admin bearer token.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    /// Who holds it (in the audit log; never the token).
    pub name: String,
    /// The token itself.
    pub secret: String,
    /// What it may do.
    pub role: AdminRole,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("AdminToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}
