//! Where shared state lives (DESIGN §5). [`Store`] and [`ChangeFeed`] are the seams a second
//! backend (ScyllaDB) implements; [`embedded`] is the single-node backend. Everything a store does
//! is an async call the caller bounds with a timeout; decisions that must be exact (the zone
//! compare-and-set) go to the store, while the change feed only keeps caches warm.

pub mod cql;
pub mod embedded;
mod update;

#[cfg(test)]
pub(crate) mod contract;

pub use update::update_zone;

use crate::admission::{Ledger, QueueKey, ZoneState};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::broadcast;

/// The versioned, compare-and-set part of a zone: its state row and its slot ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneRecord {
    /// Cursor, counters, rate bucket, grants; `state.version` is the compare-and-set key.
    pub state: ZoneState,
    /// The leaky bucket of session slots.
    pub ledger: Ledger,
}

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
}

/// A state change, as the change feed delivers it.
#[derive(Debug, Clone)]
pub enum Change {
    /// A zone's record was replaced (cursor moved, slot taken or freed).
    Zone {
        /// Zone name.
        zone: Arc<str>,
        /// The record after the change.
        record: Arc<ZoneRecord>,
    },
}

/// Shared zone state, the queue, and the ledger. Object-safe; every call may fail or be slow, so
/// callers bound each with a timeout and apply the zone's store-error policy.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The zone's record, or `None` if the zone has never been written.
    async fn load(&self, zone: &str) -> Result<Option<ZoneRecord>, StoreError>;

    /// Replaces the zone's record if its version is still `expected` (`None`: only if absent).
    /// Returns whether it was applied.
    async fn compare_and_set(
        &self,
        zone: &str,
        expected: Option<u64>,
        record: &ZoneRecord,
    ) -> Result<bool, StoreError>;

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

    /// How many queued visitors stand strictly between `cursor` and `key`.
    async fn ahead(&self, zone: &str, cursor: QueueKey, key: QueueKey) -> Result<u64, StoreError>;

    /// How many queued visitors stand after `cursor`.
    async fn waiting(&self, zone: &str, cursor: QueueKey) -> Result<u64, StoreError>;

    /// Drops queue entries at or below `cursor` (they are admitted; their tokens carry the rest).
    async fn forget_through(&self, zone: &str, cursor: QueueKey) -> Result<(), StoreError>;
}

/// A stream of [`Change`]s: at-least-once, possibly reordered across zones. Consumers apply
/// changes idempotently and keep the highest version.
pub trait ChangeFeed: Send + Sync + 'static {
    /// A new subscription, starting now.
    fn subscribe(&self) -> broadcast::Receiver<Change>;
}
