//! Freezing the memtable and flushing frozen memtables to L0 tables.
//!
//! Order of a flush (each step durable before the next):
//! 1. write `{id}.sst.tmp`, fdatasync (TableWriter::finish), rename to `{id}.sst`, sync the dir;
//! 2. one manifest record: add the table, the next file id, WAL retired through the
//!    memtable's last segment;
//! 3. swap the frozen memtable for the table in the read path;
//! 4. retire the WAL segments.
//!
//! A crash before 2 leaves an unlisted file (removed on open) and the WAL still
//! holds the data; after 2 the table holds it.

use super::{Engine, Frozen};
use crate::error::Result;
use crate::io::{self, DirectFile};
use crate::manifest::ManifestEdit;
use crate::memtable::{Memtable, RunMerge};
use crate::sstable::{table_file_name, table_tmp_file_name, Table, TableWriter};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// Keys a flush sorts at a time (then yields): a run sorts in about a
/// millisecond, so the shard's requests never wait long for it.
const FLUSH_RUN_KEYS: usize = 16 * 1024;

/// A flush yields to other tasks after writing this many entries.
const FLUSH_YIELD_EVERY_ENTRIES: usize = 256;

/// Keys of the merged order whose memory a flush hints before writing them
/// (see [`Memtable::prefetch`]).
const FLUSH_PREFETCH_KEYS: usize = 32;

/// Entries of a flushed memtable freed between yields: about 0.2 ms of frees
/// (a 270k-entry memtable took 13-15 ms to drop at once).
const TEARDOWN_STEP_ENTRIES: usize = 4096;

/// Read-marked keys of a flushed memtable put back in the row cache between
/// yields (see [`refill_row_cache`]): a fill is a hash, a bucket probe and a
/// copy, a few hundred ns.
const REFILL_STEP_KEYS: usize = 512;

/// Keys of a refill step whose lookups are hinted together (see
/// [`refill_row_cache`]).
const REFILL_PREFETCH_KEYS: usize = 16;

/// How soon a flushed memtable still held elsewhere is checked again; the
/// wait doubles up to [`TEARDOWN_RECHECK_MAX`] (compactions hold it for
/// seconds).
const TEARDOWN_RECHECK_FIRST: Duration = Duration::from_millis(1);
const TEARDOWN_RECHECK_MAX: Duration = Duration::from_millis(100);

impl Engine {
    /// Freezes the active memtable and rotates the WAL at the same point:
    /// the segment is ended in the same step as the memtable is swapped, so
    /// every entry of the new memtable lands in a later WAL segment. Writers
    /// go on while the finished segment is written and synced (`rotating`);
    /// they wait only if the new memtable fills before that ends (see
    /// `Engine::make_room`), which bounds how far the WAL may lag behind
    /// appends in `Durability::None` to one memtable. (Writers used to wait
    /// for every rotation, 1 to 8 ms each, the largest part of an open-loop
    /// SET's p99.)
    pub(super) async fn freeze(&self) -> Result<()> {
        let inner = &self.inner;
        let (old, rotation) = {
            let mut state = inner.state.borrow_mut();
            assert!(!state.rotating, "freeze while a rotation is in progress");
            // Sized for as many keys as its budget allows (or as this one
            // held, if more), it never rehashes or regrows while writers wait.
            let keys_expected = state
                .active
                .borrow()
                .len()
                .max(Memtable::presize_keys(inner.options.memtable_size));
            let next = Memtable::with_capacity(keys_expected, inner.memtable_chunks.clone());
            let old = std::mem::replace(&mut state.active, Rc::new(RefCell::new(next)));
            state.active_since_wal = inner.wal.appended_bytes() as i128;
            // Readable (as frozen) from this moment on; flushable once its
            // last segment is durable.
            state.frozen.push_back(Frozen {
                memtable: old.clone(),
                segment: None,
            });
            let rotation = inner.wal.start_rotation();
            state.rotating = rotation.is_ok();
            (old, rotation)
        };
        let rotated = match rotation {
            Ok(rotation) => inner.wal.finish_rotation(rotation).await,
            Err(e) => Err(e),
        };
        {
            let mut state = inner.state.borrow_mut();
            state.rotating = false;
            if let Ok(segment) = &rotated {
                let entry = state
                    .frozen
                    .iter_mut()
                    .find(|f| Rc::ptr_eq(&f.memtable, &old));
                assert!(
                    entry.is_some(),
                    "a memtable is not flushed before its rotation ends"
                );
                if let Some(entry) = entry {
                    entry.segment = Some(*segment);
                }
            }
        }
        inner.changed.notify_all();
        match rotated {
            Ok(_) => {
                self.schedule_flush();
                Ok(())
            }
            Err(e) => {
                // The memtable stays readable; the engine refuses writes.
                self.fail(&e);
                Err(e)
            }
        }
    }

    /// Starts the flush task unless it runs or nothing is frozen.
    pub(super) fn schedule_flush(&self) {
        {
            let mut state = self.inner.state.borrow_mut();
            // A memtable whose rotation still runs cannot be flushed yet; the
            // freeze calls again when it ends (waking a task now would spin).
            let ready = state.frozen.front().is_some_and(|f| f.segment.is_some());
            if state.flushing || !ready || state.failed.is_some() {
                return;
            }
            state.flushing = true;
        }
        let engine = self.clone();
        io::spawn_background(async move {
            engine.flush_loop().await;
        })
        .detach();
    }

    async fn flush_loop(&self) {
        loop {
            let next = {
                let state = self.inner.state.borrow();
                if state.failed.is_some() {
                    None
                } else {
                    state
                        .frozen
                        .front()
                        .map(|f| (f.memtable.clone(), f.segment))
                }
            };
            let Some((memtable, segment)) = next else {
                break;
            };
            // A memtable whose rotation is still running is flushed after it
            // (the freeze schedules a flush when the rotation ends).
            let Some(segment) = segment else {
                break;
            };
            if let Err(e) = self.flush_one(memtable, segment).await {
                self.fail(&e);
                break;
            }
            self.inner.changed.notify_all();
            self.schedule_compaction();
        }
        self.inner.state.borrow_mut().flushing = false;
        self.inner.changed.notify_all();
    }

    async fn flush_one(&self, memtable: Rc<RefCell<Memtable>>, segment: u64) -> Result<()> {
        let inner = &self.inner;
        let table = if memtable.borrow().is_empty() {
            None
        } else {
            Some(self.write_memtable(&memtable).await?)
        };
        let mut edits = Vec::new();
        if let Some(t) = &table {
            edits.push(ManifestEdit::AddTable(t.meta().clone()));
        }
        let next_file_id = inner.state.borrow().next_file_id;
        edits.push(ManifestEdit::NextFileId(next_file_id));
        edits.push(ManifestEdit::WalRetiredThrough(segment));
        inner.manifest.lock().await.apply(&edits).await?;
        let flushed = table.as_ref().map(|t| t.meta().id);
        let generation = {
            let mut state = inner.state.borrow_mut();
            let done = state.frozen.pop_front();
            assert!(
                done.is_some_and(|f| Rc::ptr_eq(&f.memtable, &memtable)),
                "frozen memtables are flushed in order by one task"
            );
            if let Some(t) = table {
                state.counters.flush_bytes += t.meta().size;
                state.levels[0].push(t);
            }
            state.counters.flushes += 1;
            state.tables_generation += 1;
            state.tables_generation
        };
        inner.changed.notify_all();
        let engine = Rc::downgrade(&self.inner);
        io::spawn_background(async move {
            if let Some(flushed) = flushed {
                refill_row_cache(engine, &memtable, flushed, generation).await;
            }
            free_in_steps(memtable).await;
        })
        .detach();
        inner.wal.retire_through(segment).await
    }

    /// Writes a frozen memtable to a new L0 table and opens it.
    async fn write_memtable(&self, memtable: &Rc<RefCell<Memtable>>) -> Result<Rc<Table>> {
        let inner = &self.inner;
        let id = self.alloc_file_id();
        let tmp = inner.dir.join(table_tmp_file_name(id));
        let path = inner.dir.join(table_file_name(id));
        let file = DirectFile::create_new(&tmp).await?;
        let mut writer = TableWriter::new(file, id, 0, inner.options.table.clone());
        // The memtable is frozen: its keys and records no longer change.
        let total = memtable.borrow().len();
        let mut runs = Vec::new();
        for start in (0..total).step_by(FLUSH_RUN_KEYS) {
            runs.push(memtable.borrow().sorted_run(start, FLUSH_RUN_KEYS));
            io::yield_now().await;
        }
        let mut merge = RunMerge::new(runs, &memtable.borrow());
        let mut stretch = Vec::with_capacity(FLUSH_PREFETCH_KEYS);
        let mut written = 0usize;
        loop {
            stretch.clear();
            merge.next_stretch(&memtable.borrow(), FLUSH_PREFETCH_KEYS, &mut stretch);
            if stretch.is_empty() {
                break;
            }
            memtable.borrow().prefetch(&stretch);
            for key in &stretch {
                // Pushed from the borrowed memtable (no copy of the record);
                // the borrow ends before any write is awaited.
                {
                    let m = memtable.borrow();
                    writer.push(m.key_of(key), m.record_of(key));
                }
                if writer.wants_write() {
                    writer.write_staged().await?;
                }
                written += 1;
                if written % FLUSH_YIELD_EVERY_ENTRIES == 0 {
                    io::yield_now().await;
                }
            }
        }
        writer.finish().await?;
        io::rename(&tmp, &path)?;
        io::sync_dir(&inner.dir).await?;
        Ok(Rc::new(
            Table::open(&path, id, 0, inner.cache.clone()).await?,
        ))
    }
}

/// Puts the keys read while `memtable` was the active one (its read marks,
/// see [`Memtable::get_marking_read`]) back into the row cache with their
/// records, now that it is flushed into table `flushed`: the cache keeps out
/// of the active memtable's keys, so it did not hold them, and without this
/// their first reads after a flush would read a table. A record goes in
/// only if it is still the newest of its key: no memtable holds the key
/// (the active one or a frozen one, all newer), and no other table holds a
/// version as high (checked by the highest version of every other table; a
/// key that fails it is left out, as a cache may always). Stops when the
/// table set changes from `generation`, the one the flush installed (a
/// flush or compaction moved records the check relies on), or the engine is
/// gone or closed. In steps of [`REFILL_STEP_KEYS`], yielding between.
async fn refill_row_cache(
    engine: std::rc::Weak<super::Inner>,
    memtable: &Rc<RefCell<Memtable>>,
    flushed: crate::types::FileId,
    generation: u64,
) {
    let others_max = {
        let Some(inner) = engine.upgrade() else {
            return;
        };
        let state = inner.state.borrow();
        if state.tables_generation != generation || !inner.rows.borrow().is_enabled() {
            return;
        }
        state
            .levels
            .iter()
            .flatten()
            .filter(|t| t.meta().id != flushed)
            .map(|t| t.meta().max_version)
            .max()
    };
    let mut next = Some(0);
    while let Some(from) = next {
        next = {
            let Some(inner) = engine.upgrade() else {
                return;
            };
            let state = inner.state.borrow();
            if state.closed || state.tables_generation != generation {
                return;
            }
            let active = state.active.borrow();
            let mut rows = inner.rows.borrow_mut();
            let flushed_memtable = memtable.borrow();
            let mut marked = Vec::with_capacity(REFILL_STEP_KEYS);
            let rest = flushed_memtable.read_marked(from, REFILL_STEP_KEYS, |key, record| {
                if others_max.is_none_or(|v| record.version > v) {
                    marked.push((key, record));
                }
            });
            // Looking each key up in the active memtable is a cache miss or
            // two (its index bucket, then the entry it names), and was two
            // thirds of a refill: hint a few keys ahead, buckets two
            // stretches ahead and entries one, so the misses overlap.
            let keys: Vec<&[u8]> = marked.iter().map(|(key, _)| *key).collect();
            let stretches: Vec<&[&[u8]]> = keys.chunks(REFILL_PREFETCH_KEYS).collect();
            for ahead in stretches.iter().take(2) {
                active.prefetch_keys(ahead);
            }
            for (i, stretch) in marked.chunks(REFILL_PREFETCH_KEYS).enumerate() {
                if let Some(ahead) = stretches.get(i + 2) {
                    active.prefetch_keys(ahead);
                }
                if let Some(next) = stretches.get(i + 1) {
                    active.prefetch_records(next);
                    rows.prefetch(next);
                }
                for &(key, record) in stretch {
                    let newest = active.get(key).is_none()
                        && state
                            .frozen
                            .iter()
                            .all(|f| f.memtable.borrow().get(key).is_none());
                    if newest {
                        rows.fill_ref(key, record);
                    }
                }
            }
            rest
        };
        io::yield_now().await;
    }
}

/// Frees a flushed memtable in steps (see [`Memtable::take_apart`]) once this
/// is its last reference. Readers and compactions that still hold it (a
/// compaction keeps the memtables outside its job until it ends) would
/// otherwise free it at once when they let go: that drop took 16 ms in a
/// compaction.
async fn free_in_steps(mut memtable: Rc<RefCell<Memtable>>) {
    let mut wait = TEARDOWN_RECHECK_FIRST;
    let memtable = loop {
        match Rc::try_unwrap(memtable) {
            Ok(m) => break m,
            Err(shared) => {
                memtable = shared;
                io::sleep(wait).await;
                wait = (wait * 2).min(TEARDOWN_RECHECK_MAX);
            }
        }
    };
    let mut teardown = memtable.into_inner().take_apart();
    while teardown.free_some(TEARDOWN_STEP_ENTRIES) {
        io::yield_now().await;
    }
}
