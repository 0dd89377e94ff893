//! The reserved `/_usher/` endpoints on every host: `status` (JSON, and the token swap when the
//! visitor's turn came, so a page that polls it can go on), `jwks.json` (public keys, so the
//! origin can verify access tokens itself), `assets/*` (the waiting page's CSS and JS) and
//! `health`.

use super::page::assets;
use super::places::Place;
use super::status::{State, Status};
use super::{Outcome, Reply, RequestFacts, Room};
use crate::config::Mode;
use crate::gate::TokenCheck;
use crate::token::cookie;
use crate::zone::Zone;

/// A JSON reply without cookies.
pub(super) fn json_reply(status: u16, body: Vec<u8>) -> Reply {
    Reply::fresh(status, "application/json", body)
}

fn json(status: u16, body: Vec<u8>, set_cookie: Option<String>) -> Outcome {
    Outcome::Reply(Reply {
        set_cookie,
        ..json_reply(status, body)
    })
}

/// An embedded asset by its hashed name; names change with content, so it may be cached for
/// good. Another build's name of a known asset gets this build's file, revalidated each time
/// (a rolling upgrade); any other name is a 404 (with `no-store`, so a later version is not
/// shadowed).
fn asset(name: &str) -> Outcome {
    let (asset, cache_control) = match assets::find(name) {
        Some(asset) => (asset, assets::CACHE_CONTROL),
        None => match assets::other_version_of(name) {
            Some(asset) => (asset, "no-cache"),
            None => return json(404, b"{\"error\":\"no such asset\"}".to_vec(), None),
        },
    };
    Outcome::Reply(Reply {
        cache_control,
        ..Reply::fresh(200, asset.content_type, asset.body.as_bytes().to_vec())
    })
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}

impl Room {
    pub(super) async fn endpoint(
        &self,
        endpoint: &str,
        req: &RequestFacts<'_>,
        now: u64,
    ) -> Outcome {
        if let Some(name) = endpoint.strip_prefix("assets/") {
            return asset(name);
        }
        match endpoint {
            "status" => self.status(req, now).await,
            "jwks.json" => json(
                200,
                self.tokens.keyring().jwks.to_string().into_bytes(),
                None,
            ),
            "health" => json(200, b"{\"ok\":true}".to_vec(), None),
            _ => json(
                404,
                b"{\"error\":\"no such usher endpoint\"}".to_vec(),
                None,
            ),
        }
    }

    /// The zone a status request is about: `?zone=NAME`, else the first zone of this host the
    /// visitor holds a cookie for, else the host's only zone.
    pub(super) fn status_zone(&self, req: &RequestFacts<'_>) -> Option<&Zone> {
        if let Some(name) = query_param(req.query, "zone") {
            return self.zones.by_name(name);
        }
        let with_cookie = self.zones.for_host(req.host).find(|zone| {
            req.cookie
                .and_then(|c| cookie::find(c, &zone.cookie))
                .is_some()
        });
        // Looked up again by index: the zone borrows from the table, not from the request.
        let index = with_cookie
            .or_else(|| self.zones.for_host(req.host).next())?
            .index;
        self.zones.get(index)
    }

    async fn status(&self, req: &RequestFacts<'_>, now: u64) -> Outcome {
        let Some(zone) = self.status_zone(req) else {
            return json(404, b"{\"error\":\"no zone on this host\"}".to_vec(), None);
        };
        let (zone, phase) = zone.at(now);
        let check = self.check(zone, req, now);
        let (label, status, set_cookie) = match (&check, zone.config.mode) {
            _ if matches!(phase, crate::onsale::Phase::Ended(_)) => (
                "status",
                Status::without_place(zone, State::Ended, now),
                None,
            ),
            (_, Mode::Closed) => (
                "status",
                Status::without_place(zone, State::Closed, now),
                None,
            ),
            (TokenCheck::Access(_), _) | (_, Mode::Passthrough) => (
                "status",
                Status::without_place(zone, State::Admitted, now),
                None,
            ),
            (TokenCheck::Visitor(claims), _) => match self.place(zone, claims, now).await {
                Ok(Place::Admitted { token, .. }) => (
                    "claim",
                    Status::without_place(zone, State::Admitted, now),
                    Some(token),
                ),
                Ok(Place::Waiting(status)) => ("status", status, None),
                Ok(Place::Ended) => (
                    "status",
                    Status::without_place(zone, State::NotQueued, now),
                    None,
                ),
                Err(_) => ("status", Status::degraded(zone, now), None),
            },
            (TokenCheck::Missing | TokenCheck::Rejected(_), _) => (
                "status",
                Status::without_place(zone, State::NotQueued, now),
                None,
            ),
        };
        self.requests.inc(zone.index, label);
        json(200, self.with_draw(zone, status).to_json(), set_cookie)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_served_by_hashed_name_and_cached_for_good() {
        for (asset, content_type) in [
            (assets::stylesheet(), "text/css; charset=utf-8"),
            (assets::script(), "text/javascript; charset=utf-8"),
        ] {
            let Outcome::Reply(reply) = super::asset(&asset.name) else {
                panic!("an asset is a reply");
            };
            assert_eq!(reply.status, 200);
            assert_eq!(reply.content_type, content_type);
            assert_eq!(reply.cache_control, "public, max-age=31536000, immutable");
            assert_eq!(reply.body, asset.body.as_bytes());
        }
        // Another build's name: this build's file, not cached for good.
        let Outcome::Reply(reply) = super::asset("page.0000000000000000.js") else {
            panic!("a reply");
        };
        assert_eq!((reply.status, reply.cache_control), (200, "no-cache"));
        assert_eq!(reply.body, assets::script().body.as_bytes());
        for unknown in [
            "page.css",
            "page.00000000000000zz.js",
            "page.0000000000000000.exe",
            "other.0000000000000000.js",
            "",
            "../usher.toml",
        ] {
            let Outcome::Reply(reply) = super::asset(unknown) else {
                panic!("a reply");
            };
            assert_eq!(reply.status, 404, "{unknown}");
            assert_eq!(reply.cache_control, "no-store");
        }
    }

    #[test]
    fn reads_query_parameters() {
        assert_eq!(
            query_param(Some("a=1&zone=checkout"), "zone"),
            Some("checkout")
        );
        assert_eq!(query_param(Some("zone"), "zone"), None);
        assert_eq!(query_param(None, "zone"), None);
    }
}
