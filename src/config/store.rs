//! `[store]`: the embedded store's directory and timings, and the CQL settings of a fleet.

use super::checker::Checker;
use super::model::*;
use super::raw::*;
use std::path::Path;
use std::time::Duration;

pub(super) fn store(c: &mut Checker, raw: &RawStore, base: &Path) -> StoreConfig {
    c.unknown_keys("store", &raw.extra);
    let scylla = match raw.kind.as_deref().unwrap_or("embedded") {
        "embedded" => {
            let scylla_only = [
                ("contact_points", raw.contact_points.is_some()),
                ("keyspace", raw.keyspace.is_some()),
                ("replication_factor", raw.replication_factor.is_some()),
                ("consistency", raw.consistency.is_some()),
                ("shards", raw.shards.is_some()),
                ("sync", raw.sync.is_some()),
                ("timeout", raw.timeout.is_some()),
                ("queue_ttl", raw.queue_ttl.is_some()),
                ("feed_interval", raw.feed_interval.is_some()),
                ("feed_safety", raw.feed_safety.is_some()),
                ("join_settle", raw.join_settle.is_some()),
            ];
            for (key, set) in scylla_only {
                if set {
                    c.problem(format!("store.{key}"), "only applies to kind = \"scylla\"");
                }
            }
            None
        }
        "scylla" => Some(scylla(c, raw)),
        other => {
            c.problem(
                "store.kind",
                format!("`{other}` is not one of: embedded, scylla"),
            );
            None
        }
    };
    let store = StoreConfig {
        data_dir: base.join(raw.data_dir.as_deref().unwrap_or("data")),
        tick: c.duration("store.tick".into(), &raw.tick, "1s"),
        snapshot_every: c.duration("store.snapshot_every".into(), &raw.snapshot_every, "30s"),
        scylla,
    };
    if store.tick.is_zero() || store.tick > Duration::from_secs(60) {
        c.problem("store.tick", "must be between 1ms and 60s");
    }
    store
}

fn scylla(c: &mut Checker, raw: &RawStore) -> ScyllaConfig {
    let contact_points = raw.contact_points.clone().unwrap_or_default();
    if contact_points.is_empty() {
        c.problem("store.contact_points", "name at least one host:port");
    }
    let keyspace = raw.keyspace.clone().unwrap_or_else(|| "usher".into());
    if !keyspace
        .chars()
        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        || keyspace.is_empty()
    {
        c.problem("store.keyspace", "use only a-z, 0-9 and '_'");
    }
    let consistency = match raw.consistency.as_deref().unwrap_or("local_quorum") {
        "one" => CqlConsistency::One,
        "local_one" => CqlConsistency::LocalOne,
        "quorum" => CqlConsistency::Quorum,
        "local_quorum" => CqlConsistency::LocalQuorum,
        "all" => CqlConsistency::All,
        other => {
            c.problem(
                "store.consistency",
                format!("`{other}` is not one of: one, local_one, quorum, local_quorum, all"),
            );
            CqlConsistency::LocalQuorum
        }
    };
    let sync = match raw.sync.as_deref().unwrap_or("auto") {
        "auto" => SyncMode::Auto,
        "cdc" => SyncMode::Cdc,
        "outbox" => SyncMode::Outbox,
        other => {
            c.problem(
                "store.sync",
                format!("`{other}` is not one of: auto, cdc, outbox"),
            );
            SyncMode::Auto
        }
    };
    ScyllaConfig {
        contact_points,
        keyspace,
        replication_factor: c.positive(
            "store.replication_factor".into(),
            raw.replication_factor,
            false,
            3,
        ),
        consistency,
        timeout: c.duration("store.timeout".into(), &raw.timeout, "2s"),
        shards: c.positive("store.shards".into(), raw.shards, false, 16),
        queue_ttl: c.duration("store.queue_ttl".into(), &raw.queue_ttl, "6h"),
        sync,
        feed_interval: c.duration("store.feed_interval".into(), &raw.feed_interval, "500ms"),
        feed_safety: c.duration("store.feed_safety".into(), &raw.feed_safety, "2s"),
        join_settle: c.duration("store.join_settle".into(), &raw.join_settle, "250ms"),
    }
}
