//! Regression tests of `Table` against crafted files: checksummed (so they
//! pass every crc) but with contents that once reached the engine unchecked.

use super::*;
use crate::io::prepare_dir;
use crate::sstable::footer::{decode as decode_footer, decode_properties, Footer};
use crate::sstable::{TableOptions, TableWriter};
use crate::types::Version;

fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("executor")
        .run(fut)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")).expect("tempdir")
}

fn key(i: u64) -> Vec<u8> {
    format!("key{i:08}").into_bytes()
}

/// Writes a table of `n` entries with 100-byte values at `path`.
async fn write_table(path: &Path, n: u64) {
    let file = DirectFile::create_new(path).await.expect("create");
    let mut w = TableWriter::new(file, 1, 0, TableOptions::default());
    for i in 0..n {
        let r = Record::put(Version::new(i + 1, 0, 1), vec![i as u8; 100], 0);
        w.add(&key(i), &r).await.expect("add");
    }
    w.finish().await.expect("finish");
}

/// A table of 3000 entries (~100 blocks of 4 KiB: several readahead chunks)
/// written in `dir` and opened; its path too.
async fn readahead_table(dir: &Path) -> (PathBuf, Rc<Table>) {
    let path = dir.join("00000000000000000001.sst");
    prepare_dir(dir, true).await.expect("prepare");
    write_table(&path, 3000).await;
    let cache = Rc::new(BlockCache::new(1 << 20));
    let t = Table::open(&path, 1, 0, cache).await.expect("open");
    (path, Rc::new(t))
}

/// Rewrites the properties of the table at `path` through `change`, with
/// correct checksums (the properties' and the footer's).
fn rewrite_properties(path: &Path, change: impl FnOnce(&mut footer::Properties)) {
    let mut bytes = std::fs::read(path).expect("read");
    let size = bytes.len() as u64;
    let at = bytes.len() - FOOTER_SIZE;
    let mut f: Footer = decode_footer(&bytes[at..], size).expect("footer");
    let (start, len) = (f.props.offset as usize, f.props.len as usize);
    let mut props = decode_properties(&bytes[start..start + len], f.props.crc).expect("props");
    change(&mut props);
    let mut encoded = Vec::new();
    props.encode(&mut encoded);
    assert_eq!(
        encoded.len(),
        len,
        "the change must keep the section's size"
    );
    bytes[start..start + len].copy_from_slice(&encoded);
    f.props.crc = crc32c::crc32c(&encoded);
    bytes[at..].copy_from_slice(&f.encode());
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn a_checksummed_entry_count_larger_than_the_blocks_can_hold_is_corruption() {
    // Once accepted: the engine then summed such counts into its key
    // estimate and overflowed.
    let dir = tempdir();
    let path = dir.path().join("00000000000000000001.sst");
    run(async {
        prepare_dir(dir.path(), true).await.expect("prepare");
        write_table(&path, 200).await;
        let cache = Rc::new(BlockCache::new(1 << 20));
        let t = Table::open(&path, 1, 0, Rc::clone(&cache))
            .await
            .expect("open");
        let blocks = t.block_count() as u64;
        t.close().await.expect("close");
        let max = blocks * block::ENTRIES_PER_BLOCK_MAX as u64;
        rewrite_properties(&path, |p| p.entry_count = max);
        let t = Table::open(&path, 1, 0, Rc::clone(&cache))
            .await
            .expect("the bound is inclusive");
        t.close().await.expect("close");
        for count in [max + 1, u64::MAX] {
            rewrite_properties(&path, |p| p.entry_count = count);
            match Table::open(&path, 1, 0, Rc::clone(&cache)).await {
                Err(Error::Corruption { reason, .. }) => {
                    assert!(reason.contains("disagree"), "{reason}")
                }
                Err(e) => panic!("count {count}: expected corruption, got {e}"),
                Ok(_) => panic!("count {count}: accepted"),
            }
        }
    });
}

#[test]
fn an_iterator_whose_readahead_failed_never_serves_stale_bytes() {
    let dir = tempdir();
    run(async {
        let (path, t) = readahead_table(dir.path()).await;
        let mut it = t.iter(Bound::Unbounded, false);
        let mut seen = 0u64;
        // Read the first readahead window, then cut the file under it.
        while seen < 10 {
            let (k, _) = it.next().await.expect("next").expect("entry");
            assert_eq!(k, key(seen));
            seen += 1;
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        f.set_len((TABLE_READAHEAD_SIZE + BLOCK_SIZE) as u64)
            .expect("truncate");
        let mut errors = 0;
        for _ in 0..4000 {
            match it.next().await {
                Ok(Some((k, r))) => {
                    assert_eq!(k, key(seen), "an entry out of place");
                    assert_eq!(r.version, Version::new(seen + 1, 0, 1));
                    seen += 1;
                }
                Ok(None) => panic!("the end of a truncated table was reported as its end"),
                Err(_) => {
                    errors += 1;
                    if errors > 3 {
                        break;
                    }
                }
            }
        }
        assert!(errors > 0 && seen < 3000, "the truncation went unnoticed");
    });
}

#[test]
fn read_ahead_iterators_return_every_entry_in_order_from_any_start() {
    let dir = tempdir();
    run(async {
        // Three readahead chunks and a part, each read while the one before
        // is consumed.
        let (_, t) = readahead_table(dir.path()).await;
        for first in [0u64, 1, 1499, 2990] {
            let mut it = t.iter(Bound::Included(key(first)), false);
            let mut expected = first;
            while let Some((k, r)) = it.next().await.expect("next") {
                assert_eq!(k, key(expected), "from {first}");
                assert_eq!(r.version, Version::new(expected + 1, 0, 1));
                expected += 1;
                // Yield now and then, so background reads complete between
                // entries as well as while one is awaited.
                if expected % 97 == 0 {
                    crate::io::yield_now().await;
                }
            }
            assert_eq!(expected, 3000, "from {first}");
            if first < 1000 {
                assert!(
                    it.chunks_read_ahead() >= 2,
                    "from {first}: read-ahead unused"
                );
            }
        }
        // Dropped with the next chunk's read in flight: the read is cancelled
        // and the table still closes.
        let mut it = t.iter(Bound::Unbounded, false);
        it.next().await.expect("next").expect("entry");
        drop(it);
        crate::io::yield_now().await;
        let t = Rc::try_unwrap(t).ok().expect("no read holds the table");
        t.close().await.expect("close");
    });
}
