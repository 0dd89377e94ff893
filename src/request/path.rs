//! The canonical form of a request path, which zones are matched on. Origins are lenient: they
//! decode percent-escapes (some twice), read `\` as `/`, merge slashes, resolve `.` and `..`,
//! drop `;parameters` (Tomcat, Jetty) and route case-insensitively (Express, IIS). So the gate
//! decides on the path as the most lenient of them would read it, and a path that cannot be read
//! at all is refused:
//!
//! 1. percent-decoding, strictly once (a `%` without two hex digits is an error), then again
//!    while valid escapes remain (double encoding: `%2563` is `c`); `%2F` counts as `/`;
//! 2. the result must be UTF-8 without control characters (NUL, tab, CR, LF, DEL, ...);
//! 3. `\` is read as `/`; fullwidth ASCII (`ｃ`, U+FF43) as ASCII (IIS "best fit");
//! 4. each segment loses its `;parameters` (so `..;` is `..`);
//! 5. empty segments go (`//` is `/`); a `.` or `..` segment is refused: browsers resolve them
//!    before sending, and origins disagree on them (nginx resolves `/checkout/..`, Flask and
//!    Express route it to their checkout handler), so no reading of it is safe;
//! 6. no trailing slash (`/api/` and `/api` are one path), except the root `/`.
//!
//! Matching case-insensitively folds the result with [`fold`]. A prefix matches on a segment
//! boundary ([`has_prefix`]). Literal `%` in the output is written `%25`, so the canonical form of
//! a canonical path is itself.

use std::borrow::Cow;

/// Why a path cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `%` not followed by two hex digits.
    #[error("bad percent-escape")]
    BadEscape,
    /// The decoded path is not UTF-8 (overlong forms included).
    #[error("not UTF-8 after decoding")]
    NotUtf8,
    /// A control character (NUL, tab, CR, LF, DEL, ...), raw or decoded.
    #[error("control character")]
    ControlChar,
    /// A `.` or `..` segment, raw or encoded: browsers resolve them before sending, and origins
    /// disagree on them (nginx resolves `/checkout/../x` to `/x`, Flask and Express route it to
    /// their `/checkout/...` handler), so which resource is meant cannot be known.
    #[error("dot segment")]
    DotSegment,
}

/// How many decoding passes at most. Each pass shortens the path, so this only bounds work on
/// hostile input; a path still holding escapes after it is refused as unreadable.
const MAX_DECODE_PASSES: usize = 8;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    let hi = hex(*bytes.get(i + 1)?)?;
    let lo = hex(*bytes.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

/// One decoding pass. `strict`: a `%` that starts no escape is an error; otherwise it stays.
/// `None` when nothing was decoded.
fn decode_pass(bytes: &[u8], strict: bool) -> Result<Option<Vec<u8>>, PathError> {
    let Some(first) = bytes.iter().position(|&b| b == b'%') else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..first]);
    let mut decoded = false;
    let mut i = first;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if let Some(value) = escape_at(bytes, i) {
                out.push(value);
                decoded = true;
                i += 3;
                continue;
            }
            if strict {
                return Err(PathError::BadEscape);
            }
        }
        out.push(b);
        i += 1;
    }
    Ok(decoded.then_some(out))
}

/// Fullwidth ASCII (U+FF01..U+FF5E) as the ASCII it looks like.
fn narrow(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

fn is_wide(c: char) -> bool {
    narrow(c) != c
}

/// The path as text: percent-decoded until no escape is left, fullwidth ASCII narrowed (which
/// may make new escapes, so both repeat until nothing changes).
fn decode(raw: &[u8]) -> Result<Cow<'_, str>, PathError> {
    let mut bytes: Cow<'_, [u8]> = match decode_pass(raw, true)? {
        None => Cow::Borrowed(raw),
        Some(once) => Cow::Owned(once),
    };
    for _ in 0..MAX_DECODE_PASSES {
        if let Some(again) = decode_pass(&bytes, false)? {
            bytes = Cow::Owned(again);
            continue;
        }
        let text: Cow<'_, str> = match bytes {
            Cow::Borrowed(b) => {
                Cow::Borrowed(std::str::from_utf8(b).map_err(|_| PathError::NotUtf8)?)
            }
            Cow::Owned(b) => Cow::Owned(String::from_utf8(b).map_err(|_| PathError::NotUtf8)?),
        };
        if !text.chars().any(is_wide) {
            return Ok(text);
        }
        bytes = Cow::Owned(text.chars().map(narrow).collect::<String>().into_bytes());
    }
    // Layer upon layer of encoding: nobody's shop links to that.
    Err(PathError::BadEscape)
}

/// Whether `raw` is already canonical: plain ASCII with nothing to decode, resolve or merge.
/// The common case, answered without allocating.
fn is_plain(raw: &[u8]) -> bool {
    raw.first() == Some(&b'/')
        && (raw.len() == 1 || raw.last() != Some(&b'/'))
        && raw
            .iter()
            .all(|&b| b.is_ascii() && !b.is_ascii_control() && !matches!(b, b'%' | b'\\' | b';'))
        && !raw.windows(2).any(|w| w == b"//" || w == b"/.")
}

/// The canonical form of the raw path bytes of a request target (without the query).
pub fn canonical(raw: &[u8]) -> Result<Cow<'_, str>, PathError> {
    if is_plain(raw) {
        // Checked: ASCII only.
        return std::str::from_utf8(raw)
            .map(Cow::Borrowed)
            .map_err(|_| PathError::NotUtf8);
    }
    let text = decode(raw)?;
    if text.chars().any(char::is_control) {
        return Err(PathError::ControlChar);
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in text.split(['/', '\\']) {
        match segment.split(';').next().unwrap_or_default() {
            "" => {}
            "." | ".." => return Err(PathError::DotSegment),
            segment => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(text.len() + 1);
    for segment in &segments {
        out.push('/');
        // `%` decoded from `%25` (or left as it was, `%zz`) is written escaped, so that reading
        // this canonical form again gives the same path.
        if segment.contains('%') {
            out.push_str(&segment.replace('%', "%25"));
        } else {
            out.push_str(segment);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// A character as a case-insensitive router may compare it: ASCII lower case, and a non-ASCII
/// letter whose upper case is ASCII (`ſ` is `S`, `ı` is `I`; JavaScript and .NET compare so) as
/// that letter.
fn fold_char(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    let mut upper = c.to_uppercase();
    if let (Some(u), None) = (upper.next(), upper.next()) {
        if u.is_ascii() {
            out.push(u.to_ascii_lowercase());
            return;
        }
    }
    out.extend(c.to_lowercase());
}

/// `path` folded for case-insensitive matching (borrowed when it is already folded).
pub fn fold(path: &str) -> Cow<'_, str> {
    let needs = |c: char| {
        if c.is_ascii() {
            c.is_ascii_uppercase()
        } else {
            let mut folded = String::new();
            fold_char(c, &mut folded);
            folded.chars().ne(std::iter::once(c))
        }
    };
    if !path.chars().any(needs) {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        fold_char(c, &mut out);
    }
    Cow::Owned(out)
}

/// Whether canonical `path` lies under canonical `prefix`: the same path, or the prefix followed
/// by `/` (below it) or `.` (an extension: Rails and older Spring serve `/checkout.json` from the
/// checkout handler). `/checkout` covers `/checkout/pay` and `/checkout.json`, not `/checkouts`.
pub fn has_prefix(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with(['/', '.']),
        None => false,
    }
}
