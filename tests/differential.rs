//! Differential test of the gate against real, lenient origins: for every spelling of a protected
//! path (and of a host-scoped zone's host) in the corpus below, ask each origin directly whether
//! it routes that exact request to its protected handler, then send the same bytes through usher
//! and check that usher gated it or refused it with a 400. Never may usher forward to the
//! protected handler a request the origin treats as the checkout. Controls (`/checkoutx`,
//! `/soldout`, ...) must be forwarded wherever the origin serves them as ordinary pages.
//!
//! Origins: nginx twice (`location /checkout`, and `location ~* ^/checkout`), Flask on Werkzeug's
//! server, Express 5 and Express 4 (`tests/origins/`, installed by `scripts/test-origins.sh`;
//! the test fails, saying so, when they are missing). Both zones are paused, so nobody is ever
//! let in: whatever reaches a protected handler through usher went around the gate.
//!
//! Prints a table (spelling × origin: what the origin did directly → what usher did) and totals;
//! `cargo test --release --test differential -- --nocapture` shows it, and it is also written to
//! `target/differential-report.txt`.
//!
//! One deliberate exception: an origin whose protected handler takes a path that continues the
//! prefix past a segment boundary (nginx's `location /checkout` takes `/checkoutx` and
//! `/checkout%20`) is reported as "beyond the boundary" and not counted as a bypass, since usher's
//! zones match prefixes on segment boundaries (`/`, `.` or the end) by design.

mod common;

use common::origins::{exchange, NginxCheckout, Origin};
use common::Response;
use common::Usher;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const ZONES: &str = "\
[zones.checkout]
paths = [\"/checkout\"]
capacity = 1
admit_per_minute = 1
mode = \"paused\"

[zones.vip]
hosts = [\"shop.test\"]
paths = [\"/vip\"]
capacity = 1
admit_per_minute = 1
mode = \"paused\"
";

const TIMEOUT: Duration = Duration::from_secs(5);

/// What a spelling is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Must be gated or refused wherever the origin routes it to a protected handler.
    Probe,
    /// Also a probe, and must be forwarded (not gated, not refused) wherever the origin serves
    /// it as an ordinary page.
    Control,
}

struct Spelling {
    label: String,
    request: Vec<u8>,
    kind: Kind,
}

/// `GET <target> HTTP/1.1` with `Host: shop.test`.
fn path(target: &[u8], kind: Kind) -> Spelling {
    let mut request = b"GET ".to_vec();
    request.extend_from_slice(target);
    request.extend_from_slice(b" HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n");
    Spelling {
        label: printable(target),
        request,
        kind,
    }
}

/// A whole request head for the host spellings (`Connection: close` and the blank line added).
fn host(label: &str, head: &str) -> Spelling {
    Spelling {
        label: label.to_string(),
        request: format!("{head}\r\nConnection: close\r\n\r\n").into_bytes(),
        kind: Kind::Probe,
    }
}

/// Bytes as text, with control characters escaped.
fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\x{:02x}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn corpus() -> Vec<Spelling> {
    use Kind::{Control, Probe};
    let probes: &[&[u8]] = &[
        b"/checkout",
        b"/checkout/",
        b"/checkout/pay",
        b"/checkout.json",
        b"/checkout?x",
        b"/checkout?next=/soldout",
        b"/checkout#frag",
        b"/%63heckout",
        b"/%63%68%65%63%6B%6F%75%74",
        b"/%2563heckout",
        b"/%252563heckout",
        b"/Checkout",
        b"/CHECKOUT",
        b"/cHeCkOuT/pay",
        b"//checkout",
        b"///checkout/pay",
        b"/./checkout",
        b"/%2e/checkout",
        b"/static/../checkout",
        b"/static/./../checkout",
        b"/static/%2e%2e/checkout",
        b"/static/%2E%2E/checkout",
        b"/static/.%2e/checkout",
        b"/%2e%2e/checkout",
        b"/../checkout",
        b"/static%2f..%2fcheckout",
        b"/static%2F..%2Fcheckout",
        b"/static/..%2fcheckout",
        b"/%2fcheckout",
        b"/static/%252e%252e/checkout",
        b"/\\checkout",
        b"/static\\..\\checkout",
        b"/%5ccheckout",
        b"/static/..%5ccheckout",
        b"/;x/checkout",
        b"/checkout;jsessionid=1",
        b"/checkout;x/pay",
        b"/..;/checkout",
        b"/static/..;/checkout",
        b"x:/checkout",
        b"checkout",
        b"http://shop.test/checkout",
        b"HTTP://SHOP.TEST/checkout",
        b"https://shop.test/checkout",
        b"http://shop.test//checkout",
        b"/checkout%20",
        b"/checkout%09",
        b"/checkout%2Fpay",
        b"/checkout%2Epay",
        b"/check%00out",
        b"/checkout%00",
        b"/checkout%ff",
        b"/%c0%afcheckout",
        b"/static/%c0%ae%c0%ae/checkout",
        "/ｃheckout".as_bytes(),
        b"/%EF%BD%83heckout",
        b"/checkout/..",
        b"/checkout/%2e%2e",
        b"/checkout/../soldout",
        b"/checkout/%2e%2e/soldout",
        b"/checkout/./pay",
    ];
    let controls: &[&[u8]] = &[
        b"/checkoutx",
        b"/checkouts",
        b"/checkout-old",
        b"/soldout",
        b"/check",
        b"/static/checkout",
        b"/",
        b"/%63heckoutx",
    ];
    let mut spellings: Vec<Spelling> = probes.iter().map(|t| path(t, Probe)).collect();
    spellings.extend(controls.iter().map(|t| path(t, Control)));
    spellings.extend([
        host(
            "/vip Host: shop.test",
            "GET /vip HTTP/1.1\r\nHost: shop.test",
        ),
        host(
            "/vip Host: shop.test.",
            "GET /vip HTTP/1.1\r\nHost: shop.test.",
        ),
        host(
            "/vip Host: SHOP.TEST",
            "GET /vip HTTP/1.1\r\nHost: SHOP.TEST",
        ),
        host(
            "/vip Host: Shop.Test.",
            "GET /vip HTTP/1.1\r\nHost: Shop.Test.",
        ),
        host(
            "/vip Host: shop.test:80",
            "GET /vip HTTP/1.1\r\nHost: shop.test:80",
        ),
        host(
            "/vip Host: shop.test:8080",
            "GET /vip HTTP/1.1\r\nHost: shop.test:8080",
        ),
        host(
            "/vip Host: shop.test.:80",
            "GET /vip HTTP/1.1\r\nHost: shop.test.:80",
        ),
        host(
            "/vip Host:  shop.test  (spaces)",
            "GET /vip HTTP/1.1\r\nHost:  shop.test  ",
        ),
        host(
            "/VIP Host: shop.test",
            "GET /VIP HTTP/1.1\r\nHost: shop.test",
        ),
        host(
            "/%76ip Host: shop.test",
            "GET /%76ip HTTP/1.1\r\nHost: shop.test",
        ),
        host(
            "//vip Host: shop.test",
            "GET //vip HTTP/1.1\r\nHost: shop.test",
        ),
        host("/vip HTTP/1.0, no Host", "GET /vip HTTP/1.0"),
        host(
            "/vip HTTP/1.0 Host: SHOP.TEST.",
            "GET /vip HTTP/1.0\r\nHost: SHOP.TEST.",
        ),
        host("/vip HTTP/1.1, no Host", "GET /vip HTTP/1.1"),
        host(
            "http://shop.test/vip, no Host",
            "GET http://shop.test/vip HTTP/1.1",
        ),
        host(
            "http://SHOP.TEST./vip, no Host",
            "GET http://SHOP.TEST./vip HTTP/1.1",
        ),
        host(
            "http://shop.test/vip Host: other.test",
            "GET http://shop.test/vip HTTP/1.1\r\nHost: other.test",
        ),
        host(
            "http://other.test/vip Host: shop.test",
            "GET http://other.test/vip HTTP/1.1\r\nHost: shop.test",
        ),
        host(
            "http://shop.test:80/vip Host: shop.test",
            "GET http://shop.test:80/vip HTTP/1.1\r\nHost: shop.test",
        ),
        host(
            "/vip HTTP/1.0 http://shop.test/vip",
            "GET http://shop.test/vip HTTP/1.0",
        ),
        host(
            "/vip Host: 127.0.0.1",
            "GET /vip HTTP/1.1\r\nHost: 127.0.0.1",
        ),
        host(
            "/vip Host: other.test",
            "GET /vip HTTP/1.1\r\nHost: other.test",
        ),
        host(
            "/vip Host: shop.test + Host: other.test",
            "GET /vip HTTP/1.1\r\nHost: shop.test\r\nHost: other.test",
        ),
        host(
            "/vip Host: other.test + Host: shop.test",
            "GET /vip HTTP/1.1\r\nHost: other.test\r\nHost: shop.test",
        ),
    ]);
    spellings
}

/// What an origin did with a request sent to it directly.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Direct {
    /// Its protected handler answered; the path it saw. `beyond` when that path continues the
    /// prefix past a segment boundary (`/checkoutx`), which usher's zones do not cover by design.
    Protected { seen: String, beyond: bool },
    /// Its ordinary pages answered (the catch-all's `PUBLIC:` body).
    Page(u16),
    /// The origin answered without either handler: its server refused the request (400), or
    /// its router redirected it or found nothing (3xx, 404).
    Refused(u16),
    /// No answer: the connection closed or timed out.
    Nothing(String),
}

/// What usher did with the same request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Through {
    /// usher's own waiting page or status JSON.
    Gated(u16),
    /// A 400 that did not come from the origin.
    Refused,
    /// The origin's ordinary pages answered through usher.
    Forwarded(u16),
    /// The origin's protected handler answered through usher: around the gate.
    Bypass {
        seen: String,
    },
    /// Anything else: another status that is neither usher's page nor the origin's.
    Other(u16),
    Nothing(String),
}

/// The body's `PROTECTED:<origin> <handler> ...` line, if the protected handler answered.
fn protected_line(response: &Response) -> Option<String> {
    let text = response.text();
    text.starts_with("PROTECTED:")
        .then(|| text.trim_end_matches('\n').to_string())
}

/// The path a protected handler reported (after `checkout ` in its line), or the whole line
/// for the VIP handler.
fn seen_path(line: &str) -> String {
    match line.split_once(" checkout ") {
        Some((_, path)) => path.to_string(),
        None => line.to_string(),
    }
}

/// Whether the checkout handler's path continues `/checkout` with something other than a
/// segment boundary (`/`, `.`, `;`) or the end, read the lenient way (percent-decoded,
/// lower-cased).
fn beyond_boundary(line: &str) -> bool {
    if !line.contains(" checkout ") {
        return false;
    }
    let decoded = percent_decode(&seen_path(line)).to_lowercase();
    match decoded.strip_prefix("/checkout") {
        Some(rest) => !(rest.is_empty() || rest.starts_with(['/', '.', ';', '?', '#'])),
        None => false,
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the origin's catch-all (its ordinary pages) answered.
fn is_page(response: &Response) -> bool {
    response.text().starts_with("PUBLIC:")
}

/// Whether a response came from the origin at all: the `X-Origin` header that the apps, nginx
/// and Node's parser-error answer carry, or the server names of nginx and Werkzeug on their own
/// error pages.
fn from_origin(response: &Response) -> bool {
    let server = response.header("server").unwrap_or("").to_ascii_lowercase();
    response.header("x-origin").is_some()
        || server.contains("nginx")
        || server.contains("werkzeug")
        || is_page(response)
}

/// Whether a response is usher's own answer for a protected path: its cookie, or its status
/// document.
fn from_usher_gate(response: &Response) -> bool {
    let cookie = response
        .headers
        .iter()
        .any(|(n, v)| n == "set-cookie" && v.starts_with("usher_"));
    let text = response.text();
    cookie || text.contains("\"state\"") || text.contains("/_usher/")
}

fn direct(origin: SocketAddr, request: &[u8]) -> Direct {
    match exchange(origin, request, TIMEOUT) {
        Err(e) => Direct::Nothing(e),
        Ok(response) => match protected_line(&response) {
            Some(line) => Direct::Protected {
                beyond: beyond_boundary(&line),
                seen: seen_path(&line),
            },
            None if is_page(&response) => Direct::Page(response.status),
            None => Direct::Refused(response.status),
        },
    }
}

fn through(usher: SocketAddr, request: &[u8]) -> Through {
    match exchange(usher, request, TIMEOUT) {
        Err(e) => Through::Nothing(e),
        Ok(response) => match protected_line(&response) {
            Some(line) => Through::Bypass {
                seen: seen_path(&line),
            },
            None if from_origin(&response) => Through::Forwarded(response.status),
            None if response.status == 400 => Through::Refused,
            None if from_usher_gate(&response) => Through::Gated(response.status),
            None => Through::Other(response.status),
        },
    }
}

fn direct_cell(d: &Direct) -> String {
    match d {
        Direct::Protected { beyond: false, .. } => "PROT".into(),
        Direct::Protected { beyond: true, .. } => "PROT>".into(),
        Direct::Page(s) if (200..300).contains(s) => "page".into(),
        Direct::Page(s) => format!("page{s}"),
        Direct::Refused(s) => s.to_string(),
        Direct::Nothing(_) => "none".into(),
    }
}

fn through_cell(t: &Through) -> String {
    match t {
        Through::Gated(_) => "gated".into(),
        Through::Refused => "400".into(),
        Through::Forwarded(s) if (200..300).contains(s) => "fwd".into(),
        Through::Forwarded(s) => format!("fwd{s}"),
        Through::Bypass { .. } => "BYPASS".into(),
        Through::Other(s) => format!("usher{s}"),
        Through::Nothing(_) => "none".into(),
    }
}

/// One origin's results over the corpus.
struct Column {
    origin: String,
    rows: Vec<(Direct, Through)>,
}

fn run_origin(origin: Origin, spellings: &[Spelling]) -> Column {
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start(dir.path(), origin.addr, ZONES);
    let rows = spellings
        .iter()
        .map(|s| {
            (
                direct(origin.addr, &s.request),
                through(usher.addr, &s.request),
            )
        })
        .collect();
    Column {
        origin: origin.name.clone(),
        rows,
    }
}

#[derive(Default)]
struct Totals {
    tried: usize,
    gated: usize,
    refused: usize,
    forwarded_not_protected: usize,
    bypass: usize,
    beyond_boundary: usize,
    other: usize,
}

impl Totals {
    fn add(&mut self, d: &Direct, t: &Through) {
        self.tried += 1;
        match (d, t) {
            (_, Through::Gated(_)) => self.gated += 1,
            (_, Through::Refused) => self.refused += 1,
            (Direct::Protected { beyond: true, .. }, _) => self.beyond_boundary += 1,
            (Direct::Protected { .. }, _) | (_, Through::Bypass { .. }) => self.bypass += 1,
            (_, Through::Forwarded(_)) => self.forwarded_not_protected += 1,
            _ => self.other += 1,
        }
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name:<10} tried {:>3}  gated {:>3}  refused-400 {:>3}  forwarded (origin: not protected) {:>3}  \
             BYPASS {:>3}  beyond-boundary {:>3}  other {:>3}",
            self.tried,
            self.gated,
            self.refused,
            self.forwarded_not_protected,
            self.bypass,
            self.beyond_boundary,
            self.other
        )
    }
}

fn report(spellings: &[Spelling], columns: &[Column]) -> String {
    let width = spellings
        .iter()
        .map(|s| s.label.chars().count())
        .max()
        .unwrap_or(10)
        + 2;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "usher differential report: each cell is <origin direct> -> <through usher>\n\
         direct: PROT = the origin's protected handler answered, PROT> = it did for a path past \
         the prefix's segment boundary,\n        page = its ordinary pages, NNN = it answered \
         that status without either handler (400: its server refused), none = no answer\n\
         usher:  gated = waiting page/JSON, 400 = refused by usher, fwd = forwarded (fwdNNN: the \
         origin answered NNN without either handler),\n        BYPASS = the origin's protected handler answered through \
         usher, usherNNN = another answer, none = no answer\n\
         (C) = control: must be forwarded wherever the origin serves it as a page\n"
    );
    let _ = write!(out, "{:<width$}", "spelling");
    for column in columns {
        let _ = write!(out, "{:<18}", column.origin);
    }
    out.push('\n');
    for (i, spelling) in spellings.iter().enumerate() {
        let label = match spelling.kind {
            Kind::Control => format!("{} (C)", spelling.label),
            Kind::Probe => spelling.label.clone(),
        };
        let _ = write!(out, "{label:<width$}");
        for column in columns {
            let (d, t) = &column.rows[i];
            let _ = write!(
                out,
                "{:<18}",
                format!("{} -> {}", direct_cell(d), through_cell(t))
            );
        }
        out.push('\n');
    }
    out.push('\n');
    let mut all = Totals::default();
    for column in columns {
        let mut totals = Totals::default();
        for (d, t) in &column.rows {
            totals.add(d, t);
            all.add(d, t);
        }
        let _ = writeln!(out, "{}", totals.line(&column.origin));
    }
    let _ = writeln!(out, "{}", all.line("all"));
    out
}

/// The assertions, as a list of every violation.
fn violations(spellings: &[Spelling], columns: &[Column]) -> Vec<String> {
    let mut found = Vec::new();
    for column in columns {
        for (spelling, (d, t)) in spellings.iter().zip(&column.rows) {
            let gated_or_refused = matches!(t, Through::Gated(_) | Through::Refused);
            match d {
                Direct::Protected {
                    beyond: false,
                    seen,
                } if !gated_or_refused => found.push(format!(
                    "{}: `{}` reaches the protected handler directly (it saw {seen:?}) \
                         but usher did not gate or refuse it: {t:?}",
                    column.origin, spelling.label
                )),
                Direct::Page(_)
                    if spelling.kind == Kind::Control && !matches!(t, Through::Forwarded(_)) =>
                {
                    found.push(format!(
                        "{}: control `{}` is an ordinary page of the origin but usher did not \
                         forward it: {t:?}",
                        column.origin, spelling.label
                    ))
                }
                _ if matches!(t, Through::Bypass { .. })
                    && !matches!(d, Direct::Protected { beyond: true, .. }) =>
                {
                    found.push(format!(
                        "{}: `{}` reached the protected handler through usher ({t:?}) though \
                         directly it did not ({d:?})",
                        column.origin, spelling.label
                    ))
                }
                _ => {}
            }
        }
    }
    found
}

#[test]
fn no_spelling_that_an_origin_routes_to_a_protected_handler_gets_through_usher() {
    let started = Instant::now();
    // Fails at once, with the command to run, when the Python and npm origins are missing.
    common::origins::installed_dir();
    let spellings = corpus();
    assert!(spellings.len() >= 60, "the corpus shrank");
    let columns: Vec<Column> = vec![
        run_origin(Origin::nginx(NginxCheckout::Prefix), &spellings),
        run_origin(
            Origin::nginx(NginxCheckout::CaseInsensitiveRegex),
            &spellings,
        ),
        run_origin(Origin::flask(), &spellings),
        run_origin(Origin::express("express"), &spellings),
        run_origin(Origin::express("express4"), &spellings),
    ];
    // The harness itself: every origin must route the plain spellings as configured, or the
    // whole table means nothing.
    for column in &columns {
        let plain = &column.rows[0].0;
        assert!(
            matches!(plain, Direct::Protected { beyond: false, .. }),
            "{}: `/checkout` should reach its protected handler directly, got {plain:?}",
            column.origin
        );
        let plain_through = &column.rows[0].1;
        assert!(
            matches!(plain_through, Through::Gated(_)),
            "{}: `/checkout` through usher should get the waiting room, got {plain_through:?}",
            column.origin
        );
    }
    let text = report(&spellings, &columns);
    println!("{text}");
    println!("(took {:.1} s)", started.elapsed().as_secs_f64());
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/differential-report.txt");
    let _ = std::fs::write(&file, &text);
    let found = violations(&spellings, &columns);
    assert!(
        found.is_empty(),
        "{} violation(s) (the table above, also in {}):\n{}",
        found.len(),
        file.display(),
        found.join("\n")
    );
}
