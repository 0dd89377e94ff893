//! The `/metrics` listener: serves the owned registry in Prometheus text format.

use crate::metrics::Metrics;
use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// Answers every request on the metrics listener with the registry.
pub struct MetricsApp {
    metrics: Metrics,
}

impl MetricsApp {
    /// Serves `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        MetricsApp { metrics }
    }
}

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, _session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let body = self.metrics.render();
        let length = http::HeaderValue::from(body.len());
        let mut response = http::Response::new(body);
        response
            .headers_mut()
            .insert(http::header::CONTENT_LENGTH, length);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        response
    }
}
