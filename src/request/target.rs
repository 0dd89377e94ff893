//! Request targets (RFC 9112 §3.2): origin-form (`/path?query`), absolute-form
//! (`http://host/path?query`, as proxies are asked) and asterisk-form (`*`, only for `OPTIONS`).
//! Anything else (`x:/checkout`, `checkout`, a CONNECT authority) is refused: Pingora reads such
//! targets as `/` yet sends them upstream unchanged, where a lenient origin finds its checkout.

/// A request target split into its parts, still raw (undecoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// The authority of an absolute-form target (`shop.test:8080`).
    pub authority: Option<&'a [u8]>,
    /// The path, starting with `/` (`/` for `*`).
    pub path: &'a [u8],
    /// The query, without `?`.
    pub query: Option<&'a [u8]>,
    /// The target was `*`.
    pub asterisk: bool,
}

/// Why a target is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not origin-form, absolute-form with an `http` or `https` scheme, or `*`.
    #[error("request target is not a path or an http URL")]
    Form,
    /// `*` with a method other than `OPTIONS`.
    #[error("`*` is only a target for OPTIONS")]
    Asterisk,
    /// User info (`user@host`) in an absolute-form authority.
    #[error("user info in the request target")]
    UserInfo,
    /// A space or control byte in the target, or a fragment (`#`).
    #[error("invalid byte in request target")]
    BadByte,
}

/// Splits `path?query`; the path may be empty.
fn split_query(rest: &[u8]) -> (&[u8], Option<&[u8]>) {
    match rest.iter().position(|&b| b == b'?') {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    }
}

/// Strips an `http://` or `https://` scheme, in any case.
fn strip_scheme(raw: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if raw.len() >= scheme.len() && raw[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&raw[scheme.len()..]);
        }
    }
    None
}

/// Parses the raw target of a request with method `method`.
pub fn parse<'a>(method: &str, raw: &'a [u8]) -> Result<Target<'a>, TargetError> {
    if raw
        .iter()
        .any(|&b| b.is_ascii_control() || b == b' ' || b == b'#')
    {
        return Err(TargetError::BadByte);
    }
    if raw == b"*" {
        if method != "OPTIONS" {
            return Err(TargetError::Asterisk);
        }
        return Ok(Target {
            authority: None,
            path: b"/",
            query: None,
            asterisk: true,
        });
    }
    if raw.first() == Some(&b'/') {
        let (path, query) = split_query(raw);
        return Ok(Target {
            authority: None,
            path,
            query,
            asterisk: false,
        });
    }
    let rest = strip_scheme(raw).ok_or(TargetError::Form)?;
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(end);
    if authority.contains(&b'@') {
        return Err(TargetError::UserInfo);
    }
    if authority.is_empty() {
        return Err(TargetError::Form);
    }
    let (path, query) = split_query(rest);
    Ok(Target {
        authority: Some(authority),
        path: if path.is_empty() { b"/" } else { path },
        query,
        asterisk: false,
    })
}
