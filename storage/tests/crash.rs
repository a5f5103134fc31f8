//! Crash test with real processes: a child process (this same test binary,
//! re-executed in child mode) writes in `sync` mode and prints every
//! acknowledged write to its stdout pipe; the parent SIGKILLs it at a random
//! moment, reopens the engine and checks every acknowledged write is there
//! with its value (or a newer one the child was writing when it died).
//!
//! The memtable and tables are tiny, so kills land in the middle of flushes
//! and compactions too. `RINGKV_CRASH_CYCLES=1000` runs more cycles;
//! `RINGKV_SEED=<n>` picks another seed (printed at start).

use rand::{Rng, SeedableRng};
use ringkv_storage::engine::{Durability, Engine, Options};
use ringkv_storage::Version;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "RINGKV_CRASH_CHILD_DIR";
const CYCLE_ENV: &str = "RINGKV_CRASH_CHILD_CYCLE";
const CYCLES_DEFAULT: u64 = 50;
const KEYS: u64 = 3000;
const WRITERS: u64 = 4;

fn options() -> Options {
    Options {
        durability: Durability::Sync,
        memtable_size: 24 * 1024,
        wal_segment_size: 64 * 1024,
        level0_trigger: 3,
        level1_size: 64 * 1024,
        level_size_ratio: 4,
        table_size_target: 32 * 1024,
        compaction_rate_bytes_per_sec: 0,
        ..Options::default()
    }
}

fn key(n: u64) -> Vec<u8> {
    format!("key{n:05}").into_bytes()
}

/// The value written at `version` for `key`: derived from both, so the
/// parent can tell a value belongs to its version.
fn value(key: &[u8], version: Version) -> Vec<u8> {
    let mut v = format!("{}@{}", String::from_utf8_lossy(key), version.hlc).into_bytes();
    let pad = (version.hlc % 200) as usize;
    v.extend(std::iter::repeat_n(b'.', pad));
    v
}

/// Child mode: write forever; print `ACK <key number> <hlc>` after each acknowledged write.
#[test]
fn crash_child_process_entry_point() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Not a child: nothing to do.
    };
    let cycle: u64 = std::env::var(CYCLE_ENV)
        .ok()
        .and_then(|c| c.parse().ok())
        .expect("cycle number");
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("executor")
        .run(async move {
            let engine = Engine::open(Path::new(&dir), options())
                .await
                .expect("child opens the engine");
            let mut tasks = Vec::new();
            for writer in 0..WRITERS {
                let engine = engine.clone();
                tasks.push(glommio::spawn_local(async move {
                    let mut rng = rand::rngs::SmallRng::seed_from_u64(cycle * 1000 + writer);
                    for i in 0u64.. {
                        let n = rng.gen_range(0..KEYS / WRITERS) * WRITERS + writer;
                        // Versions rise across cycles and writes.
                        let version = Version {
                            hlc: ((cycle + 1) << 32) | i,
                            node: writer as u32,
                        };
                        let k = key(n);
                        engine
                            .put(&k, &value(&k, version), version, 0)
                            .await
                            .expect("child write");
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {n} {} {}", version.hlc, version.node).expect("stdout");
                        out.flush().expect("stdout");
                    }
                }));
            }
            for t in tasks {
                t.await;
            }
        });
}

#[test]
fn acknowledged_writes_survive_sigkill_at_random_moments() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let cycles: u64 = std::env::var("RINGKV_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CYCLES_DEFAULT);
    let seed: u64 = std::env::var("RINGKV_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xC7A5_0001);
    eprintln!("crash test: RINGKV_SEED={seed} RINGKV_CRASH_CYCLES={cycles}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let exe = std::env::current_exe().expect("test binary path");
    // Highest acknowledged version per key number, over all cycles.
    let mut acked: HashMap<u64, Version> = HashMap::new();
    let mut total_acks = 0usize;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args([
                "crash_child_process_entry_point",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env(CYCLE_ENV, cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped stdout");
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => lines.push(l),
                    Err(_) => break,
                }
            }
            lines
        });
        // Let the child open (replaying the WAL) and write for a while.
        let delay = Duration::from_millis(rng.gen_range(100..450));
        let started = Instant::now();
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL the child");
        let status = child.wait().expect("reap the child");
        let lines = reader.join().expect("reader thread");
        let mut acks_this_cycle = 0usize;
        for line in &lines {
            let mut parts = line.split_whitespace();
            if parts.next() != Some("ACK") {
                continue;
            }
            let parsed: Option<(u64, u64, u32)> = (|| {
                Some((
                    parts.next()?.parse().ok()?,
                    parts.next()?.parse().ok()?,
                    parts.next()?.parse().ok()?,
                ))
            })();
            // A line cut by the kill does not parse and was not complete: skip it.
            let Some((n, hlc, node)) = parsed else {
                continue;
            };
            let v = Version { hlc, node };
            let e = acked.entry(n).or_insert(v);
            *e = (*e).max(v);
            acks_this_cycle += 1;
        }
        total_acks += acks_this_cycle;
        assert!(
            status.code().is_none(),
            "cycle {cycle}: the child exited by itself ({status}) instead of being killed; seed {seed}"
        );
        verify(dir.path(), &acked, cycle, seed);
        eprintln!(
            "cycle {cycle}: killed after {:?}, {acks_this_cycle} acks, {} keys verified",
            started.elapsed(),
            acked.len()
        );
    }
    assert!(total_acks > 0, "no child ever acknowledged a write");
}

/// Reopens the engine in-process and checks every acknowledged write.
fn verify(dir: &Path, acked: &HashMap<u64, Version>, cycle: u64, seed: u64) {
    let dir: PathBuf = dir.to_path_buf();
    let acked = acked.clone();
    // A fresh thread per cycle: the engine's background queue is per thread and executor.
    std::thread::spawn(move || {
        glommio::LocalExecutorBuilder::default()
        .make()
        .expect("executor")
        .run(async move {
            let engine = Engine::open(&dir, options())
                .await
                .unwrap_or_else(|e| panic!("cycle {cycle}: reopen failed: {e}; seed {seed}"));
            for (n, want) in &acked {
                let k = key(*n);
                let got = engine
                    .get_record(&k)
                    .await
                    .unwrap_or_else(|e| panic!("cycle {cycle}: read of key {n} failed: {e}; seed {seed}"));
                let Some(got) = got else {
                    panic!("cycle {cycle}: acknowledged key {n} (version {want:?}) is lost; seed {seed}");
                };
                // An unacknowledged later write may have reached the disk too.
                assert!(
                    got.version >= *want,
                    "cycle {cycle}: key {n} went back from {want:?} to {:?}; seed {seed}",
                    got.version
                );
                assert_eq!(
                    got.value.as_deref(),
                    Some(value(&k, got.version).as_slice()),
                    "cycle {cycle}: key {n} holds a value that is not its version's; seed {seed}"
                );
            }
            engine.close().await.expect("close after verification");
        });
    })
    .join()
    .unwrap_or_else(|_| panic!("cycle {cycle}: verification failed; seed {seed}"));
}
