//! A raw Server-Sent Events connection to `/_usher/events`, for tests that watch what an open
//! page is told.

use super::Usher;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A raw SSE connection: the events arrive as they are written (chunked), so the test reads
/// bytes and picks out `data:` lines.
pub struct Sse {
    stream: TcpStream,
    buffer: String,
}

impl Sse {
    /// Opens `/_usher/events` with `cookie`; the stream and the response head.
    pub fn open(usher: &Usher, cookie: &str, last_event_id: Option<&str>) -> (Sse, String) {
        let mut stream = TcpStream::connect(usher.addr).expect("connect");
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "GET /_usher/events HTTP/1.1\r\nHost: shop.test\r\nAccept: text/event-stream\r\n\
             Cookie: {cookie}\r\n{resume}\r\n"
        )
        .expect("send");
        let mut sse = Sse {
            stream,
            buffer: String::new(),
        };
        let head = sse.read_until("\r\n\r\n", Duration::from_secs(10));
        (sse, head)
    }

    /// Reads until `marker` appears; returns everything up to and including it.
    pub fn read_until(&mut self, marker: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find(marker) {
                let rest = self.buffer.split_off(end + marker.len());
                return std::mem::replace(&mut self.buffer, rest);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {marker:?} within {within:?}: {:?}",
                self.buffer
            );
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("stream closed before {marker:?}: {:?}", self.buffer),
                Ok(n) => self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n])),
                Err(e) => panic!("reading the stream: {e}"),
            }
        }
    }

    /// The next status event.
    pub fn status(&mut self, within: Duration) -> serde_json::Value {
        let text = self.read_until("data: ", within);
        assert!(text.contains("event: status"), "{text:?}");
        let json = self.read_until("\n", within);
        serde_json::from_str(json.trim()).expect("status JSON")
    }

    /// Whether the server ends the stream (the final zero-length chunk) within `within`.
    pub fn ends(&mut self, within: Duration) -> bool {
        self.read_until("0\r\n\r\n", within);
        true
    }
}
