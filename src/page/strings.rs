//! The page's words: the built-in texts of every language (`texts`) and the tables a
//! configuration makes from them with its `[strings.<lang>]` overrides. Texts are plain text
//! with `{name}` placeholders; they are escaped wherever they are shown.

use super::i18n::Lang;
use super::keys::Key;
use super::template::script_safe;
use super::texts;
use std::borrow::Cow;

/// The placeholders in `text` that `key` does not offer, so config can refuse them.
pub fn unknown_placeholders(key: Key, text: &str) -> Vec<String> {
    placeholders(text)
        .filter(|name| !key.placeholders().contains(name))
        .map(|name| format!("{{{name}}}"))
        .collect()
}

/// The `{name}` placeholders of `text`.
fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split('{').skip(1).filter_map(|s| {
        let (name, _) = s.split_once('}')?;
        (!name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .then_some(name)
    })
}

/// `pattern` with each `{name}` replaced by its value; unknown placeholders stay as written.
/// The page's script does the same with the same texts.
pub fn fill(pattern: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.split_once('}').and_then(|(name, _)| {
            let value = values.iter().find(|(n, _)| *n == name)?.1;
            Some((value, name.len()))
        });
        match value {
            Some((value, len)) => {
                out.push_str(value);
                rest = &after[len + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A text override from config: language, key, text.
pub type Override = (Lang, Key, String);

/// Every text in every language, the built-in ones with a configuration's overrides applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strings {
    texts: [[Cow<'static, str>; Key::ALL.len()]; Lang::ALL.len()],
    /// Per language, the live texts as a JSON object for the page's script.
    json: [String; Lang::ALL.len()],
}

impl Default for Strings {
    fn default() -> Self {
        Strings::build(std::array::from_fn(|l| {
            std::array::from_fn(|k| Cow::Borrowed(texts::builtin(Lang::ALL[l], Key::ALL[k])))
        }))
    }
}

impl Strings {
    fn build(texts: [[Cow<'static, str>; Key::ALL.len()]; Lang::ALL.len()]) -> Strings {
        let json = std::array::from_fn(|l| {
            let live: serde_json::Map<String, serde_json::Value> = Key::ALL
                .iter()
                .zip(&texts[l])
                .filter(|(key, _)| key.live())
                .map(|(key, text)| (key.name().to_string(), text.to_string().into()))
                .collect();
            script_safe(&serde_json::Value::Object(live).to_string())
        });
        Strings { texts, json }
    }

    /// These texts with `overrides` applied (later ones win).
    pub fn with(&self, overrides: &[Override]) -> Strings {
        let mut texts = self.texts.clone();
        for (lang, key, text) in overrides {
            texts[lang.index()][*key as usize] = Cow::Owned(text.clone());
        }
        Strings::build(texts)
    }

    /// The text of `key` in `lang`.
    pub fn get(&self, lang: Lang, key: Key) -> &str {
        &self.texts[lang.index()][key as usize]
    }

    /// The texts the page's script needs, as a JSON object, safe inside `<script>`.
    pub fn json(&self, lang: Lang) -> &str {
        &self.json[lang.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_known_placeholders_only() {
        assert_eq!(
            fill("about {low}–{high} minutes", &[("low", "4"), ("high", "6")]),
            "about 4–6 minutes"
        );
        assert_eq!(fill("{n} {x} {n", &[("n", "3")]), "3 {x} {n");
        assert_eq!(fill("{}{", &[]), "{}{");
    }

    #[test]
    fn placeholders_are_checked_against_the_key() {
        assert!(unknown_placeholders(Key::AheadOther, "{n} people").is_empty());
        assert_eq!(
            unknown_placeholders(Key::AheadOther, "{count} people, {n}"),
            vec!["{count}"]
        );
        assert_eq!(unknown_placeholders(Key::KeepOpen, "stay {n}"), vec!["{n}"]);
        assert!(unknown_placeholders(Key::KeepOpen, "a {b c} d {").is_empty());
    }

    #[test]
    fn overrides_change_one_language_and_the_scripts_copy() {
        let base = Strings::default();
        let custom = base.with(&[(Lang::De, Key::KeepOpen, "Bleib da".into())]);
        assert_eq!(custom.get(Lang::De, Key::KeepOpen), "Bleib da");
        assert_eq!(
            custom.get(Lang::En, Key::KeepOpen),
            base.get(Lang::En, Key::KeepOpen)
        );
        let custom = base.with(&[(Lang::Fr, Key::AheadOther, "{n} devant".into())]);
        let json: serde_json::Value = serde_json::from_str(custom.json(Lang::Fr)).expect("json");
        assert_eq!(json["ahead_other"], "{n} devant");
        assert!(json.get("keep_open").is_none(), "static labels stay out");
    }
}
