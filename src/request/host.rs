//! The canonical form of a host: lower case, without port and trailing dot, so `Shop.Test.:8080`
//! and `shop.test` are one host. Anything a browser would not send as a host name or address
//! (user info, percent-escapes, spaces, commas, non-ASCII) is refused rather than guessed at.

use std::borrow::Cow;

/// Why a host cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Empty, or only a port.
    #[error("empty host")]
    Empty,
    /// A character no host name or address has.
    #[error("invalid character in host")]
    BadChar,
    /// A port that is not a number.
    #[error("invalid port")]
    BadPort,
    /// `[` without `]`, or text after `]` that is not a port.
    #[error("invalid IPv6 literal")]
    BadLiteral,
}

fn port_ok(port: &str) -> bool {
    port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

/// The canonical host of a `Host` header value or a target's authority.
pub fn canonical(raw: &[u8]) -> Result<Cow<'_, str>, HostError> {
    let text = std::str::from_utf8(raw).map_err(|_| HostError::BadChar)?;
    let text = text.trim_matches([' ', '\t']);
    let name = if let Some(literal) = text.strip_prefix('[') {
        let (address, rest) = literal.split_once(']').ok_or(HostError::BadLiteral)?;
        match rest.strip_prefix(':') {
            None if rest.is_empty() => {}
            Some(port) if port_ok(port) => {}
            _ => return Err(HostError::BadLiteral),
        }
        let hex_or_colon = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
        if address.is_empty() || !address.bytes().all(hex_or_colon) {
            return Err(HostError::BadLiteral);
        }
        address
    } else {
        let name = match text.split_once(':') {
            None => text,
            Some((name, port)) if port_ok(port) => name,
            Some(_) => return Err(HostError::BadPort),
        };
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
        if !name.bytes().all(allowed) {
            return Err(HostError::BadChar);
        }
        name.trim_end_matches('.')
    };
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    Ok(if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    })
}
