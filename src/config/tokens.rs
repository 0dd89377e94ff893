//! `[tokens]`: algorithm, issuer, key references (never inline keys), lifetimes, cookies.

use super::checker::Checker;
use super::model::*;
use super::raw::*;
use std::collections::BTreeSet;
use std::path::Path;

fn key_ref(c: &mut Checker, path: String, raw: &RawKey, base: &Path) -> KeyRef {
    c.unknown_keys(&path, &raw.extra);
    let kid = raw.kid.clone().unwrap_or_else(|| {
        c.problem(format!("{path}.kid"), "is required");
        String::new()
    });
    let source = match (&raw.file, &raw.env) {
        (Some(file), None) => KeySource::File(base.join(file)),
        (None, Some(var)) => KeySource::Env(var.clone()),
        (Some(_), Some(_)) => {
            c.problem(&path, "set either file or env, not both");
            KeySource::Env(String::new())
        }
        (None, None) => {
            c.problem(
                &path,
                "needs file = \"...\" or env = \"...\" (keys are never inline)",
            );
            KeySource::Env(String::new())
        }
    };
    KeyRef { kid, source, path }
}

pub(super) fn tokens(c: &mut Checker, raw: &RawTokens, base: &Path) -> TokenConfig {
    c.unknown_keys("tokens", &raw.extra);
    let algorithm = match raw.algorithm.as_deref() {
        None | Some("EdDSA") => TokenAlgorithm::EdDsa,
        Some("HS256") => TokenAlgorithm::Hs256,
        Some(other) => {
            c.problem(
                "tokens.algorithm",
                format!("`{other}` is not one of: EdDSA, HS256"),
            );
            TokenAlgorithm::EdDsa
        }
    };
    let signing_key = match &raw.signing_key {
        Some(key) => key_ref(c, "tokens.signing_key".into(), key, base),
        None => {
            c.problem(
                "tokens.signing_key",
                "is required (run `usher keygen` to make one)",
            );
            KeyRef {
                kid: String::new(),
                source: KeySource::Env(String::new()),
                path: "tokens.signing_key".into(),
            }
        }
    };
    let verification_keys: Vec<KeyRef> = raw
        .verification_keys
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, k)| key_ref(c, format!("tokens.verification_keys[{i}]"), k, base))
        .collect();
    let mut kids = BTreeSet::new();
    for key in std::iter::once(&signing_key).chain(&verification_keys) {
        if !key.kid.is_empty() && !kids.insert(key.kid.clone()) {
            c.problem(
                format!("{}.kid", key.path),
                format!("`{}` is used twice", key.kid),
            );
        }
    }
    let cookie_prefix = raw.cookie_prefix.clone().unwrap_or_else(|| "usher".into());
    c.plain_name("tokens.cookie_prefix", &cookie_prefix, "cookie names");
    let cache_size =
        c.positive("tokens.cache_size".into(), raw.cache_size, false, 100_000) as usize;
    TokenConfig {
        algorithm,
        issuer: raw.issuer.clone().unwrap_or_else(|| "usher".into()),
        signing_key,
        verification_keys,
        visitor_ttl: c.duration("tokens.visitor_ttl".into(), &raw.visitor_ttl, "24h"),
        cookie_prefix,
        cookie_secure: raw.cookie_secure.unwrap_or(false),
        cache_size,
    }
}
