//! The checker every section is read with: it collects problems with their dotted paths, and
//! reads the value kinds that recur (durations, addresses, hosts, counts, modes, policies) with
//! the same rules and messages everywhere.

use super::model::*;
use super::raw::Extra;
use super::{parse_duration, Problem};
use crate::request::host;
use std::net::SocketAddr;
use std::time::Duration;

/// The limits a scheduled sale (or another override) may set over a zone's own.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct LimitOverrides<'a> {
    pub capacity: Option<i64>,
    pub admit_per_minute: Option<i64>,
    pub burst: Option<i64>,
    pub session_ttl: Option<&'a str>,
}

/// Collects problems while reading values with defaults.
pub(super) struct Checker {
    /// Every problem found so far.
    pub(super) problems: Vec<Problem>,
}

impl Checker {
    pub(super) fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(super) fn unknown_keys(&mut self, path: &str, extra: &Extra) {
        for key in extra.keys() {
            let full = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            self.problem(full, "unknown key");
        }
    }

    pub(super) fn duration(
        &mut self,
        path: String,
        value: &Option<String>,
        default: &str,
    ) -> Duration {
        let text = value.as_deref().unwrap_or(default);
        match parse_duration(text) {
            Ok(d) => d,
            Err(message) => {
                self.problem(path, message);
                Duration::from_secs(1)
            }
        }
    }

    pub(super) fn addr(&mut self, path: String, text: &str) -> Option<SocketAddr> {
        match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.problem(
                    path,
                    format!("`{text}` is not an ip:port address, like \"127.0.0.1:8080\""),
                );
                None
            }
        }
    }

    /// A host name in its canonical form (lower case, no port or trailing dot).
    pub(super) fn host(&mut self, path: String, text: &str) -> Option<String> {
        match host::canonical(text.as_bytes()) {
            Ok(host) => Some(host.into_owned()),
            Err(e) => {
                self.problem(path, format!("`{text}` is not a host name: {e}"));
                None
            }
        }
    }

    pub(super) fn positive(
        &mut self,
        path: String,
        value: Option<i64>,
        required: bool,
        default: i64,
    ) -> u32 {
        match value {
            None if required => {
                self.problem(path, "is required");
                1
            }
            None => default.max(1) as u32,
            Some(v) if v <= 0 => {
                self.problem(path, "must be > 0");
                1
            }
            Some(v) if v > u32::MAX as i64 => {
                self.problem(path, "is too large");
                1
            }
            Some(v) => v as u32,
        }
    }
}

impl Checker {
    /// Checks that `name` (at `path`) is a plain name: it appears in `where_` (cookies, logs,
    /// metric labels), so only a-z, 0-9, `_` and `-`, at most 64 characters.
    pub(super) fn plain_name(&mut self, path: impl Into<String>, name: &str, where_: &str) {
        if !is_plain_name(name) {
            self.problem(
                path,
                format!("names use only a-z, 0-9, '_' and '-' (they appear in {where_})"),
            );
        }
    }

    /// Limits that override `base` (a scheduled sale's, and the same rules for any other
    /// override): each value given is checked like the zone's own; a new `admit_per_minute`
    /// without a `burst` brings a second's worth of burst with it.
    pub(super) fn limit_overrides(
        &mut self,
        path: &str,
        base: crate::admission::Limits,
        overrides: &LimitOverrides<'_>,
    ) -> crate::admission::Limits {
        let mut limits = base;
        if let Some(capacity) = overrides.capacity {
            limits.capacity = self.positive(format!("{path}.capacity"), Some(capacity), false, 1);
        }
        if let Some(rate) = overrides.admit_per_minute {
            limits.admit_per_minute =
                self.positive(format!("{path}.admit_per_minute"), Some(rate), false, 1);
            limits.burst = limits.admit_per_minute.div_ceil(60);
        }
        if let Some(burst) = overrides.burst {
            limits.burst = self.positive(format!("{path}.burst"), Some(burst), false, 1);
        }
        if let Some(ttl) = overrides.session_ttl {
            limits.session_ttl =
                self.duration(format!("{path}.session_ttl"), &Some(ttl.to_string()), "10m");
            if limits.session_ttl < Duration::from_secs(1) {
                self.problem(format!("{path}.session_ttl"), "must be at least 1s");
            }
        }
        limits
    }

    /// A secret from `{ env = "VAR" }` or `{ file = "path" }` (relative to `dir`), read now, so
    /// a missing one stops `usher check` and the start. Never inline.
    pub(super) fn secret(
        &mut self,
        path: &str,
        raw: Option<&super::raw::RawSecret>,
        dir: &std::path::Path,
    ) -> Option<String> {
        let Some(raw) = raw else {
            self.problem(
                path,
                "is required: { env = \"VAR\" } or { file = \"path\" }",
            );
            return None;
        };
        self.unknown_keys(path, &raw.extra);
        let read = match (&raw.env, &raw.file) {
            (Some(var), None) => std::env::var(var)
                .map_err(|_| format!("the environment variable `{var}` is not set")),
            (None, Some(file)) => std::fs::read_to_string(dir.join(file))
                .map_err(|e| format!("cannot read `{file}`: {e}")),
            _ => Err("set either env or file (secrets are never inline)".to_string()),
        };
        match read.map(|s| s.trim().to_string()) {
            Ok(secret) if !secret.is_empty() => Some(secret),
            Ok(_) => {
                self.problem(path, "is empty");
                None
            }
            Err(message) => {
                self.problem(path, message);
                None
            }
        }
    }

    /// A `fail_open` / `fail_closed` value at `path` (default `fail_closed`).
    pub(super) fn policy(&mut self, path: String, value: Option<&str>) -> StoreErrorPolicy {
        match value {
            None | Some("fail_closed") => StoreErrorPolicy::FailClosed,
            Some("fail_open") => StoreErrorPolicy::FailOpen,
            Some(other) => {
                self.problem(
                    path,
                    format!("`{other}` is not one of: fail_open, fail_closed"),
                );
                StoreErrorPolicy::FailClosed
            }
        }
    }

    /// A zone's `message` (the config's, or a live override's) at `path`: at most
    /// [`super::overrides::MAX_MESSAGE`] bytes.
    pub(super) fn message(&mut self, path: String, text: &str) -> String {
        let max = super::overrides::MAX_MESSAGE;
        if text.len() > max {
            self.problem(path, format!("is {} bytes; at most {max}", text.len()));
        }
        text.to_string()
    }

    /// A `mode` value, or `default` when absent.
    pub(super) fn mode(&mut self, path: String, value: Option<&str>, default: Mode) -> Mode {
        match value {
            None => default,
            Some(text) => Mode::parse(text).unwrap_or_else(|| {
                self.problem(
                    path,
                    format!("`{text}` is not one of: auto, queue_all, paused, passthrough, closed"),
                );
                default
            }),
        }
    }
}

pub(super) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}
