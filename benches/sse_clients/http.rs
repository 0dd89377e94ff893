//! Just enough HTTP/1.1 over a raw tokio socket for the load client: one request at a time on a
//! keep-alive connection, the response read by `Content-Length` (usher's own replies) or chunked
//! (what Pingora may forward from the origin), and usher's cookie picked out of `Set-Cookie`.
//! No HTTP client crate: nothing new to build, and nothing hidden between the client and usher.

use anyhow::{bail, Context};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The host every request names; the bench zone applies to every host.
pub const HOST: &str = "shop.test";

/// One keep-alive connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// What the client needs from a response.
pub struct Response {
    pub status: u16,
    /// `name=value` of the first usher cookie set, if any.
    pub cookie: Option<String>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await.context("connect")?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// `GET path`, asking for JSON so usher's waiting replies stay small.
    pub async fn get(&mut self, path: &str, cookie: Option<&str>) -> anyhow::Result<Response> {
        let cookie = cookie
            .map(|c| format!("Cookie: {c}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAccept: application/json\r\n{cookie}\r\n"
        );
        self.stream.write_all(request.as_bytes()).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> anyhow::Result<Response> {
        let head_len = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_len]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .context("status line")?;
        let (mut length, mut chunked, mut cookie) = (None, false, None);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "set-cookie" if cookie.is_none() => {
                    cookie = value.split(';').next().map(str::to_owned);
                }
                _ => {}
            }
        }
        let body_len = loop {
            let body = &self.buf[head_len..];
            let complete = match (length, chunked) {
                (Some(n), _) => (body.len() >= n).then_some(n),
                (None, true) => chunked_len(body),
                (None, false) => Some(0),
            };
            if let Some(n) = complete {
                break n;
            }
            self.fill().await?;
        };
        self.buf.drain(..head_len + body_len);
        Ok(Response { status, cookie })
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            bail!("connection closed mid-response");
        }
        Ok(())
    }
}

/// Where `needle` starts in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The length of a complete chunked body at the start of `body`, or `None` while incomplete.
fn chunked_len(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line_end = at + find(&body[at..], b"\r\n")?;
        let size = std::str::from_utf8(&body[at..line_end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // No trailers from usher or the demo shop: the empty line ends the body.
            return (body.len() >= at + 2).then_some(at + 2);
        }
        if body.len() < at + size + 2 {
            return None;
        }
        at += size + 2;
    }
}
