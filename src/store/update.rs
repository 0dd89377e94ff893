//! Read-modify-compare-and-set on a zone record, the one way every writer (exchanger, claims,
//! renewals, releases) changes a zone, so concurrent writers on any backend never lose updates.

use super::{Store, StoreError, ZoneRecord};

/// How many times a lost compare-and-set is retried before giving up.
const MAX_ATTEMPTS: usize = 64;

/// Loads `zone` (or `init()` if absent), applies `change`, and compare-and-sets the result,
/// retrying on conflict. `change` returns `None` to leave the record untouched. Returns what
/// `change` returned with the record as written, or an error if the store failed or stayed
/// contended.
pub async fn update_zone<T>(
    store: &dyn Store,
    zone: &str,
    init: impl Fn() -> ZoneRecord,
    mut change: impl FnMut(&mut ZoneRecord) -> Option<T>,
) -> Result<Option<(T, ZoneRecord)>, StoreError> {
    for attempt in 0..MAX_ATTEMPTS {
        let loaded = store.load(zone).await?;
        let expected = loaded.as_ref().map(|r| r.state.version);
        let mut record = loaded.unwrap_or_else(&init);
        let Some(outcome) = change(&mut record) else {
            return Ok(None);
        };
        // Writers that change anything bump the version; make sure of it.
        if Some(record.state.version) == expected {
            record.state.version += 1;
        }
        if store.compare_and_set(zone, expected, &record).await? {
            return Ok(Some((outcome, record)));
        }
        // Lost to another writer: back off a random while, growing with the attempts, so
        // writers on several nodes spread out instead of colliding again.
        let cap_ms = 1u64 << attempt.min(6);
        let pause = std::time::Duration::from_micros(rand::random::<u64>() % (cap_ms * 1_000));
        tokio::time::sleep(pause).await;
    }
    Err(StoreError::Unavailable(format!(
        "zone `{zone}` stayed contended for {MAX_ATTEMPTS} attempts"
    )))
}
