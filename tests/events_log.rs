//! `[events_log]` through the real binary: joins and admissions written as JSON lines to the
//! file and POSTed to a webhook in signed batches.

mod common;

use common::{start_origin, wait_until, Usher};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use usher::demo::origin::{OriginRequest, OriginResponse};

const WAIT: Duration = Duration::from_secs(15);
const SECRET: &str = "webhook-secret-0123456789";

#[test]
fn joins_and_admissions_are_logged_to_the_file_and_a_signed_webhook() {
    let batches: Arc<Mutex<Vec<OriginRequest>>> = Arc::default();
    let seen = batches.clone();
    let collector = start_origin(move |req| {
        let seen = seen.clone();
        async move {
            seen.lock().expect("lock").push(req);
            OriginResponse::html("ok".into())
        }
    });
    let shop = start_origin(|_| async { OriginResponse::html("shop".into()) });
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("webhook.secret"), SECRET).expect("secret");
    let usher = Usher::start(
        dir.path(),
        shop,
        &format!(
            "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 1\nadmit_per_minute = 60\n\
             [events_log]\npath = \"events/usher.jsonl\"\n\
             webhook = {{ url = \"http://{collector}/events\", secret = {{ file = \"webhook.secret\" }}, \
             batch = 10, flush_every = \"200ms\" }}\n"
        ),
    );
    // One visitor walks in; the next two queue.
    for _ in 0..3 {
        usher.client().get("/checkout", &[]);
    }
    let file = dir.path().join("events/usher.jsonl");
    let lines = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect()
    };
    wait_until("three events in the file", WAIT, || lines().len() >= 3);
    let lines = lines();
    assert!(lines
        .iter()
        .all(|l| l["v"] == 1 && l["at_ms"].as_u64().is_some()));
    let admitted: Vec<_> = lines.iter().filter(|l| l["type"] == "admitted").collect();
    assert_eq!(admitted.len(), 1, "{lines:?}");
    assert_eq!(admitted[0]["via"], "direct");
    assert_eq!(admitted[0]["zone"], "checkout");
    let joined: Vec<_> = lines.iter().filter(|l| l["type"] == "joined").collect();
    assert_eq!(joined.len(), 2, "{lines:?}");
    assert!(joined.iter().all(|j| j["eta_s"].as_u64().is_some()));

    // The same lines reach the webhook, each batch signed with the shared secret.
    wait_until("the webhook's batches", WAIT, || {
        let got = batches.lock().expect("lock");
        got.iter()
            .map(|b| {
                b.body
                    .split(|c| *c == b'\n')
                    .filter(|l| !l.is_empty())
                    .count()
            })
            .sum::<usize>()
            >= 3
    });
    for batch in batches.lock().expect("lock").iter() {
        assert_eq!(batch.method, "POST");
        assert_eq!(batch.path, "/events");
        assert_eq!(batch.header("content-type"), Some("application/x-ndjson"));
        let expected = usher::event_log::signature(SECRET.as_bytes(), &batch.body);
        assert_eq!(batch.header("usher-signature"), Some(expected.as_str()));
    }
    assert!(usher.metric("usher_events_sent_total") >= 3.0);
    assert_eq!(
        usher.metric("usher_events_dropped_total{reason=\"queue_full\"}"),
        0.0
    );
}

#[test]
fn what_was_logged_before_a_shutdown_is_in_the_file_after_it() {
    let shop = start_origin(|_| async { OriginResponse::html("shop".into()) });
    let dir = tempfile::tempdir().expect("tempdir");
    let mut usher = Usher::start(
        dir.path(),
        shop,
        "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 1\nadmit_per_minute = 60\n\
         mode = \"queue_all\"\n[events_log]\npath = \"events.jsonl\"\n",
    );
    // Within one client's join burst.
    for _ in 0..5 {
        let page = usher.client().get("/checkout", &[]);
        assert_eq!(page.status, 200);
    }
    usher.signal("TERM");
    let exited = usher.wait_exit(WAIT).expect("usher exits");
    assert!(exited.success(), "{exited}");
    let text = std::fs::read_to_string(dir.path().join("events.jsonl")).expect("the log");
    let joined = text
        .lines()
        .filter(|l| l.contains("\"type\":\"joined\""))
        .count();
    assert_eq!(joined, 5, "{text}");
}
