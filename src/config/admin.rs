//! `[admin]`: the admin API's listener and its bearer tokens (from the environment or files,
//! never inline; at least 16 characters; names unique, they appear in the audit log).

use super::checker::Checker;
use super::model::{AdminConfig, AdminRole, AdminToken};
use super::raw::RawAdmin;
use std::collections::BTreeSet;
use std::path::Path;

/// The shortest token accepted: a guessable one would open the admin API to anyone.
const MIN_TOKEN_LEN: usize = 16;

/// `[admin]`, with its tokens read now.
pub(super) fn admin(c: &mut Checker, raw: &RawAdmin, dir: &Path) -> AdminConfig {
    c.unknown_keys("admin", &raw.extra);
    let listen = raw
        .listen
        .as_deref()
        .and_then(|text| c.addr("admin.listen".into(), text));
    let mut names = BTreeSet::new();
    let mut tokens = Vec::new();
    for (i, raw) in raw.tokens.iter().flatten().enumerate() {
        let path = format!("admin.tokens[{i}]");
        c.unknown_keys(&path, &raw.extra);
        let name = raw.name.clone().unwrap_or_else(|| {
            c.problem(
                format!("{path}.name"),
                "is required (it names the holder in the audit log)",
            );
            String::new()
        });
        c.plain_name(format!("{path}.name"), &name, "the audit log");
        if !name.is_empty() && !names.insert(name.clone()) {
            c.problem(
                format!("{path}.name"),
                format!("another token is called `{name}`"),
            );
        }
        let role = match raw.role.as_deref() {
            Some("read") => AdminRole::Read,
            Some("write") => AdminRole::Write,
            None => {
                c.problem(format!("{path}.role"), "is required: read or write");
                AdminRole::Read
            }
            Some(other) => {
                c.problem(
                    format!("{path}.role"),
                    format!("`{other}` is not one of: read, write"),
                );
                AdminRole::Read
            }
        };
        let source = super::raw::RawSecret {
            env: raw.env.clone(),
            file: raw.file.clone(),
            extra: Default::default(),
        };
        let Some(secret) = c.secret(&path, Some(&source), dir) else {
            continue;
        };
        if secret.len() < MIN_TOKEN_LEN {
            c.problem(&path, format!("is shorter than {MIN_TOKEN_LEN} characters"));
            continue;
        }
        tokens.push(AdminToken { name, secret, role });
    }
    if listen.is_some() && raw.tokens.as_ref().is_none_or(Vec::is_empty) {
        c.problem(
            "admin.tokens",
            "is required with admin.listen: nobody could use the API",
        );
    }
    AdminConfig { listen, tokens }
}
