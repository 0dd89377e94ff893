//! Places that cannot be farmed, against the real binary: per-client limits, one slot per
//! cookieless client in `auto` mode, slow headers, event-stream caps, shared tokens, and a bot
//! farm beside 300 honest visitors. Clients are told apart by their loopback address (any of
//! 127.0.0.0/8 works as a source address).

mod common;

use common::origins::{connect_from, exchange_from, get};
use common::{start_origin, AsyncClient, Usher};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use usher::demo::origin::OriginResponse;

const WAIT: Duration = Duration::from_secs(10);

fn origin() -> SocketAddr {
    start_origin(|_| async move { OriginResponse::html("<h1>checkout</h1>".into()) })
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

fn send_from(usher: &Usher, source: &str, request: &[u8]) -> common::Response {
    exchange_from(ip(source), usher.addr, request, WAIT)
        .unwrap_or_else(|e| panic!("no answer from usher: {e}"))
}

const QUEUE: &str = "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 1000\n\
                     admit_per_minute = 60\nburst = 1\nmode = \"queue_all\"\n";

#[test]
fn a_flood_from_one_address_holds_no_more_places_than_the_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(dir.path(), origin(), QUEUE);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let addr = usher.addr;
    // 5,000 cookieless requests from one address, on 20 keep-alive connections.
    let started = Instant::now();
    let answers: Vec<(u16, bool, Option<String>)> = runtime.block_on(async move {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                tokio::spawn(async move {
                    let mut client = AsyncClient::connect_from(addr, ip("127.0.0.7"))
                        .await
                        .expect("connect");
                    let mut out = Vec::new();
                    for _ in 0..250 {
                        let r = client.get("/checkout", None).await.expect("answer");
                        out.push((
                            r.status,
                            r.cookie().is_some(),
                            r.header("retry-after").map(str::to_string),
                        ));
                    }
                    out
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all
    });
    let took = started.elapsed();
    let places = answers
        .iter()
        .filter(|(s, cookie, _)| *s == 200 && *cookie)
        .count();
    let refused: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 429).collect();
    eprintln!(
        "flood: 5000 requests in {:.1} s from one address: {places} places, {} refused",
        took.as_secs_f64(),
        refused.len()
    );
    // The burst, and the rate's share of the flood's duration.
    let allowed = 10 + (took.as_secs_f64() * 20.0 / 60.0).ceil() as usize;
    assert!(
        places >= 10 && places <= allowed,
        "{places} places (at most {allowed})"
    );
    assert_eq!(
        places + refused.len(),
        5_000,
        "every request got a place or a 429"
    );
    assert!(refused
        .iter()
        .all(|(_, cookie, retry)| !cookie && retry.is_some()));
    assert_eq!(
        usher.metric("usher_client_refusals_total{reason=\"join_rate\",zone=\"checkout\"}"),
        refused.len() as f64
    );
    // The next fan, from another address, is first: the flood never came back for its few
    // places, so they were never written to the line.
    let fan = send_from(
        &usher,
        "127.0.0.8",
        &get("/checkout", &[("Accept", "application/json")]),
    );
    let place = fan.cookie().expect("a place");
    let status = send_from(
        &usher,
        "127.0.0.8",
        &get("/_usher/status", &[("Cookie", &place)]),
    );
    let position = status.json()["position"].as_u64().expect("position");
    assert_eq!(position, 1, "thrown-away places hold up nobody");
    // A page that asked gets usher's page in its language, coming back by itself.
    let page = send_from(
        &usher,
        "127.0.0.7",
        &get("/checkout", &[("Accept-Language", "de")]),
    );
    assert_eq!(page.status, 429);
    assert!(
        page.text().contains("Zu viele Plätze von Ihrer Verbindung"),
        "{}",
        page.text()
    );
    assert!(page.text().contains("http-equiv=\"refresh\""));
}

#[test]
fn cookieless_requests_in_auto_mode_take_one_slot_per_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zone = "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 20\nadmit_per_minute = 600\n\
                burst = 20\nmode = \"auto\"\n[store]\ntick = \"100ms\"\n";
    let usher = Usher::start(dir.path(), origin(), zone);
    for _ in 0..10 {
        let r = send_from(&usher, "127.0.0.21", &get("/checkout", &[]));
        assert_eq!(r.status, 200);
        assert!(
            r.text().contains("<h1>checkout</h1>"),
            "forwarded: {}",
            r.text()
        );
    }
    common::wait_until("the tick to count the slots", WAIT, || {
        usher.metric("usher_sessions_active{zone=\"checkout\"}") == 1.0
    });
    let r = send_from(&usher, "127.0.0.22", &get("/checkout", &[]));
    assert!(r.text().contains("<h1>checkout</h1>"));
    common::wait_until("another client's slot", WAIT, || {
        usher.metric("usher_sessions_active{zone=\"checkout\"}") == 2.0
    });
}

#[test]
fn headers_sent_too_slowly_are_cut_off_and_bodies_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start_with(dir.path(), origin(), "header_timeout = \"2s\"", "", QUEUE);
    // Slowloris: a header line a second. Cut at the deadline, long before 33 s.
    let mut slow = connect_from(ip("127.0.0.31"), usher.addr).expect("connect");
    slow.set_read_timeout(Some(WAIT)).expect("timeout");
    let started = Instant::now();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: shop.test\r\n")
        .expect("line");
    let mut cut = None;
    for i in 0..33 {
        std::thread::sleep(Duration::from_secs(1));
        if slow
            .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
            .is_err()
        {
            cut = Some(started.elapsed());
            break;
        }
        let mut byte = [0u8; 1];
        slow.set_nonblocking(true).expect("nonblocking");
        let read = slow.read(&mut byte);
        slow.set_nonblocking(false).expect("blocking");
        if matches!(read, Ok(0))
            || matches!(&read, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock)
        {
            cut = Some(started.elapsed());
            break;
        }
    }
    let cut = cut.expect("the slow client was never cut off");
    assert!(
        cut >= Duration::from_millis(1_500) && cut < Duration::from_secs(5),
        "{cut:?}"
    );

    // A connection idle before its first request: the deadline runs from the start.
    let mut idle = connect_from(ip("127.0.0.32"), usher.addr).expect("connect");
    idle.set_read_timeout(Some(WAIT)).expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 16];
    assert_eq!(idle.read(&mut buf).unwrap_or(0), 0, "closed");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A keep-alive connection idle between requests is the keep-alive timeout's business; the
    // next request's clock starts at its first byte. A slow body is not the header's deadline.
    let mut client = connect_from(ip("127.0.0.33"), usher.addr).expect("connect");
    client.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut reader = std::io::BufReader::new(client.try_clone().expect("clone"));
    client.write_all(&get("/", &[])).expect("first");
    let first = common::origins::read_head(&mut reader).expect("first answer");
    assert_eq!(first.status, 200);
    let first = common::origins::read_body(&mut reader, first).expect("body");
    assert!(first.text().contains("checkout"));
    std::thread::sleep(Duration::from_secs(3));
    client
        .write_all(b"POST /upload HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 4\r\n\r\n")
        .expect("second");
    for byte in b"body" {
        std::thread::sleep(Duration::from_millis(900));
        client.write_all(&[*byte]).expect("a byte of the body");
    }
    let second = common::origins::read_head(&mut reader).expect("the second answer");
    assert_eq!(second.status, 200, "a slow body reaches the origin");
}

#[test]
fn event_streams_are_capped_per_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zone = format!("{QUEUE}[zones.checkout.defence]\nclient_event_streams = 2\n");
    let usher = Usher::start(dir.path(), origin(), &zone);
    let place = send_from(&usher, "127.0.0.41", &get("/checkout", &[]))
        .cookie()
        .expect("a place");
    let open = |source: &str| {
        let mut stream = connect_from(ip(source), usher.addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        stream
            .write_all(&get("/_usher/events?zone=checkout", &[("Cookie", &place)]))
            .expect("request");
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).expect("status line");
        (String::from_utf8_lossy(&head).into_owned(), stream)
    };
    let (first, _a) = open("127.0.0.41");
    let (second, _b) = open("127.0.0.41");
    let (third, _c) = open("127.0.0.41");
    assert_eq!((&first[9..12], &second[9..12]), ("200", "200"));
    assert_eq!(
        &third[9..12],
        "429",
        "the third stream of one client: the page polls instead"
    );
    let (other, _d) = open("127.0.0.42");
    assert_eq!(&other[9..12], "200", "another client is not held back");
    assert_eq!(usher.metric("usher_event_streams_open"), 3.0);
    assert_eq!(
        usher.metric("usher_client_refusals_total{reason=\"event_streams\",zone=\"checkout\"}"),
        1.0
    );
}

#[test]
fn a_session_copied_to_a_farm_is_revoked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zone = "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 20\nadmit_per_minute = 600\n\
                burst = 20\nmode = \"auto\"\n";
    let usher = Usher::start(dir.path(), origin(), zone);
    let owner = send_from(&usher, "127.0.0.51", &get("/checkout", &[]));
    let session = owner.cookie().expect("an access cookie");
    // The owner's phone moves networks twice: still the owner's.
    for source in ["127.0.0.51", "127.0.0.52", "127.0.0.53"] {
        let r = send_from(&usher, source, &get("/checkout", &[("Cookie", &session)]));
        assert!(r.text().contains("<h1>checkout</h1>"), "{source}");
        assert!(r.cookie().is_none(), "the same session, no new one");
    }
    // A fourth address: the token is shared. Nobody gets through with it any more.
    for source in ["127.0.0.54", "127.0.0.51"] {
        let r = send_from(&usher, source, &get("/checkout", &[("Cookie", &session)]));
        let fresh = r.cookie().map(|c| common::claims_of(&c)["vid"].clone());
        assert_ne!(
            fresh,
            Some(common::claims_of(&session)["vid"].clone()),
            "{source}"
        );
    }
    assert_eq!(
        usher.metric("usher_tokens_shared_total{zone=\"checkout\"}"),
        1.0
    );
    assert_eq!(
        usher.metric("usher_token_rejections_total{reason=\"shared\"}"),
        1.0
    );
}

/// One visitor's admission, in ms after their arrival.
type AdmissionMs = u64;

/// How the bot farm of [`spike`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Farm {
    /// No farm.
    Absent,
    /// New places as fast as usher answers, each thrown away (a scalper's script hammering
    /// the join URL).
    Flooding,
    /// The same, and every place it gets is kept alive like a fan's (polled each second).
    Keeping,
}

/// 300 honest visitors (an address each, keeping their page open by polling) arrive over two
/// seconds, beside a farm of 10 addresses that send far more than 50 times a fan's requests.
/// Returns the fans' admission times and the places each farm address got.
fn spike(farm: Farm) -> (Vec<AdmissionMs>, Vec<u64>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let zone = "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 100000\n\
                admit_per_minute = 1200\nburst = 20\nmode = \"queue_all\"\n\
                refresh_interval = \"1s\"\n[store]\ntick = \"100ms\"\n";
    let usher = Usher::start(dir.path(), origin(), zone);
    let addr = usher.addr;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let stop = Arc::new(AtomicBool::new(false));
    runtime.block_on(async move {
        let farm_places: Vec<Arc<AtomicU64>> = (0..10).map(|_| Arc::default()).collect();
        let bots: Vec<_> = match farm {
            Farm::Absent => Vec::new(),
            Farm::Flooding | Farm::Keeping => farm_places
                .iter()
                .enumerate()
                .map(|(i, places)| {
                    let (places, stop) = (places.clone(), stop.clone());
                    let source = IpAddr::from([127, 3, 0, i as u8 + 1]);
                    tokio::spawn(bot(addr, source, farm == Farm::Keeping, places, stop))
                })
                .collect(),
        };
        let honest: Vec<_> = (0..300u32)
            .map(|n| {
                tokio::spawn(async move {
                    // Arrivals spread over two seconds.
                    tokio::time::sleep(Duration::from_millis(u64::from(n) * 2_000 / 300)).await;
                    honest_visitor(addr, AsyncClient::address(10_000 + n)).await
                })
            })
            .collect();
        let mut admissions = Vec::new();
        for h in honest {
            admissions.push(h.await.expect("task").expect("admitted"));
        }
        stop.store(true, Ordering::Release);
        for b in bots {
            let _ = b.await;
        }
        let places = farm_places
            .iter()
            .map(|p| p.load(Ordering::Acquire))
            .collect();
        (admissions, places)
    })
}

/// A fan: joins, keeps the page open (a status poll a second, as the page without an event
/// stream does), and is admitted in their turn.
async fn honest_visitor(addr: SocketAddr, source: IpAddr) -> Result<AdmissionMs, String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut client = AsyncClient::connect_from(addr, source)
        .await
        .map_err(|e| e.to_string())?;
    let first = client
        .get("/checkout", None)
        .await
        .map_err(|e| e.to_string())?;
    let place = first
        .cookie()
        .ok_or_else(|| format!("no place: {}", first.status))?;
    loop {
        let status = client
            .get("/_usher/status", Some(&place))
            .await
            .map_err(|e| e.to_string())?;
        if status.json()["state"] == "admitted" {
            let access = status.cookie().ok_or("admitted without a token")?;
            let claims = common::claims_of(&access);
            let rank = claims["rank"].as_u64().ok_or("rank")?;
            let adm = claims["adm"].as_u64().ok_or("adm")?;
            return Ok(adm.saturating_sub(rank));
        }
        if Instant::now() > deadline {
            return Err("never admitted".into());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A bot address: new places as fast as usher answers (about 500 requests a second where a
/// fan sends one), and with `keep`, each place it gets polled each second like a fan's.
async fn bot(
    addr: SocketAddr,
    source: IpAddr,
    keep: bool,
    places: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let Ok(mut joiner) = AsyncClient::connect_from(addr, source).await else {
        return;
    };
    let Ok(mut keeper) = AsyncClient::connect_from(addr, source).await else {
        return;
    };
    let mut held: Vec<String> = Vec::new();
    let mut polled_at = Instant::now();
    while !stop.load(Ordering::Acquire) {
        for _ in 0..10 {
            if let Ok(r) = joiner.get("/checkout", None).await {
                if let (200, Some(place)) = (r.status, r.cookie()) {
                    places.fetch_add(1, Ordering::AcqRel);
                    held.push(place);
                }
            }
        }
        if keep && polled_at.elapsed() >= Duration::from_secs(1) {
            polled_at = Instant::now();
            for place in &held {
                let _ = keeper.get("/_usher/status", Some(place)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

#[test]
fn a_bot_farm_beside_300_fans_holds_only_what_the_limits_allow() {
    let started = Instant::now();
    let (alone, _) = spike(Farm::Absent);
    let (flooded, flooding) = spike(Farm::Flooding);
    let (kept, keeping) = spike(Farm::Keeping);
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let (alone, flooded, kept) = (median(alone), median(flooded), median(kept));
    let change = |ms: u64| (ms as f64 / alone.max(1) as f64 - 1.0) * 100.0;
    eprintln!(
        "bot farm: fans' median admission {alone} ms alone; {flooded} ms ({:+.0}%) beside a \
         flooding farm holding {flooding:?} places per address; {kept} ms ({:+.0}%) beside a \
         farm keeping its places, {keeping:?}",
        change(flooded),
        change(kept)
    );
    // The defaults: the burst and the rate's share of the time the farm ran, and never more
    // than client_places at once.
    let d = usher::config::Defence::default();
    let allowed = u64::from(d.client_join_burst)
        + (f64::from(d.client_joins_per_minute) * minutes).ceil() as u64;
    for places in flooding.iter().chain(&keeping) {
        assert!(
            *places >= 1 && *places <= allowed.min(u64::from(d.client_places)),
            "a farm address got {places} places (the limits allow {allowed}): {flooding:?} {keeping:?}"
        );
    }
    assert!(
        flooded as f64 <= alone as f64 * 1.2 + 250.0,
        "the fans waited {flooded} ms beside the flooding farm, {alone} ms alone"
    );
}

/// A stand-in for a CAPTCHA provider's `siteverify`, answering like Turnstile (hCaptcha and
/// reCAPTCHA answer alike): `success` for the response `good` with the right secret. `/slow`
/// answers after 3 s. Records each form it was sent.
fn verifier() -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let forms: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let seen = forms.clone();
    let addr = start_origin(move |req| {
        let seen = seen.clone();
        async move {
            let form = String::from_utf8_lossy(&req.body).into_owned();
            seen.lock().expect("lock").push(form.clone());
            if req.path.starts_with("/slow") {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            let good = form.split('&').any(|p| p == "response=good")
                && form.split('&').any(|p| p == "secret=s3cret");
            let body = if good {
                r#"{"success":true,"error-codes":[],"challenge_ts":"2026-11-29T10:00:00Z","hostname":"shop.test"}"#
            } else {
                r#"{"success":false,"error-codes":["invalid-input-response"]}"#
            };
            OriginResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.as_bytes().to_vec(),
            }
        }
    });
    (addr, forms)
}

#[test]
fn the_challenge_hook_checks_answers_with_the_provider_and_fails_as_configured() {
    let (provider, forms) = verifier();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("turnstile.secret"), "s3cret\n").expect("secret");
    let hook = |path: &str, on_error: &str| {
        format!(
            "challenge = {{ provider = \"turnstile\", site_key = \"0x4AAAAAAA\", \
             secret = {{ file = \"turnstile.secret\" }}, verify_url = \"http://{provider}{path}\", \
             timeout = \"1s\", on_error = \"{on_error}\" }}\n"
        )
    };
    let zones = format!(
        "{QUEUE}[zones.checkout.defence]\n{}\
         [zones.tickets]\npaths = [\"/tickets\"]\ncapacity = 10\nadmit_per_minute = 60\n\
         mode = \"queue_all\"\n[zones.tickets.defence]\n{}\
         [zones.merch]\npaths = [\"/merch\"]\ncapacity = 10\nadmit_per_minute = 60\n\
         mode = \"queue_all\"\n[zones.merch.defence]\n{}",
        hook("/siteverify", "fail_closed"),
        hook("/slow", "fail_closed"),
        hook("/slow", "fail_open"),
    );
    let usher = Usher::start(dir.path(), origin(), &zones);
    let json = [("Accept", "application/json")];

    // The newcomer gets the widget to show, not a place.
    let arrived = usher::clock::Clock::now_ms(&usher::clock::SystemClock);
    let first = send_from(&usher, "127.0.0.61", &get("/checkout", &json));
    let challenge = first.json()["challenge"].clone();
    assert_eq!(first.json()["state"], "challenge", "{}", first.text());
    assert_eq!(challenge["kind"], "captcha");
    assert_eq!(challenge["provider"], "turnstile");
    assert_eq!(challenge["site_key"], "0x4AAAAAAA");
    assert!(first
        .cookie()
        .is_none_or(|c| !c.starts_with("usher_checkout=")));
    let token = challenge["token"].as_str().expect("token").to_string();
    let answer = |zone: &str, token: &str, response: &str| {
        get(
            &format!("/_usher/solve?zone={zone}&challenge={token}&response={response}"),
            &[],
        )
    };

    // A wrong answer: refused, no place.
    let wrong = send_from(&usher, "127.0.0.61", &answer("checkout", &token, "bad"));
    assert_eq!(
        (wrong.status, wrong.json()["error"].as_str()),
        (403, Some("challenge_failed"))
    );
    // The right one: the place, at the arrival.
    let right = send_from(&usher, "127.0.0.61", &answer("checkout", &token, "good"));
    assert_eq!(right.status, 200, "{}", right.text());
    let place = right.cookie().expect("a place");
    let rank = common::claims_of(&place)["rank"].as_u64().expect("rank");
    assert!(
        rank.abs_diff(arrived) < 2_000,
        "the place ranks from the arrival"
    );
    let sent = forms.lock().expect("lock").clone();
    assert!(
        sent.iter()
            .all(|f| f.contains("secret=s3cret") && f.contains("remoteip=127.0.0.61")),
        "{sent:?}"
    );

    // The provider does not answer in time: fail closed asks to try again, fail open lets in.
    for (zone, status) in [("tickets", 503), ("merch", 200)] {
        let first = send_from(&usher, "127.0.0.62", &get(&format!("/{zone}"), &json));
        let token = first.json()["challenge"]["token"]
            .as_str()
            .expect("token")
            .to_string();
        let started = Instant::now();
        let r = send_from(&usher, "127.0.0.62", &answer(zone, &token, "good"));
        assert_eq!(r.status, status, "{zone}: {}", r.text());
        assert!(
            started.elapsed() < Duration::from_millis(2_500),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        usher.metric("usher_challenge_errors_total{zone=\"tickets\"}"),
        1.0
    );
    assert_eq!(
        usher.metric("usher_challenge_errors_total{zone=\"merch\"}"),
        1.0
    );
}

#[test]
fn the_shop_names_a_visitor_and_all_their_devices_share_one_place() {
    // The shop's login answers with Usher-Identity; its checkout is protected.
    let shop = start_origin(|req| async move {
        let page = OriginResponse::html("<h1>checkout</h1>".into());
        if req.path.starts_with("/login") {
            return page.with_header("usher-identity", "customer-4711");
        }
        page
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(dir.path(), shop, QUEUE);
    let json = [("Accept", "application/json")];

    // The phone logs in: an identity cookie, and the header never reaches the visitor.
    let login = send_from(&usher, "127.0.0.71", &get("/login", &[]));
    assert_eq!(login.header("usher-identity"), None);
    let identity = login
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .find_map(|(_, v)| v.strip_prefix("usher_~identity="))
        .and_then(|v| v.split(';').next())
        .map(|token| format!("usher_~identity={token}"))
        .expect("an identity cookie");
    let phone = send_from(
        &usher,
        "127.0.0.71",
        &get("/checkout", &[("Cookie", &identity), json[0]]),
    );
    let phone = common::claims_of(&phone.cookie().expect("a place"));

    // Someone else joins, then the laptop logs in (another network) and joins.
    std::thread::sleep(Duration::from_millis(50));
    let other = send_from(&usher, "127.0.0.72", &get("/checkout", &json));
    let other = common::claims_of(&other.cookie().expect("a place"));
    let login = send_from(&usher, "127.0.0.73", &get("/login", &[]));
    assert!(login
        .headers
        .iter()
        .any(|(n, v)| n == "set-cookie" && v.starts_with("usher_~identity=")));
    let laptop = send_from(
        &usher,
        "127.0.0.73",
        &get("/checkout", &[("Cookie", &identity), json[0]]),
    );
    let laptop = common::claims_of(&laptop.cookie().expect("a place"));
    assert_eq!(
        (&laptop["vid"], &laptop["rank"]),
        (&phone["vid"], &phone["rank"]),
        "one place"
    );
    assert!(
        other["rank"].as_u64() > phone["rank"].as_u64(),
        "ahead of the later arrival"
    );

    // A link signed with `usher identity sign` works the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
        .args([
            "identity",
            "sign",
            "--identity",
            "customer-4711",
            "--zone",
            "checkout",
            "--config",
        ])
        .arg(dir.path().join("usher.toml"))
        .output()
        .expect("usher identity sign");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let token = printed.lines().next().expect("the token").to_string();
    assert!(
        printed.contains(&format!("?usher_identity={token}")),
        "{printed}"
    );
    let tablet = send_from(
        &usher,
        "127.0.0.74",
        &get(&format!("/checkout?usher_identity={token}"), &json),
    );
    let tablet = common::claims_of(&tablet.cookie().expect("a place"));
    assert_eq!(
        (&tablet["vid"], &tablet["rank"]),
        (&phone["vid"], &phone["rank"])
    );
}
