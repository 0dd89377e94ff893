//! `GET /_usher/events` through the real binary: a waiting visitor's stream shows their place,
//! is woken by the exchanger when a slot frees, says "admitted", and ends; the page's next
//! request goes in. Also: a second tab (same cookie) shares the place, and a page closed
//! mid-stream is the normal end of a stream, not an error in the log.

mod common;

use common::sse::Sse;
use common::{start_origin, Usher};
use std::time::{Duration, Instant};
use usher::demo::origin::OriginResponse;

fn origin() -> std::net::SocketAddr {
    start_origin(|req| async move {
        let page = OriginResponse::html("<h1>checkout</h1>".into());
        if req.path.starts_with("/checkout/done") {
            page.with_header("usher-command", "release")
        } else {
            page
        }
    })
}

const ZONE: &str = "[store]\ntick = \"100ms\"\n\
    [zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 1\nadmit_per_minute = 600\n\
    refresh_interval = \"2s\"\n";

#[test]
fn a_waiting_visitor_is_told_their_turn_as_soon_as_a_slot_frees() {
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(dir.path(), origin(), ZONE);
    let first = usher.client().get("/checkout", &[]);
    let inside = first.cookie().expect("quiet zone: straight in");
    let page = usher.client().get("/checkout?seat=7", &[]);
    assert_eq!(page.status, 200);
    let place = page.cookie().expect("a place in line");

    let (mut sse, head) = Sse::open(&usher, &place, None);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(sse
        .read_until("retry: 2000\n\n", Duration::from_secs(5))
        .contains("retry"));
    let waiting = sse.status(Duration::from_secs(5));
    assert_eq!(waiting["state"], "waiting", "{waiting}");
    assert_eq!(waiting["position"], 1);

    // A second tab with the same cookie shares the place: same position, no second entry.
    let tab = usher.client().get("/checkout", &[("Cookie", &place)]);
    assert!(tab.cookie().is_none(), "no new place for a second tab");
    let (mut second, _) = Sse::open(&usher, &place, None);
    assert_eq!(second.status(Duration::from_secs(5))["position"], 1);

    // The first visitor finishes; the origin's release frees the slot.
    let released = Instant::now();
    usher.client().get("/checkout/done", &[("Cookie", &inside)]);
    let turn = sse.status(Duration::from_secs(10));
    let took = released.elapsed();
    assert_eq!(turn["state"], "admitted", "{turn}");
    assert!(
        sse.ends(Duration::from_secs(5)),
        "the stream ends with the turn"
    );
    println!("turn pushed {took:?} after the release (tick 100 ms)");
    assert!(
        took < Duration::from_secs(3),
        "pushed, not polled: {took:?}"
    );
    assert_eq!(second.status(Duration::from_secs(10))["state"], "admitted");

    // The page's navigation goes in with the same cookie.
    let entered = usher
        .client()
        .get("/checkout?seat=7", &[("Cookie", &place)]);
    assert_eq!(entered.text(), "<h1>checkout</h1>");
}

#[test]
fn events_for_a_stranger_or_unknown_zone_answer_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(dir.path(), origin(), ZONE);
    let (mut sse, head) = Sse::open(&usher, "theme=dark", None);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(sse.status(Duration::from_secs(5))["state"], "not_queued");
    assert!(sse.ends(Duration::from_secs(5)));
    let unknown = usher.client().get("/_usher/events?zone=nope", &[]);
    assert_eq!(unknown.status, 404);
}

#[test]
fn a_visitor_closing_the_page_is_not_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(dir.path(), origin(), ZONE);
    let inside = usher
        .client()
        .get("/checkout", &[])
        .cookie()
        .expect("quiet zone: straight in");
    let place = usher
        .client()
        .get("/checkout", &[])
        .cookie()
        .expect("a place in line");
    // Two tabs on one place: the first is closed, the second shows when the wake came.
    let (mut closed, _) = Sse::open(&usher, &place, None);
    assert_eq!(closed.status(Duration::from_secs(5))["state"], "waiting");
    drop(closed);
    let (mut open, _) = Sse::open(&usher, &place, None);
    assert_eq!(open.status(Duration::from_secs(5))["state"], "waiting");

    // Their turn wakes both streams; the closed one's writes fail.
    usher.client().get("/checkout/done", &[("Cookie", &inside)]);
    assert_eq!(open.status(Duration::from_secs(10))["state"], "admitted");
    assert!(open.ends(Duration::from_secs(5)));
    // Nothing to wait for when all is well: give a wrongly logged error the time to appear.
    std::thread::sleep(Duration::from_millis(500));
    let log = usher.log();
    assert!(
        !log.contains("ERROR"),
        "a closed page is the normal end of a stream, not an error:\n{log}"
    );
}

#[test]
fn an_http10_client_gets_the_stream_unchunked_until_the_connection_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(dir.path(), origin(), ZONE);
    // A holder of a session: one event, `admitted`, and the stream is over.
    let inside = usher.client().get("/checkout", &[]).cookie().expect("in");
    let request =
        format!("GET /_usher/events HTTP/1.0\r\nHost: shop.test\r\nCookie: {inside}\r\n\r\n");
    let r = common::origins::exchange(usher.addr, request.as_bytes(), Duration::from_secs(10))
        .expect("the stream ends and the connection closes");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), None, "no chunks in HTTP/1.0");
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let body = r.text();
    assert!(body.starts_with("retry: 2000\n\n"), "{body:?}");
    assert!(body.contains("\"state\":\"admitted\""), "{body:?}");
    assert!(!body.contains("\r\n"), "no chunk framing: {body:?}");
}
