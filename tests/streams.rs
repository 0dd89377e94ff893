//! Long-lived connections through usher, against real origins: a WebSocket to a `websockets`
//! echo server that stays silent for 90 s and then still echoes, and a Server-Sent Events stream
//! from Flask whose second event comes 65 s after the first. usher runs with
//! `[upstreams.shop] read_timeout = "5s"`: that bounds the wait for a response's first byte, and
//! must not end a stream or a tunnel that is merely quiet (that is `idle_timeout`, default 1 h).
//!
//! Slow by nature (about 90 s, both tests at once). The silent periods are the only waits, and
//! each is a read with that deadline, so a connection that usher ends early fails the test at
//! once, saying after how long. Needs `scripts/test-origins.sh` (the test fails, saying so,
//! without it).

mod common;

use common::origins::{read_head, Origin};
use common::Usher;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::Message;

/// Short, so that a proxy applying it to quiet connections would fail at once.
const UPSTREAM: &str = "read_timeout = \"5s\"";
/// How long the WebSocket stays silent: past Pingora's 60 s downstream read timeout.
const WEBSOCKET_IDLE: Duration = Duration::from_secs(90);
/// The gap between the two events of the SSE stream: past 60 s too.
const SSE_GAP_SECONDS: u64 = 65;
/// How long an answer that should come at once may take.
const PROMPT: Duration = Duration::from_secs(10);

#[test]
fn a_websocket_through_a_zone_still_echoes_after_90_seconds_of_silence() {
    let origin = Origin::websocket_echo();
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start_with(
        dir.path(),
        origin.addr,
        "",
        UPSTREAM,
        "[zones.ws]\npaths = [\"/ws\"]\ncapacity = 5\nadmit_per_minute = 60\nmode = \"auto\"\n",
    );
    let stream = TcpStream::connect(usher.addr).expect("connect to usher");
    stream.set_read_timeout(Some(PROMPT)).expect("timeout");
    let url = format!("ws://{}/ws", usher.addr);
    let (mut socket, response) = tungstenite::client(url.as_str(), stream)
        .unwrap_or_else(|e| panic!("WebSocket handshake through usher failed: {e}"));
    // A quiet auto zone lets the first visitor in at once, with the access token on the 101.
    let cookie = common::set_cookie_named(response.headers(), "usher_ws");

    let echo = |socket: &mut tungstenite::WebSocket<TcpStream>, text: &str, since: Instant| {
        socket
            .send(Message::text(text))
            .unwrap_or_else(|e| panic!("sending {text:?} failed after {since:.1?}: {e}"));
        match socket.read() {
            Ok(Message::Text(reply)) => reply.as_str().to_string(),
            other => panic!(
                "no echo of {text:?} ({:.1?} into the test): {other:?}",
                since.elapsed()
            ),
        }
    };
    let started = Instant::now();
    assert_eq!(echo(&mut socket, "one", started), "echo:one");

    // The silence: a read that must time out (nothing is sent either way), not end.
    let quiet = Instant::now();
    socket
        .get_ref()
        .set_read_timeout(Some(WEBSOCKET_IDLE))
        .expect("timeout");
    match socket.read() {
        Err(tungstenite::Error::Io(e))
            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!(
            "the WebSocket through usher ended after {:.1} s of silence (it must stay open for \
             {WEBSOCKET_IDLE:?}): {other:?}\nusher's log:\n{}",
            quiet.elapsed().as_secs_f64(),
            usher.log()
        ),
    }
    assert!(quiet.elapsed() >= WEBSOCKET_IDLE - Duration::from_secs(1));
    socket
        .get_ref()
        .set_read_timeout(Some(PROMPT))
        .expect("timeout");
    assert_eq!(echo(&mut socket, "two", started), "echo:two");
    let _ = socket.close(None);

    assert!(
        cookie.is_some(),
        "the 101 through usher carried no usher_ws cookie: {:?}",
        response.headers()
    );
}

/// Reads a Server-Sent Events body (chunked or not) one event at a time.
struct Events<R> {
    reader: R,
    chunked: bool,
    text: String,
}

impl<R: BufRead> Events<R> {
    /// The next event's text (without the blank line that ends it), or why there is none.
    fn next(&mut self) -> Result<String, String> {
        loop {
            if let Some(end) = self.text.find("\n\n") {
                let event = self.text[..end].to_string();
                self.text.drain(..end + 2);
                return Ok(event);
            }
            let bytes = if self.chunked {
                self.chunk()?
            } else {
                let mut buf = vec![0; 4096];
                let n = self
                    .reader
                    .read(&mut buf)
                    .map_err(|e| format!("read: {e}"))?;
                buf.truncate(n);
                buf
            };
            if bytes.is_empty() {
                return Err("the stream ended".into());
            }
            self.text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }

    fn chunk(&mut self) -> Result<Vec<u8>, String> {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| format!("read: {e}"))?;
        if line.is_empty() {
            return Ok(Vec::new());
        }
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| format!("bad chunk size line {line:?}"))?;
        let mut chunk = vec![0; size + 2];
        self.reader
            .read_exact(&mut chunk)
            .map_err(|e| format!("read chunk: {e}"))?;
        chunk.truncate(size);
        Ok(chunk)
    }
}

#[test]
fn an_sse_stream_through_a_zone_delivers_an_event_after_a_65_second_gap() {
    let origin = Origin::flask();
    let dir = tempfile::tempdir().expect("tempdir");
    let usher = Usher::start_with(
        dir.path(),
        origin.addr,
        "",
        UPSTREAM,
        "[zones.feed]\npaths = [\"/feed\"]\ncapacity = 5\nadmit_per_minute = 60\nmode = \"auto\"\n",
    );
    let mut stream = TcpStream::connect(usher.addr).expect("connect to usher");
    stream.set_read_timeout(Some(PROMPT)).expect("timeout");
    let request = format!(
        "GET /feed?gap={SSE_GAP_SECONDS} HTTP/1.1\r\nHost: shop.test\r\n\
         Accept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let head = read_head(&mut reader).unwrap_or_else(|e| panic!("no answer through usher: {e}"));
    assert_eq!(head.status, 200, "{head:?}");
    assert!(
        head.header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream")),
        "not the origin's event stream: {head:?}"
    );
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"));
    let mut events = Events {
        reader,
        chunked,
        text: String::new(),
    };
    assert_eq!(
        events.next().expect("the first event at once"),
        "data: first"
    );

    // The gap: the second event must come, however long the stream is quiet before it.
    let quiet = Instant::now();
    let wait = Duration::from_secs(SSE_GAP_SECONDS) + PROMPT;
    stream.set_read_timeout(Some(wait)).expect("timeout");
    let second = events.next().unwrap_or_else(|e| {
        panic!(
            "no second event through usher: {e} after {:.1} s of a {SSE_GAP_SECONDS} s gap\n\
             usher's log:\n{}",
            quiet.elapsed().as_secs_f64(),
            usher.log()
        )
    });
    assert_eq!(second, "data: second");
    assert!(
        quiet.elapsed() >= Duration::from_secs(SSE_GAP_SECONDS - 1),
        "the gap was not real: {:?}",
        quiet.elapsed()
    );
}
