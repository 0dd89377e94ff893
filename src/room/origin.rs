//! A forward the origin never answered (refused, reset, timed out before the response began).
//! The visitor's slot must not stay taken for a whole session by a request that never reached
//! the shop, yet the visitor must not lose it either: the slot is moved to expire one claim
//! window from now, and the visitor gets a provisional access token that expires with it. Their
//! retry (the error page reloads itself) renews it to a full session; if they never come back,
//! the slot frees itself after the claim window.

use super::{Reply, RequestFacts, Room, Session};
use crate::admission::bucket_of;
use crate::page::{self, origin_error, OriginError};
use std::time::Duration;

/// The longest `Retry-After` of the error page: soon enough to come back inside the claim
/// window, which is at least a second.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// What usher tells a visitor whose forward failed.
#[derive(Debug, Clone, Copy)]
pub struct ErrorAudience {
    /// Scripts, apps and non-page requests get JSON.
    pub json: bool,
    /// The page's language.
    pub lang: page::Lang,
}

impl ErrorAudience {
    /// The audience of `req`.
    pub fn of(req: &RequestFacts<'_>) -> Self {
        ErrorAudience {
            json: req.wants_json || !req.shows_pages,
            lang: page::negotiate(req.accept_language),
        }
    }
}

impl Room {
    /// Holds the slot of `session` for the claim window only, after a forward the origin never
    /// answered. Returns the visitor's provisional access cookie, or `None` when the slot could
    /// not be moved (already renewed elsewhere, released, or the store is down): then whatever
    /// the forward would have set stands.
    pub async fn forward_failed(&self, session: &Session) -> Option<String> {
        let zone = self.zone_named(&session.zone)?;
        let now = self.clock.now_ms();
        let (zone, _) = zone.at(now);
        let to = bucket_of(now + zone.config.limits.claim_window.as_millis() as u64);
        if to >= session.bucket {
            return None;
        }
        let name = zone.config.name.as_str();
        let shorten = self
            .store
            .renew(name, session.visitor, session.bucket, to, now);
        match self.call(name, "renew", shorten).await {
            Ok(true) => Some(self.access_cookie(
                zone,
                session.visitor,
                session.rank,
                to,
                session.admitted_at_ms,
                now,
            )),
            _ => None,
        }
    }

    /// usher's answer for a forward to `upstream` of a request in `zone` (if any) that the
    /// origin never answered; `set_cookie` keeps the visitor's session.
    pub fn origin_error(
        &self,
        upstream: &str,
        zone: Option<&str>,
        error: OriginError,
        audience: ErrorAudience,
        set_cookie: Option<String>,
    ) -> Reply {
        self.metrics
            .upstream_errors
            .with_label_values(&[upstream, error.kind()])
            .inc();
        let zone = zone.and_then(|name| self.zone_named(name));
        let retry_after = zone
            .as_ref()
            .map_or(RETRY_AFTER, |z| {
                (z.config.limits.claim_window / 2).min(RETRY_AFTER)
            })
            .as_secs()
            .max(1);
        let reply = if audience.json {
            Reply::fresh(
                error.status(),
                "application/json",
                origin_error::json(error, retry_after),
            )
        } else {
            let top = self.strings.load_full();
            let strings = zone.as_ref().map_or(&top, |z| &z.config.strings);
            let html = origin_error::page(error, strings, audience.lang, retry_after);
            Reply {
                vary: Some("Accept-Language"),
                ..Reply::fresh(
                    error.status(),
                    "text/html; charset=utf-8",
                    html.into_bytes(),
                )
            }
        };
        Reply {
            set_cookie,
            retry_after: Some(retry_after),
            ..reply
        }
    }
}
