//! Point reads and scans over the memtables and tables.

use super::merge::{MergeIter, Source};
use super::{Engine, ScanRange, State};
use crate::error::Result;
use crate::memtable::{Memtable, RunMerge};
use crate::sstable::Table;
use crate::types::{Entry, Record, RecordRef};
use std::cell::RefCell;
use std::rc::Rc;

/// Keys a step of [`build_order`] sorts or merges before it yields: about a
/// millisecond of the shard's core.
const ORDER_STEP_KEYS: usize = 16 * 1024;

/// The highest-version record of `key` across every source: from the row
/// cache when it holds the key, else searched newest source first (version
/// pruning skips most tables) and then cached.
pub(super) async fn get_record(engine: &Engine, key: &[u8]) -> Result<Option<Record>> {
    if let Some(r) = engine.inner.rows.borrow_mut().get(key) {
        return Ok(Some(r));
    }
    let generation = engine.inner.state.borrow().tables_generation;
    let mut best = search(engine, key).await?;
    // Cache the result only if it is still current: writes that landed
    // while the search waited for I/O are in a memtable (merge them in), unless
    // a flush moved them to a table the search did not see, or a compaction
    // purged what it found (then skip). A key the active memtable holds is
    // never cached (see `row_cache`).
    let state = engine.inner.state.borrow();
    if state.tables_generation == generation {
        let in_active = newest_of_memtables(&state, key, &mut best);
        if let (false, Some(r)) = (in_active, &best) {
            engine.inner.rows.borrow_mut().fill(key, r);
        }
    }
    Ok(best)
}

/// Calls `f` with the record [`get_record`] would return (`None`: no
/// record of `key` anywhere), when that is known at once, with no I/O and
/// no await: the row cache holds it, or the newest record the memtables hold
/// is newer than anything a table that may hold `key` can have (by its
/// version range and bloom filter), which is always the case before the
/// first flush. A frozen memtable's answer is cached, as a full read's is;
/// the active memtable's is not (it answers as cheaply as the cache would,
/// and a key it holds stays out of the cache so that writes to it need not
/// keep a copy current; see `row_cache`), but the key is marked there as
/// read, and its flush puts it in the cache. `f` must not call back into
/// the engine.
/// `None`, having called nothing, when a table must be read.
pub(super) fn read_now<R>(
    engine: &Engine,
    key: &[u8],
    f: impl FnOnce(Option<RecordRef<'_>>) -> R,
) -> Option<R> {
    let inner = &engine.inner;
    let mut rows = inner.rows.borrow_mut();
    let mut f = Some(f);
    let cached = rows.with_cached(key, |r| f.take().map(|f| f(Some(r))));
    if let Some(answer) = cached {
        return answer;
    }
    let f = f?;
    let state = inner.state.borrow();
    // Marked as read: the flush of this memtable puts it in the cache.
    let mut active = state.active.borrow_mut();
    let in_active = active.get_marking_read(key);
    // The newest version in the memtables, and which frozen one holds it
    // (None: the active one, or none at all).
    let mut newest = in_active.map(|r| r.version);
    let mut newest_frozen = None;
    for (i, frozen) in state.frozen.iter().enumerate() {
        if let Some(version) = frozen.memtable.borrow().get(key).map(|r| r.version) {
            if newest.is_none_or(|n| version > n) {
                newest = Some(version);
                newest_frozen = Some(i);
            }
        }
    }
    let must_read_tables = candidate_tables(&state, key)
        .any(|table| newest.is_none_or(|v| table.meta().max_version > v) && table.may_contain(key));
    if must_read_tables {
        return None;
    }
    rows.count_miss();
    let answer = match newest_frozen {
        None => f(in_active),
        Some(i) => {
            let memtable = state.frozen[i].memtable.borrow();
            let record = memtable.get(key);
            if let (None, Some(record)) = (in_active, record) {
                rows.fill_ref(key, record);
            }
            f(record)
        }
    };
    Some(answer)
}

/// Raises `best` to the newest record of `key` in the memtables. Returns
/// whether the active memtable holds a record of `key`.
fn newest_of_memtables(state: &State, key: &[u8], best: &mut Option<Record>) -> bool {
    let mut consider = |r: Option<RecordRef<'_>>| {
        if let Some(r) = r {
            if best.as_ref().is_none_or(|b| r.version > b.version) {
                *best = Some(r.to_record());
            }
        }
    };
    let active = state.active.borrow();
    let in_active = active.get(key);
    let held = in_active.is_some();
    consider(in_active);
    for frozen in state.frozen.iter().rev() {
        consider(frozen.memtable.borrow().get(key));
    }
    held
}

/// The highest-version record of `key` in the memtables and tables.
async fn search(engine: &Engine, key: &[u8]) -> Result<Option<Record>> {
    let mut best: Option<Record> = None;
    let candidates: Vec<Rc<Table>> = {
        let state = engine.inner.state.borrow();
        newest_of_memtables(&state, key, &mut best);
        candidate_tables(&state, key).cloned().collect()
    };
    for table in candidates {
        // Version pruning: this table cannot hold anything newer than `best`.
        if best
            .as_ref()
            .is_some_and(|b| table.meta().max_version <= b.version)
        {
            continue;
        }
        if !table.may_contain(key) {
            continue;
        }
        if let Some(r) = table.get(key).await? {
            if best.as_ref().is_none_or(|b| r.version > b.version) {
                best = Some(r);
            }
        }
    }
    Ok(best)
}

/// The tables whose key range holds `key`, newest first: every such L0
/// table, then at most one table of each deeper level.
fn candidate_tables<'s>(state: &'s State, key: &'s [u8]) -> impl Iterator<Item = &'s Rc<Table>> {
    let level0 = state.levels[0].iter().rev();
    let deeper = state.levels[1..].iter().filter_map(move |level| {
        // Disjoint and sorted: at most one table can hold the key.
        let i = level.partition_point(|t| t.meta().largest_key.as_slice() < key);
        level.get(i)
    });
    level0.chain(deeper).filter(move |t| in_range(t, key))
}

fn in_range(table: &Table, key: &[u8]) -> bool {
    let meta = table.meta();
    meta.smallest_key.as_slice() <= key && key <= meta.largest_key.as_slice()
}

/// Up to `limit` live entries of `range` in key order.
pub(super) async fn scan(
    engine: &Engine,
    range: ScanRange,
    limit: usize,
    now_ms: u64,
) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let start = range.start();
    let memtables: Vec<_> = {
        let state = engine.inner.state.borrow();
        std::iter::once(state.active.clone())
            .chain(state.frozen.iter().map(|f| f.memtable.clone()))
            .collect()
    };
    for memtable in &memtables {
        build_order(memtable).await;
    }
    let sources = {
        let state = engine.inner.state.borrow();
        let mut sources = vec![Source::memtable(state.active.clone(), start.clone())];
        for frozen in &state.frozen {
            sources.push(Source::memtable(frozen.memtable.clone(), start.clone()));
        }
        for table in &state.levels[0] {
            sources.push(Source::run(vec![table.clone()], start.clone(), true));
        }
        for level in &state.levels[1..] {
            if !level.is_empty() {
                sources.push(Source::run(level.clone(), start.clone(), true));
            }
        }
        sources
    };
    let mut merge = MergeIter::new(sources);
    // Borrowed until kept: a dead or shadowed entry is never copied.
    while let Some((key, record)) = merge.next_ref().await? {
        if range.is_past_end(key) {
            break;
        }
        if record.is_dead_at(now_ms) {
            continue;
        }
        out.push(Entry {
            key: key.to_vec(),
            record: record.to_record(),
        });
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// Builds the key order a scan of `memtable` reads, a step at a time with
/// the shard's other requests served between steps: sorts its keys in runs
/// and merges them, as a flush does, then installs the order (see
/// [`Memtable::install_order`]); or, when it is built, adds the keys
/// inserted since ([`Memtable::catch_up_order`]). Keys inserted while it
/// yields are added by the scan's first read.
async fn build_order(memtable: &Rc<RefCell<Memtable>>) {
    if memtable.borrow().has_order() {
        while memtable.borrow().catch_up_order(ORDER_STEP_KEYS) > 0 {
            futures_lite::future::yield_now().await;
        }
        return;
    }
    let built = memtable.borrow().len();
    let mut runs = Vec::new();
    for start in (0..built).step_by(ORDER_STEP_KEYS) {
        let keys = ORDER_STEP_KEYS.min(built - start);
        runs.push(memtable.borrow().sorted_run(start, keys));
        futures_lite::future::yield_now().await;
    }
    let mut merge = RunMerge::new(runs, &memtable.borrow());
    let mut sorted = Vec::with_capacity(built);
    while sorted.len() < built {
        let before = sorted.len();
        merge.next_stretch(&memtable.borrow(), ORDER_STEP_KEYS, &mut sorted);
        if sorted.len() == before {
            break;
        }
        futures_lite::future::yield_now().await;
    }
    memtable.borrow().install_order(sorted);
}
