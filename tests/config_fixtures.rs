//! Config fixtures: every shipped config and every valid fixture loads; every invalid fixture
//! fails with each message its `# expect:` lines name.

use std::path::{Path, PathBuf};

fn toml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn shipped_and_valid_configs_load() {
    let files: Vec<PathBuf> = toml_files("conf")
        .into_iter()
        .chain(toml_files("tests/fixtures/valid"))
        .collect();
    assert!(
        files.len() >= 4,
        "expected conf/ and valid fixtures, found {files:?}"
    );
    for file in files {
        if let Err(e) = usher::config::load(&file) {
            panic!("{} should load:\n{e}", file.display());
        }
    }
}

#[test]
fn invalid_configs_fail_for_the_expected_reasons() {
    let files = toml_files("tests/fixtures/invalid");
    assert!(
        files.len() >= 10,
        "expected the invalid fixtures, found {}",
        files.len()
    );
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable fixture");
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` line",
            file.display()
        );
        let problems: Vec<String> = match usher::config::load(&file) {
            Ok(_) => panic!("{} should be rejected", file.display()),
            Err(e) => e.problems().iter().map(ToString::to_string).collect(),
        };
        for want in expected {
            assert!(
                problems.iter().any(|p| p.starts_with(want)),
                "{}: expected a problem starting with {want:?}, got {problems:#?}",
                file.display()
            );
        }
    }
}
