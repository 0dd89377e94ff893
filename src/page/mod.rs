//! The waiting page visitors see: one small HTML response per status, in the visitor's language,
//! through a template (the zone's own or the built-in one), with its stylesheet and script served
//! as cached, content-hashed assets. It works without JavaScript (a `<noscript>` refresh; loading
//! the same URL again is how the visitor goes in); with it, the script keeps the page current in
//! place. `docs/waiting-page.md` is the user-facing description.
//!
//! Files: `template` (the `{{name}}` engine), `vars` (its variables), `i18n` (languages and
//! `Accept-Language`), `keys` / `texts` / `strings` (the words and their overrides), `format`
//! (numbers into words), `assets` (embedded CSS and JS), `render` (status to HTML),
//! `origin_error` (usher's page when the shop does not answer), `status`
//! (the status document itself). A leaf: it takes plain values (a [`Status`], a [`Look`]) and
//! imports nothing of usher's but the ETA type; the config and the room import it.

pub mod assets;
mod format;
mod i18n;
mod keys;
pub mod origin_error;
mod render;
pub mod status;
mod strings;
mod template;
mod texts;
mod vars;

#[cfg(test)]
mod tests;

pub use i18n::{negotiate, Lang};
pub use keys::Key;
pub use origin_error::OriginError;
pub use render::{builtin, render, Look};
pub use status::{Challenge, EventInfo, Heading, State, Status};
pub use strings::{unknown_placeholders, Override, Strings};
pub use template::{escape, Template, TemplateError};
pub use vars::Var;
