//! Running compaction jobs chosen by [`crate::compaction::pick`].
//!
//! Order of a job (each step durable before the next):
//! 1. merge the inputs (highest version per key, [`crate::compaction::retain`]),
//!    writing `{id}.sst.tmp` outputs split at `table_size_target`, rate-limited;
//! 2. rename the outputs to `{id}.sst`, sync the dir;
//! 3. one manifest record: add the outputs, remove the inputs;
//! 4. swap inputs for outputs in the read path, then delete the input files
//!    (open readers keep their descriptors, so in-flight scans finish).
//!
//! A crash before 3 leaves unlisted outputs (removed on open); after 3 the
//! inputs are unlisted and removed on open if their deletion did not happen.

use super::merge::{MergeIter, Source};
use super::Engine;
use crate::compaction::{pick, retain, Job, TokenBucket};
use crate::error::Result;
use crate::io::{self, DirectFile};
use crate::manifest::ManifestEdit;
use crate::memtable::Memtable;
use crate::sstable::{table_file_name, table_tmp_file_name, Table, TableWriter};
use crate::types::{FileId, RecordRef, TableMeta};
use std::cell::RefCell;
use std::ops::Bound;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

/// A compaction yields to other tasks after this many entries.
const YIELD_EVERY_ENTRIES: u64 = 128;

/// Keys a job remembers having purged (or turned from expired values into
/// tombstones), to drop them from the row cache when it installs; past this
/// the job clears the whole row cache instead (a mass deletion).
const PURGED_KEYS_TRACKED_MAX: usize = 64 * 1024;

/// What a job changed besides dropping shadowed versions: the row cache
/// must forget these keys when the job's tables replace its inputs.
enum Purged {
    Keys(Vec<Vec<u8>>),
    Everything,
}

impl Purged {
    fn note(&mut self, key: &[u8]) {
        if let Purged::Keys(keys) = self {
            if keys.len() >= PURGED_KEYS_TRACKED_MAX {
                *self = Purged::Everything;
            } else {
                keys.push(key.to_vec());
            }
        }
    }
}

impl Engine {
    /// The next job for the tables live now, if any level is over target.
    pub(super) fn pick_compaction(&self) -> Option<Job> {
        let state = self.inner.state.borrow();
        let metas: Vec<Vec<TableMeta>> = state
            .levels
            .iter()
            .map(|l| l.iter().map(|t| t.meta().clone()).collect())
            .collect();
        pick(&metas, &self.level_config(), &state.cursors)
    }

    /// Starts the background compaction task unless it runs or nothing is due.
    pub(super) fn schedule_compaction(&self) {
        {
            let state = self.inner.state.borrow();
            if state.compacting || state.closed || state.failed.is_some() {
                return;
            }
        }
        if self.pick_compaction().is_none() {
            return;
        }
        self.inner.state.borrow_mut().compacting = true;
        let engine = self.clone();
        io::spawn_background(async move {
            engine.compaction_loop().await;
        })
        .detach();
    }

    async fn compaction_loop(&self) {
        {
            let _slot = self.inner.compaction_slot.lock().await;
            loop {
                let stop = {
                    let state = self.inner.state.borrow();
                    state.closed || state.failed.is_some()
                };
                if stop {
                    break;
                }
                let Some(job) = self.pick_compaction() else {
                    break;
                };
                if let Err(e) = run(self, job).await {
                    self.fail(&e);
                    break;
                }
            }
        }
        self.inner.state.borrow_mut().compacting = false;
        self.inner.changed.notify_all();
    }
}

/// Runs one job to completion (see the module doc for the order of steps).
pub(super) async fn run(engine: &Engine, job: Job) -> Result<()> {
    let started = Instant::now();
    let inner = &engine.inner;
    let sources = {
        let state = inner.state.borrow();
        let find = |level: u32, id: FileId| -> Option<Rc<Table>> {
            state.levels[level as usize]
                .iter()
                .find(|t| t.meta().id == id)
                .cloned()
        };
        let mut sources = Vec::new();
        for meta in &job.inputs {
            let table = find(job.input_level, meta.id);
            assert!(table.is_some(), "compaction input {} is live", meta.id);
            sources.extend(table.map(|t| Source::run(vec![t], Bound::Unbounded, false)));
        }
        let overlapping: Vec<Rc<Table>> = job
            .overlapping
            .iter()
            .filter_map(|m| find(job.output_level, m.id))
            .collect();
        assert_eq!(
            overlapping.len(),
            job.overlapping.len(),
            "compaction overlaps are live"
        );
        sources.push(Source::run(overlapping, Bound::Unbounded, false));
        sources
    };
    let mut outputs: Vec<(FileId, PathBuf, PathBuf)> = Vec::new();
    let result = write_outputs(engine, &job, sources, &mut outputs).await;
    let (metas, purged) = match result {
        Ok(done) => done,
        Err(e) => {
            for (_, tmp, _) in &outputs {
                let _ = io::remove_file(tmp);
            }
            return Err(e);
        }
    };
    for (_, tmp, path) in &outputs {
        io::rename(tmp, path)?;
    }
    io::sync_dir(&inner.dir).await?;
    let mut tables = Vec::with_capacity(outputs.len());
    for ((id, _, path), _) in outputs.iter().zip(&metas) {
        tables.push(Rc::new(
            Table::open(path, *id, job.output_level, inner.cache.clone()).await?,
        ));
    }

    let mut edits: Vec<ManifestEdit> = tables
        .iter()
        .map(|t| ManifestEdit::AddTable(t.meta().clone()))
        .collect();
    for meta in job.all_inputs() {
        edits.push(ManifestEdit::RemoveTable {
            id: meta.id,
            level: meta.level,
        });
    }
    edits.push(ManifestEdit::NextFileId(inner.state.borrow().next_file_id));
    inner.manifest.lock().await.apply(&edits).await?;

    let written: u64 = tables.iter().map(|t| t.meta().size).sum();
    let removed: Vec<Rc<Table>> = {
        let mut state = inner.state.borrow_mut();
        let gone: Vec<FileId> = job.all_inputs().map(|m| m.id).collect();
        let mut removed = Vec::new();
        for level in [job.input_level as usize, job.output_level as usize] {
            let (out, keep) = std::mem::take(&mut state.levels[level])
                .into_iter()
                .partition(|t| gone.contains(&t.meta().id));
            state.levels[level] = keep;
            removed.extend::<Vec<Rc<Table>>>(out);
        }
        let output = &mut state.levels[job.output_level as usize];
        output.extend(tables);
        output.sort_by(|a, b| a.meta().smallest_key.cmp(&b.meta().smallest_key));
        if let Some(largest) = job.inputs.iter().map(|m| &m.largest_key).max() {
            state.cursors[job.input_level as usize] = largest.clone();
        }
        // Reads in flight will not cache what they found in the inputs, and
        // the row cache forgets what this job purged.
        state.tables_generation += 1;
        let mut rows = inner.rows.borrow_mut();
        match purged {
            Purged::Keys(keys) => {
                for key in &keys {
                    rows.forget(key);
                }
            }
            Purged::Everything => rows.clear(),
        }
        drop(rows);
        let c = &mut state.counters;
        c.compactions += 1;
        c.compaction_bytes_read += job.input_bytes();
        c.compaction_bytes_written += written;
        c.compaction_time += started.elapsed();
        removed
    };
    inner.changed.notify_all();
    for table in removed {
        let id = table.meta().id;
        inner.cache.forget_file(id);
        io::remove_file_off_thread(&inner.dir.join(table_file_name(id))).await?;
        if let Ok(table) = Rc::try_unwrap(table) {
            table.close().await?;
        }
    }
    Ok(())
}

/// Merges the job's sources into output tables; `outputs` collects every file
/// created (so the caller can remove them on failure).
async fn write_outputs(
    engine: &Engine,
    job: &Job,
    sources: Vec<Source>,
    outputs: &mut Vec<(FileId, PathBuf, PathBuf)>,
) -> Result<(Vec<TableMeta>, Purged)> {
    let inner = &engine.inner;
    let options = &inner.options;
    let now_ms = options.clock.now_ms();
    let grace_ms = u64::try_from(options.tombstone_grace.as_millis()).unwrap_or(u64::MAX);
    let mut bucket = TokenBucket::new(options.compaction_rate_bytes_per_sec, Instant::now());
    let outside = Outside::snapshot(engine, job);
    let mut merge = MergeIter::new(sources);
    let mut metas = Vec::new();
    let mut writer: Option<TableWriter> = None;
    let mut charged = 0u64;
    let mut entries = 0u64;
    let mut purged = Purged::Keys(Vec::new());
    while let Some((key, record)) = merge.next_ref().await? {
        let kept = match retain(record, now_ms, grace_ms, job.bottommost) {
            Some(kept) => Some(kept),
            // Purging is safe only if no source outside the job may hold an
            // older version of the key that the tombstone still shadows
            // (Cassandra's overlap check before dropping a tombstone).
            None if outside.may_hold(key) => Some(RecordRef::tombstone(record.version)),
            None => None,
        };
        // `retain` either keeps the record as it is or turns it into a
        // tombstone or nothing: a change is a purge or a conversion.
        if kept.is_none_or(|k| k.is_tombstone() != record.is_tombstone()) {
            purged.note(key);
        }
        let Some(record) = kept else {
            continue;
        };
        let w = match writer.as_mut() {
            Some(w) => w,
            None => {
                let id = engine.alloc_file_id();
                let tmp = inner.dir.join(table_tmp_file_name(id));
                let path = inner.dir.join(table_file_name(id));
                let file = DirectFile::create_new(&tmp).await?;
                outputs.push((id, tmp, path));
                charged = 0;
                writer.insert(TableWriter::new(
                    file,
                    id,
                    job.output_level,
                    options.table.clone(),
                ))
            }
        };
        // The entry is copied once, from the block the merge read it in
        // into the output block.
        w.push(key, record);
        if w.wants_write() {
            // Paced per write, not per entry: a clock read per entry cost
            // more than the merge's key compares.
            pace(&mut bucket, &mut charged, w.estimated_size()).await;
            w.write_staged().await?;
        }
        if w.estimated_size() >= options.table_size_target {
            pace(&mut bucket, &mut charged, w.estimated_size()).await;
            if let Some(w) = writer.take() {
                metas.push(w.finish().await?);
            }
        }
        entries += 1;
        if entries % YIELD_EVERY_ENTRIES == 0 {
            // Let foreground work run even when the rate limit does not bite.
            io::yield_now().await;
        }
    }
    if let Some(w) = writer.take() {
        pace(&mut bucket, &mut charged, w.estimated_size()).await;
        metas.push(w.finish().await?);
    }
    Ok((metas, purged))
}

/// Charges `bucket` with what a table grew by since the last charge (its
/// size now is `size`) and sleeps off any debt that leaves.
async fn pace(bucket: &mut TokenBucket, charged: &mut u64, size: u64) {
    let wait = bucket.take(size.saturating_sub(*charged), Instant::now());
    *charged = size;
    if !wait.is_zero() {
        io::sleep(wait).await;
    }
}

/// Memtables and tables outside a job, taken when it starts: where an older
/// version of a key could hide from the job's tombstones. Anything created
/// later holds later writes.
struct Outside {
    memtables: Vec<Rc<RefCell<Memtable>>>,
    tables: Vec<Rc<Table>>,
}

impl Outside {
    fn snapshot(engine: &Engine, job: &Job) -> Outside {
        let state = engine.inner.state.borrow();
        let in_job: Vec<FileId> = job.all_inputs().map(|m| m.id).collect();
        let mut memtables = vec![state.active.clone()];
        memtables.extend(state.frozen.iter().map(|f| f.memtable.clone()));
        let tables = state
            .levels
            .iter()
            .flatten()
            .filter(|t| !in_job.contains(&t.meta().id))
            .cloned()
            .collect();
        Outside { memtables, tables }
    }

    /// Whether any outside source may hold `key` (bloom filters may say yes wrongly).
    fn may_hold(&self, key: &[u8]) -> bool {
        self.memtables.iter().any(|m| m.borrow().get(key).is_some())
            || self.tables.iter().any(|t| {
                let meta = t.meta();
                meta.smallest_key.as_slice() <= key
                    && key <= meta.largest_key.as_slice()
                    && t.may_contain(key)
            })
    }
}
