//! Live overrides of a zone's settings, set through the admin API while a sale runs: checked
//! with the config's own rules and messages ([`Checker`]), kept in the store, and laid over the
//! zone as configured (and over each scheduled sale of the zone, so an operator's lever wins
//! over the schedule). A reload keeps them; `DELETE /v1/zones/{zone}/overrides` drops them.

use super::checker::{Checker, LimitOverrides};
use super::model::ZoneConfig;
use super::Problem;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The settings that can be changed live, in the order they are listed.
pub const SETTINGS: [&str; 6] = [
    "capacity",
    "admit_per_minute",
    "burst",
    "mode",
    "session_ttl",
    "message",
];

/// The longest `message`, in bytes: a line or two on the waiting page, not a document.
pub const MAX_MESSAGE: usize = 1_000;

/// One setting's override: its value and who set it, when, from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// The value, as JSON (a number, or a string for `mode`, `session_ttl`, `message`).
    pub value: serde_json::Value,
    /// The admin token's name that set it.
    pub by: String,
    /// The address the change came from.
    pub from: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

/// Every override in force in one zone, by setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    /// By setting name ([`SETTINGS`]).
    pub settings: BTreeMap<String, Override>,
}

impl Overrides {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.settings.is_empty()
    }

    /// The overrides as stored (JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Overrides as stored; `None` when the text is not what [`Overrides::to_json`] writes.
    pub fn from_json(text: &str) -> Option<Overrides> {
        serde_json::from_str(text).ok()
    }

    /// These overrides with `patch` (a JSON object of settings) laid over them, set by `by`
    /// from `from` at `now_ms`, and the problems found. A `null` value, or an empty `message`,
    /// drops that override. Settings that cannot be changed live and values of the wrong kind
    /// are problems (and left out); the values themselves are checked by [`apply`], so that
    /// `patched` and `apply` together list every problem at once ([`Overrides::check`]).
    pub fn patched(
        &self,
        zone: &str,
        patch: &serde_json::Value,
        by: &str,
        from: &str,
        now_ms: u64,
    ) -> (Overrides, Vec<Problem>) {
        let mut c = Checker {
            problems: Vec::new(),
        };
        let Some(patch) = patch.as_object() else {
            c.problem(
                format!("zones.{zone}"),
                "send a JSON object of settings, like {\"admit_per_minute\": 600}",
            );
            return (self.clone(), c.problems);
        };
        if patch.is_empty() {
            c.problem(
                format!("zones.{zone}"),
                format!(
                    "names no setting; the settings are: {}",
                    SETTINGS.join(", ")
                ),
            );
        }
        let mut next = self.clone();
        for (key, value) in patch {
            let path = format!("zones.{zone}.{key}");
            if !SETTINGS.contains(&key.as_str()) {
                c.problem(
                    path,
                    format!(
                        "cannot be changed live; the settings that can are: {}",
                        SETTINGS.join(", ")
                    ),
                );
                continue;
            }
            let cleared = value.is_null() || (key == "message" && value.as_str() == Some(""));
            if cleared {
                next.settings.remove(key);
                continue;
            }
            // What the setting must be, when it is not.
            let wrong_kind = match key.as_str() {
                "capacity" | "admit_per_minute" | "burst" => {
                    (!(value.is_i64() || value.is_u64())).then_some("a whole number")
                }
                "session_ttl" => {
                    (!value.is_string()).then_some("a duration in a string, like \"5m\"")
                }
                _ => (!value.is_string()).then_some("a string"),
            };
            if let Some(kind) = wrong_kind {
                c.problem(
                    path,
                    format!("must be {kind} (or null to return to the config)"),
                );
                continue;
            }
            next.settings.insert(
                key.clone(),
                Override {
                    value: value.clone(),
                    by: by.to_string(),
                    from: from.to_string(),
                    at_ms: now_ms,
                },
            );
        }
        (next, c.problems)
    }

    /// [`Overrides::patched`], checked against `zone` as [`apply`] would: the new overrides,
    /// or every problem of both.
    pub fn check(
        &self,
        zone: &ZoneConfig,
        patch: &serde_json::Value,
        by: &str,
        from: &str,
        now_ms: u64,
    ) -> Result<Overrides, Vec<Problem>> {
        let (next, mut problems) = self.patched(&zone.name, patch, by, from, now_ms);
        if let Err(more) = apply(zone, &next) {
            problems.extend(more);
        }
        match problems.is_empty() {
            true => Ok(next),
            false => Err(problems),
        }
    }

    fn number(&self, key: &str) -> Option<i64> {
        let value = &self.settings.get(key)?.value;
        // A number too large for i64 is still a number, and too large for any limit.
        Some(value.as_i64().unwrap_or(i64::MAX))
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.settings.get(key)?.value.as_str()
    }
}

/// `zone` as it runs with `overrides`: limits, mode and message replaced, in the zone and in
/// each of its scheduled sales. Every value is checked as the config checks it, with its path
/// (`zones.checkout.capacity: must be > 0`); any problem leaves the zone unchanged.
pub fn apply(zone: &ZoneConfig, overrides: &Overrides) -> Result<ZoneConfig, Vec<Problem>> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let path = format!("zones.{}", zone.name);
    let limits = LimitOverrides {
        capacity: overrides.number("capacity"),
        admit_per_minute: overrides.number("admit_per_minute"),
        burst: overrides.number("burst"),
        session_ttl: overrides.text("session_ttl"),
    };
    let mode = overrides
        .text("mode")
        .map(|m| c.mode(format!("{path}.mode"), Some(m), zone.mode));
    let message = overrides
        .text("message")
        .map(|m| c.message(format!("{path}.message"), m));
    // Checked against the zone's own limits; a sale's take the same values.
    c.limit_overrides(&path, zone.limits, &limits);
    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    let lay_over = |config: &mut ZoneConfig| {
        config.limits = laid_over(config.limits, &limits);
        if let Some(mode) = mode {
            config.mode = mode;
        }
        if let Some(message) = &message {
            config.message = message.clone();
        }
    };
    let mut applied = zone.clone();
    lay_over(&mut applied);
    for event in &mut applied.events {
        let mut sale = (*event.sale).clone();
        lay_over(&mut sale);
        event.sale = Arc::new(sale);
    }
    Ok(applied)
}

/// `base` with checked overrides laid over them.
fn laid_over(
    base: crate::admission::Limits,
    limits: &LimitOverrides<'_>,
) -> crate::admission::Limits {
    let mut c = Checker {
        problems: Vec::new(),
    };
    // Already checked in `apply`: the values pass again.
    c.limit_overrides("", base, limits)
}

#[cfg(test)]
mod tests;
