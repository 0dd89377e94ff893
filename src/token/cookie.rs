//! usher's cookies: one per zone, `<prefix>_<zone>`, holding that zone's visitor or access token.
//! They are stripped from requests before they reach the origin.

/// The cookie name for `zone`.
pub fn name(prefix: &str, zone: &str) -> String {
    format!("{prefix}_{zone}")
}

/// The value of cookie `name` in a `Cookie` header value.
pub fn find<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value.trim())
    })
}

/// The `Cookie` header without usher's cookies (`<prefix>_*`); `None` if nothing is left.
pub fn strip(header: &str, prefix: &str) -> Option<String> {
    let own = format!("{prefix}_");
    let kept: Vec<&str> = header
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && !pair.starts_with(&own))
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_strips_only_our_cookies() {
        let header = "session=abc; usher_checkout=tok.en.x; theme=dark";
        assert_eq!(find(header, "usher_checkout"), Some("tok.en.x"));
        assert_eq!(find(header, "usher_other"), None);
        assert_eq!(
            strip(header, "usher").as_deref(),
            Some("session=abc; theme=dark")
        );
        assert_eq!(strip("usher_a=1; usher_b=2", "usher"), None);
    }

    #[test]
    fn set_cookie_has_safe_attributes() {
        let c = set("usher_z", "t", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure"));
        assert!(clear("usher_z", false).contains("Max-Age=0"));
    }
}
