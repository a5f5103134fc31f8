//! WAL tests on real O_DIRECT files: round trip, group commit, torn tails,
//! corruption, recycling, durability modes and poisoning.

use rand::{Rng, SeedableRng};
use ringkv_storage::wal::{batch, record, segment_file_name, Durability, Lsn, Wal, WalOptions};
use ringkv_storage::{Error, Record, RecordRef, Version};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

type Batch = Vec<(Vec<u8>, Record)>;
type Replayed = Vec<(Lsn, Batch)>;

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
    let seed = std::env::var("WAL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("seed: {seed} (rerun with WAL_TEST_SEED={seed})");
    seed
}

fn options(segment_size: u64, durability: Durability) -> WalOptions {
    WalOptions {
        segment_size,
        durability,
        ..WalOptions::default()
    }
}

/// A batch of one to three entries with values up to `value_max` bytes.
fn make_batch(rng: &mut rand::rngs::StdRng, i: usize, value_max: usize) -> Batch {
    let n = rng.gen_range(1..=3);
    (0..n)
        .map(|j| {
            let key = format!("key-{i:06}-{j}").into_bytes();
            let version = Version::new(1_000 + i as u64, j as u16, 7);
            let record = if rng.gen_ratio(1, 5) {
                Record::tombstone(version)
            } else {
                let len = rng.gen_range(0..=value_max);
                Record::put(
                    version,
                    (0..len).map(|b| (b + i) as u8).collect(),
                    rng.gen_range(0..3),
                )
            };
            (key, record)
        })
        .collect()
}

fn refs(b: &Batch) -> Vec<(&[u8], RecordRef<'_>)> {
    b.iter().map(|(k, r)| (k.as_slice(), r.into())).collect()
}

fn frame_size(b: &Batch) -> u64 {
    record::frame_len(batch::encoded_len(&refs(b))) as u64
}

/// Bytes of a frame covered by its checksum (without the alignment padding).
fn frame_size_unpadded(b: &Batch) -> u64 {
    (record::FRAME_HEADER_SIZE + batch::encoded_len(&refs(b))) as u64
}

async fn open(
    dir: &Path,
    options: WalOptions,
    retired: u64,
) -> ringkv_storage::Result<(Wal, Replayed)> {
    let replayed = Rc::new(RefCell::new(Vec::new()));
    let sink = replayed.clone();
    let wal = Wal::open(dir, options, retired, move |lsn, entries| {
        sink.borrow_mut().push((lsn, entries));
        Ok(())
    })
    .await?;
    let out = replayed.borrow().clone();
    Ok((wal, out))
}

async fn append_commit(wal: &Wal, b: &Batch) -> Lsn {
    let lsn = wal.append(&refs(b)).unwrap();
    wal.commit(lsn).await.unwrap();
    lsn
}

/// A new segment's tail takes the buffer of the segment written out before
/// it (resident pages: a fresh one per segment faulted in MiBs each time),
/// and the reused buffer carries nothing over: every batch replays.
#[test]
fn segment_tails_reuse_one_buffer_and_carry_nothing_over() {
    let dir = tempdir();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let batches: Vec<Batch> = (0..1500).map(|i| make_batch(&mut rng, i, 500)).collect();
    run(async {
        let (wal, _) = open(dir.path(), options(32 * 1024, Durability::Sync), 0)
            .await
            .unwrap();
        for b in &batches {
            append_commit(&wal, b).await;
        }
        let stats = wal.stats();
        let segments: u64 = batches.iter().map(frame_size).sum::<u64>() / (32 * 1024);
        assert!(segments >= 20, "only {segments} segments filled");
        assert!(
            stats.tail_buffers_allocated <= 2,
            "{} tail buffers for {segments} segments",
            stats.tail_buffers_allocated
        );
        wal.close().await.unwrap();
        let (_wal, replayed) = open(dir.path(), options(32 * 1024, Durability::Sync), 0)
            .await
            .unwrap();
        assert_eq!(replayed.len(), batches.len());
        for ((_, got), want) in replayed.iter().zip(&batches) {
            assert_eq!(got, want);
        }
    });
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join("wal").join(segment_file_name(id))
}

fn expect_corruption(result: ringkv_storage::Result<(Wal, Replayed)>) -> (PathBuf, u64, String) {
    match result {
        Err(Error::Corruption {
            file,
            offset,
            reason,
        }) => (file, offset, reason),
        Err(e) => panic!("expected corruption, got {e}"),
        Ok((_, replayed)) => panic!("expected corruption, replayed {} batches", replayed.len()),
    }
}

#[test]
fn wal_round_trips_batches_across_reopens() {
    let dir = tempdir();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let opts = options(256 * 1024, Durability::Sync);
        let (wal, replayed) = open(dir.path(), opts.clone(), 0).await.unwrap();
        assert!(replayed.is_empty());
        let mut model: Replayed = Vec::new();
        for i in 0..200 {
            let b = make_batch(&mut rng, i, 9000);
            let lsn = append_commit(&wal, &b).await;
            model.push((lsn, b));
        }
        assert_eq!(model.first().unwrap().0, 1);
        let appended = wal.appended_bytes();
        wal.close().await.unwrap();
        assert!(matches!(wal.append(&refs(&model[0].1)), Err(Error::Closed)));

        let (wal, replayed) = open(dir.path(), opts.clone(), 0).await.unwrap();
        assert_eq!(replayed, model);
        // The engine bounds a memtable's WAL span with these two measures.
        assert_eq!(wal.replayed_bytes(), appended, "replayed as appended");
        for i in 200..260 {
            let b = make_batch(&mut rng, i, 300);
            let lsn = append_commit(&wal, &b).await;
            assert_eq!(lsn, model.last().unwrap().0 + 1);
            model.push((lsn, b));
        }
        wal.close().await.unwrap();
        let (wal, replayed) = open(dir.path(), opts, 0).await.unwrap();
        assert_eq!(replayed, model);
        assert!(
            wal.stats().live_segments > 1,
            "200 batches of up to 27 KB span several 256 KiB segments"
        );
        wal.close().await.unwrap();
    });
}

#[test]
fn concurrent_commits_in_one_reactor_turn_share_one_sync() {
    let dir = tempdir();
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let (wal, _) = open(dir.path(), options(1 << 20, Durability::Sync), 0)
            .await
            .unwrap();
        let wal = Rc::new(wal);
        let before = wal.stats().syncs;
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let wal = wal.clone();
                glommio::spawn_local(async move {
                    let b: Batch = vec![(
                        format!("k{i}").into_bytes(),
                        Record::put(Version::new(1, 0, 1), vec![i as u8; 100], 0),
                    )];
                    append_commit(&wal, &b).await
                })
            })
            .collect();
        let mut lsns = Vec::new();
        for t in tasks {
            lsns.push(t.await);
        }
        let stats = wal.stats();
        assert_eq!(
            stats.syncs - before,
            1,
            "64 commits of one turn must share one fdatasync"
        );
        assert_eq!(stats.batches, 64);
        assert_eq!(wal.durable_lsn(), 64);
        lsns.sort_unstable();
        assert_eq!(lsns, (1..=64).collect::<Vec<_>>());
        wal.close().await.unwrap();
    });
}

#[test]
fn commits_arriving_while_a_write_is_in_flight_are_led_by_the_next_waiter() {
    let dir = tempdir();
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let (wal, _) = open(dir.path(), options(1 << 20, Durability::Sync), 0)
            .await
            .unwrap();
        let wal = Rc::new(wal);
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let wal = wal.clone();
                glommio::spawn_local(async move {
                    // Spread the tasks over several turns.
                    for _ in 0..(i % 7) {
                        futures_lite::future::yield_now().await;
                    }
                    let b: Batch = vec![(
                        format!("k{i}").into_bytes(),
                        Record::tombstone(Version::new(1, 0, 1)),
                    )];
                    append_commit(&wal, &b).await
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        assert_eq!(wal.durable_lsn(), 200);
        assert!(wal.stats().syncs < 200, "group commit shares syncs");
        wal.close().await.unwrap();
        let (wal, replayed) = open(dir.path(), options(1 << 20, Durability::Sync), 0)
            .await
            .unwrap();
        assert_eq!(replayed.len(), 200);
        wal.close().await.unwrap();
    });
}

#[test]
fn torn_tail_at_every_cut_of_the_last_page_is_cut_and_earlier_records_kept() {
    let dir = tempdir();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let opts = options(64 * 1024, Durability::Sync);
        let (wal, _) = open(dir.path(), opts.clone(), 0).await.unwrap();
        let mut model: Replayed = Vec::new();
        let mut ends = Vec::new();
        let mut end = 0u64;
        // Fill a little over two pages so the last record may span pages.
        while end < 2 * 4096 + 1500 {
            let b = make_batch(&mut rng, model.len(), 700);
            ends.push(end + frame_size_unpadded(&b));
            end += frame_size(&b);
            let lsn = append_commit(&wal, &b).await;
            model.push((lsn, b));
        }
        wal.close().await.unwrap();
        let path = segment_path(dir.path(), 1);
        let original = std::fs::read(&path).unwrap();
        let page_start = end - end % 4096;
        for cut in page_start..=end {
            let mut torn = original.clone();
            let fill = if cut % 2 == 0 { 0x00 } else { 0xA5 };
            torn[cut as usize..(page_start + 4096) as usize].fill(fill);
            if cut < end {
                // A tear changes the byte at the cut (filling may rewrite equal bytes).
                torn[cut as usize] = !original[cut as usize];
            }
            std::fs::write(&path, &torn).unwrap();
            let (wal, replayed) = open(dir.path(), opts.clone(), 0)
                .await
                .unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            let kept = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(replayed.len(), kept, "cut at {cut}");
            assert_eq!(replayed[..], model[..kept], "cut at {cut}");
            wal.close().await.unwrap();
        }
        // After a cut the writer continues after the last whole record.
        let cut = page_start + 10;
        let mut torn = original.clone();
        torn[cut as usize..(page_start + 4096) as usize].fill(0xA5);
        std::fs::write(&path, &torn).unwrap();
        let (wal, replayed) = open(dir.path(), opts.clone(), 0).await.unwrap();
        let mut kept = replayed;
        let b = make_batch(&mut rng, 999, 100);
        let lsn = append_commit(&wal, &b).await;
        assert_eq!(lsn, kept.len() as u64 + 1);
        kept.push((lsn, b));
        wal.close().await.unwrap();
        let (wal, replayed) = open(dir.path(), opts, 0).await.unwrap();
        assert_eq!(replayed, kept);
        wal.close().await.unwrap();
    });
}

#[test]
fn truncated_last_segment_file_is_cut_at_the_last_whole_record() {
    let dir = tempdir();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let opts = options(64 * 1024, Durability::Sync);
        let (wal, _) = open(dir.path(), opts.clone(), 0).await.unwrap();
        let mut model: Replayed = Vec::new();
        let mut ends = Vec::new();
        let mut end = 0u64;
        while end < 6000 {
            let b = make_batch(&mut rng, model.len(), 500);
            ends.push(end + frame_size_unpadded(&b));
            end += frame_size(&b);
            model.push((append_commit(&wal, &b).await, b));
        }
        wal.close().await.unwrap();
        let path = segment_path(dir.path(), 1);
        let original = std::fs::read(&path).unwrap();
        for cut in (0..=end).step_by(97) {
            std::fs::write(&path, &original[..cut as usize]).unwrap();
            let (wal, replayed) = open(dir.path(), opts.clone(), 0)
                .await
                .unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            let kept = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(replayed[..], model[..kept], "cut at {cut}");
            wal.close().await.unwrap();
        }
    });
}

#[test]
fn bit_flip_in_a_middle_record_is_corruption_naming_file_and_offset() {
    let dir = tempdir();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let opts = options(64 * 1024, Durability::Sync);
        let (wal, _) = open(dir.path(), opts.clone(), 0).await.unwrap();
        let mut starts = Vec::new();
        let mut end = 0u64;
        for i in 0..20 {
            let b = make_batch(&mut rng, i, 400);
            starts.push(end);
            end += frame_size(&b);
            append_commit(&wal, &b).await;
        }
        wal.close().await.unwrap();
        let path = segment_path(dir.path(), 1);
        let original = std::fs::read(&path).unwrap();
        for victim in [0usize, 5, 10, 18] {
            for delta in [0u64, 3, 8, 30, 40] {
                let at = starts[victim] + delta;
                if at >= starts[victim + 1] {
                    continue;
                }
                let mut bad = original.clone();
                bad[at as usize] ^= 1 << rng.gen_range(0..8);
                std::fs::write(&path, &bad).unwrap();
                let (file, offset, reason) =
                    expect_corruption(open(dir.path(), opts.clone(), 0).await);
                assert_eq!(file, path, "{reason}");
                assert_eq!(offset, starts[victim], "flip at {at}: {reason}");
            }
        }
    });
}

#[test]
fn bad_record_in_a_finished_segment_is_corruption() {
    let dir = tempdir();
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let opts = options(64 * 1024, Durability::Sync);
        let (wal, _) = open(dir.path(), opts.clone(), 0).await.unwrap();
        let b: Batch = vec![(
            b"k".to_vec(),
            Record::put(Version::new(1, 0, 1), vec![1; 50], 0),
        )];
        append_commit(&wal, &b).await;
        append_commit(&wal, &b).await;
        assert_eq!(wal.rotate().await.unwrap(), 1);
        append_commit(&wal, &b).await;
        wal.close().await.unwrap();
        // Flip a byte in the last record of segment 1: a torn tail would be
        // cut, but segment 1 is finished, so this is corruption.
        let path = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        let second = frame_size(&b);
        bytes[(second + 40) as usize] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let (file, offset, _) = expect_corruption(open(dir.path(), opts.clone(), 0).await);
        assert_eq!((file, offset), (path.clone(), second));
        // A whole missing segment in the middle is corruption too.
        bytes[(second + 40) as usize] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let (wal, replayed) = open(dir.path(), opts.clone(), 0).await.unwrap();
        assert_eq!(replayed.len(), 3);
        wal.rotate().await.unwrap();
        wal.close().await.unwrap();
        std::fs::remove_file(segment_path(dir.path(), 2)).unwrap();
        let (file, _, _) = expect_corruption(open(dir.path(), opts, 0).await);
        assert_eq!(file, segment_path(dir.path(), 2));
    });
}

/// Names of the WAL directory's files that start with `prefix`.
fn wal_files_starting(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// With room for as many spares as a flush retires, the WAL reuses its own
/// files: retired segments are all kept (renamed), the segments after them
/// are those spares, and no new segment is written full of zeros; a reopen
/// keeps the spares too.
#[test]
fn with_room_for_every_retired_segment_the_wal_reuses_its_files() {
    let dir = tempdir();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let opts = WalOptions {
            spare_segments_max: 8,
            ..options(32 * 1024, Durability::Sync)
        };
        let (wal, _) = open(dir.path(), opts.clone(), 0).await.unwrap();
        let mut next = 0;
        let mut fill_and_rotate = async |wal: &Wal, rounds: usize| {
            for _ in 0..rounds {
                for _ in 0..5 {
                    append_commit(wal, &make_batch(&mut rng, next, 500)).await;
                    next += 1;
                }
                wal.rotate().await.unwrap();
            }
        };
        fill_and_rotate(&wal, 6).await;
        wal.retire_through(6).await.unwrap();
        assert_eq!(wal_files_starting(dir.path(), "recycled-").len(), 6);
        let fresh_before = wal_files_starting(dir.path(), "fresh-");
        // Six more segments: all six spares are used, nothing is zero-filled.
        fill_and_rotate(&wal, 6).await;
        assert!(wal_files_starting(dir.path(), "recycled-").is_empty());
        assert_eq!(wal_files_starting(dir.path(), "fresh-"), fresh_before);
        wal.retire_through(12).await.unwrap();
        assert_eq!(wal_files_starting(dir.path(), "recycled-").len(), 6);
        wal.close().await.unwrap();
        let (_wal, _) = open(dir.path(), opts, 12).await.unwrap();
        assert_eq!(wal_files_starting(dir.path(), "recycled-").len(), 6);
    });
}

#[test]
fn no_spare_segment_at_all_is_refused_at_open() {
    let dir = tempdir();
    run(async {
        let opts = WalOptions {
            spare_segments_max: 0,
            ..options(32 * 1024, Durability::Sync)
        };
        let Err(e) = open(dir.path(), opts, 0).await else {
            panic!("a WAL without spares opened");
        };
        assert!(e.to_string().contains("spare"), "{e}");
    });
}

#[test]
fn rotate_and_retire_through_recycle_segments_and_stale_data_is_never_replayed() {
    let dir = tempdir();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let opts = options(32 * 1024, Durability::Sync);
        let (wal, _) = open(dir.path(), opts.clone(), 0).await.unwrap();
        for round in 0..4 {
            for i in 0..10 {
                append_commit(&wal, &make_batch(&mut rng, round * 10 + i, 500)).await;
            }
            let finished = wal.rotate().await.unwrap();
            assert_eq!(finished, round as u64 + 1);
        }
        assert_eq!(wal.stats().live_segments, 5);
        wal.retire_through(3).await.unwrap();
        assert_eq!(wal.stats().live_segments, 2);
        assert!(!segment_path(dir.path(), 1).exists());
        assert!(!segment_path(dir.path(), 3).exists());
        let spares = wal_files_starting(dir.path(), "recycled-").len();
        assert!(
            (1..=2).contains(&spares),
            "retired segments are recycled as spares ({spares})"
        );
        // New segments now come from recycled files full of stale frames.
        let mut kept: Replayed = Vec::new();
        for i in 0..3 {
            let b = make_batch(&mut rng, 100 + i, 200);
            kept.push((append_commit(&wal, &b).await, b));
        }
        wal.rotate().await.unwrap(); // 5 finished; 6 is a recycled file
        let b = make_batch(&mut rng, 200, 200);
        kept.push((append_commit(&wal, &b).await, b));
        wal.close().await.unwrap();
        let (wal, replayed) = open(dir.path(), opts.clone(), 3).await.unwrap();
        // Segment 4 (10 batches) is still live: replayed first.
        assert_eq!(replayed.len(), 10 + kept.len());
        assert_eq!(replayed[10..], kept[..]);
        assert_eq!(replayed[0].0, 31);
        wal.close().await.unwrap();
        // Opening with a higher retired_through retires what is left over.
        let (wal, replayed) = open(dir.path(), opts, 5).await.unwrap();
        assert_eq!(replayed, kept[3..]);
        assert!(!segment_path(dir.path(), 4).exists());
        wal.close().await.unwrap();
    });
}

#[test]
fn appends_that_overflow_a_segment_rotate_by_themselves() {
    let dir = tempdir();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let opts = options(16 * 1024, Durability::Sync);
        let (wal, _) = open(dir.path(), opts.clone(), 0).await.unwrap();
        let mut model = Vec::new();
        let mut lsns = Vec::new();
        // Many appends before one commit: the tail crosses several segments.
        for i in 0..60 {
            let b = make_batch(&mut rng, i, 2000);
            lsns.push(wal.append(&refs(&b)).unwrap());
            model.push(b);
        }
        wal.commit(*lsns.last().unwrap()).await.unwrap();
        assert!(wal.stats().live_segments > 3);
        wal.close().await.unwrap();
        let (wal, replayed) = open(dir.path(), opts, 0).await.unwrap();
        assert_eq!(
            replayed.into_iter().map(|(_, b)| b).collect::<Vec<_>>(),
            model
        );
        // A batch that cannot fit in one segment is refused.
        let huge: Batch = vec![(
            b"k".to_vec(),
            Record::put(Version::ZERO, vec![0; 20_000], 0),
        )];
        assert!(matches!(
            wal.append(&refs(&huge)),
            Err(Error::BatchTooLarge { .. })
        ));
        let too_big: Batch = vec![(vec![0; 2000], Record::tombstone(Version::ZERO))];
        assert!(matches!(
            wal.append(&refs(&too_big)),
            Err(Error::KeyTooLarge { .. })
        ));
        wal.close().await.unwrap();
    });
}

#[test]
fn batch_mode_syncs_at_most_once_per_window() {
    let dir = tempdir();
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let window = Duration::from_millis(40);
        let opts = options(1 << 20, Durability::Batch { window });
        let (wal, _) = open(dir.path(), opts.clone(), 0).await.unwrap();
        let b: Batch = vec![(
            b"k".to_vec(),
            Record::put(Version::new(1, 0, 1), vec![1; 10], 0),
        )];
        let start = Instant::now();
        for _ in 0..5 {
            append_commit(&wal, &b).await;
        }
        let elapsed = start.elapsed();
        assert_eq!(wal.stats().syncs, 5);
        assert!(
            elapsed >= window * 4,
            "5 sequential commits took {elapsed:?}, window {window:?}"
        );
        // Commits of one window share a sync.
        let wal = Rc::new(wal);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let wal = wal.clone();
                let b = b.clone();
                glommio::spawn_local(async move { append_commit(&wal, &b).await })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        assert_eq!(wal.stats().syncs, 6);
        wal.close().await.unwrap();
        let (wal, replayed) = open(dir.path(), opts, 0).await.unwrap();
        assert_eq!(replayed.len(), 25);
        wal.close().await.unwrap();
    });
}

#[test]
fn none_mode_commits_at_once_and_writes_in_the_background() {
    let dir = tempdir();
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let opts = options(1 << 20, Durability::None);
        let (wal, _) = open(dir.path(), opts.clone(), 0).await.unwrap();
        let b: Batch = vec![(
            b"k".to_vec(),
            Record::put(Version::new(1, 0, 1), vec![1; 10], 0),
        )];
        let start = Instant::now();
        for _ in 0..10 {
            append_commit(&wal, &b).await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "no commit waited for I/O"
        );
        assert_eq!(wal.stats().syncs, 0);
        assert_eq!(wal.durable_lsn(), 0);
        // The background flush runs every 10 ms; allow for a loaded machine.
        let waited = Instant::now();
        while wal.durable_lsn() < 10 && waited.elapsed() < Duration::from_secs(2) {
            ringkv_storage::io::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            wal.durable_lsn(),
            10,
            "the background flush wrote the appends"
        );
        assert!(wal.stats().syncs >= 1);
        eprintln!(
            "background flush made 10 appends durable after {:?}",
            waited.elapsed()
        );
        append_commit(&wal, &b).await;
        wal.close().await.unwrap();
        let (wal, replayed) = open(dir.path(), opts, 0).await.unwrap();
        assert_eq!(replayed.len(), 11, "close writes what was appended");
        wal.close().await.unwrap();
    });
}

#[test]
fn a_failed_write_poisons_the_wal_and_reopen_recovers_what_was_durable() {
    let dir = tempdir();
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let opts = options(1 << 20, Durability::Sync);
        let (wal, _) = open(dir.path(), opts.clone(), 0).await.unwrap();
        let b: Batch = vec![(
            b"k".to_vec(),
            Record::put(Version::new(1, 0, 1), vec![1; 10], 0),
        )];
        append_commit(&wal, &b).await;
        wal.inject_write_fault();
        let wal = Rc::new(wal);
        let follower = {
            let wal = wal.clone();
            let b = b.clone();
            glommio::spawn_local(async move {
                let lsn = wal.append(&refs(&b)).unwrap();
                wal.commit(lsn).await
            })
        };
        let lsn = wal.append(&refs(&b)).unwrap();
        let mine = wal.commit(lsn).await;
        let theirs = follower.await;
        // Whichever led saw the I/O error; the other one found the WAL poisoned.
        let (io, poisoned) = if matches!(mine, Err(Error::Io { .. })) {
            (mine, theirs)
        } else {
            (theirs, mine)
        };
        assert!(matches!(io, Err(Error::Io { .. })), "{io:?}");
        assert!(
            matches!(poisoned, Err(Error::Poisoned { .. })),
            "{poisoned:?}"
        );
        assert!(matches!(wal.append(&refs(&b)), Err(Error::Poisoned { .. })));
        assert!(matches!(wal.commit(1).await, Err(Error::Poisoned { .. })));
        assert!(matches!(wal.rotate().await, Err(Error::Poisoned { .. })));
        assert!(matches!(wal.close().await, Err(Error::Poisoned { .. })));
        drop(wal);
        let (wal, replayed) = open(dir.path(), opts, 0).await.unwrap();
        assert_eq!(replayed.len(), 1);
        wal.close().await.unwrap();
    });
}

#[test]
fn replay_errors_from_the_caller_stop_open() {
    let dir = tempdir();
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let opts = options(64 * 1024, Durability::Sync);
        let (wal, _) = open(dir.path(), opts.clone(), 0).await.unwrap();
        append_commit(
            &wal,
            &vec![(b"k".to_vec(), Record::tombstone(Version::ZERO))],
        )
        .await;
        wal.close().await.unwrap();
        let r = Wal::open(dir.path(), opts, 0, |_, _| Err(Error::Closed)).await;
        assert!(matches!(r, Err(Error::Closed)));
    });
}

#[test]
fn a_commit_dropped_mid_round_does_not_block_later_commits() {
    let dir = tempdir();
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let opts = options(1 << 20, Durability::Sync);
        let (wal, _) = open(dir.path(), opts.clone(), 0).await.unwrap();
        let b: Batch = vec![(b"k".to_vec(), Record::tombstone(Version::new(1, 0, 1)))];
        let first = wal.append(&refs(&b)).unwrap();
        {
            // Poll the leader once (it yields to gather the turn), then drop it.
            let mut leader = Box::pin(wal.commit(first));
            assert!(futures_lite::future::poll_once(&mut leader).await.is_none());
        }
        let second = wal.append(&refs(&b)).unwrap();
        wal.commit(second).await.unwrap();
        assert_eq!(wal.durable_lsn(), second);
        wal.close().await.unwrap();
        let (wal, replayed) = open(dir.path(), opts, 0).await.unwrap();
        assert_eq!(replayed.len(), 2);
        wal.close().await.unwrap();
    });
}

/// A leader dropped at any point of its round, its write perhaps issued and
/// cancelled, leaves nothing behind: the next commit writes what the dropped
/// one had not, and replay finds both batches. (The tail keeps a write's
/// bytes until the write has completed for this.)
#[test]
fn a_leader_dropped_at_any_poll_loses_nothing_the_next_commit_makes_durable() {
    for polls in 1..=8 {
        let dir = tempdir();
        run(async move {
            ringkv_storage::io::prepare_dir(dir.path(), true)
                .await
                .unwrap();
            let opts = options(1 << 20, Durability::Sync);
            let (wal, _) = open(dir.path(), opts.clone(), 0).await.unwrap();
            // Several pages, so the write is more than the page kept.
            let big = vec![7u8; 3 * 4096];
            let first: Batch = vec![(b"a".to_vec(), Record::put(Version::new(1, 0, 1), big, 0))];
            let lsn = wal.append(&refs(&first)).unwrap();
            {
                let mut leader = Box::pin(wal.commit(lsn));
                for _ in 0..polls {
                    if futures_lite::future::poll_once(&mut leader).await.is_some() {
                        break;
                    }
                    futures_lite::future::yield_now().await;
                }
            }
            let second: Batch = vec![(b"b".to_vec(), Record::tombstone(Version::new(2, 0, 1)))];
            let lsn = wal.append(&refs(&second)).unwrap();
            wal.commit(lsn).await.unwrap();
            wal.close().await.unwrap();
            let (wal, replayed) = open(dir.path(), opts, 0).await.unwrap();
            assert_eq!(replayed.len(), 2, "dropped after {polls} polls");
            wal.close().await.unwrap();
        });
    }
}

/// A follower is answered by the write that makes it durable, not when the
/// leader's round ends: the round goes on to close the segment it finished
/// and open the next one, and followers once waited for that too (up to
/// 170 ms under a SET load).
#[test]
fn a_follower_made_durable_mid_round_returns_before_the_round_ends() {
    let dir = tempdir();
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let (wal, _) = open(dir.path(), options(1 << 20, Durability::Sync), 0)
            .await
            .unwrap();
        let wal = Rc::new(wal);
        let done: Rc<RefCell<Vec<&str>>> = Rc::default();
        let b: Batch = vec![(b"k".to_vec(), Record::tombstone(Version::new(1, 0, 1)))];
        // The leader: commits first, and yields once to gather the turn.
        let leader = {
            let (wal, done, b) = (wal.clone(), done.clone(), b.clone());
            glommio::spawn_local(async move {
                append_commit(&wal, &b).await;
                done.borrow_mut().push("leader");
            })
        };
        // The follower, in the same turn: appends, ends the segment (so the
        // leader's round has a segment to close after its write) and waits.
        let follower = {
            let (wal, done) = (wal.clone(), done.clone());
            glommio::spawn_local(async move {
                let lsn = wal.append(&refs(&b)).unwrap();
                wal.start_rotation().unwrap();
                wal.commit(lsn).await.unwrap();
                done.borrow_mut().push("follower");
            })
        };
        leader.await;
        follower.await;
        assert_eq!(*done.borrow(), ["follower", "leader"]);
        assert_eq!(wal.durable_lsn(), 2);
        wal.close().await.unwrap();
    });
}

#[test]
fn reopening_with_another_segment_size_keeps_old_segments_and_uses_the_new_size() {
    let dir = tempdir();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let small = options(16 * 1024, Durability::Sync);
        let large = options(64 * 1024, Durability::Sync);
        let (wal, _) = open(dir.path(), small, 0).await.unwrap();
        let mut model = Vec::new();
        for i in 0..30 {
            let b = make_batch(&mut rng, i, 1500);
            append_commit(&wal, &b).await;
            model.push(b);
        }
        wal.close().await.unwrap();
        let (wal, replayed) = open(dir.path(), large.clone(), 0).await.unwrap();
        assert_eq!(
            replayed.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(),
            model
        );
        for i in 30..90 {
            let b = make_batch(&mut rng, i, 1500);
            append_commit(&wal, &b).await;
            model.push(b);
        }
        wal.close().await.unwrap();
        let (wal, replayed) = open(dir.path(), large, 0).await.unwrap();
        assert_eq!(
            replayed.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(),
            model
        );
        let sizes: Vec<u64> = std::fs::read_dir(dir.path().join("wal"))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| e.metadata().unwrap().len())
            .collect();
        assert!(
            sizes.contains(&(16 * 1024)) && sizes.contains(&(64 * 1024)),
            "{sizes:?}"
        );
        wal.close().await.unwrap();
    });
}

#[test]
fn a_missing_first_live_segment_is_corruption() {
    let dir = tempdir();
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let opts = options(32 * 1024, Durability::Sync);
        let (wal, _) = open(dir.path(), opts.clone(), 0).await.unwrap();
        let b: Batch = vec![(b"k".to_vec(), Record::tombstone(Version::new(1, 0, 1)))];
        append_commit(&wal, &b).await;
        wal.rotate().await.unwrap();
        append_commit(&wal, &b).await;
        wal.close().await.unwrap();
        std::fs::remove_file(segment_path(dir.path(), 1)).unwrap();
        let (file, _, reason) = expect_corruption(open(dir.path(), opts.clone(), 0).await);
        assert_eq!(file, segment_path(dir.path(), 1), "{reason}");
        // Once segment 1 is retired, the same directory opens fine.
        let (wal, replayed) = open(dir.path(), opts, 1).await.unwrap();
        assert_eq!(replayed.len(), 1);
        wal.close().await.unwrap();
    });
}

#[test]
fn appends_while_a_rotation_is_in_flight_land_in_the_next_segment() {
    let dir = tempdir();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        let opts = options(1024 * 1024, Durability::None);
        let (wal, _) = open(dir.path(), opts.clone(), 0).await.unwrap();
        let before: Vec<Batch> = (0..20).map(|i| make_batch(&mut rng, i, 300)).collect();
        for b in &before {
            append_commit(&wal, b).await;
        }
        let rotation = wal.start_rotation().unwrap();
        // Appended after the segment ended, before its write and sync are
        // done (what writers do while the engine's freeze waits).
        let mut after: Replayed = Vec::new();
        for i in 0..20 {
            let b = make_batch(&mut rng, 100 + i, 300);
            after.push((wal.append(&refs(&b)).unwrap(), b));
        }
        let finished = wal.finish_rotation(rotation).await.unwrap();
        assert_eq!(finished, 1);
        wal.close().await.unwrap();
        // Everything replays, in order, with nothing of `after` in segment 1:
        // retiring it leaves exactly `after`.
        let (wal, replayed) = open(dir.path(), opts.clone(), 0).await.unwrap();
        assert_eq!(replayed.len(), before.len() + after.len());
        assert_eq!(replayed[before.len()..], after[..]);
        wal.close().await.unwrap();
        let (wal, replayed) = open(dir.path(), opts, finished).await.unwrap();
        assert_eq!(replayed, after);
        wal.close().await.unwrap();
    });
}

#[test]
fn a_tail_of_several_megabytes_is_written_in_chunks_and_replays_whole() {
    let dir = tempdir();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    run(async {
        ringkv_storage::io::prepare_dir(dir.path(), true)
            .await
            .unwrap();
        // `None` lets the tail build up in memory; 3+ MiB of it is more than
        // one write chunk (1 MiB), so the leader writes it in several.
        let opts = options(16 * 1024 * 1024, Durability::None);
        let (wal, _) = open(dir.path(), opts.clone(), 0).await.unwrap();
        let mut kept: Replayed = Vec::new();
        let mut bytes = 0;
        let mut i = 0;
        while bytes < 3 * 1024 * 1024 + 12_345 {
            let b = make_batch(&mut rng, i, 4000);
            bytes += frame_size(&b);
            kept.push((wal.append(&refs(&b)).unwrap(), b));
            i += 1;
        }
        // A rotation makes all of it durable in one leader round.
        let finished = wal.rotate().await.unwrap();
        assert_eq!(finished, 1);
        let stats = wal.stats();
        assert!(
            stats.bytes_written >= bytes,
            "{} bytes written of {bytes}",
            stats.bytes_written
        );
        // Simulate a crash: no close, no further writes.
        drop(wal);
        let (wal, replayed) = open(dir.path(), opts, 0).await.unwrap();
        assert_eq!(replayed.len(), kept.len());
        assert!(replayed == kept, "a chunked tail replays batch for batch");
        wal.close().await.unwrap();
    });
}
