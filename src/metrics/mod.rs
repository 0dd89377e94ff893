//! Prometheus metrics: an owned registry (not the global one, so parallel tests do not share
//! counters) and the families usher records. Label values come from config names and enums only,
//! never from visitors, so cardinality stays bounded.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric family usher exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `usher_gate_requests_total{zone, decision}`: requests by zone and what the gate did.
    pub requests: IntCounterVec,
    /// `usher_queue_waiting{zone}`: visitors queued after the cursor.
    pub waiting: IntGaugeVec,
    /// `usher_sessions_active{zone}`: slots occupied (sessions plus reservations).
    pub active: IntGaugeVec,
    /// `usher_zone_capacity{zone}`: capacity in force (a scheduled sale's during one).
    pub capacity: IntGaugeVec,
    /// `usher_zone_admit_per_minute{zone}`: admission rate in force.
    pub admit_per_minute: IntGaugeVec,
    /// `usher_zone_burst{zone}`: burst in force.
    pub burst: IntGaugeVec,
    /// `usher_zone_paused{zone}`: 1 while the mode in force admits nobody (`paused`, `closed`,
    /// or a pre-queue's countdown).
    pub paused: IntGaugeVec,
    /// `usher_queue_wait_seconds{zone}`: how long each admitted visitor waited in line, from
    /// joining to the claim of their place (direct admissions are not in it).
    pub queue_wait: HistogramVec,
    /// `usher_eta_shown_seconds{zone}`: the wait each newcomer was told on joining (the ETA of
    /// their first page), to hold against `usher_queue_wait_seconds`.
    pub eta_shown: HistogramVec,
    /// `usher_upstream_responses_total{zone, upstream, class}`: origin responses by status class
    /// (`1xx` … `5xx`); `zone` is `none` for paths outside every zone.
    pub upstream_responses: IntCounterVec,
    /// `usher_upstream_response_seconds{zone, upstream}`: from the request sent to the origin's
    /// response header.
    pub upstream_response: HistogramVec,
    /// `usher_admitted_total{zone, via}`: admissions, by the exchanger (`queue`), at once
    /// (`direct`), or of visitors the line had passed who came back and of priority places
    /// (`returned`).
    pub admitted: IntCounterVec,
    /// `usher_skipped_total{zone}`: places the line passed without admitting them, because their
    /// holders had not been seen within `abandon_after` (closed the tab, or lost their
    /// connection). Those who come back go in first (`usher_admitted_total{via="returned"}`).
    pub skipped: IntCounterVec,
    /// `usher_slots_freed_total{zone}`: slots that came free between two ticks, released or
    /// expired, counted once across a fleet (by the node whose tick saw it).
    pub slots_freed: IntCounterVec,
    /// `usher_sessions_ended_total{zone, how}`: sessions ended before their time, by the origin
    /// (`released`) or by usher (`revoked`: an abuse report, a token shared across clients).
    /// Expired slots are the freed ones less these.
    pub sessions_ended: IntCounterVec,
    /// `usher_token_rejections_total{reason}`: presented tokens refused, by reason.
    pub rejections: IntCounterVec,
    /// `usher_store_errors_total{zone, op}`: store calls that failed or timed out.
    pub store_errors: IntCounterVec,
    /// `usher_requests_refused_total{reason}`: requests answered 400 before the gate, because
    /// their target, path or host cannot be read ([`REFUSALS`]).
    pub refused: IntCounterVec,
    /// `usher_upstream_errors_total{upstream, kind}`: forwards the origin never answered
    /// (`unreachable`: refused, reset, closed; `timeout`: no response in time).
    pub upstream_errors: IntCounterVec,
    /// `usher_origin_up{upstream, addr}`: 1 while the origin address passes its health checks
    /// (always 1 without `health_check`).
    pub origin_up: IntGaugeVec,
    /// `usher_origin_requests_total{upstream, addr}`: attempts sent to each origin address.
    pub origin_requests: IntCounterVec,
    /// `usher_origin_errors_total{upstream, addr, kind}`: attempts that failed, by kind
    /// (`connect`, `timeout`, `closed`).
    pub origin_errors: IntCounterVec,
    /// `usher_origin_response_seconds{upstream, addr}`: from the request sent to the origin's
    /// response header.
    pub origin_response: HistogramVec,
    /// `usher_upstream_resolve_failures_total{upstream}`: background lookups of an origin host
    /// name that failed (the name keeps its last addresses).
    pub resolve_failures: IntCounterVec,
    /// `usher_upstream_retries_total{upstream}`: requests sent to a second address after the
    /// first could not be connected to, or (idempotent ones) failed before it answered.
    pub upstream_retries: IntCounterVec,
    /// `usher_exchanger_tick_seconds`: time of one exchanger pass over all zones.
    pub tick_seconds: Histogram,
    /// `usher_feed_lag_seconds`: how long the last change this node heard of took to reach it
    /// through the change feed (0 on the embedded store).
    pub feed_lag: Gauge,
    /// `usher_connections_open`: client connections open on the proxy listener.
    pub connections_open: IntGauge,
    /// `usher_connections_refused_total`: connections answered 503 because the node was at
    /// `server.max_connections`.
    pub connections_refused: IntCounter,
    /// `usher_events_logged_total`: lines written to the event log's file.
    pub events_logged: IntCounter,
    /// `usher_events_sent_total`: lines the event log's webhook accepted.
    pub events_sent: IntCounter,
    /// `usher_events_dropped_total{reason}`: events lost: `queue_full` (the writer is behind),
    /// `write` (the file could not be written), `webhook_behind`, `webhook` (a batch that
    /// failed every try), `writer_gone`.
    pub events_dropped: IntCounterVec,
    /// `usher_tls_certificate_expiry_timestamp_seconds{file}`: when each certificate in force
    /// on the TLS listener expires.
    pub tls_expiry: IntGaugeVec,
    /// `usher_proxy_protocol_refused_total`: connections closed because they did not start
    /// with a valid PROXY protocol header (`server.proxy_protocol`).
    pub proxy_headers_refused: IntCounter,
    /// `usher_ready`: 1 while `/_usher/ready` would answer 200.
    pub ready: IntGauge,
    /// `usher_client_refusals_total{zone, reason}`: requests refused because one client went
    /// over a `[defence]` limit ([`CLIENT_REFUSALS`]).
    pub client_refusals: IntCounterVec,
    /// `usher_tokens_shared_total{zone}`: places and sessions revoked because their token was
    /// used from more than `session_clients` addresses.
    pub tokens_shared: IntCounterVec,
    /// `usher_event_streams_open`: event streams open on this node.
    pub event_streams_open: IntGauge,
    /// `usher_challenge_errors_total{zone}`: answers to the challenge hook that could not be
    /// checked (the provider timed out, failed or answered nonsense).
    pub challenge_errors: IntCounterVec,
    /// `usher_config_reloads_total{result}`: reloads (`SIGHUP`, `POST /v1/reload`) by result
    /// (`ok`, `invalid`: refused, the running config stays).
    pub reloads: IntCounterVec,
    /// `usher_config_hash`: the first 48 bits of the SHA-256 of the config file in force (nodes
    /// of a fleet that differ run different files).
    pub config_hash: IntGauge,
    /// `usher_config_loaded_timestamp_seconds`: when the config in force was loaded.
    pub config_loaded: IntGauge,
}

/// Reasons of `usher_client_refusals_total`: over `client_joins_per_minute`, over
/// `client_places`, over `client_event_streams` or `server.max_event_streams`.
pub const CLIENT_REFUSALS: [&str; 3] = ["join_rate", "client_places", "event_streams"];

impl Metrics {
    /// Registers every family in a new registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        // An origin's answer, from milliseconds to its read timeout.
        let latency_buckets = vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        // Waits from seconds to hours (an on-sale's line can take one).
        let wait_buckets = vec![
            1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
        ];
        let requests = counter(
            "usher_gate_requests_total",
            "Requests by zone and gate decision.",
            &["zone", "decision"],
        );
        let admitted = counter(
            "usher_admitted_total",
            "Visitors admitted, by the exchanger (queue), at once (direct), or after the line had passed them (returned; priority places too).",
            &["zone", "via"],
        );
        let skipped = counter(
            "usher_skipped_total",
            "Places the line passed without admitting them: their holders had not been seen within abandon_after.",
            &["zone"],
        );
        let slots_freed = counter(
            "usher_slots_freed_total",
            "Slots that came free (released or expired), counted once across a fleet.",
            &["zone"],
        );
        let sessions_ended = counter(
            "usher_sessions_ended_total",
            "Sessions ended before their time, by the origin (released) or by usher (revoked).",
            &["zone", "how"],
        );
        let rejections = counter(
            "usher_token_rejections_total",
            "Presented tokens refused and treated as no token, by reason.",
            &["reason"],
        );
        let store_errors = counter(
            "usher_store_errors_total",
            "Store calls that failed or timed out, by zone and operation.",
            &["zone", "op"],
        );
        let refused = counter(
            "usher_requests_refused_total",
            "Requests refused with 400 because their target, path or host cannot be read.",
            &["reason"],
        );
        let upstream_errors = counter(
            "usher_upstream_errors_total",
            "Forwards the origin never answered, by upstream and kind (unreachable, timeout).",
            &["upstream", "kind"],
        );
        let origin_requests = counter(
            "usher_origin_requests_total",
            "Attempts sent to each origin address.",
            &["upstream", "addr"],
        );
        let origin_errors = counter(
            "usher_origin_errors_total",
            "Attempts on an origin address that failed, by kind (connect, timeout, closed).",
            &["upstream", "addr", "kind"],
        );
        let resolve_failures = counter(
            "usher_upstream_resolve_failures_total",
            "Background lookups of an origin host name that failed (it keeps its last addresses).",
            &["upstream"],
        );
        let upstream_retries = counter(
            "usher_upstream_retries_total",
            "Requests sent to a second origin address after the first could not be connected to, or \
             (idempotent ones) failed before it answered.",
            &["upstream"],
        );
        let origin_up = gauge(
            "usher_origin_up",
            "1 while the origin address passes its health checks (always 1 without health_check).",
            &["upstream", "addr"],
        );
        let events_dropped = counter(
            "usher_events_dropped_total",
            "Events the event log lost, by reason (queue_full, write, webhook_behind, webhook, writer_gone).",
            &["reason"],
        );
        let events_logged = IntCounter::new(
            "usher_events_logged_total",
            "Lines written to the event log's file.",
        )
        .expect("valid metric");
        let events_sent = IntCounter::new(
            "usher_events_sent_total",
            "Event log lines the webhook accepted.",
        )
        .expect("valid metric");
        let tls_expiry = gauge(
            "usher_tls_certificate_expiry_timestamp_seconds",
            "When each certificate in force on the TLS listener expires (Unix seconds).",
            &["file"],
        );
        let origin_response = histogram(
            "usher_origin_response_seconds",
            "From the request sent to an origin address to its response header.",
            &["upstream", "addr"],
            latency_buckets.clone(),
        );
        let queue_wait = histogram(
            "usher_queue_wait_seconds",
            "How long each admitted visitor waited in line, from joining to claiming their place.",
            &["zone"],
            wait_buckets.clone(),
        );
        let eta_shown = histogram(
            "usher_eta_shown_seconds",
            "The wait each newcomer was told on joining (the ETA of their first page).",
            &["zone"],
            wait_buckets,
        );
        let upstream_responses = counter(
            "usher_upstream_responses_total",
            "Origin responses by zone (none outside every zone), upstream and status class.",
            &["zone", "upstream", "class"],
        );
        let upstream_response = histogram(
            "usher_upstream_response_seconds",
            "From the request sent to the origin's response header, by zone and upstream.",
            &["zone", "upstream"],
            latency_buckets,
        );
        let client_refusals = counter(
            "usher_client_refusals_total",
            "Requests refused because one client went over a [defence] limit, by zone and reason.",
            &["zone", "reason"],
        );
        let tokens_shared = counter(
            "usher_tokens_shared_total",
            "Places and sessions revoked because their token was used from more than session_clients addresses.",
            &["zone"],
        );
        let challenge_errors = counter(
            "usher_challenge_errors_total",
            "Answers to the challenge hook that could not be checked with the provider.",
            &["zone"],
        );
        let reloads = counter(
            "usher_config_reloads_total",
            "Config reloads (SIGHUP, POST /v1/reload) by result: ok, or invalid (the running config stays).",
            &["result"],
        );
        let zone_gauge = |name: &str, help: &str| gauge(name, help, &["zone"]);
        let waiting = zone_gauge("usher_queue_waiting", "Visitors queued after the cursor.");
        let active = zone_gauge(
            "usher_sessions_active",
            "Occupied slots: active sessions plus reservations of admitted visitors.",
        );
        let capacity = zone_gauge(
            "usher_zone_capacity",
            "Capacity of the zone in force (a scheduled sale's during one).",
        );
        let admit_per_minute = zone_gauge(
            "usher_zone_admit_per_minute",
            "Admission rate of the zone in force, per minute.",
        );
        let burst = zone_gauge("usher_zone_burst", "Admission burst of the zone in force.");
        let paused = zone_gauge(
            "usher_zone_paused",
            "1 while the zone's mode in force admits nobody (paused, closed, a pre-queue).",
        );
        let tick_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "usher_exchanger_tick_seconds",
                "Duration of one exchanger pass over all zones.",
            )
            .buckets(vec![
                0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
            ]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(tick_seconds.clone()))
            .expect("unique metric");
        let feed_lag = Gauge::new(
            "usher_feed_lag_seconds",
            "How long the last change from the change feed took to reach this node.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(feed_lag.clone()))
            .expect("unique metric");
        let connections_open = IntGauge::new(
            "usher_connections_open",
            "Client connections open on the proxy listener.",
        )
        .expect("valid metric");
        let connections_refused = IntCounter::new(
            "usher_connections_refused_total",
            "Client connections answered 503 because the node was at server.max_connections.",
        )
        .expect("valid metric");
        let proxy_headers_refused = IntCounter::new(
            "usher_proxy_protocol_refused_total",
            "Client connections closed because they did not start with a valid PROXY protocol \
             header (server.proxy_protocol).",
        )
        .expect("valid metric");
        let ready = IntGauge::new(
            "usher_ready",
            "1 while the node takes new visitors (/_usher/ready answers 200).",
        )
        .expect("valid metric");
        let event_streams_open = IntGauge::new(
            "usher_event_streams_open",
            "Event streams (/_usher/events) open on this node.",
        )
        .expect("valid metric");
        let config_hash = IntGauge::new(
            "usher_config_hash",
            "First 48 bits of the SHA-256 of the config file in force.",
        )
        .expect("valid metric");
        let config_loaded = IntGauge::new(
            "usher_config_loaded_timestamp_seconds",
            "When the config in force was loaded (Unix seconds).",
        )
        .expect("valid metric");
        for metric in [
            Box::new(event_streams_open.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(config_hash.clone()),
            Box::new(config_loaded.clone()),
            Box::new(connections_open.clone()),
            Box::new(connections_refused.clone()),
            Box::new(proxy_headers_refused.clone()),
            Box::new(events_logged.clone()),
            Box::new(events_sent.clone()),
            Box::new(ready.clone()),
        ] {
            registry.register(metric).expect("unique metric");
        }
        for reason in crate::token::Rejection::ALL {
            rejections.with_label_values(&[reason.as_str()]);
        }
        for reason in REFUSALS {
            refused.with_label_values(&[reason]);
        }
        Metrics {
            registry,
            requests,
            waiting,
            active,
            capacity,
            admit_per_minute,
            burst,
            paused,
            queue_wait,
            eta_shown,
            upstream_responses,
            upstream_response,
            admitted,
            skipped,
            slots_freed,
            sessions_ended,
            rejections,
            store_errors,
            refused,
            upstream_errors,
            origin_up,
            origin_requests,
            origin_errors,
            origin_response,
            resolve_failures,
            upstream_retries,
            tick_seconds,
            feed_lag,
            connections_open,
            connections_refused,
            events_logged,
            events_sent,
            events_dropped,
            tls_expiry,
            proxy_headers_refused,
            ready,
            client_refusals,
            tokens_shared,
            event_streams_open,
            challenge_errors,
            reloads,
            config_hash,
            config_loaded,
        }
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding our own registry into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// Why a request was refused: the `reason` label of `usher_requests_refused_total`
/// ([`crate::request::Refusal::reason`]).
pub const REFUSALS: [&str; 4] = ["target", "path", "host", "no_host"];

/// How a session ended before its time: the `how` label of `usher_sessions_ended_total`
/// (`released` by the origin, `revoked` by usher). Slots freed otherwise expired.
pub const SESSION_ENDINGS: [&str; 2] = ["released", "revoked"];

/// What the gate did with a request: the `decision` label of `usher_gate_requests_total`.
pub const DECISIONS: [&str; 22] = [
    "forward",
    "admit",
    "join",
    "wait",
    "claim",
    "status",
    "release",
    "passthrough",
    "closed",
    "fail_open",
    "fail_closed",
    "events",
    "prequeue",
    "ended",
    "preflight",
    "limited",
    "challenge",
    "solved",
    "challenge_refused",
    "bypass",
    "priority",
    "priority_refused",
];

/// `usher_gate_requests_total` resolved once per zone and decision, so the request path
/// increments an atomic instead of hashing label values.
pub struct RequestCounters {
    by_zone: Vec<Vec<IntCounter>>,
}

impl RequestCounters {
    /// Counters for `zones`, indexed like them.
    pub fn new(metrics: &Metrics, zones: &[&str]) -> Self {
        let by_zone = zones
            .iter()
            .map(|zone| {
                DECISIONS
                    .iter()
                    .map(|decision| metrics.requests.with_label_values(&[zone, decision]))
                    .collect()
            })
            .collect();
        RequestCounters { by_zone }
    }

    /// Counts one request of zone number `zone` with `decision` (one of [`DECISIONS`]).
    pub fn inc(&self, zone: usize, decision: &str) {
        let index = DECISIONS.iter().position(|d| *d == decision);
        debug_assert!(index.is_some(), "`{decision}` is not in DECISIONS");
        if let Some(counter) = index.and_then(|i| self.by_zone.get(zone)?.get(i)) {
            counter.inc();
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
