//! `[events_log]`: the event log's file, its rotation and queue, and its optional webhook.

use super::checker::Checker;
use super::model::{EventsLogConfig, WebhookConfig};
use super::raw::RawEventsLog;
use std::path::Path;

pub(super) fn events_log(c: &mut Checker, raw: &RawEventsLog, base: &Path) -> EventsLogConfig {
    c.unknown_keys("events_log", &raw.extra);
    let path = match raw.path.as_deref() {
        Some(p) if !p.is_empty() => base.join(p),
        _ => {
            c.problem("events_log.path", "is required (the JSON lines file)");
            base.join("events.jsonl")
        }
    };
    let rotate_bytes = c.positive(
        "events_log.rotate_bytes".into(),
        raw.rotate_bytes,
        false,
        EventsLogConfig::DEFAULT_ROTATE_BYTES as i64,
    );
    if u64::from(rotate_bytes) < 4096 {
        c.problem("events_log.rotate_bytes", "must be at least 4096");
    }
    let keep = match raw.keep {
        None => EventsLogConfig::DEFAULT_KEEP,
        Some(k @ 0..=1000) => k as u32,
        Some(_) => {
            c.problem("events_log.keep", "must be 0 to 1000");
            EventsLogConfig::DEFAULT_KEEP
        }
    };
    let queue = c.positive(
        "events_log.queue".into(),
        raw.queue,
        false,
        EventsLogConfig::DEFAULT_QUEUE as i64,
    ) as usize;
    let webhook = raw.webhook.as_ref().map(|hook| {
        let at = "events_log.webhook";
        c.unknown_keys(at, &hook.extra);
        let url = hook.url.clone().unwrap_or_default();
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.contains(char::is_whitespace)
        {
            c.problem(
                format!("{at}.url"),
                "is required: an http:// or https:// URL",
            );
        }
        let secret = c.secret(&format!("{at}.secret"), hook.secret.as_ref(), base);
        if secret.as_ref().is_some_and(|s| s.len() < 16) {
            c.problem(format!("{at}.secret"), "is shorter than 16 characters");
        }
        let batch = c.positive(format!("{at}.batch"), hook.batch, false, 500) as usize;
        let flush_every = c.duration(format!("{at}.flush_every"), &hook.flush_every, "2s");
        if flush_every.is_zero() {
            c.problem(format!("{at}.flush_every"), "must be > 0");
        }
        WebhookConfig {
            url,
            secret: secret.unwrap_or_default(),
            batch,
            flush_every,
        }
    });
    EventsLogConfig {
        path,
        rotate_bytes: u64::from(rotate_bytes),
        keep,
        queue,
        webhook,
    }
}
