//! Raw file types -> validated model, collecting every problem with its dotted path. Each
//! section is read by its own file (`server`, `zones`, `tokens`, `store`, `defence`, `events`,
//! `page`) with the shared [`Checker`]; this file puts them together.

use super::checker::Checker;
use super::model::*;
use super::raw::*;
use super::{page, Problem};
use crate::page::Strings;
use std::path::Path;
use std::sync::Arc;

/// Validates a raw configuration; `base` resolves relative paths. Returns every problem found.
pub fn validate(raw: RawConfig, base: &Path) -> Result<Config, Vec<Problem>> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    c.unknown_keys("", &raw.extra);

    let upstreams = super::upstreams::upstreams(&mut c, &raw.upstreams, base);
    let server = super::server::server(&mut c, &raw.server, &upstreams, base);
    let strings = Arc::new(page::strings(
        &mut c,
        "strings",
        &raw.strings,
        &Strings::default(),
    ));
    let defence = super::defence::top(&mut c, &raw.defence, base);
    let zones = super::zones::zones(
        &mut c,
        &raw.zones,
        &upstreams,
        &server.default_upstream,
        base,
        &strings,
        &defence,
    );
    let tokens = super::tokens::tokens(&mut c, &raw.tokens, base);

    let store = super::store::store(&mut c, &raw.store, base);
    let server = ServerConfig {
        upgrade_sock: match &raw.server.upgrade_sock {
            Some(path) => base.join(path),
            None => store.data_dir.join("upgrade.sock"),
        },
        ..server
    };
    // A Unix socket path is at most 107 bytes long.
    if server.upgrade_sock.as_os_str().len() > 107 {
        c.problem(
            "server.upgrade_sock",
            format!(
                "`{}` is longer than a Unix socket path may be (107 bytes); set a shorter one",
                server.upgrade_sock.display()
            ),
        );
    }

    c.unknown_keys("metrics", &raw.metrics.extra);
    let metrics = MetricsConfig {
        listen: raw
            .metrics
            .listen
            .as_deref()
            .and_then(|text| c.addr("metrics.listen".into(), text)),
    };

    let admin = super::admin::admin(&mut c, &raw.admin, base);
    let events_log = raw
        .events_log
        .as_ref()
        .map(|raw| super::events_log::events_log(&mut c, raw, base));

    if c.problems.is_empty() {
        Ok(Config {
            server,
            upstreams,
            zones,
            tokens,
            store,
            metrics,
            admin,
            events_log,
            strings,
        })
    } else {
        Err(c.problems)
    }
}
