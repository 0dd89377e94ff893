//! The production edge, visitors' side, through the real binary: TLS with certificates chosen
//! by SNI and swapped by a reload, HTTP/2 (curl from apt), the plain-HTTP listener that
//! redirects to HTTPS, and the PROXY protocol (v1 and v2) in front of plain and TLS listeners.
//! Certificates are made by the test (rcgen).

mod common;

use common::{free_addr, start_origin, wait_until, Usher};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use usher::demo::origin::OriginResponse;

const WAIT: Duration = Duration::from_secs(15);

/// A self-signed certificate for `names`, written to `dir/<stem>.pem` and `dir/<stem>.key`.
fn write_cert(dir: &Path, stem: &str, names: &[&str]) -> String {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let made = rcgen::generate_simple_self_signed(names).expect("rcgen");
    std::fs::write(dir.join(format!("{stem}.pem")), made.cert.pem()).expect("write cert");
    std::fs::write(
        dir.join(format!("{stem}.key")),
        made.signing_key.serialize_pem(),
    )
    .expect("write key");
    made.cert.pem()
}

/// An origin that answers with the forwarding headers it was sent.
fn echo_origin() -> SocketAddr {
    start_origin(|req| async move {
        let seen = |name: &str| req.header(name).unwrap_or("-").to_string();
        let body = format!(
            "xff={} proto={} cookie={}",
            seen("x-forwarded-for"),
            seen("x-forwarded-proto"),
            seen("cookie")
        );
        OriginResponse::html(body).with_header("x-origin", "1")
    })
}

/// What curl got: status line and headers (`-D -`), then the body.
struct Curl {
    code: bool,
    head: String,
    body: String,
}

impl Curl {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// `curl` against `usher` as `host`, trusting `ca` (a PEM file in `dir`), with `args`.
fn curl(usher: &Usher, host: &str, ca: &Path, path: &str, args: &[&str]) -> Curl {
    let port = usher.addr.port();
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "--max-time", "10", "--resolve"])
        .arg(format!("{host}:{port}:{}", usher.addr.ip()))
        .arg("--cacert")
        .arg(ca)
        .args(args)
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .expect("run curl (apt install curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Curl {
        code: out.status.success(),
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// The cookie pair (`name=value`) of a `Set-Cookie` header.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or("").to_string()
}

fn tls_server(extra: &str) -> String {
    format!("tls = [{{ cert = \"a.pem\", key = \"a.key\" }}, {{ cert = \"b.pem\", key = \"b.key\" }}]\n{extra}")
}

const ZONE: &str =
    "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 1\nadmit_per_minute = 600\n";

#[test]
fn sni_chooses_the_certificate_and_a_reload_swaps_it_without_cutting_a_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cert(dir.path(), "a", &["shop.test"]);
    write_cert(dir.path(), "b", &["*.other.test"]);
    // `/slow` is answered 1.5 s after it arrives; `arrived` says it did.
    let arrived = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = arrived.clone();
    let slow = start_origin(move |req| {
        let seen = seen.clone();
        async move {
            if req.path.starts_with("/slow") {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            OriginResponse::html("ok".into()).with_header("x-origin", "1")
        }
    });
    let usher = Usher::start_with(dir.path(), slow, &tls_server(""), "", ZONE);
    let (a, b) = (dir.path().join("a.pem"), dir.path().join("b.pem"));

    assert!(
        curl(&usher, "shop.test", &a, "/", &[]).code,
        "a for shop.test"
    );
    // Each certificate's expiry is a metric (rcgen's default: the year 4096).
    let expiry = usher.metric(&format!(
        "usher_tls_certificate_expiry_timestamp_seconds{{file=\"{}\"}}",
        a.display()
    ));
    assert!(expiry > 4.0e10, "{expiry}");
    assert!(
        curl(&usher, "www.other.test", &b, "/", &[]).code,
        "b by SNI"
    );
    assert!(
        !curl(&usher, "www.other.test", &a, "/", &[]).code,
        "not a for other"
    );
    // A name no certificate is for gets the first one (which then fails verification).
    let unknown = curl(&usher, "unknown.test", &a, "/", &["--insecure"]);
    assert!(unknown.code && unknown.header("x-origin").is_some());
    // TLS 1.2 and 1.3 only.
    assert!(!curl(&usher, "shop.test", &a, "/", &["--tls-max", "1.1"]).code);
    assert!(curl(&usher, "shop.test", &a, "/", &["--tls-max", "1.2"]).code);

    // A slow request is under way while the certificate is renewed in place and reloaded.
    let (host_a, usher_addr) = (a.clone(), usher.addr);
    let in_flight = std::thread::spawn(move || {
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--resolve"])
            .arg(format!(
                "shop.test:{}:{}",
                usher_addr.port(),
                usher_addr.ip()
            ))
            .arg("--cacert")
            .arg(&host_a)
            .arg(format!("https://shop.test:{}/slow", usher_addr.port()))
            .output()
            .expect("curl")
    });
    wait_until("the slow request at the origin", WAIT, || {
        arrived.load(std::sync::atomic::Ordering::SeqCst)
    });
    let old = std::fs::read(&a).expect("old cert");
    write_cert(dir.path(), "a", &["shop.test"]);
    usher.signal("HUP");
    wait_until("the reload", WAIT, || {
        usher.metric("usher_config_reloads_total{result=\"ok\"}") >= 1.0
    });
    let out = in_flight.join().expect("in flight");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "the open request finished"
    );
    assert!(
        curl(&usher, "shop.test", &a, "/", &[]).code,
        "the new certificate"
    );
    let old_ca = dir.path().join("old.pem");
    std::fs::write(&old_ca, old).expect("write old");
    assert!(
        !curl(&usher, "shop.test", &old_ca, "/", &[]).code,
        "not the old one"
    );

    // A broken certificate file: the reload is refused and the one in force stays.
    std::fs::write(dir.path().join("b.key"), "not a key").expect("break key");
    usher.signal("HUP");
    wait_until("the refused reload", WAIT, || {
        usher.metric("usher_config_reloads_total{result=\"invalid\"}") >= 1.0
    });
    assert!(
        curl(&usher, "www.other.test", &b, "/", &[]).code,
        "b still served"
    );
    assert!(usher.log().contains("server.tls[1]"), "{}", usher.log());
}

#[test]
fn http2_serves_the_gate_the_waiting_page_the_cookie_and_the_event_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = write_cert(dir.path(), "a", &["shop.test"]);
    write_cert(dir.path(), "b", &["*.other.test"]);
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca).expect("ca");
    let usher = Usher::start_with(dir.path(), echo_origin(), &tls_server(""), "", ZONE);
    let h2 = ["--http2"];

    // The first visitor goes straight in over HTTP/2, with a Secure cookie.
    let first = curl(&usher, "shop.test", &ca_path, "/checkout", &h2);
    assert!(first.head.starts_with("HTTP/2 200"), "{}", first.head);
    assert!(first.header("x-origin").is_some(), "forwarded");
    assert!(first.body.contains("proto=https"), "{}", first.body);
    let set = first.header("set-cookie").expect("access cookie");
    assert!(set.contains("Secure"), "{set}");
    let access = pair(&set);

    // The zone is full: the next visitor gets the waiting page, not the origin.
    let second = curl(&usher, "shop.test", &ca_path, "/checkout", &h2);
    assert!(second.head.starts_with("HTTP/2 "), "{}", second.head);
    assert!(second.header("x-origin").is_none(), "{}", second.head);
    assert!(second.body.contains("<html"), "the waiting page");
    let waiting = pair(&second.header("set-cookie").expect("visitor cookie"));

    // HTTP/2 may send each cookie in a field of its own: the access token is still found, and
    // the origin gets the other cookies joined without it.
    let split = curl(
        &usher,
        "shop.test",
        &ca_path,
        "/checkout",
        &[
            "--http2",
            "-H",
            "cookie: theme=dark",
            "-H",
            &format!("cookie: {access}"),
        ],
    );
    assert!(split.header("x-origin").is_some(), "{}", split.head);
    assert!(split.body.contains("cookie=theme=dark"), "{}", split.body);
    assert!(!split.body.contains(&access), "usher's cookie stripped");

    // The waiting visitor's event stream works over HTTP/2: its first event arrives.
    let events = curl(
        &usher,
        "shop.test",
        &ca_path,
        "/_usher/events",
        &[
            "--http2",
            "-N",
            "--max-time",
            "3",
            "-H",
            &format!("cookie: {waiting}"),
        ],
    );
    assert!(events.head.starts_with("HTTP/2 200"), "{}", events.head);
    assert!(events.body.contains("data:"), "{}", events.body);
}

/// A rustls client trusting `ca` (PEM) only, offering `alpn`.
fn tls_client(ca: &str, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).expect("ca"))
        .expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

#[test]
fn a_websocket_works_over_tls_as_over_plain_http() {
    // Browsers open WebSockets on an HTTP/1.1 connection (ALPN http/1.1); the listener offers
    // both, and the upgrade through a zone behaves as on a plain listener.
    let origin = common::origins::Origin::websocket_echo();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = write_cert(dir.path(), "a", &["shop.test"]);
    write_cert(dir.path(), "b", &["*.other.test"]);
    let zone = "[zones.ws]\npaths = [\"/ws\"]\ncapacity = 5\nadmit_per_minute = 60\n";
    let usher = Usher::start_with(dir.path(), origin.addr, &tls_server(""), "", zone);
    let tcp = TcpStream::connect(usher.addr).expect("connect");
    tcp.set_read_timeout(Some(WAIT)).expect("timeout");
    let name = "shop.test".try_into().expect("name");
    let config = tls_client(&ca, &[b"h2", b"http/1.1"]);
    let conn = rustls::ClientConnection::new(config.clone(), name).expect("client");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.flush().expect("handshake");
    // Offered both, a client gets HTTP/2; WebSocket clients offer only HTTP/1.1.
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    drop(tls);

    let tcp = TcpStream::connect(usher.addr).expect("connect");
    tcp.set_read_timeout(Some(WAIT)).expect("timeout");
    let name = "shop.test".try_into().expect("name");
    let conn =
        rustls::ClientConnection::new(tls_client(&ca, &[b"http/1.1"]), name).expect("client");
    let tls = rustls::StreamOwned::new(conn, tcp);
    let (mut socket, response) = tungstenite::client("ws://shop.test/ws", tls)
        .unwrap_or_else(|e| panic!("WebSocket handshake over TLS failed: {e}"));
    let cookie = common::set_cookie_named(response.headers(), "usher_ws")
        .expect("the access token on the 101");
    assert!(cookie.contains("Secure"), "{cookie}");
    socket
        .send(tungstenite::Message::text("hello over tls"))
        .expect("send");
    match socket.read().expect("echo") {
        tungstenite::Message::Text(reply) => assert_eq!(reply.as_str(), "echo:hello over tls"),
        other => panic!("not an echo: {other:?}"),
    }
}

#[test]
fn plain_http_is_redirected_to_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cert(dir.path(), "a", &["shop.test"]);
    write_cert(dir.path(), "b", &["*.other.test"]);
    let redirect = free_addr();
    let server = tls_server(&format!("redirect_listen = \"{redirect}\"\n"));
    let usher = Usher::start_with(dir.path(), echo_origin(), &server, "", ZONE);
    let ask = |request: &str| {
        let mut stream = TcpStream::connect(redirect).expect("connect");
        stream.write_all(request.as_bytes()).expect("send");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    let answer = ask("POST /checkout?x=1 HTTP/1.1\r\nHost: Shop.Test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 308"), "{answer}");
    let port = usher.addr.port();
    assert!(
        answer.contains(&format!(
            "\r\nlocation: https://shop.test:{port}/checkout?x=1\r\n"
        )) || answer.contains(&format!(
            "\r\nLocation: https://shop.test:{port}/checkout?x=1\r\n"
        )),
        "{answer}"
    );
    let bad = ask("GET / HTTP/1.1\r\nHost: evil.test/x\r\nConnection: close\r\n\r\n");
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let bad = ask("GET / HTTP/1.0\r\n\r\n");
    assert!(
        bad.starts_with("HTTP/1.1 400") || bad.starts_with("HTTP/1.0 400"),
        "{bad}"
    );
}

/// A PROXY v2 header for a TCP over IPv4 connection from `source`.
fn v2_header(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (source, destination) else {
        panic!("IPv4 only");
    };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&s.ip().octets());
    h.extend_from_slice(&d.ip().octets());
    h.extend_from_slice(&s.port().to_be_bytes());
    h.extend_from_slice(&d.port().to_be_bytes());
    h
}

/// Sends `prefix` then `request` on a new connection; what came back.
fn exchange(addr: SocketAddr, prefix: &[u8], request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    // The header and the request in one write, as a balancer sends them.
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(request.as_bytes());
    stream.write_all(&bytes).expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// usher on a plain listener expecting the PROXY protocol, in front of [`echo_origin`].
fn behind_a_balancer(dir: &Path) -> Usher {
    let server = "proxy_protocol = true\n";
    Usher::start_with(dir, echo_origin(), server, "", ZONE)
}

const GET: &str = "GET / HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n";

#[test]
fn the_proxy_protocol_names_the_client_on_a_plain_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = behind_a_balancer(dir.path());
    // The readiness check's own connections sent no header.
    let refused_at_start = usher.metric("usher_proxy_protocol_refused_total");

    let v1 = exchange(
        usher.addr,
        b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n",
        GET,
    );
    assert!(v1.contains("xff=203.0.113.7 "), "{v1}");
    let v6 = exchange(
        usher.addr,
        b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n",
        GET,
    );
    assert!(v6.contains("xff=2001:db8::7 "), "{v6}");
    let source: SocketAddr = "198.51.100.9:40000".parse().expect("addr");
    let v2 = exchange(usher.addr, &v2_header(source, usher.addr), GET);
    assert!(v2.contains("xff=198.51.100.9 "), "{v2}");
    // LOCAL (the balancer's own health check): the peer is the client.
    let mut local = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0, 0]);
    let local = exchange(usher.addr, &local, GET);
    assert!(local.contains("xff=127.0.0.1 "), "{local}");

    // Without a header, or with a forged one, nothing is answered or forwarded.
    for prefix in [
        &b""[..],
        b"PROXY TCP4 1.2.3.4\r\n",
        b"PROXY TCP4 999.0.0.1 10.0.0.1 1 2\r\n",
    ] {
        let answer = exchange(usher.addr, prefix, GET);
        assert!(answer.is_empty(), "{prefix:?}: {answer}");
    }
    wait_until("the refusals counted", WAIT, || {
        usher.metric("usher_proxy_protocol_refused_total") >= refused_at_start + 3.0
    });
}

#[test]
fn the_proxy_protocol_comes_before_the_tls_handshake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = write_cert(dir.path(), "a", &["shop.test"]);
    write_cert(dir.path(), "b", &["*.other.test"]);
    let server = tls_server("proxy_protocol = true\n");
    let usher = Usher::start_with(dir.path(), echo_origin(), &server, "", ZONE);

    let config = tls_client(&ca, &[]);
    let https = |prefix: &[u8]| -> Option<String> {
        let mut tcp = TcpStream::connect(usher.addr).expect("connect");
        tcp.set_read_timeout(Some(WAIT)).expect("timeout");
        tcp.write_all(prefix).expect("header");
        let name = "shop.test".try_into().expect("name");
        let conn = rustls::ClientConnection::new(config.clone(), name).expect("client");
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(GET.as_bytes()).ok()?;
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer);
        Some(String::from_utf8_lossy(&answer).into_owned()).filter(|a| !a.is_empty())
    };
    let source: SocketAddr = "198.51.100.23:40000".parse().expect("addr");
    let answer = https(&v2_header(source, usher.addr)).expect("an answer");
    assert!(answer.contains("xff=198.51.100.23 "), "{answer}");
    assert!(answer.contains("proto=https"), "{answer}");
    let answer = https(b"PROXY TCP4 203.0.113.8 10.0.0.1 51000 443\r\n").expect("an answer");
    assert!(answer.contains("xff=203.0.113.8 "), "{answer}");
    assert_eq!(https(b""), None, "no header, no handshake");
}

// The shop's side: upstreams by name, over TLS, health-checked and balanced.

/// `python3 -m http.server` on `addr`, serving `dir` (a real origin that can be killed and
/// started again on the same address).
struct PyOrigin {
    child: std::process::Child,
}

impl PyOrigin {
    fn start(addr: SocketAddr, dir: &Path) -> PyOrigin {
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind"])
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg("--directory")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        wait_until("python origin", WAIT, || TcpStream::connect(addr).is_ok());
        PyOrigin { child }
    }
}

impl Drop for PyOrigin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one visitor got.
enum Visit {
    /// A whole page from origin `a` or `b`.
    Site(char),
    /// A `200` whose body ended early, after this many bytes in all.
    Cut(usize),
    /// No answer, or another one.
    Failed(String),
}

/// One visitor's `GET /` on a connection of its own.
fn visit(addr: SocketAddr) -> Visit {
    let mut stream = match TcpStream::connect(addr) {
        Ok(stream) => stream,
        Err(e) => return Visit::Failed(format!("connect: {e}")),
    };
    let _ = stream.set_read_timeout(Some(WAIT));
    let request = b"GET / HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n";
    if let Err(e) = stream.write_all(request) {
        return Visit::Failed(format!("send: {e}"));
    }
    let mut bytes = Vec::new();
    let read = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    match () {
        _ if text.contains("site a") => Visit::Site('a'),
        _ if text.contains("site b") => Visit::Site('b'),
        // The origin's own status line (its HTTP/1.0 is passed on): a header without its body.
        _ if text.starts_with("HTTP/1.0 200 ") || text.starts_with("HTTP/1.1 200 ") => {
            Visit::Cut(bytes.len())
        }
        _ => Visit::Failed(format!("{read:?}: {text}")),
    }
}

/// A directory for a python origin: `/health` and `/` answer, `/` with `name`.
fn site(root: &Path, name: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("site");
    std::fs::write(dir.join("health"), "ok").expect("health");
    std::fs::write(dir.join("index.html"), format!("site {name}\n")).expect("index");
    dir
}

#[test]
fn an_upstream_by_name_and_an_https_upstream_verified_against_its_own_roots() {
    // `localhost` is resolved at start (to 127.0.0.1, and ::1 where it has one: a connection
    // refused there is retried on the other address).
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = echo_origin();
    let by_name = format!("localhost:{}", origin.port());
    let usher = Usher::start_with_addrs(dir.path(), &[&by_name], "", "", ZONE);
    for _ in 0..4 {
        let answer = usher.client().get("/", &[]);
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert!(answer.header("x-origin").is_some());
    }

    // An HTTPS origin (nginx), its certificate signed by nobody the system trusts.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = write_cert(dir.path(), "origin", &["shop.internal"]);
    std::fs::write(dir.path().join("ca.pem"), &ca).expect("ca");
    let nginx = common::origins::Origin::nginx_tls(
        &dir.path().join("origin.pem"),
        &dir.path().join("origin.key"),
    );
    let tls = "tls = true\nsni = \"shop.internal\"\nca_file = \"ca.pem\"\nhost_header = \"shop.internal\"\n";
    let usher = Usher::start_with(dir.path(), nginx.addr, "", tls, ZONE);
    let answer = usher.client().get("/page", &[]);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(
        answer
            .text()
            .contains("host=shop.internal sni=shop.internal uri=/page"),
        "{}",
        answer.text()
    );
    drop(usher);

    // Roots that did not sign it: no connection, usher's 502, never the page.
    write_cert(dir.path(), "stranger", &["shop.internal"]);
    let strange = tls.replace("ca.pem", "stranger.pem");
    let usher = Usher::start_with(dir.path(), nginx.addr, "", &strange, ZONE);
    let answer = usher.client().get("/page", &[]);
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(!answer.text().contains("TLS:nginx"));
}

#[test]
fn a_dead_origin_address_is_taken_out_and_put_back_and_no_visitor_sees_an_error() {
    dead_origin_under_traffic(
        "health_check = { path = \"/health\", interval = \"200ms\", timeout = \"150ms\", \
         fall = 1, rise = 1 }\n",
    );
}

#[test]
fn a_tcp_health_check_takes_a_dead_address_out_too() {
    dead_origin_under_traffic(
        "health_check = { tcp = true, interval = \"200ms\", timeout = \"150ms\", fall = 1, \
         rise = 1 }\nbalance = \"least_connections\"\n",
    );
}

/// Two python origins behind `upstream` (its health check and balance); visitors keep coming
/// while one is killed and started again.
fn dead_origin_under_traffic(upstream: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (free_addr(), free_addr());
    let (site_a, site_b) = (site(dir.path(), "a"), site(dir.path(), "b"));
    let mut origin_a = Some(PyOrigin::start(a, &site_a));
    let _origin_b = PyOrigin::start(b, &site_b);
    let (a_text, b_text) = (a.to_string(), b.to_string());
    let usher = Usher::start_with_addrs(dir.path(), &[&a_text, &b_text], "", upstream, ZONE);
    let up = |addr: SocketAddr| {
        usher.metric(&format!(
            "usher_origin_up{{addr=\"{addr}\",upstream=\"shop\"}}"
        ))
    };
    wait_until("both addresses up", WAIT, || up(a) == 1.0 && up(b) == 1.0);

    // Visitors keep coming while one address dies and comes back.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let counts = Arc::new(std::sync::Mutex::new((
        0u32,
        0u32,
        Vec::<String>::new(),
        Vec::<usize>::new(),
    )));
    let visitors = {
        let (stop, counts, addr) = (stop.clone(), counts.clone(), usher.addr);
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let answer = visit(addr);
                let mut c = counts.lock().expect("lock");
                match answer {
                    Visit::Site('a') => c.0 += 1,
                    Visit::Site(_) => c.1 += 1,
                    Visit::Cut(bytes) => c.3.push(bytes),
                    Visit::Failed(what) => c.2.push(what),
                }
            }
        })
    };
    let seen = |counts: &std::sync::Mutex<(u32, u32, Vec<String>, Vec<usize>)>| {
        let c = counts.lock().expect("lock");
        (c.0, c.1)
    };
    wait_until("visitors on both", WAIT, || {
        let (on_a, on_b) = seen(&counts);
        on_a > 5 && on_b > 5
    });
    drop(origin_a.take()); // killed
    wait_until("a taken out", WAIT, || up(a) == 0.0);
    let (on_a, on_b) = seen(&counts);
    wait_until("more visitors, all on b", WAIT, || {
        seen(&counts).1 > on_b + 20
    });
    assert_eq!(seen(&counts).0, on_a, "nobody was sent to the dead address");
    // Before the check caught it, requests sent to it were retried on the other address.
    let retries = usher.metric("usher_upstream_retries_total{upstream=\"shop\"}");
    assert!(retries >= 1.0, "retries: {retries}");

    let _origin_a = PyOrigin::start(a, &site_a);
    wait_until("a put back", WAIT, || up(a) == 1.0);
    wait_until("visitors on a again", WAIT, || seen(&counts).0 > on_a + 5);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    visitors.join().expect("visitors");
    let (errors, cuts) = {
        let c = counts.lock().expect("lock");
        (c.2.clone(), c.3.clone())
    };
    assert!(errors.is_empty(), "visitors saw errors: {errors:?}");
    // SIGKILL can land between the origin's header and its body: that one response is cut
    // after usher passed the header on (as behind any proxy). Never more than the one in flight.
    assert!(cuts.len() <= 1, "responses cut: {cuts:?}");
    // Per address: its attempts, its failures (a refused connection) and its response times.
    let series = |name: &str, addr: SocketAddr, extra: &str| {
        usher.metric(&format!(
            "{name}{{addr=\"{addr}\"{extra},upstream=\"shop\"}}"
        ))
    };
    assert!(series("usher_origin_requests_total", a, "") > 5.0);
    assert!(series("usher_origin_requests_total", b, "") > 5.0);
    assert!(series("usher_origin_errors_total", a, ",kind=\"connect\"") >= 1.0);
    assert!(series("usher_origin_response_seconds_count", b, "") > 5.0);
}

/// HAProxy from apt in TCP mode in front of usher: one frontend sending PROXY v1
/// (`send-proxy`), one v2 (`send-proxy-v2`), as a balancer in front of a fleet would.
struct HaProxy {
    child: std::process::Child,
    v1: SocketAddr,
    v2: SocketAddr,
}

impl HaProxy {
    fn start(dir: &Path, usher: SocketAddr) -> HaProxy {
        let (v1, v2) = (free_addr(), free_addr());
        let config = format!(
            "global\n  maxconn 256\n\
             defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\
             frontend v1\n  bind {v1}\n  default_backend usher_v1\n\
             frontend v2\n  bind {v2}\n  default_backend usher_v2\n\
             backend usher_v1\n  server usher {usher} send-proxy\n\
             backend usher_v2\n  server usher {usher} send-proxy-v2\n"
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).expect("haproxy.cfg");
        let log = std::fs::File::create(dir.join("haproxy.log")).expect("log");
        // Debian puts it in /usr/sbin, which a user's PATH may lack.
        let binary = match Path::new("/usr/sbin/haproxy").is_file() {
            true => "/usr/sbin/haproxy",
            false => "haproxy",
        };
        let child = Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("haproxy (apt install haproxy)");
        let mut haproxy = HaProxy { child, v1, v2 };
        wait_until("haproxy", WAIT, || {
            if let Ok(Some(status)) = haproxy.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default();
                panic!("haproxy exited with {status}:\n{log}");
            }
            TcpStream::connect(v1).is_ok() && TcpStream::connect(v2).is_ok()
        });
        haproxy
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl` from the loopback address `from`, through `via` to `host`'s `path` (`https` or
/// `http`); the body.
fn curl_from(from: &str, scheme: &str, via: SocketAddr, ca: Option<&Path>, path: &str) -> String {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--max-time", "10", "--interface", from, "--resolve"])
        .arg(format!("shop.test:{}:{}", via.port(), via.ip()));
    if let Some(ca) = ca {
        command.arg("--cacert").arg(ca);
    }
    let out = command
        .arg(format!("{scheme}://shop.test:{}{path}", via.port()))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn haproxy_in_front_passes_the_visitors_address_with_proxy_protocol_v1_and_v2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = behind_a_balancer(dir.path());
    let haproxy = HaProxy::start(dir.path(), usher.addr);
    // The visitors come from addresses of their own; usher's peer is HAProxy's 127.0.0.1.
    let v1 = curl_from("127.0.0.5", "http", haproxy.v1, None, "/");
    assert!(v1.contains("xff=127.0.0.5 "), "{v1}");
    let v2 = curl_from("127.0.0.6", "http", haproxy.v2, None, "/");
    assert!(v2.contains("xff=127.0.0.6 "), "{v2}");
    drop(haproxy);
    drop(usher);

    // TLS passes through HAProxy untouched; the header comes before the handshake.
    let dir = tempfile::tempdir().expect("tempdir");
    write_cert(dir.path(), "a", &["shop.test"]);
    write_cert(dir.path(), "b", &["*.other.test"]);
    let server = tls_server("proxy_protocol = true\n");
    let usher = Usher::start_with(dir.path(), echo_origin(), &server, "", ZONE);
    let haproxy = HaProxy::start(dir.path(), usher.addr);
    let ca = dir.path().join("a.pem");
    let v2 = curl_from("127.0.0.7", "https", haproxy.v2, Some(&ca), "/");
    assert!(v2.contains("xff=127.0.0.7 proto=https"), "{v2}");
    let v1 = curl_from("127.0.0.8", "https", haproxy.v1, Some(&ca), "/");
    assert!(v1.contains("xff=127.0.0.8 proto=https"), "{v1}");
}
