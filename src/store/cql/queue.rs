//! The queue table's scans: every shard read at once ([`CqlStore::on_every_shard`]), each shard
//! paged until it has enough live entries, and the shards' answers merged in order. The global
//! first `limit` entries are among the shards' first `limit` each.

use super::{key_values, unavailable, CqlStore};
use crate::admission::{Grant, QueueKey, VisitorId};
use crate::store::StoreError;
use futures::future::join_all;
use std::future::Future;

impl CqlStore {
    /// Runs `each` on every shard at once; every shard's answer, or the first failure.
    pub(super) async fn on_every_shard<T, F, Fut>(&self, each: F) -> Result<Vec<T>, StoreError>
    where
        F: Fn(i32) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        join_all(self.shards().map(each))
            .await
            .into_iter()
            .collect()
    }

    /// Up to `limit` queued keys after `after` (from the first, if `None`; and at or below
    /// `through`, if given) whose holders were seen since `seen_since_ms`, in order.
    pub(super) async fn live_keys(
        &self,
        zone: &str,
        after: Option<QueueKey>,
        through: Option<QueueKey>,
        seen_since_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueueKey>, StoreError> {
        // Below every key: ranks are never negative.
        let after = after.map_or((-1, String::new()), key_values);
        let through = through.map(key_values);
        let (after, through) = (&after, &through);
        let per_shard = self
            .on_every_shard(|shard| async move {
                self.live_in_shard(zone, shard, after, through.as_ref(), seen_since_ms, limit)
                    .await
            })
            .await?;
        let mut merged: Vec<QueueKey> = per_shard.into_iter().flatten().collect();
        merged.sort_unstable();
        merged.truncate(limit);
        Ok(merged)
    }

    /// One shard's first `limit` live keys after `after` (through `through`), read in pages.
    async fn live_in_shard(
        &self,
        zone: &str,
        shard: i32,
        after: &(i64, String),
        through: Option<&(i64, String)>,
        seen_since_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueueKey>, StoreError> {
        let page = (limit.max(1) * 2).min(5_000) as i32;
        let mut live = Vec::new();
        let mut from = after.clone();
        loop {
            let result = match through {
                Some((to_rank, to_visitor)) => {
                    let values = (zone, shard, from.0, &from.1, to_rank, to_visitor, page);
                    let statement = &self.statements.scan_through;
                    self.session.execute_unpaged(statement, values).await
                }
                None => {
                    let values = (zone, shard, from.0, &from.1, page);
                    self.session
                        .execute_unpaged(&self.statements.scan, values)
                        .await
                }
            };
            let rows = result
                .map_err(unavailable)?
                .into_rows_result()
                .map_err(unavailable)?;
            let mut seen_rows = 0;
            for row in rows
                .rows::<(i64, String, Option<i64>)>()
                .map_err(unavailable)?
            {
                let (rank, visitor, last_seen) = row.map_err(unavailable)?;
                seen_rows += 1;
                from = (rank, visitor.clone());
                let Some(visitor) = VisitorId::parse(&visitor) else {
                    continue;
                };
                if last_seen.unwrap_or(0) as u64 >= seen_since_ms && live.len() < limit {
                    live.push(QueueKey {
                        rank: rank as u64,
                        visitor,
                    });
                }
            }
            if live.len() >= limit || seen_rows < page {
                return Ok(live);
            }
        }
    }

    /// Drops the queue entries a committed tick is done with: those after `grant.from` up to
    /// `cursor` (a range delete on every shard), and the admitted ones at or below `grant.from`.
    pub(super) async fn forget(
        &self,
        zone: &str,
        grant: &Grant,
        cursor: QueueKey,
    ) -> Result<(), StoreError> {
        let (from_rank, from_visitor) = key_values(grant.from);
        let (to_rank, to_visitor) = key_values(cursor);
        let range = (&from_rank, &from_visitor, &to_rank, &to_visitor);
        let ranges = self.shards().filter(|_| cursor > grant.from).map(|shard| {
            let (fr, fv, tr, tv) = range;
            self.session
                .execute_unpaged(&self.statements.forget, (zone, shard, fr, fv, tr, tv))
        });
        let returned = grant
            .admitted
            .iter()
            .filter(|k| **k <= grant.from)
            .map(|k| {
                let (rank, visitor) = key_values(*k);
                let shard = self.shard_of(k.visitor);
                self.session
                    .execute_unpaged(&self.statements.forget_one, (zone, shard, rank, visitor))
            });
        let (ranges, returned) = futures::join!(join_all(ranges), join_all(returned));
        for d in ranges.into_iter().chain(returned) {
            d.map_err(unavailable)?;
        }
        Ok(())
    }
}
