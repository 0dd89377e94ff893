//! Where shared state lives (`docs/architecture.md`, "State and the exchanger"). [`Store`] and
//! [`ChangeFeed`] are the seams a second backend (ScyllaDB) implements; [`embedded`] is the
//! single-node backend. Everything a store does is an async call the caller bounds with a
//! timeout; decisions that must be exact (the zone compare-and-set) go to the store, while the
//! change feed only keeps caches warm.

pub mod cql;
pub mod deferred;
pub mod embedded;

#[cfg(test)]
pub(crate) mod contract;

use crate::admission::{Claim, Grant, QueueKey, VisitorId, ZoneState};
use crate::config::overrides::Overrides;
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Why a store call failed. Expected outcomes (a lost compare-and-set) are values, not errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer in time.
    #[error("store call timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The store is unreachable or refused the call.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Local persistence failed.
    #[error("store io error: {0}")]
    Io(#[from] std::io::Error),
    /// A store file is damaged (not just a torn last log record, which is cut off): nothing
    /// was changed, and the store refuses to open until an operator decides.
    #[error(
        "{} is damaged at byte {offset}: {what}; nothing was changed. Run `usher store verify \
         --config FILE`, then `usher store repair --config FILE` (it keeps the longest valid \
         prefix and moves the damaged files aside)",
        file.display()
    )]
    Damaged {
        /// The file.
        file: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A store file of a format this usher does not read.
    #[error("{}: {what}", file.display())]
    Unsupported {
        /// The file.
        file: PathBuf,
        /// Which format, and what to do.
        what: String,
    },
    /// Another process owns the data directory.
    #[error(
        "{} is in use by {}; stop it first, or replace it without downtime with `usher \
         upgrade --config FILE`",
        dir.display(),
        pid.map_or_else(|| "another usher process".to_string(), |pid| format!("usher PID {pid}"))
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The PID written in its lock file, if readable.
        pid: Option<u32>,
    },
}

/// A state change, as the change feed delivers it.
#[derive(Debug, Clone)]
pub enum Change {
    /// A zone's state row was replaced (cursor moved, counters changed).
    Zone {
        /// Zone name.
        zone: Arc<str>,
        /// The state after the change.
        state: Arc<ZoneState>,
    },
    /// A visitor's session was released: refuse their access token until second `until_s`.
    Revoked {
        /// Zone name.
        zone: Arc<str>,
        /// The visitor.
        visitor: VisitorId,
        /// End of the revocation (when the token would have expired anyway).
        until_s: u64,
    },
}

/// A priority code as stored: never the code itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PriorityCode {
    /// SHA-256 of the code, 64 hex digits.
    pub hash: String,
    /// Uses left.
    pub uses: u32,
    /// The second it expires.
    pub until_s: u64,
}

/// Shared zone state, the queue, visitors' slots and the slot ledger. Object-safe; every call
/// may fail or be slow, so callers bound each with a timeout and apply the zone's store-error
/// policy.
///
/// Only the zone state is contended (one compare-and-set per exchanger tick, fleet-wide);
/// every other write touches one visitor's entry or this node's own ledger rows.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The zone's state, or `None` if the zone has never been written.
    async fn load(&self, zone: &str) -> Result<Option<ZoneState>, StoreError>;

    /// Commits a tick: replaces the zone's state if its version is still `expected` (`None`:
    /// only if absent); if that applied, reserves a slot for every visitor in `grant` and drops
    /// the queue entries the tick is done with: those after `grant.from` up to the new cursor,
    /// and the admitted ones at or below `grant.from` (returned visitors not admitted yet stay). Changes are published only once the
    /// reservations are written, so no node sees the cursor pass a visitor before their slot
    /// exists. Returns `None` if another writer won, else how many slots it reserved (a
    /// visitor who already holds a slot, granted twice in a race between nodes, is not counted).
    async fn commit_tick(
        &self,
        zone: &str,
        expected: Option<u64>,
        state: &ZoneState,
        grant: &Grant,
    ) -> Result<Option<u32>, StoreError>;

    /// Adds `key` to the queue or, if present, marks it seen at `now_ms`. Idempotent: a visitor
    /// whose entry was lost re-joins at the rank their token carries.
    async fn touch(&self, zone: &str, key: QueueKey, now_ms: u64) -> Result<(), StoreError>;

    /// Up to `limit` queued keys after `after`, in order, skipping those not seen since `seen_since_ms`.
    async fn live_after(
        &self,
        zone: &str,
        after: QueueKey,
        seen_since_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueueKey>, StoreError>;

    /// Up to `limit` queued keys at or below `cursor` seen since `seen_since_ms`, in order, whose
    /// visitors hold no live slot (reserved, active, or released): visitors the cursor passed while they were away (or before their
    /// join landed, or whose reservation lapsed) who came back. They go first at the next tick.
    /// Entries of visitors holding a slot are ones a tick just admitted and has not dropped yet.
    async fn returned(
        &self,
        zone: &str,
        cursor: QueueKey,
        seen_since_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueueKey>, StoreError>;

    /// How many queued visitors stand strictly between `cursor` and `key`.
    async fn ahead(&self, zone: &str, cursor: QueueKey, key: QueueKey) -> Result<u64, StoreError>;

    /// How many queued visitors stand after `cursor`.
    async fn waiting(&self, zone: &str, cursor: QueueKey) -> Result<u64, StoreError>;

    /// An admitted visitor takes their reserved slot as a session expiring at second `to`.
    async fn claim(
        &self,
        zone: &str,
        visitor: VisitorId,
        to: u64,
        now_ms: u64,
    ) -> Result<Claim, StoreError>;

    /// Moves `visitor`'s session from second `from` to `to`; false if it is not there.
    async fn renew(
        &self,
        zone: &str,
        visitor: VisitorId,
        from: u64,
        to: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Frees `visitor`'s session and revokes their token; returns the second the revocation
    /// lasts until, or `None` if there was no session. Published as [`Change::Revoked`].
    async fn release(
        &self,
        zone: &str,
        visitor: VisitorId,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError>;

    /// The arrival of identity `visitor`'s place in `zone`: the first `rank` ever offered for it
    /// (kept until second `until_s`), so every device of one identity shares one place. A
    /// later call with another rank gets the first one back; an expired one is replaced.
    async fn identity_rank(
        &self,
        zone: &str,
        visitor: VisitorId,
        rank: u64,
        until_s: u64,
        now_ms: u64,
    ) -> Result<u64, StoreError>;

    /// Adds priority codes to `zone` (the admin API's `POST /v1/zones/{zone}/codes`).
    async fn add_codes(&self, zone: &str, codes: &[PriorityCode]) -> Result<(), StoreError>;

    /// Uses one use of the code whose hash is `hash`: `true` if it had one left and had not
    /// expired at `now_ms`. Across a fleet each use is granted once.
    async fn use_code(&self, zone: &str, hash: &str, now_ms: u64) -> Result<bool, StoreError>;

    /// The live overrides of `zone` (the admin API's `PATCH`), if any were ever set.
    async fn overrides(&self, zone: &str) -> Result<Option<Overrides>, StoreError>;

    /// Replaces the live overrides of `zone` (empty: the zone runs as configured). Every node
    /// reads them at its next tick.
    async fn set_overrides(&self, zone: &str, overrides: &Overrides) -> Result<(), StoreError>;

    /// Slots occupied at `now_ms` (sessions and reservations), over every node.
    async fn active(&self, zone: &str, now_ms: u64) -> Result<u64, StoreError>;

    /// Revocations in force at `now_ms`, for warming a node's cache at start (the change feed
    /// carries the ones made later).
    async fn revocations(
        &self,
        zone: &str,
        now_ms: u64,
    ) -> Result<Vec<(VisitorId, u64)>, StoreError>;

    /// Whether this node can write its state now (false: a full disk, a failed snapshot), for
    /// the readiness endpoint. A store whose health is not local (CQL) is always healthy here:
    /// its errors follow each zone's store-error policy.
    fn healthy(&self) -> bool {
        true
    }

    /// How long a call may take on the request path before the zone's store-error policy
    /// applies: [`DEFAULT_TIMEOUT`], or the store's own setting (`store.timeout` of the CQL
    /// store).
    fn timeout(&self) -> std::time::Duration {
        DEFAULT_TIMEOUT
    }
}

/// How long a store call may take on the request path, unless the store says otherwise.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A stream of [`Change`]s: at-least-once, possibly reordered across zones. Consumers apply
/// changes idempotently and keep the highest version.
pub trait ChangeFeed: Send + Sync + 'static {
    /// A new subscription, starting now.
    fn subscribe(&self) -> broadcast::Receiver<Change>;

    /// How long the newest change heard from other nodes took to arrive, in ms (0 for an
    /// in-process feed).
    fn lag_ms(&self) -> u64 {
        0
    }
}
