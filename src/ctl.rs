//! `usher ctl`: the admin API from the command line. Each command is one request; the answer is
//! printed as a table (or, with `--json`, as the API's JSON). Errors say what to do.

use std::path::Path;
use std::time::Duration;

/// What to ask the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtlRequest {
    /// Every zone.
    Zones,
    /// One zone.
    Zone(String),
    /// End a visitor's session or place.
    Revoke {
        /// The zone.
        zone: String,
        /// The visitor id (32 hex digits).
        visitor: String,
    },
    /// Override settings of a zone live: a JSON object (`{"admit_per_minute": 600}`).
    Set {
        /// The zone.
        zone: String,
        /// The settings.
        patch: serde_json::Value,
    },
    /// Drop every override of a zone: back to the config.
    Reset(String),
    /// Issue priority codes: a JSON object (`{"count": 10, "uses": 1, "valid_for": "24h"}`).
    Codes {
        /// The zone.
        zone: String,
        /// What to issue.
        ask: serde_json::Value,
    },
    /// Re-read the config file.
    Reload,
    /// The audit log.
    Audit,
}

impl CtlRequest {
    fn method_and_path(&self) -> (&'static str, String) {
        match self {
            CtlRequest::Zones => ("GET", "/v1/zones".into()),
            CtlRequest::Zone(zone) => ("GET", format!("/v1/zones/{zone}")),
            CtlRequest::Revoke { zone, visitor } => (
                "POST",
                format!("/v1/zones/{zone}/visitors/{visitor}/revoke"),
            ),
            CtlRequest::Set { zone, .. } => ("PATCH", format!("/v1/zones/{zone}")),
            CtlRequest::Reset(zone) => ("DELETE", format!("/v1/zones/{zone}/overrides")),
            CtlRequest::Reload => ("POST", "/v1/reload".into()),
            CtlRequest::Codes { zone, .. } => ("POST", format!("/v1/zones/{zone}/codes")),
            CtlRequest::Audit => ("GET", "/v1/audit".into()),
        }
    }
}

/// Sends `request` to the admin API at `admin` with the token in `token_file`; the text to
/// print, or what went wrong and what to do.
pub fn run(
    admin: &str,
    token_file: &Path,
    json: bool,
    request: &CtlRequest,
) -> Result<String, String> {
    let token = std::fs::read_to_string(token_file)
        .map_err(|e| format!("cannot read the token file {}: {e}", token_file.display()))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(format!("the token file {} is empty", token_file.display()));
    }
    let (method, path) = request.method_and_path();
    let url = format!("{}{path}", admin.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let authorization = format!("Bearer {token}");
    let sent = match (method, request) {
        ("PATCH", CtlRequest::Set { patch, .. }) => agent
            .patch(&url)
            .header("authorization", &authorization)
            .content_type("application/json")
            .send(patch.to_string()),
        ("POST", CtlRequest::Codes { ask, .. }) => agent
            .post(&url)
            .header("authorization", &authorization)
            .content_type("application/json")
            .send(ask.to_string()),
        ("DELETE", _) => agent
            .delete(&url)
            .header("authorization", &authorization)
            .call(),
        ("POST", _) => agent
            .post(&url)
            .header("authorization", &authorization)
            .send_empty(),
        _ => agent
            .get(&url)
            .header("authorization", &authorization)
            .call(),
    };
    let mut answer = sent.map_err(|e| {
        format!("cannot reach the admin API at {admin}: {e} (is [admin] listen set, and usher running?)")
    })?;
    let status = answer.status().as_u16();
    let body = answer
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("unreadable answer: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_str(&body).map_err(|_| format!("the API answered {status}: {body}"))?;
    if status >= 400 {
        let error = value["error"].as_str().unwrap_or("error");
        let message = value["message"].as_str().unwrap_or_default();
        let problems: String = items(&value["problems"])
            .iter()
            .map(|p| format!("\n  {}: {}", text(&p["path"]), text(&p["message"])))
            .collect();
        return Err(format!("{status} {error}: {message}{problems}"));
    }
    if json {
        return Ok(serde_json::to_string_pretty(&value).unwrap_or(body));
    }
    Ok(match request {
        CtlRequest::Zones => zone_table(items(&value["zones"])),
        CtlRequest::Zone(_) | CtlRequest::Set { .. } | CtlRequest::Reset(_) => {
            zone_table(std::slice::from_ref(&value)) + &overrides_table(&value)
        }
        CtlRequest::Codes { .. } => {
            let codes: Vec<String> = items(&value["codes"]).iter().map(text).collect();
            let until = value["expires_at_ms"]
                .as_u64()
                .map(crate::config::timestamp::format_rfc3339)
                .unwrap_or_default();
            format!(
                "{}\n# {} code(s), {} use(s) each, until {until}; a link to a zone page with \
                 ?{}=CODE redeems one",
                codes.join("\n"),
                codes.len(),
                text(&value["uses"]),
                text(&value["param"]),
            )
        }
        CtlRequest::Reload => {
            let restart: Vec<String> = items(&value["needs_restart"]).iter().map(text).collect();
            let mut out = format!("reloaded: config {}", text(&value["hash"]));
            if !restart.is_empty() {
                out += &format!(
                    "\nchanged but only applied at start (run `usher upgrade`): {}",
                    restart.join(", ")
                );
            }
            out
        }
        CtlRequest::Revoke { .. } => {
            format!("revoked: {}", value["revoked"].as_str().unwrap_or("?"))
        }
        CtlRequest::Audit => audit_table(items(&value["entries"])),
    })
}

/// Columns of `rows`, padded to their widths.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    std::iter::once(line(header.iter().map(|h| h.to_string()).collect()))
        .chain(rows.into_iter().map(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The array at `value` (empty when it is not one).
fn items(value: &serde_json::Value) -> &[serde_json::Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn zone_table(zones: &[serde_json::Value]) -> String {
    let header = [
        "ZONE", "MODE", "CAPACITY", "RATE/MIN", "BURST", "WAITING", "ACTIVE", "ETA", "EVENT",
    ];
    let rows = zones
        .iter()
        .map(|z| {
            let event = match (&z["event"]["name"], &z["event"]["phase"]) {
                (serde_json::Value::String(n), serde_json::Value::String(p)) => {
                    format!("{n} ({p})")
                }
                _ => "-".into(),
            };
            vec![
                text(&z["zone"]),
                text(&z["mode"]),
                text(&z["capacity"]),
                text(&z["admit_per_minute"]),
                text(&z["burst"]),
                text(&z["waiting"]),
                text(&z["active"]),
                format!("{}s", text(&z["eta_seconds"])),
                event,
            ]
        })
        .collect();
    table(&header, rows)
}

/// The zone's message and live overrides under its table (nothing when it has none).
fn overrides_table(zone: &serde_json::Value) -> String {
    let mut out = String::new();
    if let Some(message) = zone["message"].as_str().filter(|m| !m.is_empty()) {
        out += &format!("\nmessage: {message}\n");
    }
    let overrides = items(&zone["overrides"]);
    if overrides.is_empty() {
        return out;
    }
    let rows = overrides
        .iter()
        .map(|o| {
            vec![
                text(&o["setting"]),
                text(&o["value"]),
                text(&o["by"]),
                text(&o["from"]),
                o["at_ms"]
                    .as_u64()
                    .map(crate::config::timestamp::format_rfc3339)
                    .unwrap_or_default(),
            ]
        })
        .collect();
    out + "\noverrides:\n" + &table(&["SETTING", "VALUE", "BY", "FROM", "AT"], rows)
}

fn audit_table(entries: &[serde_json::Value]) -> String {
    let header = ["AT (MS)", "WHO", "FROM", "ACTION", "ZONE", "DETAIL"];
    let rows = entries
        .iter()
        .map(|e| {
            ["at_ms", "who", "address", "action", "zone", "detail"]
                .iter()
                .map(|k| text(&e[*k]))
                .collect()
        })
        .collect();
    table(&header, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_print_as_an_aligned_table() {
        let zones = serde_json::json!([
            {"zone": "checkout", "mode": "auto", "capacity": 500, "admit_per_minute": 1200,
             "burst": 20, "waiting": 12345, "active": 498, "eta_seconds": 610, "event": null},
            {"zone": "vip", "mode": "paused", "capacity": 10, "admit_per_minute": 60,
             "burst": 1, "waiting": 0, "active": 0, "eta_seconds": 0,
             "event": {"name": "winter-tour", "phase": "sale"}},
        ]);
        let printed = zone_table(zones.as_array().expect("array"));
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ZONE      MODE"), "{printed}");
        assert!(
            lines[1].contains("12345") && lines[1].contains("610s"),
            "{printed}"
        );
        assert!(lines[2].ends_with("winter-tour (sale)"), "{printed}");
        let column = |line: &str| {
            line.find("MODE")
                .or_else(|| line.find("auto"))
                .or_else(|| line.find("paused"))
        };
        assert_eq!(column(lines[0]), column(lines[1]));
        assert_eq!(column(lines[1]), column(lines[2]));
    }

    #[test]
    fn a_missing_token_file_says_so() {
        let err = run(
            "http://127.0.0.1:9",
            Path::new("/nonexistent/token"),
            false,
            &CtlRequest::Zones,
        )
        .expect_err("no file");
        assert!(err.contains("cannot read the token file"), "{err}");
    }
}
