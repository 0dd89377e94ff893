//! The admin API without sockets: a room on the embedded store, requests as the transport
//! hands them over.

use super::*;
use crate::clock::ManualClock;
use crate::config::{AdminRole, AdminToken};
use crate::metrics::Metrics;
use crate::store::embedded::EmbeddedStore;
use crate::token::{Keyring, Tokens};

const T0: u64 = 1_800_000_000_000;
const READ: &str = "read-token-0123456789";
const WRITE: &str = "write-token-0123456789";

fn admin() -> (Admin, Arc<Room>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = crate::token::keys::generate_ed25519().0;
    std::fs::write(dir.path().join("k.pem"), key).expect("key");
    let text = "[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n\
        [tokens]\nsigning_key = { kid = \"k\", file = \"k.pem\" }\n[store]\ndata_dir = \"data\"\n\
        [zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 7\nadmit_per_minute = 120\n";
    let config = crate::config::parse(text, dir.path()).expect("valid");
    let clock = Arc::new(ManualClock::new(T0));
    let store = Arc::new(EmbeddedStore::open(&config.store.data_dir, T0).expect("store"));
    let tokens = Tokens::new(Keyring::load(&config.tokens).expect("keys"), "usher", 100);
    let room = Arc::new(Room::new(
        &config,
        tokens,
        store,
        clock.clone(),
        Metrics::new(),
    ));
    let holders = vec![
        AdminToken {
            name: "grafana".into(),
            secret: READ.into(),
            role: AdminRole::Read,
        },
        AdminToken {
            name: "sre".into(),
            secret: WRITE.into(),
            role: AdminRole::Write,
        },
    ];
    (Admin::new(room.clone(), holders, clock), room, dir)
}

async fn ask(
    admin: &Admin,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    send(admin, method, path, token, b"").await
}

async fn send(
    admin: &Admin,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let header = token.map(|t| format!("Bearer {t}"));
    let response = admin
        .handle(AdminRequest {
            method,
            path,
            authorization: header.as_deref().map(str::as_bytes),
            peer: Some("192.0.2.7".parse().expect("ip")),
            body,
        })
        .await;
    let body = serde_json::from_slice(&response.body).expect("json");
    (response.status, body)
}

#[tokio::test]
async fn tokens_are_checked_and_roles_enforced() {
    let (admin, _, _dir) = admin();
    for token in [
        None,
        Some(""),
        Some("nope"),
        Some("read-token-012345678"),
        Some("read-token-0123456789x"),
    ] {
        let (status, body) = ask(&admin, "GET", "/v1/zones", token).await;
        assert_eq!(status, 401, "{token:?}: {body}");
    }
    let (status, _) = ask(&admin, "GET", "/v1/zones", Some(READ)).await;
    assert_eq!(status, 200);
    let visitor = "0".repeat(32);
    let revoke = format!("/v1/zones/checkout/visitors/{visitor}/revoke");
    let (status, body) = ask(&admin, "POST", &revoke, Some(READ)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("grafana")));
    let (status, body) = ask(&admin, "POST", &revoke, Some(WRITE)).await;
    assert_eq!(
        (status, body["revoked"].as_str()),
        (200, Some("place")),
        "{body}"
    );
    // Only what wrote is in the audit log, with who and from where.
    let (_, audit) = ask(&admin, "GET", "/v1/audit", Some(READ)).await;
    let entries = audit["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["who"], "sre");
    assert_eq!(entries[0]["address"], "192.0.2.7");
    assert_eq!(entries[0]["action"], "revoke");
}

#[tokio::test]
async fn zones_are_reported_with_their_limits_in_force() {
    let (admin, _, _dir) = admin();
    let (status, body) = ask(&admin, "GET", "/v1/zones/checkout", Some(READ)).await;
    assert_eq!(status, 200);
    assert_eq!(body["zone"], "checkout");
    assert_eq!(body["mode"], "auto");
    assert_eq!(
        (body["capacity"].as_u64(), body["admit_per_minute"].as_u64()),
        (Some(7), Some(120))
    );
    assert_eq!(body["burst"], 2);
    assert!(body["overrides"].as_array().is_some_and(Vec::is_empty));
    for (method, path, status) in [
        ("GET", "/v1/zones/nope", 404),
        ("DELETE", "/v1/zones", 405),
        ("GET", "/v2/zones", 404),
        ("POST", "/v1/zones/checkout/visitors/xyz/revoke", 400),
        (
            "POST",
            "/v1/zones/nope/visitors/00000000000000000000000000000000/revoke",
            404,
        ),
    ] {
        let (got, body) = ask(&admin, method, path, Some(WRITE)).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        assert!(body["error"].is_string());
    }
}

#[tokio::test]
async fn overrides_are_checked_kept_in_the_store_reported_and_dropped() {
    let (admin, room, _dir) = admin();
    let patch = br#"{"admit_per_minute": 30, "mode": "paused", "message": "Back in 2 minutes"}"#;
    let (status, body) = send(&admin, "PATCH", "/v1/zones/checkout", Some(READ), patch).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = send(&admin, "PATCH", "/v1/zones/checkout", Some(WRITE), patch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["mode"].as_str(), body["admit_per_minute"].as_u64()),
        (Some("paused"), Some(30))
    );
    assert_eq!(body["capacity"], 7, "untouched settings stay as configured");
    assert_eq!(body["message"], "Back in 2 minutes");
    let overrides = body["overrides"].as_array().expect("overrides");
    assert_eq!(overrides.len(), 3, "{body}");
    assert!(overrides
        .iter()
        .all(|o| o["by"] == "sre" && o["from"] == "192.0.2.7" && o["at_ms"] == T0));
    // In the zone table the gate and the exchanger read, and in the store.
    let zones = room.zones();
    let zone = &zones.by_name("checkout").expect("zone").config;
    assert_eq!(zone.limits.admit_per_minute, 30);
    let stored = room
        .store_for_tests()
        .overrides("checkout")
        .await
        .expect("read");
    assert_eq!(stored.map(|o| o.settings.len()), Some(3));

    // Every problem at once, with its path; nothing changes.
    let bad = br#"{"capacity": 0, "mode": "fast", "paths": ["/"]}"#;
    let (status, body) = send(&admin, "PATCH", "/v1/zones/checkout", Some(WRITE), bad).await;
    assert_eq!(status, 422, "{body}");
    let paths: Vec<&str> = body["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["path"].as_str())
        .collect();
    for want in [
        "zones.checkout.capacity",
        "zones.checkout.mode",
        "zones.checkout.paths",
    ] {
        assert!(paths.contains(&want), "{want} in {body}");
    }
    assert_eq!(
        room.zones()
            .by_name("checkout")
            .expect("zone")
            .config
            .limits
            .capacity,
        7
    );
    for (body, status) in [(&b"{"[..], 400), (b"", 400), (b"[]", 422), (b"{}", 422)] {
        let (got, answer) = send(&admin, "PATCH", "/v1/zones/checkout", Some(WRITE), body).await;
        assert_eq!(got, status, "{answer}");
    }
    let (status, _) = send(&admin, "PATCH", "/v1/zones/nope", Some(WRITE), b"{}").await;
    assert_eq!(status, 404);

    // Back to the config, in the table and the store.
    let (status, body) = ask(
        &admin,
        "DELETE",
        "/v1/zones/checkout/overrides",
        Some(WRITE),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["mode"].as_str(), body["admit_per_minute"].as_u64()),
        (Some("auto"), Some(120))
    );
    assert!(body["overrides"].as_array().is_some_and(Vec::is_empty));
    let stored = room
        .store_for_tests()
        .overrides("checkout")
        .await
        .expect("read");
    assert_eq!(stored, None);
    let (_, audit) = ask(&admin, "GET", "/v1/audit", Some(READ)).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["set", "reset"], "refused changes are not changes");
}

#[test]
fn token_comparison_is_exact() {
    assert!(same(b"abc", b"abc"));
    assert!(!same(b"abc", b"abd"));
    assert!(!same(b"abc", b"ab"));
    assert!(same(b"", b""));
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        /// Any method, path and `Authorization` bytes get an answer with a JSON body: 401 for
        /// anything that is not a token, and never a panic.
        #[test]
        fn any_request_gets_a_json_answer(
            method in prop_oneof![Just("GET".to_string()), Just("POST".to_string()), "\\PC{0,8}"],
            path in prop_oneof![
                "(/v1(/zones(/[a-z/%.]{0,12}){0,3})?)?",
                "\\PC{0,40}",
            ],
            authorization in prop::collection::vec(any::<u8>(), 0..40),
            body in prop::collection::vec(any::<u8>(), 0..60),
            with_token in any::<bool>(),
        ) {
            let (admin, _, _dir) = admin();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let header = if with_token {
                format!("Bearer {READ}").into_bytes()
            } else {
                authorization.clone()
            };
            let response = runtime.block_on(admin.handle(AdminRequest {
                method: &method,
                path: &path,
                authorization: Some(&header),
                peer: None,
                body: &body,
            }));
            prop_assert!(serde_json::from_slice::<serde_json::Value>(&response.body).is_ok());
            if !with_token {
                prop_assert_eq!(response.status, 401);
            }
        }
    }
}
