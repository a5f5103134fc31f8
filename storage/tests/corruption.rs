//! Flipped bytes in every kind of file (tables, manifest, WAL): reopening and
//! reading everything either fails with an error naming the file and an
//! offset, or returns the correct value. Never a panic, never a wrong value.
//!
//! A pristine engine directory is built once (tables in several levels, a
//! manifest, a WAL holding unflushed writes); each trial copies it, flips a
//! few seeded random bytes in one file, and reads every key and a full scan.
//! WAL flips stay before the last record (a damaged last record is a torn
//! tail and is legitimately cut off). `RINGKV_SEED=<n>` picks another seed.

use rand::{Rng, SeedableRng};
use ringkv_storage::engine::{Durability, Engine, Options, ScanRange};
use ringkv_storage::{Error, Version};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const KEYS: u64 = 600;
const TRIALS_PER_KIND: usize = 25;
/// Size of the last WAL record's value; flips stay clear of it.
const TAIL_VALUE_SIZE: usize = 8 * 1024;
/// Bytes before the tail value that may belong to its record (frame and entry headers, key).
const TAIL_RECORD_HEADER_MARGIN: usize = 256;

fn options() -> Options {
    Options {
        durability: Durability::Sync,
        memtable_size: 16 * 1024,
        wal_segment_size: 256 * 1024,
        level0_trigger: 3,
        level1_size: 32 * 1024,
        level_size_ratio: 4,
        table_size_target: 16 * 1024,
        compaction_rate_bytes_per_sec: 0,
        ..Options::default()
    }
}

fn key(n: u64) -> Vec<u8> {
    format!("key{n:05}").into_bytes()
}

fn value(n: u64, round: u64) -> Vec<u8> {
    let mut v = format!("value-{n}-{round}-").into_bytes();
    v.resize(40 + (n % 60) as usize, b'a' + (round % 26) as u8);
    v
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Table,
    Manifest,
    Wal,
}

/// Builds the pristine directory; returns the expected live value per key.
async fn build(dir: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let engine = Engine::open(dir, options()).await.expect("open pristine");
    let mut expected = BTreeMap::new();
    let mut hlc = 1u64;
    for round in 0..3u64 {
        for n in 0..KEYS {
            if (n + round) % 7 == 0 {
                engine
                    .delete(&key(n), Version { hlc, node: 1 })
                    .await
                    .expect("delete");
                expected.remove(&key(n));
            } else {
                engine
                    .put(&key(n), &value(n, round), Version { hlc, node: 1 }, 0)
                    .await
                    .expect("put");
                expected.insert(key(n), value(n, round));
            }
            hlc += 1;
        }
        engine.flush().await.expect("flush");
    }
    engine.compact().await.expect("compact");
    // Unflushed writes that only the WAL holds, then a big last record.
    for n in (0..KEYS).step_by(5) {
        engine
            .put(&key(n), &value(n, 9), Version { hlc, node: 1 }, 0)
            .await
            .expect("wal put");
        expected.insert(key(n), value(n, 9));
        hlc += 1;
    }
    let tail = vec![b't'; TAIL_VALUE_SIZE];
    engine
        .put(b"zz-tail", &tail, Version { hlc, node: 1 }, 0)
        .await
        .expect("tail put");
    expected.insert(b"zz-tail".to_vec(), tail);
    engine.close().await.expect("close pristine");
    expected
}

fn files_of(dir: &Path, kind: Kind) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut visit = |p: PathBuf| {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let in_wal = p
            .parent()
            .and_then(|d| d.file_name())
            .is_some_and(|d| d == "wal");
        let k = if in_wal {
            Some(Kind::Wal)
        } else if name.ends_with(".sst") {
            Some(Kind::Table)
        } else if name.starts_with('.') || name.ends_with(".tmp") {
            None
        } else {
            Some(Kind::Manifest)
        };
        if k == Some(kind) && std::fs::metadata(&p).is_ok_and(|m| m.is_file() && m.len() > 0) {
            out.push(p);
        }
    };
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let p = entry.expect("dir entry").path();
        if p.is_dir() {
            for e in std::fs::read_dir(&p).expect("read subdir") {
                visit(e.expect("dir entry").path());
            }
        } else {
            visit(p);
        }
    }
    out.sort();
    if kind == Kind::Wal {
        // Only the live segment holds the records; spares hold stale bytes.
        out.retain(|p| tail_record_start(&std::fs::read(p).unwrap_or_default()).is_some());
    }
    out
}

/// Where the record holding the tail value starts, at the earliest: the tail
/// value is a long run of b't' and its headers and key sit just before it.
fn tail_record_start(bytes: &[u8]) -> Option<usize> {
    let run = [b't'; 1024];
    let at = bytes.windows(run.len()).position(|w| w == run)?;
    Some(at.saturating_sub(TAIL_RECORD_HEADER_MARGIN))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let p = entry.expect("entry").path();
        let target = to.join(p.file_name().expect("name"));
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).expect("copy");
        }
    }
}

/// Flips 1..=3 bytes of `file`; for the WAL only before the last record.
/// Returns the offsets flipped.
fn flip(file: &Path, kind: Kind, rng: &mut rand::rngs::StdRng) -> Vec<usize> {
    let mut bytes = std::fs::read(file).expect("read file");
    let mut end = bytes.len();
    if kind == Kind::Wal {
        end = tail_record_start(&bytes).unwrap_or(0);
    }
    if end == 0 {
        return Vec::new();
    }
    let mut offsets = Vec::new();
    for _ in 0..rng.gen_range(1..=3) {
        let at = rng.gen_range(0..end);
        bytes[at] ^= 1 << rng.gen_range(0..8);
        offsets.push(at);
    }
    std::fs::write(file, &bytes).expect("write file");
    offsets
}

/// The rule: an error must name the file and an offset.
fn check_error(e: &Error, file: &Path, context: &str) {
    let msg = e.to_string();
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    assert!(
        msg.contains(name) && msg.contains("offset"),
        "{context}: error does not name the file {name} and an offset: {msg}"
    );
}

async fn trial(
    dir: &Path,
    file: &Path,
    expected: &BTreeMap<Vec<u8>, Vec<u8>>,
    context: &str,
) -> (usize, usize) {
    let engine = match Engine::open(dir, options()).await {
        Ok(e) => e,
        Err(e) => {
            check_error(&e, file, context);
            return (0, 1);
        }
    };
    let (mut ok, mut errors) = (0, 0);
    for n in 0..KEYS {
        let k = key(n);
        match engine.get(&k, 0).await {
            Ok(got) => {
                assert_eq!(
                    got.and_then(|r| r.value),
                    expected.get(&k).cloned(),
                    "{context}: wrong value for key {n}"
                );
                ok += 1;
            }
            Err(e) => {
                check_error(&e, file, context);
                errors += 1;
            }
        }
    }
    match engine
        .scan(ScanRange::Prefix(Vec::new()), usize::MAX, 0)
        .await
    {
        Ok(entries) => {
            let got: BTreeMap<Vec<u8>, Vec<u8>> = entries
                .into_iter()
                .filter_map(|e| Some((e.key, e.record.value?)))
                .collect();
            assert!(
                got == *expected,
                "{context}: a full scan returned wrong entries"
            );
        }
        Err(e) => check_error(&e, file, context),
    }
    let _ = engine.close().await;
    (ok, errors)
}

#[test]
fn flipped_bytes_in_any_file_give_errors_naming_it_or_correct_values() {
    let seed: u64 = std::env::var("RINGKV_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xC022_0001);
    eprintln!("corruption test: RINGKV_SEED={seed}");
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let root_path = root.path().to_path_buf();
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("executor")
        .run(async move {
            let pristine = root_path.join("pristine");
            let expected = build(&pristine).await;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            for kind in [Kind::Table, Kind::Manifest, Kind::Wal] {
                let files = files_of(&pristine, kind);
                assert!(!files.is_empty(), "the pristine directory has no {kind:?} file");
                let (mut ok, mut errors) = (0, 0);
                for t in 0..TRIALS_PER_KIND {
                    let dir = root_path.join(format!("{kind:?}-{t}"));
                    copy_dir(&pristine, &dir);
                    let pick = &files[rng.gen_range(0..files.len())];
                    let target = dir.join(pick.strip_prefix(&pristine).expect("inside pristine"));
                    let offsets = flip(&target, kind, &mut rng);
                    let context = format!("seed {seed}, {kind:?} trial {t}, {} flipped at {offsets:?}", target.display());
                    let (o, e) = trial(&dir, &target, &expected, &context).await;
                    ok += o;
                    errors += e;
                    std::fs::remove_dir_all(&dir).expect("cleanup");
                }
                eprintln!("{kind:?}: {ok} correct reads, {errors} reported errors over {TRIALS_PER_KIND} trials");
            }
        });
}

/// A damaged last manifest record looks like a torn write and is cut, which
/// rewinds the manifest's state. The tables and WAL segments that record
/// accounted for must survive: the open either fails naming the manifest
/// (the files no longer match the older state) and deletes nothing, or
/// succeeds with every value intact. With the manifest restored, everything
/// reads back either way.
#[test]
fn a_damaged_last_manifest_record_never_costs_a_table() {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let root_path = root.path().to_path_buf();
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("executor")
        .run(async move {
            let pristine = root_path.join("pristine");
            let expected = build(&pristine).await;
            let damaged = root_path.join("damaged");
            copy_dir(&pristine, &damaged);
            let manifests = files_of(&damaged, Kind::Manifest);
            let manifest = manifests
                .iter()
                .find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("MANIFEST-"))
                })
                .expect("a manifest log")
                .clone();
            let original = std::fs::read(&manifest).expect("read manifest");
            let mut bytes = original.clone();
            let last = bytes.iter().rposition(|&b| b != 0).expect("a record");
            bytes[last] ^= 0x01;
            std::fs::write(&manifest, &bytes).expect("write manifest");
            let tables_before = files_of(&damaged, Kind::Table);
            assert!(
                !tables_before.is_empty(),
                "the pristine directory has tables"
            );

            let context = "damaged last manifest record";
            let (ok, errors) = trial(&damaged, &manifest, &expected, context).await;
            if errors > 0 {
                assert_eq!(
                    files_of(&damaged, Kind::Table),
                    tables_before,
                    "{context}: a failed open deleted tables"
                );
            } else {
                assert_eq!(ok, KEYS as usize, "{context}: every key read back");
            }

            std::fs::write(&manifest, &original).expect("restore manifest");
            let (ok, errors) = trial(&damaged, &manifest, &expected, "restored manifest").await;
            assert_eq!(
                (ok, errors),
                (KEYS as usize, 0),
                "restored: every key reads back"
            );
        });
}
