//! Certificates read from PEM bytes: good pairs, every kind of bad file, and choice by SNI.

use super::*;
use proptest::prelude::*;

/// A self-signed certificate for `names`: (chain PEM, key PEM).
fn pem_for(names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let made = rcgen::generate_simple_self_signed(names).expect("rcgen");
    (made.cert.pem(), made.signing_key.serialize_pem())
}

fn loaded(pairs: &[(String, String)]) -> Loaded {
    let served = pairs
        .iter()
        .enumerate()
        .map(|(i, (cert, key))| {
            let key = certified(cert.as_bytes(), key.as_bytes()).expect("good pair");
            Served {
                expires_s: expiry(&key),
                key: Arc::new(key),
                file: format!("cert{i}.pem"),
            }
        })
        .collect();
    Loaded(served)
}

fn serving(pairs: &[(String, String)]) -> Certificates {
    Certificates(ArcSwap::from_pointee(loaded(pairs).0))
}

/// Which of `pairs` the certificate chosen for `name` is.
fn chosen(certs: &Certificates, name: Option<&str>, pairs: &[(String, String)]) -> usize {
    let key = certs.choose(name).expect("a certificate");
    let leaf = key.end_entity_cert().expect("leaf").clone();
    pairs
        .iter()
        .position(|(cert, _)| CertificateDer::from_pem_slice(cert.as_bytes()).expect("pem") == leaf)
        .expect("one of ours")
}

#[test]
fn a_good_pair_is_read_with_its_expiry() {
    let mut params = rcgen::CertificateParams::new(vec!["shop.test".to_string()]).expect("params");
    params.not_after = rcgen::date_time_ymd(2031, 5, 17);
    let signing = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&signing).expect("cert");
    let key = certified(cert.pem().as_bytes(), signing.serialize_pem().as_bytes()).expect("reads");
    assert_eq!(key.cert.len(), 1);
    // 2031-05-17T00:00:00Z
    assert_eq!(expiry(&key), 1_936_742_400);
}

#[test]
fn bad_files_are_refused_with_a_reason() {
    let (cert, key) = pem_for(&["shop.test"]);
    let (other_cert, other_key) = pem_for(&["other.test"]);
    let two_keys = format!("{key}{other_key}");
    let truncated = &cert[..cert.len() / 2];
    let not_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    let not_der = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    for (what, cert_pem, key_pem, expect) in [
        ("empty cert", "", key.as_str(), "no certificate"),
        ("key as cert", key.as_str(), key.as_str(), "no certificate"),
        (
            "binary cert",
            "\u{0}\u{1}\u{2}",
            key.as_str(),
            "no certificate",
        ),
        ("truncated cert", truncated, key.as_str(), "not PEM"),
        ("bad base64", not_base64, key.as_str(), "not PEM"),
        ("not DER", not_der, key.as_str(), "cannot be read"),
        ("empty key", cert.as_str(), "", "no private key"),
        (
            "cert as key",
            cert.as_str(),
            cert.as_str(),
            "no private key",
        ),
        (
            "two keys",
            cert.as_str(),
            two_keys.as_str(),
            "more than one",
        ),
        (
            "other key",
            cert.as_str(),
            other_key.as_str(),
            "cannot be used",
        ),
        (
            "other cert",
            other_cert.as_str(),
            key.as_str(),
            "cannot be used",
        ),
    ] {
        let err = certified(cert_pem.as_bytes(), key_pem.as_bytes())
            .map(|_| ())
            .expect_err(what);
        assert!(err.contains(expect), "{what}: {err}");
    }
}

#[test]
fn the_certificate_is_chosen_by_the_name_asked_for() {
    let pairs = [
        pem_for(&["shop.test"]),
        pem_for(&["*.tickets.test"]),
        pem_for(&["other.test", "www.other.test"]),
    ];
    let certs = serving(&pairs);
    for (name, index) in [
        (Some("shop.test"), 0),
        (Some("SHOP.TEST"), 0),
        (Some("a.tickets.test"), 1),
        (Some("www.other.test"), 2),
        (Some("other.test"), 2),
        // No certificate is for these: the first one.
        (Some("tickets.test"), 0),
        (Some("a.b.tickets.test"), 0),
        (Some("unknown.test"), 0),
        (Some("not a name"), 0),
        (Some(""), 0),
        (None, 0),
    ] {
        assert_eq!(chosen(&certs, name, &pairs), index, "{name:?}");
    }
}

#[test]
fn a_replacement_is_served_from_the_next_handshake() {
    let first = [pem_for(&["shop.test"])];
    let second = [pem_for(&["shop.test"])];
    let certs = serving(&first);
    assert_eq!(chosen(&certs, Some("shop.test"), &first), 0);
    let before = certs.choose(Some("shop.test")).expect("cert");
    certs.replace(loaded(&second));
    assert_eq!(chosen(&certs, Some("shop.test"), &second), 0);
    // A connection that already has the old certificate keeps it.
    assert_eq!(before.cert.len(), 1);
}

#[test]
fn files_are_read_with_their_paths_in_the_problems() {
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = pem_for(&["shop.test"]);
    std::fs::write(dir.path().join("a.pem"), &cert).expect("write");
    std::fs::write(dir.path().join("a.key"), &key).expect("write");
    std::fs::write(dir.path().join("big.pem"), vec![b'A'; MAX_PEM as usize + 1]).expect("write");
    let files = |cert: &str, key: &str| CertFiles {
        cert: dir.path().join(cert),
        key: dir.path().join(key),
    };
    let good = TlsConfig {
        certs: vec![files("a.pem", "a.key")],
    };
    assert!(Loaded::read(&good).is_ok());
    let bad = TlsConfig {
        certs: vec![
            files("a.pem", "a.key"),
            files("missing.pem", "a.key"),
            files("big.pem", "a.key"),
            files("a.pem", "a.pem"),
        ],
    };
    let problems = Loaded::read(&bad).expect_err("bad entries");
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["server.tls[1]", "server.tls[2]", "server.tls[3]"]);
    assert!(
        problems[0].message.contains("missing.pem"),
        "{}",
        problems[0]
    );
    assert!(problems[1].message.contains("at most"), "{}", problems[1]);
    assert!(
        problems[2].message.contains("no private key"),
        "{}",
        problems[2]
    );
}

proptest! {
    /// No bytes in either file make the reader panic.
    #[test]
    fn reading_never_panics(cert in proptest::collection::vec(any::<u8>(), 0..512),
                            key in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = certified(&cert, &key);
        let mut framed = b"-----BEGIN CERTIFICATE-----\n".to_vec();
        framed.extend_from_slice(&cert);
        framed.extend_from_slice(b"\n-----END CERTIFICATE-----\n");
        let _ = certified(&framed, &key);
    }
}
