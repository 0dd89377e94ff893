//! The composition root: turns a validated [`Config`] into a running Pingora server with the
//! proxy service, the metrics listener and the node's background work, and the signals that
//! stop or upgrade it. The only place besides `proxy` that imports Pingora.

mod admin_app;
mod background;
mod limits;
mod metrics_app;
mod notify;
mod redirect_app;
mod reload;
mod signals;
pub mod upgrade;

use crate::clock::SharedClock;
use crate::config::{Config, Problem};
use crate::config::{ScyllaConfig, SyncMode};
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::proxy::{Connections, UsherProxy};
use crate::room::Room;
use crate::store::cql::CqlStore;
use crate::store::deferred::Deferred;
use crate::store::embedded::EmbeddedStore;
use crate::store::{ChangeFeed, Store, StoreError};
use crate::token::{Keyring, Tokens};
use background::{NodeWork, Takeover};
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use signals::{ListenFdsCapture, Signals};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The proxy listener's socket buffers: none.
///
/// Read: Pingora puts a 64 KiB read buffer in front of every accepted connection for the sake of
/// TLS, which reads in small records; usher speaks plain HTTP (TLS ends in front of it), and
/// Pingora's HTTP/1 code reads headers and bodies into buffers of its own, so that buffer only
/// added a copy and about 12 KiB of resident memory per connection: a third of what an open
/// event stream costs (benches/README.md, "Concurrent SSE visitors").
///
/// Write: Pingora's default 1,460-byte write buffer is flushed only when full or at the end of a
/// response with a `Content-Length`, so an origin sending such a response slowly reached the
/// visitor only in 1,460-byte steps (2.25 s to the first byte where the origin took 2 ms).
/// Without it, bytes go out as they arrive.
const PLAIN_HTTP_BUFFERS: L4BufferSettings = L4BufferSettings {
    read: Some(0),
    write: Some(0),
};

/// The TLS listener's socket buffers: Pingora's read buffer (TLS reads in records), and no
/// write buffer, for the reason [`PLAIN_HTTP_BUFFERS`] gives.
const TLS_BUFFERS: L4BufferSettings = L4BufferSettings {
    read: None,
    write: Some(0),
};

/// The TLS listener's settings: certificates from `certificates` (chosen by SNI, swapped by a
/// reload), TLS 1.2 and 1.3 (rustls offers nothing older), HTTP/2 and HTTP/1.1 by ALPN.
fn tls_settings(
    certificates: Arc<crate::tls::Certificates>,
) -> pingora::listeners::tls::TlsSettings {
    // The paths are unused: the resolver serves the certificates.
    let mut settings = pingora::listeners::tls::TlsSettings::intermediate("", "")
        .expect("rustls settings without files cannot fail");
    settings.set_cert_resolver(certificates);
    settings.enable_h2();
    settings
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A key could not be loaded.
    #[error("token keys: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Keys(Vec<Problem>),
    /// A TLS certificate could not be used.
    #[error("TLS certificates: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Tls(Vec<Problem>),
    /// The event log's file cannot be opened.
    #[error("opening the event log {}: {source}", .path.display())]
    EventsLog {
        /// `events_log.path`.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An upstream cannot be used (a name that does not resolve, an unreadable `ca_file`).
    #[error("upstreams: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Upstreams(Vec<Problem>),
    /// The store could not be opened.
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    /// The embedded store's directory cannot be used.
    #[error("opening the store in {}: {source}", .dir.display())]
    DataDir {
        /// `store.data_dir`.
        dir: std::path::PathBuf,
        /// Why.
        source: StoreError,
    },
    /// A listener's address cannot be bound (in use, not this machine's, no permission).
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Which listener (`server.listen`, `metrics.listen`, `admin.listen`).
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds every listener's address once and lets go, so that an address in use is one clear
/// error at start instead of Pingora's retries and panic.
fn check_listeners(config: &Config) -> Result<(), StartError> {
    let listeners = std::iter::once(("server.listen", config.server.listen))
        .chain(
            config
                .server
                .redirect_listen
                .map(|addr| ("server.redirect_listen", addr)),
        )
        .chain(config.metrics.listen.map(|addr| ("metrics.listen", addr)))
        .chain(config.admin.listen.map(|addr| ("admin.listen", addr)));
    for (what, addr) in listeners {
        std::net::TcpListener::bind(addr).map_err(|source| StartError::Listen {
            addr,
            what,
            source,
        })?;
    }
    Ok(())
}

/// The parts of a node, built from a config before any listener opens.
pub struct Node {
    /// The room (shared with the proxy and the background work).
    pub room: Arc<Room>,
    /// Where state lives.
    pub store: Arc<dyn Store>,
    /// How this node hears about changes, its own and other nodes'.
    pub feed: Arc<dyn ChangeFeed>,
    /// The embedded store, which also needs snapshots; `None` for the CQL store.
    pub embedded: Option<Arc<Deferred>>,
    /// The metrics registry.
    pub metrics: Metrics,
}

impl Node {
    /// Opens the store and loads the keys for `config`. `upgrade`: the embedded store is held
    /// by the process being replaced, and is opened later (by the background work).
    pub fn open(config: &Config, clock: SharedClock, upgrade: bool) -> Result<Node, StartError> {
        let keyring = Keyring::load(&config.tokens).map_err(StartError::Keys)?;
        let tokens = Tokens::new(keyring, &config.tokens.issuer, config.tokens.cache_size);
        let (store, feed, embedded): (Arc<dyn Store>, Arc<dyn ChangeFeed>, _) =
            match &config.store.scylla {
                None if upgrade => {
                    let store = Arc::new(Deferred::default());
                    (store.clone(), store.clone(), Some(store))
                }
                None => {
                    let dir = &config.store.data_dir;
                    let store = EmbeddedStore::open(dir, clock.now_ms()).map_err(|source| {
                        StartError::DataDir {
                            dir: dir.clone(),
                            source,
                        }
                    })?;
                    let store = Arc::new(Deferred::opened(Arc::new(store)));
                    (store.clone(), store.clone(), Some(store))
                }
                Some(scylla) => {
                    let store = open_cql(scylla, clock.clone())?;
                    (store.clone(), store, None)
                }
            };
        let metrics = Metrics::new();
        let events = match &config.events_log {
            Some(log) => {
                crate::event_log::EventLog::start(log, metrics.clone()).map_err(|source| {
                    StartError::EventsLog {
                        path: log.path.clone(),
                        source,
                    }
                })?
            }
            None => crate::event_log::EventLog::disabled(),
        };
        let room = Arc::new(
            Room::new(config, tokens, store.clone(), clock, metrics.clone()).with_event_log(events),
        );
        Ok(Node {
            room,
            store,
            feed,
            embedded,
            metrics,
        })
    }
}

/// Connects the CQL store on a runtime of its own, which owns the driver's connections and the
/// outbox tail for the life of the process (Pingora gives each service its own runtime, and the
/// store is shared by all of them).
fn open_cql(config: &ScyllaConfig, clock: SharedClock) -> Result<Arc<CqlStore>, StartError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("usher-cql")
        .enable_all()
        .build()
        .map_err(StoreError::Io)?;
    tracing::info!(contact_points = ?config.contact_points, keyspace = %config.keyspace, "connecting to the CQL store");
    let store = Arc::new(runtime.block_on(CqlStore::connect(config, clock))?);
    let sync = match store.sync() {
        SyncMode::Cdc => "cdc",
        _ => "outbox",
    };
    let feed = store.clone().follow_feed(config.clone());
    runtime.spawn(async move {
        // Without a feed this node still works (every decision reads the store), but its
        // waiting visitors learn of other nodes' admissions only from their own ticks.
        if let Err(e) = feed.await {
            tracing::error!(error = %e, "the change feed stopped");
        }
    });
    tracing::info!(sync, "CQL store ready");
    // Lives as long as the process: the driver's tasks run on it.
    std::mem::forget(runtime);
    Ok(store)
}

/// A node ready to run: the Pingora server and the signal handling to run it with.
pub struct Built {
    /// The server, with every service added.
    pub server: Server,
    /// What the main loop waits on (SIGTERM, SIGQUIT, SIGINT; SIGHUP reloads).
    pub signals: Signals,
}

impl Built {
    /// Runs until a signal stops the node (the background work exits the process once it has
    /// drained; this returns only after a fast shutdown or Pingora's own grace period).
    pub fn run(self) {
        self.server.run(RunArgs {
            shutdown_signal: Box::new(self.signals),
        });
    }
}

/// Builds the Pingora server for `config` (read from the file at `path`, which a reload reads
/// again): proxy, metrics listener, admin API, background work. `upgrade`: take the listening
/// sockets and the data directory over from a running usher (which is sent `SIGQUIT`, see
/// `usher upgrade`).
pub fn build_server(
    path: &std::path::Path,
    config: &Config,
    clock: SharedClock,
    upgrade: bool,
) -> Result<Built, StartError> {
    if !upgrade {
        check_listeners(config)?;
    }
    let open_files = limits::raise_open_files();
    let max_connections = config
        .server
        .max_connections
        .map_or_else(|| limits::max_connections(open_files), |n| n as usize);
    let certificates = match &config.server.tls {
        Some(tls) => Some(crate::tls::Certificates::new(
            crate::tls::Loaded::read(tls).map_err(StartError::Tls)?,
        )),
        None => None,
    };
    let node = Node::open(config, clock.clone(), upgrade)?;
    if let Some(certificates) = &certificates {
        reload::publish_certificates(certificates, &node.metrics, clock.now_ms() / 1_000);
    }
    let lifecycle = Arc::new(Lifecycle::default());
    let grace = config.server.grace_period;
    let conf = ServerConf {
        threads: config.server.threads,
        // The background work exits as soon as the drain is done; Pingora's own wait is only
        // the backstop.
        grace_period_seconds: Some(grace.as_secs() + 5),
        graceful_shutdown_timeout_seconds: Some(1),
        upgrade_sock: config.server.upgrade_sock.display().to_string(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    // During an upgrade: blocks until the running usher sends its listening sockets.
    server.bootstrap();

    let upstreams = Arc::new(
        crate::proxy::Upstreams::new(config, node.metrics.clone())
            .map_err(StartError::Upstreams)?,
    );
    let proxy = UsherProxy::new(
        node.room.clone(),
        config,
        lifecycle.clone(),
        upstreams.clone(),
    );
    let reloader: Arc<dyn crate::admin::Reload> = Arc::new(reload::Reloader::new(
        path.to_path_buf(),
        config.clone(),
        node.room.clone(),
        upstreams.clone(),
        certificates.clone(),
        clock.clone(),
    ));
    let proxy = pingora::proxy::http_proxy(&server.configuration, proxy);
    let mut proxy = Connections::new(
        proxy,
        lifecycle.clone(),
        node.metrics.clone(),
        max_connections,
        config.server.header_timeout,
    );
    if config.server.proxy_protocol && certificates.is_none() {
        proxy = proxy.with_proxy_header();
    }
    let mut proxy_service =
        pingora::services::listening::Service::new("usher proxy".to_string(), proxy);
    let listener = ListenerConfig::tcp(config.server.listen.to_string());
    let listener = match &certificates {
        None => listener.l4_buffer(PLAIN_HTTP_BUFFERS),
        Some(certificates) => {
            if config.server.proxy_protocol {
                proxy_service.endpoints().set_pre_tls_callback(Arc::new(
                    crate::proxy::proxy_header::BeforeTls {
                        timeout: config.server.header_timeout,
                        metrics: node.metrics.clone(),
                    },
                ));
            }
            listener
                .tls(tls_settings(certificates.clone()))
                .l4_buffer(TLS_BUFFERS)
        }
    };
    proxy_service.add_listener(listener);
    proxy_service.threads = Some(config.server.threads);

    let takeover = (upgrade && node.embedded.is_some()).then(|| Takeover {
        dir: config.store.data_dir.clone(),
        wait: grace + Duration::from_secs(10),
    });
    let work = NodeWork {
        room: node.room.clone(),
        upstreams: upstreams.clone(),
        feed: node.feed.clone(),
        embedded: node.embedded.clone(),
        upgrade_marker: upgrade.then(|| signals::taken_marker(&config.server.upgrade_sock)),
        takeover,
        lifecycle: lifecycle.clone(),
        clock: clock.clone(),
        tick: config.store.tick,
        snapshot_every: config.store.snapshot_every,
        grace_period: grace,
    };
    let background = pingora::services::background::background_service("usher node", work);
    let background_handle = server.add_service(background);
    let proxy_handle = server.add_service(proxy_service);
    // The proxy starts only once the cache is warm and the exchanger is running (during an
    // upgrade: at once, holding requests until the store is open).
    proxy_handle.add_dependency(&background_handle);

    if let (Some(listen), Some(_)) = (config.server.redirect_listen, &certificates) {
        // Counted with the proxy's connections and given the same header deadline (never
        // disarmed here: a redirected browser moves to HTTPS, so an idle connection is cut).
        let redirect = Connections::new(
            pingora::apps::http_app::HttpServer::new_app(redirect_app::RedirectApp::new(
                config.server.listen.port(),
            )),
            lifecycle.clone(),
            node.metrics.clone(),
            max_connections,
            config.server.header_timeout,
        );
        let mut redirect_service =
            pingora::services::listening::Service::new("usher redirect".to_string(), redirect);
        redirect_service.add_tcp(&listen.to_string());
        server.add_service(redirect_service);
    }
    if let Some(listen) = config.metrics.listen {
        let mut metrics_service = pingora::services::listening::Service::new(
            "usher metrics".to_string(),
            pingora::apps::http_app::HttpServer::new_app(metrics_app::MetricsApp::new(
                node.metrics.clone(),
            )),
        );
        metrics_service.add_tcp(&listen.to_string());
        server.add_service(metrics_service);
    }
    if let Some(listen) = config.admin.listen {
        let admin = crate::admin::Admin::new(
            node.room.clone(),
            config.admin.tokens.clone(),
            clock.clone(),
        )
        .with_reload(reloader.clone());
        let mut admin_service = pingora::services::listening::Service::new(
            "usher admin".to_string(),
            pingora::apps::http_app::HttpServer::new_app(admin_app::AdminApp::new(admin)),
        );
        admin_service.add_tcp(&listen.to_string());
        server.add_service(admin_service);
    }
    let fds = Arc::new(OnceLock::new());
    server.add_service(ListenFdsCapture { fds: fds.clone() });
    tracing::info!(
        proxy = %config.server.listen,
        tls = ?certificates.as_ref().map(|c| c.files()),
        redirect = ?config.server.redirect_listen,
        proxy_protocol = config.server.proxy_protocol,
        metrics = ?config.metrics.listen,
        admin = ?config.admin.listen,
        zones = ?config.zones.iter().map(|z| z.name.as_str()).collect::<Vec<_>>(),
        data_dir = %config.store.data_dir.display(),
        max_connections,
        upgrade,
        "usher is ready to listen"
    );
    Ok(Built {
        server,
        signals: Signals {
            fds,
            upgrade_sock: config.server.upgrade_sock.clone(),
            lifecycle,
            reload: reloader,
        },
    })
}
