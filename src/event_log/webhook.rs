//! The event log's webhook: lines batched (up to `batch`, or whatever came within
//! `flush_every`), POSTed as `application/x-ndjson` with `Usher-Signature: sha256=<hex>`, the
//! HMAC-SHA256 of the body under the shared secret, so the receiver can tell the batch came from
//! usher and was not changed. A failed POST is retried with backoff (0.5 s, 1 s, 2 s); a batch
//! that still fails is dropped and counted. Lines that arrive faster than they can be sent are
//! dropped and counted too: the writer never waits for the webhook.

use crate::config::WebhookConfig;
use crate::metrics::Metrics;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// Tries per batch.
const TRIES: u32 = 4;
/// The first retry's wait; doubled for each next one.
const BACKOFF: Duration = Duration::from_millis(500);
/// How long one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// The webhook thread's queue.
pub struct Sender {
    lines: SyncSender<String>,
    metrics: Metrics,
}

impl Sender {
    /// Starts the thread that sends to `config`'s URL.
    pub fn start(config: WebhookConfig, metrics: Metrics) -> Sender {
        let (lines, queue) = sync_channel(config.batch * 10);
        let thread_metrics = metrics.clone();
        let spawned = std::thread::Builder::new()
            .name("usher-events-webhook".into())
            .spawn(move || run(config, queue, thread_metrics));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the event log's webhook thread");
        }
        Sender { lines, metrics }
    }

    /// Queues a line for the webhook; dropped (counted) when the webhook is behind.
    pub fn send(&self, line: String) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.lines.try_send(line)
        {
            self.metrics
                .events_dropped
                .with_label_values(&["webhook_behind"])
                .inc();
        }
    }
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn run(config: WebhookConfig, queue: Receiver<String>, metrics: Metrics) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(POST_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let mut batch: Vec<String> = Vec::with_capacity(config.batch);
    // When the open batch got its first line; `None` while there is no batch.
    let mut opened: Option<Instant> = None;
    loop {
        let received = match wait(opened, config.flush_every) {
            None => queue.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(left) => queue.recv_timeout(left),
        };
        let closed = match received {
            Ok(line) => {
                opened.get_or_insert_with(Instant::now);
                batch.push(line);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let due =
            batch.len() >= config.batch || wait(opened, config.flush_every) == Some(Duration::ZERO);
        if !batch.is_empty() && (due || closed) {
            post(&agent, &config, &batch, &metrics);
            batch.clear();
            opened = None;
        }
        if closed {
            return;
        }
    }
}

/// How long to wait for the next line: until the open batch (opened at `opened`) is due, or
/// for good when there is none. (An idle webhook used to wait zero seconds over and over.)
pub(super) fn wait(opened: Option<Instant>, flush_every: Duration) -> Option<Duration> {
    opened.map(|at| flush_every.saturating_sub(at.elapsed()))
}

/// POSTs one batch, with retries; counts it as sent or dropped.
fn post(agent: &ureq::Agent, config: &WebhookConfig, batch: &[String], metrics: &Metrics) {
    let mut body = batch.join("\n");
    body.push('\n');
    let signed = signature(config.secret.as_bytes(), body.as_bytes());
    let mut wait = BACKOFF;
    for attempt in 1..=TRIES {
        let answer = agent
            .post(&config.url)
            .header("content-type", "application/x-ndjson")
            .header("usher-signature", &signed)
            .send(body.as_bytes());
        let failure = match answer {
            Ok(response) if response.status().is_success() => {
                metrics.events_sent.inc_by(batch.len() as u64);
                return;
            }
            Ok(response) => format!("answered {}", response.status()),
            Err(e) => e.to_string(),
        };
        tracing::warn!(url = %config.url, attempt, error = %failure, "event log webhook failed");
        if attempt < TRIES {
            std::thread::sleep(wait);
            wait *= 2;
        }
    }
    metrics
        .events_dropped
        .with_label_values(&["webhook"])
        .inc_by(batch.len() as u64);
}
