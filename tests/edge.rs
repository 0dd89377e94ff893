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
    let slow = start_origin(|req| async move {
        if req.path.starts_with("/slow") {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        OriginResponse::html("ok".into()).with_header("x-origin", "1")
    });
    let usher = Usher::start_with(dir.path(), slow, &tls_server(""), "", ZONE);
    let (a, b) = (dir.path().join("a.pem"), dir.path().join("b.pem"));

    assert!(
        curl(&usher, "shop.test", &a, "/", &[]).code,
        "a for shop.test"
    );
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
    std::thread::sleep(Duration::from_millis(300));
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

const GET: &str = "GET / HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n";

#[test]
fn the_proxy_protocol_names_the_client_on_a_plain_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start_with(
        dir.path(),
        echo_origin(),
        "proxy_protocol = true\n",
        "",
        ZONE,
    );
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

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).expect("ca"))
        .expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Arc::new(config);
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
