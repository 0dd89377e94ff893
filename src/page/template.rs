//! A tiny template engine: text with `{{name}}` placeholders and nothing else (no conditionals,
//! loops or filters), so a template from the config can do no harm. Names are resolved when the
//! template is parsed, so a typo fails `usher check` instead of leaving a blank on a visitor's
//! screen. Escaping happens here, in one place: text values are HTML-escaped, the few
//! pre-rendered `usher_*` blocks go in as they are.

use super::vars::Var;
use std::borrow::Cow;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    /// Bytes of literal text, to size the output once.
    literal_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{name}}` names no variable.
    #[error("unknown variable {{{{{name}}}}} (line {line}); see docs/waiting-page.md")]
    UnknownVariable {
        /// What was between the braces.
        name: String,
        /// 1-based line.
        line: usize,
    },
    /// `{{` with no `}}` after it.
    #[error("`{{{{` without a closing `}}}}` (line {line})")]
    Unclosed {
        /// 1-based line.
        line: usize,
    },
    /// The template leaves out `{{usher_head}}`, without which the page never moves on.
    #[error("must contain {{{{usher_head}}}} in <head>: it carries the refresh, the stylesheet and the script")]
    MissingHead,
}

impl Template {
    /// Parses `text`, listing every problem.
    pub fn parse(text: &str) -> Result<Template, Vec<TemplateError>> {
        let mut parts = Vec::new();
        let mut errors = Vec::new();
        let mut rest = text;
        let line_of = |rest: &str| text[..text.len() - rest.len()].matches('\n').count() + 1;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                errors.push(TemplateError::Unclosed {
                    line: line_of(&rest[open..]),
                });
                rest = "";
                break;
            };
            let name = after[..close].trim();
            match Var::parse(name) {
                Some(var) => parts.push(Part::Var(var)),
                None => errors.push(TemplateError::UnknownVariable {
                    name: name.to_string(),
                    line: line_of(&rest[open..]),
                }),
            }
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if !parts.contains(&Part::Var(Var::UsherHead)) && errors.is_empty() {
            errors.push(TemplateError::MissingHead);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let literal_len = parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.len(),
                Part::Var(_) => 0,
            })
            .sum();
        Ok(Template { parts, literal_len })
    }

    /// Renders with `value` giving each variable's value: text is escaped, `usher_*` blocks are
    /// not.
    pub fn render<'v>(&self, value: impl Fn(Var) -> Cow<'v, str>) -> String {
        let mut out = String::with_capacity(self.literal_len + 2_048);
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var(var) if var.is_html() => out.push_str(&value(*var)),
                Part::Var(var) => escape_into(&mut out, &value(*var)),
            }
        }
        out
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// JSON made safe inside `<script>`: `<`, `>` and `&` only occur inside JSON strings, where
/// their `\u` escapes mean the same, and without them no `</script>` can end the block early.
pub fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(var: Var) -> Cow<'static, str> {
        match var {
            Var::Title => "Rock & <Roll> \"Night\"".into(),
            Var::UsherHead => "<link rel=\"stylesheet\">".into(),
            other => other.name().to_uppercase().into(),
        }
    }

    #[test]
    fn text_is_escaped_and_usher_blocks_are_not() {
        let t = Template::parse(
            "<head>{{usher_head}}</head><h1 title=\"{{title}}\">{{ title }}</h1>{{lang}}",
        )
        .expect("valid");
        assert_eq!(
            t.render(values),
            "<head><link rel=\"stylesheet\"></head>\
             <h1 title=\"Rock &amp; &lt;Roll&gt; &quot;Night&quot;\">Rock &amp; &lt;Roll&gt; &quot;Night&quot;</h1>LANG"
        );
    }

    #[test]
    fn single_braces_and_text_around_are_kept() {
        let t = Template::parse("a { b } {{usher_head}} c}} d").expect("valid");
        assert_eq!(t.render(values), "a { b } <link rel=\"stylesheet\"> c}} d");
    }

    #[test]
    fn every_unknown_variable_is_reported_with_its_line() {
        let errors = Template::parse("{{usher_head}}\n{{tilte}}\n\n{{ queue_size }} {{title}}")
            .expect_err("unknown names");
        assert_eq!(
            errors,
            vec![
                TemplateError::UnknownVariable {
                    name: "tilte".into(),
                    line: 2
                },
                TemplateError::UnknownVariable {
                    name: "queue_size".into(),
                    line: 4
                },
            ]
        );
        assert_eq!(
            errors[0].to_string(),
            "unknown variable {{tilte}} (line 2); see docs/waiting-page.md"
        );
    }

    #[test]
    fn unclosed_braces_and_a_missing_head_are_refused() {
        assert_eq!(
            Template::parse("{{usher_head}}\n<p>{{title</p>"),
            Err(vec![TemplateError::Unclosed { line: 2 }])
        );
        assert_eq!(
            Template::parse("<p>{{title}}</p>"),
            Err(vec![TemplateError::MissingHead])
        );
    }

    #[test]
    fn script_safe_json_means_the_same_and_cannot_close_a_script() {
        let json = r#"{"t":"</script><b>&amp;"}"#;
        let safe = script_safe(json);
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&safe).expect("json");
        assert_eq!(back["t"], "</script><b>&amp;");
    }

    #[test]
    fn escape_covers_attribute_and_element_contexts() {
        assert_eq!(
            escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }
}
