//! The keys of the page's texts: a closed set, so config can refuse a key that does not exist,
//! with the placeholders each text may use. `docs/waiting-page.md` lists them; keep the two in
//! step.

/// One text of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Headline while in line.
    WaitingHeadline,
    /// Explanation while in line.
    WaitingMessage,
    /// Headline while admission is paused.
    PausedHeadline,
    /// Explanation while admission is paused.
    PausedMessage,
    /// Headline before a scheduled sale.
    PrequeueHeadline,
    /// Explanation before a scheduled sale.
    PrequeueMessage,
    /// Headline after a scheduled sale.
    EndedHeadline,
    /// Explanation after a scheduled sale.
    EndedMessage,
    /// Headline of a closed zone.
    ClosedHeadline,
    /// Explanation of a closed zone.
    ClosedMessage,
    /// Headline when the numbers are unknown (store trouble).
    DegradedHeadline,
    /// Explanation when the numbers are unknown.
    DegradedMessage,
    /// Headline shown for the moment before the page moves on.
    AdmittedHeadline,
    /// Explanation shown for the moment before the page moves on.
    AdmittedMessage,
    /// Headline when the place is gone (cookie lost) and the page fetches a new one.
    NotQueuedHeadline,
    /// Explanation when the place is gone.
    NotQueuedMessage,
    /// Label above the position.
    PositionLabel,
    /// Nobody ahead.
    AheadNone,
    /// One person ahead (`{n}`).
    AheadOne,
    /// `{n}` people ahead.
    AheadOther,
    /// Label before the ETA.
    EtaLabel,
    /// Wait under a minute.
    EtaSoon,
    /// About one minute.
    EtaMinute,
    /// About `{n}` minutes.
    EtaMinutes,
    /// `{low}` to `{high}` minutes.
    EtaMinutesRange,
    /// About `{n}` hours.
    EtaHours,
    /// `{low}` to `{high}` hours.
    EtaHoursRange,
    /// The wait is not known (paused, store trouble).
    EtaUnknown,
    /// Accessible name of the progress bar.
    ProgressLabel,
    /// The plain promise under the numbers.
    KeepOpen,
    /// Fresh numbers.
    UpdatedNow,
    /// Numbers `{n}` seconds old.
    UpdatedSeconds,
    /// Numbers `{n}` minutes old.
    UpdatedMinutes,
    /// Time left until the sale, `{time}` as H:MM:SS.
    Countdown,
    /// In the pre-queue after the start, while places are drawn.
    Drawing,
    /// Headline when the shop did not answer (usher's 502 page).
    UnreachableHeadline,
    /// Explanation when the shop did not answer.
    UnreachableMessage,
    /// Headline when the shop took too long to answer (usher's 504 page).
    TimeoutHeadline,
    /// Explanation when the shop took too long.
    TimeoutMessage,
    /// Headline when one connection asked for too many places (usher's 429 page).
    LimitedHeadline,
    /// Explanation when one connection asked for too many places.
    LimitedMessage,
    /// Headline while the browser solves the proof-of-work puzzle.
    ChallengeHeadline,
    /// Explanation while the browser solves the puzzle.
    ChallengeMessage,
}

impl Key {
    /// Every key.
    pub const ALL: [Key; 43] = [
        Key::WaitingHeadline,
        Key::WaitingMessage,
        Key::PausedHeadline,
        Key::PausedMessage,
        Key::PrequeueHeadline,
        Key::PrequeueMessage,
        Key::EndedHeadline,
        Key::EndedMessage,
        Key::ClosedHeadline,
        Key::ClosedMessage,
        Key::DegradedHeadline,
        Key::DegradedMessage,
        Key::AdmittedHeadline,
        Key::AdmittedMessage,
        Key::NotQueuedHeadline,
        Key::NotQueuedMessage,
        Key::PositionLabel,
        Key::AheadNone,
        Key::AheadOne,
        Key::AheadOther,
        Key::EtaLabel,
        Key::EtaSoon,
        Key::EtaMinute,
        Key::EtaMinutes,
        Key::EtaMinutesRange,
        Key::EtaHours,
        Key::EtaHoursRange,
        Key::EtaUnknown,
        Key::ProgressLabel,
        Key::KeepOpen,
        Key::UpdatedNow,
        Key::UpdatedSeconds,
        Key::UpdatedMinutes,
        Key::Countdown,
        Key::Drawing,
        Key::UnreachableHeadline,
        Key::UnreachableMessage,
        Key::TimeoutHeadline,
        Key::TimeoutMessage,
        Key::LimitedHeadline,
        Key::LimitedMessage,
        Key::ChallengeHeadline,
        Key::ChallengeMessage,
    ];

    /// The key's name in config and in the page's script.
    pub fn name(self) -> &'static str {
        match self {
            Key::WaitingHeadline => "waiting_headline",
            Key::WaitingMessage => "waiting_message",
            Key::PausedHeadline => "paused_headline",
            Key::PausedMessage => "paused_message",
            Key::PrequeueHeadline => "prequeue_headline",
            Key::PrequeueMessage => "prequeue_message",
            Key::EndedHeadline => "ended_headline",
            Key::EndedMessage => "ended_message",
            Key::ClosedHeadline => "closed_headline",
            Key::ClosedMessage => "closed_message",
            Key::DegradedHeadline => "degraded_headline",
            Key::DegradedMessage => "degraded_message",
            Key::AdmittedHeadline => "admitted_headline",
            Key::AdmittedMessage => "admitted_message",
            Key::NotQueuedHeadline => "not_queued_headline",
            Key::NotQueuedMessage => "not_queued_message",
            Key::PositionLabel => "position_label",
            Key::AheadNone => "ahead_none",
            Key::AheadOne => "ahead_one",
            Key::AheadOther => "ahead_other",
            Key::EtaLabel => "eta_label",
            Key::EtaSoon => "eta_soon",
            Key::EtaMinute => "eta_minute",
            Key::EtaMinutes => "eta_minutes",
            Key::EtaMinutesRange => "eta_minutes_range",
            Key::EtaHours => "eta_hours",
            Key::EtaHoursRange => "eta_hours_range",
            Key::EtaUnknown => "eta_unknown",
            Key::ProgressLabel => "progress_label",
            Key::KeepOpen => "keep_open",
            Key::UpdatedNow => "updated_now",
            Key::UpdatedSeconds => "updated_seconds",
            Key::UpdatedMinutes => "updated_minutes",
            Key::Countdown => "countdown",
            Key::Drawing => "drawing",
            Key::UnreachableHeadline => "unreachable_headline",
            Key::UnreachableMessage => "unreachable_message",
            Key::TimeoutHeadline => "timeout_headline",
            Key::TimeoutMessage => "timeout_message",
            Key::LimitedHeadline => "limited_headline",
            Key::LimitedMessage => "limited_message",
            Key::ChallengeHeadline => "challenge_headline",
            Key::ChallengeMessage => "challenge_message",
        }
    }

    /// The key called `name`.
    pub fn parse(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The placeholders the text may use.
    pub fn placeholders(self) -> &'static [&'static str] {
        match self {
            Key::AheadOne
            | Key::AheadOther
            | Key::EtaMinutes
            | Key::EtaHours
            | Key::UpdatedSeconds
            | Key::UpdatedMinutes => &["n"],
            Key::EtaMinutesRange | Key::EtaHoursRange => &["low", "high"],
            Key::Countdown => &["time"],
            _ => &[],
        }
    }

    /// Whether the page's script needs the text to update the page in place; the labels it
    /// never changes stay out of the page's data.
    pub(super) fn live(self) -> bool {
        !matches!(
            self,
            Key::PositionLabel
                | Key::EtaLabel
                | Key::ProgressLabel
                | Key::KeepOpen
                | Key::UnreachableHeadline
                | Key::UnreachableMessage
                | Key::TimeoutHeadline
                | Key::TimeoutMessage
                | Key::LimitedHeadline
                | Key::LimitedMessage
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Key;

    #[test]
    fn keys_parse_back_and_index_tables_in_order() {
        for (i, key) in Key::ALL.into_iter().enumerate() {
            assert_eq!(Key::parse(key.name()), Some(key));
            assert_eq!(key as usize, i, "ALL follows the declaration order");
        }
    }
}
