//! The admin API's listener (`[admin] listen`): reads the method, path, `Authorization` header
//! and peer of each request and hands them to [`crate::admin::Admin`].

use crate::admin::{Admin, AdminRequest, MAX_BODY};
use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// Serves the admin API.
pub struct AdminApp {
    admin: Admin,
}

impl AdminApp {
    /// Serves `admin`.
    pub fn new(admin: Admin) -> Self {
        AdminApp { admin }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.as_str().to_string();
        let path = req.uri.path().to_string();
        let authorization = req
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec());
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        // A stranger's body is not read: the API answers 401 without it.
        let body = match self.admin.authorizes(authorization.as_deref()) {
            true => match read_body(session).await {
                Ok(body) => body,
                Err(response) => return response,
            },
            false => Vec::new(),
        };
        let answer = self
            .admin
            .handle(AdminRequest {
                method: &method,
                path: &path,
                authorization: authorization.as_deref(),
                peer,
                body: &body,
            })
            .await;
        let length = http::HeaderValue::from(answer.body.len());
        let mut response = http::Response::new(answer.body);
        *response.status_mut() =
            http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::OK);
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_LENGTH, length);
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        if answer.status == 401 {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"usher\""),
            );
        }
        response
    }
}

/// The request body, at most [`MAX_BODY`] bytes; else the answer to send instead.
async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, http::Response<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_BODY => {
                body.extend_from_slice(&chunk)
            }
            Ok(Some(_)) => return Err(too_large()),
            Ok(None) => return Ok(body),
            Err(_) => {
                return Err(plain(
                    400,
                    b"{\"version\":1,\"error\":\"bad_body\"}".to_vec(),
                ))
            }
        }
    }
}

/// A request body over [`MAX_BODY`]: refused unread.
fn too_large() -> http::Response<Vec<u8>> {
    plain(
        413,
        format!(
            "{{\"version\":1,\"error\":\"too_large\",\"message\":\"at most {MAX_BODY} bytes\"}}"
        )
        .into_bytes(),
    )
}

/// A JSON answer made here, before the API saw the request.
fn plain(status: u16, body: Vec<u8>) -> http::Response<Vec<u8>> {
    let length = http::HeaderValue::from(body.len());
    let mut response = http::Response::new(body);
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_LENGTH, length);
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
