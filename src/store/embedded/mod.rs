//! The embedded store: zones (state, queue, slots and ledger) in memory behind one mutex each,
//! made durable by a write-ahead log that is folded into a snapshot now and then (file format:
//! `format.rs`; `docs/architecture.md`, "The embedded store's files"). Every change is appended
//! to the log before the call returns, so `kill -9` loses nothing that was acknowledged (the log
//! is written to the OS, not fsynced: a process crash keeps it, a power cut may not). The change
//! feed is an in-process broadcast.
//!
//! Opening reads every file before it changes any: a torn last log record (a crash mid-write)
//! is cut off with a warning, any other damage refuses to open ([`StoreError::Damaged`]). One
//! process owns the data directory at a time ([`DirLock`]). A snapshot (`snapshot.rs`) copies
//! the zones under their locks, switches to a fresh log generation, and writes outside them.

mod files;
mod format;
mod lock;
mod queue;
mod repair;
mod snapshot;
mod wal;

#[cfg(test)]
mod files_tests;
#[cfg(test)]
mod tests;

pub use files::FileReport;
pub use format::{FileKind, Header, Stop, FORMAT};
pub use lock::{DirLock, LOCK_FILE};
pub use repair::{repair, utc_stamp, verify, Repair, Verification};

use super::{Change, ChangeFeed, Store, StoreError};
use crate::admission::slot::{self, Transition};
use crate::admission::{Claim, Grant, QueueKey, Slot, SlotStatus, Slots, VisitorId, ZoneState};
use crate::config::overrides::Overrides;
use crate::store::PriorityCode;
use async_trait::async_trait;
use dashmap::DashMap;
use format::WalRecord;
use queue::Queue;
#[cfg(test)]
use snapshot::Step;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::broadcast;
use wal::Log;

/// One zone's data: the versioned state, the queue, and the slots with their ledger.
#[derive(Debug, Default)]
struct ZoneData {
    state: Option<ZoneState>,
    queue: Queue,
    slots: Slots,
    /// Identities' places: visitor -> (arrival, kept until second).
    identities: std::collections::HashMap<VisitorId, (u64, u64)>,
    /// The zone's live overrides (empty: none).
    overrides: Overrides,
    /// Priority codes by hash: (uses left, expiry second).
    codes: std::collections::HashMap<String, (u32, u64)>,
}

impl ZoneData {
    /// Applies a committed tick (live, or replayed from the log).
    fn apply_tick(&mut self, state: ZoneState, grant: &Grant, reserved: &[VisitorId]) {
        let (bucket, at_ms) = (grant.claim_bucket, grant.admitted_at_ms);
        for visitor in reserved {
            let reservation = Slot {
                status: SlotStatus::Reserved,
                bucket,
                admitted_at_ms: at_ms,
            };
            self.slots.by_visitor.insert(*visitor, reservation);
            self.slots.ledger.add(bucket, 1);
        }
        self.queue.forget(grant.from, state.cursor, &grant.admitted);
        self.state = Some(state);
    }
}

/// The log being appended to, and whether the store was closed.
struct Wal {
    /// `None` only until the first snapshot of `open`.
    log: Option<Log>,
    closed: bool,
}

impl Wal {
    fn append(&mut self, record: &WalRecord) -> Result<(), StoreError> {
        if self.closed {
            return Err(closed());
        }
        let Some(log) = &mut self.log else {
            return Err(StoreError::Unavailable("the store is not open yet".into()));
        };
        log.append(&format::encode(record))
    }

    fn generation(&self) -> u64 {
        self.log.as_ref().map_or(0, Log::generation)
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store was handed over/closed".into())
}

/// Single-node state on local disk.
pub struct EmbeddedStore {
    dir: PathBuf,
    zones: DashMap<Arc<str>, Arc<Mutex<ZoneData>>>,
    wal: Mutex<Wal>,
    feed: broadcast::Sender<Change>,
    /// One snapshot (or close) at a time.
    snapshotting: Mutex<()>,
    /// Held to add a zone, and by a snapshot while it copies the zones.
    creating: Mutex<()>,
    closed: AtomicBool,
    snapshot_failed: AtomicBool,
    /// Held until [`EmbeddedStore::close`] or drop.
    dir_lock: Mutex<Option<DirLock>>,
    /// Tests only: the snapshot step after which a snapshot stops, as if the process died.
    #[cfg(test)]
    crash_after: Mutex<Option<Step>>,
    /// Generation used by the first snapshot when there is no log yet (0, or above every
    /// generation a repair moved aside).
    first_generation: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves data that is still consistent (every change is
    // applied before it is logged), so recover instead of poisoning the whole store.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`: takes the directory's lock (failing at once with
    /// [`StoreError::Locked`] if another process holds it), reads the snapshot and the logs,
    /// cuts a torn last record off, and compacts. Restored queue entries count as seen at
    /// `now_ms`. Damage anywhere else is [`StoreError::Damaged`], and no file is changed.
    pub fn open(dir: &Path, now_ms: u64) -> Result<Self, StoreError> {
        EmbeddedStore::open_locked(DirLock::try_acquire(dir)?, now_ms)
    }

    /// [`EmbeddedStore::open`], waiting up to `wait` for the process holding the directory to
    /// close its store (an upgrade's hand-over).
    pub fn open_waiting(dir: &Path, now_ms: u64, wait: Duration) -> Result<Self, StoreError> {
        EmbeddedStore::open_locked(DirLock::acquire_within(dir, wait)?, now_ms)
    }

    fn open_locked(dir_lock: DirLock, now_ms: u64) -> Result<Self, StoreError> {
        let dir = dir_lock.dir().to_path_buf();
        let reading = files::read_dir(&dir)?;
        if let Some(error) = reading.error {
            return Err(error);
        }
        if reading.new {
            tracing::info!(dir = %dir.display(), "no store files: starting a new, empty store");
        }
        // The whole state was read: only now change files.
        for (file, offset, dropped) in &reading.torn {
            tracing::warn!(file = %file.display(), offset, dropped,
                "cutting off a torn last record (a crash while it was written; never acknowledged)");
            let f = std::fs::OpenOptions::new().write(true).open(file)?;
            f.set_len(*offset)?;
            f.sync_all()?;
        }
        let store =
            EmbeddedStore::from_records(dir_lock, reading.records, reading.generation, now_ms);
        store.snapshot()?;
        Ok(store)
    }

    /// A store holding `records` replayed, with no log yet: the first snapshot writes the files
    /// of `generation + 1`.
    fn from_records(
        dir_lock: DirLock,
        records: Vec<WalRecord>,
        generation: u64,
        now_ms: u64,
    ) -> Self {
        let store = EmbeddedStore {
            dir: dir_lock.dir().to_path_buf(),
            zones: DashMap::new(),
            wal: Mutex::new(Wal {
                log: None,
                closed: false,
            }),
            feed: broadcast::channel(4_096).0,
            snapshotting: Mutex::new(()),
            creating: Mutex::new(()),
            closed: AtomicBool::new(false),
            snapshot_failed: AtomicBool::new(false),
            dir_lock: Mutex::new(Some(dir_lock)),
            first_generation: generation,
            #[cfg(test)]
            crash_after: Mutex::new(None),
        };
        for record in records {
            store.replay(record, now_ms);
        }
        store
    }

    fn zone(&self, zone: &str) -> Arc<Mutex<ZoneData>> {
        if let Some(data) = self.zones.get(zone) {
            return data.clone();
        }
        // Not while a snapshot lists and locks the zones (see `write_snapshot`).
        let _creating = lock(&self.creating);
        self.zones.entry(Arc::from(zone)).or_default().clone()
    }

    fn replay(&self, record: WalRecord, now_ms: u64) {
        match record {
            WalRecord::Tick {
                zone,
                state,
                grant,
                reserved,
            } => lock(&self.zone(&zone)).apply_tick(*state, &grant, &reserved),
            WalRecord::Join { zone, key } => {
                lock(&self.zone(&zone)).queue.touch(key, now_ms);
            }
            WalRecord::Slot {
                zone,
                visitor,
                slot,
                moves,
            } => {
                let transition = Transition {
                    outcome: (),
                    next: Some(slot),
                    moves,
                };
                lock(&self.zone(&zone)).slots.apply(visitor, transition);
            }
            WalRecord::Slots { zone, slots } => lock(&self.zone(&zone)).slots = *slots,
            WalRecord::Identity {
                zone,
                visitor,
                rank,
                until_s,
            } => {
                lock(&self.zone(&zone))
                    .identities
                    .entry(visitor)
                    .or_insert((rank, until_s));
            }
            WalRecord::Overrides { zone, overrides } => {
                lock(&self.zone(&zone)).overrides = overrides;
            }
            WalRecord::Codes { zone, codes } => {
                let handle = self.zone(&zone);
                let mut data = lock(&handle);
                for code in codes {
                    data.codes.insert(code.hash, (code.uses, code.until_s));
                }
            }
            WalRecord::CodeUsed { zone, hash } => {
                if let Some((uses, _)) = lock(&self.zone(&zone)).codes.get_mut(&hash) {
                    *uses = uses.saturating_sub(1);
                }
            }
        }
    }

    fn log(&self, record: &WalRecord) -> Result<(), StoreError> {
        lock(&self.wal).append(record)
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        Ok(())
    }

    /// Whether the store can take writes: false while the log cannot be written (a failed
    /// append could not be cut back), after the last snapshot failed, and once closed. For a
    /// readiness endpoint.
    pub fn healthy(&self) -> bool {
        let log_ok = lock(&self.wal).log.as_ref().is_some_and(Log::healthy);
        log_ok
            && !self.snapshot_failed.load(Ordering::Acquire)
            && !self.closed.load(Ordering::Acquire)
    }

    /// Number of queue entries kept for `zone` (admitted ones are forgotten at each tick).
    pub fn queue_len(&self, zone: &str) -> usize {
        lock(&self.zone(zone)).queue.len()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl EmbeddedStore {
    /// Computes a transition of `visitor`'s slot under the zone's lock, logs it if it changes
    /// anything, applies it, and returns its outcome.
    fn change_slot<T>(
        &self,
        zone: &str,
        visitor: VisitorId,
        transition: impl FnOnce(Option<&Slot>) -> Transition<T>,
    ) -> Result<T, StoreError> {
        self.check_open()?;
        let handle = self.zone(zone);
        let mut data = lock(&handle);
        let t = transition(data.slots.get(visitor));
        if let Some(slot) = t.next {
            self.log(&WalRecord::Slot {
                zone: zone.to_string(),
                visitor,
                slot,
                moves: t.moves.clone(),
            })?;
        }
        Ok(data.slots.apply(visitor, t))
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn load(&self, zone: &str) -> Result<Option<ZoneState>, StoreError> {
        self.check_open()?;
        Ok(lock(&self.zone(zone)).state.clone())
    }

    async fn commit_tick(
        &self,
        zone: &str,
        expected: Option<u64>,
        state: &ZoneState,
        grant: &Grant,
    ) -> Result<Option<u32>, StoreError> {
        self.check_open()?;
        let handle = self.zone(zone);
        let mut data = lock(&handle);
        if data.state.as_ref().map(|s| s.version) != expected {
            return Ok(None);
        }
        let now = state.last_tick_ms;
        data.slots.prune(now);
        let reserved: Vec<VisitorId> = grant
            .admitted
            .iter()
            .map(|k| k.visitor)
            .filter(|v| slot::reserve(data.slots.get(*v), grant.claim_bucket, now, now).outcome)
            .collect();
        self.log(&WalRecord::Tick {
            zone: zone.to_string(),
            state: Box::new(state.clone()),
            grant: Box::new(grant.clone()),
            reserved: reserved.clone(),
        })?;
        data.apply_tick(state.clone(), grant, &reserved);
        drop(data);
        // Nobody listening is fine: the feed only wakes caches.
        let _ = self.feed.send(Change::Zone {
            zone: Arc::from(zone),
            state: Arc::new(state.clone()),
        });
        Ok(Some(reserved.len() as u32))
    }

    async fn touch(&self, zone: &str, key: QueueKey, now_ms: u64) -> Result<(), StoreError> {
        self.check_open()?;
        let handle = self.zone(zone);
        let mut data = lock(&handle);
        if data.queue.seen.contains_key(&key) {
            data.queue.touch(key, now_ms);
            return Ok(());
        }
        // Logged before it is applied, so an acknowledged join survives a crash.
        self.log(&WalRecord::Join {
            zone: zone.to_string(),
            key,
        })?;
        data.queue.touch(key, now_ms);
        Ok(())
    }

    async fn live_after(
        &self,
        zone: &str,
        after: QueueKey,
        seen_since_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueueKey>, StoreError> {
        self.check_open()?;
        Ok(lock(&self.zone(zone))
            .queue
            .live_after(after, seen_since_ms, limit))
    }

    async fn returned(
        &self,
        zone: &str,
        cursor: QueueKey,
        seen_since_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueueKey>, StoreError> {
        self.check_open()?;
        let handle = self.zone(zone);
        let data = lock(&handle);
        let now = data.state.as_ref().map_or(0, |s| s.last_tick_ms);
        let holds_slot = |k: &QueueKey| data.slots.get(k.visitor).is_some_and(|s| s.is_live(now));
        let mut returned = data.queue.live_through(cursor, seen_since_ms, usize::MAX);
        returned.retain(|k| !holds_slot(k));
        returned.truncate(limit);
        Ok(returned)
    }

    async fn ahead(&self, zone: &str, cursor: QueueKey, key: QueueKey) -> Result<u64, StoreError> {
        self.check_open()?;
        if key <= cursor {
            return Ok(0);
        }
        let handle = self.zone(zone);
        let data = lock(&handle);
        let first = data.queue.after(cursor);
        let mine = data.queue.before(key);
        Ok(mine.saturating_sub(first) as u64)
    }

    async fn waiting(&self, zone: &str, cursor: QueueKey) -> Result<u64, StoreError> {
        self.check_open()?;
        let handle = self.zone(zone);
        let data = lock(&handle);
        Ok((data.queue.len() - data.queue.after(cursor)) as u64)
    }

    async fn claim(
        &self,
        zone: &str,
        visitor: VisitorId,
        to: u64,
        now_ms: u64,
    ) -> Result<Claim, StoreError> {
        self.change_slot(zone, visitor, |current| slot::claim(current, to, now_ms))
    }

    async fn renew(
        &self,
        zone: &str,
        visitor: VisitorId,
        from: u64,
        to: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        self.change_slot(zone, visitor, |current| {
            slot::renew(current, from, to, now_ms)
        })
    }

    async fn release(
        &self,
        zone: &str,
        visitor: VisitorId,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        let until = self.change_slot(zone, visitor, |current| slot::release(current, now_ms))?;
        if let Some(until_s) = until {
            let _ = self.feed.send(Change::Revoked {
                zone: Arc::from(zone),
                visitor,
                until_s,
            });
        }
        Ok(until)
    }

    async fn identity_rank(
        &self,
        zone: &str,
        visitor: VisitorId,
        rank: u64,
        until_s: u64,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        self.check_open()?;
        let handle = self.zone(zone);
        let mut data = lock(&handle);
        let now_s = now_ms / 1_000;
        data.identities.retain(|_, (_, until)| *until > now_s);
        if let Some((first, _)) = data.identities.get(&visitor) {
            return Ok(*first);
        }
        self.log(&WalRecord::Identity {
            zone: zone.to_string(),
            visitor,
            rank,
            until_s,
        })?;
        data.identities.insert(visitor, (rank, until_s));
        Ok(rank)
    }

    async fn add_codes(&self, zone: &str, codes: &[PriorityCode]) -> Result<(), StoreError> {
        self.check_open()?;
        let handle = self.zone(zone);
        let mut data = lock(&handle);
        self.log(&WalRecord::Codes {
            zone: zone.to_string(),
            codes: codes.to_vec(),
        })?;
        for code in codes {
            data.codes
                .insert(code.hash.clone(), (code.uses, code.until_s));
        }
        Ok(())
    }

    async fn use_code(&self, zone: &str, hash: &str, now_ms: u64) -> Result<bool, StoreError> {
        self.check_open()?;
        let handle = self.zone(zone);
        let mut data = lock(&handle);
        match data.codes.get(hash) {
            Some((uses, until)) if *uses > 0 && *until > now_ms / 1_000 => {}
            _ => return Ok(false),
        }
        self.log(&WalRecord::CodeUsed {
            zone: zone.to_string(),
            hash: hash.to_string(),
        })?;
        if let Some((uses, _)) = data.codes.get_mut(hash) {
            *uses -= 1;
        }
        Ok(true)
    }

    async fn overrides(&self, zone: &str) -> Result<Option<Overrides>, StoreError> {
        self.check_open()?;
        let handle = self.zone(zone);
        let overrides = &lock(&handle).overrides;
        Ok((!overrides.is_empty()).then(|| overrides.clone()))
    }

    async fn set_overrides(&self, zone: &str, overrides: &Overrides) -> Result<(), StoreError> {
        self.check_open()?;
        let handle = self.zone(zone);
        let mut data = lock(&handle);
        self.log(&WalRecord::Overrides {
            zone: zone.to_string(),
            overrides: overrides.clone(),
        })?;
        data.overrides = overrides.clone();
        Ok(())
    }

    async fn active(&self, zone: &str, now_ms: u64) -> Result<u64, StoreError> {
        self.check_open()?;
        Ok(lock(&self.zone(zone)).slots.ledger.active(now_ms))
    }

    async fn revocations(
        &self,
        zone: &str,
        now_ms: u64,
    ) -> Result<Vec<(VisitorId, u64)>, StoreError> {
        self.check_open()?;
        let handle = self.zone(zone);
        let data = lock(&handle);
        Ok(data
            .slots
            .by_visitor
            .iter()
            .filter(|(_, s)| s.status == SlotStatus::Revoked && s.is_live(now_ms))
            .map(|(v, s)| (*v, s.bucket))
            .collect())
    }
}

impl ChangeFeed for EmbeddedStore {
    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }
}
