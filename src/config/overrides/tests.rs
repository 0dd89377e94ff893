//! Overrides against the config's rules: table tests of malformed and adversarial patches, and
//! a property test that no patch panics.

use super::*;
use serde_json::json;

fn zone() -> ZoneConfig {
    let text = "[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n\
        [tokens]\nsigning_key = { kid = \"k\", env = \"X\" }\n\
        [zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 100\nadmit_per_minute = 600\n\
        [[zones.checkout.events]]\nname = \"launch\"\nstarts_at = \"2030-01-01T10:00:00Z\"\n\
        capacity = 500\n";
    let config = crate::config::parse(text, std::path::Path::new(".")).expect("valid");
    config.zones[0].clone()
}

fn patch(value: serde_json::Value) -> Result<Overrides, Vec<Problem>> {
    Overrides::default().check(&zone(), &value, "sre", "127.0.0.1", 1_000)
}

fn problems(value: serde_json::Value) -> Vec<String> {
    match patch(value) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn overrides_replace_limits_mode_and_message_in_the_zone_and_its_sales() {
    let zone = zone();
    let o = patch(json!({"admit_per_minute": 60, "mode": "paused", "message": "hold on"}))
        .expect("valid");
    let applied = apply(&zone, &o).expect("applies");
    assert_eq!(applied.limits.admit_per_minute, 60);
    assert_eq!(
        applied.limits.burst, 1,
        "a new rate brings a second's worth of burst"
    );
    assert_eq!(applied.limits.capacity, 100, "untouched");
    assert_eq!(applied.mode, crate::config::Mode::Paused);
    assert_eq!(applied.message, "hold on");
    let sale = &applied.events[0].sale;
    assert_eq!(sale.limits.capacity, 500, "the sale's own capacity stays");
    assert_eq!(sale.limits.admit_per_minute, 60, "the operator's rate wins");
    assert_eq!(sale.mode, crate::config::Mode::Paused);
    let who = &o.settings["mode"];
    assert_eq!(
        (who.by.as_str(), who.from.as_str(), who.at_ms),
        ("sre", "127.0.0.1", 1_000)
    );
}

#[test]
fn null_and_an_empty_message_return_a_setting_to_the_config() {
    let o = patch(json!({"capacity": 5, "message": "x"})).expect("valid");
    let o = o
        .check(
            &zone(),
            &json!({"capacity": null, "message": ""}),
            "sre",
            "::1",
            2,
        )
        .expect("valid");
    assert!(o.is_empty(), "{o:?}");
}

#[test]
fn bad_patches_name_every_problem_with_its_path() {
    let cases: &[(serde_json::Value, &[&str])] = &[
        (
            json!({"capacity": 0}),
            &["zones.checkout.capacity: must be > 0"],
        ),
        (json!({"capacity": -5}), &["zones.checkout.capacity"]),
        (
            json!({"capacity": 1e40}),
            &["zones.checkout.capacity: must be a whole number"],
        ),
        (
            json!({"capacity": "10"}),
            &["zones.checkout.capacity: must be a whole number"],
        ),
        (
            json!({"admit_per_minute": u64::MAX}),
            &["zones.checkout.admit_per_minute"],
        ),
        (
            json!({"mode": "fast"}),
            &["zones.checkout.mode: `fast` is not one of"],
        ),
        (
            json!({"mode": 3}),
            &["zones.checkout.mode: must be a string"],
        ),
        (
            json!({"session_ttl": "forever"}),
            &["zones.checkout.session_ttl"],
        ),
        (
            json!({"session_ttl": "0s"}),
            &["zones.checkout.session_ttl: must be at least 1s"],
        ),
        (
            json!({"message": "x".repeat(1_001)}),
            &["zones.checkout.message: is 1001 bytes"],
        ),
        (
            json!({"paths": ["/"]}),
            &["zones.checkout.paths: cannot be changed live"],
        ),
        (json!({}), &["zones.checkout: names no setting"]),
        (json!([1, 2]), &["zones.checkout: send a JSON object"]),
        (json!("paused"), &["zones.checkout: send a JSON object"]),
        (
            json!({"capacity": 0, "mode": "nope", "upstream": "x"}),
            &[
                "zones.checkout.upstream",
                "zones.checkout.capacity",
                "zones.checkout.mode",
            ],
        ),
    ];
    for (value, expected) in cases {
        let found = problems(value.clone());
        for want in *expected {
            assert!(
                found.iter().any(|p| p.starts_with(want)),
                "{value}: expected `{want}` among {found:?}"
            );
        }
    }
}

#[test]
fn stored_overrides_read_back_and_foreign_text_is_refused() {
    let o = patch(json!({"burst": 7, "message": "<b>soon</b>"})).expect("valid");
    assert_eq!(Overrides::from_json(&o.to_json()), Some(o));
    for text in ["", "{", "[]", "{\"settings\": 3}", "\u{0}"] {
        assert_eq!(Overrides::from_json(text), None, "{text:?}");
    }
}

proptest::proptest! {
    #[test]
    fn no_patch_panics(key in "[a-z_]{0,20}", number in proptest::num::i64::ANY,
                       text in "\\PC{0,40}", pick in 0u8..4) {
        let zone = zone();
        let value = match pick {
            0 => json!(number),
            1 => json!(text),
            2 => serde_json::Value::Null,
            _ => json!({"nested": text}),
        };
        for key in [key.as_str(), "capacity", "mode", "session_ttl", "burst", "message"] {
            let (o, _) = Overrides::default().patched("checkout", &json!({ key: value.clone() }), "", "", 0);
            let _ = apply(&zone, &o);
        }
    }
}
