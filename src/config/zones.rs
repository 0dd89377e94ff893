//! `[zones.NAME]`: paths and hosts (stored canonical), limits, mode, statuses, page, texts,
//! per-client defence, and the zone's scheduled events.

use super::checker::Checker;
use super::model::*;
use super::page;
use super::raw::*;
use crate::admission::Limits;
use crate::page::Strings;
use crate::request::path;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A zone's path prefix in the canonical form requests are matched on (folded unless the zone
/// is case-sensitive), or `None` after reporting why it cannot be one.
fn zone_path(c: &mut Checker, at: &str, text: &str, case_sensitive: bool) -> Option<String> {
    if !text.starts_with('/') {
        c.problem(at, "must start with '/'");
        return None;
    }
    let canonical = match path::canonical(text.as_bytes()) {
        Ok(p) => p,
        Err(e) => {
            c.problem(at, format!("`{text}` is not a readable path: {e}"));
            return None;
        }
    };
    let canonical = if case_sensitive {
        canonical.into_owned()
    } else {
        path::fold(&canonical).into_owned()
    };
    if canonical == "/_usher" || canonical.starts_with("/_usher/") {
        c.problem(at, "/_usher/ is reserved for usher");
        return None;
    }
    Some(canonical)
}

/// The zones; `base` resolves their template paths, `strings` are the page's texts with the
/// file's top-level overrides.
pub(super) fn zones(
    c: &mut Checker,
    raw: &BTreeMap<String, RawZone>,
    upstreams: &BTreeMap<String, UpstreamConfig>,
    default_upstream: &str,
    base: &Path,
    strings: &Arc<Strings>,
    defence: &super::defence::Top,
) -> Vec<ZoneConfig> {
    let mut out = Vec::new();
    let mut claimed: BTreeMap<(String, String), String> = BTreeMap::new();
    for (name, z) in raw {
        let path = format!("zones.{name}");
        c.unknown_keys(&path, &z.extra);
        c.plain_name(&path, name, "cookies");
        let hosts: Vec<String> = z
            .hosts
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, h)| c.host(format!("{path}.hosts[{i}]"), h))
            .collect();
        let case_sensitive = z.case_sensitive.unwrap_or(false);
        let raw_paths = z.paths.clone().unwrap_or_default();
        if raw_paths.is_empty() {
            c.problem(
                format!("{path}.paths"),
                "must name at least one path prefix",
            );
        }
        let mut paths = Vec::new();
        for (i, p) in raw_paths.iter().enumerate() {
            let at = format!("{path}.paths[{i}]");
            let Some(canonical) = zone_path(c, &at, p, case_sensitive) else {
                continue;
            };
            let host_keys = if hosts.is_empty() {
                vec!["*".to_string()]
            } else {
                hosts.clone()
            };
            for host in host_keys {
                // Compared folded: a case-sensitive `/Checkout` and a folded `/checkout` overlap.
                let key = (host.clone(), path::fold(&canonical).into_owned());
                if let Some(other) = claimed.insert(key, name.clone()) {
                    c.problem(
                        &at,
                        format!("`{p}` on host `{host}` is already in zone `{other}`"),
                    );
                }
            }
            paths.push(canonical);
        }
        let upstream = z
            .upstream
            .clone()
            .unwrap_or_else(|| default_upstream.to_string());
        if !upstreams.contains_key(&upstream) && !upstreams.is_empty() {
            c.problem(
                format!("{path}.upstream"),
                format!("no upstream is called `{upstream}`"),
            );
        }
        let capacity = c.positive(format!("{path}.capacity"), z.capacity, true, 1);
        let admit_per_minute = c.positive(
            format!("{path}.admit_per_minute"),
            z.admit_per_minute,
            true,
            1,
        );
        let burst = c.positive(
            format!("{path}.burst"),
            z.burst,
            false,
            admit_per_minute.div_ceil(60) as i64,
        );
        let session_ttl = c.duration(format!("{path}.session_ttl"), &z.session_ttl, "10m");
        let claim_window = c.duration(format!("{path}.claim_window"), &z.claim_window, "60s");
        let abandon_after = c.duration(format!("{path}.abandon_after"), &z.abandon_after, "2m");
        let refresh_interval = c.duration(
            format!("{path}.refresh_interval"),
            &z.refresh_interval,
            "5s",
        );
        if session_ttl < Duration::from_secs(1) {
            c.problem(format!("{path}.session_ttl"), "must be at least 1s");
        }
        if claim_window < Duration::from_secs(1) {
            c.problem(format!("{path}.claim_window"), "must be at least 1s");
        }
        if refresh_interval.is_zero() {
            c.problem(format!("{path}.refresh_interval"), "must be > 0");
        }
        if abandon_after <= refresh_interval {
            c.problem(
                format!("{path}.abandon_after"),
                "must be longer than refresh_interval, or waiting visitors would be skipped",
            );
        }
        let mode = c.mode(format!("{path}.mode"), z.mode.as_deref(), Mode::Auto);
        let waiting_status = match z.waiting_status {
            None => 200,
            Some(s @ (200 | 202 | 429 | 503)) => s as u16,
            Some(_) => {
                c.problem(
                    format!("{path}.waiting_status"),
                    "must be one of 200, 202, 429, 503",
                );
                200
            }
        };
        let no_page_status = match z.no_page_status {
            None => 429,
            Some(s @ (429 | 503)) => s as u16,
            Some(_) => {
                c.problem(format!("{path}.no_page_status"), "must be 429 or 503");
                429
            }
        };
        let on_store_error = c.policy(
            format!("{path}.on_store_error"),
            z.on_store_error.as_deref(),
        );
        let template = page::template(c, &format!("{path}.template"), z.template.as_deref(), base);
        let strings = if z.strings.is_empty() {
            strings.clone()
        } else {
            let path = format!("{path}.strings");
            Arc::new(page::strings(c, &path, &z.strings, strings))
        };
        let mut zone = ZoneConfig {
            name: name.clone(),
            title: z.title.clone().unwrap_or_else(|| name.clone()),
            hosts,
            paths,
            case_sensitive,
            upstream,
            limits: Limits {
                capacity,
                admit_per_minute,
                burst,
                session_ttl,
                claim_window,
                abandon_after,
            },
            session_renewal: z.session_renewal.unwrap_or(true),
            refresh_interval,
            mode,
            waiting_status,
            no_page_status,
            on_store_error,
            template,
            strings,
            message: c.message(
                format!("{path}.message"),
                z.message.as_deref().unwrap_or_default(),
            ),
            events: Vec::new(),
            defence: super::defence::zone(c, name, z.defence.as_ref(), defence, claim_window, base),
            bypass: bypass(c, &path, z.bypass.as_ref(), base),
        };
        let events = z.events.as_deref().unwrap_or(&[]);
        zone.events = super::events::events(c, &path, events, &zone, base);
        out.push(zone);
    }
    out
}

/// A zone's `bypass`: address blocks and a secret, at least one of them; a secret of at least
/// 16 characters (it opens the shop to whoever has it).
fn bypass(
    c: &mut Checker,
    path: &str,
    raw: Option<&RawBypass>,
    base: &Path,
) -> Option<Arc<Bypass>> {
    let raw = raw?;
    let path = format!("{path}.bypass");
    c.unknown_keys(&path, &raw.extra);
    let mut networks = Vec::new();
    for (i, text) in raw.networks.iter().flatten().enumerate() {
        match text.parse::<crate::request::client::Cidr>() {
            Ok(cidr) => networks.push(cidr),
            Err(e) => c.problem(format!("{path}.networks[{i}]"), e.to_string()),
        }
    }
    let secret = raw
        .secret
        .as_ref()
        .and_then(|s| c.secret(&format!("{path}.secret"), Some(s), base));
    if let Some(secret) = &secret {
        if secret.len() < 16 {
            c.problem(
                format!("{path}.secret"),
                "is shorter than 16 characters; use a long random one (openssl rand -hex 32)",
            );
        }
    }
    if raw.networks.as_ref().is_none_or(Vec::is_empty) && raw.secret.is_none() {
        c.problem(&path, "names nobody: set networks, a secret, or both");
    }
    Some(Arc::new(Bypass { networks, secret }))
}
