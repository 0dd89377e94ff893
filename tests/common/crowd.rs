//! A crowd of visitors against one or more usher nodes, and the invariants a waiting room owes
//! them. Each visitor joins, polls `/_usher/status` at the interval usher asks for, is admitted,
//! reaches the origin, shops for a while and finishes checkout, where the origin releases the slot
//! (`Usher-Command: release`). With several nodes every request goes to one picked at random, and
//! a request a node fails to answer (it was killed) is sent to another, as a load balancer would.

use super::{claims_of, start_origin, AsyncClient};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use usher::demo::origin::OriginResponse;

/// The shop behind usher, counting sessions.
#[derive(Default)]
pub struct Origin {
    active: AtomicUsize,
    max_active: AtomicUsize,
    visits: Mutex<HashMap<String, usize>>,
}

impl Origin {
    /// Starts the origin; returns its address and its counters.
    pub fn start() -> (SocketAddr, Arc<Origin>) {
        let origin = Arc::new(Origin::default());
        let state = origin.clone();
        let addr = start_origin(move |req| {
            let state = state.clone();
            async move {
                let visitor = req.header("usher-visitor").unwrap_or("").to_string();
                if visitor.is_empty() || req.header("cookie").is_some_and(|c| c.contains("usher_"))
                {
                    // Never happens when usher works: no session headers, or usher's cookie leaked.
                    return OriginResponse::html("bad".into());
                }
                if req.path == "/checkout/done" {
                    state.active.fetch_sub(1, Ordering::SeqCst);
                    return OriginResponse::html("thanks".into())
                        .with_header("usher-command", "release");
                }
                *state
                    .visits
                    .lock()
                    .expect("lock")
                    .entry(visitor)
                    .or_default() += 1;
                let now = state.active.fetch_add(1, Ordering::SeqCst) + 1;
                state.max_active.fetch_max(now, Ordering::SeqCst);
                OriginResponse::html("checkout".into()).with_header("x-origin", "1")
            }
        });
        (addr, origin)
    }
}

/// What a visitor's tokens said: their arrival and their admission.
#[derive(Debug)]
pub struct Visit {
    rank: u64,
    admitted_at: u64,
    /// Let in on the first request (the zone was quiet), without waiting.
    pub direct: bool,
}

impl Visit {
    /// From arrival to admission, as the tokens say, ms.
    pub fn waited_ms(&self) -> u64 {
        self.admitted_at.saturating_sub(self.rank)
    }
}

/// One keep-alive connection per node, each request to a node picked at random; each browser
/// from a loopback address of its own, as each visitor of a real crowd is a client of its own.
struct Browser {
    nodes: Vec<SocketAddr>,
    source: std::net::IpAddr,
    clients: Vec<Option<AsyncClient>>,
    /// Requests that had to be sent again to another node.
    failovers: usize,
}

impl Browser {
    async fn get(&mut self, path: &str, cookie: Option<&str>) -> Result<super::Response, String> {
        let first = rand::random::<u32>() as usize;
        let mut last_error = String::new();
        // Every node once, then every node again (a restarted node may be back by then).
        for attempt in 0..self.nodes.len() * 2 {
            let i = (first + attempt) % self.nodes.len();
            if attempt > 0 {
                self.failovers += 1;
            }
            match self.get_from(i, path, cookie).await {
                Ok(response) => return Ok(response),
                Err(e) => {
                    self.clients[i] = None;
                    last_error = format!("{}: {e}", self.nodes[i]);
                }
            }
        }
        Err(last_error)
    }

    async fn get_from(
        &mut self,
        i: usize,
        path: &str,
        cookie: Option<&str>,
    ) -> std::io::Result<super::Response> {
        if self.clients[i].is_none() {
            self.clients[i] = Some(AsyncClient::connect_from(self.nodes[i], self.source).await?);
        }
        let client = self.clients[i].as_mut().expect("connected");
        client.get(path, cookie).await
    }
}

async fn visitor(nodes: Vec<SocketAddr>, n: u32, deadline: Instant) -> Result<Visit, String> {
    let clients = nodes.iter().map(|_| None).collect();
    let mut browser = Browser {
        nodes,
        source: AsyncClient::address(n),
        clients,
        failovers: 0,
    };
    let first = browser.get("/checkout", None).await?;
    let mut cookie = first.cookie().ok_or("no cookie on the first answer")?;
    let rank = claims_of(&cookie)["rank"].as_u64().ok_or("no rank")?;
    let direct = first.header("x-origin").is_some();
    if !direct {
        let mut refresh = 500;
        loop {
            if Instant::now() > deadline {
                return Err("never admitted".into());
            }
            let status = browser.get("/_usher/status", Some(&cookie)).await?;
            let json = status.json();
            if json["state"] == "admitted" {
                cookie = status.cookie().ok_or("admitted without a token")?;
                break;
            }
            refresh = json["refresh_ms"].as_u64().unwrap_or(refresh);
            tokio::time::sleep(Duration::from_millis(refresh)).await;
        }
        let entered = browser.get("/checkout", Some(&cookie)).await?;
        if entered.header("x-origin").is_none() {
            return Err(format!("admitted but not forwarded: {}", entered.status));
        }
    }
    let access = claims_of(&cookie);
    // Shopping for 100-500 ms, then finishing checkout, which releases the slot.
    let spread = access["vid"]
        .as_str()
        .and_then(|v| u64::from_str_radix(&v[..4], 16).ok())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(100 + spread % 400)).await;
    let failovers = browser.failovers;
    let done = browser.get("/checkout/done", Some(&cookie)).await?;
    // A release answered by a node that died mid-request may have to be sent again, and the
    // second node may already refuse the released token: only a clean release must clear it.
    let clean = browser.failovers == failovers;
    if clean
        && done
            .header("set-cookie")
            .is_none_or(|c| !c.contains("Max-Age=0"))
    {
        return Err("release did not clear the cookie".into());
    }
    Ok(Visit {
        rank,
        admitted_at: access["adm"].as_u64().ok_or("no admission time")?,
        direct,
    })
}

/// Sends `visitors` concurrent visitors at `nodes`; every one must get in before `patience`.
pub fn run(nodes: &[SocketAddr], visitors: usize, patience: Duration) -> (Vec<Visit>, Duration) {
    run_from(nodes, 0, visitors, patience)
}

/// [`run`] with the visitors' client addresses starting at the `first`th
/// ([`super::AsyncClient::address`]), so two crowds are different clients.
pub fn run_from(
    nodes: &[SocketAddr],
    first: u32,
    visitors: usize,
    patience: Duration,
) -> (Vec<Visit>, Duration) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let deadline = started + patience;
    let results: Vec<Result<Visit, String>> = runtime.block_on(async {
        let tasks: Vec<_> = (0..visitors)
            .map(|n| tokio::spawn(visitor(nodes.to_vec(), first + n as u32, deadline)))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap_or_else(|e| Err(e.to_string())));
        }
        out
    });
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} visitors failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    (
        results.into_iter().filter_map(Result::ok).collect(),
        started.elapsed(),
    )
}

/// The limits the crowd was admitted under.
pub struct Limits {
    pub capacity: usize,
    pub admit_per_minute: u64,
    pub burst: u64,
    /// Extra admissions allowed in any window, for clock skew and tick granularity across nodes.
    pub slack: u64,
    /// Arrivals this close (ms) may be admitted in either order: 0 on one node (only
    /// equal-millisecond ties), the store's round trip across nodes.
    pub fifo_tolerance_ms: u64,
    /// Requests that may have reached the origin twice because the node that forwarded them
    /// died before answering and the visitor asked another: 0 unless a node is killed.
    pub resent: usize,
}

/// Asserts: everyone reached the origin exactly once; zero FIFO inversions (equal-millisecond
/// arrivals may go in either order); never more sessions at the origin than the capacity; and in
/// every window of W ms at most burst + rate x W admissions (+ slack). Returns the most sessions
/// seen at once.
pub fn check(origin: &Origin, mut visits: Vec<Visit>, visitors: usize, limits: &Limits) -> usize {
    let seen = origin.visits.lock().expect("lock").clone();
    assert_eq!(seen.len(), visitors, "distinct visitors at the origin");
    let twice = seen.values().filter(|n| **n > 1).count();
    assert!(
        twice <= limits.resent,
        "{twice} visitors reached the origin twice"
    );

    let max_active = origin.max_active.load(Ordering::SeqCst);
    assert!(
        max_active <= limits.capacity + limits.resent,
        "{max_active} sessions at once > capacity {}",
        limits.capacity
    );

    // An inversion: someone admitted before a visitor who arrived more than the tolerance earlier.
    visits.sort_by_key(|v| v.rank);
    let mut earlier = 0;
    let mut latest_earlier_admission = 0;
    let mut inversions = Vec::new();
    for v in &visits {
        while visits[earlier].rank + limits.fifo_tolerance_ms < v.rank {
            latest_earlier_admission = latest_earlier_admission.max(visits[earlier].admitted_at);
            earlier += 1;
        }
        if v.admitted_at < latest_earlier_admission {
            inversions.push((v.rank, v.admitted_at, latest_earlier_admission));
        }
    }
    assert!(
        inversions.is_empty(),
        "{} FIFO inversions (rank, admitted at, an earlier arrival admitted at), e.g. {:?}",
        inversions.len(),
        &inversions[..inversions.len().min(5)]
    );

    let mut times: Vec<u64> = visits.iter().map(|v| v.admitted_at).collect();
    times.sort_unstable();
    for window_ms in [1_000u64, 5_000, 10_000, 60_000] {
        let allowed =
            limits.burst + limits.slack + limits.admit_per_minute * (window_ms + 100) / 60_000;
        let worst = (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|t| **t < times[i] + window_ms)
                    .count() as u64
            })
            .max()
            .unwrap_or(0);
        assert!(
            worst <= allowed,
            "{worst} admissions within {window_ms} ms > {allowed}"
        );
    }
    max_active
}
