//! The engine against a `BTreeMap` model: random sequences of puts, deletes,
//! puts with a TTL, stale (lower-version) writes, batches, gets and scans,
//! interleaved with flushes, compactions and close + reopen, with a tiny
//! memtable and tiny tables so flushes and compactions really happen, and
//! half of the ops on a few hot keys (see [`HOT_KEYS`]).
//!
//! Time is fake: the test owns the clock the engine's compaction reads, and
//! passes the same `now_ms` to reads. Stale writes are at most half the
//! tombstone grace old, so purging a tombstone never changes an answer (the
//! rule the engine relies on in production).
//!
//! Run more cases with `PROPTEST_CASES=500 cargo test -p ringkv-storage --test model`.
//! Failures are kept in `tests/model.proptest-regressions`.

use proptest::prelude::*;
use ringkv_storage::engine::{Clock, Durability, Engine, Options, ScanRange, WriteBatch};
use ringkv_storage::sstable::TableOptions;
use ringkv_storage::{Record, Version};
use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const GRACE_MS: u64 = 200;
const KEY_COUNT: u16 = 120;
const PREFIXES: [&str; 6] = ["", "a", "b", "c0", "d1", "a00"];

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: u16,
        len: u16,
        ttl_ms: Option<u16>,
    },
    Delete {
        key: u16,
    },
    StalePut {
        key: u16,
        len: u16,
        age_ms: u16,
    },
    StaleDelete {
        key: u16,
        age_ms: u16,
    },
    Batch(Vec<(u16, Option<u16>)>),
    Get {
        key: u16,
    },
    ScanPrefix {
        prefix: usize,
        limit: usize,
    },
    ScanRange {
        a: u16,
        b: u16,
        a_inclusive: bool,
        b_bound: u8,
        limit: usize,
    },
    Advance {
        ms: u16,
    },
    Flush,
    Compact,
    Reopen,
}

/// Half of the ops go to these few keys, so that one key sees the short
/// sequences the row cache's rules are about (written stale over a flushed
/// record, read through the tables, written again, read) rather than each
/// key a handful of ops spread over a run. Without them the model missed a
/// read that cached a key the active memtable held (every seed catches that
/// now). A refill that puts back a key written again between its memtable's
/// freeze and the refill is still caught by about one case in a hundred
/// only; `a_flushed_memtable_puts_the_keys_read_in_it_back_in_the_row_cache`
/// (engine_basics) guards it.
const HOT_KEYS: u16 = 4;

fn key_strategy() -> impl Strategy<Value = u16> {
    prop_oneof![1 => 0..KEY_COUNT, 1 => 0..HOT_KEYS]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (key_strategy(), 0..300u16, proptest::option::weighted(0.2, 1..400u16))
            .prop_map(|(key, len, ttl_ms)| Op::Put { key, len, ttl_ms }),
        6 => key_strategy().prop_map(|key| Op::Delete { key }),
        3 => (key_strategy(), 0..100u16, 0..(GRACE_MS as u16 / 2))
            .prop_map(|(key, len, age_ms)| Op::StalePut { key, len, age_ms }),
        2 => (key_strategy(), 0..(GRACE_MS as u16 / 2)).prop_map(|(key, age_ms)| Op::StaleDelete { key, age_ms }),
        3 => proptest::collection::vec((key_strategy(), proptest::option::of(0..200u16)), 1..12).prop_map(Op::Batch),
        10 => key_strategy().prop_map(|key| Op::Get { key }),
        3 => (0..PREFIXES.len(), 1..40usize).prop_map(|(prefix, limit)| Op::ScanPrefix { prefix, limit }),
        3 => (key_strategy(), key_strategy(), any::<bool>(), 0..3u8, 1..40usize)
            .prop_map(|(a, b, a_inclusive, b_bound, limit)| Op::ScanRange { a, b, a_inclusive, b_bound, limit }),
        4 => (1..300u16).prop_map(|ms| Op::Advance { ms }),
        2 => Just(Op::Flush),
        2 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

/// Keys spread over a few prefixes so prefix scans select subsets.
fn key(n: u16) -> Vec<u8> {
    let lead = [b'a', b'b', b'c', b'd'][usize::from(n % 4)];
    format!("{}{:03}", lead as char, n / 4).into_bytes()
}

fn value(n: u16, len: u16, version: Version) -> Vec<u8> {
    let mut v = format!("{n}@{}.{}:", version.hlc, version.node).into_bytes();
    v.resize(v.len() + usize::from(len), b'x');
    v
}

fn options(clock: &Arc<AtomicU64>) -> Options {
    let clock = clock.clone();
    Options {
        durability: Durability::None,
        memtable_size: 4 * 1024,
        block_cache_size: 64 * 1024,
        // Small, so fills, evictions and forgets on writes interleave with
        // flushes and compactions: the model checks every read it answers.
        row_cache_size: 32 * 1024,
        wal_segment_size: 64 * 1024,
        table: TableOptions::default(),
        level0_trigger: 2,
        level_size_ratio: 3,
        level1_size: 12 * 1024,
        table_size_target: 8 * 1024,
        compaction_rate_bytes_per_sec: 0,
        tombstone_grace: Duration::from_millis(GRACE_MS),
        require_direct_io: true,
        background_shares: 100,
        clock: Clock::new(move || clock.load(Ordering::SeqCst)),
    }
}

struct Model {
    map: BTreeMap<Vec<u8>, Record>,
    used_versions: HashSet<Version>,
}

impl Model {
    fn apply(&mut self, key: Vec<u8>, record: Record) {
        match self.map.get(&key) {
            Some(old) if old.version >= record.version => {}
            _ => {
                self.map.insert(key, record);
            }
        }
    }

    fn get(&self, key: &[u8], now: u64) -> Option<Record> {
        self.map.get(key).filter(|r| !r.is_dead_at(now)).cloned()
    }

    fn scan(
        &self,
        start: Bound<Vec<u8>>,
        range: &ScanRange,
        limit: usize,
        now: u64,
    ) -> Vec<(Vec<u8>, Record)> {
        self.map
            .range((start, Bound::Unbounded))
            .take_while(|(k, _)| !range.is_past_end(k))
            .filter(|(_, r)| !r.is_dead_at(now))
            .take(limit)
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect()
    }
}

async fn run_ops(dir: &Path, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let clock = Arc::new(AtomicU64::new(1_000_000));
    let mut engine = Engine::open(dir, options(&clock)).await.map_err(fail)?;
    let mut model = Model {
        map: BTreeMap::new(),
        used_versions: HashSet::new(),
    };
    // Every write gets its own millisecond, so fresh versions are unique and rising.
    let fresh = |clock: &AtomicU64| {
        let now = clock.fetch_add(1, Ordering::SeqCst) + 1;
        Version::new(now, 0, 1)
    };
    for (step, op) in ops.into_iter().enumerate() {
        let now = clock.load(Ordering::SeqCst);
        match op {
            Op::Put {
                key: k,
                len,
                ttl_ms,
            } => {
                let version = fresh(&clock);
                let expires = ttl_ms.map_or(0, |t| version.physical_ms() + u64::from(t));
                let v = value(k, len, version);
                engine
                    .put(&key(k), &v, version, expires)
                    .await
                    .map_err(fail)?;
                model.apply(key(k), Record::put(version, v, expires));
            }
            Op::Delete { key: k } => {
                let version = fresh(&clock);
                engine.delete(&key(k), version).await.map_err(fail)?;
                model.apply(key(k), Record::tombstone(version));
            }
            Op::StalePut {
                key: k,
                len,
                age_ms,
            } => {
                let version =
                    Version::new(now.saturating_sub(u64::from(age_ms)), 1 + step as u16, 2);
                if model.used_versions.insert(version) {
                    let v = value(k, len, version);
                    engine.put(&key(k), &v, version, 0).await.map_err(fail)?;
                    model.apply(key(k), Record::put(version, v, 0));
                }
            }
            Op::StaleDelete { key: k, age_ms } => {
                let version =
                    Version::new(now.saturating_sub(u64::from(age_ms)), 1 + step as u16, 2);
                if model.used_versions.insert(version) {
                    engine.delete(&key(k), version).await.map_err(fail)?;
                    model.apply(key(k), Record::tombstone(version));
                }
            }
            Op::Batch(entries) => {
                let version = fresh(&clock);
                let mut batch = WriteBatch::new();
                for (i, (k, len)) in entries.into_iter().enumerate() {
                    // Distinct logical counters keep versions in the batch unique.
                    let version = Version::new(version.physical_ms(), i as u16, 1);
                    let record = match len {
                        Some(len) => {
                            let v = value(k, len, version);
                            batch.put(&key(k), &v, version, 0);
                            Record::put(version, v, 0)
                        }
                        None => {
                            batch.delete(&key(k), version);
                            Record::tombstone(version)
                        }
                    };
                    model.apply(key(k), record);
                }
                engine.write(batch).await.map_err(fail)?;
            }
            Op::Get { key: k } => {
                // First the answer without I/O, when the engine has one (the
                // full read below fills the row cache, which would make it
                // a cache hit): it must be the full read's.
                let live = |r: Option<ringkv_storage::RecordRef<'_>>| {
                    r.filter(|r| !r.is_dead_at(now)).map(|r| r.to_record())
                };
                if let Some(got) = engine.read_now(&key(k), live) {
                    prop_assert_eq!(
                        got,
                        model.get(&key(k), now),
                        "step {}: read_now {:?}",
                        step,
                        k
                    );
                }
                let got = engine.get(&key(k), now).await.map_err(fail)?;
                prop_assert_eq!(got, model.get(&key(k), now), "step {}: get {:?}", step, k);
            }
            Op::ScanPrefix { prefix, limit } => {
                let range = ScanRange::Prefix(PREFIXES[prefix].as_bytes().to_vec());
                check_scan(&engine, &model, range, limit, now, step).await?;
            }
            Op::ScanRange {
                a,
                b,
                a_inclusive,
                b_bound,
                limit,
            } => {
                let start = if a_inclusive {
                    Bound::Included(key(a))
                } else {
                    Bound::Excluded(key(a))
                };
                let end = match b_bound {
                    0 => Bound::Included(key(b)),
                    1 => Bound::Excluded(key(b)),
                    _ => Bound::Unbounded,
                };
                check_scan(
                    &engine,
                    &model,
                    ScanRange::Range { start, end },
                    limit,
                    now,
                    step,
                )
                .await?;
            }
            Op::Advance { ms } => {
                clock.fetch_add(u64::from(ms), Ordering::SeqCst);
            }
            Op::Flush => engine.flush().await.map_err(fail)?,
            Op::Compact => engine.compact().await.map_err(fail)?,
            Op::Reopen => {
                engine.close().await.map_err(fail)?;
                engine = Engine::open(dir, options(&clock)).await.map_err(fail)?;
            }
        }
    }
    // Finally every key, through a flush, a compaction and a reopen.
    engine.flush().await.map_err(fail)?;
    engine.compact().await.map_err(fail)?;
    engine.close().await.map_err(fail)?;
    let engine = Engine::open(dir, options(&clock)).await.map_err(fail)?;
    let now = clock.load(Ordering::SeqCst);
    for k in 0..KEY_COUNT {
        let got = engine.get(&key(k), now).await.map_err(fail)?;
        prop_assert_eq!(got, model.get(&key(k), now), "final get {:?}", k);
    }
    check_scan(
        &engine,
        &model,
        ScanRange::Prefix(Vec::new()),
        usize::MAX,
        now,
        usize::MAX,
    )
    .await?;
    engine.close().await.map_err(fail)?;
    Ok(())
}

async fn check_scan(
    engine: &Engine,
    model: &Model,
    range: ScanRange,
    limit: usize,
    now: u64,
    step: usize,
) -> Result<(), TestCaseError> {
    let got: Vec<(Vec<u8>, Record)> = engine
        .scan(range.clone(), limit, now)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|e| (e.key, e.record))
        .collect();
    let want = model.scan(range.start(), &range, limit, now);
    if got != want {
        prop_assert_eq!(
            summary(&got),
            summary(&want),
            "step {}: scan {:?} limit {}",
            step,
            range,
            limit
        );
        prop_assert!(
            false,
            "step {}: scan {:?} limit {}: values differ",
            step,
            range,
            limit
        );
    }
    Ok(())
}

/// Key, version and value length of each entry: readable in a failure report.
fn summary(entries: &[(Vec<u8>, Record)]) -> Vec<String> {
    entries
        .iter()
        .map(|(k, r)| {
            let v = r.value.as_ref().map_or(-1, |v| v.len() as i64);
            format!(
                "{}@{}.{}:{v}",
                String::from_utf8_lossy(k),
                r.version.hlc,
                r.version.node
            )
        })
        .collect()
}

fn fail(e: ringkv_storage::Error) -> TestCaseError {
    TestCaseError::fail(format!("engine error: {e}"))
}

/// Seeded so runs repeat; `RINGKV_SEED=<n>` picks another seed.
fn config() -> ProptestConfig {
    let seed = std::env::var("RINGKV_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_0002_u64);
    eprintln!("model test seed: RINGKV_SEED={seed}");
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(24),
        max_shrink_iters: 200,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn engine_matches_a_btreemap_model(ops in proptest::collection::vec(op_strategy(), 1..250)) {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let path = dir.path().to_path_buf();
        // A fresh thread per case: the engine's background queue is per thread
        // and per executor.
        std::thread::spawn(move || {
            glommio::LocalExecutorBuilder::default()
                .make()
                .expect("executor")
                .run(async move { run_ops(&path, ops).await })
        })
        .join()
        .expect("case thread")?;
    }
}
