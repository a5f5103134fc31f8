//! The engine's API end to end on real O_DIRECT files: limits, last-write-wins,
//! TTL, scans, flush, compaction, reopen, stats, and the regression test for
//! glommio's empty-first-file trap.

use ringkv_storage::engine::{Clock, Durability, Engine, Options, ScanRange, WriteBatch};
use ringkv_storage::limits::{KEY_SIZE_MAX, VALUE_SIZE_MAX};
use ringkv_storage::{Error, Version};
use std::future::Future;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn v(hlc: u64) -> Version {
    Version { hlc, node: 1 }
}

/// A key's value and version as [`Engine::get_record`] finds them (reading
/// tables if it must), `None` when absent.
async fn full_read(e: &Engine, key: &[u8]) -> Option<(Option<Vec<u8>>, Version)> {
    e.get_record(key)
        .await
        .expect("get")
        .map(|r| (r.value, r.version))
}

/// What [`Engine::read_now`] saw of a key without I/O: `Some(None)` absent,
/// `Some(Some((value, version)))` found, `None` when a table must be read.
fn read_now_seen(e: &Engine, key: &[u8]) -> Option<Option<(Option<Vec<u8>>, Version)>> {
    e.read_now(key, |r| r.map(|r| (r.value.map(<[u8]>::to_vec), r.version)))
}

fn small() -> Options {
    Options {
        durability: Durability::None,
        memtable_size: 8 * 1024,
        wal_segment_size: 64 * 1024,
        level0_trigger: 2,
        level1_size: 32 * 1024,
        level_size_ratio: 4,
        table_size_target: 16 * 1024,
        compaction_rate_bytes_per_sec: 0,
        ..Options::default()
    }
}

fn run<F, Fut>(f: F)
where
    F: FnOnce(PathBuf) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let path = dir.path().to_path_buf();
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("executor")
        .run(f(path));
}

#[test]
fn oversized_and_empty_keys_and_values_are_refused_before_anything_is_written() {
    // A WAL segment must hold the largest batch.
    let options = || Options {
        wal_segment_size: 4 * 1024 * 1024,
        ..small()
    };
    run(move |dir| async move {
        let engine = Engine::open(&dir, options()).await.expect("open");
        let big_key = vec![b'k'; KEY_SIZE_MAX + 1];
        let err = engine
            .put(&big_key, b"v", v(1), 0)
            .await
            .expect_err("key too large");
        assert!(
            matches!(err, Error::KeyTooLarge { size, size_max } if size == KEY_SIZE_MAX + 1 && size_max == KEY_SIZE_MAX)
        );
        let big_value = vec![0u8; VALUE_SIZE_MAX + 1];
        let err = engine
            .put(b"k", &big_value, v(1), 0)
            .await
            .expect_err("value too large");
        assert!(matches!(err, Error::ValueTooLarge { .. }));
        assert!(matches!(
            engine.put(b"", b"v", v(1), 0).await,
            Err(Error::KeyEmpty)
        ));
        // A batch with one bad entry is refused whole.
        let mut batch = WriteBatch::new();
        batch.put(b"good", b"v", v(2), 0);
        batch.put(&big_key, b"v", v(2), 0);
        assert!(engine.write(batch).await.is_err());
        assert_eq!(engine.get(b"good", 0).await.expect("get"), None);
        // The limits themselves are accepted.
        engine
            .put(
                &vec![b'k'; KEY_SIZE_MAX],
                &vec![1u8; VALUE_SIZE_MAX],
                v(3),
                0,
            )
            .await
            .expect("at the limits");
        engine.close().await.expect("close");
        let engine = Engine::open(&dir, options()).await.expect("reopen");
        let got = engine
            .get(&vec![b'k'; KEY_SIZE_MAX], 0)
            .await
            .expect("get")
            .expect("present");
        assert_eq!(got.value.map(|v| v.len()), Some(VALUE_SIZE_MAX));
        assert_eq!(engine.get(b"good", 0).await.expect("get"), None);
        engine.close().await.expect("close");
    });
}

#[test]
fn the_highest_version_wins_wherever_it_is_stored() {
    run(|dir| async move {
        let engine = Engine::open(&dir, small()).await.expect("open");
        engine.put(b"k", b"new", v(10), 0).await.expect("put");
        engine.flush().await.expect("flush");
        // An older write arrives later: it lands in the memtable but loses.
        engine.put(b"k", b"old", v(5), 0).await.expect("put");
        assert_eq!(
            engine
                .get(b"k", 0)
                .await
                .expect("get")
                .and_then(|r| r.value),
            Some(b"new".to_vec())
        );
        engine.delete(b"k", v(7)).await.expect("stale delete");
        assert_eq!(
            engine.get(b"k", 0).await.expect("get").map(|r| r.version),
            Some(v(10))
        );
        engine.flush().await.expect("flush");
        engine.compact().await.expect("compact");
        engine.delete(b"k", v(11)).await.expect("delete");
        assert_eq!(engine.get(b"k", 0).await.expect("get"), None);
        assert_eq!(
            engine
                .get_record(b"k")
                .await
                .expect("get")
                .map(|r| r.version),
            Some(v(11))
        );
        engine.close().await.expect("close");
    });
}

#[test]
fn expired_values_read_as_absent() {
    run(|dir| async move {
        let engine = Engine::open(&dir, small()).await.expect("open");
        engine.put(b"ttl", b"v", v(1), 1_000).await.expect("put");
        assert!(engine.get(b"ttl", 999).await.expect("get").is_some());
        assert!(engine.get(b"ttl", 1_000).await.expect("get").is_none());
        let all = engine
            .scan(ScanRange::Prefix(Vec::new()), 10, 2_000)
            .await
            .expect("scan");
        assert!(all.is_empty());
        engine.close().await.expect("close");
    });
}

#[test]
fn scans_merge_memtables_and_tables_in_key_order_with_limits() {
    run(|dir| async move {
        let engine = Engine::open(&dir, small()).await.expect("open");
        for i in 0..2000u64 {
            let k = format!("k{:05}", i);
            engine
                .put(k.as_bytes(), &[b'x'; 50], v(i + 1), 0)
                .await
                .expect("put");
        }
        for i in (0..2000u64).step_by(3) {
            engine
                .delete(format!("k{:05}", i).as_bytes(), v(10_000 + i))
                .await
                .expect("delete");
        }
        let stats = engine.stats();
        assert!(
            stats.flushes > 0,
            "the tiny memtable was flushed: {stats:?}"
        );
        let range = ScanRange::Range {
            start: Bound::Included(b"k00100".to_vec()),
            end: Bound::Excluded(b"k00110".to_vec()),
        };
        let keys: Vec<Vec<u8>> = engine
            .scan(range, 100, 0)
            .await
            .expect("scan")
            .into_iter()
            .map(|e| e.key)
            .collect();
        let want: Vec<Vec<u8>> = (100..110u64)
            .filter(|i| i % 3 != 0)
            .map(|i| format!("k{:05}", i).into_bytes())
            .collect();
        assert_eq!(keys, want);
        let first = engine
            .scan(ScanRange::Prefix(b"k01".to_vec()), 5, 0)
            .await
            .expect("scan");
        assert_eq!(first.len(), 5);
        assert_eq!(first[0].key, b"k01000".to_vec());
        let inverted = ScanRange::Range {
            start: Bound::Included(b"z".to_vec()),
            end: Bound::Included(b"a".to_vec()),
        };
        assert!(engine.scan(inverted, 10, 0).await.expect("scan").is_empty());
        engine.close().await.expect("close");
    });
}

#[test]
fn reopen_keeps_every_write_and_compaction_keeps_levels_within_target() {
    run(|dir| async move {
        let engine = Engine::open(&dir, small()).await.expect("open");
        for i in 0..3000u64 {
            let k = format!("k{:05}", (i * 7919) % 3000);
            engine
                .put(k.as_bytes(), &[b'y'; 60], v(i + 1), 0)
                .await
                .expect("put");
        }
        engine.flush().await.expect("flush");
        engine.compact().await.expect("compact");
        let stats = engine.stats();
        assert!(stats.compactions > 0, "{stats:?}");
        assert!(stats.tables_per_level[0] < 2, "L0 drained: {stats:?}");
        assert!(stats.write_amplification > 1.0, "{stats:?}");
        engine.close().await.expect("close");
        let engine = Engine::open(&dir, small()).await.expect("reopen");
        for i in 0..3000u64 {
            let k = format!("k{:05}", i);
            assert!(
                engine.get(k.as_bytes(), 0).await.expect("get").is_some(),
                "{k} lost"
            );
        }
        engine.close().await.expect("close");
    });
}

#[test]
fn closed_engines_refuse_operations() {
    run(|dir| async move {
        let engine = Engine::open(&dir, small()).await.expect("open");
        engine.close().await.expect("close");
        assert!(matches!(
            engine.put(b"k", b"v", v(1), 0).await,
            Err(Error::Closed)
        ));
        assert!(matches!(engine.get(b"k", 0).await, Err(Error::Closed)));
    });
}

/// Regression: glommio 0.9 marks a device pollable if the first DMA file a
/// thread opens on it is empty, and every later O_DIRECT read fails with
/// EOPNOTSUPP. Opening an engine on an empty directory creates empty files
/// first; reads of real tables on a fresh thread must still work.
#[test]
fn direct_reads_work_after_the_first_file_opened_on_a_thread_is_empty() {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let tables: PathBuf = root.path().join("tables");
    let empty: PathBuf = root.path().join("empty");
    let build = tables.clone();
    // Thread 1 writes real tables.
    std::thread::spawn(move || {
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async move {
                let engine = Engine::open(&build, small()).await.expect("open");
                for i in 0..500u64 {
                    engine
                        .put(format!("k{i:04}").as_bytes(), &[b'z'; 100], v(i + 1), 0)
                        .await
                        .expect("put");
                }
                engine.flush().await.expect("flush");
                engine.close().await.expect("close");
            });
    })
    .join()
    .expect("writer thread");
    // Thread 2 (fresh executor): the first engine it opens is on an empty dir.
    std::thread::spawn(move || {
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async move {
                let fresh = Engine::open(&empty, small()).await.expect("open empty");
                let reader = Engine::open(&tables, small()).await.expect("open tables");
                for i in 0..500u64 {
                    let got = reader
                        .get(format!("k{i:04}").as_bytes(), 0)
                        .await
                        .expect("direct read");
                    assert_eq!(got.and_then(|r| r.value), Some(vec![b'z'; 100]));
                }
                assert!(reader.stats().block_cache.misses > 0, "reads went to disk");
                reader.close().await.expect("close");
                fresh.close().await.expect("close");
            });
    })
    .join()
    .expect("reader thread");
}

#[test]
fn concurrent_sync_writers_keep_going_through_flushes() {
    run(|dir| async move {
        let options = Options {
            durability: Durability::Sync,
            ..small()
        };
        let engine = Engine::open(&dir, options).await.expect("open");
        let mut tasks = Vec::new();
        for w in 0..4u64 {
            let engine = engine.clone();
            tasks.push(glommio::spawn_local(async move {
                for i in 0..300u64 {
                    let k = format!("w{w}-{i:04}");
                    engine
                        .put(k.as_bytes(), &[b'v'; 100], v(i * 4 + w + 1), 0)
                        .await
                        .expect("put");
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        let stats = engine.stats();
        assert!(stats.flushes > 0 && stats.wal_syncs > 0, "{stats:?}");
        for w in 0..4u64 {
            for i in 0..300u64 {
                let k = format!("w{w}-{i:04}");
                assert!(
                    engine.get(k.as_bytes(), 0).await.expect("get").is_some(),
                    "{k}"
                );
            }
        }
        engine.close().await.expect("close");
    });
}

#[test]
fn compaction_purges_old_tombstones_and_expired_values_only_after_the_grace_period() {
    run(|dir| async move {
        let now = Arc::new(AtomicU64::new(10_000));
        let clock = now.clone();
        let options = Options {
            tombstone_grace: Duration::from_millis(1_000),
            clock: Clock::new(move || clock.load(Ordering::SeqCst)),
            ..small()
        };
        let engine = Engine::open(&dir, options).await.expect("open");
        let at = |ms: u64| Version::new(ms, 0, 1);
        engine
            .put(b"deleted", b"v", at(9_000), 0)
            .await
            .expect("put");
        engine
            .put(b"expiring", b"v", at(9_000), 9_500)
            .await
            .expect("put ttl");
        engine.put(b"kept", b"v", at(9_000), 0).await.expect("put");
        engine.flush().await.expect("flush");
        engine.delete(b"deleted", at(9_100)).await.expect("delete");
        engine.flush().await.expect("flush");
        engine.compact().await.expect("compact");
        // Young: the tombstone and the expired value (now a tombstone) stay.
        assert_eq!(
            engine
                .get_record(b"deleted")
                .await
                .expect("get")
                .map(|r| r.version),
            Some(at(9_100))
        );
        let expiring = engine
            .get_record(b"expiring")
            .await
            .expect("get")
            .expect("still recorded");
        assert!(expiring.is_dead_at(10_000));
        // Past the grace period, a compaction at the bottommost level drops
        // them (new tables spanning a..z make the old one part of the job).
        now.store(20_000, Ordering::SeqCst);
        engine.put(b"a", b"v", at(19_000), 0).await.expect("put");
        engine.flush().await.expect("flush");
        engine.put(b"z", b"v", at(19_001), 0).await.expect("put");
        engine.flush().await.expect("flush");
        engine.compact().await.expect("compact");
        assert_eq!(engine.get_record(b"deleted").await.expect("get"), None);
        assert_eq!(engine.get_record(b"expiring").await.expect("get"), None);
        assert!(engine.get(b"kept", 20_000).await.expect("get").is_some());
        engine.close().await.expect("close");
    });
}

/// `path` relative to the current directory (`..` steps up to the common prefix).
fn relative_to_cwd(path: &std::path::Path) -> PathBuf {
    let cwd = std::env::current_dir().expect("cwd");
    let common = cwd
        .components()
        .zip(path.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut rel = PathBuf::new();
    for _ in common..cwd.components().count() {
        rel.push("..");
    }
    for c in path.components().skip(common) {
        rel.push(c);
    }
    rel
}

#[test]
fn an_engine_opened_by_relative_path_flushes_and_reopens() {
    run(|dir| async move {
        let rel = relative_to_cwd(&dir);
        assert!(rel.is_relative());
        let engine = Engine::open(&rel, small())
            .await
            .expect("open by relative path");
        engine.put(b"k", b"v", v(1), 0).await.expect("put");
        engine.flush().await.expect("flush (syncs the directory)");
        engine.close().await.expect("close");
        let engine = Engine::open(&rel, small()).await.expect("reopen");
        assert!(engine.get(b"k", 0).await.expect("get").is_some());
        engine.close().await.expect("close");
    });
}

/// Regression (found by the model test): a frozen memtable was invisible to
/// reads and to compaction's tombstone check while its WAL rotation ran.
#[test]
fn reads_see_every_memtable_while_a_wal_rotation_runs() {
    run(|dir| async move {
        let options = Options {
            durability: Durability::Sync,
            ..small()
        };
        let engine = Engine::open(&dir, options).await.expect("open");
        let done = std::rc::Rc::new(std::cell::Cell::new(false));
        let writer = {
            let (engine, done) = (engine.clone(), done.clone());
            glommio::spawn_local(async move {
                for i in 0..400u64 {
                    let k = format!("k{i:04}");
                    engine
                        .put(k.as_bytes(), &[b'v'; 100], v(i + 1), 0)
                        .await
                        .expect("put");
                }
                done.set(true);
            })
        };
        let mut checks = 0u64;
        while !done.get() {
            // The latest keys (in the memtable being frozen, at a rotation)
            // are readable at every moment.
            let last = (engine.stats().user_bytes_written / 105).min(400);
            for i in last.saturating_sub(10)..last {
                let k = format!("k{i:04}");
                assert!(
                    engine.get(k.as_bytes(), 0).await.expect("get").is_some(),
                    "{k} invisible"
                );
            }
            checks += 1;
            // A timer, not a yield: a task that never parks delays I/O completions.
            glommio::timer::sleep(Duration::from_micros(200)).await;
        }
        writer.await;
        assert!(engine.stats().flushes > 0 && checks > 0);
        engine.close().await.expect("close");
    });
}

#[test]
fn row_cache_answers_repeated_reads_and_follows_writes_flushes_and_compactions() {
    run(|dir| async move {
        let engine = Engine::open(&dir, small()).await.expect("open");
        let at = |hlc: u64| Version::new(hlc, 0, 1);
        let value = |e: &Engine, key: &'static [u8]| {
            let e = e.clone();
            async move { e.get(key, 0).await.expect("get").and_then(|r| r.value) }
        };
        engine.put(b"k", b"one", at(1), 0).await.expect("put");
        engine.flush().await.expect("flush");
        // The first read fills the cache from the table, the second hits it.
        assert_eq!(value(&engine, b"k").await.as_deref(), Some(&b"one"[..]));
        assert_eq!(value(&engine, b"k").await.as_deref(), Some(&b"one"[..]));
        let hits = engine.stats().row_cache.hits;
        assert!(hits >= 1, "a repeated read is a row-cache hit");
        // A newer write replaces the cached record; an older one (a replica
        // catching up) does not.
        engine.put(b"k", b"two", at(3), 0).await.expect("put");
        engine.put(b"k", b"stale", at(2), 0).await.expect("put");
        assert_eq!(value(&engine, b"k").await.as_deref(), Some(&b"two"[..]));
        // Through flushes and compactions of many other keys, the cached
        // answer stays the newest one.
        for i in 0..400u64 {
            let key = format!("other-{i:04}");
            engine
                .put(key.as_bytes(), &[b'x'; 64], at(10 + i), 0)
                .await
                .expect("put");
        }
        engine.flush().await.expect("flush");
        engine.compact().await.expect("compact");
        // Filled again from the tables, then a hit.
        assert_eq!(value(&engine, b"k").await.as_deref(), Some(&b"two"[..]));
        assert_eq!(value(&engine, b"k").await.as_deref(), Some(&b"two"[..]));
        engine.delete(b"k", at(1_000)).await.expect("delete");
        assert_eq!(value(&engine, b"k").await, None);
        assert!(engine.stats().row_cache.hits > hits);
        engine.close().await.expect("close");
    });
}

#[test]
fn the_row_cache_holds_no_key_the_active_memtable_holds_and_reads_stay_newest() {
    run(|dir| async move {
        let engine = Engine::open(&dir, small()).await.expect("open");
        let at = |hlc: u64| Version::new(hlc, 0, 1);
        let hits = |e: &Engine| e.stats().row_cache.hits;
        // Cached from a table: the second read hits.
        engine.put(b"k", b"one", at(1), 0).await.expect("put");
        engine.flush().await.expect("flush");
        assert_eq!(
            full_read(&engine, b"k").await,
            Some((Some(b"one".to_vec()), at(1)))
        );
        let before = hits(&engine);
        assert_eq!(
            full_read(&engine, b"k").await,
            Some((Some(b"one".to_vec()), at(1)))
        );
        assert_eq!(hits(&engine), before + 1, "a key only in a table is cached");
        // A write brings the key into the active memtable: the cache forgets
        // it, and neither reads nor overwrites bring it back there.
        engine.put(b"k", b"two", at(2), 0).await.expect("put");
        let before = hits(&engine);
        for (value, hlc) in [(&b"two"[..], 2), (b"three", 3), (b"four", 4)] {
            if hlc > 2 {
                engine.put(b"k", value, at(hlc), 0).await.expect("put");
            }
            assert_eq!(
                full_read(&engine, b"k").await,
                Some((Some(value.to_vec()), at(hlc)))
            );
            assert_eq!(
                full_read(&engine, b"k").await,
                Some((Some(value.to_vec()), at(hlc)))
            );
        }
        // A stale write (a replica catching up) changes nothing.
        engine.put(b"k", b"stale", at(3), 0).await.expect("put");
        assert_eq!(
            full_read(&engine, b"k").await,
            Some((Some(b"four".to_vec()), at(4)))
        );
        assert_eq!(
            hits(&engine),
            before,
            "the active memtable answered every read"
        );
        // Once flushed, the key is cached again, with the newest record.
        engine.flush().await.expect("flush");
        assert_eq!(
            full_read(&engine, b"k").await,
            Some((Some(b"four".to_vec()), at(4)))
        );
        let before = hits(&engine);
        assert_eq!(
            full_read(&engine, b"k").await,
            Some((Some(b"four".to_vec()), at(4)))
        );
        assert_eq!(hits(&engine), before + 1);
        // A stale write of a cached key lands in the active memtable and
        // forgets the key here; the table's newer record still answers.
        engine.put(b"k", b"stale", at(2), 0).await.expect("put");
        assert_eq!(
            full_read(&engine, b"k").await,
            Some((Some(b"four".to_vec()), at(4)))
        );
        let before = hits(&engine);
        engine.put(b"k", b"five", at(5), 0).await.expect("put");
        assert_eq!(
            full_read(&engine, b"k").await,
            Some((Some(b"five".to_vec()), at(5)))
        );
        assert_eq!(
            hits(&engine),
            before,
            "not cached while the memtable holds it"
        );
        engine.close().await.expect("close");
    });
}

#[test]
fn a_flushed_memtable_puts_the_keys_read_in_it_back_in_the_row_cache() {
    run(|dir| async move {
        let engine = Engine::open(&dir, small()).await.expect("open");
        engine.put(b"read", b"r1", v(1), 0).await.expect("put");
        engine.put(b"unread", b"u1", v(2), 0).await.expect("put");
        engine.put(b"rewritten", b"w1", v(3), 0).await.expect("put");
        // Read while the memtable is the active one: answered there, marked.
        for key in [&b"read"[..], b"rewritten"] {
            assert!(matches!(read_now_seen(&engine, key), Some(Some(_))));
        }
        // Written again once the memtable is frozen and before its flush
        // ends (so before the refill): the new active memtable holds the
        // newer record, which the refill must not shadow.
        let flush = glommio::spawn_local({
            let e = engine.clone();
            async move { e.flush().await }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while engine.stats().frozen_memtables == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the memtable never froze"
            );
            futures_lite::future::yield_now().await;
        }
        engine.put(b"rewritten", b"w2", v(4), 0).await.expect("put");
        assert_eq!(
            engine.stats().flushes,
            0,
            "the put landed before the flush ended"
        );
        flush.await.expect("flush");
        // The refill runs in the background: wait for it, bounded.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while read_now_seen(&engine, b"read").is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the read key never came back"
            );
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let hits = engine.stats().row_cache.hits;
        assert_eq!(
            read_now_seen(&engine, b"read"),
            Some(Some((Some(b"r1".to_vec()), v(1))))
        );
        assert_eq!(
            engine.stats().row_cache.hits,
            hits + 1,
            "answered by the cache"
        );
        // Never read: not cached, a table must be read.
        assert_eq!(read_now_seen(&engine, b"unread"), None);
        assert_eq!(
            read_now_seen(&engine, b"rewritten"),
            Some(Some((Some(b"w2".to_vec()), v(4))))
        );
        engine.close().await.expect("close");
    });
}

#[test]
fn a_read_without_io_answers_only_when_no_table_can_hold_a_newer_record() {
    run(|dir| async move {
        let engine = Engine::open(&dir, small()).await.expect("open");
        // Before any flush the memtable answers every key, absent ones too.
        // The active memtable's answer is not cached: it answers again.
        engine.put(b"k1", b"one", v(10), 0).await.expect("put");
        assert_eq!(
            read_now_seen(&engine, b"k1"),
            Some(Some((Some(b"one".to_vec()), v(10))))
        );
        assert_eq!(read_now_seen(&engine, b"nope"), Some(None));
        let hits = engine.stats().row_cache.hits;
        assert_eq!(
            read_now_seen(&engine, b"k1"),
            Some(Some((Some(b"one".to_vec()), v(10))))
        );
        assert_eq!(
            engine.stats().row_cache.hits,
            hits,
            "the active memtable's answer is not cached"
        );

        // A key only in a table needs the table.
        engine.put(b"k3", b"three", v(30), 0).await.expect("put");
        engine.flush().await.expect("flush");
        assert_eq!(read_now_seen(&engine, b"k3"), None);
        // A key past every table's range does not.
        assert_eq!(read_now_seen(&engine, b"zz"), Some(None));
        // A stale write (a replica catching up) lands in the memtable, but the
        // table may hold a newer record: only the full read answers.
        engine.put(b"k3", b"stale", v(5), 0).await.expect("put");
        assert_eq!(read_now_seen(&engine, b"k3"), None);
        assert_eq!(
            full_read(&engine, b"k3").await,
            Some((Some(b"three".to_vec()), v(30)))
        );
        // A newer write beats every table: answered at once.
        engine.put(b"k4", b"four", v(40), 0).await.expect("put");
        engine.delete(b"k4", v(41)).await.expect("delete");
        assert_eq!(read_now_seen(&engine, b"k4"), Some(Some((None, v(41)))));
        assert_eq!(full_read(&engine, b"k4").await, Some((None, v(41))));
        engine.close().await.expect("close");
    });
}

#[test]
fn a_memtable_replayed_from_more_wal_than_its_span_allows_is_flushed_at_the_first_write() {
    // Written with a 64 KiB budget (a span of 256 KiB of WAL), 1300
    // overwrites (over 128 KiB of WAL, less than 256 KiB) of four keys never freeze the memtable; reopened with a
    // 32 KiB budget (a span of 128 KiB), the WAL replayed at open already
    // spans more than that, so the first write must freeze and flush it. Only
    // the replayed bytes can say so: the memtable holds four small entries.
    let budget = |memtable_size| Options {
        memtable_size,
        ..small()
    };
    run(move |dir| async move {
        let engine = Engine::open(&dir, budget(64 * 1024)).await.expect("open");
        for i in 0..1300u64 {
            let k = format!("hot{}", i % 4);
            engine
                .put(k.as_bytes(), &[b'r'; 100], v(i + 1), 0)
                .await
                .expect("put");
        }
        let stats = engine.stats();
        assert_eq!(stats.flushes, 0, "flushed before the reopen: {stats:?}");
        // The WAL holds more than the entries' bytes (frame and entry headers).
        assert!(stats.user_bytes_written > 128 * 1024, "{stats:?}");
        engine.close().await.expect("close");

        let engine = Engine::open(&dir, budget(32 * 1024)).await.expect("reopen");
        assert_eq!(engine.stats().flushes, 0, "the open itself flushed");
        engine
            .put(b"hot0", b"after", v(5000), 0)
            .await
            .expect("put after reopen");
        let mut waited = Duration::ZERO;
        while engine.stats().flushes == 0 && waited < Duration::from_secs(10) {
            glommio::timer::sleep(Duration::from_millis(10)).await;
            waited += Duration::from_millis(10);
        }
        let stats = engine.stats();
        assert!(
            stats.flushes > 0,
            "the replayed WAL did not count toward the span: {stats:?}"
        );
        let got = engine
            .get(b"hot0", 0)
            .await
            .expect("get")
            .and_then(|r| r.value);
        assert_eq!(got.as_deref(), Some(&b"after"[..]));
        let got = engine
            .get(b"hot3", 0)
            .await
            .expect("get")
            .and_then(|r| r.value);
        assert_eq!(got, Some(vec![b'r'; 100]));
        engine.close().await.expect("close");
    });
}

#[test]
fn overwrites_that_never_fill_the_memtable_still_flush_and_keep_the_wal_bounded() {
    run(|dir| async move {
        let engine = Engine::open(&dir, small()).await.expect("open");
        // Four hot keys overwritten in place: the memtable stays far under
        // its 8 KiB budget while about 1.6 MiB of WAL (25 segments) goes by.
        let writes = 10_000u64;
        for i in 0..writes {
            let k = format!("hot{}", i % 4);
            engine
                .put(k.as_bytes(), &[b'a' + (i % 26) as u8; 100], v(i + 1), 0)
                .await
                .expect("put");
        }
        let stats = engine.stats();
        assert!(
            stats.flushes > 0,
            "the WAL span never froze the memtable: {stats:?}"
        );
        let wal_files = std::fs::read_dir(dir.join("wal")).expect("wal dir").count();
        assert!(
            wal_files <= 8,
            "{wal_files} WAL files left for four keys (unbounded WAL): {stats:?}"
        );
        engine.close().await.expect("close");
        let engine = Engine::open(&dir, small()).await.expect("reopen");
        for i in writes - 4..writes {
            let k = format!("hot{}", i % 4);
            let got = engine.get(k.as_bytes(), 0).await.expect("get");
            let value = got.and_then(|r| r.value);
            assert_eq!(value, Some(vec![b'a' + (i % 26) as u8; 100]), "{k}");
        }
        engine.close().await.expect("close");
    });
}

#[test]
fn later_memtables_reuse_the_key_vectors_of_flushed_ones_and_read_only_their_own_keys() {
    run(|dir| async move {
        let engine = Engine::open(&dir, small()).await.expect("open");
        // About 37 keys fill a memtable of 8 KiB: 2,000 keys go through
        // dozens of memtables, each taken apart in the background.
        let keys = 2_000u32;
        let value = |i: u32| format!("value-{i}-{}", "x".repeat(80)).into_bytes();
        for i in 0..keys {
            let key = format!("key{i:05}");
            engine
                .put(key.as_bytes(), &value(i), v(u64::from(i) + 1), 0)
                .await
                .expect("put");
        }
        engine.flush().await.expect("flush");
        let stats = engine.stats();
        assert!(stats.flushes >= 20, "{stats:?}");
        // The teardowns run behind the flushes (and wait for compactions
        // that still hold their memtables): 36-39 of 50 memtables took kept
        // vectors here, none without the reuse.
        assert!(
            stats.memtable_vectors_reused >= stats.flushes / 4,
            "memtables made with fresh vectors: {stats:?}"
        );
        for i in 0..keys {
            let key = format!("key{i:05}");
            let got = engine.get(key.as_bytes(), 0).await.expect("get");
            assert_eq!(got.and_then(|r| r.value), Some(value(i)), "{key}");
        }
        // A key never written is in no memtable, whichever vectors it had.
        assert!(engine.get(b"key99999", 0).await.expect("get").is_none());
        engine.close().await.expect("close");
    });
}

#[test]
fn an_engine_keeps_as_many_wal_spares_as_one_memtable_span_holds() {
    use ringkv_storage::engine::{wal_spares_for_span, WAL_SPAN_MEMTABLES_MAX};
    const MIB: usize = 1 << 20;
    // A 64 MiB memtable spans up to 4 x 64 MiB of WAL: 4 segments of 64 MiB,
    // and one more for the segment a flush leaves live.
    assert_eq!(WAL_SPAN_MEMTABLES_MAX, 4);
    assert_eq!(wal_spares_for_span(64 * MIB, 64 << 20), 5);
    assert_eq!(wal_spares_for_span(600 * MIB, 64 << 20), 39);
    // Never fewer than the WAL's default.
    assert_eq!(wal_spares_for_span(1, 64 << 20), 2);
    assert_eq!(wal_spares_for_span(0, 64 << 20), 2);
    // Nor more than 64, whatever the segment size.
    assert_eq!(wal_spares_for_span(256 * MIB, 16 << 10), 64);
}

/// The first scan of a memtable builds the key order scans read a step at
/// a time, yielding between steps: built at once, it held the shard for
/// about 150 ms at 1M keys (the first DBSIZE or SCAN of a loaded shard). So
/// a scan of a memtable with no order yet is not done at its first poll,
/// and it still returns every key in order, inserts made while it yields
/// included.
#[test]
fn a_first_scan_builds_the_memtable_order_in_steps_and_misses_no_key() {
    run(|dir| async move {
        let options = Options {
            memtable_size: 64 << 20,
            ..small()
        };
        let e = Engine::open(&dir, options).await.expect("open");
        for i in (0..2000u64).rev() {
            let key = format!("k{i:06}");
            e.put(key.as_bytes(), b"v", v(i + 1), 0).await.expect("put");
        }
        let mut scan = std::pin::pin!(e.scan(ScanRange::Prefix(Vec::new()), usize::MAX, 1));
        assert!(
            futures_lite::future::poll_once(scan.as_mut())
                .await
                .is_none(),
            "the first scan of a memtable must yield while it builds the order"
        );
        // Inserted while the scan is parked: the installed order adds it.
        e.put(b"k999999", b"v", v(5000), 0).await.expect("put");
        let keys: Vec<Vec<u8>> = scan
            .await
            .expect("scan")
            .into_iter()
            .map(|x| x.key)
            .collect();
        let mut expected: Vec<Vec<u8>> = (0..2000u64)
            .map(|i| format!("k{i:06}").into_bytes())
            .collect();
        expected.push(b"k999999".to_vec());
        assert_eq!(keys, expected);
        // Later inserts go into the built order.
        e.put(b"k000000x", b"v", v(5001), 0).await.expect("put");
        let page = e
            .scan(ScanRange::Prefix(b"k000000".to_vec()), 10, 1)
            .await
            .expect("scan");
        let keys: Vec<&[u8]> = page.iter().map(|x| x.key.as_slice()).collect();
        assert_eq!(keys, [&b"k000000"[..], b"k000000x"]);
    });
}
