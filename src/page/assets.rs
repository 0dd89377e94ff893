//! The page's stylesheet and scripts (the page's, and the proof-of-work worker's), embedded in the binary and served under
//! `/_usher/assets/<name>.<hash>.<ext>`. The hash is of the content, so a name never changes
//! meaning and browsers may keep a file for a year without asking again; a new build with new
//! content gets new names, and the pages that point to them come with it.

use std::sync::LazyLock;

/// Where assets are served.
pub const PREFIX: &str = "/_usher/assets/";

/// `Cache-Control` of an asset: its name changes with its content.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// File name with the content hash, e.g. `page.0123456789abcdef.css`.
    pub name: String,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The content.
    pub body: &'static str,
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, body: &'static str) -> Asset {
        Asset {
            name: format!("{stem}.{:016x}.{ext}", fnv1a(body.as_bytes())),
            content_type,
            body,
        }
    }

    /// The path pages link to.
    pub fn url(&self) -> String {
        format!("{PREFIX}{}", self.name)
    }
}

static ASSETS: LazyLock<[Asset; 3]> = LazyLock::new(|| {
    [
        Asset::new(
            "page",
            "css",
            "text/css; charset=utf-8",
            include_str!("assets/page.css"),
        ),
        Asset::new(
            "page",
            "js",
            "text/javascript; charset=utf-8",
            include_str!("assets/page.js"),
        ),
        Asset::new(
            "pow",
            "js",
            "text/javascript; charset=utf-8",
            include_str!("assets/pow.js"),
        ),
    ]
});

/// The page's stylesheet.
pub fn stylesheet() -> &'static Asset {
    &ASSETS[0]
}

/// The page's script.
pub fn script() -> &'static Asset {
    &ASSETS[1]
}

/// The proof-of-work solver, run by the page in a Web Worker.
pub fn pow_worker() -> &'static Asset {
    &ASSETS[2]
}

/// The asset called `name` (with its hash); `None` for anything else, old hashes included.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// This build's version of an asset asked for by another build's name (`page.<other hash>.js`):
/// during a rolling upgrade a page from one node may ask another for its assets. Serving the
/// current file (not cached for good) beats a page without style or script.
pub fn other_version_of(name: &str) -> Option<&'static Asset> {
    let (stem, rest) = name.split_once('.')?;
    let (hash, ext) = rest.split_once('.')?;
    let is_hash = hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    ASSETS.iter().find(|a| {
        is_hash && a.name.starts_with(&format!("{stem}.")) && a.name.ends_with(&format!(".{ext}"))
    })
}

/// 64-bit FNV-1a: stable across builds and platforms (unlike `std`'s hasher), and plenty to
/// tell two versions of a file apart; it is not a security boundary.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_content_hash() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(
            fnv1a(b"a"),
            0xaf63_dc4c_8601_ec8c,
            "the published FNV-1a test vector"
        );
        let css = stylesheet();
        assert!(css.name.starts_with("page.") && css.name.ends_with(".css"));
        assert_eq!(css.name.len(), "page.".len() + 16 + ".css".len());
        assert_ne!(stylesheet().name, script().name);
        assert_eq!(script().url(), format!("/_usher/assets/{}", script().name));
    }

    #[test]
    fn only_current_names_are_found() {
        assert_eq!(find(&script().name).map(|a| a.body), Some(script().body));
        assert!(find("page.js").is_none(), "the name without its hash");
        assert!(
            find("page.0000000000000000.css").is_none(),
            "another version"
        );
        assert!(find("../Cargo.toml").is_none());
    }
}
