//! The merging iterator under scans and compactions: many sorted sources
//! (memtables, tables, runs of non-overlapping tables) merged into one stream
//! in key order with one record per key, the highest version (the
//! reconciliation rule of the storage contract).
//!
//! Sources are read lazily. A memtable source re-seeks after its last key in
//! small chunks, so it never holds a borrow across an `.await` and keeps
//! working if the memtable is frozen under it (a frozen memtable is not
//! mutated; the active one may gain keys, which a scan then may or may not see).
//! Tables held by a source stay readable even if a compaction removes them: the
//! source owns an `Rc` to the open file.

use crate::error::{Error, Result};
use crate::memtable::Memtable;
use crate::sstable::{Table, TableIter};
use crate::types::{Record, RecordRef, Version};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::VecDeque;
use std::ops::Bound;
use std::path::PathBuf;
use std::rc::Rc;

/// Entries a memtable source copies out per borrow.
const MEMTABLE_CHUNK_ENTRIES: usize = 64;

/// One sorted input of a merge, read as a cursor: [`Source::advance`] moves
/// to the next entry and [`Source::current`] reads it where it is stored.
pub(crate) enum Source {
    /// A memtable, read in chunks after a cursor.
    Memtable {
        memtable: Rc<RefCell<Memtable>>,
        cursor: Bound<Vec<u8>>,
        /// Copied-out entries; the front one is current once `started`.
        buffer: VecDeque<(Vec<u8>, Record)>,
        exhausted: bool,
        started: bool,
    },
    /// Tables with disjoint key ranges, in key order (one L0 table, or a
    /// level's tables), read one after the other.
    Run {
        tables: VecDeque<Rc<Table>>,
        start: Bound<Vec<u8>>,
        iter: Option<TableIter>,
        fill_cache: bool,
    },
}

impl Source {
    /// A memtable source starting at `start`.
    pub(crate) fn memtable(memtable: Rc<RefCell<Memtable>>, start: Bound<Vec<u8>>) -> Source {
        Source::Memtable {
            memtable,
            cursor: start,
            buffer: VecDeque::new(),
            exhausted: false,
            started: false,
        }
    }

    /// A source over `tables` (disjoint, in key order) from `start`.
    /// Tables ending before `start` are skipped without being read.
    pub(crate) fn run(tables: Vec<Rc<Table>>, start: Bound<Vec<u8>>, fill_cache: bool) -> Source {
        let tables = tables
            .into_iter()
            .filter(|t| match &start {
                Bound::Included(s) => t.meta().largest_key >= *s,
                Bound::Excluded(s) => t.meta().largest_key > *s,
                Bound::Unbounded => true,
            })
            .collect();
        Source::Run {
            tables,
            start,
            iter: None,
            fill_cache,
        }
    }

    /// The error for a key this source yielded out of order: a corruption
    /// of the table it came from (a memtable is ordered by construction).
    fn out_of_order(&self, key: &[u8]) -> Error {
        let (file, offset) = match self {
            Source::Run { iter: Some(it), .. } => (it.path().to_path_buf(), it.block_offset()),
            _ => (PathBuf::from("<memtable>"), 0),
        };
        let shown = String::from_utf8_lossy(&key[..key.len().min(32)]);
        Error::corruption(
            file,
            offset,
            format!("a key is not above the one before it ({shown:?})"),
        )
    }

    /// Moves to the next entry (the first, on the first call); afterwards
    /// [`current`](Self::current) is `None` once the source is exhausted.
    async fn advance(&mut self) -> Result<()> {
        match self {
            Source::Memtable {
                memtable,
                cursor,
                buffer,
                exhausted,
                started,
            } => {
                if std::mem::replace(started, true) {
                    buffer.pop_front();
                }
                if buffer.is_empty() && !*exhausted {
                    let chunk = memtable
                        .borrow()
                        .entries_from(cursor.as_ref().map(Vec::as_slice), MEMTABLE_CHUNK_ENTRIES);
                    *exhausted = chunk.len() < MEMTABLE_CHUNK_ENTRIES;
                    if let Some((last, _)) = chunk.last() {
                        *cursor = Bound::Excluded(last.clone());
                    }
                    buffer.extend(chunk);
                }
                Ok(())
            }
            Source::Run {
                tables,
                start,
                iter,
                fill_cache,
            } => loop {
                if iter.is_none() {
                    let Some(table) = tables.pop_front() else {
                        return Ok(());
                    };
                    // Only the first table needs the start bound; later ones
                    // begin after it anyway.
                    let bound = std::mem::replace(start, Bound::Unbounded);
                    *iter = Some(table.iter(bound, *fill_cache));
                }
                if let Some(it) = iter.as_mut() {
                    if it.advance().await? {
                        return Ok(());
                    }
                    *iter = None;
                }
            },
        }
    }

    /// The key of the current entry, `None` when exhausted.
    fn current_key(&self) -> Option<&[u8]> {
        match self {
            Source::Memtable { buffer, .. } => buffer.front().map(|(k, _)| k.as_slice()),
            Source::Run { iter, .. } => iter.as_ref()?.current_key(),
        }
    }

    /// The current entry, borrowed from where the source holds it.
    fn current(&self) -> Option<(&[u8], RecordRef<'_>)> {
        match self {
            Source::Memtable { buffer, .. } => {
                buffer.front().map(|(k, r)| (k.as_slice(), r.into()))
            }
            Source::Run { iter, .. } => {
                let e = iter.as_ref()?.current()?;
                Some((e.key, e.record()))
            }
        }
    }
}

/// Merges sources into key order, one highest-version record per key.
pub(crate) struct MergeIter {
    sources: Vec<Source>,
    started: bool,
    /// Sources whose current entry is the key yielded last: they move on at
    /// the start of the next call (the yielded entry is borrowed from one).
    at_last: Vec<usize>,
    /// The key yielded last, to check that every source ascends past it.
    last_key: Vec<u8>,
    /// Whether a key was yielded (`last_key` holds it).
    yielded: bool,
}

impl MergeIter {
    /// A merge over `sources`.
    pub(crate) fn new(sources: Vec<Source>) -> Self {
        MergeIter {
            sources,
            started: false,
            at_last: Vec::new(),
            last_key: Vec::new(),
            yielded: false,
        }
    }

    /// The next key and its highest-version record (the first source's on a
    /// tie), borrowed from the source that holds it until the next call; `None`
    /// when every source is exhausted. A compaction copies each entry once,
    /// into its output block. A source whose keys do not ascend (a table
    /// written out of order) is a corruption error naming its file.
    pub(crate) async fn next_ref(&mut self) -> Result<Option<(&[u8], RecordRef<'_>)>> {
        let mut moving = std::mem::take(&mut self.at_last);
        if !self.started {
            self.started = true;
            moving.extend(0..self.sources.len());
        }
        for &i in &moving {
            self.sources[i].advance().await?;
            if self.yielded {
                if let Some(k) = self.sources[i].current_key() {
                    if k <= self.last_key.as_slice() {
                        // A source out of order would break the merge silently.
                        return Err(self.sources[i].out_of_order(k));
                    }
                }
            }
        }
        moving.clear();
        // One pass: the smallest key, and every source at it (consumed by
        // this call). The highest version among them wins, the first
        // source's on a tie.
        let mut smallest: Option<&[u8]> = None;
        for (i, source) in self.sources.iter().enumerate() {
            let Some(k) = source.current_key() else {
                continue;
            };
            match smallest.map(|s| k.cmp(s)) {
                Some(Ordering::Greater) => {}
                Some(Ordering::Equal) => moving.push(i),
                Some(Ordering::Less) | None => {
                    smallest = Some(k);
                    moving.clear();
                    moving.push(i);
                }
            }
        }
        let (Some(smallest), Some((&first, rest))) = (smallest, moving.split_first()) else {
            self.at_last = moving;
            return Ok(None);
        };
        let mut winner = first;
        for &i in rest {
            if version_of(&self.sources[i]) > version_of(&self.sources[winner]) {
                winner = i;
            }
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(smallest);
        self.yielded = true;
        self.at_last = moving;
        Ok(self.sources[winner].current())
    }
}

/// The version of `source`'s current entry (the lowest when exhausted).
fn version_of(source: &Source) -> Version {
    source.current().map_or(Version::ZERO, |(_, r)| r.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(entries: &[(&str, u64, Option<&str>)]) -> Rc<RefCell<Memtable>> {
        let mut m = Memtable::new();
        for (k, v, val) in entries {
            let version = Version { hlc: *v, node: 0 };
            let r = match val {
                Some(val) => Record::put(version, val.as_bytes().to_vec(), 0),
                None => Record::tombstone(version),
            };
            m.insert(k.as_bytes(), &r);
        }
        Rc::new(RefCell::new(m))
    }

    #[test]
    fn merge_keeps_the_highest_version_of_each_key_in_key_order() {
        let a = mem(&[("a", 1, Some("a1")), ("c", 5, Some("c5")), ("d", 2, None)]);
        let b = mem(&[
            ("b", 1, Some("b1")),
            ("c", 3, Some("c3")),
            ("d", 4, Some("d4")),
        ]);
        let mut big = Memtable::new();
        for i in 0..200u64 {
            big.insert(
                format!("e{i:03}").as_bytes(),
                &Record::put(Version { hlc: 1, node: 0 }, vec![], 0),
            );
        }
        let sources = vec![
            Source::memtable(a, Bound::Unbounded),
            Source::memtable(b, Bound::Unbounded),
            Source::memtable(
                Rc::new(RefCell::new(big)),
                Bound::Excluded(b"e099".to_vec()),
            ),
        ];
        let out = futures_lite::future::block_on(async {
            let mut m = MergeIter::new(sources);
            let mut out = Vec::new();
            while let Some((k, r)) = m.next_ref().await.expect("memtables do not fail") {
                let k = String::from_utf8(k.to_vec()).expect("ascii");
                out.push((k, r.version.hlc, r.value.map(<[u8]>::to_vec)));
            }
            out
        });
        assert_eq!(out[0], ("a".into(), 1, Some(b"a1".to_vec())));
        assert_eq!(out[1], ("b".into(), 1, Some(b"b1".to_vec())));
        assert_eq!(out[2], ("c".into(), 5, Some(b"c5".to_vec())));
        assert_eq!(out[3], ("d".into(), 4, Some(b"d4".to_vec())));
        assert_eq!(out[4].0, "e100");
        assert_eq!(out.len(), 4 + 100);
    }

    /// Runs `test` on a glommio executor with a fresh directory for table
    /// files (under target/, where O_DIRECT works).
    fn run_in_dir<F: std::future::Future<Output = ()>>(test: impl FnOnce(PathBuf) -> F) {
        let dir = tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"))
            .expect("tempdir");
        let path = dir.path().to_path_buf();
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async move {
                crate::io::prepare_dir(&path, true).await.expect("prepare");
                test(path).await;
            });
    }

    /// Writes `entries` (sorted by key) as table `id` in `dir` and opens it.
    async fn table(dir: &std::path::Path, id: u64, entries: &[(Vec<u8>, Record)]) -> Rc<Table> {
        use crate::io::DirectFile;
        use crate::sstable::{table_file_name, TableOptions, TableWriter};
        let path = dir.join(table_file_name(id));
        let file = DirectFile::create_new(&path).await.expect("create");
        let options = TableOptions {
            block_size: 512,
            ..TableOptions::default()
        };
        let mut w = TableWriter::new(file, id, 0, options);
        for (k, r) in entries {
            w.add(k, r).await.expect("add");
        }
        w.finish().await.expect("finish");
        let cache = Rc::new(crate::cache::BlockCache::new(1 << 20));
        Rc::new(Table::open(&path, id, 0, cache).await.expect("open"))
    }

    /// Tables and a memtable holding overlapping keys at random versions
    /// (ties included) merge into what a model keeps: each key once, in
    /// order, with its highest version, the first source's on a tie. The
    /// entries are read where the blocks hold them (many blocks per table).
    #[test]
    fn tables_and_memtables_merge_like_a_model() {
        run_in_dir(|dir| async move {
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let mut model: std::collections::BTreeMap<Vec<u8>, (u64, usize, Record)> =
                Default::default();
            let mut sources = Vec::new();
            for source in 0..4usize {
                let mut entries = std::collections::BTreeMap::new();
                for _ in 0..400 {
                    let key = format!("key{:05}", next() % 1000).into_bytes();
                    let hlc = next() % 8;
                    let record = if next() % 5 == 0 {
                        Record::tombstone(Version { hlc, node: 0 })
                    } else {
                        let value = format!("s{source}v{hlc}").repeat(1 + (next() % 20) as usize);
                        Record::put(Version { hlc, node: 0 }, value.into_bytes(), 0)
                    };
                    entries.insert(key, record);
                }
                for (k, r) in &entries {
                    let better = model.get(k).is_none_or(|(hlc, _, _)| r.version.hlc > *hlc);
                    if better {
                        model.insert(k.clone(), (r.version.hlc, source, r.clone()));
                    }
                }
                let entries: Vec<(Vec<u8>, Record)> = entries.into_iter().collect();
                if source == 3 {
                    let mut m = Memtable::new();
                    for (k, r) in &entries {
                        m.insert(k, r);
                    }
                    sources.push(Source::memtable(Rc::new(RefCell::new(m)), Bound::Unbounded));
                } else {
                    let t = table(&dir, source as u64 + 1, &entries).await;
                    assert!(t.block_count() > 10, "entries span many blocks");
                    sources.push(Source::run(vec![t], Bound::Unbounded, false));
                }
            }
            let mut merge = MergeIter::new(sources);
            let mut got = Vec::new();
            while let Some((k, r)) = merge.next_ref().await.expect("merge") {
                got.push((k.to_vec(), r.to_record()));
            }
            let want: Vec<(Vec<u8>, Record)> =
                model.into_iter().map(|(k, (_, _, r))| (k, r)).collect();
            assert_eq!(got.len(), want.len());
            assert_eq!(got, want);
        });
    }

    /// A run whose tables are not in key order (what a corrupt manifest could
    /// give) stops the merge with a corruption naming the table the key came
    /// from, instead of yielding keys out of order.
    #[test]
    fn a_source_going_backwards_is_a_corruption_naming_its_file() {
        run_in_dir(|dir| async move {
            let put = |k: &str| {
                (
                    k.as_bytes().to_vec(),
                    Record::put(Version { hlc: 1, node: 0 }, b"v".to_vec(), 0),
                )
            };
            let high = table(&dir, 1, &[put("m"), put("n")]).await;
            let low = table(&dir, 2, &[put("a"), put("b")]).await;
            let low_path = low.path().to_path_buf();
            let mut merge =
                MergeIter::new(vec![Source::run(vec![high, low], Bound::Unbounded, false)]);
            let first = merge.next_ref().await.expect("m").map(|(k, _)| k.to_vec());
            assert_eq!(first.as_deref(), Some(&b"m"[..]));
            assert!(merge.next_ref().await.expect("n").is_some());
            let err = match merge.next_ref().await {
                Err(e) => e.to_string(),
                Ok(next) => panic!(
                    "expected a corruption, got {:?}",
                    next.map(|(k, _)| k.to_vec())
                ),
            };
            assert!(err.contains(&low_path.display().to_string()), "{err}");
            assert!(err.contains("not above"), "{err}");
        });
    }
}
