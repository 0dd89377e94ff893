//! The visitors' TLS certificates (`[server] tls`): read from PEM files and checked (a chain, a
//! private key that matches its leaf), chosen per handshake by the name the client asks for
//! (SNI), and swapped whole on a reload without touching an open connection.
//!
//! A client that names no host, or a host none of the certificates is for, gets the first
//! certificate: an IP address typed into a browser still reaches the shop's page, with the
//! browser's warning, rather than a handshake failure nobody can read.
//!
//! Files on disk are outside input: [`certified`] parses the bytes without trusting them, and a
//! file larger than [`MAX_PEM`] is refused before it is read.

use crate::config::{CertFiles, Problem, TlsConfig};
use arc_swap::ArcSwap;
use rustls::client::verify_server_name;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

/// The largest PEM file read: a chain of a dozen certificates is about 20 KiB.
pub const MAX_PEM: u64 = 1024 * 1024;

/// One certificate in force, with the file it came from (for logs) and when it expires.
#[derive(Debug)]
struct Served {
    key: Arc<CertifiedKey>,
    file: String,
    /// The leaf's `notAfter`, Unix seconds.
    expires_s: i64,
}

/// The certificates a TLS listener serves, shared with every handshake.
#[derive(Debug)]
pub struct Certificates(ArcSwap<Vec<Served>>);

/// Certificates read from their files, ready to be put in force.
#[derive(Debug)]
pub struct Loaded(Vec<Served>);

impl Loaded {
    /// Reads and checks every certificate of `config`. Every problem is reported, with the
    /// config path of the entry it concerns.
    pub fn read(config: &TlsConfig) -> Result<Loaded, Vec<Problem>> {
        let mut served = Vec::new();
        let mut problems = Vec::new();
        for (i, files) in config.certs.iter().enumerate() {
            let path = match config.certs.len() {
                1 => "server.tls".to_string(),
                _ => format!("server.tls[{i}]"),
            };
            match read_pair(files) {
                Ok(key) => served.push(Served {
                    expires_s: expiry(&key),
                    key: Arc::new(key),
                    file: files.cert.display().to_string(),
                }),
                Err(message) => problems.push(Problem { path, message }),
            }
        }
        match problems.is_empty() {
            true => Ok(Loaded(served)),
            false => Err(problems),
        }
    }
}

impl Certificates {
    /// Serves `loaded`.
    pub fn new(loaded: Loaded) -> Arc<Self> {
        Arc::new(Certificates(ArcSwap::from_pointee(loaded.0)))
    }

    /// Serves `loaded` from the next handshake on; open connections keep theirs.
    pub fn replace(&self, loaded: Loaded) {
        self.0.store(Arc::new(loaded.0));
    }

    /// The certificate for a client asking for `name` (`None`: it named none).
    fn choose(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let served = self.0.load();
        let wanted = name.and_then(|n| ServerName::try_from(n).ok());
        let chosen = wanted.and_then(|wanted| {
            served.iter().find(|s| {
                s.key.end_entity_cert().ok().is_some_and(|leaf| {
                    ParsedCertificate::try_from(leaf)
                        .is_ok_and(|parsed| verify_server_name(&parsed, &wanted).is_ok())
                })
            })
        });
        chosen.or_else(|| served.first()).map(|s| s.key.clone())
    }

    /// The files in force, in order (for the start-up log line).
    pub fn files(&self) -> Vec<String> {
        self.0.load().iter().map(|s| s.file.clone()).collect()
    }

    /// Each file in force with its leaf's expiry (Unix seconds).
    pub fn expiries(&self) -> Vec<(String, i64)> {
        self.0
            .load()
            .iter()
            .map(|s| (s.file.clone(), s.expires_s))
            .collect()
    }
}

/// The leaf's `notAfter` (Unix seconds; 0 if it cannot be read, which [`certified`] already
/// ruled out).
fn expiry(key: &CertifiedKey) -> i64 {
    key.end_entity_cert()
        .ok()
        .and_then(|leaf| x509_parser::parse_x509_certificate(leaf).ok())
        .map_or(0, |(_, cert)| cert.validity().not_after.timestamp())
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.server_name())
    }
}

/// Reads one certificate's two files.
fn read_pair(files: &CertFiles) -> Result<CertifiedKey, String> {
    let cert = read_pem_file(&files.cert)?;
    let key = read_pem_file(&files.key)?;
    certified(&cert, &key).map_err(|e| {
        format!(
            "{e} (cert {}, key {})",
            files.cert.display(),
            files.key.display()
        )
    })
}

/// The bytes of a PEM file, refused unread when it is over [`MAX_PEM`].
pub fn read_pem_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let too_big = |len: u64| {
        format!(
            "{} is {len} bytes; a PEM file is at most {MAX_PEM}",
            path.display()
        )
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_PEM => return Err(too_big(meta.len())),
        Ok(_) => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The certificates of a PEM file, in order: at least one, every block well formed (their
/// contents are not parsed here).
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate file is not PEM: {e}"))?;
    match certs.is_empty() {
        true => Err("the certificate file holds no certificate".to_string()),
        false => Ok(certs),
    }
}

/// A chain (PEM, leaf first) and its private key (PEM) as one certificate to serve: the
/// chain must hold at least one certificate that parses, the key file exactly one key, and the
/// key must belong to the leaf.
pub fn certified(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    let chain = pem_certificates(cert_pem)?;
    // `pem_certificates` never returns an empty chain.
    ParsedCertificate::try_from(&chain[0])
        .map_err(|e| format!("the first certificate cannot be read: {e}"))?;
    let mut keys = PrivateKeyDer::pem_slice_iter(key_pem);
    let key = match keys.next() {
        None => return Err("the key file holds no private key".to_string()),
        Some(Err(e)) => return Err(format!("the key file is not PEM: {e}")),
        Some(Ok(key)) => key,
    };
    if keys.next().is_some() {
        return Err("the key file holds more than one private key".to_string());
    }
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| format!("the key cannot be used with the certificate: {e}"))
}

#[cfg(test)]
mod tests;
