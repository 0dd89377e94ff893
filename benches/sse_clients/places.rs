//! Places in line and the slots that hold the line still: newcomers' joins over a bounded set of
//! keep-alive connections, decoy visitors who take every slot before the measured visitors join,
//! and the releases that free those slots one by one to make the exchanger admit in the window.

use crate::http::Conn;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A protected path of the bench zone (`mode = "queue_all"`): every newcomer gets a place.
const PROTECTED: &str = "/checkout";
/// The status of a place, whose first poll writes the place to the line.
const STATUS: &str = "/_usher/status?zone=checkout";
/// The demo shop's page that answers `Usher-Command: release`.
const DONE: &str = "/checkout/done";

/// `n` newcomers join, over `concurrency` keep-alive connections (closed when done, so they
/// hold no file descriptors during the streams). Returns their cookies and the failures.
pub async fn join(addr: SocketAddr, n: usize, concurrency: usize) -> (Vec<String>, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let cookies = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let failed = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency.min(n).max(1))
        .map(|_| {
            let (next, cookies, failed) = (next.clone(), cookies.clone(), failed.clone());
            tokio::spawn(async move {
                let mut conn = None;
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    match join_one(addr, &mut conn).await {
                        Ok(cookie) => cookies.lock().expect("cookies").push(cookie),
                        Err(e) => {
                            if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("[sse_clients] a join failed: {e:#}");
                            }
                            conn = None;
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("join worker");
    }
    let cookies = std::mem::take(&mut *cookies.lock().expect("cookies"));
    (cookies, failed.load(Ordering::Relaxed))
}

async fn join_one(addr: SocketAddr, conn: &mut Option<Conn>) -> anyhow::Result<String> {
    if conn.is_none() {
        *conn = Some(Conn::open(addr).await?);
    }
    let conn = conn.as_mut().context("connection")?;
    let reply = conn.get(PROTECTED, None).await?;
    anyhow::ensure!(reply.status == 200, "join answered {}", reply.status);
    reply.cookie.context("join without a cookie")
}

/// Decoys: `n` visitors join first, are admitted by the next tick (the zone's capacity and
/// burst are `n`) and claim their slots, so the zone is full and its streams stay quiet until
/// [`release`] frees slots. Returns their access cookies.
pub async fn fill_slots(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<String>> {
    let (visitors, failed) = join(addr, n, 32).await;
    anyhow::ensure!(failed == 0, "{failed} decoy joins failed");
    let mut conn = Conn::open(addr).await?;
    // Each comes back once, as its page would: usher writes a place to the line only then.
    for visitor in &visitors {
        conn.get(STATUS, Some(visitor)).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut access = Vec::with_capacity(n);
    for visitor in visitors {
        loop {
            // Their turn came when the claim is forwarded to the shop and sets the access cookie.
            let reply = conn.get(PROTECTED, Some(&visitor)).await?;
            if let (200, Some(cookie)) = (reply.status, reply.cookie) {
                access.push(cookie);
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "decoys not admitted within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(access)
}

/// Frees one decoy slot every `1 / per_second` s until the decoys run out or the task is
/// aborted; the next tick admits as many queued visitors as slots were freed.
pub async fn release(
    addr: SocketAddr,
    decoys: Vec<String>,
    per_second: u32,
    released: Arc<AtomicUsize>,
) {
    let mut every =
        tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(per_second.max(1))));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn = None;
    for decoy in decoys {
        every.tick().await;
        if conn.is_none() {
            conn = Conn::open(addr).await.ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        match c.get(DONE, Some(&decoy)).await {
            Ok(reply) if reply.status == 200 => {
                released.fetch_add(1, Ordering::Relaxed);
            }
            Ok(reply) => eprintln!("[sse_clients] release answered {}", reply.status),
            Err(e) => {
                eprintln!("[sse_clients] release failed: {e:#}");
                conn = None;
            }
        }
    }
    eprintln!("[sse_clients] out of decoys: no more slots to free");
}
