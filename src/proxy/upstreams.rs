//! The shop's side: each `[upstreams.NAME]` as a pool of origin addresses, built on Pingora's
//! load-balancing crate.
//!
//! - **Addresses**: literal or host names. Names are resolved when the pool is built (a name
//!   that does not resolve stops the start, or refuses the reload, naming it) and again every
//!   `resolve_every`; a later failure is logged and counted
//!   (`usher_upstream_resolve_failures_total`) and the name keeps its last addresses.
//! - **Health**: with `health_check`, each address is checked every `interval` (`GET path`
//!   expecting a 2xx, or a TCP/TLS connection); `fall` failures in a row take it out, `rise`
//!   passes put it back. An address that is out gets no new visitors; when every address is out,
//!   requests still go to them (an origin that is only failing its checks may still serve; a
//!   502 page is no better).
//! - **Balance**: round robin, least connections (requests in flight per address), or
//!   consistent hashing by visitor (Ketama), so an admitted visitor stays on one machine.
//! - **Per address**: `usher_origin_up`, `usher_origin_requests_total`,
//!   `usher_origin_errors_total{kind}`, `usher_origin_response_seconds`.
//!
//! The pools are swapped whole by a reload; an unchanged upstream keeps its pool (and the health
//! it learnt). Each pool is kept up to date by a task of its own, which ends once the pool is
//! no longer in force and no request holds it.

use crate::config::{Balance, Config, OriginAddr, Probe, Problem, UpstreamConfig};
use crate::metrics::Metrics;
use async_trait::async_trait;
use dashmap::DashMap;
use futures::FutureExt;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::{Consistent, RoundRobin};
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::protocols::tls::CaType;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::WrappedX509;
use prometheus::{Histogram, IntCounter, IntGauge};
use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// How many addresses a selection looks at before giving up on finding a healthy one.
const MAX_TRIES: usize = 256;

/// How long a lookup of one name may take in the background.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The upstreams in force, swapped whole by a reload; a request keeps the one it started with.
pub struct Upstreams {
    table: arc_swap::ArcSwap<HashMap<String, Arc<Upstream>>>,
    metrics: Metrics,
    /// The runtime the pools' upkeep tasks run on, once the node started.
    runtime: OnceLock<tokio::runtime::Handle>,
}

impl Upstreams {
    /// The pools of `config`'s upstreams, with every host name resolved now.
    pub fn new(config: &Config, metrics: Metrics) -> Result<Self, Vec<Problem>> {
        let mut table = HashMap::new();
        let mut problems = Vec::new();
        for upstream in config.upstreams.values() {
            match Upstream::build(upstream.clone(), &metrics) {
                Ok(pool) => {
                    table.insert(upstream.name.clone(), Arc::new(pool));
                }
                Err(mut more) => problems.append(&mut more),
            }
        }
        match problems.is_empty() {
            true => Ok(Upstreams {
                table: arc_swap::ArcSwap::from_pointee(table),
                metrics,
                runtime: OnceLock::new(),
            }),
            false => Err(problems),
        }
    }

    /// The pool called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Upstream>> {
        self.table.load().get(name).cloned()
    }

    /// Starts the upkeep of every pool (resolving, health checks) on the current runtime.
    pub fn start(&self) {
        let handle = tokio::runtime::Handle::current();
        for pool in self.table.load().values() {
            handle.spawn(upkeep(Arc::downgrade(pool)));
        }
        let _ = self.runtime.set(handle);
    }

    /// Puts `config`'s upstreams in force. An unchanged upstream keeps its pool; a new or
    /// changed one is built (its names resolved now: one that does not resolve refuses the
    /// reload). An upstream the new config no longer names stays, so a request already routed
    /// to it still finds it; it is gone after a restart.
    pub fn replace(&self, config: &Config) -> Result<(), Vec<Problem>> {
        let current = self.table.load();
        let mut next = HashMap::new();
        let mut built = Vec::new();
        let mut problems = Vec::new();
        for upstream in config.upstreams.values() {
            match current.get(&upstream.name) {
                Some(pool) if pool.config == *upstream => {
                    next.insert(upstream.name.clone(), pool.clone());
                }
                _ => match Upstream::build(upstream.clone(), &self.metrics) {
                    Ok(pool) => {
                        let pool = Arc::new(pool);
                        built.push(Arc::downgrade(&pool));
                        next.insert(upstream.name.clone(), pool);
                    }
                    Err(mut more) => problems.append(&mut more),
                },
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        for (name, pool) in current.iter() {
            next.entry(name.clone()).or_insert_with(|| pool.clone());
        }
        self.table.store(Arc::new(next));
        if let Some(handle) = self.runtime.get() {
            for pool in built {
                handle.spawn(upkeep(pool));
            }
        }
        Ok(())
    }
}

/// Keeps one pool's addresses and health current until it is dropped. Its names were just
/// resolved (the pool was built): the first lookup is due after `resolve_every`, the first
/// health check at once.
async fn upkeep(pool: Weak<Upstream>) {
    let mut due = match pool.upgrade() {
        Some(pool) => Due {
            resolve: Instant::now() + pool.config.resolve_every,
            check: Instant::now(),
        },
        None => return,
    };
    loop {
        let wait = match pool.upgrade() {
            Some(pool) => pool.refresh(&mut due).await,
            None => return,
        };
        tokio::time::sleep(wait).await;
    }
}

/// When a pool's names are next resolved and its addresses next checked.
struct Due {
    resolve: Instant,
    check: Instant,
}

/// One upstream in force: its settings, its addresses and how to pick one.
pub struct Upstream {
    /// As configured.
    pub config: UpstreamConfig,
    balancer: Balancer,
    resolver: Arc<Resolver>,
    /// The roots of `ca_file`, for every TLS connection to this upstream.
    ca: Option<Arc<CaType>>,
    /// In-flight counts and metric handles, per address.
    stats: DashMap<SocketAddr, Arc<AddrStats>>,
    /// Where `least_connections` starts looking, so ties take turns.
    turn: AtomicUsize,
    metrics: Metrics,
}

/// The selection algorithm over the pool's addresses and their health.
enum Balancer {
    RoundRobin(LoadBalancer<RoundRobin>),
    Visitor(LoadBalancer<Consistent>),
}

impl Balancer {
    fn backends(&self) -> &Backends {
        match self {
            Balancer::RoundRobin(lb) => lb.backends(),
            Balancer::Visitor(lb) => lb.backends(),
        }
    }

    fn select_with(&self, key: &[u8], accept: impl Fn(&Backend, bool) -> bool) -> Option<Backend> {
        match self {
            Balancer::RoundRobin(lb) => lb.select_with(key, MAX_TRIES, accept),
            Balancer::Visitor(lb) => lb.select_with(key, MAX_TRIES, accept),
        }
    }

    /// Takes the discovered addresses in (resolution happens before, in [`Resolver`]).
    async fn update(&self) -> pingora::Result<()> {
        match self {
            Balancer::RoundRobin(lb) => lb.update().await,
            Balancer::Visitor(lb) => lb.update().await,
        }
    }
}

/// One address's requests in flight and metric handles.
pub struct AddrStats {
    in_flight: AtomicUsize,
    requests: IntCounter,
    response: Histogram,
    up: IntGauge,
}

/// A request's hold on an address: counted in flight until dropped.
pub struct InFlight(Arc<AddrStats>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl InFlight {
    /// The origin's response header arrived `elapsed` after the request went out.
    pub fn answered(&self, elapsed: Duration) {
        self.0.response.observe(elapsed.as_secs_f64());
    }
}

/// An address picked for one attempt of a request.
pub struct Picked {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Counts the attempt in flight.
    pub hold: InFlight,
}

impl Upstream {
    fn build(config: UpstreamConfig, metrics: &Metrics) -> Result<Upstream, Vec<Problem>> {
        let path = format!("upstreams.{}", config.name);
        let resolver = Arc::new(Resolver::new(&config, metrics));
        resolver.resolve_now().map_err(|failed| {
            failed
                .into_iter()
                .map(|(i, message)| Problem {
                    path: format!("{path}.addrs[{i}]"),
                    message,
                })
                .collect::<Vec<_>>()
        })?;
        let ca = match config.tls.as_ref().and_then(|t| t.ca_file.as_ref()) {
            Some(file) => Some(read_ca(file).map_err(|message| {
                vec![Problem {
                    path: format!("{path}.ca_file"),
                    message,
                }]
            })?),
            None => None,
        };
        let backends = Backends::new(Box::new(Discovery(resolver.clone())));
        let mut balancer = match config.balance {
            Balance::Visitor => Balancer::Visitor(LoadBalancer::from_backends(backends)),
            _ => Balancer::RoundRobin(LoadBalancer::from_backends(backends)),
        };
        if let Some(check) = health_check(&config, ca.clone()) {
            match &mut balancer {
                Balancer::RoundRobin(lb) => lb.set_health_check(check),
                Balancer::Visitor(lb) => lb.set_health_check(check),
            }
        }
        // The discovery only reads what was resolved above: it never waits.
        if let Some(Err(e)) = balancer.update().now_or_never() {
            return Err(vec![Problem {
                path,
                message: format!("no address: {e}"),
            }]);
        }
        let pool = Upstream {
            config,
            balancer,
            resolver,
            ca,
            stats: DashMap::new(),
            turn: AtomicUsize::new(0),
            metrics: metrics.clone(),
        };
        pool.publish_health();
        Ok(pool)
    }

    /// Picks an address for a request keyed by `key` (the visitor, for `balance = "visitor"`),
    /// other than `avoid` (the one that just failed) when there is another.
    pub fn pick(&self, key: &[u8], avoid: Option<SocketAddr>) -> Option<Picked> {
        let inet = |b: &Backend| b.addr.as_inet().copied();
        let other = |b: &Backend| inet(b).is_some() && inet(b) != avoid;
        let chosen = match self.config.balance {
            Balance::LeastConnections => self.least_loaded(&other),
            _ => self
                .balancer
                .select_with(key, |b, healthy| healthy && other(b)),
        };
        // Every other address is out: any other one, then any at all.
        let chosen = chosen
            .or_else(|| self.balancer.select_with(key, |b, _| other(b)))
            .or_else(|| self.balancer.select_with(key, |b, _| inet(b).is_some()))?;
        let addr = inet(&chosen)?;
        let stats = self.stats(addr);
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        stats.requests.inc();
        Some(Picked {
            addr,
            hold: InFlight(stats),
        })
    }

    /// The healthy address with the fewest requests in flight. Ties (the usual case on a
    /// quiet shop) go round robin, so a light load is still spread.
    fn least_loaded(&self, accept: &dyn Fn(&Backend) -> bool) -> Option<Backend> {
        let backends = self.balancer.backends();
        let all = backends.get_backend();
        let candidates: Vec<&Backend> = all
            .iter()
            .filter(|b| accept(b) && backends.ready(b))
            .collect();
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        let in_flight = |b: &Backend| {
            b.addr
                .as_inet()
                .and_then(|a| {
                    self.stats
                        .get(a)
                        .map(|s| s.in_flight.load(Ordering::Relaxed))
                })
                .unwrap_or(0)
        };
        (0..candidates.len())
            .map(|i| candidates[(start + i) % candidates.len()])
            .min_by_key(|b| in_flight(b))
            .cloned()
    }

    fn stats(&self, addr: SocketAddr) -> Arc<AddrStats> {
        if let Some(stats) = self.stats.get(&addr) {
            return stats.clone();
        }
        let labels = [self.config.name.as_str(), &addr.to_string()];
        let m = &self.metrics;
        self.stats
            .entry(addr)
            .or_insert_with(|| {
                Arc::new(AddrStats {
                    in_flight: AtomicUsize::new(0),
                    requests: m.origin_requests.with_label_values(&labels),
                    response: m.origin_response.with_label_values(&labels),
                    up: m.origin_up.with_label_values(&labels),
                })
            })
            .clone()
    }

    /// Counts an attempt on `addr` that failed with `kind` (`connect`, `timeout`, `closed`).
    pub fn failed(&self, addr: SocketAddr, kind: &str) {
        self.metrics
            .origin_errors
            .with_label_values(&[self.config.name.as_str(), &addr.to_string(), kind])
            .inc();
    }

    /// Counts a request sent to a second address after the first failed.
    pub fn retried(&self) {
        self.metrics
            .upstream_retries
            .with_label_values(&[self.config.name.as_str()])
            .inc();
    }

    /// The peer for `picked`: TLS with SNI (`sni`, or the host name the address came from,
    /// or the address itself) and roots as configured, the upstream's timeouts.
    pub fn peer(&self, picked: &Picked) -> HttpPeer {
        let (tls, sni) = match &self.config.tls {
            Some(tls) => (
                true,
                tls.sni
                    .clone()
                    .unwrap_or_else(|| self.resolver.host_of(picked.addr)),
            ),
            None => (false, String::new()),
        };
        let mut peer = HttpPeer::new(picked.addr, tls, sni);
        peer.options.connection_timeout = Some(self.config.connect_timeout);
        peer.options.read_timeout = Some(self.config.idle_timeout);
        peer.options.ca = self.ca.clone();
        peer
    }

    /// Resolves names and checks health when `due`; how long until the next is due.
    async fn refresh(&self, due: &mut Due) -> Duration {
        if Instant::now() >= due.resolve {
            self.resolver.resolve().await;
            if let Err(e) = self.balancer.update().await {
                tracing::warn!(upstream = %self.config.name, error = %e, "upstream has no address");
            }
            due.resolve = Instant::now() + self.config.resolve_every;
        }
        let Some(check) = &self.config.health_check else {
            return due.resolve.saturating_duration_since(Instant::now());
        };
        if Instant::now() >= due.check {
            self.balancer.backends().run_health_check(true).await;
            self.publish_health();
            due.check = Instant::now() + check.interval;
        }
        due.resolve
            .min(due.check)
            .saturating_duration_since(Instant::now())
    }

    /// Sets `usher_origin_up` for every address and logs the ones that went down or came back.
    fn publish_health(&self) {
        let backends = self.balancer.backends();
        for backend in backends.get_backend().iter() {
            let Some(addr) = backend.addr.as_inet().copied() else {
                continue;
            };
            let up = i64::from(backends.ready(backend));
            let stats = self.stats(addr);
            let before = stats.up.get();
            stats.up.set(up);
            match (before, up) {
                (1, 0) => {
                    tracing::warn!(upstream = %self.config.name, %addr, "origin address failed its health checks: it gets no new visitors")
                }
                (0, 1) => {
                    tracing::info!(upstream = %self.config.name, %addr, "origin address passes its health checks again")
                }
                _ => {}
            }
        }
    }

    /// The addresses in the pool now, and whether each is up.
    pub fn addresses(&self) -> Vec<(SocketAddr, bool)> {
        let backends = self.balancer.backends();
        backends
            .get_backend()
            .iter()
            .filter_map(|b| Some((*b.addr.as_inet()?, backends.ready(b))))
            .collect()
    }
}

/// The health check of `config`, if it has one.
fn health_check(
    config: &UpstreamConfig,
    ca: Option<Arc<CaType>>,
) -> Option<Box<dyn HealthCheck + Send + Sync>> {
    let check = config.health_check.as_ref()?;
    let first_host = config
        .addrs
        .first()
        .map(|a| a.host.clone())
        .unwrap_or_default();
    let sni = config
        .tls
        .as_ref()
        .map(|tls| tls.sni.clone().unwrap_or(first_host.clone()));
    let host = config
        .host_header
        .clone()
        .or(sni.clone())
        .unwrap_or(first_host);
    match &check.probe {
        Probe::Http(path) => {
            let mut hc = HttpHealthCheck::new(&host, sni.is_some());
            let mut req = pingora::http::RequestHeader::build("GET", path.as_bytes(), None).ok()?;
            req.insert_header("host", host.as_str()).ok()?;
            req.insert_header("user-agent", "usher-health-check").ok()?;
            hc.req = req;
            hc.peer_template.sni = sni.unwrap_or_default();
            hc.peer_template.options.connection_timeout = Some(check.timeout);
            hc.peer_template.options.read_timeout = Some(check.timeout);
            hc.peer_template.options.ca = ca;
            hc.consecutive_failure = check.fall as usize;
            hc.consecutive_success = check.rise as usize;
            // Any 2xx, not only 200.
            hc.validator = Some(Box::new(|resp| match resp.status.is_success() {
                true => Ok(()),
                false => pingora::Error::e_explain(
                    pingora::ErrorType::HTTPStatus(resp.status.as_u16()),
                    "health check answered without a 2xx",
                ),
            }));
            Some(Box::new(hc))
        }
        Probe::Tcp => {
            let mut hc = match &sni {
                Some(sni) => TcpHealthCheck::new_tls(sni),
                None => TcpHealthCheck::new(),
            };
            hc.peer_template.options.connection_timeout = Some(check.timeout);
            hc.peer_template.options.ca = ca;
            hc.consecutive_failure = check.fall as usize;
            hc.consecutive_success = check.rise as usize;
            Some(hc)
        }
    }
}

/// The certificates of a `ca_file` (read and split by [`crate::tls`]'s PEM readers), each
/// checked before Pingora's wrapper (which panics on one it cannot parse) takes it.
fn read_ca(file: &std::path::Path) -> Result<Arc<CaType>, String> {
    let bytes = crate::tls::read_pem_file(file)?;
    let ders =
        crate::tls::pem_certificates(&bytes).map_err(|e| format!("{e} ({})", file.display()))?;
    let mut certs = Vec::with_capacity(ders.len());
    for der in ders {
        x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("a certificate in {} cannot be read: {e}", file.display()))?;
        certs.push(WrappedX509::new(
            der.to_vec(),
            pingora::utils::tls::parse_x509,
        ));
    }
    Ok(Arc::from(certs.into_boxed_slice()))
}

/// The addresses behind an upstream's `addrs`: literals as they are, names as last resolved.
struct Resolver {
    upstream: String,
    addrs: Vec<OriginAddr>,
    /// The addresses each name resolved to last (never emptied by a failed lookup).
    resolved: Mutex<HashMap<OriginAddr, Vec<SocketAddr>>>,
    failures: IntCounter,
}

impl Resolver {
    fn new(config: &UpstreamConfig, metrics: &Metrics) -> Self {
        Resolver {
            upstream: config.name.clone(),
            addrs: config.addrs.clone(),
            resolved: Mutex::new(HashMap::new()),
            failures: metrics.resolve_failures.with_label_values(&[&config.name]),
        }
    }

    /// Resolves every name now, blocking (at start and on a reload); the entries that failed.
    fn resolve_now(&self) -> Result<(), Vec<(usize, String)>> {
        let mut failed = Vec::new();
        let mut resolved = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        for (i, addr) in self.addrs.iter().enumerate() {
            if addr.literal().is_some() {
                continue;
            }
            let found = (addr.host.as_str(), addr.port)
                .to_socket_addrs()
                .map(|found| found.collect())
                .map_err(|e| e.to_string());
            if let Err(why) = keep(&mut resolved, addr, found) {
                failed.push((i, format!("cannot resolve `{addr}`: {why}")));
            }
        }
        match failed.is_empty() {
            true => Ok(()),
            false => Err(failed),
        }
    }

    /// Resolves every name again; a failure is logged and counted, and the name keeps its
    /// last addresses.
    async fn resolve(&self) {
        for addr in &self.addrs {
            if addr.literal().is_some() {
                continue;
            }
            let lookup = tokio::net::lookup_host((addr.host.as_str(), addr.port));
            let found = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
                Ok(Ok(found)) => Ok(found.collect()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_string()),
            };
            let mut resolved = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(why) = keep(&mut resolved, addr, found) {
                self.failures.inc();
                tracing::warn!(upstream = %self.upstream, name = %addr, error = %why, "cannot resolve an origin name: keeping its last addresses");
            }
        }
    }

    /// Every address now.
    fn current(&self) -> BTreeSet<Backend> {
        let resolved = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        self.addrs
            .iter()
            .flat_map(|a| match a.literal() {
                Some(addr) => vec![addr],
                None => resolved.get(a).cloned().unwrap_or_default(),
            })
            .map(|addr| Backend {
                addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
                weight: 1,
                ext: Default::default(),
            })
            .collect()
    }

    /// The configured host `addr` came from (a name, or the address itself).
    fn host_of(&self, addr: SocketAddr) -> String {
        let resolved = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        resolved
            .iter()
            .find(|(_, found)| found.contains(&addr))
            .map(|(name, _)| name.host.clone())
            .unwrap_or_else(|| addr.ip().to_string())
    }
}

/// Keeps what a lookup of `addr` `found`, unless it failed or found nothing (then the name keeps
/// its last addresses, and why is returned).
fn keep(
    resolved: &mut HashMap<OriginAddr, Vec<SocketAddr>>,
    addr: &OriginAddr,
    found: Result<Vec<SocketAddr>, String>,
) -> Result<(), String> {
    match found {
        Ok(found) if !found.is_empty() => {
            resolved.insert(addr.clone(), found);
            Ok(())
        }
        Ok(_) => Err("no address".to_string()),
        Err(why) => Err(why),
    }
}

/// The load balancer's view of a [`Resolver`]: it reads, never resolves (the upkeep task
/// resolves before it asks).
struct Discovery(Arc<Resolver>);

#[async_trait]
impl ServiceDiscovery for Discovery {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let current = self.0.current();
        if current.is_empty() {
            return pingora::Error::e_explain(
                pingora::ErrorType::InternalError,
                format!("upstream `{}` has no address", self.0.upstream),
            );
        }
        Ok((current, HashMap::new()))
    }
}

#[cfg(test)]
mod tests;
