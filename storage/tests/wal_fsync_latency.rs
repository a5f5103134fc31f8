//! Measures what the WAL's preallocation is for: fdatasync after an O_DIRECT
//! write that overwrites already-written blocks, versus one that grows the file
//! or converts an unwritten (fallocated) extent. Prints the figures; asserts
//! only that every mode works (timings on a shared machine are noisy).
//! Run with `cargo test -p ringkv-storage --test wal_fsync_latency -- --nocapture`.

use ringkv_storage::io::{prepare_dir, DirectFile};
use std::time::{Duration, Instant};

const PAGES: u64 = 300;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Append,
    Fallocated,
    Overwrite,
}

async fn measure(dir: &std::path::Path, mode: Mode) -> Vec<Duration> {
    let path = dir.join(format!("{mode:?}.dat"));
    let file = DirectFile::create_new(&path).await.unwrap();
    match mode {
        Mode::Append => {}
        Mode::Fallocated => file.preallocate(PAGES * 4096, false).await.unwrap(),
        Mode::Overwrite => {
            file.write_at(file.alloc((PAGES * 4096) as usize), 0)
                .await
                .unwrap();
            file.sync().await.unwrap();
        }
    }
    let mut out = Vec::new();
    for i in 0..PAGES {
        let mut buf = file.alloc(4096);
        buf.as_bytes_mut().fill(i as u8);
        let start = Instant::now();
        file.write_at(buf, i * 4096).await.unwrap();
        file.sync().await.unwrap();
        out.push(start.elapsed());
    }
    file.close().await.unwrap();
    out.sort_unstable();
    out
}

#[test]
fn fdatasync_after_overwrite_versus_append_is_measured() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    glommio::LocalExecutorBuilder::default().make().unwrap().run(async {
        prepare_dir(dir.path(), true).await.unwrap();
        for mode in [Mode::Append, Mode::Fallocated, Mode::Overwrite] {
            let t = measure(dir.path(), mode).await;
            let p = |q: f64| t[((t.len() - 1) as f64 * q) as usize].as_micros();
            eprintln!(
                "4 KiB O_DIRECT write + fdatasync, {mode:?}: p50 {} us, p90 {} us, p99 {} us ({} samples)",
                p(0.5),
                p(0.9),
                p(0.99),
                t.len()
            );
            assert_eq!(t.len() as u64, PAGES);
        }
    });
}

#[test]
fn wal_commit_latency_on_a_prepared_segment_is_measured() {
    use ringkv_storage::wal::{Durability, Wal, WalOptions};
    use ringkv_storage::{Record, Version};
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    glommio::LocalExecutorBuilder::default()
        .make()
        .unwrap()
        .run(async {
            prepare_dir(dir.path(), true).await.unwrap();
            let options = WalOptions {
                segment_size: 64 * 1024 * 1024,
                durability: Durability::Sync,
                ..WalOptions::default()
            };
            let start = Instant::now();
            let wal = Wal::open(dir.path(), options, 0, |_, _| Ok(()))
                .await
                .unwrap();
            eprintln!(
                "open of an empty WAL (writes a 64 MiB segment of zeros): {:?}",
                start.elapsed()
            );
            let record = Record::put(Version::new(1, 0, 1), vec![7; 100], 0);
            let mut t = Vec::new();
            for i in 0..PAGES {
                let key = format!("key-{i:08}");
                let start = Instant::now();
                let lsn = wal.append(&[(key.as_bytes(), (&record).into())]).unwrap();
                wal.commit(lsn).await.unwrap();
                t.push(start.elapsed());
            }
            t.sort_unstable();
            let p = |q: f64| t[((t.len() - 1) as f64 * q) as usize].as_micros();
            eprintln!(
                "WAL sync commit of one 100-byte put: p50 {} us, p90 {} us, p99 {} us ({} syncs)",
                p(0.5),
                p(0.9),
                p(0.99),
                wal.stats().syncs
            );
            wal.close().await.unwrap();
        });
}

#[test]
fn wal_group_commit_throughput_with_concurrent_writers_is_measured() {
    use ringkv_storage::wal::{Durability, Wal, WalOptions};
    use ringkv_storage::{Record, Version};
    use std::rc::Rc;
    const WRITERS: usize = 64;
    const COMMITS: usize = 100;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    glommio::LocalExecutorBuilder::default().make().unwrap().run(async {
        prepare_dir(dir.path(), true).await.unwrap();
        let options = WalOptions {
            segment_size: 64 * 1024 * 1024,
            durability: Durability::Sync,
            ..WalOptions::default()
        };
        let wal = Rc::new(Wal::open(dir.path(), options, 0, |_, _| Ok(())).await.unwrap());
        let start = Instant::now();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let wal = wal.clone();
                glommio::spawn_local(async move {
                    let record = Record::put(Version::new(1, 0, 1), vec![7; 100], 0);
                    for i in 0..COMMITS {
                        let key = format!("w{w:03}-{i:06}");
                        let lsn = wal.append(&[(key.as_bytes(), (&record).into())]).unwrap();
                        wal.commit(lsn).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        let elapsed = start.elapsed();
        let stats = wal.stats();
        eprintln!(
            "{WRITERS} writers x {COMMITS} sync commits of a 100-byte put: {:.0} commits/s, {:.1} batches per fdatasync",
            (WRITERS * COMMITS) as f64 / elapsed.as_secs_f64(),
            stats.batches as f64 / stats.syncs as f64
        );
        assert_eq!(stats.batches as usize, WRITERS * COMMITS);
        wal.close().await.unwrap();
    });
}
