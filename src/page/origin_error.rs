//! usher's own short notices: a small page in the visitor's language (or JSON for scripts and
//! apps) that says what happened and reloads itself after `Retry-After`. Used when the shop
//! does not answer (instead of a blank `502` from the proxy; `unreachable_*`, `timeout_*`) and
//! when one client asked for too many places (`429`; `limited_*`). The texts are the zone's,
//! overridable like every other.

use super::assets;
use super::i18n::Lang;
use super::keys::Key;
use super::strings::Strings;
use super::template::escape;

/// Why the shop's answer is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginError {
    /// Refused, reset, closed before answering, or unusable: `502 Bad Gateway`.
    Unreachable,
    /// No answer within `read_timeout` (or `connect_timeout`): `504 Gateway Timeout`.
    Timeout,
}

impl OriginError {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            OriginError::Unreachable => 502,
            OriginError::Timeout => 504,
        }
    }

    /// The `kind` label of `usher_upstream_errors_total`.
    pub fn kind(self) -> &'static str {
        match self {
            OriginError::Unreachable => "unreachable",
            OriginError::Timeout => "timeout",
        }
    }

    /// The name in the JSON answer.
    pub fn as_str(self) -> &'static str {
        match self {
            OriginError::Unreachable => "origin_unreachable",
            OriginError::Timeout => "origin_timeout",
        }
    }

    fn texts(self) -> (Key, Key) {
        match self {
            OriginError::Unreachable => (Key::UnreachableHeadline, Key::UnreachableMessage),
            OriginError::Timeout => (Key::TimeoutHeadline, Key::TimeoutMessage),
        }
    }
}

/// The page for `error` in `lang`, reloading itself after `retry_after_s`.
pub fn page(error: OriginError, strings: &Strings, lang: Lang, retry_after_s: u64) -> String {
    let (headline, message) = error.texts();
    notice(
        headline,
        message,
        error.as_str(),
        strings,
        lang,
        retry_after_s,
    )
}

/// The `429` page for a client over a per-client limit (`reason`, the state the page's body
/// carries), reloading itself after `retry_after_s`.
pub fn limited_page(reason: &str, strings: &Strings, lang: Lang, retry_after_s: u64) -> String {
    let (headline, message) = (Key::LimitedHeadline, Key::LimitedMessage);
    notice(headline, message, reason, strings, lang, retry_after_s)
}

/// The `429` JSON for a client over a per-client limit.
pub fn limited_json(reason: &str, retry_after_s: u64) -> Vec<u8> {
    format!(
        "{{\"version\":1,\"error\":\"too_many_requests\",\"reason\":\"{reason}\",\
         \"retry_after_seconds\":{retry_after_s}}}"
    )
    .into_bytes()
}

fn notice(
    headline: Key,
    message: Key,
    state: &str,
    strings: &Strings,
    lang: Lang,
    retry_after_s: u64,
) -> String {
    let headline = escape(strings.get(lang, headline));
    let message = escape(strings.get(lang, message));
    format!(
        "<!doctype html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n\
         <meta http-equiv=\"refresh\" content=\"{retry_after_s}\">\n\
         <title>{headline}</title>\n<link rel=\"stylesheet\" href=\"{css}\">\n</head>\n\
         <body data-state=\"{state}\">\n<main>\n<h2 id=\"headline\">{headline}</h2>\n\
         <p id=\"message\">{message}</p>\n</main>\n</body>\n</html>\n",
        lang = lang.code(),
        css = assets::stylesheet().url(),
    )
}

/// The JSON answer for `error`.
pub fn json(error: OriginError, retry_after_s: u64) -> Vec<u8> {
    format!(
        "{{\"version\":1,\"error\":\"{}\",\"retry_after_seconds\":{retry_after_s}}}",
        error.as_str()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_speaks_the_visitors_language_and_comes_back() {
        let strings = Strings::default();
        let de = page(OriginError::Timeout, &strings, Lang::De, 5);
        assert!(de.contains("<html lang=\"de\">"));
        assert!(de.contains("Der Shop braucht zu lange"));
        assert!(de.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        let en = page(OriginError::Unreachable, &strings, Lang::En, 3);
        assert!(en.contains("The shop is not answering"));
        assert!(en.contains("Your place is kept"));
        let body: serde_json::Value =
            serde_json::from_slice(&json(OriginError::Timeout, 5)).expect("json");
        assert_eq!(body["error"], "origin_timeout");
        assert_eq!(body["retry_after_seconds"], 5);
        assert_eq!(
            (
                OriginError::Unreachable.status(),
                OriginError::Timeout.status()
            ),
            (502, 504)
        );
    }

    #[test]
    fn overridden_texts_are_escaped() {
        let strings = Strings::default().with(&[(
            Lang::En,
            Key::UnreachableHeadline,
            "<b>Back soon</b>".into(),
        )]);
        let html = page(OriginError::Unreachable, &strings, Lang::En, 2);
        assert!(html.contains("&lt;b&gt;Back soon&lt;/b&gt;"));
        assert!(!html.contains("<b>"));
    }

    #[test]
    fn a_limited_client_is_told_plainly_and_comes_back() {
        let strings = Strings::default();
        let fr = limited_page("join_rate", &strings, Lang::Fr, 3);
        assert!(fr.contains("Trop de places depuis votre connexion"));
        assert!(fr.contains("<body data-state=\"join_rate\">"));
        assert!(fr.contains("<meta http-equiv=\"refresh\" content=\"3\">"));
        let body: serde_json::Value =
            serde_json::from_slice(&limited_json("client_places", 9)).expect("json");
        assert_eq!(body["error"], "too_many_requests");
        assert_eq!(body["reason"], "client_places");
        assert_eq!(body["retry_after_seconds"], 9);
    }
}
