//! The waiting page visitors see: one small HTML response per status, in the visitor's language,
//! through a template (the zone's own or the built-in one), with its stylesheet and script served
//! as cached, content-hashed assets. It works without JavaScript (a `<noscript>` refresh; loading
//! the same URL again is how the visitor goes in); with it, the script keeps the page current in
//! place. `docs/waiting-page.md` is the user-facing description.
//!
//! Files: `template` (the `{{name}}` engine), `vars` (its variables), `i18n` (languages and
//! `Accept-Language`), `keys` / `texts` / `strings` (the words and their overrides), `format`
//! (numbers into words), `assets` (embedded CSS and JS), `render` (status to HTML). It may import
//! the status types and the zone's config, nothing that does IO.

pub mod assets;
mod format;
mod i18n;
mod keys;
mod render;
mod strings;
mod template;
mod texts;
mod vars;

#[cfg(test)]
mod tests;

pub use i18n::{negotiate, Lang};
pub use keys::Key;
pub use render::{builtin, render};
pub use strings::{unknown_placeholders, Override, Strings};
pub use template::{escape, Template, TemplateError};
pub use vars::Var;
