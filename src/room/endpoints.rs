//! The reserved `/_usher/` paths on every host, routed in one place ([`Endpoint::of`]):
//! `status` (JSON, and the token swap when the visitor's turn came, so a page that polls it can
//! go on), `events` (the same as Server-Sent Events), `solve` (a solved proof-of-work puzzle
//! for a place), `jwks.json` (public keys, so the origin can
//! verify access tokens itself), `assets/*` (the waiting page's CSS and JS), `health` and `ready`.

use super::{Outcome, Reply, RequestFacts, Room};
use crate::lifecycle::NotReady;
use crate::page::assets;
use crate::token::cookie;
use crate::zone::Zone;
use std::sync::Arc;

/// A reserved path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// `/_usher/status`
    Status,
    /// `/_usher/events`
    Events,
    /// `/_usher/jwks.json`
    Jwks,
    /// `/_usher/solve`: a solved proof-of-work puzzle, exchanged for a place.
    Solve,
    /// `/_usher/health`: the process answers (liveness).
    Health,
    /// `/_usher/ready`: the node takes new visitors (readiness; answered by the proxy, which
    /// knows the node's phase).
    Ready,
    /// `/_usher/assets/NAME`
    Asset(&'a str),
    /// Any other path under `/_usher`.
    Unknown,
}

impl<'a> Endpoint<'a> {
    /// The endpoint at canonical `path`, if it is under `/_usher`.
    pub fn of(path: &'a str) -> Option<Endpoint<'a>> {
        let rest = path.strip_prefix("/_usher")?;
        let Some(rest) = rest.strip_prefix('/') else {
            return rest.is_empty().then_some(Endpoint::Unknown);
        };
        Some(match rest {
            "status" => Endpoint::Status,
            "events" => Endpoint::Events,
            "jwks.json" => Endpoint::Jwks,
            "solve" => Endpoint::Solve,
            "health" => Endpoint::Health,
            "ready" => Endpoint::Ready,
            _ => match rest.strip_prefix("assets/") {
                Some(name) => Endpoint::Asset(name),
                None => Endpoint::Unknown,
            },
        })
    }
}

/// `/_usher/health`'s body: the process answers.
pub const HEALTH_JSON: &str = "{\"ok\":true}";

/// `/_usher/ready`'s status and body: 200, or 503 with the reason.
pub fn readiness_json(readiness: Result<(), NotReady>) -> (u16, String) {
    match readiness {
        Ok(()) => (200, "{\"ready\":true}".to_string()),
        Err(why) => (
            503,
            format!("{{\"ready\":false,\"reason\":\"{}\"}}", why.reason()),
        ),
    }
}

/// A JSON reply without cookies.
pub(super) fn json_reply(status: u16, body: Vec<u8>) -> Reply {
    Reply::fresh(status, "application/json", body)
}

fn json(status: u16, body: Vec<u8>, set_cookie: Option<String>) -> Outcome<'static> {
    Outcome::Reply(Reply {
        set_cookie,
        ..json_reply(status, body)
    })
}

/// An embedded asset by its hashed name; names change with content, so it may be cached for
/// good. Another build's name of a known asset gets this build's file, revalidated each time
/// (a rolling upgrade); any other name is a 404 (with `no-store`, so a later version is not
/// shadowed).
fn asset(name: &str) -> Outcome<'static> {
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

pub(super) fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}

pub(super) fn no_zone() -> Reply {
    json_reply(404, b"{\"error\":\"no zone on this host\"}".to_vec())
}

impl Room {
    pub(super) async fn endpoint(
        &self,
        endpoint: Endpoint<'_>,
        req: &RequestFacts<'_>,
        now: u64,
    ) -> Outcome<'_> {
        match endpoint {
            Endpoint::Status => self.status(req, now).await,
            Endpoint::Solve => self.solve(req, now).await,
            Endpoint::Events => match self.events(req) {
                Ok(stream) => Outcome::Events(stream),
                Err(reply) => Outcome::Reply(reply),
            },
            Endpoint::Jwks => json(
                200,
                self.tokens.keyring().jwks.to_string().into_bytes(),
                None,
            ),
            Endpoint::Health => json(200, HEALTH_JSON.as_bytes().to_vec(), None),
            // The proxy answers it with the node's phase; on its own the room knows the store.
            Endpoint::Ready => {
                let healthy = self.store_healthy();
                let (status, body) =
                    readiness_json(healthy.then_some(()).ok_or(NotReady::StoreUnhealthy));
                json(status, body.into_bytes(), None)
            }
            Endpoint::Asset(name) => asset(name),
            Endpoint::Unknown => json(
                404,
                b"{\"error\":\"no such usher endpoint\"}".to_vec(),
                None,
            ),
        }
    }

    /// The zone a status request is about: `?zone=NAME`, else the first zone of this host the
    /// visitor holds a cookie for, else the host's only zone.
    pub(super) fn status_zone(&self, req: &RequestFacts<'_>) -> Option<Arc<Zone>> {
        let table = self.zones.current();
        if let Some(name) = query_param(req.query, "zone") {
            return table.by_name(name).cloned();
        }
        let with_cookie = table.for_host(req.host).find(|zone| {
            req.cookie
                .and_then(|c| cookie::find(c, &zone.cookie))
                .is_some()
        });
        with_cookie
            .or_else(|| table.for_host(req.host).next())
            .cloned()
    }

    async fn status(&self, req: &RequestFacts<'_>, now: u64) -> Outcome<'_> {
        let Some(zone) = self.status_zone(req) else {
            return Outcome::Reply(no_zone());
        };
        let (zone, phase) = zone.at(now);
        let token = self.check(zone, req, now);
        let decision = self.decide(zone, phase, &token, false, now);
        let seen = self.look(zone, &token, decision, now, true).await;
        self.requests.inc(zone.index, seen.label);
        let status = self.with_draw(zone, seen.status);
        json(200, status.to_json(), seen.set_cookie)
    }

    /// Opens an event stream for the visitor of `req`, or says why not (no such zone).
    fn events(&self, req: &RequestFacts<'_>) -> Result<super::EventStream<'_>, Reply> {
        let zone = self.status_zone(req).ok_or_else(no_zone)?;
        let now = self.clock.now_ms();
        let (at, _) = zone.at(now);
        let token = self.check(at, req, now);
        let permit = self.open_stream(&zone, req, now)?;
        self.requests.inc(zone.index, "events");
        Ok(super::EventStream::open(
            self,
            zone,
            token,
            req.last_event_id,
            permit,
        ))
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
    fn every_reserved_path_has_one_endpoint() {
        assert_eq!(Endpoint::of("/_usher/status"), Some(Endpoint::Status));
        assert_eq!(Endpoint::of("/_usher/events"), Some(Endpoint::Events));
        assert_eq!(Endpoint::of("/_usher/jwks.json"), Some(Endpoint::Jwks));
        assert_eq!(Endpoint::of("/_usher/solve"), Some(Endpoint::Solve));
        assert_eq!(Endpoint::of("/_usher/health"), Some(Endpoint::Health));
        assert_eq!(
            Endpoint::of("/_usher/assets/page.0.css"),
            Some(Endpoint::Asset("page.0.css"))
        );
        for unknown in [
            "/_usher",
            "/_usher/nope",
            "/_usher/status/x",
            "/_usher/assets",
        ] {
            assert_eq!(Endpoint::of(unknown), Some(Endpoint::Unknown), "{unknown}");
        }
        for outside in [
            "/",
            "/_ushers",
            "/_usherx/status",
            "/checkout",
            "/x/_usher/status",
        ] {
            assert_eq!(Endpoint::of(outside), None, "{outside}");
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
