//! Validation of `[[zones.NAME.events]]`: times (RFC 3339) in order and never overlapping,
//! names unique, and the sale's overrides applied to a copy of the zone.

use super::checker::{Checker, LimitOverrides};
use super::model::{AfterEnd, Event, Mode, ZoneConfig};
use super::raw::RawEvent;
use super::timestamp::parse_rfc3339;
use std::collections::BTreeSet;
use std::sync::Arc;

fn timestamp(c: &mut Checker, path: String, value: &Option<String>) -> Option<u64> {
    let text = value.as_deref()?;
    let parsed = parse_rfc3339(text);
    if parsed.is_none() {
        c.problem(
            path,
            format!(
                "`{text}` is not an RFC 3339 time with an offset, like \"2026-12-01T10:00:00Z\""
            ),
        );
    }
    parsed
}

/// The events of zone `base` (at dotted `path`), sorted by start; `dir` resolves template paths.
pub(super) fn events(
    c: &mut Checker,
    path: &str,
    raw: &[RawEvent],
    base: &ZoneConfig,
    dir: &std::path::Path,
) -> Vec<Event> {
    let mut names = BTreeSet::new();
    let mut out: Vec<(usize, Event)> = Vec::new();
    for (i, e) in raw.iter().enumerate() {
        let p = format!("{path}.events[{i}]");
        c.unknown_keys(&p, &e.extra);
        let name = e.name.clone().unwrap_or_else(|| {
            c.problem(format!("{p}.name"), "is required");
            format!("event-{i}")
        });
        c.plain_name(format!("{p}.name"), &name, "logs and metrics");
        if !names.insert(name.clone()) {
            c.problem(
                format!("{p}.name"),
                format!("another event is called `{name}`"),
            );
        }
        let starts_at = timestamp(c, format!("{p}.starts_at"), &e.starts_at);
        if e.starts_at.is_none() {
            c.problem(format!("{p}.starts_at"), "is required");
        }
        let starts_at_ms = starts_at.unwrap_or(0);
        let prequeue_at_ms =
            timestamp(c, format!("{p}.prequeue_at"), &e.prequeue_at).unwrap_or(starts_at_ms);
        let ends_at_ms = timestamp(c, format!("{p}.ends_at"), &e.ends_at);
        if prequeue_at_ms > starts_at_ms {
            c.problem(format!("{p}.prequeue_at"), "must not be after starts_at");
        }
        if ends_at_ms.is_some_and(|end| end <= starts_at_ms) {
            c.problem(format!("{p}.ends_at"), "must be after starts_at");
        }
        let after_end = match e.after_end.as_deref() {
            None | Some("ended") => AfterEnd::Ended,
            Some("base") => AfterEnd::Base,
            Some(other) => {
                c.problem(
                    format!("{p}.after_end"),
                    format!("`{other}` is not one of: ended, base"),
                );
                AfterEnd::Ended
            }
        };
        let mode = c.mode(format!("{p}.mode"), e.mode.as_deref(), Mode::Auto);
        let overrides = LimitOverrides {
            capacity: e.capacity,
            admit_per_minute: e.admit_per_minute,
            burst: e.burst,
            session_ttl: e.session_ttl.as_deref(),
        };
        let limits = c.limit_overrides(&p, base.limits, &overrides);
        let title = e.title.clone().unwrap_or_else(|| base.title.clone());
        let template = match e.template.as_deref() {
            Some(file) => super::page::template(c, &format!("{p}.template"), Some(file), dir),
            None => base.template.clone(),
        };
        let sale = ZoneConfig {
            title: title.clone(),
            limits,
            mode,
            template,
            events: Vec::new(),
            ..base.clone()
        };
        out.push((
            i,
            Event {
                name,
                title,
                prequeue_at_ms,
                starts_at_ms,
                ends_at_ms,
                shuffle: e.shuffle.unwrap_or(true),
                after_end,
                sale: Arc::new(sale),
            },
        ));
    }
    out.sort_by_key(|(_, e)| e.starts_at_ms);
    for pair in out.windows(2) {
        let ((_, earlier), (i, later)) = (&pair[0], &pair[1]);
        match earlier.ends_at_ms {
            Some(end) if end <= later.prequeue_at_ms => {}
            _ => c.problem(
                format!("{path}.events[{i}]"),
                format!(
                    "overlaps event `{}`: an event's pre-queue must open after the previous event ends",
                    earlier.name
                ),
            ),
        }
    }
    out.into_iter().map(|(_, e)| e).collect()
}
