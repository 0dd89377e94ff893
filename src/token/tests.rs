//! Token attacks, each refused with its reason, and key rotation.

use super::keys::{generate_ed25519, generate_hs256};
use super::*;
use crate::admission::VisitorId;
use crate::config;

const NOW_MS: u64 = 1_800_000_000_000;

/// A token service over key files written to a temp dir. `keys` is (kid, content); the first
/// signs.
fn service(algorithm: &str, keys: &[(&str, &str)]) -> (Tokens, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut toml = format!(
        "[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n[tokens]\nalgorithm = \"{algorithm}\"\n"
    );
    for (i, (kid, content)) in keys.iter().enumerate() {
        std::fs::write(dir.path().join(kid), content).expect("write key");
        if i == 0 {
            toml.push_str(&format!(
                "signing_key = {{ kid = \"{kid}\", file = \"{kid}\" }}\n"
            ));
            toml.push_str("verification_keys = [\n");
        } else {
            toml.push_str(&format!("  {{ kid = \"{kid}\", file = \"{kid}\" }},\n"));
        }
    }
    toml.push_str("]\n");
    let config = config::parse(&toml, dir.path()).expect("valid config");
    let keyring = Keyring::load(&config.tokens).expect("keys load");
    (Tokens::new(keyring, "usher", 1_000), dir)
}

fn claims(zone: &str, typ: TokenKind, exp_s: u64) -> Claims {
    Claims {
        iss: "usher".into(),
        typ,
        zone: zone.into(),
        vid: VisitorId(42),
        rank: NOW_MS - 5_000,
        iat: NOW_MS / 1_000 - 5,
        exp: exp_s,
        adm: None,
        pri: false,
    }
}

fn b64(json: &str) -> String {
    URL_SAFE_NO_PAD.encode(json)
}

#[test]
fn a_valid_token_verifies_and_is_cached() {
    let (tokens, _dir) = service("EdDSA", &[("k1", &generate_ed25519().0)]);
    let token = tokens.sign(&claims("checkout", TokenKind::Access, NOW_MS / 1_000 + 60));
    let first = tokens.verify(&token, NOW_MS).expect("valid");
    assert_eq!(first.zone, "checkout");
    let second = tokens.verify(&token, NOW_MS).expect("valid");
    assert!(
        Arc::ptr_eq(&first, &second),
        "the second check came from the cache"
    );
}

#[test]
fn expired_tokens_are_refused_even_from_the_cache() {
    let (tokens, _dir) = service("EdDSA", &[("k1", &generate_ed25519().0)]);
    let token = tokens.sign(&claims("checkout", TokenKind::Access, NOW_MS / 1_000 + 10));
    assert!(tokens.verify(&token, NOW_MS).is_ok());
    assert_eq!(
        tokens.verify(&token, NOW_MS + 10_000).unwrap_err(),
        Rejection::Expired
    );
}

#[test]
fn forged_signature_and_tampered_claims_are_refused() {
    let (tokens, _dir) = service("EdDSA", &[("k1", &generate_ed25519().0)]);
    let (other, _d2) = service("EdDSA", &[("k1", &generate_ed25519().0)]);
    let c = claims("checkout", TokenKind::Access, NOW_MS / 1_000 + 60);
    // Same kid, someone else's key.
    let forged = other.sign(&c);
    assert_eq!(
        tokens.verify(&forged, NOW_MS).unwrap_err(),
        Rejection::BadSignature
    );
    // A real token whose claims were edited (visitor token turned into an access token).
    let real = tokens.sign(&claims("checkout", TokenKind::Visitor, NOW_MS / 1_000 + 60));
    let parts: Vec<&str> = real.split('.').collect();
    let edited = serde_json::to_string(&c).expect("json");
    let tampered = format!("{}.{}.{}", parts[0], b64(&edited), parts[2]);
    assert_eq!(
        tokens.verify(&tampered, NOW_MS).unwrap_err(),
        Rejection::BadSignature
    );
}

#[test]
fn alg_none_is_refused() {
    let (tokens, _dir) = service("EdDSA", &[("k1", &generate_ed25519().0)]);
    let c = claims("checkout", TokenKind::Access, NOW_MS / 1_000 + 60);
    let payload = b64(&serde_json::to_string(&c).expect("json"));
    for alg in ["none", "None", "NONE"] {
        let token = format!(
            "{}.{payload}.",
            b64(&format!("{{\"alg\":\"{alg}\",\"kid\":\"k1\"}}"))
        );
        assert_eq!(
            tokens.verify(&token, NOW_MS).unwrap_err(),
            Rejection::AlgNone
        );
    }
}

#[test]
fn algorithm_confusion_is_refused() {
    // An HS256 token "signed" with the EdDSA public key as the HMAC secret.
    let (private, public) = generate_ed25519();
    let (tokens, _dir) = service("EdDSA", &[("k1", &private)]);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".into());
    let c = claims("checkout", TokenKind::Access, NOW_MS / 1_000 + 60);
    let token = jsonwebtoken::encode(
        &header,
        &c,
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
    )
    .expect("encode");
    assert_eq!(
        tokens.verify(&token, NOW_MS).unwrap_err(),
        Rejection::WrongAlgorithm
    );
}

#[test]
fn unknown_or_missing_kid_is_refused() {
    let (tokens, _dir) = service("EdDSA", &[("k1", &generate_ed25519().0)]);
    let (stranger, _d2) = service("EdDSA", &[("k9", &generate_ed25519().0)]);
    let token = stranger.sign(&claims("checkout", TokenKind::Access, NOW_MS / 1_000 + 60));
    assert_eq!(
        tokens.verify(&token, NOW_MS).unwrap_err(),
        Rejection::UnknownKid
    );
    let parts: Vec<&str> = token.split('.').collect();
    let no_kid = format!("{}.{}.{}", b64("{\"alg\":\"EdDSA\"}"), parts[1], parts[2]);
    assert_eq!(
        tokens.verify(&no_kid, NOW_MS).unwrap_err(),
        Rejection::UnknownKid
    );
}

#[test]
fn malformed_tokens_are_refused() {
    let (tokens, _dir) = service("EdDSA", &[("k1", &generate_ed25519().0)]);
    for junk in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.???.###",
        "eyJhbGciOiJFZERTQSJ9.e30",
    ] {
        assert_eq!(
            tokens.verify(junk, NOW_MS).unwrap_err(),
            Rejection::Malformed,
            "{junk:?}"
        );
    }
}

#[test]
fn wrong_issuer_is_refused() {
    let (tokens, _dir) = service("HS256", &[("k1", &generate_hs256())]);
    let mut c = claims("checkout", TokenKind::Access, NOW_MS / 1_000 + 60);
    c.iss = "someone-else".into();
    let token = tokens.sign(&c);
    assert_eq!(
        tokens.verify(&token, NOW_MS).unwrap_err(),
        Rejection::WrongIssuer
    );
}

#[test]
fn wrong_zone_and_revoked_tokens_count_as_no_token() {
    use crate::gate::{check_token, TokenCheck};
    let (tokens, _dir) = service("EdDSA", &[("k1", &generate_ed25519().0)]);
    let c = claims("seatmap", TokenKind::Access, NOW_MS / 1_000 + 60);
    let token = tokens.sign(&c);
    let check = check_token(&tokens, "checkout", Some(&token), |_| false, NOW_MS);
    assert!(matches!(check, TokenCheck::Rejected(Rejection::WrongZone)));
    let check = check_token(&tokens, "seatmap", Some(&token), |v| v == c.vid, NOW_MS);
    assert!(matches!(check, TokenCheck::Rejected(Rejection::Revoked)));
    assert!(matches!(
        check_token(&tokens, "seatmap", Some(&token), |_| false, NOW_MS),
        TokenCheck::Access(_)
    ));
}

#[test]
fn rotation_accepts_old_keys_and_signs_with_the_new_one() {
    let old = generate_ed25519();
    let new = generate_ed25519();
    let (before, _d1) = service("EdDSA", &[("old", &old.0)]);
    let old_token = before.sign(&claims("checkout", TokenKind::Visitor, NOW_MS / 1_000 + 60));
    // After rotation only the old public key is kept, for verification.
    let (after, _d2) = service("EdDSA", &[("new", &new.0), ("old", &old.1)]);
    assert!(
        after.verify(&old_token, NOW_MS).is_ok(),
        "old tokens keep working"
    );
    let new_token = after.sign(&claims("checkout", TokenKind::Visitor, NOW_MS / 1_000 + 60));
    assert_eq!(peek_header(&new_token).expect("header")["kid"], "new");
    assert_eq!(
        before.verify(&new_token, NOW_MS).unwrap_err(),
        Rejection::UnknownKid
    );
}

#[test]
fn hs256_round_trips_and_short_secrets_are_refused() {
    let (tokens, _dir) = service("HS256", &[("k1", &generate_hs256())]);
    let token = tokens.sign(&claims("checkout", TokenKind::Access, NOW_MS / 1_000 + 60));
    assert!(tokens.verify(&token, NOW_MS).is_ok());
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("short"), "too-short").expect("write");
    let toml = "[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n[tokens]\nalgorithm = \"HS256\"\nsigning_key = { kid = \"k\", file = \"short\" }\n";
    let config = config::parse(toml, dir.path()).expect("valid config");
    let problems = Keyring::load(&config.tokens).expect_err("short secret");
    assert!(
        problems[0].to_string().contains("at least 32 bytes"),
        "{}",
        problems[0]
    );
}

#[test]
fn jwks_publishes_eddsa_public_keys() {
    let (tokens, _dir) = service("EdDSA", &[("k1", &generate_ed25519().0)]);
    let jwks = &tokens.keyring().jwks;
    assert_eq!(jwks["keys"][0]["kid"], "k1");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");
}
