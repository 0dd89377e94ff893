//! Verified tokens, kept so that steady-state requests skip the signature check. Keyed by the
//! whole token string (a cached entry can only be hit by the exact bytes that were verified);
//! bounded: when full, entries whose token has expired go first, then everything.

use super::Claims;
use dashmap::DashMap;
use std::sync::Arc;

/// A bounded map from token string to its verified claims. Hashed with foldhash (randomly
/// seeded, several times faster than SipHash on ~300-byte keys): only verified tokens are ever
/// inserted, so nobody can choose keys to flood a bucket.
pub struct VerifiedCache {
    map: DashMap<Box<str>, Arc<Claims>, foldhash::fast::RandomState>,
    capacity: usize,
}

impl VerifiedCache {
    /// A cache holding at most `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        VerifiedCache {
            map: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            capacity: capacity.max(1),
        }
    }

    /// The claims of `token`, if it was verified before.
    pub fn get(&self, token: &str) -> Option<Arc<Claims>> {
        self.map.get(token).map(|entry| entry.value().clone())
    }

    /// Forgets every token (the keys changed).
    pub fn clear(&self) {
        self.map.clear();
    }

    /// Remembers that `token` verified to `claims`.
    pub fn insert(&self, token: &str, claims: Arc<Claims>, now_ms: u64) {
        if self.map.len() >= self.capacity {
            let now_s = now_ms / 1_000;
            self.map.retain(|_, c| c.exp > now_s);
            if self.map.len() >= self.capacity {
                // Still full of live tokens: start over rather than grow; they re-verify once.
                self.map.clear();
            }
        }
        self.map.insert(token.into(), claims);
    }
}
