//! Shared pieces of the integration tests: free ports, the real `usher` binary as a child
//! process, a small keep-alive HTTP/1.1 client, an in-process test origin, a crowd of visitors
//! (`crowd`) and a headless Chromium driven over the DevTools protocol (`browser`).

#![allow(dead_code)]

pub mod browser;
pub mod crowd;
pub mod origins;
pub mod sse;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port the OS just handed out on 127.0.0.1 (bound to port 0, read back, released), for
/// programs that cannot listen on a port they pick and report it (nginx).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An address for a child process to listen on: a loopback address of its own, picked at
/// random from 127.100.0.1 up, and a port the OS just handed out there. A bare free port on
/// 127.0.0.1 can be handed out again to a parallel test before the first child binds it; the
/// child that loses then fails to start while the test, connecting to the other test's
/// listener, takes it for its own (seen once in CI: a trial read another usher's metrics).
pub fn free_addr() -> SocketAddr {
    let [a, b, c]: [u8; 3] = rand::random();
    let ip = std::net::Ipv4Addr::new(127, 100 + a % 155, b, 1 + c % 254);
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback address")
}

/// Polls `ready` until it holds or `timeout` passes.
pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A 1 MiB tmpfs mounted on `dir/data` (created), unmounted when dropped: a disk that fills.
pub struct SmallDisk {
    /// The mount point.
    pub path: PathBuf,
}

impl SmallDisk {
    /// Mounts it, or says why not and returns `None`: `test` is then reported as skipped
    /// (mounting needs root).
    pub fn mount(dir: &Path, test: &str) -> Option<SmallDisk> {
        let path = dir.join("data");
        std::fs::create_dir(&path).expect("mkdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED {test}: cannot mount a tmpfs (not root?)");
            return None;
        }
        Some(SmallDisk { path })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// A running `usher run` child process, killed when dropped.
pub struct Usher {
    pub child: Child,
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
    pub dir: PathBuf,
    pub config: PathBuf,
    log: PathBuf,
}

/// Writes a signing key into `dir` (once) and returns its file name.
pub fn ensure_key(dir: &Path) -> &'static str {
    let path = dir.join("key.pem");
    if !path.exists() {
        std::fs::write(&path, usher::token::keys::generate_ed25519().0).expect("write key");
    }
    "key.pem"
}

impl Usher {
    /// Starts usher in `dir` with `zones` (TOML for `[zones.*]` and anything else) in front of
    /// `origin`. Listen and metrics ports are fresh.
    pub fn start(dir: &Path, origin: SocketAddr, zones: &str) -> Usher {
        Usher::start_with(dir, origin, "", "", zones)
    }

    /// [`Usher::start`] with extra lines for `[server]` and `[upstreams.shop]` (such as
    /// `trusted_proxies = [...]` or `read_timeout = "1s"`).
    pub fn start_with(
        dir: &Path,
        origin: SocketAddr,
        server: &str,
        upstream: &str,
        zones: &str,
    ) -> Usher {
        Usher::start_with_addrs(dir, &[&origin.to_string()], server, upstream, zones)
    }

    /// [`Usher::start_with`] in front of several origin addresses (or host names).
    pub fn start_with_addrs(
        dir: &Path,
        origins: &[&str],
        server: &str,
        upstream: &str,
        zones: &str,
    ) -> Usher {
        let origins: Vec<String> = origins.iter().map(|o| format!("\"{o}\"")).collect();
        let origins = origins.join(", ");
        let addr = free_addr();
        let metrics = free_addr();
        let key = ensure_key(dir);
        // A test that sets its own grace period keeps it.
        let grace = if server.contains("grace_period") {
            ""
        } else {
            "grace_period = \"1s\"\n"
        };
        let text = format!(
            "[server]\nlisten = \"{addr}\"\n{grace}{server}\n\
             [upstreams.shop]\naddrs = [{origins}]\n{upstream}\n\
             [tokens]\nsigning_key = {{ kid = \"test\", file = \"{key}\" }}\n\
             [metrics]\nlisten = \"{metrics}\"\n{zones}\n"
        );
        let config = dir.join("usher.toml");
        std::fs::write(&config, text).expect("write config");
        Usher::spawn(dir, config, addr, metrics)
    }

    /// Starts usher again on the same config, addresses and data.
    pub fn restart(&self) -> Usher {
        Usher::spawn(&self.dir, self.config.clone(), self.addr, self.metrics)
    }

    fn spawn(dir: &Path, config: PathBuf, addr: SocketAddr, metrics: SocketAddr) -> Usher {
        let log = dir.join(format!("usher-{}.log", free_addr().port()));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_usher"))
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn usher");
        let mut usher = Usher {
            child,
            addr,
            metrics,
            dir: dir.to_path_buf(),
            config,
            log,
        };
        wait_until("usher to listen", Duration::from_secs(30), || {
            if let Ok(Some(status)) = usher.child.try_wait() {
                panic!("usher exited with {status}:\n{}", usher.log());
            }
            TcpStream::connect(addr).is_ok() && TcpStream::connect(metrics).is_ok()
        });
        usher
    }

    /// What usher logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (`"TERM"`, `"QUIT"`, `"HUP"`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits up to `limit` for the process to exit; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A new connection to usher.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// The value of metric line `name{labels}`, or 0.
    pub fn metric(&self, series: &str) -> f64 {
        let body = Client::connect(self.metrics).get("/metrics", &[]).text();
        body.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

impl Drop for Usher {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// `name=value` of the Set-Cookie header, if any.
    pub fn cookie(&self) -> Option<String> {
        self.header("set-cookie")
            .and_then(|c| c.split(';').next())
            .map(str::to_string)
    }
}

/// A blocking keep-alive HTTP/1.1 client: the async one on a small runtime of its own.
pub struct Client {
    runtime: tokio::runtime::Runtime,
    inner: AsyncClient,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("client runtime");
        let inner = runtime
            .block_on(AsyncClient::connect(addr))
            .expect("connect");
        Client { runtime, inner }
    }

    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Response {
        let request = self.inner.get_with(path, headers);
        self.runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(30), request).await })
            .expect("answer within 30 s")
            .expect("a response")
    }
}

/// The claims of a token, decoded without verification (the test trusts usher's output).
/// The `Set-Cookie` value among `headers` (a WebSocket handshake's 101) whose cookie is `name`.
pub fn set_cookie_named(headers: &http::HeaderMap, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&prefix))
        .map(str::to_string)
}

pub fn claims_of(cookie: &str) -> serde_json::Value {
    let token = cookie.split_once('=').map_or(cookie, |(_, t)| t);
    usher::token::decode_unverified(token).expect("readable token")
}

/// Starts an in-process origin on a fresh port, serving `handler` on its own runtime thread.
pub fn start_origin<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(usher::demo::origin::OriginRequest) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = usher::demo::origin::OriginResponse> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
    let addr = listener.local_addr().expect("origin addr");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("origin runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            usher::demo::origin::serve(listener, handler).await;
        });
    });
    addr
}

/// An async keep-alive client, for tests with thousands of concurrent visitors.
pub struct AsyncClient {
    reader: tokio::io::BufReader<tokio::net::TcpStream>,
}

impl AsyncClient {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<AsyncClient> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        Self::on(stream)
    }

    /// A client connecting from loopback address `source` (any of 127.0.0.0/8): another
    /// client as far as usher's per-client limits can tell.
    pub async fn connect_from(
        addr: SocketAddr,
        source: std::net::IpAddr,
    ) -> std::io::Result<AsyncClient> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        Self::on(socket.connect(addr).await?)
    }

    /// The `n`th of many clients' loopback addresses: 127.1.0.1, 127.1.0.2, ...
    pub fn address(n: u32) -> std::net::IpAddr {
        let n = n + 1;
        std::net::IpAddr::from([127, 1 + (n >> 16) as u8, (n >> 8) as u8, n as u8])
    }

    fn on(stream: tokio::net::TcpStream) -> std::io::Result<AsyncClient> {
        stream.set_nodelay(true)?;
        Ok(AsyncClient {
            reader: tokio::io::BufReader::new(stream),
        })
    }

    /// GET `path`, with usher's cookie if there is one.
    pub async fn get(&mut self, path: &str, cookie: Option<&str>) -> std::io::Result<Response> {
        match cookie {
            Some(cookie) => self.get_with(path, &[("Cookie", cookie)]).await,
            None => self.get_with(path, &[]).await,
        }
    }

    /// GET `path` with extra headers (Content-Length bodies only, which is all usher and the
    /// test origin send).
    pub async fn get_with(
        &mut self,
        path: &str,
        extra: &[(&str, &str)],
    ) -> std::io::Result<Response> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: shop.test\r\n");
        for (name, value) in extra {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        self.reader.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        self.reader.read_line(&mut line).await?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if self.reader.read_line(&mut h).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).await?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// `token` with one character of its signature changed (not the last, whose spare bits may
/// not count), so it decodes but no longer verifies.
pub fn tamper_signature(token: &str) -> String {
    let at = token.len() - 10;
    let swapped = if &token[at..at + 1] == "A" { "B" } else { "A" };
    format!("{}{swapped}{}", &token[..at], &token[at + 1..])
}

/// A token service over the key `Usher::start` wrote into `dir`, to mint tokens in tests.
pub fn tokens_for(dir: &Path) -> usher::token::Tokens {
    let key = dir.join(ensure_key(dir));
    let text = format!(
        "[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n[tokens]\nsigning_key = {{ kid = \"test\", file = \"{}\" }}\n",
        key.display()
    );
    let config = usher::config::parse(&text, dir).expect("config");
    usher::token::Tokens::new(
        usher::token::Keyring::load(&config.tokens).expect("keys"),
        "usher",
        10,
    )
}
