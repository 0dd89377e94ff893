//! The variables a waiting-page template may use: a closed set, so a template names only what
//! exists and a typo is a config error. `docs/waiting-page.md` describes each one; keep the two
//! in step.

/// One `{{name}}` of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// The page's language code (`en`, `de`, ...), for `<html lang>`.
    Lang,
    /// The event's title while an event is in force, else the zone's.
    Title,
    /// The zone's name.
    Zone,
    /// The status state (`waiting`, `paused`, `prequeue`, `ended`, `closed`, ...).
    State,
    /// What the page shows: the state, or `degraded` when the numbers are unknown.
    View,
    /// The view's headline.
    Headline,
    /// The view's explanation.
    Message,
    /// "Your place in line".
    PositionLabel,
    /// The place in line, the number only.
    Position,
    /// People ahead, the number only.
    Ahead,
    /// People ahead, as a sentence.
    AheadText,
    /// "Estimated wait".
    EtaLabel,
    /// The wait as a range in words ("about 4–6 minutes").
    Eta,
    /// Accessible name of the progress bar.
    ProgressLabel,
    /// 0 to 100.
    ProgressPercent,
    /// Time left until the sale starts, in words (pre-queue only, else empty).
    Countdown,
    /// When the sale starts, ms since the epoch (empty without an event).
    StartsAtMs,
    /// "Keep this page open, we will take you in automatically."
    KeepOpen,
    /// When the numbers were computed, in words ("Updated just now").
    Updated,
    /// When the numbers were computed, ms since the epoch.
    UpdatedAtMs,
    /// Seconds between refreshes.
    RefreshSeconds,
    /// Pre-rendered HTML for `<head>`: the no-JavaScript refresh, the stylesheet, the page's
    /// data and its script. Every template must use it.
    UsherHead,
    /// The operator's notice to the zone (its `message`, or one set live), as text; empty when
    /// there is none. The page's script keeps it current; without it in a template the script
    /// adds it at the top of `<main>` when one is set.
    Notice,
    /// Where the challenge hook's widget (Turnstile, hCaptcha, reCAPTCHA) appears: an empty
    /// `<div id="usher-challenge">` the page's script renders it into. Without it, the widget
    /// goes at the end of `<main>`.
    UsherChallenge,
}

impl Var {
    /// Every variable.
    pub const ALL: [Var; 24] = [
        Var::Lang,
        Var::Title,
        Var::Zone,
        Var::State,
        Var::View,
        Var::Headline,
        Var::Message,
        Var::PositionLabel,
        Var::Position,
        Var::Ahead,
        Var::AheadText,
        Var::EtaLabel,
        Var::Eta,
        Var::ProgressLabel,
        Var::ProgressPercent,
        Var::Countdown,
        Var::StartsAtMs,
        Var::KeepOpen,
        Var::Updated,
        Var::UpdatedAtMs,
        Var::RefreshSeconds,
        Var::Notice,
        Var::UsherHead,
        Var::UsherChallenge,
    ];

    /// The name written between the braces.
    pub fn name(self) -> &'static str {
        match self {
            Var::Lang => "lang",
            Var::Title => "title",
            Var::Zone => "zone",
            Var::State => "state",
            Var::View => "view",
            Var::Headline => "headline",
            Var::Message => "message",
            Var::PositionLabel => "position_label",
            Var::Position => "position",
            Var::Ahead => "ahead",
            Var::AheadText => "ahead_text",
            Var::EtaLabel => "eta_label",
            Var::Eta => "eta",
            Var::ProgressLabel => "progress_label",
            Var::ProgressPercent => "progress_percent",
            Var::Countdown => "countdown",
            Var::StartsAtMs => "starts_at_ms",
            Var::KeepOpen => "keep_open",
            Var::Updated => "updated",
            Var::UpdatedAtMs => "updated_at_ms",
            Var::RefreshSeconds => "refresh_seconds",
            Var::Notice => "notice",
            Var::UsherHead => "usher_head",
            Var::UsherChallenge => "usher_challenge",
        }
    }

    /// The variable called `name`.
    pub fn parse(name: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.name() == name)
    }

    /// Whether the value is HTML usher rendered itself (the `usher_*` blocks), inserted as it
    /// is; every other value is text and gets escaped.
    pub fn is_html(self) -> bool {
        self.name().starts_with("usher_")
    }
}

#[cfg(test)]
mod tests {
    use super::Var;

    #[test]
    fn names_are_unique_and_parse_back() {
        for var in Var::ALL {
            assert_eq!(Var::parse(var.name()), Some(var));
        }
        assert_eq!(Var::parse("Title"), None, "names are case-sensitive");
        let html: Vec<Var> = Var::ALL.into_iter().filter(|v| v.is_html()).collect();
        assert_eq!(
            html,
            [Var::UsherHead, Var::UsherChallenge],
            "only usher's own blocks are raw HTML"
        );
    }
}
