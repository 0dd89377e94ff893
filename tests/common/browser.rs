//! A real headless Chromium for end-to-end tests, driven over the Chrome DevTools Protocol (CDP):
//! launch it on a DevTools port the OS picks, attach to its page over a WebSocket, and send
//! commands one at a time. Just enough protocol for "open a URL, read the DOM, take a
//! screenshot"; events are read and dropped.

use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// How long one CDP command may take before the test fails (a hung browser must not hang CI).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

/// A headless Chromium child process with a throwaway profile, killed when dropped.
pub struct Chromium {
    child: Child,
    /// DevTools HTTP and WebSocket port, read back from the profile directory.
    port: u16,
    log: PathBuf,
    // Last field, so it is removed after `drop` has killed the browser that writes into it.
    _dir: tempfile::TempDir,
}

impl Chromium {
    /// Starts `chromium` from PATH and waits for its DevTools port. Panics with the install
    /// command when there is no Chromium: the browser test must never pass by skipping.
    pub fn launch() -> Chromium {
        let dir = tempfile::tempdir().expect("tempdir");
        let profile = dir.path().join("profile");
        let log = dir.path().join("chromium.log");
        let log_file = std::fs::File::create(&log).expect("chromium log file");
        // --no-sandbox: CI runs as root, where Chromium refuses to start sandboxed.
        // --remote-debugging-port=0: the OS picks the port; Chromium writes it into the profile.
        let spawned = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "the browser test needs Chromium, and `chromium` is not on PATH: install it with \
                 `apt-get install -y chromium` (`make setup-test` and `.ci/run` do)"
            ),
            Err(e) => panic!("cannot start chromium: {e}"),
        };
        let mut chromium = Chromium {
            child,
            port: 0,
            log,
            _dir: dir,
        };
        // First line of DevToolsActivePort is the port; the file appears once it listens.
        let port_file = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        chromium.port = loop {
            let port = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|text| text.lines().next()?.trim().parse().ok());
            if let Some(port) = port {
                break port;
            }
            if let Ok(Some(status)) = chromium.child.try_wait() {
                panic!("chromium exited with {status}:\n{}", chromium.log());
            }
            assert!(
                Instant::now() < deadline,
                "chromium wrote no DevTools port within 30 s:\n{}",
                chromium.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        chromium
    }

    /// The running browser's product and version from DevTools, e.g. `Chrome/156.0.8078.108`.
    pub fn version(&self) -> String {
        let version: Value =
            serde_json::from_str(&self.http_get("/json/version")).expect("/json/version is JSON");
        version["Browser"].as_str().unwrap_or("unknown").to_string()
    }

    /// Attaches to the tab Chromium opened at launch (`about:blank`).
    pub fn page(&self) -> Page {
        let deadline = Instant::now() + Duration::from_secs(10);
        let url = loop {
            // Besides the tab, /json/list has Chromium's own UI pages (type `browser_ui`).
            let targets: Value =
                serde_json::from_str(&self.http_get("/json/list")).expect("/json/list is JSON");
            let page = targets.as_array().into_iter().flatten().find_map(|t| {
                (t["type"] == "page")
                    .then(|| t["webSocketDebuggerUrl"].as_str())
                    .flatten()
            });
            if let Some(url) = page {
                break url.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "chromium lists no page target: {targets}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to DevTools");
        stream.set_nodelay(true).expect("nodelay");
        // Bounds the handshake; `Page::call` sets its own timeout for every read after it.
        stream
            .set_read_timeout(Some(COMMAND_TIMEOUT))
            .expect("read timeout");
        let (socket, _) =
            tungstenite::client(url.as_str(), stream).expect("DevTools WebSocket handshake");
        Page { socket, next_id: 0 }
    }

    /// What Chromium wrote to stderr, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A GET on the DevTools HTTP endpoint. Hand-rolled because it must send `Host: 127.0.0.1`
    /// (DevTools refuses other hosts). Chromium keeps the connection open whatever the request
    /// says, so the body is read by its `Content-Length`.
    fn http_get(&self, path: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to DevTools");
        stream
            .set_read_timeout(Some(COMMAND_TIMEOUT))
            .expect("read timeout");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        )
        .expect("send DevTools request");
        let mut response = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let text = String::from_utf8_lossy(&response);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or_else(|| {
                        panic!("DevTools sent no Content-Length for {path}: {head}")
                    });
                if body.len() >= length {
                    return body.to_string();
                }
            }
            let n = stream
                .read(&mut chunk)
                .unwrap_or_else(|e| panic!("DevTools HTTP response to {path}: {e}"));
            assert!(
                n > 0,
                "DevTools closed the connection mid-response to {path}"
            );
            response.extend_from_slice(&chunk[..n]);
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // Chromium's helper processes (zygote, renderer, GPU, network) exit when the browser
        // process dies, so killing the one child is enough.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CDP session with one tab.
pub struct Page {
    socket: WebSocket<TcpStream>,
    next_id: u64,
}

impl Page {
    /// Sends `method` and waits for its answer, skipping the events in between. `Err` carries
    /// the protocol's error message (a script that threw, a context destroyed by a navigation);
    /// a timeout or a broken connection panics, since no test can go on after either.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({ "id": id, "method": method, "params": params });
        self.socket
            .send(Message::text(command.to_string()))
            .unwrap_or_else(|e| panic!("CDP {method}: send failed: {e}"));
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "CDP {method}: no answer within {COMMAND_TIMEOUT:?}"
            );
            // A read timeout bounds each wait; tungstenite resumes cleanly after one.
            self.socket
                .get_ref()
                .set_read_timeout(Some(left))
                .expect("read timeout");
            let text = match self.socket.read() {
                Ok(Message::Text(text)) => text,
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    continue
                }
                Err(e) => panic!("CDP {method}: connection failed: {e}"),
            };
            let message: Value = serde_json::from_str(text.as_str())
                .unwrap_or_else(|e| panic!("CDP sent non-JSON ({e}): {}", text.as_str()));
            if message["id"] != id {
                continue;
            }
            if let Some(error) = message.get("error") {
                return Err(format!("{method}: {error}"));
            }
            return Ok(message["result"].clone());
        }
    }

    /// Evaluates `expression` in the page and returns its value (JSON-serialisable results only).
    pub fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        )?;
        if let Some(exception) = result.get("exceptionDetails") {
            return Err(format!("{expression}: threw {exception}"));
        }
        Ok(result["result"]["value"].clone())
    }

    /// Loads `url` in the tab (returns once the navigation has committed, not when it loaded).
    pub fn navigate(&mut self, url: &str) {
        let result = self
            .call("Page.navigate", json!({ "url": url }))
            .unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
        if let Some(error) = result.get("errorText") {
            panic!("navigate to {url}: {error}");
        }
    }

    /// Emulates a screen `width` × `height` CSS pixels; `mobile` also turns on the mobile
    /// viewport (`<meta name=viewport>` is honoured, overlay scrollbars).
    pub fn set_screen(&mut self, width: u32, height: u32, scale: f64, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": width,
                "height": height,
                "deviceScaleFactor": scale,
                "mobile": mobile,
            }),
        )
        .unwrap_or_else(|e| panic!("emulate a {width}x{height} screen: {e}"));
    }

    /// A PNG of the visible viewport.
    pub fn screenshot(&mut self) -> Result<Vec<u8>, String> {
        use base64::Engine;
        let result = self.call("Page.captureScreenshot", json!({ "format": "png" }))?;
        let data = result["data"].as_str().ok_or("screenshot without data")?;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| format!("screenshot is not base64: {e}"))
    }
}
