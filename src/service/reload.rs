//! Reloading the configuration in place (`SIGHUP`, `POST /v1/reload`): the file is read and
//! checked like at start, with its keys loaded; if anything is wrong every problem is logged
//! and the running configuration stays. Otherwise the zones (limits, modes, paths, templates,
//! texts, per-client limits, schedules; the live overrides stay on top), the upstreams and the
//! token keys are swapped in, each whole, without touching a connection. Settings that only a
//! restart can change (listeners, the store, the proxy's `[server]` settings, cookie names) are
//! named in the log and in the answer; `usher upgrade` applies them without downtime.

use crate::admin::{Reload, Reloaded};
use crate::clock::SharedClock;
use crate::config::{Config, Problem, ServerConfig, TlsConfig};
use crate::metrics::Metrics;
use crate::proxy::Upstreams;
use crate::room::Room;
use crate::tls::{Certificates, Loaded};
use crate::token::Keyring;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Reloads one node's configuration from its file.
pub struct Reloader {
    /// The file `usher run --config` named.
    path: PathBuf,
    room: Arc<Room>,
    upstreams: Arc<Upstreams>,
    /// The TLS listener's certificates (re-read on every reload); `None` without `[server] tls`.
    certificates: Option<Arc<Certificates>>,
    /// The configuration in force (what a reload is compared with).
    running: Mutex<Config>,
    metrics: Metrics,
    clock: SharedClock,
}

/// The configuration file's hash: the first 48 bits of its SHA-256, exact in a metric's float.
fn hash_of(bytes: &[u8]) -> u64 {
    let digest = Sha256::digest(bytes);
    digest[..6]
        .iter()
        .fold(0u64, |h, b| (h << 8) | u64::from(*b))
}

/// Sections and settings that differ between `old` and `new` but are only read at start.
/// Compared by their `Debug` text: every section prints every setting (secrets excepted, and a
/// changed admin token is a changed `[admin]` only through its name or role).
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    /// The restart-only parts of a config, by name.
    fn parts(c: &Config) -> [(&'static str, String); 10] {
        let t = &c.tokens;
        [
            // Certificates are reloaded; turning TLS on or off is a listener change.
            (
                "server",
                format!(
                    "{:?}",
                    ServerConfig {
                        tls: c
                            .server
                            .tls
                            .as_ref()
                            .map(|_| TlsConfig { certs: Vec::new() }),
                        ..c.server.clone()
                    }
                ),
            ),
            ("metrics", format!("{:?}", c.metrics)),
            ("admin", format!("{:?}", c.admin)),
            ("store", format!("{:?}", c.store)),
            ("events_log", format!("{:?}", c.events_log)),
            ("tokens.issuer", t.issuer.clone()),
            ("tokens.cookie_prefix", t.cookie_prefix.clone()),
            ("tokens.cookie_secure", t.cookie_secure.to_string()),
            ("tokens.visitor_ttl", format!("{:?}", t.visitor_ttl)),
            ("tokens.cache_size", t.cache_size.to_string()),
        ]
    }
    parts(old)
        .into_iter()
        .zip(parts(new))
        .filter(|((_, a), (_, b))| a != b)
        .map(|((name, _), _)| name.to_string())
        .collect()
}

impl Reloader {
    /// A reloader of the file at `path`, whose configuration `running` is in force now.
    pub fn new(
        path: PathBuf,
        running: Config,
        room: Arc<Room>,
        upstreams: Arc<Upstreams>,
        certificates: Option<Arc<Certificates>>,
        clock: SharedClock,
    ) -> Self {
        let metrics = room.metrics().clone();
        if let Ok(bytes) = std::fs::read(&path) {
            metrics.config_hash.set(hash_of(&bytes) as i64);
        }
        metrics.config_loaded.set((clock.now_ms() / 1_000) as i64);
        for result in ["ok", "invalid"] {
            metrics.reloads.with_label_values(&[result]);
        }
        Reloader {
            path,
            room,
            upstreams,
            certificates,
            running: Mutex::new(running),
            metrics,
            clock,
        }
    }

    fn try_reload(&self) -> Result<Reloaded, Vec<Problem>> {
        let problem = |message: String| Problem {
            path: self.path.display().to_string(),
            message,
        };
        let bytes =
            std::fs::read(&self.path).map_err(|e| vec![problem(format!("cannot read: {e}"))])?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| vec![problem("is not UTF-8".to_string())])?;
        let base = self.path.parent().unwrap_or(std::path::Path::new("."));
        let config = crate::config::parse(&text, base).map_err(|e| e.problems())?;
        let keyring = Keyring::load(&config.tokens)?;
        // The certificate files are read again even when their paths did not change: renewing
        // a certificate in place and reloading is how it is rotated.
        let certificates = match (&self.certificates, &config.server.tls) {
            (Some(_), Some(tls)) => Some(Loaded::read(tls)?),
            _ => None,
        };
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let restart = needs_restart(&running, &config);
        let refused = |message| {
            vec![Problem {
                path: "zones".into(),
                message,
            }]
        };
        self.room.check_zones(&config).map_err(refused)?;
        // Upstreams first, so a zone moved to a new upstream finds it at once. A new or changed
        // upstream's names are resolved here: one that does not resolve refuses the reload.
        self.upstreams.replace(&config)?;
        self.room.tokens().replace_keys(keyring);
        if let (Some(serving), Some(loaded)) = (&self.certificates, certificates) {
            serving.replace(loaded);
            publish_certificates(serving, &self.metrics, self.clock.now_ms() / 1_000);
        }
        self.room.reload_zones(&config).map_err(refused)?;
        *running = config;
        let hash = hash_of(&bytes);
        self.metrics.config_hash.set(hash as i64);
        self.metrics
            .config_loaded
            .set((self.clock.now_ms() / 1_000) as i64);
        Ok(Reloaded {
            hash: format!("{hash:012x}"),
            needs_restart: restart,
        })
    }
}

/// How long before a certificate expires its reload and start warn.
const EXPIRY_WARNING_S: u64 = 14 * 24 * 3_600;

/// Puts the expiry of every certificate in force in `usher_tls_certificate_expiry_timestamp_seconds`
/// (a reload's files replace the previous ones) and warns about any expiring within two weeks.
pub(super) fn publish_certificates(certificates: &Certificates, metrics: &Metrics, now_s: u64) {
    metrics.tls_expiry.reset();
    for (file, expires_s) in certificates.expiries() {
        metrics
            .tls_expiry
            .with_label_values(&[&file])
            .set(expires_s);
        let left_s = expires_s - now_s as i64;
        if left_s <= 0 {
            tracing::error!(%file, "this TLS certificate has expired: renew it and reload");
        } else if left_s < EXPIRY_WARNING_S as i64 {
            tracing::warn!(%file, days_left = left_s / 86_400, "this TLS certificate expires soon: renew it and reload");
        }
    }
}

impl Reload for Reloader {
    fn reload(&self) -> Result<Reloaded, Vec<Problem>> {
        let result = self.try_reload();
        match &result {
            Ok(reloaded) => {
                self.metrics.reloads.with_label_values(&["ok"]).inc();
                tracing::info!(file = %self.path.display(), hash = %reloaded.hash, "config reloaded");
                if !reloaded.needs_restart.is_empty() {
                    tracing::warn!(
                        changed = ?reloaded.needs_restart,
                        "these settings changed but are read only at start: run `usher upgrade` to apply them"
                    );
                }
            }
            Err(problems) => {
                self.metrics.reloads.with_label_values(&["invalid"]).inc();
                for p in problems {
                    tracing::error!(problem = %p, "config reload refused");
                }
                tracing::error!(
                    file = %self.path.display(),
                    problems = problems.len(),
                    "config reload refused: the running config stays in force"
                );
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::needs_restart;

    fn config(server: &str, rest: &str) -> crate::config::Config {
        let text = format!(
            "[server]\n{server}[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n\
             [tokens]\nsigning_key = {{ kid = \"k\", env = \"X\" }}\n\
             [zones.a]\npaths = [\"/a\"]\ncapacity = 1\nadmit_per_minute = 60\n{rest}"
        );
        crate::config::parse(&text, std::path::Path::new(".")).expect("valid")
    }

    #[test]
    fn certificates_are_reloaded_but_listeners_and_the_event_log_need_a_restart() {
        let tls = |file: &str| format!("tls = {{ cert = \"{file}.pem\", key = \"{file}.key\" }}\n");
        let base = config(&tls("a"), "");
        assert!(
            needs_restart(&base, &config(&tls("b"), "")).is_empty(),
            "new certificate files"
        );
        assert_eq!(needs_restart(&base, &config("", "")), ["server"], "TLS off");
        let logged = config(&tls("a"), "[events_log]\npath = \"events.jsonl\"\n");
        assert_eq!(needs_restart(&base, &logged), ["events_log"]);
    }
}
