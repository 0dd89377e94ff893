//! Tokens: claims, keys, signing and verification, the verified-token cache, and cookies.
//! A token that fails any check is a [`Rejection`] with a reason, which the gate treats exactly
//! like no token (it is never forwarded) and the metrics count by reason.

mod cache;
mod claims;
pub mod cookie;
pub mod keys;

#[cfg(test)]
mod tests;

pub use claims::{Claims, TokenKind};
pub use keys::Keyring;

use crate::admission::VisitorId;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cache::VerifiedCache;
use jsonwebtoken::{Header, Validation};
use std::sync::Arc;

/// Why a presented token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Not three base64url parts, or unreadable header or claims.
    Malformed,
    /// `alg: none`: unsigned tokens are never accepted.
    AlgNone,
    /// An algorithm other than the configured one.
    WrongAlgorithm,
    /// A key id usher does not know (or no key id).
    UnknownKid,
    /// The signature does not match.
    BadSignature,
    /// Past its expiry.
    Expired,
    /// Issued by someone else.
    WrongIssuer,
    /// Valid, but for another zone.
    WrongZone,
    /// Released or revoked by an operator.
    Revoked,
    /// Used from more client addresses than the zone's `session_clients` allow: revoked.
    Shared,
    /// A challenge or identity token where a place or session belongs.
    NotAPlace,
}

impl Rejection {
    /// Every reason, for pre-registering metric labels.
    pub const ALL: [Rejection; 11] = [
        Rejection::Malformed,
        Rejection::AlgNone,
        Rejection::WrongAlgorithm,
        Rejection::UnknownKid,
        Rejection::BadSignature,
        Rejection::Expired,
        Rejection::WrongIssuer,
        Rejection::WrongZone,
        Rejection::Revoked,
        Rejection::Shared,
        Rejection::NotAPlace,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::AlgNone => "alg_none",
            Rejection::WrongAlgorithm => "wrong_algorithm",
            Rejection::UnknownKid => "unknown_kid",
            Rejection::BadSignature => "bad_signature",
            Rejection::Expired => "expired",
            Rejection::WrongIssuer => "wrong_issuer",
            Rejection::WrongZone => "wrong_zone",
            Rejection::Revoked => "revoked",
            Rejection::Shared => "shared",
            Rejection::NotAPlace => "not_a_place",
        }
    }
}

/// Signs and verifies usher's tokens, caching verified ones.
pub struct Tokens {
    /// The keys in force; a reload swaps them whole.
    keyring: arc_swap::ArcSwap<Keyring>,
    issuer: String,
    cache: VerifiedCache,
}

impl Tokens {
    /// A token service over `keyring`, caching up to `cache_size` verified tokens.
    pub fn new(keyring: Keyring, issuer: &str, cache_size: usize) -> Self {
        Tokens {
            keyring: arc_swap::ArcSwap::from_pointee(keyring),
            issuer: issuer.to_string(),
            cache: VerifiedCache::new(cache_size),
        }
    }

    /// The keys, for the JWKS endpoint and `token inspect`.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.keyring.load_full()
    }

    /// Puts `keyring` in force (a reload): new tokens are signed with its signing key, and
    /// only its keys verify from now on; tokens verified before are checked again.
    pub fn replace_keys(&self, keyring: Keyring) {
        self.keyring.store(Arc::new(keyring));
        self.cache.clear();
    }

    /// The issuer written into every token.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs `claims` with the current signing key.
    pub fn sign(&self, claims: &Claims) -> String {
        let keyring = self.keyring.load();
        let mut header = Header::new(keyring.algorithm);
        header.kid = Some(keyring.signing_kid.clone());
        // Signing our own claims with a key that loaded cannot fail; an empty token would
        // simply be refused on the way back.
        jsonwebtoken::encode(&header, claims, keyring.encoding_key()).unwrap_or_default()
    }

    /// The keyed id of an identity (a shop's user id, an e-mail address): a hash of the
    /// signature over it. EdDSA and HS256 signatures are deterministic, so every node maps an
    /// identity to the same id, and only holders of the signing key can map one at all (the
    /// id travels in tokens the visitor sees; the identity itself never does).
    pub fn identity_id(&self, identity: &str) -> VisitorId {
        use sha2::{Digest, Sha256};
        let claims = Claims {
            iss: format!("usher identity\n{identity}"),
            typ: TokenKind::Identity,
            zone: "*".into(),
            vid: VisitorId(0),
            rank: 0,
            iat: 0,
            exp: 0,
            adm: None,
            pri: false,
        };
        let digest = Sha256::digest(self.sign(&claims).as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        VisitorId(u128::from_be_bytes(id))
    }

    /// A token saying the visitor is the identity with keyed id `id` ([`Tokens::identity_id`]),
    /// for `zone` (`*`: every zone), valid for `valid_s` seconds from `now_ms`: the identity
    /// cookie, and the `?usher_identity=` link `usher identity sign` makes.
    pub fn identity_token(&self, id: VisitorId, zone: &str, valid_s: u64, now_ms: u64) -> String {
        self.sign(&Claims {
            iss: self.issuer.clone(),
            typ: TokenKind::Identity,
            zone: zone.to_string(),
            vid: id,
            rank: 0,
            iat: now_ms / 1_000,
            exp: now_ms / 1_000 + valid_s,
            adm: None,
            pri: false,
        })
    }

    /// Verifies `token` at `now_ms`, from the cache when it was verified before.
    pub fn verify(&self, token: &str, now_ms: u64) -> Result<Arc<Claims>, Rejection> {
        let claims = match self.cache.get(token) {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.verify_uncached(token)?);
                self.cache.insert(token, claims.clone(), now_ms);
                claims
            }
        };
        if claims.exp * 1_000 <= now_ms {
            return Err(Rejection::Expired);
        }
        Ok(claims)
    }

    /// Checks header, key and signature without the cache or the clock (expiry is the caller's).
    pub fn verify_uncached(&self, token: &str) -> Result<Claims, Rejection> {
        let header = peek_header(token)?;
        let alg = header
            .get("alg")
            .and_then(|a| a.as_str())
            .ok_or(Rejection::Malformed)?;
        if alg.eq_ignore_ascii_case("none") {
            return Err(Rejection::AlgNone);
        }
        let keyring = self.keyring.load();
        if alg != algorithm_name(keyring.algorithm) {
            return Err(Rejection::WrongAlgorithm);
        }
        let kid = header
            .get("kid")
            .and_then(|k| k.as_str())
            .ok_or(Rejection::UnknownKid)?;
        let key = keyring.decoding_key(kid).ok_or(Rejection::UnknownKid)?;
        let mut validation = Validation::new(keyring.algorithm);
        // Expiry is checked against usher's injected clock, not jsonwebtoken's.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => Rejection::BadSignature,
                _ => Rejection::Malformed,
            }
        })?;
        if data.claims.iss != self.issuer {
            return Err(Rejection::WrongIssuer);
        }
        Ok(data.claims)
    }
}

fn algorithm_name(alg: jsonwebtoken::Algorithm) -> &'static str {
    match alg {
        jsonwebtoken::Algorithm::EdDSA => "EdDSA",
        jsonwebtoken::Algorithm::HS256 => "HS256",
        _ => "unsupported",
    }
}

/// The token's header as JSON, without trusting it.
fn peek_header(token: &str) -> Result<serde_json::Map<String, serde_json::Value>, Rejection> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| Rejection::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Rejection::Malformed)
}

/// Decodes a token's claims without checking anything, for `usher token inspect` to show what a
/// refused token says.
pub fn decode_unverified(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}
