//! Per-client limits: what one client (an address, or an address block) may do in a zone, so
//! that places cannot be farmed. Pure bookkeeping in memory, per node; time comes from the
//! caller. The room asks before it hands out a place ([`Clients::join`]), tells it when a place
//! is seen again or ends, and asks before it opens an event stream; [`Sharing`] notices one
//! session used from many addresses.
//!
//! Counted per node: behind a load balancer without client affinity, a client may hold the
//! limit on each node. Entries that no longer limit anything are swept away, so memory follows
//! the clients of the last few minutes.

use crate::admission::VisitorId;
use crate::config::Defence;
use dashmap::DashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

#[cfg(test)]
mod tests;

/// Why a client was refused. The label of `usher_client_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client takes places faster than `client_joins_per_minute` allows.
    JoinRate {
        /// Seconds until the next place may be taken.
        retry_after_s: u64,
    },
    /// The client holds `client_places` live places already.
    Places {
        /// Seconds until the oldest of them lapses if nobody comes back for it.
        retry_after_s: u64,
    },
    /// The client has `client_event_streams` open, or the node `max_event_streams`.
    Streams,
}

impl Refused {
    /// The metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::JoinRate { .. } => "join_rate",
            Refused::Places { .. } => "client_places",
            Refused::Streams => "event_streams",
        }
    }

    /// Seconds for `Retry-After`.
    pub fn retry_after_s(self) -> u64 {
        match self {
            Refused::JoinRate { retry_after_s } | Refused::Places { retry_after_s } => {
                retry_after_s.max(1)
            }
            Refused::Streams => 5,
        }
    }
}

/// A session a client walked straight into in a quiet `auto` zone: a client without cookies
/// asking again gets this one back instead of another slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Direct {
    /// The visitor.
    pub visitor: VisitorId,
    /// Their arrival.
    pub rank: u64,
    /// When they were admitted.
    pub admitted_at_ms: u64,
    /// The second the slot expires.
    pub bucket: u64,
}

/// One client in one zone.
#[derive(Debug, Default)]
struct Client {
    /// Places the client may still take now (a token bucket), as of `refilled_at_ms`.
    allowance: f64,
    refilled_at_ms: u64,
    /// Live places: the visitor and when their holder was last seen.
    places: Vec<(VisitorId, u64)>,
    direct: Option<Direct>,
    streams: u32,
}

impl Client {
    fn new(rules: &Defence, now_ms: u64) -> Self {
        Client {
            allowance: f64::from(rules.client_join_burst),
            refilled_at_ms: now_ms,
            ..Client::default()
        }
    }

    fn refill(&mut self, rules: &Defence, now_ms: u64) {
        let per_ms = f64::from(rules.client_joins_per_minute) / 60_000.0;
        let elapsed = now_ms.saturating_sub(self.refilled_at_ms) as f64;
        self.allowance =
            (self.allowance + elapsed * per_ms).min(f64::from(rules.client_join_burst));
        self.refilled_at_ms = self.refilled_at_ms.max(now_ms);
    }

    /// Drops places whose holders were not seen for `lapse_ms`.
    fn prune(&mut self, lapse_ms: u64, now_ms: u64) {
        self.places
            .retain(|(_, seen)| seen.saturating_add(lapse_ms) > now_ms);
    }

    /// Whether the entry limits nothing any more.
    fn idle(&mut self, rules: &Defence, lapse_ms: u64, now_ms: u64) -> bool {
        self.prune(lapse_ms, now_ms);
        self.refill(rules, now_ms);
        self.places.is_empty()
            && self.streams == 0
            && self.direct.is_none_or(|d| d.bucket * 1_000 <= now_ms)
            && self.allowance >= f64::from(rules.client_join_burst)
    }
}

/// Every client this node has seen lately, per zone (by index).
#[derive(Debug, Default)]
pub struct Clients {
    entries: DashMap<(usize, IpAddr), Client>,
    /// Event streams open on this node.
    streams: AtomicU32,
}

impl Clients {
    /// Takes a place for `visitor` if `client` may have one more in zone `zone` now. A place
    /// lapses (stops counting) when its holder was not seen for `lapse_ms` (the zone's
    /// `abandon_after`).
    pub fn join(
        &self,
        zone: usize,
        client: IpAddr,
        visitor: VisitorId,
        rules: &Defence,
        lapse_ms: u64,
        now_ms: u64,
    ) -> Result<(), Refused> {
        let mut entry = self
            .entries
            .entry((zone, client))
            .or_insert_with(|| Client::new(rules, now_ms));
        let c = entry.value_mut();
        c.refill(rules, now_ms);
        c.prune(lapse_ms, now_ms);
        if c.places.len() >= rules.client_places as usize {
            let oldest = c
                .places
                .iter()
                .map(|(_, seen)| *seen)
                .min()
                .unwrap_or(now_ms);
            let lapses_in = (oldest + lapse_ms).saturating_sub(now_ms);
            return Err(Refused::Places {
                retry_after_s: lapses_in.div_ceil(1_000).min(60),
            });
        }
        if c.allowance < 1.0 {
            let per_ms = f64::from(rules.client_joins_per_minute) / 60_000.0;
            let wait_ms = ((1.0 - c.allowance) / per_ms).ceil() as u64;
            return Err(Refused::JoinRate {
                retry_after_s: wait_ms.div_ceil(1_000),
            });
        }
        c.allowance -= 1.0;
        c.places.push((visitor, now_ms));
        Ok(())
    }

    /// The holder of `visitor`'s place came back from `client`: the place stays live.
    pub fn seen(&self, zone: usize, client: IpAddr, visitor: VisitorId, now_ms: u64) {
        if let Some(mut entry) = self.entries.get_mut(&(zone, client)) {
            if let Some(place) = entry.places.iter_mut().find(|(v, _)| *v == visitor) {
                place.1 = place.1.max(now_ms);
            }
        }
    }

    /// `visitor`'s place ended (they were admitted): it no longer counts.
    pub fn done(&self, zone: usize, client: IpAddr, visitor: VisitorId) {
        if let Some(mut entry) = self.entries.get_mut(&(zone, client)) {
            entry.places.retain(|(v, _)| *v != visitor);
        }
    }

    /// How many live places `client` holds in `zone` (for tests and the abuse report).
    pub fn places(&self, zone: usize, client: IpAddr, lapse_ms: u64, now_ms: u64) -> usize {
        self.entries.get_mut(&(zone, client)).map_or(0, |mut e| {
            e.prune(lapse_ms, now_ms);
            e.places.len()
        })
    }

    /// The session `client` walked straight into in `zone`, while it lasts.
    pub fn direct(&self, zone: usize, client: IpAddr, now_ms: u64) -> Option<Direct> {
        let entry = self.entries.get(&(zone, client))?;
        entry.direct.filter(|d| d.bucket * 1_000 > now_ms)
    }

    /// Remembers the session `client` walked straight into.
    pub fn set_direct(
        &self,
        zone: usize,
        client: IpAddr,
        direct: Direct,
        rules: &Defence,
        now_ms: u64,
    ) {
        self.entries
            .entry((zone, client))
            .or_insert_with(|| Client::new(rules, now_ms))
            .direct = Some(direct);
    }

    /// Opens an event stream for `client` in `zone` unless the client has `per_client` open or
    /// the node `per_node`. The stream counts until the permit is dropped.
    pub fn open_stream(
        &self,
        zone: usize,
        client: IpAddr,
        rules: &Defence,
        per_node: u32,
        now_ms: u64,
    ) -> Result<StreamPermit<'_>, Refused> {
        let node = self.streams.fetch_add(1, Ordering::AcqRel);
        if node >= per_node {
            self.streams.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Streams);
        }
        let mut entry = self
            .entries
            .entry((zone, client))
            .or_insert_with(|| Client::new(rules, now_ms));
        if entry.streams >= rules.client_event_streams {
            drop(entry);
            self.streams.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Streams);
        }
        entry.streams += 1;
        Ok(StreamPermit {
            clients: self,
            key: (zone, client),
        })
    }

    /// Event streams open on this node.
    pub fn open_streams(&self) -> u32 {
        self.streams.load(Ordering::Acquire)
    }

    /// Forgets clients that no longer limit anything. `zone_rules(i)`: zone `i`'s rules and
    /// place lapse.
    pub fn sweep<'a>(&self, zone_rules: impl Fn(usize) -> Option<(&'a Defence, u64)>, now_ms: u64) {
        self.entries
            .retain(|(zone, _), client| match zone_rules(*zone) {
                Some((rules, lapse_ms)) => !client.idle(rules, lapse_ms, now_ms),
                None => false,
            });
    }

    /// Clients remembered (for tests and the sweep's measure).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// An open event stream, counted for its client and the node until dropped.
#[derive(Debug)]
pub struct StreamPermit<'a> {
    clients: &'a Clients,
    key: (usize, IpAddr),
}

impl Drop for StreamPermit<'_> {
    fn drop(&mut self) {
        if let Some(mut entry) = self.clients.entries.get_mut(&self.key) {
            entry.streams = entry.streams.saturating_sub(1);
        }
        self.clients.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Newcomers per minute in one zone on this node, for `proof_of_work = "auto"`: the count of the
/// current minute plus the previous minute's, weighted by the share of it still in the last 60
/// seconds (a sliding estimate that needs two counters, not a timestamp per arrival).
#[derive(Debug, Default)]
pub struct Arrivals {
    /// (start of the current minute, arrivals in it, arrivals in the minute before).
    window: std::sync::Mutex<(u64, u32, u32)>,
}

impl Arrivals {
    const MINUTE_MS: u64 = 60_000;

    /// Counts one newcomer at `now_ms`.
    pub fn record(&self, now_ms: u64) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        Self::roll(&mut w, now_ms);
        w.1 = w.1.saturating_add(1);
    }

    /// Newcomers in the last minute, estimated.
    pub fn per_minute(&self, now_ms: u64) -> u32 {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        Self::roll(&mut w, now_ms);
        let into = now_ms.saturating_sub(w.0) as f64 / Self::MINUTE_MS as f64;
        (f64::from(w.2) * (1.0 - into) + f64::from(w.1)) as u32
    }

    fn roll(w: &mut (u64, u32, u32), now_ms: u64) {
        let elapsed = now_ms.saturating_sub(w.0);
        if elapsed >= 2 * Self::MINUTE_MS {
            *w = (now_ms - now_ms % Self::MINUTE_MS, 0, 0);
        } else if elapsed >= Self::MINUTE_MS {
            *w = (w.0 + Self::MINUTE_MS, 0, w.1);
        }
    }
}

/// The addresses each session (or place) was used from, so one shared among many clients is
/// noticed.
#[derive(Debug, Default)]
pub struct Sharing {
    /// Per zone and visitor: the addresses seen, and the second the entry may be forgotten.
    used: DashMap<(usize, VisitorId), (Vec<IpAddr>, u64)>,
}

impl Sharing {
    /// Records that `visitor`'s token came from `client`; false if that makes more than `limit`
    /// distinct addresses (the token is shared, and is to be revoked). `until_s`: the token's
    /// expiry, after which the record is useless.
    pub fn used_from(
        &self,
        zone: usize,
        visitor: VisitorId,
        client: IpAddr,
        limit: u32,
        until_s: u64,
    ) -> bool {
        let mut entry = self.used.entry((zone, visitor)).or_default();
        let (clients, until) = entry.value_mut();
        *until = (*until).max(until_s);
        if clients.contains(&client) {
            return true;
        }
        if clients.len() >= limit as usize {
            return false;
        }
        clients.push(client);
        true
    }

    /// Forgets records of tokens expired by `now_s`.
    pub fn sweep(&self, now_s: u64) {
        self.used.retain(|_, (_, until)| *until > now_s);
    }

    /// Records kept.
    pub fn len(&self) -> usize {
        self.used.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }
}
