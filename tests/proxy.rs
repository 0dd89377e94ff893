//! The proxy through real HTTP: what the origin sees (usher's cookies stripped, spoofed headers
//! dropped, session headers added), forged tokens never forwarded and counted, unprotected paths
//! untouched, the reserved endpoints, and the waiting page (its language, its cached assets, a
//! zone's own template).

mod common;

use common::{start_origin, Usher};
use std::sync::{Arc, Mutex};
use usher::demo::origin::{OriginRequest, OriginResponse};

type Seen = Arc<Mutex<Vec<OriginRequest>>>;

fn recording_origin() -> (std::net::SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let addr = start_origin(move |req| {
        let log = log.clone();
        async move {
            log.lock().expect("lock").push(req);
            OriginResponse::html("origin".into()).with_header("x-origin", "1")
        }
    });
    (addr, seen)
}

fn last(seen: &Seen) -> OriginRequest {
    seen.lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("the origin saw a request")
}

#[test]
fn the_origin_sees_session_headers_and_none_of_ushers_cookies() {
    let (origin, seen) = recording_origin();
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(
        dir.path(),
        origin,
        "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 5\nadmit_per_minute = 600\n",
    );
    let spoofed = [
        ("Usher-Visitor", "ffffffffffffffffffffffffffffffff"),
        ("Usher-Zone", "vip"),
        ("Cookie", "theme=dark"),
    ];
    let first = usher.client().get("/checkout", &spoofed);
    assert!(
        first.header("x-origin").is_some(),
        "quiet zone: straight in"
    );
    let cookie = first.cookie().expect("access token");
    let req = last(&seen);
    let visitor = req.header("usher-visitor").expect("visitor header");
    assert_ne!(
        visitor, "ffffffffffffffffffffffffffffffff",
        "a client cannot choose its visitor id"
    );
    assert_eq!(req.header("usher-zone"), Some("checkout"));
    assert_eq!(req.header("cookie"), Some("theme=dark"));

    let both = format!("theme=dark; {cookie}; lang=en");
    let again = usher.client().get("/checkout/pay", &[("Cookie", &both)]);
    assert!(again.header("x-origin").is_some());
    let req = last(&seen);
    assert_eq!(
        req.header("cookie"),
        Some("theme=dark; lang=en"),
        "usher's cookie is stripped"
    );
    assert_eq!(
        req.header("usher-visitor"),
        Some(visitor),
        "same session, same visitor"
    );

    // Unprotected paths pass untouched (but spoofed usher headers never reach the origin).
    let home = usher
        .client()
        .get("/", &[("Cookie", &both), ("Usher-Visitor", "x")]);
    assert!(home.header("x-origin").is_some());
    let req = last(&seen);
    assert_eq!(req.header("usher-visitor"), None);
    assert_eq!(req.header("usher-zone"), None);
}

#[test]
fn forged_expired_and_wrong_zone_tokens_are_never_forwarded_and_are_counted() {
    let (origin, seen) = recording_origin();
    let dir = tempfile::tempdir().expect("tempdir");
    // Another zone on the same key, to mint a valid token for the wrong zone.
    let usher = Usher::start(
        dir.path(),
        origin,
        "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 5\nadmit_per_minute = 600\nmode = \"queue_all\"\n\
         [zones.seats]\npaths = [\"/seats\"]\ncapacity = 5\nadmit_per_minute = 600\n",
    );
    let seats = usher.client().get("/seats", &[]);
    let seats_token = seats.cookie().expect("seats token");
    let seats_value = seats_token.split_once('=').expect("cookie").1;
    let real = usher
        .client()
        .get("/checkout", &[])
        .cookie()
        .expect("visitor token");
    let real_value = real.split_once('=').expect("cookie").1.to_string();
    let forged_signature = common::tamper_signature(&real_value);
    let expired = common::tokens_for(dir.path()).sign(&usher::token::Claims {
        iss: "usher".into(),
        typ: usher::token::TokenKind::Access,
        zone: "checkout".into(),
        vid: usher::admission::VisitorId(77),
        rank: 1,
        iat: 1,
        exp: 2,
        adm: Some(1),
        pri: false,
    });
    let forged = [
        format!("usher_checkout={expired}"),
        format!("usher_checkout={seats_value}"),
        format!("usher_checkout={forged_signature}"),
        "usher_checkout=eyJhbGciOiJub25lIiwia2lkIjoidGVzdCJ9.eyJ6b25lIjoiY2hlY2tvdXQifQ."
            .to_string(),
        "usher_checkout=garbage".to_string(),
    ];
    let before = seen.lock().expect("lock").len();
    for cookie in &forged {
        let r = usher.client().get("/checkout", &[("Cookie", cookie)]);
        assert!(r.header("x-origin").is_none(), "{cookie} was forwarded");
        assert_ne!(r.cookie().as_deref(), Some(cookie.as_str()));
    }
    assert_eq!(
        seen.lock().expect("lock").len(),
        before,
        "nothing reached the origin"
    );
    for reason in [
        "expired",
        "wrong_zone",
        "bad_signature",
        "alg_none",
        "malformed",
    ] {
        let series = format!("usher_token_rejections_total{{reason=\"{reason}\"}}");
        assert_eq!(usher.metric(&series), 1.0, "{series}");
    }
}

#[test]
fn a_script_in_line_gets_429_json_with_retry_after_instead_of_the_page() {
    let (origin, seen) = recording_origin();
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(
        dir.path(),
        origin,
        "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 5\nadmit_per_minute = 600\n\
         mode = \"queue_all\"\nrefresh_interval = \"3s\"\n",
    );
    let xhr = usher
        .client()
        .get("/checkout", &[("X-Requested-With", "XMLHttpRequest")]);
    assert_eq!(xhr.status, 429);
    assert_eq!(xhr.header("retry-after"), Some("3"));
    assert_eq!(xhr.header("content-type"), Some("application/json"));
    assert_eq!(xhr.json()["state"], "waiting");
    assert!(xhr.cookie().is_some(), "the script gets its place");
    let page = usher.client().get("/checkout", &[]);
    assert_eq!(page.status, 200, "a page load still gets the waiting page");
    assert!(page.header("retry-after").is_none());
    assert!(
        seen.lock().expect("lock").is_empty(),
        "nothing reached the origin"
    );
}

#[test]
fn reserved_endpoints_answer_on_every_host() {
    let (origin, seen) = recording_origin();
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(
        dir.path(),
        origin,
        "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 5\nadmit_per_minute = 600\n",
    );
    let jwks = usher.client().get("/_usher/jwks.json", &[]).json();
    assert_eq!(jwks["keys"][0]["kid"], "test");
    let status = usher.client().get("/_usher/status", &[]).json();
    assert_eq!(status["state"], "not_queued");
    assert_eq!(status["zone"], "checkout");
    assert_eq!(usher.client().get("/_usher/nope", &[]).status, 404);
    assert!(
        seen.lock().expect("lock").is_empty(),
        "reserved paths never reach the origin"
    );
    let metrics = common::Client::connect(usher.metrics)
        .get("/metrics", &[])
        .text();
    for family in [
        "usher_gate_requests_total",
        "usher_queue_waiting",
        "usher_sessions_active",
        "usher_zone_capacity",
        "usher_admitted_total",
        "usher_token_rejections_total",
    ] {
        assert!(metrics.contains(family), "missing {family}");
    }
}

/// The `href` or `src` of the page's asset whose name ends in `ext`.
fn asset_path(html: &str, ext: &str) -> String {
    html.match_indices("/_usher/assets/")
        .map(|(at, _)| &html[at..at + html[at..].find('"').expect("closing quote")])
        .find(|path| path.ends_with(ext))
        .unwrap_or_else(|| panic!("no {ext} asset in {html}"))
        .to_string()
}

/// The text of the element with id `id`.
fn element(html: &str, id: &str) -> String {
    let open = format!("id=\"{id}\">");
    let start = html.find(&open).unwrap_or_else(|| panic!("no #{id}")) + open.len();
    html[start..start + html[start..].find('<').expect("end")].to_string()
}

#[test]
fn the_waiting_page_links_immutable_assets_and_speaks_the_visitors_language() {
    let (origin, seen) = recording_origin();
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(
        dir.path(),
        origin,
        "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 5\nadmit_per_minute = 600\n\
         mode = \"queue_all\"\n",
    );
    let mut client = usher.client();
    let german = client.get(
        "/checkout",
        &[("Accept-Language", "de-CH, de;q=0.9, en;q=0.5")],
    );
    assert_eq!(german.status, 200);
    assert_eq!(
        german.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(german.header("cache-control"), Some("no-store"));
    assert_eq!(german.header("vary"), Some("Accept-Language"));
    let html = german.text();
    assert!(html.contains("<html lang=\"de\">"), "{html}");
    assert_eq!(element(&html, "headline"), "Sie sind in der Warteschlange");
    assert!(html.contains("<noscript><meta http-equiv=\"refresh\""));

    // One visitor, one place: the same cookie is the same place, whatever the language.
    let cookie = german.cookie().expect("a place in line");
    let mut other = usher.client();
    other.get("/checkout", &[]);
    let again = client.get("/checkout", &[("Cookie", &cookie)]);
    assert!(again.cookie().is_none(), "no new place");
    let html_en = again.text();
    assert!(html_en.contains("<html lang=\"en\">"));
    assert_eq!(element(&html_en, "position"), element(&html, "position"));

    for (ext, content_type) in [
        (".css", "text/css; charset=utf-8"),
        (".js", "text/javascript; charset=utf-8"),
    ] {
        let path = asset_path(&html, ext);
        let asset = client.get(&path, &[]);
        assert_eq!(asset.status, 200, "{path}");
        assert_eq!(asset.header("content-type"), Some(content_type), "{path}");
        assert_eq!(
            asset.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{path}"
        );
        assert!(asset.body.len() > 500, "{path} has its content");
    }
    // Another build's name (a page from another node in a rolling upgrade): this build's file,
    // revalidated; a name usher never had: 404.
    let other_version = client.get("/_usher/assets/page.0000000000000000.css", &[]);
    assert_eq!(other_version.status, 200);
    assert_eq!(other_version.header("cache-control"), Some("no-cache"));
    let unknown = client.get("/_usher/assets/shop.0000000000000000.css", &[]);
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("cache-control"), Some("no-store"));
    assert!(
        seen.lock().expect("lock").is_empty(),
        "pages and assets never reach the origin"
    );
}

#[test]
fn a_zone_brings_its_own_template_and_words() {
    let (origin, _seen) = recording_origin();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("page.html"),
        "<!doctype html><html lang=\"{{lang}}\"><head>{{usher_head}}</head>\
         <body class=\"brand\"><h1>{{title}}</h1><p id=\"position\">{{position}}</p>\
         <p id=\"keep\">{{keep_open}}</p></body></html>",
    )
    .expect("template");
    let usher = Usher::start(
        dir.path(),
        origin,
        "[zones.checkout]\ntitle = \"Rock & Roll\"\npaths = [\"/checkout\"]\ncapacity = 5\n\
         admit_per_minute = 600\nmode = \"queue_all\"\ntemplate = \"page.html\"\n\
         [zones.checkout.strings.es]\nkeep_open = \"No cierre esta página.\"\n",
    );
    let page = usher
        .client()
        .get("/checkout", &[("Accept-Language", "es-MX,es;q=0.8")]);
    let html = page.text();
    assert!(
        html.contains("<body class=\"brand\"><h1>Rock &amp; Roll</h1>"),
        "{html}"
    );
    assert_eq!(element(&html, "position"), "1");
    assert_eq!(element(&html, "keep"), "No cierre esta página.");
    assert!(html.contains("<html lang=\"es\">"));
    let script = asset_path(&html, ".js");
    assert_eq!(usher.client().get(&script, &[]).status, 200);
}
