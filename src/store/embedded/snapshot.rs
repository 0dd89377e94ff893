//! Snapshots and the hand-over: [`EmbeddedStore::snapshot`] folds the log into a fresh
//! snapshot without holding the zone locks while it writes, and [`EmbeddedStore::close`]
//! writes the final one and releases the data directory. Crash safety step by step is in
//! `snapshot`'s doc; `files_tests.rs` stops a snapshot after each step.

use super::format::{self, WalRecord};
use super::wal::{self, Log};
use super::{lock, EmbeddedStore};
use crate::admission::{Grant, QueueKey, Slots, VisitorId, ZoneState};
use crate::config::overrides::Overrides;
use crate::store::StoreError;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What a snapshot copies of a zone under its lock; written out after the lock is released.
struct ZoneCopy {
    name: Arc<str>,
    state: Option<ZoneState>,
    keys: Vec<QueueKey>,
    slots: Slots,
    identities: Vec<(VisitorId, (u64, u64))>,
    overrides: Overrides,
    codes: Vec<crate::store::PriorityCode>,
}

/// A queue entry as the snapshot writes it: [`WalRecord::Join`] without a `String` per entry.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum JoinRef<'a> {
    Join { zone: &'a str, key: QueueKey },
}

impl ZoneCopy {
    /// The zone as snapshot records: its state (as a tick that admitted nobody and leaves the
    /// queue alone), its queue entries, its slots, its identities' places, its overrides and its priority codes.
    fn lines(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        let tick = self.state.as_ref().map(|state| {
            format::encode(&WalRecord::Tick {
                zone: self.name.to_string(),
                state: Box::new(state.clone()),
                grant: Box::new(Grant {
                    from: state.cursor,
                    ..Grant::default()
                }),
                reserved: Vec::new(),
            })
        });
        let joins = self.keys.iter().map(|key| {
            format::encode(&JoinRef::Join {
                zone: &self.name,
                key: *key,
            })
        });
        let slots = std::iter::once_with(|| {
            format::encode(&WalRecord::Slots {
                zone: self.name.to_string(),
                slots: Box::new(self.slots.clone()),
            })
        });
        let identities = self.identities.iter().map(|(visitor, (rank, until_s))| {
            format::encode(&WalRecord::Identity {
                zone: self.name.to_string(),
                visitor: *visitor,
                rank: *rank,
                until_s: *until_s,
            })
        });
        let overrides = (!self.overrides.is_empty()).then(|| {
            format::encode(&WalRecord::Overrides {
                zone: self.name.to_string(),
                overrides: self.overrides.clone(),
            })
        });
        let codes = (!self.codes.is_empty()).then(|| {
            format::encode(&WalRecord::Codes {
                zone: self.name.to_string(),
                codes: self.codes.clone(),
            })
        });
        tick.into_iter()
            .chain(joins)
            .chain(slots)
            .chain(identities)
            .chain(overrides)
            .chain(codes)
    }
}

/// The steps of a snapshot (for tests that stop one midway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// The new log exists.
    NewLog,
    /// Appends go to the new log.
    Switch,
    /// The new snapshot is in place.
    Rename,
}

impl EmbeddedStore {
    /// Folds the log into a fresh snapshot. Called at open, periodically, and at shutdown
    /// ([`EmbeddedStore::close`]); a no-op once closed.
    ///
    /// The zone locks are held only to copy the zones and switch appends to a new log
    /// generation; the snapshot is written, fsynced and renamed after they are released, and
    /// the old log is removed only once the new snapshot is durable. A crash at any point
    /// reopens to the acknowledged state: before the rename, the old snapshot and both logs
    /// chain; after it, the new snapshot and the new log do (the old log is ignored as stale).
    pub fn snapshot(&self) -> Result<(), StoreError> {
        let _one = lock(&self.snapshotting);
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let result = self.write_snapshot();
        self.snapshot_failed
            .store(result.is_err(), Ordering::Release);
        result
    }

    /// The snapshot itself; the caller holds `snapshotting`.
    fn write_snapshot(&self) -> Result<(), StoreError> {
        let current = lock(&self.wal).generation();
        let next = current.max(self.first_generation) + 1;
        let log = Log::create(&self.dir, next)?;
        self.crash_point(Step::NewLog)?;
        // Buffers for the queues, allocated and paged in before any zone is locked, so the
        // copy under the locks is a plain memory copy (a million keys are 32 MB: faulting
        // those pages in took longer than copying them).
        let mut buffers: HashMap<Arc<str>, Vec<QueueKey>> = self
            .zones
            .iter()
            .map(|e| {
                let room = lock(e.value()).queue.len() + 4_096;
                (
                    e.key().clone(),
                    vec![
                        QueueKey {
                            rank: 1,
                            ..QueueKey::default()
                        };
                        room
                    ],
                )
            })
            .collect();
        let copies = {
            // No zone appears until the switch: one that did could have its first record in
            // the old log and yet be missing from this snapshot.
            let _creating = lock(&self.creating);
            let mut names: Vec<Arc<str>> = self.zones.iter().map(|e| e.key().clone()).collect();
            names.sort();
            let handles: Vec<_> = names
                .iter()
                .filter_map(|n| self.zones.get(n).map(|d| d.clone()))
                .collect();
            // Zone locks before the log lock, in name order: the same order writers use.
            let guards: Vec<_> = handles.iter().map(|h| lock(h)).collect();
            let mut wal = lock(&self.wal);
            let copies: Vec<ZoneCopy> = names
                .into_iter()
                .zip(&guards)
                .map(|(name, data)| {
                    let mut keys = buffers.remove(&name).unwrap_or_default();
                    keys.clear();
                    let (front, back) = data.queue.keys.as_slices();
                    keys.extend_from_slice(front);
                    keys.extend_from_slice(back);
                    ZoneCopy {
                        name,
                        state: data.state.clone(),
                        keys,
                        slots: data.slots.clone(),
                        identities: data.identities.iter().map(|(v, e)| (*v, *e)).collect(),
                        overrides: data.overrides.clone(),
                        codes: data
                            .codes
                            .iter()
                            .filter(|(_, (uses, _))| *uses > 0)
                            .map(|(hash, (uses, until_s))| crate::store::PriorityCode {
                                hash: hash.clone(),
                                uses: *uses,
                                until_s: *until_s,
                            })
                            .collect(),
                    }
                })
                .collect();
            // From here on records go to the new log, which follows the snapshot being written.
            wal.log = Some(log);
            copies
        };
        self.crash_point(Step::Switch)?;
        wal::write_snapshot(&self.dir, next, copies.iter().flat_map(ZoneCopy::lines))?;
        self.crash_point(Step::Rename)?;
        wal::remove_before(&self.dir, next)
    }

    #[cfg(test)]
    fn crash_point(&self, step: Step) -> Result<(), StoreError> {
        if *lock(&self.crash_after) == Some(step) {
            return Err(StoreError::Unavailable(format!(
                "simulated crash after {step:?}"
            )));
        }
        Ok(())
    }

    #[cfg(not(test))]
    fn crash_point(&self, _: Step) -> Result<(), StoreError> {
        Ok(())
    }

    /// Writes the final snapshot and hands the directory over: every later call fails with
    /// [`StoreError::Unavailable`], and the directory's lock is released, so a successor
    /// process can open it while this one still drains requests.
    pub fn close(&self) -> Result<(), StoreError> {
        let _one = lock(&self.snapshotting);
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Under the log's lock: an append either landed before (and is in the snapshot) or
        // sees the store closed.
        lock(&self.wal).closed = true;
        let result = self.write_snapshot();
        drop(lock(&self.dir_lock).take());
        result
    }
}
