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
use crate::types::Record;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::ops::Bound;
use std::path::PathBuf;
use std::rc::Rc;

/// Entries a memtable source copies out per borrow.
const MEMTABLE_CHUNK_ENTRIES: usize = 64;

/// One sorted input of a merge.
pub(crate) enum Source {
    /// A memtable, read in chunks after a cursor.
    Memtable {
        memtable: Rc<RefCell<Memtable>>,
        cursor: Bound<Vec<u8>>,
        buffer: VecDeque<(Vec<u8>, Record)>,
        exhausted: bool,
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

    async fn next(&mut self) -> Result<Option<(Vec<u8>, Record)>> {
        match self {
            Source::Memtable {
                memtable,
                cursor,
                buffer,
                exhausted,
            } => {
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
                Ok(buffer.pop_front())
            }
            Source::Run {
                tables,
                start,
                iter,
                fill_cache,
            } => loop {
                if iter.is_none() {
                    let Some(table) = tables.pop_front() else {
                        return Ok(None);
                    };
                    // Only the first table needs the start bound; later ones
                    // begin after it anyway.
                    let bound = std::mem::replace(start, Bound::Unbounded);
                    *iter = Some(table.iter(bound, *fill_cache));
                }
                if let Some(it) = iter.as_mut() {
                    match it.next().await? {
                        Some(entry) => return Ok(Some(entry)),
                        None => *iter = None,
                    }
                }
            },
        }
    }
}

/// Merges sources into key order, one highest-version record per key.
pub(crate) struct MergeIter {
    sources: Vec<Source>,
    heads: Vec<Option<(Vec<u8>, Record)>>,
    started: bool,
}

impl MergeIter {
    /// A merge over `sources`.
    pub(crate) fn new(sources: Vec<Source>) -> Self {
        let heads = sources.iter().map(|_| None).collect();
        MergeIter {
            sources,
            heads,
            started: false,
        }
    }

    /// The next key and its highest-version record, or `None` when every
    /// source is exhausted. A source whose keys do not ascend (a table
    /// written out of order) is a corruption error naming its file.
    pub(crate) async fn next(&mut self) -> Result<Option<(Vec<u8>, Record)>> {
        if !self.started {
            self.started = true;
            for i in 0..self.sources.len() {
                self.heads[i] = self.sources[i].next().await?;
            }
        }
        // The first source at the smallest key gives the result its key (moved,
        // not copied: this runs once per entry of every compaction).
        let mut first: Option<(usize, &[u8])> = None;
        for (i, head) in self.heads.iter().enumerate() {
            if let Some((k, _)) = head {
                if first.is_none_or(|(_, f)| k.as_slice() < f) {
                    first = Some((i, k));
                }
            }
        }
        let Some((first, _)) = first else {
            return Ok(None);
        };
        let Some((smallest, mut best)) = self.heads[first].take() else {
            return Ok(None);
        };
        self.advance(first, &smallest).await?;
        for i in first + 1..self.sources.len() {
            let at_smallest = matches!(&self.heads[i], Some((k, _)) if *k == smallest);
            if !at_smallest {
                continue;
            }
            if let Some((_, record)) = self.heads[i].take() {
                if record.version > best.version {
                    best = record;
                }
            }
            self.advance(i, &smallest).await?;
        }
        Ok(Some((smallest, best)))
    }

    /// Reads source `i`'s next head, which must come after `after`.
    async fn advance(&mut self, i: usize, after: &[u8]) -> Result<()> {
        let next = self.sources[i].next().await?;
        if let Some((k, _)) = &next {
            if k.as_slice() <= after {
                // A source out of order would break the merge silently.
                return Err(self.sources[i].out_of_order(k));
            }
        }
        self.heads[i] = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Version;

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
            while let Some((k, r)) = m.next().await.expect("memtables do not fail") {
                out.push((String::from_utf8(k).expect("ascii"), r.version.hlc, r.value));
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
}
