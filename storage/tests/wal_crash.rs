//! Crash test with real processes: a child appends and commits batches in
//! `Sync` mode and prints each acknowledged one; the parent kills it with
//! SIGKILL at a random moment, reopens the WAL and checks that every
//! acknowledged batch is replayed, in order, with its value, and nothing else
//! but whole batches. `WAL_CRASH_CYCLES` sets the number of cycles (default 20).

use rand::{Rng, SeedableRng};
use ringkv_storage::wal::{Durability, Wal, WalOptions};
use ringkv_storage::{Record, Version};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_DIR_ENV: &str = "WAL_CRASH_CHILD_DIR";

fn options() -> WalOptions {
    WalOptions {
        segment_size: 64 * 1024,
        durability: Durability::Sync,
        ..WalOptions::default()
    }
}

fn value_of(i: u64) -> Vec<u8> {
    vec![(i % 251) as u8; (i % 700) as usize]
}

/// Replays the WAL in `dir` and returns the batch numbers in replay order,
/// checking each batch's content.
fn replay_all(dir: &Path) -> Vec<u64> {
    glommio::LocalExecutorBuilder::default()
        .make()
        .unwrap()
        .run(async {
            ringkv_storage::io::prepare_dir(dir, true).await.unwrap();
            let mut seen = Vec::new();
            let wal = Wal::open(dir, options(), 0, |_, entries| {
                assert_eq!(entries.len(), 1);
                let (key, record) = &entries[0];
                let i: u64 = std::str::from_utf8(key).unwrap()[1..].parse().unwrap();
                assert_eq!(record.value.as_deref(), Some(&value_of(i)[..]), "batch {i}");
                seen.push(i);
                Ok(())
            })
            .await
            .unwrap_or_else(|e| panic!("reopen after a crash failed: {e}"));
            wal.close().await.unwrap();
            seen
        })
}

/// The child's body: runs only when started by the parent test.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let next = replay_all(&dir).last().map_or(0, |i| i + 1);
    glommio::LocalExecutorBuilder::default()
        .make()
        .unwrap()
        .run(async move {
            ringkv_storage::io::prepare_dir(&dir, true).await.unwrap();
            let wal = Wal::open(&dir, options(), 0, |_, _| Ok(())).await.unwrap();
            for i in next.. {
                let key = format!("k{i:010}");
                let record = Record::put(Version::new(i, 0, 1), value_of(i), 0);
                let lsn = wal.append(&[(key.as_bytes(), (&record).into())]).unwrap();
                wal.commit(lsn).await.unwrap();
                println!("ack {i}");
            }
        });
}

#[test]
fn every_acknowledged_batch_survives_sigkill() {
    let cycles: usize = std::env::var("WAL_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("WAL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed: {seed} (rerun with WAL_CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut acked_max: Option<u64> = None;
    for cycle in 0..cycles {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.strip_prefix("ack ") {
                    last = Some(i.parse::<u64>().unwrap());
                }
            }
            last
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..250)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let last = reader.join().unwrap();
        if let Some(l) = last {
            acked_max = Some(acked_max.map_or(l, |m: u64| m.max(l)));
        }
        let seen = replay_all(dir.path());
        let expected: Vec<u64> = (0..seen.len() as u64).collect();
        assert_eq!(
            seen, expected,
            "cycle {cycle}: batches replayed out of order or with gaps"
        );
        if let Some(m) = acked_max {
            assert!(
                seen.len() as u64 > m,
                "cycle {cycle}: batch {m} was acknowledged but only {} batches were replayed",
                seen.len()
            );
        }
    }
    eprintln!("{cycles} cycles, highest acknowledged batch {acked_max:?}");
    assert!(
        acked_max.is_some_and(|m| m > 0),
        "the child acknowledged writes"
    );
}
