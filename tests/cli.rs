//! The command line: help, check, keygen, token inspect, identity sign and draw, run as a user
//! would.

mod common;

use std::process::Command;

fn usher(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_usher"))
        .args(args)
        .env(
            "USHER_SIGNING_KEY",
            usher::token::keys::generate_ed25519().0,
        )
        .output()
        .expect("run usher");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn fixture(path: &str) -> String {
    format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["check", "--help"],
        vec!["keygen", "--help"],
        vec!["token", "inspect", "--help"],
        vec!["demo", "--help"],
        vec!["draw", "--help"],
        vec!["upgrade", "--help"],
        vec!["store", "verify", "--help"],
        vec!["store", "repair", "--help"],
        vec!["identity", "sign", "--help"],
    ] {
        let (ok, text) = usher(&args);
        assert!(ok && text.contains("Usage:"), "{args:?}: {text}");
    }
}

#[test]
fn check_accepts_valid_configs_and_lists_every_problem_of_invalid_ones() {
    let (ok, text) = usher(&["check", "--config", &fixture("valid/minimal.toml")]);
    assert!(ok, "{text}");
    assert!(text.contains("ok (1 zone(s))"), "{text}");
    let (ok, text) = usher(&["check", "--config", &fixture("invalid/many_problems.toml")]);
    assert!(!ok, "exit code 1 on problems");
    assert!(
        text.contains("zones.checkout.admit_per_minute: must be > 0"),
        "{text}"
    );
    assert!(text.contains("metrics.port: unknown key"), "{text}");
    assert!(
        text.lines().filter(|l| l.starts_with("  ")).count() >= 10,
        "every problem listed: {text}"
    );
}

#[test]
fn check_reports_missing_key_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n[tokens]\nsigning_key = { kid = \"k\", file = \"missing.pem\" }\n",
    )
    .expect("write");
    let (ok, text) = usher(&["check", "--config", config.to_str().expect("utf8")]);
    assert!(!ok);
    assert!(
        text.contains("tokens.signing_key.file: cannot read"),
        "{text}"
    );
}

#[test]
fn keygen_writes_private_and_public_keys_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("keys/k1.pem");
    let key_arg = key.to_str().expect("utf8");
    let (ok, text) = usher(&["keygen", "--out", key_arg]);
    assert!(ok, "{text}");
    let private = std::fs::read_to_string(&key).expect("key");
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(
        std::fs::metadata(&key).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    let public = std::fs::read_to_string(dir.path().join("keys/k1.pem.pub")).expect("pub");
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
    let (ok, text) = usher(&["keygen", "--out", key_arg]);
    assert!(!ok && text.contains("not overwriting"), "{text}");
    assert_eq!(std::fs::read_to_string(&key).expect("key"), private);
    assert!(usher(&["keygen", "--out", key_arg, "--if-missing"]).0);
}

#[test]
fn token_inspect_verifies_and_explains() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("k.pem");
    std::fs::write(&key, usher::token::keys::generate_ed25519().0).expect("key");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n[tokens]\nsigning_key = { kid = \"k\", file = \"k.pem\" }\n",
    )
    .expect("write");
    let parsed = usher::config::load(&config).expect("config");
    let tokens = usher::token::Tokens::new(
        usher::token::Keyring::load(&parsed.tokens).expect("keys"),
        "usher",
        10,
    );
    let claims = usher::token::Claims {
        iss: "usher".into(),
        typ: usher::token::TokenKind::Visitor,
        zone: "checkout".into(),
        vid: usher::admission::VisitorId(5),
        rank: 1,
        iat: 1,
        exp: 4_000_000_000,
        adm: None,
        pri: false,
    };
    let token = tokens.sign(&claims);
    let cfg = config.to_str().expect("utf8");
    let (ok, text) = usher(&["token", "inspect", &token, "--config", cfg]);
    assert!(ok, "{text}");
    assert!(
        text.contains("\"zone\": \"checkout\"") && text.contains("valid Visitor token"),
        "{text}"
    );
    let tampered = common::tamper_signature(&token);
    let (ok, text) = usher(&["token", "inspect", &tampered, "--config", cfg]);
    assert!(!ok);
    assert!(text.contains("refused: bad_signature"), "{text}");
}

#[test]
fn draw_reruns_a_lottery_from_its_published_seed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[upstreams.shop]\naddrs = [\"127.0.0.1:9\"]\n\
         [tokens]\nsigning_key = { kid = \"k\", env = \"USHER_SIGNING_KEY\" }\n\
         [zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 5\nadmit_per_minute = 60\n\
         [[zones.checkout.events]]\nname = \"launch\"\n\
         prequeue_at = \"2026-12-01T09:00:00Z\"\nstarts_at = \"2026-12-01T10:00:00Z\"\n",
    )
    .expect("write");
    let cfg = config.to_str().expect("utf8");
    let visitors = [
        "0000000000000000000000000000000a",
        "0000000000000000000000000000000b",
        "0000000000000000000000000000000c",
    ];
    let mut args = vec![
        "draw",
        "--config",
        cfg,
        "--zone",
        "checkout",
        "--event",
        "launch",
        "--seed",
        "00000000000004d2",
    ];
    args.extend(visitors);
    let (ok, text) = usher(&args);
    assert!(ok, "{text}");
    // The same order as the library computes, which the room uses to admit.
    let parsed = usher::config::load(&config).expect("config");
    let event = &parsed.zone("checkout").expect("zone").events[0];
    let mut expected: Vec<_> = visitors
        .iter()
        .map(|v| {
            usher::onsale::lottery_key(
                event,
                1234,
                usher::admission::VisitorId::parse(v).expect("id"),
            )
        })
        .collect();
    expected.sort();
    let printed: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let expected: Vec<String> = expected.iter().map(|k| k.visitor.to_string()).collect();
    assert_eq!(printed, expected, "{text}");
    let (ok, text) = usher(&[
        "draw",
        "--config",
        cfg,
        "--zone",
        "checkout",
        "--event",
        "nope",
        "--seed",
        "1",
        visitors[0],
    ]);
    assert!(!ok && text.contains("no event `nope`"), "{text}");
}

/// A config in `dir` listening on `listen` in front of `origin`, with its key and data beside it.
fn config_in(dir: &std::path::Path, listen: &str, origin: &str) -> String {
    common::ensure_key(dir);
    let text = format!(
        "# demo-key: key.pem\n[server]\nlisten = \"{listen}\"\n[upstreams.shop]\naddrs = [\"{origin}\"]\n\
         [tokens]\nsigning_key = {{ kid = \"k\", file = \"key.pem\" }}\n\
         [zones.checkout]\npaths = [\"/checkout\"]\ncapacity = 1\nadmit_per_minute = 1\n"
    );
    let path = dir.join("usher.toml");
    std::fs::write(&path, text).expect("config");
    path.display().to_string()
}

/// Runs `usher ARGS` to its end (it must end: a start-up problem is not a hang).
fn run_to_end(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_usher"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run usher");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("usher {args:?} kept running after a start-up problem");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    use std::io::Read;
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr).expect("stderr");
    }
    (status.code(), stderr)
}

#[test]
fn start_up_problems_are_one_clear_line_and_exit_1() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy_addr = busy.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_in(dir.path(), &busy_addr, "127.0.0.1:9");
    let (code, stderr) = run_to_end(&["run", "--config", &config]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {busy_addr} (server.listen)"))
            && stderr.contains("in use"),
        "{stderr}"
    );

    // The demo with its shop's port taken ends too, instead of panicking and running on.
    let free = common::free_addr().to_string();
    let config = config_in(dir.path(), &free, &busy_addr);
    let (code, stderr) = run_to_end(&["demo", "--config", &config]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot start the demo shop on {busy_addr}")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A data directory that is a file.
    let config = config_in(dir.path(), &free, "127.0.0.1:9");
    std::fs::write(dir.path().join("data"), "not a directory").expect("file");
    let (code, stderr) = run_to_end(&["run", "--config", &config]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("opening the store in"), "{stderr}");

    // A key that cannot be read.
    std::fs::remove_file(dir.path().join("data")).expect("remove");
    std::fs::remove_file(dir.path().join("key.pem")).expect("remove key");
    let (code, stderr) = run_to_end(&["run", "--config", &config]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("tokens.signing_key.file: cannot read"),
        "{stderr}"
    );
    drop(busy);
}

#[test]
fn upgrade_without_a_running_usher_says_so_and_starts_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("usher.toml");
    std::fs::copy(fixture("valid/minimal.toml"), &config).expect("copy config");
    let config = config.to_str().expect("utf-8 path");
    let (ok, text) = usher(&["upgrade", "--config", config]);
    assert!(!ok, "{text}");
    assert!(text.contains("no running usher found"), "{text}");
    assert!(text.contains("--pid"), "says what to do: {text}");
    // The largest PID Linux hands out, and never a running process here.
    let (ok, text) = usher(&["upgrade", "--config", config, "--pid", "4194304"]);
    assert!(!ok, "{text}");
    assert!(text.contains("no process 4194304 is running"), "{text}");
    assert!(
        !dir.path().join("data").join("upgrade.sock").exists(),
        "nothing was started"
    );
}

#[test]
fn identity_sign_prints_a_token_and_a_link_and_refuses_what_it_cannot_sign() {
    let config = fixture("valid/minimal.toml");
    let (ok, text) = usher(&[
        "identity", "sign", "-c", &config, "-i", "user-42", "--valid", "1h",
    ]);
    assert!(ok, "{text}");
    let token = text.lines().next().expect("token");
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    assert!(text.contains(&format!(
        "https://shop.example/checkout?usher_identity={token}"
    )));
    let claims = usher::token::decode_unverified(token).expect("claims");
    assert_eq!(claims["typ"], "identity");
    assert_eq!(claims["zone"], "*");
    assert_eq!(
        claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
        3_600
    );
    for (args, says) in [
        (vec!["-i", "has space"], "visible ASCII"),
        (vec!["-i", ""], "visible ASCII"),
        (vec!["-i", "u", "--zone", "nope"], "no zone `nope`"),
        (vec!["-i", "u", "--valid", "soon"], "--valid"),
        (vec!["-i", "u", "--valid", "0s"], "at least a second"),
    ] {
        let mut all = vec!["identity", "sign", "-c", config.as_str()];
        all.extend(args.iter());
        let (ok, text) = usher(&all);
        assert!(!ok, "{args:?} should fail: {text}");
        assert!(text.contains(says), "{args:?}: {text}");
    }
}
