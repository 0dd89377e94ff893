//! End to end in a real browser: headless Chromium queues on a full zone, sees the waiting page
//! with its position (screenshots at desktop and phone sizes, no sideways scrolling at 320 px),
//! and, when the shopper ahead finishes, moves on to the shop by itself at the URL it asked for.
//! With proof of work on, it solves the puzzle in a worker and walks in; a client that skips
//! the puzzle never gets a place, and a solution works once. With a challenge hook, the page
//! renders a (stand-in) provider's widget and its answer lets the browser in.
//!
//! The test relies only on what any version of the waiting page keeps: `#position`, the zone's
//! title, and moving on without a click (meta refresh today, script tomorrow). Needs `chromium`
//! on PATH and fails, saying so, without it. `USHER_UPDATE_SCREENSHOTS=1` also writes the
//! screenshots into `docs/screenshots/` for the README.

mod common;

use common::browser::{Chromium, Page};
use common::{start_origin, Usher};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use usher::demo::origin::OriginResponse;

// The demo's title, so the screenshots in the README look like what `make demo` shows.
const TITLE: &str = "Demo Tickets: The Big Show";
const CHECKOUT_MARKER: &str = "Origin checkout";
const WANTED: &str = "/checkout?item=42";

/// (path with query, user agent) of every request the origin saw.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A shop whose checkout page is recognisable and whose `/checkout/done` frees the slot.
fn shop() -> (std::net::SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let addr = start_origin(move |req| {
        let log = log.clone();
        async move {
            let agent = req.header("user-agent").unwrap_or_default().to_string();
            log.lock().expect("lock").push((req.path.clone(), agent));
            let page = |h1: &str| {
                format!(
                    "<!doctype html><html><head><title>{h1}</title></head><body><h1>{h1}</h1></body></html>"
                )
            };
            if req.path == "/checkout/done" {
                OriginResponse::html(page("Order placed")).with_header("usher-command", "release")
            } else {
                OriginResponse::html(page(CHECKOUT_MARKER))
            }
        }
    });
    (addr, seen)
}

/// Whether the origin saw headless Chromium's request for the URL the browser asked for.
fn saw_the_browser(seen: &Seen) -> bool {
    seen.lock()
        .expect("lock")
        .iter()
        .any(|(path, agent)| path == WANTED && agent.contains("Chrome"))
}

/// Polls `expression` in the page until it yields something other than `null` or `false`, and
/// returns that. Errors count as "not yet": a page that is reloading itself has no document
/// to evaluate in for a moment. On timeout, says what the page showed.
fn wait_for(page: &mut Page, what: &str, timeout: Duration, expression: &str) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let last = page.eval(expression);
        if let Ok(value) = &last {
            if !value.is_null() && *value != Value::Bool(false) {
                return value.clone();
            }
        }
        if Instant::now() >= deadline {
            let shown =
                page.eval("location.href + '\\n' + (document.body && document.body.innerText)");
            panic!(
                "timed out after {timeout:?} waiting for {what}\n  last result: {last:?}\n  \
                 the page showed: {shown:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A screenshot of the waiting page at one screen size. A page that reloads itself (meta
/// refresh) could be caught mid-reload, so the shot counts only if a mark set on the document
/// just before is still there after it: same document, fully shown.
fn shoot(page: &mut Page, name: &str, width: u32, height: u32, scale: f64, mobile: bool) {
    page.set_screen(width, height, scale, mobile);
    let deadline = Instant::now() + Duration::from_secs(15);
    let png = loop {
        assert!(
            Instant::now() < deadline,
            "no steady waiting page to take {name} within 15 s"
        );
        let marked = page.eval(
            "document.readyState === 'complete' && !!document.querySelector('#position') \
             && (window.__usherShot = true)",
        );
        if marked != Ok(Value::Bool(true)) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let Ok(png) = page.screenshot() else { continue };
        if page.eval("window.__usherShot === true") == Ok(Value::Bool(true)) {
            break png;
        }
    };
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("target/screenshots")];
    if std::env::var("USHER_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        dirs.push(root.join("docs/screenshots"));
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        let path = dir.join(name);
        std::fs::write(&path, &png).expect("write screenshot");
        eprintln!("[browser] wrote {} ({} bytes)", path.display(), png.len());
    }
}

#[test]
fn a_browser_waits_with_its_position_then_moves_on_to_the_shop_by_itself() {
    let started = Instant::now();
    let (origin, seen) = shop();
    let dir = tempfile::tempdir().expect("tempdir");
    // One slot, a page that moves every second, and an exchanger that ticks every 100 ms, so
    // the freed slot goes to the browser within about a second.
    let usher = Usher::start(
        dir.path(),
        origin,
        &format!(
            "[zones.checkout]\ntitle = \"{TITLE}\"\npaths = [\"/checkout\"]\ncapacity = 1\n\
             admit_per_minute = 600\nrefresh_interval = \"1s\"\n[store]\ntick = \"100ms\"\n"
        ),
    );

    // A plain client takes the only slot. A quiet zone lets it straight in, unless a background
    // tick raced its join; then it is first in line and gets in at the next tick (100 ms).
    let mut first = usher.client();
    let mut cookie: Option<String> = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    let access = loop {
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
        let r = first.get("/checkout", &headers);
        if let Some(set) = r.cookie() {
            cookie = Some(set);
        }
        if r.text().contains(CHECKOUT_MARKER) {
            break cookie.expect("the first visitor's access cookie");
        }
        assert!(
            Instant::now() < deadline,
            "the first visitor never got into the empty zone, last answer {}: {}",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    let chromium = Chromium::launch();
    eprintln!("[browser] {}", chromium.version());
    let mut page = chromium.page();
    page.navigate(&format!("http://{}{WANTED}", usher.addr));

    // The waiting page, first in line.
    wait_for(
        &mut page,
        "the waiting page to show position 1",
        Duration::from_secs(10),
        "document.querySelector('#position')?.textContent.trim() === '1'",
    );
    let titled = page
        .eval(&format!(
            "document.title.includes('{TITLE}') || document.body.innerText.includes('{TITLE}')"
        ))
        .expect("read the page");
    assert_eq!(titled, Value::Bool(true), "the waiting page names the zone");

    // Marks this document: if anything reloads the page while it waits, the mark is gone.
    page.eval("window.__usherLoaded = true")
        .expect("mark the page");

    shoot(&mut page, "waiting-desktop.png", 1280, 800, 1.0, false);
    shoot(&mut page, "waiting-mobile.png", 360, 740, 2.0, true);
    page.set_screen(320, 640, 2.0, true);
    let width = wait_for(
        &mut page,
        "the waiting page laid out at 320 px",
        Duration::from_secs(10),
        "document.querySelector('#position') && document.documentElement.scrollWidth",
    );
    assert!(
        width.as_u64().is_some_and(|w| w <= 320),
        "at 320 px the waiting page scrolls sideways: scrollWidth {width}"
    );
    assert!(
        !seen.lock().expect("lock").iter().any(|(p, _)| p == WANTED),
        "the browser reached the shop while the zone was full"
    );

    // With JavaScript the page never reloads itself while it waits (several refresh
    // intervals went by for the screenshots), and it listens to the event stream.
    let waited = wait_for(
        &mut page,
        "the page to have waited past two refresh intervals",
        Duration::from_secs(10),
        "performance.now() > 2500 && (window.__usherLoaded === true ? 'same' : 'reloaded')",
    );
    assert_eq!(waited, "same", "the waiting page reloaded itself");
    let metrics = common::Client::connect(usher.metrics)
        .get("/metrics", &[])
        .text();
    let streams: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("usher_gate_requests_total") && l.contains("decision=\"events\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(streams >= 1.0, "the page never opened /_usher/events");

    // The first shopper finishes; the origin's release frees the slot.
    let done = first.get("/checkout/done", &[("Cookie", &access)]);
    assert!(
        done.text().contains("Order placed"),
        "/checkout/done should reach the origin, got {}: {}",
        done.status,
        done.text()
    );
    let released = Instant::now();

    // No click, no navigation: the page must take the browser in by itself.
    wait_for(
        &mut page,
        "the browser to move on to the shop at the URL it asked for",
        Duration::from_secs(30),
        &format!(
            "location.pathname + location.search === '{WANTED}' \
             && document.body.innerText.includes('{CHECKOUT_MARKER}')"
        ),
    );
    let seen = seen.lock().expect("lock");
    assert!(
        seen.iter()
            .any(|(path, agent)| path == WANTED && agent.contains("Chrome")),
        "the origin never saw the browser's request for {WANTED}: {seen:?}"
    );
    eprintln!(
        "[browser] in the shop {:.1} s after the release; test took {:.1} s",
        released.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// The nonce that solves `seed` at `bits`, by brute force (as an app would solve it).
fn solve(seed: &str, bits: u32) -> u64 {
    (0..)
        .find(|n| usher::room::work_of(seed, *n) >= bits)
        .expect("a nonce")
}

#[test]
fn a_browser_solves_the_puzzle_and_a_client_that_skips_it_never_gets_a_place() {
    let (origin, seen) = shop();
    let dir = tempfile::tempdir().expect("tempdir");
    // Proof of work always, at the default difficulty; a quiet `auto` zone lets the solver in.
    let usher = Usher::start(
        dir.path(),
        origin,
        &format!(
            "[zones.checkout]\ntitle = \"{TITLE}\"\npaths = [\"/checkout\"]\ncapacity = 10\n\
             admit_per_minute = 600\n[zones.checkout.defence]\nproof_of_work = \"on\"\n"
        ),
    );
    let bits = u32::from(usher::config::Defence::default().pow_difficulty);

    // A client that skips the puzzle: however often it asks, a puzzle and never a place.
    let mut skipper = usher.client();
    for _ in 0..20 {
        let r = skipper.get("/checkout", &[("Accept", "application/json")]);
        assert_eq!(r.json()["state"], "challenge", "{}", r.text());
        let cookie = r.cookie().unwrap_or_default();
        assert!(!cookie.starts_with("usher_checkout="), "a place: {cookie}");
    }
    assert!(
        seen.lock().expect("lock").is_empty(),
        "nothing reached the shop"
    );

    // An app solves its puzzle natively; its solution works once.
    let puzzle = skipper
        .get("/checkout", &[("Accept", "application/json")])
        .json();
    let challenge = &puzzle["challenge"];
    let nonce = solve(challenge["seed"].as_str().expect("seed"), bits);
    let answer = format!(
        "{}&challenge={}&nonce={nonce}",
        challenge["solve"].as_str().expect("solve"),
        challenge["token"].as_str().expect("token")
    );
    let solved = skipper.get(&answer, &[]);
    assert_eq!(solved.status, 200, "{}", solved.text());
    assert!(solved
        .cookie()
        .is_some_and(|c| c.starts_with("usher_checkout=")));
    let replayed = skipper.get(&answer, &[]);
    assert_eq!(
        replayed.status,
        409,
        "a replayed solution: {}",
        replayed.text()
    );
    assert_eq!(replayed.json()["error"], "challenge_used");

    // A real browser: the page solves the puzzle in a worker, with a progress bar, then joins
    // and (the zone being quiet) walks straight into the shop.
    let chromium = Chromium::launch();
    let mut page = chromium.page();
    let navigated = Instant::now();
    page.navigate(&format!("http://{}{WANTED}", usher.addr));
    wait_for(
        &mut page,
        "the shop, after the puzzle",
        Duration::from_secs(60),
        &format!("document.body && document.body.innerText.includes('{CHECKOUT_MARKER}')"),
    );
    let took = navigated.elapsed();
    eprintln!(
        "[browser] headless Chromium solved the default puzzle ({bits} bits) and was in the \
         shop {:.2} s after navigating",
        took.as_secs_f64()
    );
    assert!(saw_the_browser(&seen), "the origin never saw the browser");
    assert_eq!(
        usher.metric("usher_gate_requests_total{decision=\"solved\",zone=\"checkout\"}"),
        2.0,
        "the app's and the browser's solutions"
    );
}

#[test]
fn the_puzzle_worker_hashes_exactly_like_sha256() {
    // Node runs the worker unmodified against its own SHA-256 (scripts/pow-check.js).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = match std::process::Command::new("node")
        .arg(root.join("scripts/pow-check.js"))
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!("node is needed (scripts/test-origins.sh installs it): {e}"),
    };
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("[pow] {}", report.trim());
}

/// A stand-in CAPTCHA provider on loopback: its script renders a "widget" that answers `good`
/// a moment later (as a person solving it would), and its `siteverify` accepts that answer.
fn fake_provider() -> std::net::SocketAddr {
    start_origin(|req| async move {
        if req.path.starts_with("/api.js") {
            let script = "window.turnstile = { render: function (el, options) {\n\
                 el.textContent = 'stand-in widget for ' + options.sitekey;\n\
                 setTimeout(function () { options.callback('good'); }, 200);\n\
               } };\n\
               var onload = /[?&]onload=([A-Za-z]+)/.exec(document.currentScript.src);\n\
               if (onload) window[onload[1]]();\n";
            return OriginResponse {
                status: 200,
                headers: vec![("content-type".into(), "text/javascript".into())],
                body: script.as_bytes().to_vec(),
            };
        }
        let form = String::from_utf8_lossy(&req.body).into_owned();
        let ok = form.split('&').any(|p| p == "response=good");
        OriginResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: format!("{{\"success\":{ok}}}").into_bytes(),
        }
    })
}

#[test]
fn a_browser_shows_the_providers_widget_and_its_answer_lets_it_in() {
    let (origin, seen) = shop();
    let provider = fake_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("captcha.secret"), "s3cret").expect("secret");
    let usher = Usher::start(
        dir.path(),
        origin,
        &format!(
            "[zones.checkout]\ntitle = \"{TITLE}\"\npaths = [\"/checkout\"]\ncapacity = 10\n\
             admit_per_minute = 600\n[zones.checkout.defence]\nchallenge = {{ provider = \
             \"turnstile\", site_key = \"site-1\", secret = {{ file = \"captcha.secret\" }}, \
             verify_url = \"http://{provider}/siteverify\", script_url = \"http://{provider}/api.js\" }}\n"
        ),
    );
    let chromium = Chromium::launch();
    let mut page = chromium.page();
    page.navigate(&format!("http://{}{WANTED}", usher.addr));
    wait_for(
        &mut page,
        "the shop, after the widget's answer",
        Duration::from_secs(30),
        &format!("document.body && document.body.innerText.includes('{CHECKOUT_MARKER}')"),
    );
    assert!(saw_the_browser(&seen), "the origin never saw the browser");
    assert_eq!(
        usher.metric("usher_gate_requests_total{decision=\"solved\",zone=\"checkout\"}"),
        1.0
    );
}
