//! Configuration: the only module that knows TOML. A file is read into the [`raw`] types, then
//! [`validate`]d into the [`model`] types, with every problem reported together under its dotted
//! path (`zones.checkout.capacity: must be > 0`).

mod admin;
mod checker;
mod defence;
mod duration;
mod events;
mod events_log;
pub mod model;
pub mod overrides;
mod page;
pub mod raw;
mod server;
mod store;
pub mod timestamp;
mod tokens;
mod upstreams;
mod validate;
mod zones;

pub use duration::parse_duration;
pub use model::*;
pub use validate::validate;

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with a configuration, at a dotted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the key, e.g. `zones.checkout.capacity`.
    pub path: String,
    /// What is wrong, lower case.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not TOML, or a value has the wrong type.
    #[error("{0}")]
    Syntax(Problem),
    /// The file is TOML but its content is wrong; every problem is listed.
    #[error("{} problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// Every problem, one per entry.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Read { path, source } => vec![Problem {
                path: path.display().to_string(),
                message: format!("cannot read: {source}"),
            }],
            ConfigError::Syntax(problem) => vec![problem.clone()],
            ConfigError::Invalid(problems) => problems.clone(),
        }
    }
}

/// Reads and validates the file at `path`. Relative paths inside it (key files, data directory)
/// are taken relative to the file's own directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base)
}

/// Parses and validates configuration text; `base` resolves relative paths.
pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| syntax_problem(text, "", &e))?;
    let raw: raw::RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        syntax_problem(text, &path, e.inner())
    })?;
    validate(raw, base).map_err(ConfigError::Invalid)
}

fn syntax_problem(text: &str, path: &str, error: &toml::de::Error) -> ConfigError {
    let path = if path.is_empty() || path == "." {
        "(file)".to_string()
    } else {
        path.to_string()
    };
    let mut message = error.message().to_string();
    if let Some(span) = error.span() {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        message = format!("{message} (line {line}, column {column})");
    }
    ConfigError::Syntax(Problem { path, message })
}
