//! What the admin API says of a zone, from this node's edge cache: the mode and limits in force
//! (a scheduled sale's, during one), the line and the slots as of the last tick, the wait a
//! newcomer would have now, the scheduled event in force and the live overrides (each with who
//! set it, when, from where). And revoking a visitor.

use super::Room;
use crate::admission::{eta, VisitorId};
use crate::onsale::Phase;
use crate::store::StoreError;
use crate::zone::Zone;
use serde::Serialize;

/// A zone as the admin API reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneReport {
    /// The zone's name.
    pub zone: String,
    /// The mode in force.
    pub mode: &'static str,
    /// Sessions at once, in force.
    pub capacity: u32,
    /// Admissions per minute, in force.
    pub admit_per_minute: u32,
    /// Admissions at once above the rate, in force.
    pub burst: u32,
    /// How long a session lasts, in force.
    pub session_ttl_seconds: u64,
    /// Visitors in line after the cursor, as of the last tick.
    pub waiting: u64,
    /// Occupied slots, as of the last tick.
    pub active: u64,
    /// The wait a newcomer would have now, in seconds.
    pub eta_seconds: u64,
    /// The scheduled event in force, if any.
    pub event: Option<EventReport>,
    /// The operator's notice on the waiting pages (empty: none).
    pub message: String,
    /// Live changes over the config, by setting.
    pub overrides: Vec<OverrideReport>,
}

/// One live override.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverrideReport {
    /// The setting (`admit_per_minute`, `mode`, ...).
    pub setting: String,
    /// Its value in force.
    pub value: serde_json::Value,
    /// The admin token's name that set it.
    pub by: String,
    /// The address it was set from.
    pub from: String,
    /// When, ms since the epoch.
    pub at_ms: u64,
}

/// A scheduled event and where the zone stands in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventReport {
    /// The event's name.
    pub name: String,
    /// `prequeue`, `sale` or `ended`.
    pub phase: &'static str,
}

/// What a revocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// A session: its slot is free and its token refused on every node until `until_s`.
    Session {
        /// When the revocation lapses (the token would have expired by then).
        until_s: u64,
    },
    /// A place in line (or a visitor usher holds nothing for): its tokens are refused on this
    /// node from now on.
    Place,
}

impl Room {
    /// Every zone's report, in config order.
    pub fn zone_reports(&self, now: u64) -> Vec<ZoneReport> {
        self.zones
            .current()
            .iter()
            .map(|zone| self.report(zone, now))
            .collect()
    }

    /// The report of the zone called `name`.
    pub fn zone_report(&self, name: &str, now: u64) -> Option<ZoneReport> {
        self.zone_named(name).map(|zone| self.report(&zone, now))
    }

    fn report(&self, zone: &Zone, now: u64) -> ZoneReport {
        let (in_force, phase) = zone.at(now);
        let config = &in_force.config;
        let state = self.cached(&config.name);
        let waiting = state.as_ref().map_or(0, |s| s.waiting);
        let observed = state.as_ref().map(|s| s.observed).unwrap_or_default();
        let event = match phase {
            Phase::Base => None,
            Phase::Prequeue(e) => Some((e, "prequeue")),
            Phase::Sale(e) => Some((e, "sale")),
            Phase::Ended(e) => Some((e, "ended")),
        };
        ZoneReport {
            zone: config.name.clone(),
            mode: config.mode.as_str(),
            capacity: config.limits.capacity,
            admit_per_minute: config.limits.admit_per_minute,
            burst: config.limits.burst,
            session_ttl_seconds: config.limits.session_ttl.as_secs(),
            waiting,
            active: state.as_ref().map_or(0, |s| s.active),
            eta_seconds: eta(waiting, &observed, &config.limits).seconds,
            event: event.map(|(e, phase)| EventReport {
                name: e.name.clone(),
                phase,
            }),
            message: config.message.clone(),
            overrides: self
                .overrides(&config.name)
                .settings
                .into_iter()
                .map(|(setting, o)| OverrideReport {
                    setting,
                    value: o.value,
                    by: o.by,
                    from: o.from,
                    at_ms: o.at_ms,
                })
                .collect(),
        }
    }

    /// Ends `visitor`'s session (its slot freed and its token refused on every node, through
    /// the store) or, without one, their place (refused on this node). `None`: no such zone.
    pub async fn revoke(
        &self,
        zone_name: &str,
        visitor: VisitorId,
    ) -> Option<Result<Revoked, StoreError>> {
        let zone = self.zone_named(zone_name)?;
        let now = self.clock.now_ms();
        Some(
            match self.end_session(zone_name, visitor, now, "revoked").await {
                Ok(Some(until_s)) => {
                    self.requests.inc(zone.index, "release");
                    Ok(Revoked::Session { until_s })
                }
                Ok(None) => {
                    let until_s = (now + self.visitor_ttl.as_millis() as u64) / 1_000;
                    self.revoked.insert(visitor, until_s);
                    Ok(Revoked::Place)
                }
                Err(e) => Err(e),
            },
        )
    }
}
