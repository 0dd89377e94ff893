//! The page's languages and the choice among them from `Accept-Language` (RFC 9110 §12.5.4):
//! the highest q-value wins, earlier ranges win ties, a range matches by its primary subtag
//! (`de-CH` picks `de`), and English is the fallback.

/// A language the page is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    /// English, the fallback.
    En,
    /// German.
    De,
    /// French.
    Fr,
    /// Spanish.
    Es,
}

impl Lang {
    /// Every language, fallback first.
    pub const ALL: [Lang; 4] = [Lang::En, Lang::De, Lang::Fr, Lang::Es];

    /// The language tag, as in `<html lang>` and in config (`[strings.de]`).
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
            Lang::Fr => "fr",
            Lang::Es => "es",
        }
    }

    /// The language with tag `code` (lower case).
    pub fn parse(code: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.code() == code)
    }

    /// Index into per-language tables.
    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// The best language for an `Accept-Language` header; English when nothing usher speaks is
/// acceptable, when the header is missing, or when it is malformed.
pub fn negotiate(header: Option<&str>) -> Lang {
    let mut best: Option<(Lang, u16)> = None;
    for range in header.unwrap_or_default().split(',') {
        let mut params = range.split(';');
        let tag = params.next().unwrap_or_default().trim();
        let primary = tag.split('-').next().unwrap_or_default();
        let Some(lang) = Lang::parse(&primary.to_ascii_lowercase()) else {
            continue;
        };
        let q = params
            .find_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .map_or(Some(1_000), parse_q);
        match q {
            Some(q) if q > 0 && best.is_none_or(|(_, b)| q > b) => best = Some((lang, q)),
            _ => {}
        }
    }
    best.map_or(Lang::En, |(lang, _)| lang)
}

/// A q-value in thousandths (`0.85` is 850); `None` when malformed, which rules the range out.
fn parse_q(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1_000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_highest_q_value_and_the_first_on_ties() {
        assert_eq!(negotiate(Some("fr;q=0.5, es;q=0.9, de;q=0.7")), Lang::Es);
        assert_eq!(negotiate(Some("es, fr")), Lang::Es, "equal q: header order");
        assert_eq!(negotiate(Some("fr;q=0.8, de;q=0.8")), Lang::Fr);
        assert_eq!(negotiate(Some("en;q=0.1, de")), Lang::De);
    }

    #[test]
    fn regional_ranges_match_their_language() {
        assert_eq!(negotiate(Some("de-CH")), Lang::De);
        assert_eq!(negotiate(Some("fr-CA,fr;q=0.9,en;q=0.8")), Lang::Fr);
        assert_eq!(
            negotiate(Some("ES-mx")),
            Lang::Es,
            "tags are case-insensitive"
        );
        assert_eq!(negotiate(Some("  de-AT ; q=0.9 ")), Lang::De, "whitespace");
    }

    #[test]
    fn unknown_refused_or_malformed_ranges_fall_back_to_english() {
        assert_eq!(negotiate(None), Lang::En);
        assert_eq!(negotiate(Some("")), Lang::En);
        assert_eq!(
            negotiate(Some("it, pt-BR")),
            Lang::En,
            "nothing usher speaks"
        );
        assert_eq!(negotiate(Some("*")), Lang::En);
        assert_eq!(
            negotiate(Some("de;q=0")),
            Lang::En,
            "q=0 means not acceptable"
        );
        assert_eq!(negotiate(Some("de;q=0, fr;q=0.001")), Lang::Fr);
        assert_eq!(negotiate(Some("de;q=2, es;q=abc, fr;q=0.3")), Lang::Fr);
        assert_eq!(
            negotiate(Some("de;q=0.9999")),
            Lang::En,
            "at most 3 decimals"
        );
        assert_eq!(negotiate(Some("de;q=1.0")), Lang::De);
        assert_eq!(negotiate(Some("german")), Lang::En, "no prefix matching");
    }

    #[test]
    fn codes_parse_back() {
        for lang in Lang::ALL {
            assert_eq!(Lang::parse(lang.code()), Some(lang));
        }
    }
}
