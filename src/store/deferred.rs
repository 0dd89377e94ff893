//! An embedded store that opens after the node starts listening: during a zero-downtime upgrade
//! the new process takes over the listening sockets at once, but may open the data directory
//! only once the old process has closed it. Until then every call fails as unavailable (the
//! proxy holds requests back until [`Deferred::open`] was called, so none should arrive).

use super::embedded::EmbeddedStore;
use super::{Change, ChangeFeed, Store, StoreError};
use crate::admission::{Claim, Grant, QueueKey, VisitorId, ZoneState};
use crate::config::overrides::Overrides;
use async_trait::async_trait;
use std::sync::{Arc, OnceLock};
use tokio::sync::broadcast;

/// An [`EmbeddedStore`] that may not be open yet.
#[derive(Default)]
pub struct Deferred {
    store: OnceLock<Arc<EmbeddedStore>>,
}

impl Deferred {
    /// A store that is open already.
    pub fn opened(store: Arc<EmbeddedStore>) -> Self {
        let deferred = Deferred::default();
        deferred.open(store);
        deferred
    }

    /// Makes `store` the one every call goes to. Called once; later calls are ignored.
    pub fn open(&self, store: Arc<EmbeddedStore>) {
        let _ = self.store.set(store);
    }

    /// The store, once open.
    pub fn get(&self) -> Option<&Arc<EmbeddedStore>> {
        self.store.get()
    }

    fn store(&self) -> Result<&EmbeddedStore, StoreError> {
        self.store.get().map(|s| s.as_ref()).ok_or_else(|| {
            StoreError::Unavailable("the data directory is not open yet".to_string())
        })
    }
}

#[async_trait]
impl Store for Deferred {
    async fn load(&self, zone: &str) -> Result<Option<ZoneState>, StoreError> {
        self.store()?.load(zone).await
    }

    async fn commit_tick(
        &self,
        zone: &str,
        expected: Option<u64>,
        state: &ZoneState,
        grant: &Grant,
    ) -> Result<Option<u32>, StoreError> {
        self.store()?
            .commit_tick(zone, expected, state, grant)
            .await
    }

    async fn touch(&self, zone: &str, key: QueueKey, now_ms: u64) -> Result<(), StoreError> {
        self.store()?.touch(zone, key, now_ms).await
    }

    async fn live_after(
        &self,
        zone: &str,
        after: QueueKey,
        seen_since_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueueKey>, StoreError> {
        self.store()?
            .live_after(zone, after, seen_since_ms, limit)
            .await
    }

    async fn returned(
        &self,
        zone: &str,
        cursor: QueueKey,
        seen_since_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueueKey>, StoreError> {
        self.store()?
            .returned(zone, cursor, seen_since_ms, limit)
            .await
    }

    async fn ahead(&self, zone: &str, cursor: QueueKey, key: QueueKey) -> Result<u64, StoreError> {
        self.store()?.ahead(zone, cursor, key).await
    }

    async fn waiting(&self, zone: &str, cursor: QueueKey) -> Result<u64, StoreError> {
        self.store()?.waiting(zone, cursor).await
    }

    async fn claim(
        &self,
        zone: &str,
        visitor: VisitorId,
        to: u64,
        now_ms: u64,
    ) -> Result<Claim, StoreError> {
        self.store()?.claim(zone, visitor, to, now_ms).await
    }

    async fn renew(
        &self,
        zone: &str,
        visitor: VisitorId,
        from: u64,
        to: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        self.store()?.renew(zone, visitor, from, to, now_ms).await
    }

    async fn release(
        &self,
        zone: &str,
        visitor: VisitorId,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.store()?.release(zone, visitor, now_ms).await
    }

    async fn identity_rank(
        &self,
        zone: &str,
        visitor: VisitorId,
        rank: u64,
        until_s: u64,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        self.store()?
            .identity_rank(zone, visitor, rank, until_s, now_ms)
            .await
    }

    async fn active(&self, zone: &str, now_ms: u64) -> Result<u64, StoreError> {
        self.store()?.active(zone, now_ms).await
    }

    async fn add_codes(
        &self,
        zone: &str,
        codes: &[crate::store::PriorityCode],
    ) -> Result<(), StoreError> {
        self.store()?.add_codes(zone, codes).await
    }

    async fn use_code(&self, zone: &str, hash: &str, now_ms: u64) -> Result<bool, StoreError> {
        self.store()?.use_code(zone, hash, now_ms).await
    }

    async fn overrides(&self, zone: &str) -> Result<Option<Overrides>, StoreError> {
        self.store()?.overrides(zone).await
    }

    async fn set_overrides(&self, zone: &str, overrides: &Overrides) -> Result<(), StoreError> {
        self.store()?.set_overrides(zone, overrides).await
    }

    async fn revocations(
        &self,
        zone: &str,
        now_ms: u64,
    ) -> Result<Vec<(VisitorId, u64)>, StoreError> {
        self.store()?.revocations(zone, now_ms).await
    }

    /// The open store's health; before it opens, healthy (readiness says `starting` then).
    fn healthy(&self) -> bool {
        self.store.get().is_none_or(|store| store.healthy())
    }

    /// The embedded store's (a deferred store is always one).
    fn timeout(&self) -> std::time::Duration {
        self.store
            .get()
            .map_or(super::DEFAULT_TIMEOUT, |store| store.timeout())
    }
}

impl ChangeFeed for Deferred {
    /// The open store's feed; before it opens, a feed that has ended (the background work
    /// subscribes only once the store is open).
    fn subscribe(&self) -> broadcast::Receiver<Change> {
        match self.store.get() {
            Some(store) => store.subscribe(),
            None => broadcast::channel(1).1,
        }
    }
}
