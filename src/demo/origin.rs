//! A small HTTP/1.1 origin server with keep-alive: enough to stand in for a shop behind usher in
//! the demo and the tests. Requests are parsed leniently; bodies are read by `Content-Length`.

use std::future::Future;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A request as the origin sees it.
#[derive(Debug, Clone)]
pub struct OriginRequest {
    /// Method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (by `Content-Length`; empty without one).
    pub body: Vec<u8>,
}

impl OriginRequest {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response from the origin.
#[derive(Debug, Clone)]
pub struct OriginResponse {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl OriginResponse {
    /// A 200 HTML page.
    pub fn html(body: String) -> Self {
        OriginResponse {
            status: 200,
            headers: vec![("content-type".into(), "text/html; charset=utf-8".into())],
            body: body.into_bytes(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Serves `handler` on `listener` until the task is dropped.
pub async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(OriginRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = OriginResponse> + Send,
{
    let handler = Arc::new(handler);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let _ = connection(stream, handler.as_ref()).await;
        });
    }
}

async fn connection<F, Fut>(stream: TcpStream, handler: &F) -> std::io::Result<()>
where
    F: Fn(OriginRequest) -> Fut,
    Fut: Future<Output = OriginResponse>,
{
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or("/").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).await? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let mut request = OriginRequest {
            method,
            path,
            headers,
            body: Vec::new(),
        };
        let body_len: usize = request
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if body_len > 0 {
            let mut body = vec![0u8; body_len.min(1 << 20)];
            reader.read_exact(&mut body).await?;
            request.body = body;
        }
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let response = handler(request).await;
        let mut out = format!(
            "HTTP/1.1 {} OK\r\ncontent-length: {}\r\n",
            response.status,
            response.body.len()
        );
        for (name, value) in &response.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let stream = reader.get_mut();
        stream.write_all(out.as_bytes()).await?;
        stream.write_all(&response.body).await?;
        if close {
            return Ok(());
        }
    }
}
