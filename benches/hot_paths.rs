//! Micro-benchmarks of usher's per-request hot paths (criterion, `harness = false`).
//!
//! Run: `cargo bench -j2 --bench hot_paths` (about a minute). Filter: `cargo bench --bench
//! hot_paths -- verify/eddsa`.
//!
//! Groups:
//! - `gate/access_request`: the whole per-request gate path for a visitor with a valid access
//!   token: the canonical view of the request, zone lookup, cookie parse, token check, decision.
//!   `cached` is what usher does (`Tokens::verify`, DashMap cache of verified tokens);
//!   `naive_verify_every_time` checks the signature on every request (`Tokens::verify_uncached`)
//!   as a baseline.
//! - `gate/steps/*`: the steps of the cached path one by one (`canonical_view_odd_spelling`: the
//!   view's slow path, a target with escapes, merged slashes, a parameter and upper case).
//! - `verify/eddsa`, `verify/hs256`: one token verification: `dashmap_cached` (usher's
//!   `Tokens::verify`), `naive_mutex_hashmap_cached` (a `Mutex<HashMap<String, Claims>>` in front
//!   of `verify_uncached`, cloning the claims out like a naive cache would) and `uncached`; the
//!   `_2threads` variants hit the same cache from two threads at once.
//! - `waiting/touch_and_ahead/N_queued`: the two embedded-store calls behind every waiting-page
//!   view (heartbeat, position) with N visitors in line.
//! - `newcomer/*`: a newcomer's whole request through `Room::handle` (embedded store, 1,000
//!   waiting): `join` (a place: a signed visitor token, the position, the waiting page),
//!   `challenge` (proof of work on: a signed puzzle and the page, nothing written),
//!   `limited` (a client over its limits: the 429 page). Each request from its own address,
//!   except `limited`'s.
//! - `upstream_pick/*`: choosing an origin address for a forward (`proxy::Upstream::pick`, its
//!   in-flight hold dropped at once) over three addresses: `round_robin`, `least_connections`,
//!   `visitor` (consistent hashing by visitor id).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use usher::admission::{QueueKey, VisitorId};
use usher::config::Config;
use usher::gate::{self, Decision, TokenCheck};
use usher::request;
use usher::token::{cookie, Claims, Keyring, TokenKind, Tokens};
use usher::zone::ZoneTable;

const HOST: &str = "shop.example.com";
const PATH: &str = "/checkout/cart/42";

fn now_ms() -> u64 {
    usher::clock::system().now_ms()
}

/// A config with three zones (so the zone lookup does some work), signing with the key that the
/// environment variable `var` holds.
fn config(algorithm: &str, var: &str) -> Config {
    let text = format!(
        r#"
        [upstreams.shop]
        addrs = ["127.0.0.1:9000"]

        [zones.checkout]
        paths = ["/checkout"]
        capacity = 100000
        admit_per_minute = 100000
        session_ttl = "10m"

        [zones.express]
        paths = ["/checkout/express"]
        capacity = 10
        admit_per_minute = 10

        [zones.vip]
        hosts = ["vip.example.com"]
        paths = ["/checkout"]
        capacity = 10
        admit_per_minute = 10

        [tokens]
        algorithm = "{algorithm}"
        signing_key = {{ kid = "k1", env = "{var}" }}
        "#
    );
    usher::config::parse(&text, Path::new(".")).expect("benchmark config is valid")
}

/// Config, token service and a signed access token for zone `checkout`.
struct Fixture {
    config: Config,
    tokens: Tokens,
    token: String,
}

fn fixture(algorithm: &str) -> Fixture {
    let var = format!("USHER_BENCH_KEY_{algorithm}");
    let secret = match algorithm {
        "HS256" => usher::token::keys::generate_hs256(),
        _ => usher::token::keys::generate_ed25519().0,
    };
    // Single-threaded setup before any benchmark runs.
    std::env::set_var(&var, secret);
    let config = config(algorithm, &var);
    let keyring = Keyring::load(&config.tokens).expect("benchmark key loads");
    let tokens = Tokens::new(keyring, "usher", 100_000);
    let now = now_ms();
    let claims = Claims {
        iss: "usher".to_string(),
        typ: TokenKind::Access,
        zone: "checkout".to_string(),
        vid: VisitorId::random(),
        rank: now,
        iat: now / 1_000,
        // Far in the future and beyond half the session TTL, so `decide` does not ask to renew.
        exp: now / 1_000 + 10 * 365 * 24 * 3_600,
        adm: Some(now),
        pri: false,
    };
    let token = tokens.sign(&claims);
    assert!(
        tokens.verify_uncached(&token).is_ok(),
        "signed token verifies"
    );
    Fixture {
        config,
        tokens,
        token,
    }
}

/// The gate's decision for a request to `zone` with token check `check`, outside any schedule.
fn decide(zone: &usher::zone::Zone, check: &TokenCheck, now: u64) -> Decision {
    gate::decide(&gate::Facts {
        zone: &zone.config,
        phase: usher::onsale::Phase::Base,
        token: check,
        cursor: QueueKey::default(),
        draw: None,
        passed: None,
        preflight: false,
        challenge: false,
        now_ms: now,
    })
}

fn gate_path(c: &mut Criterion) {
    let f = fixture("EdDSA");
    let table = ZoneTable::new(&f.config);
    let cookie_header = format!(
        "_ga=GA1.2.3.4; session=abcdef0123456789; usher_checkout={}; theme=dark",
        f.token
    );
    let cookie_header = cookie_header.as_bytes();
    let hosts: [&[u8]; 1] = [HOST.as_bytes()];
    let raw = request::Raw {
        method: "GET",
        http10: false,
        target: PATH.as_bytes(),
        hosts: &hosts,
        authority: None,
    };
    let now = now_ms();

    // The path measured is the forward of a valid session, not a refusal.
    let view = request::view(raw).expect("readable");
    let zone = table.find(view.host.as_deref(), &view.path).expect("zone");
    let token = cookie::find(cookie_header, &zone.cookie);
    let check = gate::check_token(&f.tokens, &zone.config.name, token, |_| false, now);
    assert_eq!(
        decide(zone, &check, now),
        Decision::Forward { renew: false }
    );

    let mut group = c.benchmark_group("gate/access_request");
    // usher's path: the canonical view, then the verified-token cache answers after the first
    // request.
    group.bench_function("cached", |b| {
        b.iter(|| {
            let view = request::view(black_box(raw)).expect("readable");
            let zone = table.find(view.host.as_deref(), &view.path).expect("zone");
            let token = cookie::find(black_box(cookie_header), &zone.cookie);
            let check = gate::check_token(&f.tokens, &zone.config.name, token, |_| false, now);
            let decision = decide(zone, &check, now);
            debug_assert_eq!(decision, Decision::Forward { renew: false });
            black_box(decision)
        })
    });
    // Baseline: the same path, checking the signature on every request.
    group.bench_function("naive_verify_every_time", |b| {
        b.iter(|| {
            let view = request::view(black_box(raw)).expect("readable");
            let zone = table.find(view.host.as_deref(), &view.path).expect("zone");
            let token = cookie::find(black_box(cookie_header), &zone.cookie).expect("cookie");
            let check = match f.tokens.verify_uncached(token) {
                Ok(claims) if claims.exp * 1_000 > now && claims.zone == zone.config.name => {
                    TokenCheck::Access(Arc::new(claims))
                }
                Ok(_) => TokenCheck::Missing,
                Err(reason) => TokenCheck::Rejected(reason),
            };
            let decision = decide(zone, &check, now);
            debug_assert_eq!(decision, Decision::Forward { renew: false });
            black_box(decision)
        })
    });
    group.finish();

    // The steps of the cached path on their own, to see where its time goes.
    let mut group = c.benchmark_group("gate/steps");
    group.bench_function("canonical_view", |b| {
        b.iter(|| black_box(request::view(black_box(raw))))
    });
    // The slow path of the canonical view: a target with escapes, merged slashes, a parameter
    // and case.
    let odd = request::Raw {
        target: b"/%43heckout//Cart;jsessionid=1/%34%32/",
        ..raw
    };
    assert!(request::view(odd).is_ok(), "the odd spelling is readable");
    group.bench_function("canonical_view_odd_spelling", |b| {
        b.iter(|| black_box(request::view(black_box(odd))))
    });
    group.bench_function("zone_find", |b| {
        b.iter(|| black_box(table.find(black_box(Some(HOST)), black_box(PATH))))
    });
    let zone = table.find(Some(HOST), PATH).expect("zone");
    group.bench_function("cookie_find", |b| {
        b.iter(|| black_box(cookie::find(black_box(cookie_header), &zone.cookie)))
    });
    let token = cookie::find(cookie_header, &zone.cookie);
    group.bench_function("check_token_cached", |b| {
        b.iter(|| {
            black_box(gate::check_token(
                &f.tokens,
                &zone.config.name,
                black_box(token),
                |_| false,
                now,
            ))
        })
    });
    let check = gate::check_token(&f.tokens, &zone.config.name, token, |_| false, now);
    group.bench_function("decide", |b| {
        b.iter(|| black_box(decide(zone, black_box(&check), now)))
    });
    group.finish();
}

fn verify(c: &mut Criterion, algorithm: &str, label: &str) {
    let f = fixture(algorithm);
    let now = now_ms();
    let naive: Mutex<HashMap<String, Claims>> = Mutex::new(HashMap::new());

    let mut group = c.benchmark_group(format!("verify/{label}"));
    group.bench_function("dashmap_cached", |b| {
        b.iter(|| black_box(f.tokens.verify(black_box(&f.token), now).expect("valid")))
    });
    group.bench_function("naive_mutex_hashmap_cached", |b| {
        b.iter(|| {
            let token = black_box(f.token.as_str());
            let cached = naive.lock().expect("not poisoned").get(token).cloned();
            let claims = match cached {
                Some(claims) => claims,
                None => {
                    let claims = f.tokens.verify_uncached(token).expect("valid");
                    naive
                        .lock()
                        .expect("not poisoned")
                        .insert(token.to_string(), claims.clone());
                    claims
                }
            };
            assert!(claims.exp * 1_000 > now);
            black_box(claims)
        })
    });
    group.bench_function("uncached", |b| {
        b.iter(|| {
            black_box(
                f.tokens
                    .verify_uncached(black_box(&f.token))
                    .expect("valid"),
            )
        })
    });
    // The same two caches hit from two threads at once (this machine's core count): each
    // iteration is one lookup on each thread, so the time is per pair of parallel lookups.
    group.bench_function("dashmap_cached_2threads", |b| {
        b.iter_custom(|iters| {
            parallel(iters, || {
                black_box(f.tokens.verify(black_box(&f.token), now).expect("valid"));
            })
        })
    });
    group.bench_function("naive_mutex_hashmap_cached_2threads", |b| {
        b.iter_custom(|iters| {
            parallel(iters, || {
                let token = black_box(f.token.as_str());
                let claims = naive.lock().expect("not poisoned").get(token).cloned();
                black_box(claims.expect("warmed by the single-thread run"));
            })
        })
    });
    group.finish();
}

/// Runs `op` `iters` times on each of two threads; the wall time of the whole.
fn parallel(iters: u64, op: impl Fn() + Sync) -> Duration {
    let barrier = std::sync::Barrier::new(3);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..iters {
                    op();
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = std::time::Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn verify_eddsa(c: &mut Criterion) {
    verify(c, "EdDSA", "eddsa");
}

fn verify_hs256(c: &mut Criterion) {
    verify(c, "HS256", "hs256");
}

/// A waiting visitor's page view hits the store twice: `touch` (heartbeat) and `ahead` (their
/// position). With the embedded store both must stay cheap however long the queue is.
fn waiting_position(c: &mut Criterion) {
    use usher::store::embedded::EmbeddedStore;
    use usher::store::Store;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("waiting/touch_and_ahead");
    for queued in [100u64, 100_000] {
        let dir = tempfile::tempdir().expect("temp dir");
        let now = now_ms();
        let store = EmbeddedStore::open(dir.path(), now).expect("store opens");
        let key = |i: u64| QueueKey {
            rank: now + i,
            visitor: VisitorId(u128::from(i) + 1),
        };
        runtime.block_on(async {
            for i in 0..queued {
                store.touch("z", key(i), now).await.expect("join");
            }
        });
        // The visitor in the middle of the line, nobody admitted yet.
        let me = key(queued / 2);
        let cursor = QueueKey::default();
        group.bench_function(format!("{queued}_queued"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    store.touch("z", me, now).await.expect("touch");
                    black_box(store.ahead("z", cursor, me).await.expect("ahead"))
                })
            })
        });
    }
    group.finish();
}

fn newcomer(c: &mut Criterion) {
    use std::net::IpAddr;
    use usher::room::{RequestFacts, Room};
    use usher::store::embedded::EmbeddedStore;
    use usher::store::Store;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    std::env::set_var(
        "USHER_BENCH_KEY_NEWCOMER",
        usher::token::keys::generate_ed25519().0,
    );
    let room = |defence: &str| {
        let text = format!(
            "[upstreams.shop]\naddrs = [\"127.0.0.1:9000\"]\n\
             [tokens]\nsigning_key = {{ kid = \"k1\", env = \"USHER_BENCH_KEY_NEWCOMER\" }}\n\
             [zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 10\nadmit_per_minute = 60\n\
             mode = \"queue_all\"\n[zones.checkout.defence]\n{defence}\n"
        );
        let config = usher::config::parse(&text, Path::new(".")).expect("valid");
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(EmbeddedStore::open(dir.path(), now_ms()).expect("store"));
        runtime.block_on(async {
            for i in 0..1_000u64 {
                let key = QueueKey {
                    rank: now_ms() - 60_000 + i,
                    visitor: VisitorId(u128::from(i) + 1),
                };
                store.touch("checkout", key, now_ms()).await.expect("join");
            }
        });
        let keyring = Keyring::load(&config.tokens).expect("key");
        let tokens = Tokens::new(keyring, "usher", 100_000);
        let metrics = usher::metrics::Metrics::new();
        let room = Room::new(&config, tokens, store, usher::clock::system(), metrics);
        (room, dir)
    };
    let facts = |client: IpAddr| RequestFacts {
        host: Some(HOST),
        path: "/checkout",
        shows_pages: true,
        accept_language: Some("en-US,en;q=0.8"),
        client: Some(client),
        ..RequestFacts::default()
    };
    let mut group = c.benchmark_group("newcomer");
    for (name, defence) in [
        ("join", ""),
        ("join_logged", ""),
        ("challenge", "proof_of_work = \"on\""),
        ("limited", ""),
    ] {
        let (mut room, dir) = room(defence);
        if name == "join_logged" {
            // Every join a `joined` line: built, queued, written by the log's own thread.
            let log = usher::config::EventsLogConfig::to_file(dir.path().join("events.jsonl"));
            let metrics = usher::metrics::Metrics::new();
            room =
                room.with_event_log(usher::event_log::EventLog::start(&log, metrics).expect("log"));
        }
        let mut n = 0u32;
        group.bench_function(name, |b| {
            b.iter(|| {
                // Every newcomer its own address, but `limited` sends all from one.
                n = n.wrapping_add(1);
                let client = if name == "limited" { 1 } else { n };
                let request = facts(IpAddr::from(client.to_be_bytes()));
                black_box(runtime.block_on(room.handle(&request)));
            })
        });
    }
    group.finish();
}

/// What every forward adds to the metrics when the origin answers (`proxy`'s
/// `upstream_response_filter`): the response counter by class and the latency histogram, each
/// found by its label values.
fn forward_metrics(c: &mut Criterion) {
    let metrics = usher::metrics::Metrics::new();
    let mut group = c.benchmark_group("forward_metrics");
    group.bench_function("response_class_and_latency", |b| {
        b.iter(|| {
            metrics
                .upstream_responses
                .with_label_values(&[black_box("checkout"), "shop", "2xx"])
                .inc();
            metrics
                .upstream_response
                .with_label_values(&[black_box("checkout"), "shop"])
                .observe(black_box(0.012));
        })
    });
    group.finish();
}

/// Choosing an origin address, per balancing policy.
fn upstream_pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("upstream_pick");
    for policy in ["round_robin", "least_connections", "visitor"] {
        let text = format!(
            "[upstreams.shop]\naddrs = [\"127.0.0.1:9001\", \"127.0.0.2:9001\", \"127.0.0.3:9001\"]\n\
             balance = \"{policy}\"\n[tokens]\nsigning_key = {{ kid = \"k\", env = \"X\" }}\n\
             [zones.a]\npaths = [\"/a\"]\ncapacity = 1\nadmit_per_minute = 60\n"
        );
        let config = usher::config::parse(&text, Path::new(".")).expect("config");
        let upstreams = usher::proxy::Upstreams::new(&config, usher::metrics::Metrics::new())
            .expect("upstreams");
        let shop = upstreams.get("shop").expect("shop");
        let key = VisitorId(0x1234_5678_9abc_def0).0.to_be_bytes();
        group.bench_function(policy, |b| {
            b.iter(|| black_box(shop.pick(black_box(&key), None).map(|p| p.addr)))
        });
    }
    group.finish();
}

fn short() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .without_plots()
}

criterion_group! {
    name = benches;
    config = short();
    targets = gate_path, verify_eddsa, verify_hs256, waiting_position, newcomer, forward_metrics, upstream_pick
}
criterion_main!(benches);
