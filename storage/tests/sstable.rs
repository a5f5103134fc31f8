//! Real-file tests of SSTables: written with O_DIRECT by `TableWriter`, read
//! back through `Table` and the block cache, on a real disk directory.

use ringkv_storage::cache::BlockCache;
use ringkv_storage::io::{prepare_dir, rename, DirectFile};
use ringkv_storage::sstable::{
    table_file_name, table_tmp_file_name, Compression, Table, TableOptions, TableWriter,
};
use ringkv_storage::{Error, Record, TableMeta, Version};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::rc::Rc;

fn run<T>(f: impl std::future::Future<Output = T> + 'static) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("glommio executor")
        .run(f)
}

fn key(i: u64) -> Vec<u8> {
    format!("{i:016}").into_bytes()
}

/// Entry `i`: mostly 100-byte values, some tombstones, some with expiry.
fn record(i: u64) -> Record {
    let version = Version::new(1_000 + i, (i % 3) as u16, (i % 7) as u32);
    match i % 11 {
        0 => Record::tombstone(version),
        1 => Record::put(version, vec![(i % 256) as u8; 100], 2_000_000_000_000 + i),
        _ => Record::put(
            version,
            (0..100)
                .map(|b| (i as u8).wrapping_mul(31).wrapping_add(b))
                .collect(),
            0,
        ),
    }
}

async fn write_table(
    dir: &Path,
    id: u64,
    entries: &[(Vec<u8>, Record)],
    options: TableOptions,
) -> (PathBuf, TableMeta) {
    let tmp = dir.join(table_tmp_file_name(id));
    let path = dir.join(table_file_name(id));
    let file = DirectFile::create_new(&tmp).await.expect("create");
    let mut w = TableWriter::new(file, id, 1, options);
    for (k, r) in entries {
        w.add(k, r).await.expect("add");
    }
    let meta = w.finish().await.expect("finish");
    rename(&tmp, &path).expect("rename");
    (path, meta)
}

fn entries(n: u64) -> Vec<(Vec<u8>, Record)> {
    (0..n).map(|i| (key(i * 2), record(i * 2))).collect()
}

#[test]
fn table_of_100k_entries_answers_every_get_and_iterates_in_order() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let dir = dir.path().to_path_buf();
    run(async move {
        prepare_dir(&dir, true).await.expect("prepare");
        let all = entries(100_000);
        let (path, meta) = write_table(&dir, 7, &all, TableOptions::default()).await;
        assert_eq!(meta.entry_count, 100_000);
        assert_eq!(
            meta.tombstone_count,
            all.iter().filter(|(_, r)| r.is_tombstone()).count() as u64
        );
        assert_eq!(meta.smallest_key, key(0));
        assert_eq!(meta.largest_key, key(199_998));
        assert_eq!(
            meta.max_version,
            all.iter().map(|(_, r)| r.version).max().expect("entries")
        );
        assert_eq!(meta.size % 4096, 0);
        assert_eq!(meta.size, std::fs::metadata(&path).expect("stat").len());

        let cache = Rc::new(BlockCache::new(64 << 20));
        let table = Rc::new(
            Table::open(&path, 7, 1, Rc::clone(&cache))
                .await
                .expect("open"),
        );
        assert_eq!(table.meta(), &meta);
        let per_key = table.memory_bytes() as f64 / 100_000.0;
        println!(
            "index + bloom: {} bytes, {per_key:.2} bytes/key, {} blocks",
            table.memory_bytes(),
            table.block_count()
        );
        assert!(per_key <= 12.0, "{per_key} bytes/key in memory");

        for (k, r) in &all {
            assert_eq!(
                table.get(k).await.expect("get").as_ref(),
                Some(r),
                "key {:?}",
                String::from_utf8_lossy(k)
            );
        }
        let mut false_positive_reads = 0;
        for i in 0..10_000u64 {
            let before = cache.stats();
            assert_eq!(table.get(&key(i * 2 + 1)).await.expect("get absent"), None);
            let after = cache.stats();
            false_positive_reads +=
                (after.hits + after.misses - before.hits - before.misses) as usize;
        }
        assert!(
            false_positive_reads < 300,
            "{false_positive_reads} block reads for 10k absent keys"
        );
        assert_eq!(table.get(b"").await.expect("get"), None);
        assert_eq!(table.get(&key(300_000)).await.expect("get"), None);

        let mut it = table.iter(Bound::Unbounded, true);
        let mut n = 0;
        while let Some((k, r)) = it.next().await.expect("next") {
            assert_eq!((&k, &r), (&all[n].0, &all[n].1));
            n += 1;
        }
        assert_eq!(n, all.len());
        drop(it);

        for (bound, first) in [
            (Bound::Included(key(50_000)), 25_000),
            (Bound::Excluded(key(50_000)), 25_001),
            (Bound::Included(key(50_001)), 25_001),
            (Bound::Included(b"".to_vec()), 0),
            (Bound::Excluded(key(199_998)), 100_000),
            (Bound::Included(key(500_000)), 100_000),
        ] {
            let mut it = table.iter(bound.clone(), false);
            let got = it.next().await.expect("next");
            assert_eq!(
                got.as_ref().map(|(k, _)| k),
                all.get(first).map(|(k, _)| k),
                "start {bound:?}"
            );
        }
        Rc::try_unwrap(table)
            .ok()
            .expect("sole owner")
            .close()
            .await
            .expect("close");
    });
}

#[test]
fn lz4_tables_with_large_values_round_trip() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let dir = dir.path().to_path_buf();
    run(async move {
        prepare_dir(&dir, true).await.expect("prepare");
        let all: Vec<_> = (0..2_000u64)
            .map(|i| {
                let len = if i % 97 == 0 {
                    300_000
                } else {
                    (i as usize * 13) % 900
                };
                let value: Vec<u8> = (0..len).map(|b| (b / 7 % 13) as u8).collect();
                (key(i), Record::put(Version::new(i, 0, 1), value, 0))
            })
            .collect();
        let options = TableOptions {
            block_size: 16 * 1024,
            compression: Compression::Lz4,
            bloom_bits_per_key: 10,
        };
        let (path, meta) = write_table(&dir, 1, &all, options).await;
        let raw: u64 = all
            .iter()
            .map(|(k, r)| (k.len() + r.size_estimate()) as u64)
            .sum();
        assert!(
            meta.size < raw / 2,
            "compressed table {} bytes for {raw} raw",
            meta.size
        );
        let table = Rc::new(
            Table::open(&path, 1, 1, Rc::new(BlockCache::new(1 << 20)))
                .await
                .expect("open"),
        );
        for (k, r) in &all {
            assert_eq!(table.get(k).await.expect("get").as_ref(), Some(r));
        }
        let mut it = table.iter(Bound::Unbounded, false);
        for (k, r) in &all {
            assert_eq!(
                it.next().await.expect("next").as_ref(),
                Some(&(k.clone(), r.clone()))
            );
        }
        assert_eq!(it.next().await.expect("end"), None);
    });
}

#[test]
fn a_small_cache_stays_within_budget_and_scans_do_not_fill_it() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let dir = dir.path().to_path_buf();
    run(async move {
        prepare_dir(&dir, true).await.expect("prepare");
        let all = entries(20_000);
        let (path, _) = write_table(&dir, 2, &all, TableOptions::default()).await;
        let cache = Rc::new(BlockCache::new(64 * 1024));
        let table = Rc::new(
            Table::open(&path, 2, 0, Rc::clone(&cache))
                .await
                .expect("open"),
        );
        let mut it = table.iter(Bound::Unbounded, false);
        let mut n = 0;
        while it.next().await.expect("next").is_some() {
            n += 1;
        }
        assert_eq!(n, all.len());
        assert_eq!(
            cache.stats().bytes,
            0,
            "a fill_cache=false scan cached blocks"
        );
        for (i, (k, r)) in all.iter().enumerate().step_by(37) {
            assert_eq!(
                table.get(k).await.expect("get").as_ref(),
                Some(r),
                "entry {i}"
            );
            let s = cache.stats();
            assert!(s.bytes <= s.capacity_bytes);
        }
        let s = cache.stats();
        assert!(s.misses > 0 && s.bytes > 0);
        cache.forget_file(2);
        assert_eq!(cache.stats().bytes, 0);
    });
}

#[test]
fn an_empty_table_round_trips() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let dir = dir.path().to_path_buf();
    run(async move {
        prepare_dir(&dir, true).await.expect("prepare");
        let (path, meta) = write_table(&dir, 3, &[], TableOptions::default()).await;
        assert_eq!((meta.entry_count, meta.size), (0, 4096));
        let table = Rc::new(
            Table::open(&path, 3, 0, Rc::new(BlockCache::new(0)))
                .await
                .expect("open"),
        );
        assert_eq!(table.get(b"x").await.expect("get"), None);
        assert_eq!(
            table
                .iter(Bound::Unbounded, true)
                .next()
                .await
                .expect("next"),
            None
        );
    });
}

#[test]
fn files_that_are_not_tables_are_reported_as_corruption() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let dir = dir.path().to_path_buf();
    run(async move {
        prepare_dir(&dir, true).await.expect("prepare");
        for (name, bytes) in [
            ("empty", vec![]),
            ("odd", vec![1u8; 5000]),
            ("zeros", vec![0u8; 8192]),
            ("ones", vec![0xffu8; 4096]),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, &bytes).expect("write");
            match Table::open(&path, 9, 0, Rc::new(BlockCache::new(0))).await {
                Err(Error::Corruption { file, .. }) => assert_eq!(file, path),
                Err(e) => panic!("{name}: expected corruption, got {e}"),
                Ok(_) => panic!("{name}: opened as a table"),
            }
        }
    });
}

/// Table writers on one thread pass their key-hash vector on (a flush's
/// 8 MiB of hashes no longer faults in anew each time): a table written after
/// a larger one finds every key of its own, and its bloom filter holds only
/// its own keys, none of the earlier table's.
#[test]
fn a_table_written_after_a_larger_one_filters_only_its_own_keys() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let dir = dir.path().to_path_buf();
    run(async move {
        prepare_dir(&dir, true).await.expect("prepare");
        let large = entries(50_000);
        write_table(&dir, 1, &large, TableOptions::default()).await;
        // Odd keys: none of them is in the large table (its keys are even).
        let small: Vec<(Vec<u8>, Record)> = (0..2_000u64)
            .map(|i| (key(i * 2 + 1), record(i * 2 + 1)))
            .collect();
        let (path, meta) = write_table(&dir, 2, &small, TableOptions::default()).await;
        assert_eq!(meta.entry_count, 2_000);
        let cache = Rc::new(BlockCache::new(64 << 20));
        let table = Table::open(&path, 2, 1, cache).await.expect("open");
        for (k, r) in &small {
            assert_eq!(table.get(k).await.expect("get").as_ref(), Some(r));
        }
        // Sized and filled for 2,000 keys at 10 bits each: about 1 % false
        // positives. Filled with the large table's hashes too, nearly all
        // of its keys would pass.
        let passed = large.iter().filter(|(k, _)| table.may_contain(k)).count();
        assert!(
            passed < large.len() / 20,
            "{passed} of the earlier table's keys pass the filter"
        );
        table.close().await.expect("close");
    });
}
