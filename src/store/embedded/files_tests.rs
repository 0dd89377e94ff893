//! The embedded store's files: torn tails against damage, checksums on every record kind,
//! generations, the old format, the directory lock, snapshots under concurrent writes and cut
//! short at every step, failed appends, and arbitrary bytes (never a panic).

use super::*;
use crate::admission::bucket_of;
use crate::store::contract::commit;
use proptest::prelude::*;
use std::fs;

const NOW: u64 = 1_800_000_000_000;

fn key(rank: u64, visitor: u128) -> QueueKey {
    QueueKey {
        rank,
        visitor: VisitorId(visitor),
    }
}

/// Everything the store holds, in a comparable form (queue entries without their seen times,
/// which a restart resets).
type Fingerprint = Vec<(String, Option<ZoneState>, Vec<QueueKey>, Slots)>;

fn fingerprint(store: &EmbeddedStore) -> Fingerprint {
    let mut zones: Vec<_> = store
        .zones
        .iter()
        .map(|e| {
            let data = lock(e.value());
            (
                e.key().to_string(),
                data.state.clone(),
                data.queue.keys.iter().copied().collect::<Vec<_>>(),
                data.slots.clone(),
            )
        })
        // A zone only ever read (never written) is not in the files; it holds nothing.
        .filter(|(_, state, keys, slots)| {
            state.is_some() || !keys.is_empty() || *slots != Slots::default()
        })
        .collect();
    zones.sort_by(|a, b| a.0.cmp(&b.0));
    zones
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Writes every record kind: a snapshot holding a tick, joins and slots, then a log holding a
/// join, a tick and slot changes. Returns the state.
fn every_record_kind(dir: &Path) -> Fingerprint {
    let store = EmbeddedStore::open(dir, NOW).expect("open");
    block_on(async {
        for k in [key(NOW - 3, 7), key(NOW - 2, 8), key(NOW - 1, 9)] {
            store.touch("z", k, NOW).await.expect("touch");
        }
        assert!(commit(&store, "z", None, &[key(NOW - 3, 7)], NOW).await);
        store.snapshot().expect("snapshot");
        store.touch("z", key(NOW, 10), NOW).await.expect("touch");
        assert!(commit(&store, "z", Some(1), &[key(NOW - 2, 8)], NOW + 1_000).await);
        let to = bucket_of(NOW + 60_000);
        store
            .claim("z", VisitorId(7), to, NOW + 1_000)
            .await
            .expect("claim");
        store.touch("y", key(NOW, 11), NOW).await.expect("touch");
    });
    fingerprint(&store)
}

/// The start offset of every line of `path`.
fn line_starts(path: &Path) -> Vec<(u64, usize)> {
    let bytes = fs::read(path).expect("read");
    let mut starts = Vec::new();
    let mut at = 0;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        starts.push((at as u64, line.len()));
        at += line.len();
    }
    starts
}

fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().expect("tempdir");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            fs::copy(entry.path(), to.path().join(entry.file_name())).expect("copy");
        }
    }
    to
}

fn append(path: &Path, bytes: &[u8]) {
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open");
    std::io::Write::write_all(&mut file, bytes).expect("append");
}

fn assert_damaged(result: Result<EmbeddedStore, StoreError>, file: &Path, offset: u64) {
    match result {
        Err(StoreError::Damaged {
            file: f, offset: o, ..
        }) => assert_eq!((f.as_path(), o), (file, offset)),
        Err(other) => panic!(
            "expected damage at {}:{offset}, got {other}",
            file.display()
        ),
        Ok(_) => panic!(
            "expected damage at {}:{offset}, but it opened",
            file.display()
        ),
    }
}

/// A file's bytes, and every other file's, are unchanged.
fn snapshot_of_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != LOCK_FILE))
        .map(|p| {
            let bytes = fs::read(&p).expect("read");
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_torn_tail_is_cut_off_and_every_complete_record_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = every_record_kind(dir.path());
    let log = dir.path().join("wal-2.jsonl");
    let last_record = {
        let starts = line_starts(&log);
        let (at, len) = starts[starts.len() - 1];
        fs::read(&log).expect("read")[at as usize..at as usize + len].to_vec()
    };
    let tails: [(&str, Vec<u8>); 4] = [
        (
            "half a record",
            last_record[..last_record.len() / 2].to_vec(),
        ),
        (
            "a record without its newline",
            last_record[..last_record.len() - 1].to_vec(),
        ),
        ("a run of NUL bytes", vec![0; 4096]),
        (
            "a few bytes then NULs",
            [&last_record[..5], &[0u8; 100][..]].concat(),
        ),
    ];
    for (what, tail) in tails {
        let copy = copy_dir(dir.path());
        let torn = copy.path().join("wal-2.jsonl");
        append(&torn, &tail);
        let store = EmbeddedStore::open(copy.path(), NOW).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(fingerprint(&store), expected, "{what}");
        assert!(!torn.exists(), "{what}: the log was folded into a snapshot");
    }
}

#[test]
fn a_bad_checksum_anywhere_refuses_with_its_offset_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    every_record_kind(dir.path());
    let mut checked = 0;
    for name in ["snapshot.jsonl", "wal-2.jsonl"] {
        for (at, len) in line_starts(&dir.path().join(name)) {
            // One bit of the JSON, of the checksum, and of the space between.
            for offset in [
                at as usize + 9 + (len - 10) / 2,
                at as usize + 3,
                at as usize + 8,
            ] {
                let copy = copy_dir(dir.path());
                let file = copy.path().join(name);
                let mut bytes = fs::read(&file).expect("read");
                bytes[offset] ^= 0x04;
                fs::write(&file, &bytes).expect("write");
                let before = snapshot_of_files(copy.path());
                assert_damaged(EmbeddedStore::open(copy.path(), NOW), &file, at);
                assert_eq!(snapshot_of_files(copy.path()), before, "{name}:{offset}");
                checked += 1;
            }
        }
    }
    // Header, tick, 2 joins, slots, trailer; header, join, tick, slot, join.
    assert_eq!(checked, 3 * 11, "every line of both files");
}

#[test]
fn a_snapshot_cut_at_any_line_boundary_or_inside_a_line_is_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    every_record_kind(dir.path());
    let snapshot = dir.path().join("snapshot.jsonl");
    let size = fs::metadata(&snapshot).expect("size").len();
    for (at, len) in line_starts(&snapshot) {
        for cut in [at, at + len as u64 / 2] {
            if cut == 0 {
                continue;
            }
            let copy = copy_dir(dir.path());
            let file = copy.path().join("snapshot.jsonl");
            fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .and_then(|f| f.set_len(cut))
                .expect("cut");
            let result = EmbeddedStore::open(copy.path(), NOW);
            assert!(
                matches!(&result, Err(StoreError::Damaged { file: f, .. }) if *f == file),
                "cut at {cut} of {size}: {:?}",
                result.err()
            );
        }
    }
}

#[test]
fn a_missing_log_or_snapshot_is_damage_and_both_missing_is_a_new_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    every_record_kind(dir.path());
    let copy = copy_dir(dir.path());
    fs::remove_file(copy.path().join("wal-2.jsonl")).expect("rm");
    assert_damaged(
        EmbeddedStore::open(copy.path(), NOW),
        &copy.path().join("wal-2.jsonl"),
        0,
    );
    let copy = copy_dir(dir.path());
    fs::remove_file(copy.path().join("snapshot.jsonl")).expect("rm");
    assert_damaged(
        EmbeddedStore::open(copy.path(), NOW),
        &copy.path().join("snapshot.jsonl"),
        0,
    );
    // A log of the wrong generation (as if another store's log were copied in).
    let copy = copy_dir(dir.path());
    fs::rename(
        copy.path().join("wal-2.jsonl"),
        copy.path().join("wal-3.jsonl"),
    )
    .expect("mv");
    assert_damaged(
        EmbeddedStore::open(copy.path(), NOW),
        &copy.path().join("wal-2.jsonl"),
        0,
    );
    let copy = copy_dir(dir.path());
    fs::copy(
        copy.path().join("wal-2.jsonl"),
        copy.path().join("wal-3.jsonl"),
    )
    .expect("cp");
    assert_damaged(
        EmbeddedStore::open(copy.path(), NOW),
        &copy.path().join("wal-3.jsonl"),
        0,
    );
    let copy = copy_dir(dir.path());
    fs::remove_file(copy.path().join("wal-2.jsonl")).expect("rm");
    fs::remove_file(copy.path().join("snapshot.jsonl")).expect("rm");
    let store = EmbeddedStore::open(copy.path(), NOW).expect("a new store");
    assert!(fingerprint(&store).is_empty());
}

#[test]
fn old_format_files_are_refused_and_repair_converts_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old_snapshot = "{\"join\":{\"zone\":\"z\",\"key\":{\"rank\":5,\"visitor\":\"00000000000000000000000000000007\"}}}\n";
    // What format 1 wrote for a join, checked against this usher's own encoding.
    let record: WalRecord = serde_json::from_str(old_snapshot.trim()).expect("a format 1 record");
    let mut encoded = serde_json::to_string(&record).expect("json");
    encoded.push('\n');
    assert_eq!(encoded, old_snapshot);
    fs::write(dir.path().join("snapshot.jsonl"), old_snapshot).expect("write");
    fs::write(
        dir.path().join("wal.jsonl"),
        old_snapshot.replace("\"rank\":5", "\"rank\":6") + "{\"torn",
    )
    .expect("write");
    match EmbeddedStore::open(dir.path(), NOW) {
        Err(e @ StoreError::Unsupported { .. }) => {
            let message = e.to_string();
            assert!(message.contains("format 1"), "{message}");
            assert!(message.contains("usher store repair"), "{message}");
        }
        Err(other) => panic!("expected a refusal of format 1, got {other}"),
        Ok(_) => panic!("format 1 opened"),
    }
    let repaired = repair(dir.path(), NOW).expect("repair");
    assert_eq!(repaired.kept_records, 2);
    let aside = repaired.moved_to.expect("moved aside");
    assert!(aside.join("snapshot.jsonl").exists() && aside.join("wal.jsonl").exists());
    assert!(!dir.path().join("wal.jsonl").exists());
    let lost: Vec<_> = repaired
        .files
        .iter()
        .map(|f| (f.lost_records, f.lost_bytes))
        .collect();
    assert_eq!(lost, vec![(0, 0), (1, 6)]);
    let store = EmbeddedStore::open(dir.path(), NOW).expect("open after repair");
    assert_eq!(store.queue_len("z"), 2);
}

#[test]
fn an_unknown_format_version_is_refused_and_not_repaired() {
    let dir = tempfile::tempdir().expect("tempdir");
    every_record_kind(dir.path());
    let snapshot = dir.path().join("snapshot.jsonl");
    let bytes = fs::read(&snapshot).expect("read");
    let newline = bytes.iter().position(|b| *b == b'\n').expect("header");
    let header = br#"{"usher_store":3,"file":"snapshot","generation":2}"#;
    let line = format!(
        "{:08x} {}\n",
        crc32fast::hash(header),
        String::from_utf8_lossy(header)
    );
    fs::write(&snapshot, [line.as_bytes(), &bytes[newline + 1..]].concat()).expect("write");
    let refusal = EmbeddedStore::open(dir.path(), NOW).err().expect("refused");
    assert!(
        matches!(&refusal, StoreError::Unsupported { what, .. } if what.contains("format 3")),
        "{refusal}"
    );
    assert!(matches!(
        repair(dir.path(), NOW),
        Err(StoreError::Unsupported { .. })
    ));
}

#[test]
fn repair_keeps_the_longest_valid_prefix_and_moves_files_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    every_record_kind(dir.path());
    let log = dir.path().join("wal-2.jsonl");
    let starts = line_starts(&log);
    // Damage the third record of the log: the header and two records stay.
    let (at, _) = starts[3];
    let mut bytes = fs::read(&log).expect("read");
    bytes[at as usize + 20] ^= 0x01;
    fs::write(&log, &bytes).expect("write");
    let verified = verify(dir.path()).expect("verify");
    assert!(!verified.would_open());
    let repaired = repair(dir.path(), NOW).expect("repair");
    let log_report = repaired
        .files
        .iter()
        .find(|f| f.path == log)
        .expect("the log is reported");
    assert_eq!(log_report.records, 2);
    assert_eq!(log_report.lost_records, (starts.len() - 3) as u64);
    assert_eq!(log_report.lost_bytes, bytes.len() as u64 - at);
    let aside = repaired.moved_to.expect("moved aside");
    assert_eq!(
        fs::read(aside.join("wal-2.jsonl")).expect("kept"),
        bytes,
        "never deleted"
    );
    assert!(verify(dir.path()).expect("verify").would_open());
    let store = EmbeddedStore::open(dir.path(), NOW).expect("open after repair");
    // The snapshot's state plus the log's join and tick.
    let state = block_on(store.load("z")).expect("load").expect("state");
    assert_eq!(state.version, 2);
    assert_eq!(
        block_on(store.active("z", NOW + 1_000)).expect("active"),
        2,
        "both reservations; the claim was lost"
    );
}

#[test]
fn a_second_open_of_one_directory_is_refused_naming_this_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = EmbeddedStore::open(dir.path(), NOW).expect("open");
    match EmbeddedStore::open(dir.path(), NOW) {
        Err(e @ StoreError::Locked { .. }) => {
            let StoreError::Locked { pid, .. } = &e else {
                unreachable!()
            };
            assert_eq!(*pid, Some(std::process::id()));
            let message = e.to_string();
            assert!(
                message.contains(&format!("usher PID {}", std::process::id())),
                "{message}"
            );
            assert!(message.contains("usher upgrade --config"), "{message}");
        }
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("two stores opened one directory"),
    }
    assert!(matches!(verify(dir.path()), Err(StoreError::Locked { .. })));
    assert!(matches!(
        repair(dir.path(), NOW),
        Err(StoreError::Locked { .. })
    ));
}

#[test]
fn waiting_for_a_held_directory_gives_up_at_its_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _held = EmbeddedStore::open(dir.path(), NOW).expect("open");
    let started = std::time::Instant::now();
    let waited = EmbeddedStore::open_waiting(dir.path(), NOW, Duration::from_millis(100));
    assert!(
        matches!(waited, Err(StoreError::Locked { pid: Some(pid), .. }) if pid == std::process::id())
    );
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[test]
fn close_hands_the_directory_over_with_everything_in_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    every_record_kind(dir.path());
    let first = EmbeddedStore::open(dir.path(), NOW).expect("open");
    assert!(first.healthy());
    let waiting = {
        let dir = dir.path().to_path_buf();
        std::thread::spawn(move || EmbeddedStore::open_waiting(&dir, NOW, Duration::from_secs(30)))
    };
    block_on(first.touch("z", key(NOW + 5, 12), NOW)).expect("touch");
    let expected = fingerprint(&first);
    first.close().expect("close");
    assert!(!first.healthy());
    first
        .snapshot()
        .expect("a snapshot after close does nothing");
    assert!(matches!(
        block_on(first.touch("z", key(NOW + 6, 13), NOW)),
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        block_on(first.load("z")),
        Err(StoreError::Unavailable(_))
    ));
    // The first store is still alive, and the successor has the directory.
    let second = waiting
        .join()
        .expect("thread")
        .expect("open after the hand-over");
    assert_eq!(fingerprint(&second), expected);
    drop(first);
}

#[test]
fn a_failed_append_leaves_no_partial_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path(), NOW).expect("open");
    let log = dir.path().join("wal-1.jsonl");
    block_on(store.touch("z", key(1, 1), NOW)).expect("touch");
    let len = fs::metadata(&log).expect("log").len();
    // The write fails halfway and the cut-back works: nothing is left.
    lock(&store.wal).log.as_mut().expect("log").fail_write_after = Some(20);
    assert!(matches!(
        block_on(store.touch("z", key(2, 2), NOW)),
        Err(StoreError::Io(_))
    ));
    assert_eq!(fs::metadata(&log).expect("log").len(), len);
    assert!(!store.healthy(), "not ready until an append goes through");
    block_on(store.touch("z", key(6, 6), NOW)).expect("the next append works");
    assert!(store.healthy());
    let len = fs::metadata(&log).expect("log").len();
    // The write fails and so do two cut-backs: the log refuses appends until one works.
    {
        let mut wal = lock(&store.wal);
        let log = wal.log.as_mut().expect("log");
        log.fail_write_after = Some(20);
        log.failed_cuts = 2;
    }
    assert!(block_on(store.touch("z", key(3, 3), NOW)).is_err());
    assert!(!store.healthy(), "a partial record is stuck at the end");
    assert_eq!(fs::metadata(&log).expect("log").len(), len + 20);
    assert!(
        block_on(store.touch("z", key(4, 4), NOW)).is_err(),
        "refused: cannot cut"
    );
    assert_eq!(fs::metadata(&log).expect("log").len(), len + 20);
    block_on(store.touch("z", key(5, 5), NOW)).expect("the cut works first, then the append");
    assert!(store.healthy());
    drop(store);
    let store = EmbeddedStore::open(dir.path(), NOW).expect("reopen");
    assert_eq!(
        fingerprint(&store)[0].2,
        vec![key(1, 1), key(5, 5), key(6, 6)],
        "exactly the acknowledged joins"
    );
}

#[test]
fn a_snapshot_under_concurrent_writes_reopens_to_the_state_in_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path(), NOW).expect("open"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    const WRITES: u64 = 5_000;
    let writers: Vec<_> = (0..3u128)
        .map(|w| {
            let store = store.clone();
            runtime.spawn(async move {
                let mut i = 0u64;
                let zone = format!("zone{w}");
                while i < WRITES {
                    i += 1;
                    store
                        .touch(&zone, key(NOW + i, w * 1_000_000 + u128::from(i)), NOW)
                        .await
                        .expect("touch");
                    if i % 50 == 0 {
                        let expected = store.load(&zone).await.expect("load").map(|s| s.version);
                        commit(&*store, &zone, expected, &[], NOW + i).await;
                    }
                    if i % 97 == 0 {
                        // Zones appear while snapshots run.
                        let extra = format!("extra{w}-{i}");
                        store.touch(&extra, key(NOW, 1), NOW).await.expect("touch");
                    }
                    tokio::task::yield_now().await;
                }
                i
            })
        })
        .collect();
    // Snapshots for as long as the writers write.
    let mut snapshots = 0;
    while snapshots < 3 || !writers.iter().all(|w| w.is_finished()) {
        store.snapshot().expect("snapshot");
        snapshots += 1;
    }
    let written: u64 = writers
        .into_iter()
        .map(|w| runtime.block_on(w).expect("writer"))
        .sum();
    assert_eq!(written, 3 * WRITES);
    let expected = fingerprint(&store);
    drop(store);
    let store = EmbeddedStore::open(dir.path(), NOW).expect("reopen");
    assert_eq!(fingerprint(&store), expected);
}

#[test]
fn a_snapshot_stopped_after_any_step_reopens_to_the_acknowledged_state() {
    for steps in [
        vec![Step::NewLog],
        vec![Step::Switch],
        vec![Step::Rename],
        vec![Step::Switch, Step::Switch],
        vec![Step::Switch, Step::NewLog],
        vec![Step::Switch, Step::Rename],
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        every_record_kind(dir.path());
        let store = EmbeddedStore::open(dir.path(), NOW).expect("open");
        let mut rank = NOW;
        for step in &steps {
            *lock(&store.crash_after) = Some(*step);
            rank += 1;
            block_on(store.touch("z", key(rank, 100), NOW)).expect("touch before");
            assert!(store.snapshot().is_err(), "{steps:?}");
            assert!(!store.healthy());
            rank += 1;
            block_on(store.touch("z", key(rank, 100), NOW)).expect("touch after");
        }
        let expected = fingerprint(&store);
        drop(store);
        let store =
            EmbeddedStore::open(dir.path(), NOW).unwrap_or_else(|e| panic!("{steps:?}: {e}"));
        assert_eq!(fingerprint(&store), expected, "{steps:?}");
        assert!(store.healthy());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Arbitrary bytes as a snapshot and a log: open refuses or opens, never panics.
    #[test]
    fn arbitrary_bytes_never_panic(
        snapshot in proptest::collection::vec(any::<u8>(), 0..400),
        log in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let _ = format::scan(&snapshot, FileKind::Snapshot);
        let _ = format::scan(&log, FileKind::Log);
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("snapshot.jsonl"), &snapshot).expect("write");
        fs::write(dir.path().join("wal-1.jsonl"), &log).expect("write");
        let _ = EmbeddedStore::open(dir.path(), NOW);
        let _ = verify(dir.path());
    }

    /// A real store with bytes flipped and the files cut anywhere: never a panic, and if it
    /// opens, it holds no more than was written.
    #[test]
    fn damaged_real_files_never_panic(
        flips in proptest::collection::vec((any::<bool>(), any::<prop::sample::Index>(), 1u8..), 0..4),
        cut in proptest::option::of((any::<bool>(), any::<prop::sample::Index>())),
    ) {
        let dir = real_store();
        for (in_log, at, bits) in flips {
            let file = dir.path().join(if in_log { "wal-2.jsonl" } else { "snapshot.jsonl" });
            let mut bytes = fs::read(&file).expect("read");
            let i = at.index(bytes.len());
            bytes[i] ^= bits;
            fs::write(&file, &bytes).expect("write");
        }
        if let Some((in_log, at)) = cut {
            let file = dir.path().join(if in_log { "wal-2.jsonl" } else { "snapshot.jsonl" });
            let len = fs::metadata(&file).expect("len").len() as usize;
            fs::OpenOptions::new().write(true).open(&file)
                .and_then(|f| f.set_len(at.index(len + 1) as u64)).expect("cut");
        }
        if let Ok(store) = EmbeddedStore::open(dir.path(), NOW) {
            let z = fingerprint(&store).into_iter().find(|z| z.0 == "z");
            if let Some((_, _, keys, _)) = z {
                prop_assert!(keys.iter().all(|k| k.rank >= NOW - 3 && k.rank <= NOW));
            }
        }
    }
}

fn real_store() -> tempfile::TempDir {
    thread_local! {
        static TEMPLATE: tempfile::TempDir = {
            let dir = tempfile::tempdir().expect("tempdir");
            every_record_kind(dir.path());
            dir
        };
    }
    TEMPLATE.with(|t| copy_dir(t.path()))
}

#[test]
fn utc_stamps_are_civil_dates() {
    assert_eq!(utc_stamp(0), "19700101T000000Z");
    assert_eq!(utc_stamp(1_795_968_383_000), "20261129T160623Z");
    assert_eq!(utc_stamp(951_782_400_000), "20000229T000000Z");
}

#[test]
fn repair_of_a_damaged_snapshot_keeps_its_prefix_and_none_of_the_log_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    every_record_kind(dir.path());
    let snapshot = dir.path().join("snapshot.jsonl");
    let log = dir.path().join("wal-2.jsonl");
    let log_size = fs::metadata(&log).expect("log").len();
    // Header, tick, join, join, slots, trailer: damage the first join.
    let (at, _) = line_starts(&snapshot)[2];
    let mut bytes = fs::read(&snapshot).expect("read");
    bytes[at as usize + 30] ^= 0x01;
    fs::write(&snapshot, &bytes).expect("write");
    let repaired = repair(dir.path(), NOW).expect("repair");
    assert_eq!(repaired.kept_records, 1, "the tick");
    let lost: Vec<_> = repaired
        .files
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                f.lost_records,
                f.lost_bytes,
                f.note.is_some(),
            )
        })
        .collect();
    assert_eq!(
        lost,
        vec![
            (snapshot.clone(), 3, bytes.len() as u64 - at, false),
            (log.clone(), 4, log_size, true),
        ],
        "two joins and the slots (not the trailer); the whole log, which cannot be applied"
    );
    let store = EmbeddedStore::open(dir.path(), NOW).expect("open after repair");
    assert_eq!(
        block_on(store.load("z")).expect("load").map(|s| s.version),
        Some(1)
    );
    assert_eq!(store.queue_len("z"), 0);
}
