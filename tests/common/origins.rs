//! Real origin servers as child processes, for the tests that put usher in front of the kind of
//! origin a shop really runs (`tests/differential.rs`, `tests/streams.rs`): nginx from the
//! system, and Flask (Werkzeug's server), Express 5, Express 4 and a `websockets` echo server
//! from `target/test-origins/`, which `scripts/test-origins.sh` installs. The programs and the
//! nginx config are in `tests/origins/`. Each origin listens on a port the OS picked, is polled
//! until it answers, and is killed by PID when dropped.
//!
//! Also here: a raw-TCP HTTP/1.x client that writes exact bytes (most spellings of a path
//! cannot be sent by a normal client) and reads one response.

use super::{free_port, Response};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `tests/origins/`: the origin programs and the nginx config template.
pub fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/origins")
}

/// `target/test-origins/`, where `scripts/test-origins.sh` installs the Python venv and the npm
/// packages. Panics with the command to run when something is missing: these tests must never
/// pass by skipping an origin.
pub fn installed_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-origins");
    let wanted = [
        "venv/bin/python",
        "node_modules/express/package.json",
        "node_modules/express4/package.json",
    ];
    for file in wanted {
        assert!(
            dir.join(file).exists(),
            "the real test origins are not installed ({} is missing): run \
             `scripts/test-origins.sh` (it installs Flask, websockets and Express into \
             target/test-origins/; `make test` and `.ci/run` run it)",
            dir.join(file).display()
        );
    }
    dir
}

/// The nginx binary: `nginx` on PATH or Debian's `/usr/sbin/nginx`. Panics with the install
/// command when there is none.
fn nginx_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("nginx"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    on_path
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!(
                "these tests need nginx and there is none: install it with \
                 `apt-get install -y nginx` (`scripts/test-origins.sh` does when run as root)"
            )
        })
}

/// How the nginx origin's checkout location matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NginxCheckout {
    /// `location /checkout`: the usual prefix location (case-sensitive, no segment boundary).
    Prefix,
    /// `location ~* ^/checkout`: the case-insensitive regex some shops use.
    CaseInsensitiveRegex,
}

/// A running origin server, killed by PID when dropped.
pub struct Origin {
    /// Its name in reports: `nginx`, `flask`, `express`, ...
    pub name: String,
    pub addr: SocketAddr,
    child: Child,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl Origin {
    /// nginx with `tests/origins/nginx.conf.template`, in a temporary prefix.
    pub fn nginx(checkout: NginxCheckout) -> Origin {
        let (name, location) = match checkout {
            NginxCheckout::Prefix => ("nginx", "/checkout"),
            NginxCheckout::CaseInsensitiveRegex => ("nginx-ci", "~* ^/checkout"),
        };
        Origin::nginx_with(name, "nginx.conf.template", &[("@CHECKOUT@", location)])
    }

    /// nginx serving HTTPS with `cert` and `key` (`tests/origins/nginx-tls.conf.template`); it
    /// answers with the Host and SNI name it got.
    pub fn nginx_tls(cert: &Path, key: &Path) -> Origin {
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        Origin::nginx_with(
            "nginx-tls",
            "nginx-tls.conf.template",
            &[("@CERT@", &cert), ("@KEY@", &key)],
        )
    }

    /// nginx from the template `file` with `@PREFIX@`, `@PORT@` and `fill` filled in.
    fn nginx_with(name: &str, file: &str, fill: &[(&str, &str)]) -> Origin {
        let template = std::fs::read_to_string(programs_dir().join(file))
            .unwrap_or_else(|e| panic!("read tests/origins/{file}: {e}"));
        let binary = nginx_binary();
        // nginx cannot report a port it picked, so it gets a free one; should another process
        // take it first, nginx exits and the next try has a new one.
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("nginx prefix");
            let port = free_port();
            let conf = dir.path().join("nginx.conf");
            let mut text = template
                .replace("@PREFIX@", &dir.path().display().to_string())
                .replace("@PORT@", &port.to_string());
            for (from, to) in fill {
                text = text.replace(from, to);
            }
            std::fs::write(&conf, text).expect("write nginx.conf");
            let log = dir.path().join("stderr.log");
            let mut command = Command::new(&binary);
            command
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(dir.path().join("error.log"));
            let child = spawn(command, &log);
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
            let mut origin = Origin {
                name: name.to_string(),
                addr,
                child,
                log,
                dir,
            };
            if origin.wait_until_answering() {
                return origin;
            }
            last = origin.log();
        }
        panic!("{name} did not start in three tries:\n{last}");
    }

    /// The Flask app, on Werkzeug's threaded server.
    pub fn flask() -> Origin {
        let installed = installed_dir();
        let mut command = Command::new(installed.join("venv/bin/python"));
        command.arg(programs_dir().join("flask_app.py"));
        Origin::announced("flask", command)
    }

    /// The Express app on Express 5 (`module = "express"`) or 4 (`"express4"`).
    pub fn express(module: &str) -> Origin {
        let installed = installed_dir();
        let mut command = Command::new("node");
        command
            .arg(programs_dir().join("express_app.js"))
            .args([module, module])
            .env("NODE_PATH", installed.join("node_modules"));
        Origin::announced(module, command)
    }

    /// The `websockets` echo server.
    pub fn websocket_echo() -> Origin {
        let installed = installed_dir();
        let mut command = Command::new(installed.join("venv/bin/python"));
        command.arg(programs_dir().join("ws_echo.py"));
        Origin::announced("websockets", command)
    }

    /// Starts a program that binds port 0 and prints `PORT <n>` once it listens.
    fn announced(name: &str, mut command: Command) -> Origin {
        let dir = tempfile::tempdir().expect("origin dir");
        let log = dir.path().join("stderr.log");
        command.stdout(Stdio::piped());
        let mut child = spawn(command, &log);
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Reads the announcement, then drains stdout so the program never blocks on it.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let port = line
                    .strip_prefix("PORT ")
                    .and_then(|p| p.trim().parse::<u16>().ok());
                if let (Some(port), Some(tx)) = (port, tx.take()) {
                    let _ = tx.send(port);
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("{name} did not announce its port within 30 s:\n{log}");
            }
        };
        let mut origin = Origin {
            name: name.to_string(),
            addr: format!("127.0.0.1:{port}").parse().expect("addr"),
            child,
            log,
            dir,
        };
        assert!(
            origin.wait_until_answering(),
            "{name} announced port {port} but did not answer:\n{}",
            origin.log()
        );
        origin
    }

    /// Polls until the origin answers an HTTP request (any status), for at most 30 s. False if
    /// the process exited first.
    fn wait_until_answering(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let probe = b"GET / HTTP/1.0\r\n\r\n";
            if exchange(self.addr, probe, Duration::from_secs(2)).is_ok() {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer within 30 s:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the origin wrote to stderr (and for nginx, its error log).
    pub fn log(&self) -> String {
        let mut text = std::fs::read_to_string(&self.log).unwrap_or_default();
        if let Ok(error_log) = std::fs::read_to_string(self.dir.path().join("error.log")) {
            text.push_str(&error_log);
        }
        text
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(mut command: Command, log: &Path) -> Child {
    let log_file = std::fs::File::create(log).expect("origin log");
    command
        .stdin(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {:?}: {e} (`scripts/test-origins.sh` installs what the test \
                 origins need)",
                command.get_program()
            )
        })
}

/// A `GET path HTTP/1.1` request for `shop.test` with extra header lines, as bytes.
pub fn get(path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: shop.test\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// Writes `request` exactly as given on a new connection to `addr` and reads one response
/// (skipping any 1xx): a body delimited by `Content-Length`, chunked, or by the connection's
/// close. `Err` says what happened instead (closed without an answer, timed out, unreadable).
pub fn exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> Result<Response, String> {
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    exchange_on(stream, request, timeout)
}

/// [`exchange`] from the loopback address `source` (any of 127.0.0.0/8): another client, as
/// far as usher's per-client limits can tell.
pub fn exchange_from(
    source: std::net::IpAddr,
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> Result<Response, String> {
    let stream = connect_from(source, addr).map_err(|e| format!("connect from {source}: {e}"))?;
    exchange_on(stream, request, timeout)
}

/// A blocking connection to `addr` from `source` (bound before connecting).
pub fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        socket.connect(addr).await
    })?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

fn exchange_on(
    mut stream: TcpStream,
    request: &[u8],
    timeout: Duration,
) -> Result<Response, String> {
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("socket: {e}"))?;
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    let mut reader = BufReader::new(stream);
    loop {
        let response = read_head(&mut reader)?;
        if (100..200).contains(&response.status) {
            continue;
        }
        return read_body(&mut reader, response);
    }
}

/// Reads a status line and headers.
pub fn read_head(reader: &mut impl BufRead) -> Result<Response, String> {
    let line = read_line(reader)?;
    if line.is_empty() {
        return Err("closed without a response".into());
    }
    let status = line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP status line: {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    Ok(Response {
        status,
        headers,
        body: Vec::new(),
    })
}

fn read_line(reader: &mut impl BufRead) -> Result<String, String> {
    let mut line = Vec::new();
    reader
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("read: {e}"))?;
    Ok(String::from_utf8_lossy(&line).into_owned())
}

pub fn read_body(reader: &mut impl BufRead, mut response: Response) -> Result<Response, String> {
    if response.status == 204 || response.status == 304 {
        return Ok(response);
    }
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let length = response
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok());
    let mut body = Vec::new();
    if chunked {
        loop {
            let size_line = read_line(reader)?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| format!("bad chunk size line {size_line:?}"))?;
            if size == 0 {
                // Trailers, then the empty line.
                while !read_line(reader)?.trim().is_empty() {}
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader
                .read_exact(&mut chunk)
                .map_err(|e| format!("read chunk: {e}"))?;
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader
            .read_exact(&mut body)
            .map_err(|e| format!("read body: {e}"))?;
    } else {
        reader
            .read_to_end(&mut body)
            .map_err(|e| format!("read body: {e}"))?;
    }
    response.body = body;
    Ok(response)
}
