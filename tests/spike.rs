//! An on-sale spike through real HTTP: 2,000 concurrent visitors against the real binary in front
//! of an in-process origin. Each joins, waits (polling `/_usher/status` at the interval usher
//! asks for), is admitted, and reaches the origin, which holds the session for a while and then
//! releases it (`Usher-Command: release`). Asserted: everyone gets in exactly once, zero FIFO
//! inversions, the origin never serves more sessions at once than the capacity, and admissions
//! in any window stay within the rate plus the burst.

mod common;

use common::{claims_of, start_origin, AsyncClient, Usher};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use usher::demo::origin::OriginResponse;

const VISITORS: usize = 2_000;
const CAPACITY: usize = 40;
const ADMIT_PER_MINUTE: u64 = 6_000; // 100 per second
const BURST: u64 = 50;

#[derive(Default)]
struct Origin {
    active: AtomicUsize,
    max_active: AtomicUsize,
    visits: Mutex<HashMap<String, usize>>,
}

#[derive(Debug)]
struct Visit {
    rank: u64,
    admitted_at: u64,
}

async fn visitor(addr: std::net::SocketAddr, deadline: Instant) -> Result<Visit, String> {
    let mut client = AsyncClient::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let first = client
        .get("/checkout", None)
        .await
        .map_err(|e| e.to_string())?;
    let mut cookie = first.cookie().ok_or("no cookie on the first answer")?;
    let rank = claims_of(&cookie)["rank"].as_u64().ok_or("no rank")?;
    if first.header("x-origin").is_none() {
        // Queued: poll the status at the interval usher asks for until it hands out the access token.
        let mut refresh = first_refresh(&mut client, &cookie).await?;
        loop {
            if Instant::now() > deadline {
                return Err("never admitted".into());
            }
            tokio::time::sleep(Duration::from_millis(refresh)).await;
            let status = client
                .get("/_usher/status", Some(&cookie))
                .await
                .map_err(|e| e.to_string())?;
            let json = status.json();
            refresh = json["refresh_ms"].as_u64().unwrap_or(500);
            if json["state"] == "admitted" {
                cookie = status.cookie().ok_or("admitted without a token")?;
                break;
            }
        }
        let entered = client
            .get("/checkout", Some(&cookie))
            .await
            .map_err(|e| e.to_string())?;
        if entered.header("x-origin").is_none() {
            return Err(format!("admitted but not forwarded: {}", entered.status));
        }
    }
    let access = claims_of(&cookie);
    // Shopping for 100-500 ms, then finishing checkout, which releases the slot.
    let hold = 100
        + (access["vid"]
            .as_str()
            .and_then(|v| u64::from_str_radix(&v[..4], 16).ok())
            .unwrap_or(0)
            % 400);
    tokio::time::sleep(Duration::from_millis(hold)).await;
    let done = client
        .get("/checkout/done", Some(&cookie))
        .await
        .map_err(|e| e.to_string())?;
    if done
        .header("set-cookie")
        .is_none_or(|c| !c.contains("Max-Age=0"))
    {
        return Err("release did not clear the cookie".into());
    }
    Ok(Visit {
        rank,
        admitted_at: access["adm"].as_u64().ok_or("no admission time")?,
    })
}

async fn first_refresh(client: &mut AsyncClient, cookie: &str) -> Result<u64, String> {
    let status = client
        .get("/_usher/status", Some(cookie))
        .await
        .map_err(|e| e.to_string())?;
    Ok(status.json()["refresh_ms"].as_u64().unwrap_or(500))
}

#[test]
fn two_thousand_visitors_get_in_fairly_within_capacity_and_rate() {
    let origin = Arc::new(Origin::default());
    let state = origin.clone();
    let origin_addr = start_origin(move |req| {
        let state = state.clone();
        async move {
            let visitor = req.header("usher-visitor").unwrap_or("").to_string();
            if visitor.is_empty() || req.header("cookie").is_some_and(|c| c.contains("usher_")) {
                // Never happens when usher works: no session headers, or usher's cookie leaked.
                return OriginResponse::html("bad".into());
            }
            if req.path == "/checkout/done" {
                // Checkout finished: the session ends and usher frees the slot.
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
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(
        dir.path(),
        origin_addr,
        &format!(
            "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = {CAPACITY}\n\
             admit_per_minute = {ADMIT_PER_MINUTE}\nburst = {BURST}\nrefresh_interval = \"500ms\"\n\
             [store]\ndata_dir = \"data\"\ntick = \"100ms\"\n"
        ),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(150);
    let results: Vec<Result<Visit, String>> = runtime.block_on(async {
        let tasks: Vec<_> = (0..VISITORS)
            .map(|_| tokio::spawn(visitor(usher.addr, deadline)))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap_or_else(|e| Err(e.to_string())));
        }
        out
    });
    let elapsed = started.elapsed();

    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} visitors failed, e.g. {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        usher.log()
    );
    let mut visits: Vec<Visit> = results.into_iter().filter_map(Result::ok).collect();

    // Everyone reached the origin, exactly once.
    let seen = origin.visits.lock().expect("lock").clone();
    assert_eq!(seen.len(), VISITORS, "distinct visitors at the origin");
    assert!(
        seen.values().all(|n| *n == 1),
        "a visitor reached the origin twice"
    );
    let admitted = usher.metric("usher_admitted_total{via=\"queue\",zone=\"checkout\"}")
        + usher.metric("usher_admitted_total{via=\"direct\",zone=\"checkout\"}");
    assert_eq!(admitted as usize, VISITORS, "admissions counted by usher");

    // Capacity at the origin.
    let max_active = origin.max_active.load(Ordering::SeqCst);
    assert!(
        max_active <= CAPACITY,
        "{max_active} sessions at once > capacity {CAPACITY}"
    );

    // FIFO: nobody was admitted after someone who arrived later.
    visits.sort_by_key(|v| (v.rank, v.admitted_at));
    let mut latest_admission = 0;
    let mut inversions = 0;
    for v in &visits {
        if v.admitted_at < latest_admission {
            inversions += 1;
        }
        latest_admission = latest_admission.max(v.admitted_at);
    }
    assert_eq!(inversions, 0, "FIFO inversions");

    // Rate: admissions in any window of W ms <= burst + rate * W (+ one tick of accrual).
    let mut times: Vec<u64> = visits.iter().map(|v| v.admitted_at).collect();
    times.sort_unstable();
    for window_ms in [1_000u64, 5_000, 10_000, 60_000] {
        let allowed = BURST + ADMIT_PER_MINUTE * (window_ms + 100) / 60_000;
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
    eprintln!(
        "spike: {VISITORS} visitors in {:.1} s, max {max_active} at the origin (capacity {CAPACITY})",
        elapsed.as_secs_f64()
    );
}
