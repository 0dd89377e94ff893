//! One waiting page: a status in the visitor's language, through the zone's template or the
//! built-in one (the same engine either way), with the `usher_head` block that makes it move on
//! by itself: a `<noscript>` refresh without JavaScript, the script with it.

use super::assets;
use super::format;
use super::i18n::Lang;
use super::keys::Key;
use super::status::{State, Status};
use super::strings::Strings;
use super::template::{script_safe, Template};
use super::vars::Var;
use std::borrow::Cow;
use std::sync::LazyLock;

static BUILTIN: LazyLock<Template> = LazyLock::new(|| {
    Template::parse(include_str!("default.html")).unwrap_or_else(|e| {
        panic!("the built-in template is invalid (a unit test parses it): {e:?}")
    })
});

/// The built-in template (`default.html`), a starting point for custom ones.
pub fn builtin() -> &'static Template {
    &BUILTIN
}

/// What the page shows: the state, except that a waiting visitor whose numbers are unknown sees
/// the `degraded` texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// A state as it is.
    State(State),
    /// In line, numbers unknown (store trouble).
    Degraded,
}

impl View {
    /// The view of `status`.
    pub fn of(status: &Status) -> View {
        if status.degraded {
            View::Degraded
        } else {
            View::State(status.state)
        }
    }

    /// Its name, as in `data-view` and in the names of its texts.
    pub fn as_str(self) -> &'static str {
        match self {
            View::State(state) => state.as_str(),
            View::Degraded => "degraded",
        }
    }

    /// Headline and message.
    fn texts(self) -> (Key, Key) {
        match self {
            View::State(State::Waiting) => (Key::WaitingHeadline, Key::WaitingMessage),
            View::State(State::Paused) => (Key::PausedHeadline, Key::PausedMessage),
            View::State(State::Prequeue) => (Key::PrequeueHeadline, Key::PrequeueMessage),
            View::State(State::Ended) => (Key::EndedHeadline, Key::EndedMessage),
            View::State(State::Closed) => (Key::ClosedHeadline, Key::ClosedMessage),
            View::State(State::Admitted) => (Key::AdmittedHeadline, Key::AdmittedMessage),
            View::State(State::NotQueued) => (Key::NotQueuedHeadline, Key::NotQueuedMessage),
            View::State(State::Challenge) => (Key::ChallengeHeadline, Key::ChallengeMessage),
            View::Degraded => (Key::DegradedHeadline, Key::DegradedMessage),
        }
    }

    /// Whether there is anything to wait for: closed and ended pages stay as they are.
    fn moves_on(self) -> bool {
        // A puzzle needs the script: reloading without it gets the same puzzle again.
        !matches!(
            self,
            View::State(State::Closed | State::Ended | State::Challenge)
        )
    }
}

/// How a zone's pages look: its template (`None`: the built-in one) and its texts.
#[derive(Debug, Clone, Copy)]
pub struct Look<'a> {
    /// The zone's own template, if it has one.
    pub template: Option<&'a Template>,
    /// The texts in every language, with overrides applied.
    pub strings: &'a Strings,
}

/// The waiting page for `status`, in `lang`, as `look` says.
pub fn render(look: Look<'_>, status: &Status, lang: Lang) -> String {
    let template = look.template.unwrap_or(builtin());
    let strings: &Strings = look.strings;
    let view = View::of(status);
    let (headline, message) = view.texts();
    let refresh_s = status.refresh_ms.div_ceil(1_000).max(1);
    let head = head(status, strings, lang, view.moves_on().then_some(refresh_s));
    let title = status
        .event
        .as_ref()
        .map_or(status.title.as_str(), |e| e.title.as_str());
    let text = |key| Cow::Borrowed(strings.get(lang, key));
    let owned = |value: String| Cow::Owned(value);
    template.render(|var| match var {
        Var::Lang => lang.code().into(),
        Var::Title => title.into(),
        Var::Zone => status.zone.as_str().into(),
        Var::State => status.state.as_str().into(),
        Var::View => view.as_str().into(),
        Var::Headline => text(headline),
        Var::Message => text(message),
        Var::PositionLabel => text(Key::PositionLabel),
        Var::Position => owned(status.position.to_string()),
        Var::Ahead => owned(status.ahead.to_string()),
        Var::AheadText => owned(format::ahead(strings, lang, status.ahead)),
        Var::EtaLabel => text(Key::EtaLabel),
        Var::Eta if view == View::State(State::Waiting) => owned(format::eta(
            strings,
            lang,
            status.eta_low_seconds,
            status.eta_high_seconds,
        )),
        Var::Eta => text(Key::EtaUnknown),
        Var::ProgressLabel => text(Key::ProgressLabel),
        Var::ProgressPercent => owned(status.progress_percent.to_string()),
        Var::Countdown => match &status.event {
            // After the start, until the page has its drawn place.
            Some(event)
                if status.state == State::Prequeue
                    && status.updated_at_ms >= event.starts_at_ms =>
            {
                text(Key::Drawing)
            }
            Some(event) if status.state == State::Prequeue => owned(super::strings::fill(
                strings.get(lang, Key::Countdown),
                &[(
                    "time",
                    &format::clock(event.starts_at_ms.saturating_sub(status.updated_at_ms)),
                )],
            )),
            _ => "".into(),
        },
        Var::StartsAtMs => owned(
            status
                .event
                .as_ref()
                .map(|e| e.starts_at_ms.to_string())
                .unwrap_or_default(),
        ),
        Var::KeepOpen => text(Key::KeepOpen),
        Var::Updated => text(Key::UpdatedNow),
        Var::UpdatedAtMs => owned(status.updated_at_ms.to_string()),
        Var::RefreshSeconds => owned(refresh_s.to_string()),
        Var::Notice => owned(status.message.clone()),
        Var::UsherHead => head.as_str().into(),
        Var::UsherChallenge => "<div id=\"usher-challenge\"></div>".into(),
    })
}

/// The `usher_head` block. The refresh sits in `<noscript>`: only a browser without JavaScript
/// reloads by timer; with it, the script updates the page in place.
fn head(status: &Status, strings: &Strings, lang: Lang, refresh_s: Option<u64>) -> String {
    let refresh = refresh_s
        .map(|s| format!("<noscript><meta http-equiv=\"refresh\" content=\"{s}\"></noscript>\n"))
        .unwrap_or_default();
    let status_json = script_safe(&String::from_utf8(status.to_json()).unwrap_or_default());
    // The worker that solves a proof-of-work puzzle, for the page that has one.
    let pow = match status.challenge {
        Some(_) => format!(",\"pow\":\"{}\"", assets::pow_worker().url()),
        None => String::new(),
    };
    let data = format!(
        "{{\"strings\":{},\"status\":{status_json}{pow}}}",
        strings.json(lang)
    );
    format!(
        "{refresh}<link rel=\"stylesheet\" href=\"{css}\">\n\
         <script type=\"application/json\" id=\"usher-data\">{data}</script>\n\
         <script src=\"{js}\" defer></script>",
        css = assets::stylesheet().url(),
        js = assets::script().url(),
    )
}
