//! A shard's durable hints: writes a replica missed, kept until it answers
//! again, in a second LSM engine of the shard (`shard-<i>/hints/`), so a hint
//! is as durable as any write (WAL, fdatasync) and survives a restart.
//!
//! Layout (codec in `ringkv_cluster::hints`): engine key = target node
//! (big-endian) ++ key, so one prefix scan finds a node's hints; the engine's
//! last-write-wins keeps only the newest hint per (target, key); a hint
//! expires (engine TTL) after the hint window; a delivered hint is deleted
//! with a tombstone just above its own version, which a newer hint of the
//! same key still beats.
//!
//! Bounds: at most `hints_bytes_max` bytes are accepted per shard (counted on
//! store, uncounted on delivery; expired hints are uncounted at the next
//! open); beyond that hints are dropped and counted, and anti-entropy (a
//! later issue) must repair what they would have.

use crate::config::NodeConfig;
use crate::limits::HINT_MEMTABLE_SIZE;
use crate::store::engine_options;
use ringkv_cluster::hints::{
    decode_hint, delivered_version, encode_hint_value, hint_key, hint_prefix, HINT_KEY_PREFIX_SIZE,
    HINT_VALUE_HEADER_SIZE,
};
use ringkv_cluster::record::{Mutation, NodeId};
use ringkv_storage::engine::{Engine, ScanRange};
use std::cell::Cell;
use std::path::Path;

/// One shard's hint store.
pub struct HintStore {
    engine: Engine,
    bytes: Cell<u64>,
    bytes_max: u64,
    window_ms: u64,
    stored: Cell<u64>,
    dropped: Cell<u64>,
    delivered: Cell<u64>,
}

/// A hint's size for the byte bound: its key and value bytes plus a fixed
/// allowance for the engine's per-entry overhead.
fn hint_bytes(key_len: usize, value_len: usize) -> u64 {
    (key_len + value_len + 32) as u64
}

fn hint_size(m: &Mutation) -> u64 {
    hint_bytes(m.key.len(), m.record.value.as_ref().map_or(0, Vec::len))
}

impl HintStore {
    /// Opens (or creates) the hint store in `dir` and counts what it holds.
    pub async fn open(dir: &Path, config: &NodeConfig) -> ringkv_storage::Result<HintStore> {
        let mut options = engine_options(config);
        // Hints must be as durable as the writes they stand for.
        options.durability = ringkv_storage::wal::Durability::Sync;
        options.memtable_size = HINT_MEMTABLE_SIZE;
        options.wal_segment_size = HINT_MEMTABLE_SIZE as u64;
        options.block_cache_size = 1 << 20;
        // Hints are replayed by scans, never read by key.
        options.row_cache_size = 0;
        options.tombstone_grace = config.cluster.hint_window;
        ringkv_storage::io::prepare_dir(dir, options.require_direct_io).await?;
        let engine = Engine::open(dir, options).await?;
        let store = HintStore {
            engine,
            bytes: Cell::new(0),
            bytes_max: config.cluster.hints_bytes_max,
            window_ms: config.cluster.hint_window.as_millis() as u64,
            stored: Cell::new(0),
            dropped: Cell::new(0),
            delivered: Cell::new(0),
        };
        let mut bytes = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let span = match &after {
                None => ScanRange::Prefix(Vec::new()),
                Some(k) => ScanRange::Range {
                    start: std::ops::Bound::Excluded(k.clone()),
                    end: std::ops::Bound::Unbounded,
                },
            };
            let page = store
                .engine
                .scan(span, 4096, crate::clock::wall_ms())
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            for e in &page {
                // The same count as `store` made: user key and value,
                // without the hint prefix and header.
                let key_len = e.key.len().saturating_sub(HINT_KEY_PREFIX_SIZE);
                let value_len = e.record.value.as_ref().map_or(0, Vec::len);
                bytes += hint_bytes(key_len, value_len.saturating_sub(HINT_VALUE_HEADER_SIZE));
            }
        }
        store.bytes.set(bytes);
        Ok(store)
    }

    /// Stores a hint for `target` (durably). A hint over the byte bound is
    /// dropped (counted; returns `Ok(false)`).
    pub async fn store(
        &self,
        target: NodeId,
        mutation: &Mutation,
        now_ms: u64,
    ) -> ringkv_storage::Result<bool> {
        let size = hint_size(mutation);
        if self.bytes.get() + size > self.bytes_max {
            self.dropped.set(self.dropped.get() + 1);
            return Ok(false);
        }
        let version = super::convert::store_version(mutation.record.version);
        self.engine
            .put(
                &hint_key(target, &mutation.key),
                &encode_hint_value(&mutation.record),
                version,
                now_ms.saturating_add(self.window_ms),
            )
            .await?;
        self.bytes.set(self.bytes.get() + size);
        self.stored.set(self.stored.get() + 1);
        Ok(true)
    }

    /// Deletes a hint that reached its target.
    pub async fn delivered(
        &self,
        target: NodeId,
        mutation: &Mutation,
    ) -> ringkv_storage::Result<()> {
        let version = super::convert::store_version(delivered_version(mutation.record.version));
        self.engine
            .delete(&hint_key(target, &mutation.key), version)
            .await?;
        self.bytes
            .set(self.bytes.get().saturating_sub(hint_size(mutation)));
        self.delivered.set(self.delivered.get() + 1);
        Ok(())
    }

    /// Up to `limit` live hints for `target`, in key order. A hint that does
    /// not decode is reported (named by its engine key) and skipped.
    pub async fn page(
        &self,
        target: NodeId,
        limit: usize,
        now_ms: u64,
    ) -> ringkv_storage::Result<Vec<Mutation>> {
        let span = ScanRange::Prefix(hint_prefix(target).to_vec());
        let entries = self.engine.scan(span, limit, now_ms).await?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let version = super::convert::cluster_version(e.record.version);
            let value = e.record.value.as_deref().unwrap_or_default();
            match decode_hint(&e.key, value, version) {
                Ok((_, m)) => out.push(m),
                Err(err) => {
                    tracing::error!("skipping a corrupt hint (engine key {:02x?}): {err}", e.key)
                }
            }
        }
        Ok(out)
    }

    /// `(stored, dropped, delivered, bytes)` since open (bytes: held now).
    pub fn counters(&self) -> (u64, u64, u64, u64) {
        (
            self.stored.get(),
            self.dropped.get(),
            self.delivered.get(),
            self.bytes.get(),
        )
    }

    /// Flushes and closes the hint store.
    pub async fn close(&self) -> ringkv_storage::Result<()> {
        self.engine.flush().await?;
        self.engine.close().await
    }
}
