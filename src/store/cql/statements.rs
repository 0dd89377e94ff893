//! The CQL store's prepared statements: one per operation, all with the configured timeout and
//! consistency; lightweight transactions with the matching serial consistency, the rest marked
//! idempotent so the driver may retry them.

use super::unavailable;
use crate::config::{CqlConsistency, ScyllaConfig};
use crate::store::StoreError;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};

/// Prepared statements, one per operation.
pub(super) struct Statements {
    pub(super) load: PreparedStatement,
    pub(super) load_serial: PreparedStatement,
    pub(super) create: PreparedStatement,
    pub(super) update: PreparedStatement,
    pub(super) touch: PreparedStatement,
    pub(super) scan: PreparedStatement,
    pub(super) scan_all: PreparedStatement,
    pub(super) scan_through: PreparedStatement,
    pub(super) forget: PreparedStatement,
    pub(super) forget_one: PreparedStatement,
    pub(super) slot_read: PreparedStatement,
    pub(super) slot_read_serial: PreparedStatement,
    pub(super) slot_insert: PreparedStatement,
    pub(super) slot_update: PreparedStatement,
    pub(super) ledger_write: PreparedStatement,
    pub(super) ledger_read: PreparedStatement,
    pub(super) revoked_write: PreparedStatement,
    pub(super) revoked_read: PreparedStatement,
    pub(super) outbox_write: PreparedStatement,
    pub(super) outbox_read: PreparedStatement,
    pub(super) identity_insert: PreparedStatement,
    pub(super) identity_read_serial: PreparedStatement,
    pub(super) code_insert: PreparedStatement,
    pub(super) code_read_serial: PreparedStatement,
    pub(super) code_use: PreparedStatement,
    pub(super) overrides_read: PreparedStatement,
    pub(super) overrides_write: PreparedStatement,
}

impl Statements {
    /// Prepares every statement on `session` for `settings`' keyspace.
    pub(super) async fn prepare(
        session: &Session,
        settings: &ScyllaConfig,
    ) -> Result<Statements, StoreError> {
        let ks = &settings.keyspace;
        let prepare = |cql: String, lwt: bool| async move {
            let mut statement = session.prepare(cql).await.map_err(unavailable)?;
            statement.set_request_timeout(Some(settings.timeout));
            statement.set_consistency(consistency(settings.consistency));
            if lwt {
                statement.set_serial_consistency(Some(serial(settings.consistency)));
            } else {
                statement.set_is_idempotent(true);
            }
            Ok::<_, StoreError>(statement)
        };
        let load_cql = format!("SELECT state FROM {ks}.zones WHERE zone = ?");
        let mut load_serial = prepare(load_cql.clone(), false).await?;
        load_serial.set_consistency(Consistency::Serial);
        let slot_read_cql = format!(
            "SELECT status, bucket, admitted_at FROM {ks}.sessions WHERE zone = ? AND visitor = ?"
        );
        let mut slot_read_serial = prepare(slot_read_cql.clone(), false).await?;
        slot_read_serial.set_consistency(Consistency::Serial);
        let mut identity_read_serial = prepare(
            format!("SELECT rank FROM {ks}.identities WHERE zone = ? AND visitor = ?"),
            false,
        )
        .await?;
        identity_read_serial.set_consistency(Consistency::Serial);
        let mut code_read_serial = prepare(
            format!("SELECT uses, until FROM {ks}.codes WHERE zone = ? AND hash = ?"),
            false,
        )
        .await?;
        code_read_serial.set_consistency(Consistency::Serial);
        Ok(Statements {
            code_insert: prepare(
                format!(
                    "INSERT INTO {ks}.codes (zone, hash, uses, until) VALUES (?, ?, ?, ?) \
                     USING TTL ?"
                ),
                false,
            )
            .await?,
            code_read_serial,
            code_use: prepare(
                format!("UPDATE {ks}.codes SET uses = ? WHERE zone = ? AND hash = ? IF uses = ?"),
                true,
            )
            .await?,
            identity_insert: prepare(
                format!(
                    "INSERT INTO {ks}.identities (zone, visitor, rank) VALUES (?, ?, ?) \
                     IF NOT EXISTS USING TTL ?"
                ),
                true,
            )
            .await?,
            identity_read_serial,
            overrides_read: prepare(
                format!("SELECT overrides FROM {ks}.overrides WHERE zone = ?"),
                false,
            )
            .await?,
            overrides_write: prepare(
                format!("INSERT INTO {ks}.overrides (zone, overrides) VALUES (?, ?)"),
                false,
            )
            .await?,
            load: prepare(load_cql, false).await?,
            load_serial,
            create: prepare(
                format!("INSERT INTO {ks}.zones (zone, version, state) VALUES (?, ?, ?) IF NOT EXISTS"),
                true,
            )
            .await?,
            update: prepare(
                format!("UPDATE {ks}.zones SET version = ?, state = ? WHERE zone = ? IF version = ?"),
                true,
            )
            .await?,
            touch: prepare(
                format!(
                    "UPDATE {ks}.queue USING TTL ? SET last_seen = ? \
                     WHERE zone = ? AND shard = ? AND rank = ? AND visitor = ?"
                ),
                false,
            )
            .await?,
            scan: prepare(
                format!(
                    "SELECT rank, visitor, last_seen FROM {ks}.queue \
                     WHERE zone = ? AND shard = ? AND (rank, visitor) > (?, ?) LIMIT ?"
                ),
                false,
            )
            .await?,
            scan_all: prepare(
                format!(
                    "SELECT rank, visitor FROM {ks}.queue WHERE zone = ? AND shard = ? \
                     AND (rank, visitor) > (?, ?)"
                ),
                false,
            )
            .await?,
            scan_through: prepare(
                format!(
                    "SELECT rank, visitor, last_seen FROM {ks}.queue WHERE zone = ? AND shard = ? \
                     AND (rank, visitor) > (?, ?) AND (rank, visitor) <= (?, ?) LIMIT ?"
                ),
                false,
            )
            .await?,
            slot_read: prepare(slot_read_cql, false).await?,
            slot_read_serial,
            slot_insert: prepare(
                format!(
                    "INSERT INTO {ks}.sessions (zone, visitor, status, bucket, admitted_at) \
                     VALUES (?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?"
                ),
                true,
            )
            .await?,
            slot_update: prepare(
                format!(
                    "UPDATE {ks}.sessions USING TTL ? SET status = ?, bucket = ?, admitted_at = ? \
                     WHERE zone = ? AND visitor = ? IF status = ? AND bucket = ?"
                ),
                true,
            )
            .await?,
            ledger_write: prepare(
                format!(
                    "INSERT INTO {ks}.ledger (zone, shard, bucket, node, slots) VALUES (?, ?, ?, ?, ?) \
                     USING TTL ? AND TIMESTAMP ?"
                ),
                false,
            )
            .await?,
            revoked_write: prepare(
                format!(
                    "INSERT INTO {ks}.revoked (zone, shard, visitor, until) VALUES (?, ?, ?, ?) \
                     USING TTL ?"
                ),
                false,
            )
            .await?,
            revoked_read: prepare(
                format!("SELECT visitor, until FROM {ks}.revoked WHERE zone = ? AND shard = ?"),
                false,
            )
            .await?,
            ledger_read: prepare(
                format!(
                    "SELECT slots FROM {ks}.ledger WHERE zone = ? AND shard = ? AND bucket > ?"
                ),
                false,
            )
            .await?,
            forget: prepare(
                format!(
                    "DELETE FROM {ks}.queue WHERE zone = ? AND shard = ? \
                     AND (rank, visitor) > (?, ?) AND (rank, visitor) <= (?, ?)"
                ),
                false,
            )
            .await?,
            forget_one: prepare(
                format!(
                    "DELETE FROM {ks}.queue WHERE zone = ? AND shard = ? AND rank = ? AND visitor = ?"
                ),
                false,
            )
            .await?,
            outbox_write: prepare(
                format!("INSERT INTO {ks}.outbox (bucket, at, id, change) VALUES (?, ?, ?, ?)"),
                false,
            )
            .await?,
            outbox_read: prepare(
                format!("SELECT at, change FROM {ks}.outbox WHERE bucket = ? AND at > ?"),
                false,
            )
            .await?,
        })
    }
}

fn consistency(c: CqlConsistency) -> Consistency {
    match c {
        CqlConsistency::One => Consistency::One,
        CqlConsistency::LocalOne => Consistency::LocalOne,
        CqlConsistency::Quorum => Consistency::Quorum,
        CqlConsistency::LocalQuorum => Consistency::LocalQuorum,
        CqlConsistency::All => Consistency::All,
    }
}

/// The serial consistency that goes with a data-center-local or global consistency.
fn serial(c: CqlConsistency) -> SerialConsistency {
    match c {
        CqlConsistency::LocalOne | CqlConsistency::LocalQuorum => SerialConsistency::LocalSerial,
        _ => SerialConsistency::Serial,
    }
}
