//! Manifest tests on real O_DIRECT files: round trip, reopen, snapshot switch,
//! torn tail, bit flip, CURRENT handling.

use rand::{Rng, SeedableRng};
use ringkv_storage::manifest::{
    Manifest, ManifestEdit, ManifestOptions, ManifestState, CURRENT_FILE_NAME,
};
use ringkv_storage::wal::record::{decode_frame, Decoded, MANIFEST_MAGIC};
use ringkv_storage::{Error, TableMeta, Version};
use std::path::{Path, PathBuf};

fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("executor")
        .run(fut)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir")
}

fn seed() -> u64 {
    let seed = std::env::var("MANIFEST_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("seed: {seed} (rerun with MANIFEST_TEST_SEED={seed})");
    seed
}

fn table(id: u64, level: u32, key_len: usize) -> TableMeta {
    TableMeta {
        id,
        level,
        size: 4096 * (id + 1),
        entry_count: id * 10,
        tombstone_count: id,
        smallest_key: vec![b'a'; key_len],
        largest_key: vec![b'z'; key_len],
        max_version: Version::new(id, 0, 3),
    }
}

/// Random edit groups valid against the evolving model.
fn random_edits(
    rng: &mut rand::rngs::StdRng,
    model: &mut ManifestState,
    next_id: &mut u64,
) -> Vec<ManifestEdit> {
    let mut edits = Vec::new();
    for _ in 0..rng.gen_range(1..4) {
        let edit = match rng.gen_range(0..4) {
            0 if !model.tables.is_empty() => {
                let t = &model.tables[rng.gen_range(0..model.tables.len())];
                if edits
                    .iter()
                    .any(|e| matches!(e, ManifestEdit::RemoveTable { id, .. } if *id == t.id))
                {
                    continue;
                }
                ManifestEdit::RemoveTable {
                    id: t.id,
                    level: t.level,
                }
            }
            1 => ManifestEdit::WalRetiredThrough(rng.gen_range(0..100)),
            _ => {
                *next_id += 1;
                ManifestEdit::AddTable(table(*next_id, rng.gen_range(0..5), rng.gen_range(0..200)))
            }
        };
        edits.push(edit);
    }
    // Keep the model with the manifest's own rules.
    for e in &edits {
        ringkv_storage::manifest::record::apply_edit(model, e).unwrap();
    }
    edits
}

fn sorted(mut s: ManifestState) -> ManifestState {
    s.tables.sort_by_key(|t| t.id);
    s
}

fn live_log(dir: &Path) -> (PathBuf, u64) {
    let current = std::fs::read(dir.join(CURRENT_FILE_NAME)).unwrap();
    let nl = current.iter().position(|&b| b == b'\n').unwrap();
    let name = std::str::from_utf8(&current[..nl]).unwrap().to_owned();
    let n = name.strip_prefix("MANIFEST-").unwrap().parse().unwrap();
    (dir.join(name), n)
}

/// Start offsets and unpadded ends of the records in a log file.
fn record_spans(bytes: &[u8], number: u64) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Decoded::Frame { payload, len, .. } =
        decode_frame(&bytes[pos..], MANIFEST_MAGIC, number, 1 << 26)
    {
        out.push((pos, pos + 32 + payload.len()));
        pos += len;
    }
    out
}

#[test]
fn manifest_round_trips_edits_across_reopens() {
    let dir = tempdir();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    run(async {
        let (mut m, state) = Manifest::open(dir.path()).await.unwrap();
        assert_eq!(state, ManifestState::default());
        let mut model = ManifestState::default();
        let mut next_id = 0;
        for round in 0..3 {
            for _ in 0..40 {
                let edits = random_edits(&mut rng, &mut model, &mut next_id);
                m.apply(&edits).await.unwrap();
                assert_eq!(sorted(m.state().clone()), sorted(model.clone()));
            }
            m.apply(&[ManifestEdit::NextFileId(1000 + round)])
                .await
                .unwrap();
            ringkv_storage::manifest::record::apply_edit(
                &mut model,
                &ManifestEdit::NextFileId(1000 + round),
            )
            .unwrap();
            m.close().await.unwrap();
            assert!(matches!(m.apply(&[]).await, Err(Error::Closed)));
            let (again, state) = Manifest::open(dir.path()).await.unwrap();
            assert_eq!(sorted(state), sorted(model.clone()));
            m = again;
        }
        assert_eq!(m.number(), 1, "no snapshot switch below the default size");
        m.close().await.unwrap();
    });
}

#[test]
fn manifest_switches_to_a_snapshot_when_the_log_grows() {
    let dir = tempdir();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    run(async {
        let opts = ManifestOptions {
            snapshot_size: 16 * 1024,
        };
        let (mut m, _) = Manifest::open_with(dir.path(), opts.clone()).await.unwrap();
        let mut model = ManifestState::default();
        let mut next_id = 0;
        for _ in 0..300 {
            let edits = random_edits(&mut rng, &mut model, &mut next_id);
            m.apply(&edits).await.unwrap();
        }
        let number = m.number();
        assert!(number > 1, "the log switched at least once");
        let (path, current) = live_log(dir.path());
        assert_eq!(current, number);
        let manifests: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("MANIFEST-"))
            .collect();
        assert_eq!(
            manifests,
            vec![path.file_name().unwrap().to_string_lossy().into_owned()]
        );
        m.close().await.unwrap();
        let (mut m, state) = Manifest::open_with(dir.path(), opts).await.unwrap();
        assert_eq!(sorted(state), sorted(model));
        m.close().await.unwrap();
    });
}

#[test]
fn torn_tail_of_the_manifest_is_cut_and_earlier_records_kept() {
    let dir = tempdir();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    run(async {
        let (mut m, _) = Manifest::open(dir.path()).await.unwrap();
        let mut model = ManifestState::default();
        let mut next_id = 0;
        // Enough records that the last one sits past the first page.
        while std::fs::metadata(live_log(dir.path()).0).unwrap().len() < 8192 {
            let edits = random_edits(&mut rng, &mut model, &mut next_id);
            m.apply(&edits).await.unwrap();
        }
        let last_edits = random_edits(&mut rng, &mut model, &mut next_id);
        let without_last = m.state().clone();
        m.apply(&last_edits).await.unwrap();
        m.close().await.unwrap();
        let (path, number) = live_log(dir.path());
        let original = std::fs::read(&path).unwrap();
        let spans = record_spans(&original, number);
        let (start, end) = *spans.last().unwrap();
        for cut in start..end {
            let mut torn = original.clone();
            let page_end = (cut / 4096 + 1) * 4096;
            torn[cut..page_end].fill(if cut % 2 == 0 { 0 } else { 0x5A });
            // A tear changes the byte at the cut (filling may rewrite equal bytes).
            torn[cut] = !original[cut];
            std::fs::write(&path, &torn).unwrap();
            let (mut m, state) = Manifest::open(dir.path())
                .await
                .unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            assert_eq!(sorted(state), sorted(without_last.clone()), "cut at {cut}");
            m.close().await.unwrap();
        }
        // After a cut, new records follow the last whole one.
        let (mut m, _) = Manifest::open(dir.path()).await.unwrap();
        let mut model = without_last;
        let edits = random_edits(&mut rng, &mut model, &mut next_id);
        m.apply(&edits).await.unwrap();
        m.close().await.unwrap();
        let (mut m, state) = Manifest::open(dir.path()).await.unwrap();
        assert_eq!(sorted(state), sorted(model));
        m.close().await.unwrap();
    });
}

#[test]
fn bit_flip_in_a_middle_manifest_record_is_corruption_naming_file_and_offset() {
    let dir = tempdir();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    run(async {
        let (mut m, _) = Manifest::open(dir.path()).await.unwrap();
        let mut model = ManifestState::default();
        let mut next_id = 0;
        for _ in 0..30 {
            let edits = random_edits(&mut rng, &mut model, &mut next_id);
            m.apply(&edits).await.unwrap();
        }
        m.close().await.unwrap();
        let (path, number) = live_log(dir.path());
        let original = std::fs::read(&path).unwrap();
        let spans = record_spans(&original, number);
        assert_eq!(spans.len(), 31);
        for victim in [0, 1, 15, 29] {
            let (start, end) = spans[victim];
            let at = rng.gen_range(start..end);
            let mut bad = original.clone();
            bad[at] ^= 1 << rng.gen_range(0..8);
            std::fs::write(&path, &bad).unwrap();
            match Manifest::open(dir.path()).await {
                Err(Error::Corruption {
                    file,
                    offset,
                    reason,
                }) => {
                    assert_eq!(file, path, "{reason}");
                    assert_eq!(offset, start as u64, "flip at {at}: {reason}");
                }
                Err(e) => panic!("flip at {at}: {e}"),
                Ok(_) => panic!("flip at {at} in record {victim} went unnoticed"),
            }
        }
    });
}

#[test]
fn a_damaged_or_missing_current_is_reported_not_ignored() {
    let dir = tempdir();
    run(async {
        let (mut m, _) = Manifest::open(dir.path()).await.unwrap();
        m.apply(&[ManifestEdit::AddTable(table(5, 0, 10))])
            .await
            .unwrap();
        m.close().await.unwrap();
        let current = dir.path().join(CURRENT_FILE_NAME);
        let good = std::fs::read(&current).unwrap();
        let mut bad = good.clone();
        bad[3] = b'#';
        std::fs::write(&current, &bad).unwrap();
        assert!(matches!(
            Manifest::open(dir.path()).await,
            Err(Error::Corruption { .. })
        ));
        std::fs::remove_file(&current).unwrap();
        assert!(matches!(
            Manifest::open(dir.path()).await,
            Err(Error::Corruption { .. })
        ));
        std::fs::write(&current, &good).unwrap();
        let (mut m, state) = Manifest::open(dir.path()).await.unwrap();
        assert_eq!(state.tables, vec![table(5, 0, 10)]);
        assert_eq!(state.next_file_id, 6);
        m.close().await.unwrap();
    });
}

#[test]
fn an_interrupted_first_creation_is_cleaned_up() {
    let dir = tempdir();
    run(async {
        let (mut m, _) = Manifest::open(dir.path()).await.unwrap();
        m.close().await.unwrap();
        // Crash between writing MANIFEST-1 and CURRENT, plus a torn tmp file.
        std::fs::remove_file(dir.path().join(CURRENT_FILE_NAME)).unwrap();
        std::fs::write(
            dir.path().join("MANIFEST-00000000000000000002.tmp"),
            b"junk",
        )
        .unwrap();
        let (mut m, state) = Manifest::open(dir.path()).await.unwrap();
        assert_eq!(state, ManifestState::default());
        m.close().await.unwrap();
        assert!(!dir
            .path()
            .join("MANIFEST-00000000000000000002.tmp")
            .exists());
    });
}

#[test]
fn a_failed_manifest_write_poisons_it_and_reopen_recovers_what_was_durable() {
    let dir = tempdir();
    run(async {
        let (mut m, _) = Manifest::open(dir.path()).await.unwrap();
        m.apply(&[ManifestEdit::AddTable(table(1, 0, 4))])
            .await
            .unwrap();
        m.inject_write_fault();
        let r = m.apply(&[ManifestEdit::AddTable(table(2, 0, 4))]).await;
        assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
        assert_eq!(
            m.state().tables,
            vec![table(1, 0, 4)],
            "a failed record is not applied"
        );
        let r = m.apply(&[ManifestEdit::NextFileId(50)]).await;
        assert!(matches!(r, Err(Error::Poisoned { .. })), "{r:?}");
        m.close().await.unwrap();
        let (mut m, state) = Manifest::open(dir.path()).await.unwrap();
        assert_eq!(state.tables, vec![table(1, 0, 4)]);
        m.close().await.unwrap();
    });
}
