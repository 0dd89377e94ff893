//! The visitor's status: what `/_usher/status` returns as JSON and what the waiting page shows.
//! Built from plain values ([`Heading`] for the zone); the room fills them in.

use crate::admission::Eta;
use serde::Serialize;

/// Where a visitor stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// In the queue.
    Waiting,
    /// In the queue of a paused zone: nobody is admitted for now.
    Paused,
    /// Their turn came; the response carries their access token.
    Admitted,
    /// The zone is closed.
    Closed,
    /// A scheduled on-sale has not started: the visitor holds a pre-queue place and sees a
    /// countdown. Positions exist only after the draw at `starts_at`.
    Prequeue,
    /// The scheduled on-sale is over.
    Ended,
    /// No place in this zone's queue (no or invalid visitor token).
    NotQueued,
    /// A newcomer asked to solve a proof-of-work puzzle first: the status carries it.
    Challenge,
}

impl State {
    /// The name as in the JSON (`waiting`, `not_queued`, ...), for the page's `data-state`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Paused => "paused",
            State::Admitted => "admitted",
            State::Closed => "closed",
            State::Prequeue => "prequeue",
            State::Ended => "ended",
            State::NotQueued => "not_queued",
            State::Challenge => "challenge",
        }
    }
}

/// The status document (versioned for apps: fields are only ever added).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Document version.
    pub version: u32,
    /// Zone name.
    pub zone: String,
    /// Zone title, for display.
    pub title: String,
    /// Where the visitor stands.
    pub state: State,
    /// 1-based place in line (0 when not waiting).
    pub position: u64,
    /// People in front.
    pub ahead: u64,
    /// Estimated wait in seconds, with a range.
    pub eta_seconds: u64,
    /// Lower end of the estimate.
    pub eta_low_seconds: u64,
    /// Upper end of the estimate.
    pub eta_high_seconds: u64,
    /// How long to wait before asking again.
    pub refresh_ms: u64,
    /// Whether the visitor may go in now.
    pub admitted: bool,
    /// When this status was computed, ms since the epoch.
    pub updated_at_ms: u64,
    /// Seconds since the visitor joined (their real arrival, also for lottery places).
    pub waited_seconds: u64,
    /// How far along the wait is, 0 to 100: waited / (waited + ETA).
    pub progress_percent: u8,
    /// The scheduled on-sale in force or coming up, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<EventInfo>,
    /// Set when the store could not be asked and the numbers are unknown.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
    /// The puzzle to solve (state `challenge`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge: Option<Box<Challenge>>,
    /// The operator's notice to everyone in the zone (the zone's `message`, or one set live
    /// through the admin API); absent when there is none. Plain text: pages escape it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// What a newcomer must pass before they get a place (`docs/status-json.md`): a proof-of-work
/// puzzle (`kind: "pow"`: find the smallest decimal `nonce` such that SHA-256 of `seed:nonce`
/// starts with `bits` zero bits, then `GET {solve}&challenge={token}&nonce={nonce}`) or a
/// CAPTCHA provider's widget (`kind: "captcha"`: render it with `site_key`, then
/// `GET {solve}&challenge={token}&response={the widget's answer}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Challenge {
    /// `pow` or `captcha`.
    pub kind: &'static str,
    /// The signed challenge (present it to `solve`): it carries the arrival.
    pub token: String,
    /// Where to present the answer.
    pub solve: String,
    /// When the challenge expires, ms since the epoch.
    pub expires_at_ms: u64,
    /// The puzzle's seed: 32 hex digits (`pow`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// Leading zero bits the hash must have (`pow`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits: Option<u8>,
    /// Always `sha256` (`pow`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<&'static str>,
    /// `turnstile`, `hcaptcha` or `recaptcha` (`captcha`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'static str>,
    /// The widget's site key (`captcha`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_key: Option<String>,
    /// The provider's script (`captcha`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
}

/// A scheduled on-sale as the visitor sees it (times in ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventInfo {
    /// The event's name in config.
    pub name: String,
    /// The event's title, for display.
    pub title: String,
    /// When the pre-queue opens.
    pub prequeue_at_ms: u64,
    /// When the sale starts (and the pre-queue is drawn).
    pub starts_at_ms: u64,
    /// When the sale ends (0: it does not).
    pub ends_at_ms: u64,
    /// The pre-queue lottery's seed (16 hex digits), once drawn, so the draw can be audited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draw_seed: Option<String>,
    /// When the lottery was drawn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drawn_at_ms: Option<u64>,
}

/// What every status of a zone says about the zone itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heading {
    /// Zone name.
    pub zone: String,
    /// Zone title, for display.
    pub title: String,
    /// How long to wait before asking again, ms.
    pub refresh_ms: u64,
    /// The scheduled on-sale in force or coming up, if any.
    pub event: Option<EventInfo>,
    /// The operator's notice (empty: none).
    pub message: String,
}

impl Status {
    /// A status with no position (admitted, closed, not queued, pre-queue, ended).
    pub fn without_place(heading: Heading, state: State, now_ms: u64) -> Self {
        Status {
            version: 1,
            zone: heading.zone,
            title: heading.title,
            state,
            position: 0,
            ahead: 0,
            eta_seconds: 0,
            eta_low_seconds: 0,
            eta_high_seconds: 0,
            refresh_ms: heading.refresh_ms,
            admitted: state == State::Admitted,
            updated_at_ms: now_ms,
            waited_seconds: 0,
            progress_percent: 0,
            event: heading.event,
            degraded: false,
            challenge: None,
            message: heading.message,
        }
    }

    /// A waiting visitor's status; `joined_at_ms` is their arrival (the rank in their token).
    pub fn waiting(
        heading: Heading,
        state: State,
        ahead: u64,
        eta: Eta,
        joined_at_ms: u64,
        now_ms: u64,
    ) -> Self {
        let status = Status {
            position: ahead + 1,
            ahead,
            eta_seconds: eta.seconds,
            eta_low_seconds: eta.low,
            eta_high_seconds: eta.high,
            ..Status::without_place(heading, state, now_ms)
        }
        .waited_since(joined_at_ms, now_ms);
        Status {
            progress_percent: progress_percent(status.waited_seconds, eta.seconds),
            ..status
        }
    }

    /// The same status, for a visitor who arrived at `joined_at_ms`.
    pub fn waited_since(mut self, joined_at_ms: u64, now_ms: u64) -> Self {
        self.waited_seconds = now_ms.saturating_sub(joined_at_ms) / 1_000;
        self
    }

    /// A waiting visitor's status when the store could not be asked: they keep their place,
    /// the numbers are unknown.
    pub fn degraded(heading: Heading, now_ms: u64) -> Self {
        Status {
            degraded: true,
            ..Status::waiting(heading, State::Waiting, 0, Eta::default(), now_ms, now_ms)
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Progress as a share of the whole expected wait. Stateless (no first position to remember),
/// and it only grows while the estimate holds; capped at 99 until the turn actually comes.
pub fn progress_percent(waited_seconds: u64, eta_seconds: u64) -> u8 {
    let total = waited_seconds + eta_seconds;
    if total == 0 {
        return 0;
    }
    ((waited_seconds * 100 / total).min(99)) as u8
}

#[cfg(test)]
mod tests {
    use super::State;

    #[test]
    fn state_names_match_the_json() {
        for state in [
            State::Waiting,
            State::Paused,
            State::Admitted,
            State::Closed,
            State::Prequeue,
            State::Ended,
            State::NotQueued,
            State::Challenge,
        ] {
            let json = serde_json::to_string(&state).expect("json");
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
    }
}
