//! Crash test with real processes for the manifest: a child applies records
//! (each adds one table and removes an older one) with a tiny snapshot size, so
//! it switches logs and CURRENT often, and prints each applied record; the
//! parent kills it with SIGKILL at random moments and checks after reopening
//! that every acknowledged record is there and the state is one the child
//! could have had. `MANIFEST_CRASH_CYCLES` sets the number of cycles (default 20).

use rand::{Rng, SeedableRng};
use ringkv_storage::manifest::{Manifest, ManifestEdit, ManifestOptions};
use ringkv_storage::{TableMeta, Version};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_DIR_ENV: &str = "MANIFEST_CRASH_CHILD_DIR";

fn options() -> ManifestOptions {
    ManifestOptions {
        snapshot_size: 8 * 1024,
    }
}

fn table(id: u64) -> TableMeta {
    TableMeta {
        id,
        level: (id % 4) as u32,
        size: 4096,
        entry_count: id,
        tombstone_count: 0,
        smallest_key: format!("a{id}").into_bytes(),
        largest_key: format!("z{id}").into_bytes(),
        max_version: Version::new(id, 0, 1),
    }
}

/// Record `n` adds table `n` and removes table `n - 10` (when n >= 10).
fn edits(n: u64) -> Vec<ManifestEdit> {
    let mut e = vec![ManifestEdit::AddTable(table(n))];
    if n >= 10 {
        e.push(ManifestEdit::RemoveTable {
            id: n - 10,
            level: ((n - 10) % 4) as u32,
        });
    }
    e.push(ManifestEdit::WalRetiredThrough(n));
    e
}

/// Opens the manifest and returns how many records it holds, checking that
/// the state is exactly the one after that many records.
fn recovered_records(dir: &Path) -> u64 {
    glommio::LocalExecutorBuilder::default()
        .make()
        .unwrap()
        .run(async {
            let (mut m, state) = Manifest::open_with(dir, options())
                .await
                .unwrap_or_else(|e| panic!("reopen after a crash failed: {e}"));
            m.close().await.unwrap();
            let applied = if state.tables.is_empty() {
                0
            } else {
                state.wal_retired_through + 1
            };
            let mut ids: Vec<u64> = state.tables.iter().map(|t| t.id).collect();
            ids.sort_unstable();
            let expected: Vec<u64> = (applied.saturating_sub(10)..applied).collect();
            assert_eq!(ids, expected, "state after {applied} records: {state:?}");
            applied
        })
}

/// The child's body: runs only when started by the parent test.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let next = recovered_records(&dir);
    glommio::LocalExecutorBuilder::default()
        .make()
        .unwrap()
        .run(async move {
            let (mut m, _) = Manifest::open_with(&dir, options()).await.unwrap();
            for n in next.. {
                m.apply(&edits(n)).await.unwrap();
                println!("ack {n}");
            }
        });
}

#[test]
fn every_acknowledged_manifest_record_survives_sigkill() {
    let cycles: usize = std::env::var("MANIFEST_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("MANIFEST_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed: {seed} (rerun with MANIFEST_CRASH_SEED={seed})");
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
        if let Some(l) = reader.join().unwrap() {
            acked_max = Some(acked_max.map_or(l, |m: u64| m.max(l)));
        }
        let applied = recovered_records(dir.path());
        if let Some(m) = acked_max {
            assert!(
                applied > m,
                "cycle {cycle}: record {m} was acknowledged but only {applied} records were recovered"
            );
        }
    }
    eprintln!("{cycles} cycles, highest acknowledged record {acked_max:?}");
    assert!(
        acked_max.is_some_and(|m| m > 0),
        "the child acknowledged records"
    );
}
