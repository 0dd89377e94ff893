//! Signing and verification keys: loaded from files or environment variables (never inline in the
//! config), one signing key and any number of older verification keys, each with a key id.
//! EdDSA keys are PKCS#8 / SPKI PEM (what `usher keygen` and `openssl genpkey -algorithm ed25519`
//! write); HS256 keys are a secret of at least 32 bytes.

use crate::config::{KeyRef, KeySource, Problem, TokenAlgorithm, TokenConfig};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use std::collections::HashMap;

/// DER prefix of a PKCS#8 Ed25519 private key; the 32-byte seed follows.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// DER prefix of an SPKI Ed25519 public key; the 32-byte key follows.
const SPKI_ED25519_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Keys ready for signing and verifying.
pub struct Keyring {
    /// The algorithm every token uses.
    pub algorithm: Algorithm,
    /// Key id of the signing key.
    pub signing_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    /// Public keys as a JWKS document (EdDSA only; empty for HS256).
    pub jwks: serde_json::Value,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("algorithm", &self.algorithm)
            .field("signing_kid", &self.signing_kid)
            .field("kids", &self.decoding.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn read_source(key: &KeyRef) -> Result<Vec<u8>, Problem> {
    let problem = |path: &str, message: String| Problem {
        path: format!("{}.{path}", key.path),
        message,
    };
    match &key.source {
        KeySource::File(path) => std::fs::read(path)
            .map_err(|e| problem("file", format!("cannot read {}: {e}", path.display()))),
        KeySource::Env(var) => std::env::var(var)
            .map(String::into_bytes)
            .map_err(|_| problem("env", format!("environment variable {var} is not set"))),
    }
}

/// Decodes the first PEM block: (label, DER bytes).
fn pem_block(text: &[u8]) -> Option<(String, Vec<u8>)> {
    let text = std::str::from_utf8(text).ok()?;
    let begin = text.find("-----BEGIN ")?;
    let rest = &text[begin + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end = rest.find("-----END ")?;
    let body: String = rest[body_start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    Some((label, STANDARD.decode(body).ok()?))
}

/// An Ed25519 key file: the private key (which also verifies) or only the public key.
enum EdKey {
    Private { der: Vec<u8>, public: [u8; 32] },
    Public([u8; 32]),
}

fn parse_ed_key(bytes: &[u8]) -> Result<EdKey, String> {
    let (label, der) = pem_block(bytes).ok_or("is not a PEM file")?;
    match label.as_str() {
        "PRIVATE KEY" if der.len() == 48 && der[..16] == PKCS8_ED25519_PREFIX => {
            let mut seed = [0u8; 32];
            seed.copy_from_slice(&der[16..]);
            let public = ed25519_dalek::SigningKey::from_bytes(&seed)
                .verifying_key()
                .to_bytes();
            Ok(EdKey::Private { der, public })
        }
        "PUBLIC KEY" if der.len() == 44 && der[..12] == SPKI_ED25519_PREFIX => {
            let mut public = [0u8; 32];
            public.copy_from_slice(&der[12..]);
            Ok(EdKey::Public(public))
        }
        _ => Err(format!(
            "is not an Ed25519 key (found a `{label}` PEM block)"
        )),
    }
}

fn hmac_secret(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    let secret = String::from_utf8(bytes)
        .map(|s| s.trim().as_bytes().to_vec())
        .map_err(|_| "must be text (for example 64 hex digits)".to_string())?;
    if secret.len() < 32 {
        return Err(format!(
            "an HS256 secret needs at least 32 bytes, this one has {}",
            secret.len()
        ));
    }
    Ok(secret)
}

impl Keyring {
    /// Loads every key in `config`, reporting each unreadable or malformed one.
    pub fn load(config: &TokenConfig) -> Result<Keyring, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut decoding = HashMap::new();
        let mut jwks = Vec::new();
        let mut encoding = None;
        let keys = std::iter::once(&config.signing_key).chain(&config.verification_keys);
        for (i, key) in keys.enumerate() {
            let signing = i == 0;
            let bytes = match read_source(key) {
                Ok(bytes) => bytes,
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            };
            let loaded = match config.algorithm {
                TokenAlgorithm::Hs256 => hmac_secret(bytes).map(|secret| {
                    if signing {
                        encoding = Some(EncodingKey::from_secret(&secret));
                    }
                    DecodingKey::from_secret(&secret)
                }),
                TokenAlgorithm::EdDsa => match parse_ed_key(&bytes) {
                    Ok(EdKey::Private { der, public }) => {
                        if signing {
                            encoding = Some(EncodingKey::from_ed_der(&der));
                        }
                        jwks.push(jwk(&key.kid, &public));
                        Ok(DecodingKey::from_ed_der(&public))
                    }
                    Ok(EdKey::Public(_)) if signing => {
                        Err("the signing key must be a private key".to_string())
                    }
                    Ok(EdKey::Public(public)) => {
                        jwks.push(jwk(&key.kid, &public));
                        Ok(DecodingKey::from_ed_der(&public))
                    }
                    Err(e) => Err(e),
                },
            };
            match loaded {
                Ok(decoding_key) => {
                    decoding.insert(key.kid.clone(), decoding_key);
                }
                Err(message) => problems.push(Problem {
                    path: key.path.clone(),
                    message,
                }),
            }
        }
        match encoding {
            Some(encoding) if problems.is_empty() => Ok(Keyring {
                algorithm: match config.algorithm {
                    TokenAlgorithm::EdDsa => Algorithm::EdDSA,
                    TokenAlgorithm::Hs256 => Algorithm::HS256,
                },
                signing_kid: config.signing_key.kid.clone(),
                encoding,
                decoding,
                jwks: serde_json::json!({ "keys": jwks }),
            }),
            _ => Err(problems),
        }
    }

    /// The key that signs new tokens.
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    /// The verification key with id `kid`.
    pub fn decoding_key(&self, kid: &str) -> Option<&DecodingKey> {
        self.decoding.get(kid)
    }
}

fn jwk(kid: &str, public: &[u8; 32]) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
        "kid": kid, "x": URL_SAFE_NO_PAD.encode(public),
    })
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A new Ed25519 key pair as (private PKCS#8 PEM, public SPKI PEM).
pub fn generate_ed25519() -> (String, String) {
    let seed: [u8; 32] = rand::random();
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    let mut private_der = PKCS8_ED25519_PREFIX.to_vec();
    private_der.extend_from_slice(&seed);
    let mut public_der = SPKI_ED25519_PREFIX.to_vec();
    public_der.extend_from_slice(&public);
    (
        pem("PRIVATE KEY", &private_der),
        pem("PUBLIC KEY", &public_der),
    )
}

/// A new HS256 secret: 64 hex digits (32 random bytes).
pub fn generate_hs256() -> String {
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}\n")
}
