//! The admin API and `usher ctl` against the real binary: tokens and roles, zone reports, a
//! revocation that ends a session on the proxy, the audit log.

mod common;

use common::{free_addr, start_origin, Usher};
use std::process::Command;
use usher::demo::origin::OriginResponse;

const READ: &str = "grafana-reads-0123456789";
const WRITE: &str = "sre-writes-0123456789";

fn ctl(admin: &str, token_file: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_usher"))
        .args(["ctl", "--admin", admin, "--token-file"])
        .arg(token_file)
        .args(args)
        .output()
        .expect("usher ctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn operators_read_zones_and_revoke_visitors_with_the_right_token() {
    let origin = start_origin(|_| async move { OriginResponse::html("<h1>checkout</h1>".into()) });
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("read.token"), READ).expect("token");
    std::fs::write(dir.path().join("write.token"), WRITE).expect("token");
    let listen = free_addr();
    let zones = format!(
        "[zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 5\nadmit_per_minute = 300\n\
         [admin]\nlisten = \"{listen}\"\ntokens = [\
         {{ name = \"grafana\", file = \"read.token\", role = \"read\" }}, \
         {{ name = \"sre\", file = \"write.token\", role = \"write\" }}]\n"
    );
    let usher = Usher::start(dir.path(), origin, &zones);
    let admin = format!("http://{listen}");
    common::wait_until(
        "the admin listener",
        std::time::Duration::from_secs(10),
        || std::net::TcpStream::connect(listen).is_ok(),
    );

    // No token, a wrong one: 401 and nothing else.
    let mut raw = common::Client::connect(listen);
    let none = raw.get("/v1/zones", &[]);
    assert_eq!(none.status, 401);
    assert_eq!(
        none.header("www-authenticate"),
        Some("Bearer realm=\"usher\"")
    );
    let wrong = raw.get(
        "/v1/zones",
        &[("Authorization", "Bearer grafana-reads-012345678")],
    );
    assert_eq!(wrong.status, 401);

    // A visitor walks into the quiet zone.
    let entered = usher.client().get("/checkout", &[]);
    let session = entered.cookie().expect("an access cookie");
    let visitor = common::claims_of(&session)["vid"]
        .as_str()
        .expect("vid")
        .to_string();

    // The read token sees the zone, as a table and as JSON; it may not revoke.
    let read = dir.path().join("read.token");
    let (ok, table) = ctl(&admin, &read, &["zones"]);
    assert!(ok, "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ZONE") && lines[0].contains("RATE/MIN"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("checkout") && lines[1].contains("300"),
        "{table}"
    );
    let (ok, json) = ctl(&admin, &read, &["--json", "zone", "checkout"]);
    assert!(ok, "{json}");
    let zone: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(
        (zone["capacity"].as_u64(), zone["mode"].as_str()),
        (Some(5), Some("auto"))
    );
    let (ok, refused) = ctl(&admin, &read, &["revoke", "checkout", &visitor]);
    assert!(
        !ok && refused.contains("403 read_only") && refused.contains("role = \"write\""),
        "{refused}"
    );
    let (ok, unknown) = ctl(&admin, &read, &["zone", "nope"]);
    assert!(!ok && unknown.contains("404 no_such_zone"), "{unknown}");

    // The write token ends the session: the proxy no longer forwards it.
    let write = dir.path().join("write.token");
    let (ok, said) = ctl(&admin, &write, &["revoke", "checkout", &visitor]);
    assert!(ok && said.contains("revoked: session"), "{said}");
    let after = usher.client().get("/checkout", &[("Cookie", &session)]);
    let now = after.cookie().map(|c| {
        common::claims_of(&c)["vid"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    assert_ne!(
        now.as_deref(),
        Some(visitor.as_str()),
        "the revoked session went on"
    );

    // The audit log says who did it, from where.
    let (ok, audit) = ctl(&admin, &read, &["audit"]);
    assert!(ok, "{audit}");
    assert!(
        audit
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("sre") && l.contains("127.0.0.1") && l.contains("revoke")),
        "{audit}"
    );

    // An unreachable API says what to check.
    let (ok, down) = ctl("http://127.0.0.1:9", &read, &["zones"]);
    assert!(!ok && down.contains("[admin] listen"), "{down}");
}
