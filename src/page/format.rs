//! Numbers into words for the first render of the page. `assets/page.js` applies the same rules
//! to every later status (`etaText`, `aheadText`, `clock`); change both together.

use super::i18n::Lang;
use super::keys::Key;
use super::strings::{fill, Strings};

/// Estimates past this many minutes are said in hours.
const MINUTES_UP_TO: u64 = 90;

/// The wait as a range in words: "less than a minute", "about 4–6 minutes", "about 2–3 hours".
/// Minutes round up, so the range never promises less than the estimate.
pub fn eta(strings: &Strings, lang: Lang, low_s: u64, high_s: u64) -> String {
    let high_s = high_s.max(low_s);
    if high_s < 60 {
        return strings.get(lang, Key::EtaSoon).to_string();
    }
    let low = low_s.div_ceil(60).max(1);
    let high = high_s.div_ceil(60);
    let (low, high, one, many, range) = if high <= MINUTES_UP_TO {
        let one = (low == 1).then_some(Key::EtaMinute);
        (low, high, one, Key::EtaMinutes, Key::EtaMinutesRange)
    } else {
        let low_h = ((low + 30) / 60).max(1);
        (
            low_h,
            high.div_ceil(60),
            None,
            Key::EtaHours,
            Key::EtaHoursRange,
        )
    };
    let (low, high) = (low.to_string(), high.to_string());
    match one {
        _ if low != high => fill(strings.get(lang, range), &[("low", &low), ("high", &high)]),
        Some(one) => strings.get(lang, one).to_string(),
        None => fill(strings.get(lang, many), &[("n", &low)]),
    }
}

/// People ahead as a sentence.
pub fn ahead(strings: &Strings, lang: Lang, ahead: u64) -> String {
    let key = match ahead {
        0 => Key::AheadNone,
        1 => Key::AheadOne,
        _ => Key::AheadOther,
    };
    fill(strings.get(lang, key), &[("n", &ahead.to_string())])
}

/// Time left as `H:MM:SS`, rounded up to the second (hours are not capped at 24).
pub fn clock(ms: u64) -> String {
    let s = ms.div_ceil(1_000);
    format!("{}:{:02}:{:02}", s / 3_600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn en(low: u64, high: u64) -> String {
        eta(&Strings::default(), Lang::En, low, high)
    }

    #[test]
    fn eta_is_a_range_of_whole_minutes_or_hours() {
        assert_eq!(en(0, 0), "less than a minute");
        assert_eq!(en(10, 59), "less than a minute");
        assert_eq!(en(30, 60), "about 1 minute");
        assert_eq!(en(30, 90), "about 1–2 minutes");
        assert_eq!(en(200, 350), "about 4–6 minutes");
        assert_eq!(en(300, 300), "about 5 minutes");
        assert_eq!(
            en(350, 200),
            "about 6 minutes",
            "a reversed range is mended"
        );
        assert_eq!(en(85 * 60, 90 * 60), "about 85–90 minutes");
        assert_eq!(en(100 * 60, 150 * 60), "about 2–3 hours");
        assert_eq!(en(60 * 60, 100 * 60), "about 1–2 hours");
        assert_eq!(en(180 * 60, 180 * 60), "about 3 hours");
        assert_eq!(
            eta(&Strings::default(), Lang::De, 200, 350),
            "etwa 4–6 Minuten"
        );
    }

    #[test]
    fn ahead_has_none_one_and_many() {
        let s = Strings::default();
        assert_eq!(ahead(&s, Lang::En, 0), "Nobody is ahead of you.");
        assert_eq!(ahead(&s, Lang::En, 1), "1 person is ahead of you.");
        assert_eq!(ahead(&s, Lang::Fr, 41), "41 personnes sont devant vous.");
    }

    #[test]
    fn clock_rounds_up_and_does_not_wrap_days() {
        assert_eq!(clock(0), "0:00:00");
        assert_eq!(clock(1), "0:00:01");
        assert_eq!(clock(61_000), "0:01:01");
        assert_eq!(clock(50 * 3_600_000 + 4_000), "50:00:04");
    }
}
