//! Creates or checks usher's keyspace and tables, idempotently. Server-specific DDL goes only to
//! servers that accept it: ScyllaDB (told apart by `system.local.supported_features`, which
//! Cassandra lacks) gets its keyspace with tablets off, which LWT needs on ScyllaDB versions
//! with tablets; Cassandra gets plain CQL.

use super::unavailable;
use crate::config::{ScyllaConfig, SyncMode};
use crate::store::StoreError;
use scylla::client::session::Session;

/// Whether the server is ScyllaDB.
pub(super) async fn is_scylla(session: &Session) -> bool {
    session
        .query_unpaged("SELECT supported_features FROM system.local", &[])
        .await
        .is_ok()
}

fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 48
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Which feed `sync` means on this server: `auto` is CDC on ScyllaDB and the outbox elsewhere;
/// `cdc` anywhere but ScyllaDB is an error.
pub(super) fn resolve(sync: SyncMode, scylla: bool) -> Result<SyncMode, StoreError> {
    match (sync, scylla) {
        (SyncMode::Auto, true) | (SyncMode::Cdc, true) => Ok(SyncMode::Cdc),
        (SyncMode::Auto, false) | (SyncMode::Outbox, _) => Ok(SyncMode::Outbox),
        (SyncMode::Cdc, false) => Err(StoreError::Unavailable(
            "store.sync = \"cdc\" needs ScyllaDB (this server has no change data capture); \
             use \"outbox\" or \"auto\""
                .into(),
        )),
    }
}

/// Creates the keyspace and tables if missing, with CDC on `zones` and `sessions` if the feed is
/// `cdc`; returns the feed in use.
pub(super) async fn create(
    session: &Session,
    settings: &ScyllaConfig,
) -> Result<SyncMode, StoreError> {
    let ks = &settings.keyspace;
    if !plain_name(ks) {
        return Err(StoreError::Unavailable(format!(
            "keyspace `{ks}`: use only a-z, 0-9 and '_'"
        )));
    }
    let rf = settings.replication_factor.max(1);
    let scylla = is_scylla(session).await;
    let sync = resolve(settings.sync, scylla)?;
    let tablets = if scylla {
        " AND tablets = {'enabled': false}"
    } else {
        ""
    };
    // Scylla-only DDL, sent only to ScyllaDB.
    let cdc = if sync == SyncMode::Cdc {
        " WITH cdc = {'enabled': true}"
    } else {
        ""
    };
    let statements = [
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = \
             {{'class': 'SimpleStrategy', 'replication_factor': {rf}}}{tablets}"
        ),
        // The one contended row per zone: changed only by the exchanger's compare-and-set.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.zones \
             (zone text PRIMARY KEY, version bigint, state text){cdc}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.queue (zone text, shard int, rank bigint, \
             visitor text, last_seen bigint, PRIMARY KEY ((zone, shard), rank, visitor))"
        ),
        // One partition per visitor: claims, renewals and releases never contend.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.sessions (zone text, visitor text, status text, \
             bucket bigint, admitted_at bigint, PRIMARY KEY ((zone, visitor))){cdc}"
        ),
        // Slot counts by expiry second; each node writes only its own rows, all in the one
        // shard its id hashes to (so a node's batch is one partition).
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.ledger (zone text, shard int, bucket bigint, \
             node text, slots bigint, PRIMARY KEY ((zone, shard), bucket, node))"
        ),
        // Released sessions by zone, so a node that starts can load the revocations in force.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.revoked (zone text, shard int, visitor text, \
             until bigint, PRIMARY KEY ((zone, shard), visitor))"
        ),
        // Identities' places: the first arrival of each identity, one partition each.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.identities (zone text, visitor text, rank bigint, \
             PRIMARY KEY ((zone, visitor)))"
        ),
        // Priority codes: one partition per code (by its hash), uses left, expiring by TTL.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.codes (zone text, hash text, uses int, \
             until bigint, PRIMARY KEY ((zone, hash)))"
        ),
        // Live overrides: one row per zone, the overrides as JSON, replaced whole.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.overrides (zone text PRIMARY KEY, overrides text)"
        ),
        // The transactional outbox: every committed change, by 10-second bucket.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.outbox (bucket bigint, at bigint, id bigint, \
             change text, PRIMARY KEY (bucket, at, id)) WITH default_time_to_live = 3600"
        ),
    ];
    for statement in statements {
        session
            .query_unpaged(statement, &[])
            .await
            .map_err(unavailable)?;
    }
    Ok(sync)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_means_cdc_on_scylladb_and_the_outbox_elsewhere() {
        assert_eq!(resolve(SyncMode::Auto, true).ok(), Some(SyncMode::Cdc));
        assert_eq!(resolve(SyncMode::Auto, false).ok(), Some(SyncMode::Outbox));
        assert_eq!(resolve(SyncMode::Outbox, true).ok(), Some(SyncMode::Outbox));
        let refused = resolve(SyncMode::Cdc, false).expect_err("Cassandra has no CDC log");
        assert!(refused.to_string().contains("needs ScyllaDB"), "{refused}");
    }
}
