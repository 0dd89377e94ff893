//! The plain-HTTP listener (`[server] redirect_listen`): every request is answered with a
//! `308 Permanent Redirect` to the same host and target over HTTPS (the method and body are
//! kept), or a `400` when the request cannot be read ([`crate::request::redirect`]). It never
//! reaches the room or the origin.

use crate::request::redirect::https_location;
use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// Answers every request with a redirect to HTTPS.
pub struct RedirectApp {
    /// The TLS listener's port (left out of the `Location` when 443).
    https_port: u16,
}

impl RedirectApp {
    /// Redirects to the TLS listener on `https_port`.
    pub fn new(https_port: u16) -> Self {
        RedirectApp { https_port }
    }
}

#[async_trait]
impl ServeHttp for RedirectApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let req = session.req_header();
        let http10 = req.version < http::Version::HTTP_11;
        let mut hosts = req.headers.get_all(http::header::HOST).iter();
        let host = match (hosts.next(), hosts.next()) {
            (Some(host), None) => Some(host.as_bytes()),
            _ => None,
        };
        let location = https_location(req.method.as_str(), host, req.raw_path(), self.https_port)
            .and_then(|l| http::HeaderValue::from_str(&l).ok());
        let (status, body) = match &location {
            Some(_) => (http::StatusCode::PERMANENT_REDIRECT, Vec::new()),
            None => (
                http::StatusCode::BAD_REQUEST,
                b"this request cannot be read; use https\n".to_vec(),
            ),
        };
        let length = http::HeaderValue::from(body.len());
        let mut response = http::Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        if let Some(location) = location {
            headers.insert(http::header::LOCATION, location);
        }
        headers.insert(http::header::CONTENT_LENGTH, length);
        // Pingora's app server keeps even HTTP/1.0 connections open unless told otherwise, and
        // an unreadable request is not worth a second one.
        if http10 || status == http::StatusCode::BAD_REQUEST {
            session.set_keepalive(None);
        }
        // A changed port or host must not be stuck in browsers' caches.
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        response
    }
}
