//! `[defence]` and `[zones.NAME.defence]`: what one client may do in a zone. The top-level
//! table gives every zone its defaults; a zone's own table overrides them key by key. Every
//! value is checked here, with its dotted path.

use super::checker::Checker;
use super::raw::{RawChallengeHook, RawDefence};
use super::{parse_duration, CaptchaProvider, ChallengeHook, Defence, ProofOfWork};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The top-level `[defence]` table: every zone's defaults.
pub(super) struct Top {
    /// The table over the built-in defaults.
    pub defence: Defence,
    /// Whether it sets `return_window` (then a zone's claim window cannot stretch it).
    pub return_window_set: bool,
}

/// The top-level `[defence]` table over the built-in defaults.
pub(super) fn top(c: &mut Checker, raw: &RawDefence, base: &Path) -> Top {
    Top {
        defence: read(c, "defence", raw, &Defence::default(), base),
        return_window_set: raw.return_window.is_some(),
    }
}

/// A zone's `[zones.NAME.defence]` over the top-level table, fitted to the zone's
/// `claim_window` ([`fit_to_zone`]).
pub(super) fn zone(
    c: &mut Checker,
    zone: &str,
    raw: Option<&RawDefence>,
    top: &Top,
    claim_window: Duration,
    base: &Path,
) -> Defence {
    let mut defence = match raw {
        Some(raw) => read(c, &format!("zones.{zone}.defence"), raw, &top.defence, base),
        None => top.defence.clone(),
    };
    let explicit = top.return_window_set || raw.is_some_and(|r| r.return_window.is_some());
    fit_to_zone(c, zone, &mut defence, claim_window, explicit);
    defence
}

fn read(c: &mut Checker, path: &str, raw: &RawDefence, base: &Defence, dir: &Path) -> Defence {
    c.unknown_keys(path, &raw.extra);
    let mut count = |key: &str, value: Option<i64>, default: u32| -> u32 {
        match value {
            None => default,
            Some(v) if v <= 0 => {
                c.problem(format!("{path}.{key}"), "must be > 0");
                default
            }
            Some(v) if v > 1_000_000 => {
                c.problem(format!("{path}.{key}"), "must be at most 1000000");
                default
            }
            Some(v) => v as u32,
        }
    };
    let client_places = count("client_places", raw.client_places, base.client_places);
    let client_joins_per_minute = count(
        "client_joins_per_minute",
        raw.client_joins_per_minute,
        base.client_joins_per_minute,
    );
    let client_join_burst = count(
        "client_join_burst",
        raw.client_join_burst,
        base.client_join_burst,
    );
    let client_event_streams = count(
        "client_event_streams",
        raw.client_event_streams,
        base.client_event_streams,
    );
    let session_clients = count("session_clients", raw.session_clients, base.session_clients);
    let pow_auto_joins_per_minute = count(
        "pow_auto_joins_per_minute",
        raw.pow_auto_joins_per_minute,
        base.pow_auto_joins_per_minute,
    );
    let mut block = |key: &str, value: Option<i64>, max: u8, default: u8| -> u8 {
        match value {
            None => default,
            Some(v) if (8..=max as i64).contains(&v) => v as u8,
            Some(_) => {
                c.problem(
                    format!("{path}.{key}"),
                    format!("must be a prefix length from 8 to {max} ({max}: one address)"),
                );
                default
            }
        }
    };
    let client_block_v4 = block(
        "client_block_v4",
        raw.client_block_v4,
        32,
        base.client_block_v4,
    );
    let client_block_v6 = block(
        "client_block_v6",
        raw.client_block_v6,
        128,
        base.client_block_v6,
    );
    let return_window = match raw.return_window.as_deref().map(parse_duration) {
        None => base.return_window,
        Some(Ok(d)) => d,
        Some(Err(message)) => {
            c.problem(format!("{path}.return_window"), message);
            base.return_window
        }
    };
    let proof_of_work = match raw.proof_of_work.as_deref() {
        None => base.proof_of_work,
        Some("off") => ProofOfWork::Off,
        Some("on") => ProofOfWork::On,
        Some("auto") => ProofOfWork::Auto,
        Some(other) => {
            c.problem(
                format!("{path}.proof_of_work"),
                format!("`{other}` is not one of: off, on, auto"),
            );
            base.proof_of_work
        }
    };
    let pow_difficulty = match raw.pow_difficulty {
        None => base.pow_difficulty,
        Some(bits @ 1..=32) => bits as u8,
        Some(_) => {
            c.problem(
                format!("{path}.pow_difficulty"),
                "must be from 1 to 32 bits (18: about a second on a mid-range phone)",
            );
            base.pow_difficulty
        }
    };
    let challenge = match &raw.challenge {
        Some(hook) => hook_of(c, &format!("{path}.challenge"), hook, dir).map(Arc::new),
        None => base.challenge.clone(),
    };
    Defence {
        client_places,
        client_joins_per_minute,
        client_join_burst,
        client_block_v4,
        client_block_v6,
        client_event_streams,
        session_clients,
        return_window,
        proof_of_work,
        pow_difficulty,
        pow_auto_joins_per_minute,
        challenge,
    }
}

/// The challenge hook at `path`, with its secret read now (from the environment or a file
/// relative to the config), so a missing one stops `usher check` and the start.
fn hook_of(
    c: &mut Checker,
    path: &str,
    raw: &RawChallengeHook,
    dir: &Path,
) -> Option<ChallengeHook> {
    c.unknown_keys(path, &raw.extra);
    let provider = match raw.provider.as_deref() {
        None => {
            c.problem(
                format!("{path}.provider"),
                "is required: turnstile, hcaptcha or recaptcha",
            );
            None
        }
        Some(name) => CaptchaProvider::parse(name).or_else(|| {
            c.problem(
                format!("{path}.provider"),
                format!("`{name}` is not one of: turnstile, hcaptcha, recaptcha"),
            );
            None
        }),
    };
    let site_key = raw.site_key.clone().filter(|k| !k.trim().is_empty());
    if site_key.is_none() {
        c.problem(
            format!("{path}.site_key"),
            "is required (the provider's public site key)",
        );
    }
    let secret = c.secret(&format!("{path}.secret"), raw.secret.as_ref(), dir);
    let timeout = match raw.timeout.as_deref().map(parse_duration) {
        None => Duration::from_secs(3),
        Some(Ok(d)) if d >= Duration::from_millis(100) => d,
        Some(Ok(_)) => {
            c.problem(format!("{path}.timeout"), "must be at least 100ms");
            Duration::from_secs(3)
        }
        Some(Err(message)) => {
            c.problem(format!("{path}.timeout"), message);
            Duration::from_secs(3)
        }
    };
    let on_error = c.policy(format!("{path}.on_error"), raw.on_error.as_deref());
    let mut url = |key: &str, value: Option<&String>| {
        let value = value?;
        let ok = value.starts_with("https://") || value.starts_with("http://");
        if !ok {
            c.problem(
                format!("{path}.{key}"),
                format!("`{value}` is not an http(s) URL"),
            );
        }
        Some(value.clone())
    };
    let verify_url = url("verify_url", raw.verify_url.as_ref());
    let script_url = url("script_url", raw.script_url.as_ref());
    let provider = provider?;
    Some(ChallengeHook {
        provider,
        site_key: site_key?,
        secret: secret?,
        verify_url: verify_url.unwrap_or_else(|| provider.verify_url().to_string()),
        script_url: script_url.unwrap_or_else(|| provider.script_url().to_string()),
        timeout,
        on_error,
    })
}

/// A zone's defence checked against its other settings: a skipped visitor may come back at
/// least as long as an admitted one may take to claim the slot. A `return_window` nobody set
/// follows a longer `claim_window`; one set shorter is a problem. `explicit`: whether the file
/// sets `return_window` for this zone (in its own table or the top-level one).
fn fit_to_zone(
    c: &mut Checker,
    zone: &str,
    defence: &mut Defence,
    claim_window: Duration,
    explicit: bool,
) {
    if defence.return_window >= claim_window {
        return;
    }
    if !explicit {
        defence.return_window = claim_window;
        return;
    }
    c.problem(
        format!("zones.{zone}.defence.return_window"),
        format!(
            "must be at least the zone's claim_window ({}s): an admitted visitor who comes \
             within the claim window keeps their place",
            claim_window.as_secs()
        ),
    );
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, Defence};
    use std::time::Duration;

    #[test]
    fn zones_inherit_the_top_table_and_override_key_by_key() {
        let text = "[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n\
            [tokens]\nsigning_key = { kid = \"k\", env = \"X\" }\n\
            [defence]\nclient_places = 7\nclient_block_v6 = 64\n\
            [zones.a]\npaths = [\"/a\"]\ncapacity = 1\nadmit_per_minute = 60\n\
            [zones.b]\npaths = [\"/b\"]\ncapacity = 1\nadmit_per_minute = 60\n\
            [zones.b.defence]\nclient_places = 2\nreturn_window = \"20m\"\n";
        let config = parse(text, std::path::Path::new(".")).expect("valid");
        let a = &config.zone("a").expect("a").defence;
        let b = &config.zone("b").expect("b").defence;
        assert_eq!(
            *a,
            Defence {
                client_places: 7,
                client_block_v6: 64,
                ..Defence::default()
            }
        );
        assert_eq!(
            *b,
            Defence {
                client_places: 2,
                client_block_v6: 64,
                return_window: Duration::from_secs(1_200),
                ..Defence::default()
            }
        );
        // A long claim window carries a return window nobody set along; one set shorter is
        // refused.
        let long_claim = text.replace(
            "[zones.a]\npaths = [\"/a\"]\n",
            "[zones.a]\npaths = [\"/a\"]\nclaim_window = \"1h\"\n",
        );
        let config = parse(&long_claim, std::path::Path::new(".")).expect("valid");
        let a = &config.zone("a").expect("a").defence;
        assert_eq!(a.return_window, Duration::from_secs(3_600));
        let set_short = long_claim.replace(
            "client_places = 7\n",
            "client_places = 7\nreturn_window = \"5m\"\n",
        );
        let problems = parse(&set_short, std::path::Path::new(".")).expect_err("refused");
        assert!(
            problems
                .to_string()
                .contains("zones.a.defence.return_window"),
            "{problems}"
        );
        // Without any table: the defaults.
        let bare = text.split("[defence]").next().expect("head").to_string()
            + "[zones.c]\npaths = [\"/c\"]\ncapacity = 1\nadmit_per_minute = 60\n";
        let config = parse(&bare, std::path::Path::new(".")).expect("valid");
        assert_eq!(config.zones[0].defence, Defence::default());
    }
}
