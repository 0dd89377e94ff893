//! The admin API and `usher ctl` against the real binary: tokens and roles, zone reports, a
//! revocation that ends a session on the proxy, the audit log; live overrides (pause, rate,
//! a message pushed to an open page) that survive `kill -9`; reloads by `SIGHUP` and the API.

mod common;

use common::sse::Sse;
use common::{free_addr, start_origin, wait_until, Usher};
use std::process::Command;
use std::time::Duration;
use usher::demo::origin::OriginResponse;

const READ: &str = "grafana-reads-0123456789";
const WRITE: &str = "sre-writes-0123456789";

/// Runs `usher ctl` and asserts it failed saying each of `says`.
fn ctl_fails(admin: &str, token_file: &std::path::Path, args: &[&str], says: &[&str]) {
    let (ok, said) = ctl(admin, token_file, args);
    assert!(!ok, "{args:?} succeeded: {said}");
    for want in says {
        assert!(said.contains(want), "{args:?}: {want:?} not in {said}");
    }
}

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
    // A stranger announcing a large body is answered at once, its body never read.
    {
        use std::io::{Read, Write};
        let mut stranger = std::net::TcpStream::connect(listen).expect("connect");
        stranger
            .write_all(b"POST /v1/reload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n")
            .expect("send");
        stranger
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut head = [0u8; 12];
        stranger
            .read_exact(&mut head)
            .expect("an answer without the body");
        assert_eq!(&head, b"HTTP/1.1 401");
    }

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

/// usher with the admin API on, a read and a write token; the admin URL and the token files.
fn with_admin(
    dir: &std::path::Path,
    zones: &str,
) -> (Usher, String, std::path::PathBuf, std::path::PathBuf) {
    let origin = start_origin(|_| async move { OriginResponse::html("<h1>checkout</h1>".into()) });
    std::fs::write(dir.join("read.token"), READ).expect("token");
    std::fs::write(dir.join("write.token"), WRITE).expect("token");
    let listen = free_addr();
    let zones = format!(
        "{zones}\n[admin]\nlisten = \"{listen}\"\ntokens = [\
         {{ name = \"grafana\", file = \"read.token\", role = \"read\" }}, \
         {{ name = \"sre\", file = \"write.token\", role = \"write\" }}]\n"
    );
    let usher = Usher::start(dir, origin, &zones);
    common::wait_until("the admin listener", Duration::from_secs(10), || {
        std::net::TcpStream::connect(listen).is_ok()
    });
    (
        usher,
        format!("http://{listen}"),
        dir.join("read.token"),
        dir.join("write.token"),
    )
}

const LIVE_ZONE: &str = "[store]\ntick = \"100ms\"\n\
    [zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 50\nadmit_per_minute = 600\n\
    mode = \"queue_all\"\nrefresh_interval = \"1s\"\n";

#[test]
fn an_operator_pauses_tells_and_resumes_a_live_zone_and_the_change_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (usher, admin, read, write) = with_admin(dir.path(), LIVE_ZONE);
    let paused = "usher_zone_paused{zone=\"checkout\"}";
    let rate = "usher_zone_admit_per_minute{zone=\"checkout\"}";
    assert_eq!(usher.metric(rate), 600.0);

    // A read token may not steer; a bad value is refused with its path, nothing changes.
    ctl_fails(
        &admin,
        &read,
        &["zone", "checkout", "set", "--mode", "paused"],
        &["403"],
    );
    ctl_fails(
        &admin,
        &write,
        &["zone", "checkout", "set", "--capacity", "0"],
        &["422", "zones.checkout.capacity: must be > 0"],
    );

    // Pause and slow down: enforced by the next tick.
    let (ok, said) = ctl(
        &admin,
        &write,
        &[
            "zone", "checkout", "set", "--mode", "paused", "--rate", "60",
        ],
    );
    assert!(
        ok && said.contains("paused") && said.contains("overrides:"),
        "{said}"
    );
    wait_until(
        "the next tick to pause the zone",
        Duration::from_secs(5),
        || usher.metric(paused) == 1.0 && usher.metric(rate) == 60.0,
    );

    // A visitor arrives and waits; their open page hears the operator's message at once.
    let cookie = usher
        .client()
        .get("/checkout", &[])
        .cookie()
        .expect("a place");
    let (mut page, _) = Sse::open(&usher, &cookie, None);
    let first = page.status(Duration::from_secs(5));
    assert_eq!(first["state"], "paused", "{first}");
    assert!(first.get("message").is_none(), "{first}");
    let notice = "Back at 10:05 <b>really</b>";
    let (ok, said) = ctl(&admin, &write, &["zone", "checkout", "message", notice]);
    assert!(ok, "{said}");
    let told = page.status(Duration::from_secs(5));
    assert_eq!(told["message"], notice, "{told}");
    let html = usher
        .client()
        .get("/checkout", &[("Cookie", &cookie)])
        .text();
    assert!(
        html.contains("Back at 10:05 &lt;b&gt;really&lt;/b&gt;") && !html.contains("<b>really"),
        "the page shows the notice escaped"
    );

    // Resumed: the waiting visitor's page is told to go in.
    let (ok, said) = ctl(
        &admin,
        &write,
        &["zone", "checkout", "set", "--mode", "queue_all"],
    );
    assert!(ok, "{said}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = page.status(deadline.saturating_duration_since(std::time::Instant::now()));
        if status["state"] == "admitted" {
            break;
        }
    }

    // kill -9: the overrides come back with the store.
    let mut usher = usher;
    usher.kill9();
    let usher = usher.restart();
    common::wait_until("the admin listener again", Duration::from_secs(10), || {
        std::net::TcpStream::connect(admin.trim_start_matches("http://")).is_ok()
    });
    let (ok, json) = ctl(&admin, &read, &["--json", "zone", "checkout"]);
    assert!(ok, "{json}");
    let zone: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(
        (
            zone["admit_per_minute"].as_u64(),
            zone["mode"].as_str(),
            zone["message"].as_str()
        ),
        (Some(60), Some("queue_all"), Some(notice)),
        "{zone}"
    );
    let settings: Vec<&str> = zone["overrides"]
        .as_array()
        .expect("overrides")
        .iter()
        .filter_map(|o| o["setting"].as_str())
        .collect();
    assert_eq!(settings, ["admit_per_minute", "message", "mode"], "{zone}");
    wait_until("the restarted node's tick", Duration::from_secs(5), || {
        usher.metric(rate) == 60.0
    });

    // Back to the config.
    let (ok, said) = ctl(&admin, &write, &["zone", "checkout", "reset"]);
    assert!(ok && !said.contains("overrides:"), "{said}");
    wait_until("the config's rate again", Duration::from_secs(5), || {
        usher.metric(rate) == 600.0
    });
    let (ok, audit) = ctl(&admin, &read, &["--json", "audit"]);
    assert!(ok, "{audit}");
    assert!(audit.contains("\"reset\""), "{audit}");
}

#[test]
fn sighup_applies_a_valid_file_and_a_broken_one_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut usher, admin, _read, write) = with_admin(dir.path(), LIVE_ZONE);
    let capacity = "usher_zone_capacity{zone=\"checkout\"}";
    let reloads = |result: &str| {
        usher.metric(&format!(
            "usher_config_reloads_total{{result=\"{result}\"}}"
        ))
    };
    let hash = usher.metric("usher_config_hash");
    assert!(hash > 0.0);
    let original = std::fs::read_to_string(&usher.config).expect("config");

    // A page open through the reload: a paused zone's visitor with an open event stream.
    let (ok, said) = ctl(
        &admin,
        &write,
        &["zone", "checkout", "set", "--mode", "paused"],
    );
    assert!(ok, "{said}");
    let cookie = usher
        .client()
        .get("/checkout", &[])
        .cookie()
        .expect("a place");
    let (mut page, _) = Sse::open(&usher, &cookie, None);
    assert_eq!(page.status(Duration::from_secs(5))["state"], "paused");

    // A new capacity, applied without a restart.
    std::fs::write(
        &usher.config,
        original.replace("capacity = 50", "capacity = 9"),
    )
    .expect("edit");
    usher.signal("HUP");
    wait_until(
        "the reload and the next tick",
        Duration::from_secs(5),
        || reloads("ok") == 1.0 && usher.metric(capacity) == 9.0,
    );
    assert_ne!(usher.metric("usher_config_hash"), hash);
    assert_eq!(usher.client().get("/checkout", &[]).status, 200);
    // The open stream lived through it, and hears what changes after it (the override
    // stayed on top of the reloaded zone).
    let (ok, said) = ctl(
        &admin,
        &write,
        &["zone", "checkout", "message", "still here"],
    );
    assert!(ok, "{said}");
    let told = page.status(Duration::from_secs(5));
    assert_eq!(
        (told["state"].as_str(), told["message"].as_str()),
        (Some("paused"), Some("still here")),
        "{told}"
    );

    // A broken file: every problem logged, the running config stays, requests are served.
    std::fs::write(
        &usher.config,
        original.replace("capacity = 50", "capacity = 0\nburst = -1"),
    )
    .expect("break");
    usher.signal("HUP");
    wait_until("the refused reload", Duration::from_secs(5), || {
        reloads("invalid") == 1.0
    });
    let log = usher.log();
    for problem in [
        "zones.checkout.capacity",
        "zones.checkout.burst",
        "config reload refused",
    ] {
        assert!(log.contains(problem), "{problem} not logged:\n{log}");
    }
    assert_eq!(usher.metric(capacity), 9.0);
    assert_eq!(usher.client().get("/checkout", &[]).status, 200);
    assert!(matches!(usher.child.try_wait(), Ok(None)), "still running");

    // The API reloads too, and says what only a restart applies.
    let moved = free_addr();
    std::fs::write(
        &usher.config,
        original.replace("capacity = 50", "capacity = 11").replacen(
            &format!("listen = \"{}\"", usher.addr),
            &format!("listen = \"{moved}\""),
            1,
        ),
    )
    .expect("edit");
    let (ok, said) = ctl(&admin, &write, &["reload"]);
    assert!(
        ok && said.contains("reloaded: config") && said.contains("server"),
        "{said}"
    );
    wait_until("the API's reload", Duration::from_secs(5), || {
        usher.metric(capacity) == 11.0
    });
    let (ok, said) = ctl(&admin, &write, &["reload"]);
    assert!(ok, "{said}");
    // A new zone takes a restart: refused, named.
    std::fs::write(
        &usher.config,
        format!("{original}\n[zones.extra]\npaths = [\"/extra\"]\ncapacity = 1\nadmit_per_minute = 60\n"),
    )
    .expect("add a zone");
    ctl_fails(
        &admin,
        &write,
        &["reload"],
        &["422", "the zones changed", "usher upgrade"],
    );
    assert_eq!(usher.metric(capacity), 11.0, "nothing changed");
    // Broken through the API: 422 with the problems.
    std::fs::write(&usher.config, "[zones.checkout\n").expect("break");
    ctl_fails(&admin, &write, &["reload"], &["422"]);
}

#[test]
fn priority_codes_go_ahead_of_the_line_and_bypass_rules_skip_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("staff.secret"), "staff-secret-0123456789").expect("secret");
    let zone = "[store]\ntick = \"100ms\"\n\
        [zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 1\nadmit_per_minute = 600\n\
        mode = \"queue_all\"\nrefresh_interval = \"1s\"\n\
        bypass = { networks = [\"127.0.0.77/32\"], secret = { file = \"staff.secret\" } }\n";
    let (usher, admin, read, write) = with_admin(dir.path(), zone);
    let status = |cookie: &str| {
        usher
            .client()
            .get("/_usher/status", &[("Cookie", cookie)])
            .json()
    };
    // The one slot is taken; two visitors wait behind it.
    let first = usher
        .client()
        .get("/checkout", &[])
        .cookie()
        .expect("a place");
    wait_until("the first visitor's turn", Duration::from_secs(5), || {
        status(&first)["state"] == "admitted"
    });
    let inside = usher
        .client()
        .get("/checkout", &[("Cookie", &first)])
        .cookie()
        .expect("an access cookie");
    let waiting: Vec<String> = (0..2)
        .map(|_| {
            usher
                .client()
                .get("/checkout", &[])
                .cookie()
                .expect("a place")
        })
        .collect();
    for cookie in &waiting {
        assert_eq!(status(cookie)["state"], "waiting");
    }

    // A read token cannot issue codes; a write token can.
    ctl_fails(&admin, &read, &["zone", "checkout", "codes"], &["403"]);
    ctl_fails(
        &admin,
        &write,
        &["zone", "checkout", "codes", "--count", "0"],
        &["422", "count"],
    );
    let (ok, said) = ctl(
        &admin,
        &write,
        &[
            "zone",
            "checkout",
            "codes",
            "--valid-for",
            "1h",
            "--uses",
            "2",
        ],
    );
    assert!(ok, "{said}");
    let code = said.lines().next().expect("a code").trim().to_string();
    assert_eq!(code.len(), 32, "{said}");

    // The code's holder goes ahead of both waiting visitors.
    let link = format!("/checkout?usher_code={code}");
    let redeemed = usher.client().get(&link, &[]);
    let priority = redeemed.cookie().expect("a priority place");
    assert_eq!(common::claims_of(&priority)["pri"], true);
    assert_eq!(status(&priority)["position"], 1, "first in line");
    // Reloading the link's page keeps the place and uses nothing.
    let reloaded = usher.client().get(&link, &[("Cookie", &priority)]);
    assert_eq!(reloaded.cookie(), None, "the same place");
    assert_eq!(status(&priority)["position"], 1);
    let visitor = common::claims_of(&inside)["vid"]
        .as_str()
        .expect("vid")
        .to_string();
    let (ok, said) = ctl(&admin, &write, &["revoke", "checkout", &visitor]);
    assert!(ok, "{said}");
    wait_until("the priority holder's turn", Duration::from_secs(5), || {
        status(&priority)["state"] == "admitted"
    });
    // Admitted ahead of the main line, from just below the cursor: counted as `returned`.
    assert_eq!(
        usher.metric("usher_admitted_total{via=\"returned\",zone=\"checkout\"}"),
        1.0
    );
    for cookie in &waiting {
        assert_eq!(status(cookie)["state"], "waiting", "the main line waits");
    }

    // The second use (the reload took none); then it is used up: a newcomer gets an ordinary
    // place, and a waiting visitor keeps theirs.
    let second = usher.client().get(&link, &[]).cookie().expect("a place");
    assert_eq!(common::claims_of(&second)["pri"], true, "the second use");
    let again = usher.client().get(&link, &[]).cookie().expect("a place");
    assert!(
        common::claims_of(&again).get("pri").is_none(),
        "an ordinary place"
    );
    let before = status(&waiting[0])["position"].clone();
    let kept = usher.client().get(&link, &[("Cookie", &waiting[0])]);
    assert_eq!(kept.cookie(), None, "the waiting visitor keeps their place");
    assert_eq!(status(&waiting[0])["position"], before);
    assert_eq!(
        usher.metric("usher_gate_requests_total{decision=\"priority_refused\",zone=\"checkout\"}"),
        2.0
    );
    let forged = usher
        .client()
        .get("/checkout?usher_code=../../etc", &[])
        .cookie()
        .expect("a place");
    assert!(common::claims_of(&forged).get("pri").is_none());

    // Bypass: the staff network and the secret header skip the full zone; a wrong secret
    // does not.
    let staff = common::origins::exchange_from(
        "127.0.0.77".parse().expect("ip"),
        usher.addr,
        &common::origins::get("/checkout", &[]),
        Duration::from_secs(5),
    )
    .expect("staff request");
    assert!(
        staff.text().contains("<h1>checkout</h1>"),
        "{}",
        staff.text()
    );
    let monitor = usher
        .client()
        .get("/checkout", &[("Usher-Bypass", "staff-secret-0123456789")]);
    assert!(monitor.text().contains("<h1>checkout</h1>"));
    assert!(
        monitor.cookie().is_none(),
        "no session is made for a bypass"
    );
    let wrong = usher
        .client()
        .get("/checkout", &[("Usher-Bypass", "staff-secret-012345678")]);
    assert!(
        !wrong.text().contains("<h1>checkout</h1>"),
        "a wrong secret waits"
    );
    assert_eq!(
        usher.metric("usher_gate_requests_total{decision=\"bypass\",zone=\"checkout\"}"),
        2.0
    );
}
