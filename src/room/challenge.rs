//! Challenges before a place: proof of work, or a CAPTCHA provider's widget (the challenge
//! hook). While a zone asks for a puzzle (`proof_of_work = "on"`, or `"auto"` while newcomers
//! arrive on this node faster than `pow_auto_joins_per_minute`), a newcomer's first answer is a
//! puzzle, not a place: find a nonce such that SHA-256 of `seed:nonce` starts with
//! `pow_difficulty` zero bits. The page solves it in a Web Worker (`assets/pow.js`); apps get it
//! as JSON and solve it themselves. The puzzle is a signed challenge token whose `vid` is the
//! seed and whose `rank` is the arrival, so the place it earns ranks from when the visitor
//! arrived, not from when their phone finished. It is kept in a cookie, so a reload keeps the
//! same puzzle and arrival.
//!
//! Nothing is written anywhere before a solution is presented: a flood of puzzle requests costs
//! a signature each. A solution is checked with one hash, used once (a replay on this node is
//! refused; elsewhere it can only earn the same place again, since the place is the seed's) and
//! expires with its token.
//!
//! With a challenge hook (`challenge = { provider, site_key, secret, ... }`), every newcomer
//! gets the provider's widget instead (Turnstile, hCaptcha, reCAPTCHA), under the same signed
//! challenge token; its answer is checked server-side with the provider's `siteverify` form
//! post, off the request path's threads and within the hook's `timeout`. When the check cannot
//! be made, the hook's `on_error` decides: the place anyway, or a `503` to try again.

use super::endpoints::{json_reply, query_param};
use super::places::{Arrival, Joined};
use super::{status, Outcome, Reply, RequestFacts, Room};
use crate::admission::VisitorId;
use crate::config::{ChallengeHook, ProofOfWork, StoreErrorPolicy};
use crate::gate::{Decision, TokenCheck};
use crate::page::{Challenge, State};
use crate::token::{cookie, Claims, TokenKind};
use crate::zone::Zone;
use sha2::{Digest, Sha256};

/// How long a puzzle may take to solve and present.
pub const CHALLENGE_TTL_S: u64 = 300;

/// The path that takes solutions.
pub const SOLVE_PATH: &str = "/_usher/solve";

/// Leading zero bits of SHA-256(`seed:nonce`).
pub fn work_of(seed: &str, nonce: u64) -> u32 {
    let digest = Sha256::new()
        .chain_update(seed.as_bytes())
        .chain_update(b":")
        .chain_update(nonce.to_string().as_bytes())
        .finalize();
    let mut bits = 0;
    for byte in digest {
        bits += byte.leading_zeros();
        if byte != 0 {
            break;
        }
    }
    bits
}

/// Why a solution was refused: the `error` of the JSON answer.
fn refusal(status: u16, error: &str) -> Outcome<'static> {
    Outcome::Reply(json_reply(
        status,
        format!("{{\"version\":1,\"error\":\"{error}\"}}").into_bytes(),
    ))
}

impl Room {
    /// Whether newcomers to `zone` must solve a puzzle now.
    pub(super) fn challenge_asked(&self, zone: &Zone, now: u64) -> bool {
        let rules = &zone.config.defence;
        if rules.challenge.is_some() {
            return true;
        }
        match rules.proof_of_work {
            ProofOfWork::Off => false,
            ProofOfWork::On => true,
            ProofOfWork::Auto => {
                self.arrivals[zone.index].per_minute(now) > rules.pow_auto_joins_per_minute
            }
        }
    }

    /// Counts a newcomer to `zone` when `proof_of_work = "auto"` reads the count (other zones
    /// take no lock for it).
    pub(super) fn note_newcomer(&self, zone: &Zone, now: u64) {
        if zone.config.defence.proof_of_work == ProofOfWork::Auto {
            self.arrivals[zone.index].record(now);
        }
    }

    /// The name of the cookie that keeps `zone`'s puzzle across reloads (a zone name holds
    /// no `.`, so it never names another zone's cookie).
    fn challenge_cookie(zone: &Zone) -> String {
        format!("{}.challenge", zone.cookie)
    }

    /// The claims of `raw` if it is a valid challenge token for `zone`.
    fn challenge_claims(&self, zone: &Zone, raw: &str, now: u64) -> Option<std::sync::Arc<Claims>> {
        let claims = self.tokens.verify(raw, now).ok()?;
        let fits = claims.typ == TokenKind::Challenge && claims.zone == zone.config.name;
        fits.then_some(claims)
    }

    /// The puzzle for a newcomer to `zone`: the one their cookie keeps, while it is good, else
    /// a new one arriving now.
    pub(super) fn challenge(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        now: u64,
    ) -> (&'static str, Outcome<'_>) {
        let name = Self::challenge_cookie(zone);
        let kept = req
            .cookie
            .and_then(|c| cookie::find(c, &name))
            .and_then(|raw| Some((raw, self.challenge_claims(zone, raw, now)?)))
            .filter(|(_, claims)| !self.used_challenges.contains_key(&claims.vid));
        let (token, claims, set_cookie) = match kept {
            Some((raw, claims)) => (raw.to_string(), (*claims).clone(), None),
            None => {
                let claims = Claims {
                    iss: self.tokens.issuer().to_string(),
                    typ: TokenKind::Challenge,
                    zone: zone.config.name.clone(),
                    vid: VisitorId::random(),
                    rank: now,
                    iat: now / 1_000,
                    exp: now / 1_000 + CHALLENGE_TTL_S,
                    adm: None,
                    pri: false,
                };
                let token = self.tokens.sign(&claims);
                let set = cookie::set(&name, &token, CHALLENGE_TTL_S, self.cookie_secure);
                (token, claims, Some(set))
            }
        };
        let mut status = status::without_place(zone, State::Challenge, now);
        let solve = format!("{SOLVE_PATH}?zone={}", zone.config.name);
        let expires_at_ms = claims.exp * 1_000;
        status.challenge = Some(Box::new(match &zone.config.defence.challenge {
            None => Challenge {
                kind: "pow",
                token,
                solve,
                expires_at_ms,
                seed: Some(claims.vid.to_string()),
                bits: Some(zone.config.defence.pow_difficulty),
                algorithm: Some("sha256"),
                provider: None,
                site_key: None,
                script: None,
            },
            Some(hook) => Challenge {
                kind: "captcha",
                token,
                solve,
                expires_at_ms,
                seed: None,
                bits: None,
                algorithm: None,
                provider: Some(hook.provider.as_str()),
                site_key: Some(hook.site_key.clone()),
                script: Some(hook.script_url.clone()),
            },
        }));
        let code = zone.config.waiting_status;
        (
            "challenge",
            self.reply(zone, req, code, &status, set_cookie),
        )
    }

    /// `/_usher/solve?zone=Z&challenge=TOKEN&nonce=N` (or `&response=R`, the widget's answer
    /// with a challenge hook): a passed challenge earns the place its arrival carries (or, in a
    /// quiet `auto` zone, the way straight in), as JSON with the cookie. Refused: `400` for a
    /// challenge that is not one (forged, expired, another zone's) or no answer, `403` for a
    /// wrong answer, `409` for a used challenge, `429` over a client limit, `503` when the
    /// provider could not be asked and the hook fails closed.
    pub(super) async fn solve(&self, req: &RequestFacts<'_>, now: u64) -> Outcome<'_> {
        let Some(zone) = self.status_zone(req) else {
            return Outcome::Reply(super::endpoints::no_zone());
        };
        let (zone, phase) = zone.at(now);
        let Some(claims) = query_param(req.query, "challenge")
            .and_then(|raw| self.challenge_claims(zone, raw, now))
        else {
            self.requests.inc(zone.index, "challenge_refused");
            return refusal(400, "challenge_invalid");
        };
        if let Err(refused) = self.check_answer(zone, req, &claims).await {
            self.requests.inc(zone.index, "challenge_refused");
            return refused;
        }
        if self
            .used_challenges
            .insert(claims.vid, claims.exp)
            .is_some()
        {
            self.requests.inc(zone.index, "challenge_refused");
            return refusal(409, "challenge_used");
        }
        self.requests.inc(zone.index, "solved");
        let arrival = Arrival {
            visitor: claims.vid,
            rank: claims.rank,
        };
        // What the newcomer would have got had no puzzle been asked.
        let decision = self.decide_with(zone, phase, &TokenCheck::Missing, false, false, now);
        let joined = match decision {
            Decision::Join { may_enter } => {
                self.place_newcomer(zone, req, now, may_enter, Some(arrival))
                    .await
            }
            Decision::JoinPrequeue => {
                match self.prequeue_newcomer(zone, req, Some(arrival), now).await {
                    Ok((status, cookie)) => Joined::Waiting {
                        status: Box::new(status),
                        cookie,
                    },
                    Err(refused) => Joined::Limited(refused),
                }
            }
            // The zone closed, ended or opened meanwhile: say so.
            other => {
                let state = match other {
                    Decision::Closed => State::Closed,
                    Decision::Ended => State::Ended,
                    _ => State::Admitted,
                };
                let status = status::without_place(zone, state, now);
                return Outcome::Reply(json_reply(200, status.to_json()));
            }
        };
        let (status, cookie) = match joined {
            Joined::Admitted(admitted) => (
                status::without_place(zone, State::Admitted, now),
                Some(admitted.cookie),
            ),
            Joined::Waiting { status, cookie } => (*status, Some(cookie)),
            Joined::Limited(refused) => return self.limited(zone, req, refused),
            Joined::StoreFailed { cookie } => (status::degraded(zone, now), Some(cookie)),
        };
        let status = self.with_draw(zone, status);
        Outcome::Reply(Reply {
            set_cookie: cookie,
            ..json_reply(200, status.to_json())
        })
    }

    /// Checks the answer to `claims`' challenge in `req`: the puzzle's nonce, or the widget's
    /// answer with the provider.
    async fn check_answer(
        &self,
        zone: &Zone,
        req: &RequestFacts<'_>,
        claims: &Claims,
    ) -> Result<(), Outcome<'static>> {
        if let Some(hook) = &zone.config.defence.challenge {
            let Some(response) = query_param(req.query, "response").map(percent_decoded) else {
                return Err(refusal(400, "response_missing"));
            };
            let client = req.client.map(|ip| ip.to_string());
            return match siteverify(hook, &response, client.as_deref()).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(refusal(403, "challenge_failed")),
                Err(e) => {
                    tracing::warn!(zone = %zone.config.name, error = %e, "challenge provider could not be asked");
                    self.metrics
                        .challenge_errors
                        .with_label_values(&[&zone.config.name])
                        .inc();
                    match hook.on_error {
                        StoreErrorPolicy::FailOpen => Ok(()),
                        StoreErrorPolicy::FailClosed => Err(Outcome::Reply(Reply {
                            retry_after: Some(2),
                            ..json_reply(
                                503,
                                b"{\"version\":1,\"error\":\"challenge_unverified\"}".to_vec(),
                            )
                        })),
                    }
                }
            };
        }
        let Some(nonce) = query_param(req.query, "nonce").and_then(|n| n.parse::<u64>().ok())
        else {
            return Err(refusal(400, "nonce_missing"));
        };
        let seed = claims.vid.to_string();
        if work_of(&seed, nonce) < u32::from(zone.config.defence.pow_difficulty) {
            return Err(refusal(403, "challenge_unsolved"));
        }
        Ok(())
    }

    /// Forgets used puzzles once they expired anyway.
    pub(super) fn forget_used_challenges(&self, now: u64) {
        self.used_challenges.retain(|_, exp| *exp > now / 1_000);
    }
}

/// Asks the provider whether `response` is a good answer (its `siteverify` form post), within
/// the hook's timeout. `Err`: it could not be asked, or said nothing usable.
async fn siteverify(
    hook: &ChallengeHook,
    response: &str,
    client: Option<&str>,
) -> Result<bool, String> {
    let hook = hook.clone();
    let response = response.to_string();
    let client = client.map(str::to_string);
    let timeout = hook.timeout;
    let call = tokio::task::spawn_blocking(move || -> Result<bool, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(hook.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let mut form = vec![
            ("secret", hook.secret.as_str()),
            ("response", response.as_str()),
        ];
        if let Some(ip) = client.as_deref() {
            form.push(("remoteip", ip));
        }
        let mut answer = agent
            .post(&hook.verify_url)
            .send_form(form)
            .map_err(|e| e.to_string())?;
        let status = answer.status();
        let body = answer
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("siteverify answered {status}"));
        }
        let json: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("siteverify answered no JSON: {e}"))?;
        json.get("success")
            .and_then(serde_json::Value::as_bool)
            .ok_or_else(|| "siteverify's answer has no `success`".to_string())
    });
    match tokio::time::timeout(timeout + std::time::Duration::from_millis(500), call).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// A query value with `%XX` escapes and `+` decoded (a widget's answer travels through
/// `encodeURIComponent`); bytes that do not make UTF-8 are replaced.
fn percent_decoded(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{percent_decoded, work_of};
    use proptest::prelude::*;

    #[test]
    fn answers_are_percent_decoded_once() {
        for (raw, decoded) in [
            ("abc", "abc"),
            ("0.a%2Bb%2F%3D", "0.a+b/="),
            ("a+b", "a b"),
            ("%", "%"),
            ("%4", "%4"),
            ("%zz", "%zz"),
            ("%252F", "%2F"),
            ("%C3%A9", "é"),
            ("%FF", "\u{FFFD}"),
        ] {
            assert_eq!(percent_decoded(raw), decoded, "{raw}");
        }
    }

    proptest! {
        #[test]
        fn decoding_never_panics(raw in "\\PC{0,64}") {
            let _ = percent_decoded(&raw);
        }
    }

    #[test]
    fn work_counts_leading_zero_bits_of_the_hash() {
        let seed = "0123456789abcdef0123456789abcdef";
        // The first nonce with 8 zero bits, found by brute force and checked bit by bit.
        let nonce = (0..).find(|n| work_of(seed, *n) >= 8).expect("some nonce");
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("{seed}:{nonce}").as_bytes());
        assert_eq!(digest[0], 0);
        assert!((0..nonce).all(|n| Sha256::digest(format!("{seed}:{n}").as_bytes())[0] != 0));
        assert_eq!(work_of(seed, nonce), 8 + digest[1].leading_zeros());
    }
}
