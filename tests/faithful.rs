//! A faithful proxy, through the real binary: what happens when the origin never answers (502
//! or 504, usher's page in the visitor's language, the visitor keeps their session and the slot
//! is held only for the claim window), CORS preflights, caching of responses that carry usher's
//! cookie, the forwarding headers, odd bytes in cookies, HTTP/1.0 clients, slow responses,
//! pipelining, and requests usher cannot read.
//!
//! The origins here are scripted at the byte level (a thread per connection), because what is
//! tested is exactly what goes over the wire: a dropped connection, a silent one, a chunked body,
//! a response held back halfway.

mod common;

use common::origins::{exchange, get, read_head};
use common::Response;
use common::{wait_until, Usher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

/// What a scripted origin does with one request (its head as received) on its connection.
type Script = Arc<dyn Fn(&[u8], &mut TcpStream) + Send + Sync>;

/// An origin that runs `script` for every request and records every request head.
struct ScriptedOrigin {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl ScriptedOrigin {
    fn start(script: impl Fn(&[u8], &mut TcpStream) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        let addr = listener.local_addr().expect("addr");
        let heads: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let script: Script = Arc::new(script);
        let seen = heads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (script, seen) = (script.clone(), seen.clone());
                std::thread::spawn(move || serve(stream, &script, &seen));
            }
        });
        ScriptedOrigin { addr, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads
            .lock()
            .expect("lock")
            .iter()
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .collect()
    }

    fn last_head(&self) -> Vec<u8> {
        self.heads
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("the origin saw a request")
    }
}

/// Reads request heads off `stream` (bodies are not used here) and runs the script for each.
fn serve(stream: TcpStream, script: &Script, seen: &Mutex<Vec<Vec<u8>>>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let end = line == b"\r\n" || line == b"\n";
            head.extend_from_slice(&line);
            if end {
                break;
            }
        }
        seen.lock().expect("lock").push(head.clone());
        script(&head, reader.get_mut());
    }
}

/// The value of header `name` (lower case) in a raw request head.
fn head_header(head: &[u8], name: &str) -> Option<Vec<u8>> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        let (key, value) = line.split_at(colon);
        key.eq_ignore_ascii_case(name.as_bytes())
            .then(|| value[1..].trim_ascii().to_vec())
    })
}

/// Answers 200 with `body` and the extra header lines, keeping the connection.
fn ok(stream: &mut TcpStream, extra: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-origin: 1\r\n{extra}\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

fn send(usher: &Usher, request: &[u8]) -> Response {
    exchange(usher.addr, request, WAIT).unwrap_or_else(|e| panic!("no answer from usher: {e}"))
}

const ZONE: &str =
    "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 3\nadmit_per_minute = 600\n\
                    burst = 10\nclaim_window = \"2s\"\nsession_ttl = \"10m\"\n";

#[test]
fn a_forward_the_origin_never_answered_keeps_the_visitor_and_holds_the_slot_briefly() {
    let up = Arc::new(AtomicBool::new(false));
    let is_up = up.clone();
    let origin = ScriptedOrigin::start(move |_, stream| {
        if is_up.load(Ordering::Acquire) {
            ok(stream, "", "shop");
        } else {
            // Down: the connection drops without a word, as a crashed worker's would.
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(dir.path(), origin.addr, ZONE);

    let mut cookies = Vec::new();
    // Three clients: one client without cookies would get its one slot back each time.
    for client in 1..=3u8 {
        let source = std::net::IpAddr::from([127, 0, 0, 10 + client]);
        let request = get("/checkout", &[("Accept-Language", "de")]);
        let r = common::origins::exchange_from(source, usher.addr, &request, WAIT)
            .unwrap_or_else(|e| panic!("no answer from usher: {e}"));
        assert_eq!(r.status, 502, "{}", r.text());
        assert!(
            r.text().contains("Der Shop antwortet nicht"),
            "{}",
            r.text()
        );
        assert_eq!(r.header("retry-after"), Some("1"), "half the claim window");
        assert_eq!(r.header("server"), None, "no Server: Pingora");
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let cookie = r.cookie().expect("the visitor keeps an access cookie");
        assert_eq!(common::claims_of(&cookie)["typ"], "access");
        cookies.push(cookie);
    }
    // The zone is full now; outside it, a script gets JSON.
    let json = send(&usher, &get("/other", &[("Accept", "application/json")]));
    assert_eq!(json.status, 502);
    assert_eq!(json.json()["error"], "origin_unreachable");

    up.store(true, Ordering::Release);
    // The first visitor's retry reuses their slot and gets a whole session back.
    let retry = send(&usher, &get("/checkout", &[("Cookie", &cookies[0])]));
    assert_eq!(retry.header("x-origin"), Some("1"), "{}", retry.text());
    let renewed = retry.cookie().expect("a renewed session");
    let claims = common::claims_of(&renewed);
    assert_eq!(claims["vid"], common::claims_of(&cookies[0])["vid"]);
    let lifetime = claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat");
    assert!(lifetime >= 600, "a full session again: {lifetime} s");

    // The other two slots are still held (the zone is full)...
    let late = send(&usher, &get("/checkout", &[]));
    assert_eq!(late.header("x-origin"), None, "the zone is full for now");
    let place = late.cookie().expect("a place in line");
    // ...but only for the claim window: then the newcomer goes in, long before session_ttl.
    let started = Instant::now();
    wait_until("the held slots to free", WAIT, || {
        let status = send(&usher, &get("/_usher/status", &[("Cookie", &place)]));
        status.text().contains("\"state\":\"admitted\"")
    });
    assert!(started.elapsed() < WAIT);
    assert!(
        usher.metric("usher_upstream_errors_total{kind=\"unreachable\",upstream=\"shop\"}") >= 4.0
    );
}

#[test]
fn an_origin_that_does_not_answer_in_time_is_a_504_in_the_visitors_language() {
    let origin = ScriptedOrigin::start(|head, stream| {
        if head.starts_with(b"GET /slow") || head.starts_with(b"GET /checkout") {
            std::thread::sleep(Duration::from_secs(30));
        }
        ok(stream, "", "fine");
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start_with(dir.path(), origin.addr, "", "read_timeout = \"1s\"", ZONE);
    let started = Instant::now();
    let r = send(
        &usher,
        &get("/checkout", &[("Accept-Language", "fr-CH, fr;q=0.9")]),
    );
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        took < Duration::from_secs(10),
        "cut at read_timeout, not later: {took:?}"
    );
    assert!(
        r.text().contains("La boutique met trop de temps"),
        "{}",
        r.text()
    );
    assert!(r.header("retry-after").is_some());
    assert!(
        r.cookie().is_some(),
        "the admitted visitor keeps their session"
    );
    // Outside every zone too, and in JSON for scripts.
    let r = send(
        &usher,
        &get("/slow", &[("X-Requested-With", "XMLHttpRequest")]),
    );
    assert_eq!(r.status, 504);
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(body["error"], "origin_timeout");
    // An origin that answers in time is untouched.
    assert_eq!(send(&usher, &get("/fast", &[])).text(), "fine");
    assert_eq!(
        usher.metric("usher_upstream_errors_total{kind=\"timeout\",upstream=\"shop\"}"),
        2.0
    );
}

#[test]
fn cors_preflights_pass_without_taking_a_place() {
    let origin = ScriptedOrigin::start(|_, stream| {
        ok(
            stream,
            "access-control-allow-origin: https://app.test\r\n",
            "",
        )
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let paused = "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 1\nadmit_per_minute = 1\n\
                  mode = \"paused\"\n";
    let usher = Usher::start(dir.path(), origin.addr, paused);
    let preflight =
        b"OPTIONS /checkout/cart HTTP/1.1\r\nHost: shop.test\r\nOrigin: https://app.test\r\n\
                      Access-Control-Request-Method: POST\r\n\r\n";
    let r = send(&usher, preflight);
    assert_eq!(r.header("x-origin"), Some("1"), "forwarded to the origin");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.test")
    );
    assert_eq!(r.header("set-cookie"), None, "no place, no session");
    let page = send(&usher, &get("/checkout", &[("Accept", "application/json")]));
    let status: serde_json::Value = serde_json::from_slice(&page.body).expect("json");
    assert_eq!(status["position"], 1, "the preflight took no place");
    assert_eq!(
        usher.metric("usher_gate_requests_total{decision=\"preflight\",zone=\"checkout\"}"),
        1.0
    );
}

#[test]
fn responses_carrying_ushers_cookie_are_private_to_the_visitor() {
    let origin = ScriptedOrigin::start(|_, stream| {
        ok(stream, "cache-control: public, max-age=60\r\n", "seat map")
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(dir.path(), origin.addr, ZONE);
    let first = send(&usher, &get("/checkout", &[]));
    let cookie = first.cookie().expect("admitted: an access cookie");
    assert_eq!(first.header("cache-control"), Some("private, max-age=60"));
    let again = send(&usher, &get("/checkout", &[("Cookie", &cookie)]));
    assert_eq!(again.header("set-cookie"), None);
    assert_eq!(
        again.header("cache-control"),
        Some("public, max-age=60"),
        "without usher's cookie the origin's caching stands"
    );
    // usher's own pages are never stored.
    let status = send(&usher, &get("/_usher/status", &[]));
    assert_eq!(status.header("cache-control"), Some("no-store"));
}

#[test]
fn the_origin_learns_who_asked_and_nothing_a_client_made_up() {
    let origin = ScriptedOrigin::start(|_, stream| ok(stream, "", "ok"));
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(dir.path(), origin.addr, ZONE);
    let first = send(&usher, &get("/checkout", &[]));
    let cookie = first.cookie().expect("admitted");
    let visitor = head_header(&origin.last_head(), "usher-visitor").expect("visitor header");

    // Odd bytes in another cookie neither hide usher's cookie nor stop it being stripped.
    let mut request =
        b"GET /checkout/pay HTTP/1.1\r\nHost: shop.test\r\nCookie: name=J\xf6rg; ".to_vec();
    request.extend_from_slice(cookie.as_bytes());
    request.extend_from_slice(
        b"; x=\xff\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\
          Forwarded: for=6.6.6.6\r\nUsher_Visitor: ffffffffffffffffffffffffffffffff\r\n\
          usher-zone: vip\r\n\r\n",
    );
    let r = send(&usher, &request);
    assert_eq!(r.header("x-origin"), Some("1"), "{}", r.text());
    assert_eq!(
        r.header("set-cookie"),
        None,
        "the same session, not a new place"
    );
    let head = origin.last_head();
    assert_eq!(
        head_header(&head, "cookie").as_deref(),
        Some(&b"name=J\xf6rg; x=\xff"[..]),
        "usher's cookie stripped, the others byte for byte"
    );
    assert_eq!(head_header(&head, "usher-visitor"), Some(visitor));
    assert_eq!(
        head_header(&head, "usher-zone").as_deref(),
        Some(&b"checkout"[..])
    );
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(!text.contains("usher_visitor"), "{text}");
    assert_eq!(
        head_header(&head, "x-forwarded-for").as_deref(),
        Some(&b"127.0.0.1"[..])
    );
    assert_eq!(
        head_header(&head, "x-forwarded-proto").as_deref(),
        Some(&b"http"[..])
    );
    assert_eq!(
        head_header(&head, "x-forwarded-host").as_deref(),
        Some(&b"shop.test"[..])
    );
    assert_eq!(head_header(&head, "forwarded"), None);

    // Behind a trusted proxy, its chain is kept and extended.
    let dir = tempfile::tempdir().expect("tempdir");
    let behind = Usher::start_with(
        dir.path(),
        origin.addr,
        "trusted_proxies = [\"127.0.0.0/8\"]",
        "",
        ZONE,
    );
    send(
        &behind,
        &get(
            "/",
            &[
                ("X-Forwarded-For", "203.0.113.9"),
                ("X-Forwarded-Proto", "https"),
            ],
        ),
    );
    let head = origin.last_head();
    assert_eq!(
        head_header(&head, "x-forwarded-for").as_deref(),
        Some(&b"203.0.113.9, 127.0.0.1"[..])
    );
    assert_eq!(
        head_header(&head, "x-forwarded-proto").as_deref(),
        Some(&b"https"[..])
    );
}

#[test]
fn http10_clients_slow_responses_and_pipelines_are_served_faithfully() {
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = Mutex::new(held);
    let origin = ScriptedOrigin::start(move |head, stream| {
        if head.starts_with(b"GET /chunked") {
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            );
        } else if head.starts_with(b"GET /slow") {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nfirst");
            let _ = stream.flush();
            // The rest only once the client has seen the first half.
            let _ = held.lock().expect("lock").recv_timeout(WAIT);
            let _ = stream.write_all(b" half");
        } else {
            let path = String::from_utf8_lossy(head);
            let path = path.split(' ').nth(1).unwrap_or_default().to_string();
            ok(stream, "", &path);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(dir.path(), origin.addr, ZONE);

    // HTTP/1.0 never gets chunks: the body runs to the end of the connection.
    let r = send(&usher, b"GET /chunked HTTP/1.0\r\nHost: shop.test\r\n\r\n");
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.text(), "hello world");
    // A response with a length is passed on as it arrives, not held for a buffer to fill.
    let mut stream = TcpStream::connect(usher.addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(&get("/slow", &[])).expect("write");
    let mut reader = BufReader::new(stream);
    let head = read_head(&mut reader).expect("head");
    assert_eq!(head.header("content-length"), Some("10"));
    let mut first = [0u8; 5];
    reader
        .read_exact(&mut first)
        .expect("the first half arrives while the origin holds the rest");
    assert_eq!(&first, b"first");
    release.send(()).expect("origin waits");
    let mut rest = [0u8; 5];
    reader.read_exact(&mut rest).expect("the rest");
    assert_eq!(&rest, b" half");

    // Pipelined requests are answered in order.
    let mut stream = TcpStream::connect(usher.addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let two = [get("/one", &[]), get("/two", &[])].concat();
    stream.write_all(&two).expect("write");
    let mut reader = BufReader::new(stream);
    for expected in ["/one", "/two"] {
        let head = read_head(&mut reader).expect("a response");
        let length: usize = head
            .header("content-length")
            .and_then(|l| l.parse().ok())
            .expect("length");
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("body");
        assert_eq!(String::from_utf8_lossy(&body), expected);
    }
}

#[test]
fn requests_usher_cannot_read_get_a_400_and_never_reach_the_origin() {
    let origin = ScriptedOrigin::start(|_, stream| ok(stream, "", "origin"));
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(dir.path(), origin.addr, ZONE);
    for (request, reason) in [
        (
            &b"GET x:/checkout HTTP/1.1\r\nHost: shop.test\r\n\r\n"[..],
            "target",
        ),
        (
            b"GET checkout HTTP/1.1\r\nHost: shop.test\r\n\r\n",
            "target",
        ),
        (
            b"GET /%zz/checkout HTTP/1.1\r\nHost: shop.test\r\n\r\n",
            "path",
        ),
        (
            b"GET /check%00out HTTP/1.1\r\nHost: shop.test\r\n\r\n",
            "path",
        ),
        (b"GET /checkout HTTP/1.1\r\n\r\n", "no_host"),
        (
            b"GET /static/../checkout HTTP/1.1\r\nHost: shop.test\r\n\r\n",
            "path",
        ),
    ] {
        let r = send(&usher, request);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(request));
        assert!(
            r.text().starts_with("usher: bad request"),
            "{}: {r:?}",
            String::from_utf8_lossy(request)
        );
        let series = format!("usher_requests_refused_total{{reason=\"{reason}\"}}");
        assert!(usher.metric(&series) >= 1.0, "{series}");
    }
    // Pingora itself refuses two Host headers, and an absolute-form target whose host the Host
    // header contradicts, before usher sees them.
    for request in [
        &b"GET /checkout HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n"[..],
        b"GET http://shop.test/checkout HTTP/1.1\r\nHost: other.test\r\n\r\n",
    ] {
        assert_eq!(send(&usher, request).status, 400);
    }
    assert!(origin.heads().is_empty(), "{:?}", origin.heads());
}
