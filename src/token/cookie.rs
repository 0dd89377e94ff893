//! usher's cookies: one per zone, `<prefix>_<zone>`, holding that zone's visitor or access token.
//! They are stripped from requests before they reach the origin.
//!
//! `Cookie` headers are read as bytes: another cookie's odd bytes (Latin-1, broken UTF-8) must
//! neither hide usher's cookie from usher nor stop it being stripped upstream.

/// The cookie name for `zone`.
pub fn name(prefix: &str, zone: &str) -> String {
    format!("{prefix}_{zone}")
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}

/// The `name=value` pairs of a `Cookie` header value, trimmed, empty ones skipped.
fn pairs(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    header
        .split(|&b| b == b';')
        .map(trim)
        .filter(|pair| !pair.is_empty())
}

/// The value of cookie `name` in a `Cookie` header value (the first, if sent twice). Tokens are
/// ASCII; a value that is not is no token of usher's.
pub fn find<'a>(header: &'a [u8], name: &str) -> Option<&'a str> {
    pairs(header).find_map(|pair| {
        let at = pair.iter().position(|&b| b == b'=')?;
        let (key, value) = (trim(&pair[..at]), trim(&pair[at + 1..]));
        if key != name.as_bytes() {
            return None;
        }
        std::str::from_utf8(value).ok()
    })
}

fn is_own(pair: &[u8], prefix: &str) -> bool {
    pair.len() > prefix.len() && pair.starts_with(prefix.as_bytes()) && pair[prefix.len()] == b'_'
}

/// The `Cookie` header without usher's cookies (`<prefix>_*`), other cookies byte for byte:
/// `None` when it holds none of usher's (nothing to rewrite), `Some(None)` when nothing else is
/// left.
pub fn strip(header: &[u8], prefix: &str) -> Option<Option<Vec<u8>>> {
    let mut kept = Vec::new();
    let mut found = false;
    for pair in pairs(header) {
        if is_own(pair, prefix) {
            found = true;
        } else {
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair);
        }
    }
    found.then(|| (!kept.is_empty()).then_some(kept))
}

/// A `Set-Cookie` value that stores `token` for `max_age_s` seconds.
pub fn set(name: &str, token: &str, max_age_s: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={token}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Lax{secure}")
}

/// A `Set-Cookie` value that deletes cookie `name`.
pub fn clear(name: &str, secure: bool) -> String {
    set(name, "", 0, secure)
}

/// Whether a `Set-Cookie` value is one of usher's (`<prefix>_*=`).
pub fn is_own_set_cookie(value: &[u8], prefix: &str) -> bool {
    is_own(trim(value), prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_and_strips_only_our_cookies() {
        let header = b"session=abc; usher_checkout=tok.en.x; theme=dark";
        assert_eq!(find(header, "usher_checkout"), Some("tok.en.x"));
        assert_eq!(find(header, "usher_other"), None);
        assert_eq!(
            strip(header, "usher"),
            Some(Some(b"session=abc; theme=dark".to_vec()))
        );
        assert_eq!(strip(b"usher_a=1; usher_b=2", "usher"), Some(None));
        assert_eq!(
            strip(b"session=abc; usherx=1; usher=2", "usher"),
            None,
            "none of usher's: nothing to rewrite"
        );
    }

    #[test]
    fn odd_bytes_in_other_cookies_hide_nothing() {
        let header = b"name=J\xf6rg; usher_checkout=tok; x=\xff\xfe";
        assert_eq!(find(header, "usher_checkout"), Some("tok"));
        assert_eq!(
            strip(header, "usher"),
            Some(Some(b"name=J\xf6rg; x=\xff\xfe".to_vec())),
            "other cookies are kept byte for byte"
        );
        assert_eq!(find(b"usher_checkout=t\xf6k", "usher_checkout"), None);
    }

    #[test]
    fn malformed_headers_are_read_leniently_and_safely() {
        let cases: [(&[u8], Option<&str>); 8] = [
            (b"", None),
            (b";;;", None),
            (b"usher_checkout", None),
            (b"usher_checkout=", Some("")),
            (b"  usher_checkout = tok ;", Some("tok")),
            (b"\tusher_checkout=tok", Some("tok")),
            (b"usher_checkout=a=b", Some("a=b")),
            (
                b"usher_checkout=first; usher_checkout=second",
                Some("first"),
            ),
        ];
        for (header, value) in cases {
            assert_eq!(find(header, "usher_checkout"), value, "{header:?}");
        }
        assert_eq!(strip(b" ; usher_z=1 ;", "usher"), Some(None));
        assert_eq!(
            strip(b"usher_z", "usher"),
            Some(None),
            "a bare name of ours goes too"
        );
    }

    #[test]
    fn set_cookie_has_safe_attributes() {
        let c = set("usher_z", "t", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure"));
        assert!(clear("usher_z", false).contains("Max-Age=0"));
        assert!(is_own_set_cookie(c.as_bytes(), "usher"));
        assert!(!is_own_set_cookie(b"session=1; Path=/", "usher"));
    }

    proptest! {
        #[test]
        fn cookie_parsing_never_panics_and_strips_every_own_cookie(
            header in prop::collection::vec(
                prop_oneof![
                    Just(b"usher_z=tok".to_vec()),
                    Just(b";".to_vec()),
                    Just(b" ".to_vec()),
                    Just(b"=".to_vec()),
                    any::<u8>().prop_map(|b| vec![b]),
                ],
                0..32,
            ).prop_map(|p| p.concat())
        ) {
            let _ = find(&header, "usher_z");
            if let Some(Some(kept)) = strip(&header, "usher") {
                prop_assert_eq!(strip(&kept, "usher"), None, "nothing of usher's is left");
                prop_assert_eq!(find(&kept, "usher_z"), None);
            }
        }
    }
}
