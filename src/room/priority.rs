//! Priority codes: the operator issues them through the admin API (`POST
//! /v1/zones/{zone}/codes`: single- or multi-use, with an expiry), the shop hands them out
//! (members, partners, a second chance), and a visitor redeems one through a link to a zone
//! page with `?usher_code=CODE`. The holder gets a priority place: written at once just behind
//! the cursor, where the exchanger looks first (before the main line) at its next tick. A
//! priority place is never sent to the back for having been passed ([`crate::gate`]).
//!
//! Codes are 32 hex digits of randomness; only their SHA-256 is stored, and each use is
//! granted once across the fleet by the store. A code that does not work (unknown, used up,
//! expired, malformed) costs its holder nothing: a visitor keeps the place they hold, a
//! newcomer gets an ordinary one, and the refusal is counted
//! (`usher_gate_requests_total{decision="priority_refused"}`). A priority place's holder who
//! comes back through the link (a reload) keeps their place and uses no second use.

use super::{status, Outcome, RequestFacts, Room};
use crate::admission::VisitorId;
use crate::store::{PriorityCode, StoreError};
use crate::zone::Zone;
use sha2::{Digest, Sha256};

/// The query parameter a priority link carries the code in.
pub const PRIORITY_PARAM: &str = "usher_code";

/// The most codes one request issues.
pub const MAX_CODES: u32 = 10_000;

/// The stored form of `code`: its SHA-256, 64 hex digits.
fn hash_of(code: &str) -> String {
    Sha256::digest(code.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `code` looks like one usher issued (32 lower-case hex digits): anything else is
/// refused without asking the store.
fn well_formed(code: &str) -> bool {
    code.len() == 32
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Room {
    /// Issues `count` codes of `uses` uses each, valid until second `until_s`, for the zone
    /// called `name`; they are stored (hashed) before they are returned. `Ok(None)`: no such
    /// zone.
    pub async fn issue_codes(
        &self,
        name: &str,
        count: u32,
        uses: u32,
        until_s: u64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        if self.zone_named(name).is_none() {
            return Ok(None);
        }
        let codes: Vec<String> = (0..count.min(MAX_CODES))
            .map(|_| VisitorId::random().to_string())
            .collect();
        let stored: Vec<PriorityCode> = codes
            .iter()
            .map(|code| PriorityCode {
                hash: hash_of(code),
                uses,
                until_s,
            })
            .collect();
        self.call(name, "codes", self.store.add_codes(name, &stored))
            .await?;
        Ok(Some(codes))
    }

    /// A visitor redeems `code` in `zone`: a priority place and the waiting page. `None`: the
    /// code does not work, or the client is over its join limits; the request then goes on as
    /// if it carried no code (a visitor keeps the place they hold, a newcomer joins).
    pub(super) async fn redeem(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        code: &str,
        now: u64,
    ) -> Option<(&'static str, Outcome<'_>)> {
        let name = zone.config.name.as_str();
        let visitor = VisitorId::random();
        // The client's join limits first: guessing codes costs a place each.
        if self.take_place(zone, req, visitor, now).is_err() {
            self.requests.inc(zone.index, "priority_refused");
            return None;
        }
        let used = match well_formed(code) {
            false => Ok(false),
            true => {
                let hash = hash_of(code);
                self.call(name, "code", self.store.use_code(name, &hash, now))
                    .await
            }
        };
        self.place_done(zone, req, visitor);
        match used {
            Ok(true) => {}
            Ok(false) => {
                self.requests.inc(zone.index, "priority_refused");
                return None;
            }
            Err(_) => return Some(self.store_failed(zone, req, now, None)),
        }
        // Just behind the cursor: the exchanger's first look (visitors who came back).
        let rank = self.cursor(zone).rank.saturating_sub(1).max(1);
        let mut claims = self.visitor_claims(zone, visitor, rank, now);
        claims.pri = true;
        let cookie = self.place_cookie(zone, &claims);
        let key = claims.queue_key();
        if self
            .call(name, "touch", self.store.touch(name, key, now))
            .await
            .is_err()
        {
            return Some(self.store_failed(zone, req, now, Some(cookie)));
        }
        let status = match self.waiting_status(zone, key, rank, now).await {
            Ok(status) => status.waited_since(now, now),
            Err(_) => status::degraded(zone, now),
        };
        let reply = self.reply(zone, req, zone.config.waiting_status, &status, Some(cookie));
        Some(("priority", reply))
    }
}

#[cfg(test)]
mod tests {
    use super::{hash_of, well_formed};

    #[test]
    fn only_codes_usher_issues_reach_the_store() {
        assert!(well_formed(&"0123456789abcdef".repeat(2)));
        for bad in [
            "",
            "0123456789abcdef",
            &"0123456789ABCDEF".repeat(2),
            &"0123456789abcdeg".repeat(2),
            &"0".repeat(33),
            "ü0123456789abcdef0123456789abcd",
        ] {
            assert!(!well_formed(bad), "{bad:?}");
        }
        assert_eq!(hash_of("a").len(), 64);
        assert_ne!(hash_of("a"), hash_of("b"));
    }
}
