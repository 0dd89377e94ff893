//! End to end in a real browser: headless Chromium queues on a full zone, sees the waiting page
//! with its position (screenshots at desktop and phone sizes, no sideways scrolling at 320 px),
//! and, when the shopper ahead finishes, moves on to the shop by itself at the URL it asked for.
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
