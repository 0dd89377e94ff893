//! The waiting page's keys: a zone's `template` (read and parsed at load, so a missing file or
//! an unknown `{{variable}}` fails `usher check`) and the `[strings.<lang>]` text overrides, at
//! the top level and per zone. Problems go to the shared [`Checker`] with their dotted paths.

use super::checker::Checker;
use super::raw::RawStrings;
use crate::page::{unknown_placeholders, Key, Lang, Override, Strings, Template};
use std::path::Path;
use std::sync::Arc;

/// The template at `file` (relative to `base`), for the key at `path`.
pub(super) fn template(
    c: &mut Checker,
    path: &str,
    file: Option<&str>,
    base: &Path,
) -> Option<Arc<Template>> {
    let full = base.join(file?);
    let text = match std::fs::read_to_string(&full) {
        Ok(text) => text,
        Err(e) => {
            c.problem(path, format!("cannot read {}: {e}", full.display()));
            return None;
        }
    };
    match Template::parse(&text) {
        Ok(template) => Some(Arc::new(template)),
        Err(errors) => {
            for e in errors {
                c.problem(path, e.to_string());
            }
            None
        }
    }
}

/// `base` with the overrides of the `[<path>.<lang>]` tables in `raw` applied.
pub(super) fn strings(c: &mut Checker, path: &str, raw: &RawStrings, base: &Strings) -> Strings {
    let mut overrides: Vec<Override> = Vec::new();
    for (code, texts) in raw {
        let Some(lang) = Lang::parse(code) else {
            let known: Vec<&str> = Lang::ALL.iter().map(|l| l.code()).collect();
            c.problem(
                format!("{path}.{code}"),
                format!("unknown language; usher speaks {}", known.join(", ")),
            );
            continue;
        };
        for (name, text) in texts {
            let at = format!("{path}.{code}.{name}");
            let Some(key) = Key::parse(name) else {
                c.problem(at, "unknown text; docs/waiting-page.md lists them");
                continue;
            };
            let unknown = unknown_placeholders(key, text);
            if !unknown.is_empty() {
                let allowed: Vec<String> = key
                    .placeholders()
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect();
                let allowed = if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                };
                c.problem(
                    at,
                    format!(
                        "unknown placeholder {}; this text may use: {allowed}",
                        unknown.join(", ")
                    ),
                );
                continue;
            }
            overrides.push((lang, key, text.clone()));
        }
    }
    base.with(&overrides)
}
