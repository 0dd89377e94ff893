//! The admin API (`[admin] listen`): JSON under `/v1/`, for operators and `usher ctl`. Every
//! request carries a bearer token from `[admin] tokens`, compared in constant time and never
//! logged; a read token may only read. What a write did is kept in the audit log (who, what,
//! when, from which address; the newest 1,000 entries, on this node).
//!
//! Transport-free: `service` hands it the method, path, `Authorization` header and peer, and
//! writes the answer.
//!
//! | request | answer |
//! |---|---|
//! | `GET /v1/zones` | `{"zones": [ZoneReport...]}` |
//! | `GET /v1/zones/{zone}` | a [`ZoneReport`] |
//! | `PATCH /v1/zones/{zone}` | settings to override live (write): the [`ZoneReport`] after, or `422` with every problem |
//! | `DELETE /v1/zones/{zone}/overrides` | back to the config (write): the [`ZoneReport`] after |
//! | `POST /v1/zones/{zone}/codes` | priority codes (write): `{"count", "uses", "valid_for"}` in, `{"codes": [...], ...}` out |
//! | `POST /v1/zones/{zone}/visitors/{visitor}/revoke` | `{"revoked": "session" \| "place", ...}` (write) |
//! | `POST /v1/reload` | re-read the config file (write): `{"reloaded": true, ...}`, or `422` with every problem |
//! | `GET /v1/audit` | `{"entries": [...]}` |

use crate::admission::VisitorId;
use crate::clock::SharedClock;
use crate::config::Problem;
use crate::config::{AdminRole, AdminToken};
use crate::room::{OverrideError, Revoked, Room};
use serde::Serialize;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[cfg(test)]
mod tests;

/// Audit entries kept.
const AUDIT_LEN: usize = 1_000;

/// A request to the admin API, as the transport read it.
#[derive(Debug, Clone, Copy)]
pub struct AdminRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a [u8]>,
    /// The client's address.
    pub peer: Option<IpAddr>,
    /// The request body (at most [`MAX_BODY`] bytes; the transport refuses longer ones).
    pub body: &'a [u8],
}

/// The largest request body the API reads.
pub const MAX_BODY: usize = 64 * 1024;

/// Re-reads the configuration and puts it in force (the composition root's `SIGHUP` handling).
pub trait Reload: Send + Sync {
    /// Reloads; `Ok`: what changed, and what needs a restart to change; `Err`: every problem,
    /// and the old configuration keeps running.
    fn reload(&self) -> Result<Reloaded, Vec<Problem>>;
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reloaded {
    /// The new configuration's hash (as in `usher_config_hash`), 16 hex digits.
    pub hash: String,
    /// Settings that changed in the file but take a restart (`usher upgrade`) to apply.
    pub needs_restart: Vec<String>,
}

/// The answer: a status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON.
    pub body: Vec<u8>,
}

impl AdminResponse {
    fn json(status: u16, value: &impl Serialize) -> Self {
        AdminResponse {
            status,
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    fn error(status: u16, error: &str, hint: &str) -> Self {
        AdminResponse::json(
            status,
            &serde_json::json!({ "version": 1, "error": error, "message": hint }),
        )
    }
}

/// One change made through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// The token's name.
    pub who: String,
    /// From where.
    pub address: Option<String>,
    /// What: `revoke`, ...
    pub action: &'static str,
    /// The zone.
    pub zone: String,
    /// What it was done to, and what came of it.
    pub detail: String,
}

/// The admin API of one node.
pub struct Admin {
    room: Arc<Room>,
    tokens: Vec<AdminToken>,
    audit: Mutex<VecDeque<AuditEntry>>,
    clock: SharedClock,
    reload: Option<Arc<dyn Reload>>,
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

impl Admin {
    /// The admin API over `room`, for holders of `tokens`.
    pub fn new(room: Arc<Room>, tokens: Vec<AdminToken>, clock: SharedClock) -> Self {
        Admin {
            room,
            tokens,
            audit: Mutex::default(),
            clock,
            reload: None,
        }
    }

    /// The same API, answering `POST /v1/reload` with `reload`.
    pub fn with_reload(self, reload: Arc<dyn Reload>) -> Self {
        Admin {
            reload: Some(reload),
            ..self
        }
    }

    /// The token `authorization` (`Bearer <token>`) presents. Every token is compared, so the
    /// time taken says nothing about which one nearly matched.
    fn holder(&self, authorization: Option<&[u8]>) -> Option<&AdminToken> {
        let presented = authorization?.strip_prefix(b"Bearer ")?;
        let presented = presented.trim_ascii();
        self.tokens.iter().fold(None, |found, token| {
            match same(presented, token.secret.as_bytes()) {
                true => Some(token),
                false => found,
            }
        })
    }

    /// Whether `authorization` presents one of the tokens (the transport reads a request's
    /// body only then).
    pub fn authorizes(&self, authorization: Option<&[u8]>) -> bool {
        self.holder(authorization).is_some()
    }

    /// Answers `req`.
    pub async fn handle(&self, req: AdminRequest<'_>) -> AdminResponse {
        let Some(holder) = self.holder(req.authorization) else {
            return AdminResponse::error(
                401,
                "unauthorized",
                "send `Authorization: Bearer <token>` with a token from [admin] tokens",
            );
        };
        let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
        let now = self.clock.now_ms();
        match (req.method, segments.as_slice()) {
            ("GET", ["v1", "zones"]) => {
                let zones = self.room.zone_reports(now);
                AdminResponse::json(200, &serde_json::json!({ "version": 1, "zones": zones }))
            }
            ("GET", ["v1", "zones", zone]) => match self.room.zone_report(zone, now) {
                Some(report) => AdminResponse::json(200, &report),
                None => no_zone(zone),
            },
            ("PATCH" | "DELETE" | "POST", _) if holder.role != AdminRole::Write => {
                read_only(holder)
            }
            ("PATCH", ["v1", "zones", zone]) => {
                let patch = match serde_json::from_slice::<serde_json::Value>(req.body) {
                    Ok(patch) => patch,
                    Err(e) => {
                        return AdminResponse::error(
                            400,
                            "bad_json",
                            &format!("the body is not JSON ({e}); send an object of settings, like {{\"admit_per_minute\": 600}}"),
                        )
                    }
                };
                self.set(holder, req.peer, zone, Some(&patch)).await
            }
            ("DELETE", ["v1", "zones", zone, "overrides"]) => {
                self.set(holder, req.peer, zone, None).await
            }
            ("POST", ["v1", "zones", zone, "codes"]) => {
                let ask = match serde_json::from_slice::<serde_json::Value>(req.body) {
                    Ok(ask) => ask,
                    Err(_) if req.body.is_empty() => serde_json::json!({}),
                    Err(e) => {
                        return AdminResponse::error(
                            400,
                            "bad_json",
                            &format!("the body is not JSON ({e})"),
                        )
                    }
                };
                self.codes(holder, req.peer, zone, &ask).await
            }
            ("POST", ["v1", "zones", zone, "visitors", visitor, "revoke"]) => {
                self.revoke(holder, req.peer, zone, visitor).await
            }
            ("POST", ["v1", "reload"]) => self.reload(holder, req.peer).await,
            ("GET", ["v1", "audit"]) => {
                let entries: Vec<AuditEntry> = self.audit().iter().cloned().collect();
                AdminResponse::json(
                    200,
                    &serde_json::json!({ "version": 1, "entries": entries }),
                )
            }
            (_, ["v1", "zones"] | ["v1", "zones", _] | ["v1", "audit"] | ["v1", "reload"])
            | (_, ["v1", "zones", _, "overrides"] | ["v1", "zones", _, "codes"])
            | (_, ["v1", "zones", _, "visitors", _, "revoke"]) => AdminResponse::error(
                405,
                "method_not_allowed",
                "see the table in `usher ctl --help` or docs/admin-api.md",
            ),
            _ => AdminResponse::error(404, "no_such_endpoint", "the API is under /v1/"),
        }
    }

    /// Lays `patch` over the zone's overrides (`None`: drops them all).
    async fn set(
        &self,
        holder: &AdminToken,
        peer: Option<IpAddr>,
        zone: &str,
        patch: Option<&serde_json::Value>,
    ) -> AdminResponse {
        let from = peer.map(|p| p.to_string()).unwrap_or_default();
        match self
            .room
            .set_overrides(zone, patch, &holder.name, &from)
            .await
        {
            Ok(None) => no_zone(zone),
            Ok(Some(_)) => {
                let (action, detail) = match patch {
                    Some(patch) => ("set", patch.to_string()),
                    None => ("reset", "every override dropped".to_string()),
                };
                self.record(holder, peer, action, zone, detail);
                match self.room.zone_report(zone, self.clock.now_ms()) {
                    Some(report) => AdminResponse::json(200, &report),
                    None => no_zone(zone),
                }
            }
            Err(OverrideError::Invalid(problems)) => invalid(&problems),
            Err(OverrideError::Store(e)) => AdminResponse::error(
                503,
                "store_unavailable",
                &format!("nothing changed: {e}; try again once the store answers"),
            ),
        }
    }

    /// Issues priority codes: `count` (1), `uses` each (1), valid for `valid_for` ("24h").
    async fn codes(
        &self,
        holder: &AdminToken,
        peer: Option<IpAddr>,
        zone: &str,
        ask: &serde_json::Value,
    ) -> AdminResponse {
        let mut problems = Vec::new();
        let mut number = |key: &str, default: u64, max: u64| -> u64 {
            match ask.get(key) {
                None => default,
                Some(v) => match v.as_u64().filter(|n| (1..=max).contains(n)) {
                    Some(n) => n,
                    None => {
                        problems.push(Problem {
                            path: key.to_string(),
                            message: format!("must be a whole number from 1 to {max}"),
                        });
                        default
                    }
                },
            }
        };
        let count = number("count", 1, u64::from(crate::room::MAX_CODES)) as u32;
        let uses = number("uses", 1, 1_000_000) as u32;
        let valid_for = match ask.get("valid_for") {
            None => Some(std::time::Duration::from_secs(86_400)),
            Some(v) => v
                .as_str()
                .and_then(|t| crate::config::parse_duration(t).ok())
                .filter(|d| (60..=366 * 86_400).contains(&d.as_secs())),
        };
        let Some(valid_for) = valid_for else {
            problems.push(Problem {
                path: "valid_for".into(),
                message: "must be a duration from 1m to 366d, like \"24h\"".into(),
            });
            return invalid(&problems);
        };
        if let Some(unknown) = ask.as_object().and_then(|o| {
            o.keys()
                .find(|k| !["count", "uses", "valid_for"].contains(&k.as_str()))
        }) {
            problems.push(Problem {
                path: unknown.clone(),
                message: "is not a setting of codes: count, uses, valid_for".into(),
            });
        }
        if !problems.is_empty() {
            return invalid(&problems);
        }
        let until_s = (self.clock.now_ms() + valid_for.as_millis() as u64) / 1_000;
        match self.room.issue_codes(zone, count, uses, until_s).await {
            Ok(None) => no_zone(zone),
            Ok(Some(codes)) => {
                self.record(
                    holder,
                    peer,
                    "codes",
                    zone,
                    format!(
                        "{count} code(s), {uses} use(s) each, until {}",
                        crate::config::timestamp::format_rfc3339(until_s * 1_000)
                    ),
                );
                AdminResponse::json(
                    200,
                    &serde_json::json!({ "version": 1, "zone": zone, "codes": codes,
                        "uses": uses, "expires_at_ms": until_s * 1_000,
                        "param": crate::room::PRIORITY_PARAM }),
                )
            }
            Err(e) => AdminResponse::error(
                503,
                "store_unavailable",
                &format!("no codes were issued: {e}; try again once the store answers"),
            ),
        }
    }

    async fn reload(&self, holder: &AdminToken, peer: Option<IpAddr>) -> AdminResponse {
        let Some(reload) = self.reload.clone() else {
            return AdminResponse::error(503, "no_reload", "this node cannot reload");
        };
        // Reading files and building the tables is blocking work.
        let result = tokio::task::spawn_blocking(move || reload.reload()).await;
        match result {
            Ok(Ok(reloaded)) => {
                self.record(
                    holder,
                    peer,
                    "reload",
                    "*",
                    format!("config {}", reloaded.hash),
                );
                AdminResponse::json(
                    200,
                    &serde_json::json!({ "version": 1, "reloaded": true,
                        "hash": reloaded.hash, "needs_restart": reloaded.needs_restart }),
                )
            }
            Ok(Err(problems)) => invalid(&problems),
            Err(e) => AdminResponse::error(500, "reload_failed", &e.to_string()),
        }
    }

    async fn revoke(
        &self,
        holder: &AdminToken,
        peer: Option<IpAddr>,
        zone: &str,
        visitor: &str,
    ) -> AdminResponse {
        let Some(visitor) = VisitorId::parse(visitor) else {
            return AdminResponse::error(
                400,
                "bad_visitor",
                "a visitor id is 32 hex digits (the Usher-Visitor header the origin sees)",
            );
        };
        let (status, body, detail) = match self.room.revoke(zone, visitor).await {
            None => return no_zone(zone),
            Some(Ok(Revoked::Session { until_s })) => (
                200,
                serde_json::json!({ "version": 1, "revoked": "session", "until_s": until_s }),
                format!("{visitor}: session"),
            ),
            Some(Ok(Revoked::Place)) => (
                200,
                serde_json::json!({ "version": 1, "revoked": "place" }),
                format!("{visitor}: place"),
            ),
            Some(Err(e)) => {
                return AdminResponse::error(503, "store_unavailable", &e.to_string());
            }
        };
        self.record(holder, peer, "revoke", zone, detail);
        AdminResponse::json(status, &body)
    }

    fn audit(&self) -> std::sync::MutexGuard<'_, VecDeque<AuditEntry>> {
        self.audit.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(
        &self,
        holder: &AdminToken,
        peer: Option<IpAddr>,
        action: &'static str,
        zone: &str,
        detail: String,
    ) {
        let entry = AuditEntry {
            at_ms: self.clock.now_ms(),
            who: holder.name.clone(),
            address: peer.map(|p| p.to_string()),
            action,
            zone: zone.to_string(),
            detail,
        };
        tracing::info!(who = %entry.who, action, zone, detail = %entry.detail, "admin change");
        let mut audit = self.audit();
        if audit.len() == AUDIT_LEN {
            audit.pop_front();
        }
        audit.push_back(entry);
    }
}

fn no_zone(zone: &str) -> AdminResponse {
    AdminResponse::error(404, "no_such_zone", &format!("no zone is called `{zone}`"))
}

/// `422`: every problem, with its path; nothing changed.
fn invalid(problems: &[Problem]) -> AdminResponse {
    let problems: Vec<serde_json::Value> = problems
        .iter()
        .map(|p| serde_json::json!({ "path": p.path, "message": p.message }))
        .collect();
    AdminResponse::json(
        422,
        &serde_json::json!({ "version": 1, "error": "invalid",
            "message": "nothing changed; fix every problem listed", "problems": problems }),
    )
}

fn read_only(holder: &AdminToken) -> AdminResponse {
    AdminResponse::error(
        403,
        "read_only",
        &format!(
            "token `{}` may only read; use a token with role = \"write\"",
            holder.name
        ),
    )
}
