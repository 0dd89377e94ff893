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
//! | `POST /v1/zones/{zone}/visitors/{visitor}/revoke` | `{"revoked": "session" \| "place", ...}` (write) |
//! | `GET /v1/audit` | `{"entries": [...]}` |

use crate::admission::VisitorId;
use crate::clock::SharedClock;
use crate::config::{AdminRole, AdminToken};
use crate::room::{Revoked, Room};
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
            ("POST", ["v1", "zones", zone, "visitors", visitor, "revoke"]) => {
                if holder.role != AdminRole::Write {
                    return read_only(holder);
                }
                self.revoke(holder, req.peer, zone, visitor).await
            }
            ("GET", ["v1", "audit"]) => {
                let entries: Vec<AuditEntry> = self.audit().iter().cloned().collect();
                AdminResponse::json(
                    200,
                    &serde_json::json!({ "version": 1, "entries": entries }),
                )
            }
            (_, ["v1", "zones"] | ["v1", "zones", _] | ["v1", "audit"])
            | (_, ["v1", "zones", _, "visitors", _, "revoke"]) => AdminResponse::error(
                405,
                "method_not_allowed",
                "see the table in `usher ctl --help` or docs/admin-api.md",
            ),
            _ => AdminResponse::error(404, "no_such_endpoint", "the API is under /v1/"),
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
