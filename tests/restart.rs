//! `kill -9` mid-sale and restart on the same data directory: the zone state and the ledger come
//! back (admitted visitors keep their sessions, the zone stays full), and waiting visitors keep
//! their places in the same order.

mod common;

use common::{start_origin, wait_until, Client, Usher};
use std::time::Duration;
use usher::demo::origin::OriginResponse;

fn origin() -> std::net::SocketAddr {
    start_origin(|req| async move {
        let response = OriginResponse::html("shop".into()).with_header("x-origin", "1");
        if req.path == "/checkout/done" {
            response.with_header("usher-command", "release")
        } else {
            response
        }
    })
}

fn status(usher: &Usher, cookie: &str) -> common::Response {
    usher.client().get("/_usher/status", &[("Cookie", cookie)])
}

#[test]
fn kill_9_keeps_the_ledger_the_cursor_and_every_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut usher = Usher::start(
        dir.path(),
        origin(),
        "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 3\nadmit_per_minute = 600\nburst = 3\n\
         mode = \"queue_all\"\nrefresh_interval = \"500ms\"\n[store]\ndata_dir = \"data\"\ntick = \"100ms\"\n",
    );
    // Eight visitors queue. Line order is (rank, visitor id): arrivals in the same millisecond
    // are ordered by their random ids, so sort by the key their tokens carry.
    let mut cookies: Vec<String> = (0..8)
        .map(|_| {
            let r = usher.client().get("/checkout", &[]);
            assert!(
                r.header("x-origin").is_none(),
                "queue_all: everyone waits first"
            );
            r.cookie().expect("a visitor token")
        })
        .collect();
    cookies.sort_by_key(|c| {
        let claims = common::claims_of(c);
        (
            claims["rank"].as_u64(),
            claims["vid"].as_str().map(str::to_string),
        )
    });
    // The exchanger admits the first three; they swap their tokens on their next status call.
    for cookie in cookies.iter_mut().take(3) {
        wait_until("an admission", Duration::from_secs(10), || {
            let r = status(&usher, cookie);
            if r.json()["state"] == "admitted" {
                *cookie = r.cookie().expect("access token");
                true
            } else {
                false
            }
        });
    }
    let before: Vec<u64> = cookies[3..]
        .iter()
        .map(|c| {
            status(&usher, c).json()["position"]
                .as_u64()
                .expect("position")
        })
        .collect();
    // Positions count those who joined in an earlier millisecond, so arrivals in the same
    // millisecond share one (and a position never rises when one of them is counted late).
    let ranks: Vec<u64> = cookies[3..]
        .iter()
        .map(|c| common::claims_of(c)["rank"].as_u64().expect("rank"))
        .collect();
    let expected: Vec<u64> = ranks
        .iter()
        .map(|mine| 1 + ranks.iter().filter(|r| *r < mine).count() as u64)
        .collect();
    assert_eq!(before, expected);

    usher.kill9();
    let usher = usher.restart();

    // Sessions survived: the admitted visitors still get through.
    for cookie in &cookies[..3] {
        let r = usher.client().get("/checkout", &[("Cookie", cookie)]);
        assert!(
            r.header("x-origin").is_some(),
            "an admitted visitor lost their session"
        );
    }
    // The ledger survived: after several ticks the zone is still full and nobody new got in.
    wait_until("three exchanger ticks", Duration::from_secs(10), || {
        usher.metric("usher_exchanger_tick_seconds_count") >= 3.0
    });
    assert_eq!(
        usher.metric("usher_sessions_active{zone=\"checkout\"}"),
        3.0
    );
    let after: Vec<u64> = cookies[3..]
        .iter()
        .map(|c| {
            status(&usher, c).json()["position"]
                .as_u64()
                .expect("still waiting")
        })
        .collect();
    assert_eq!(after, before, "waiting visitors kept their places");

    // A freed slot goes to the first in line.
    let done = usher
        .client()
        .get("/checkout/done", &[("Cookie", &cookies[0])]);
    assert!(done
        .header("set-cookie")
        .is_some_and(|c| c.contains("Max-Age=0")));
    wait_until("the next visitor's turn", Duration::from_secs(10), || {
        status(&usher, &cookies[3]).json()["state"] == "admitted"
    });
    assert_eq!(status(&usher, &cookies[4]).json()["position"], 1);
}

#[test]
fn a_graceful_restart_also_keeps_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut usher = Usher::start(
        dir.path(),
        origin(),
        "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 1\nadmit_per_minute = 60\n[store]\ndata_dir = \"data\"\n",
    );
    let first = usher.client().get("/checkout", &[]);
    assert!(
        first.header("x-origin").is_some(),
        "a quiet zone admits at once"
    );
    let cookie = first.cookie().expect("access token");
    let second = usher
        .client()
        .get("/checkout", &[])
        .cookie()
        .expect("visitor token");
    // SIGTERM: Pingora's graceful shutdown; the background service writes a final snapshot.
    let pid = usher.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    wait_until("usher to exit", Duration::from_secs(30), || {
        matches!(usher.child.try_wait(), Ok(Some(_)))
    });
    let usher = usher.restart();
    assert!(Client::connect(usher.addr)
        .get("/checkout", &[("Cookie", &cookie)])
        .header("x-origin")
        .is_some());
    assert_eq!(status(&usher, &second).json()["position"], 1);
}
