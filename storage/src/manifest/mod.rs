//! The manifest: which SSTables are live at which level, the next file id and
//! how far the WAL is retired, as a log of checksummed records, each one
//! atomic group of edits, durable before [`Manifest::apply`] returns.
//!
//! Owns, in the shard directory:
//!
//! ```text
//! CURRENT             "MANIFEST-<n:020>\n", zero padded to 4 KiB: names the live log
//! MANIFEST-<n:020>    the live log: a snapshot record, then edit records (see [`log`])
//! *.tmp               a log or CURRENT being written; removed on open
//! ```
//!
//! Switching logs (when the live one passes [`ManifestOptions::snapshot_size`]):
//! write the state as a snapshot to `MANIFEST-<n+1>.tmp`, fdatasync, rename,
//! fsync the directory; write `CURRENT.tmp`, fdatasync, rename over
//! `CURRENT`, fsync the directory; delete the old log. A crash at any point
//! leaves `CURRENT` naming a complete log. A file named `MANIFEST-<n>` always
//! holds a durable snapshot (it is renamed only after its sync).
//!
//! Invariants: single writer; a failed write or sync poisons the manifest
//! (every later `apply` returns [`Error::Poisoned`]); edits that contradict
//! the state (adding a table already live at that level, removing one that
//! is not, leaving one id live at two levels) are a caller bug and panic
//! before anything is written: written, they would make the manifest
//! unreadable. A move is `[AddTable(at new level), RemoveTable(old level)]`
//! in one record (either order).

pub mod log;
pub mod record;

#[cfg(test)]
mod hostile_tests;

use crate::error::{Error, Result};
use crate::io::{self, DirectFile};
use crate::limits::{BLOCK_SIZE, MANIFEST_NUMBER_MAX};
use crate::types::{FileId, TableMeta};
use crate::wal::SegmentId;
pub use log::TornTail;
use log::{LogWriter, KIND_EDITS, KIND_SNAPSHOT};
use std::path::{Path, PathBuf};

/// Name of the file naming the live manifest log.
pub const CURRENT_FILE_NAME: &str = "CURRENT";
/// Default size past which the log is rewritten as a snapshot in a new file
/// (see [`crate::limits::MANIFEST_SNAPSHOT_SIZE_DEFAULT`]).
pub use crate::limits::MANIFEST_SNAPSHOT_SIZE_DEFAULT as SNAPSHOT_SIZE_DEFAULT;

/// What the manifest records: the live tables and two counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestState {
    /// Every live table (in the order they were added, removals aside).
    pub tables: Vec<TableMeta>,
    /// The lowest file id never used; always above every live table's id.
    pub next_file_id: FileId,
    /// WAL segments `<=` this are no longer needed for recovery.
    pub wal_retired_through: SegmentId,
}

impl Default for ManifestState {
    fn default() -> Self {
        ManifestState {
            tables: Vec::new(),
            next_file_id: 1,
            wal_retired_through: 0,
        }
    }
}

/// One change to the manifest state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestEdit {
    /// A new live table (its file is complete and durable).
    AddTable(TableMeta),
    /// A table that is no longer live (its file may be deleted after this is durable).
    RemoveTable {
        /// The table's id.
        id: FileId,
        /// The level it was at.
        level: u32,
    },
    /// Raises the next file id (never lowers it).
    NextFileId(FileId),
    /// Raises the WAL retirement point (never lowers it).
    WalRetiredThrough(SegmentId),
}

/// How the manifest is run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestOptions {
    /// Log size past which the state is written as a snapshot to a new log
    /// (or twice the last snapshot's size, if larger).
    pub snapshot_size: u64,
}

impl Default for ManifestOptions {
    fn default() -> Self {
        ManifestOptions {
            snapshot_size: SNAPSHOT_SIZE_DEFAULT,
        }
    }
}

/// The open manifest of one shard directory.
pub struct Manifest {
    dir: PathBuf,
    options: ManifestOptions,
    state: ManifestState,
    log: Option<LogWriter>,
    snapshot_bytes: u64,
    poisoned: Option<String>,
    inject_fault: bool,
    torn_tail: Option<TornTail>,
}

impl Manifest {
    /// Opens the manifest of `dir` (creating an empty one when there is none)
    /// and returns it with the recorded state. See [`Manifest::open_with`].
    pub async fn open(dir: &Path) -> Result<(Manifest, ManifestState)> {
        Self::open_with(dir, ManifestOptions::default()).await
    }

    /// Opens the manifest of `dir` with `options`. A torn tail of the live log
    /// is cut; mid-log corruption, a bad `CURRENT`, or logs without a `CURRENT`
    /// that name tables are [`Error::Corruption`].
    pub async fn open_with(
        dir: &Path,
        options: ManifestOptions,
    ) -> Result<(Manifest, ManifestState)> {
        io::prepare_dir(dir, false).await?;
        let mut logs = Vec::new();
        for path in io::list_dir(dir)? {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if name.ends_with(".tmp")
                && (name.starts_with("MANIFEST-") || name.starts_with(CURRENT_FILE_NAME))
            {
                io::remove_file(&path)?;
            } else if let Some(n) = parse_manifest_name(&name) {
                logs.push(n);
            }
        }
        let current_path = dir.join(CURRENT_FILE_NAME);
        let mut manifest = Manifest {
            dir: dir.to_path_buf(),
            options,
            state: ManifestState::default(),
            log: None,
            snapshot_bytes: 0,
            poisoned: None,
            inject_fault: false,
            torn_tail: None,
        };
        if !current_path.exists() {
            manifest.adopt_orphans(&logs).await?;
            manifest.switch_to_new_log(1).await?;
            let state = manifest.state.clone();
            return Ok((manifest, state));
        }
        let number = read_current(&current_path).await?;
        let path = dir.join(manifest_name(number));
        let file = DirectFile::open_rw(&path).await?;
        let replayed = log::replay(file, number).await?;
        manifest.state = replayed.state;
        manifest.log = Some(replayed.writer);
        manifest.torn_tail = replayed.torn_tail;
        for n in logs.into_iter().filter(|&n| n != number) {
            // Leftovers of an interrupted switch (older, or newer but never current).
            io::remove_file(&dir.join(manifest_name(n)))?;
        }
        let state = manifest.state.clone();
        Ok((manifest, state))
    }

    /// The damaged last record that opening cut off as a torn write, if
    /// any. Its edits are lost, so the state may be older than the files
    /// around it (tables already replaced, WAL segments already retired):
    /// the engine names this cut when the files then do not match.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn_tail.as_ref()
    }

    /// The state as of the last applied record.
    pub fn state(&self) -> &ManifestState {
        &self.state
    }

    /// Applies `edits` as one atomic record: written and fdatasync'd before this
    /// returns. On error nothing is applied in memory and the manifest is
    /// poisoned (its on-disk state is unknown until reopened).
    pub async fn apply(&mut self, edits: &[ManifestEdit]) -> Result<()> {
        if let Some(reason) = &self.poisoned {
            return Err(Error::Poisoned {
                reason: reason.clone(),
            });
        }
        let mut next = self.state.clone();
        if let Err(reason) = record::apply_record(&mut next, edits) {
            // A caller bug: writing it would make the manifest unreadable.
            panic!("manifest edits contradict the state: {reason}");
        }
        let Some(log) = self.log.as_mut() else {
            return Err(Error::Closed);
        };
        let appended = if std::mem::take(&mut self.inject_fault) {
            Err(Error::io(
                "write",
                self.dir.join(manifest_name(log.number())),
                std::io::Error::other("injected write fault"),
            ))
        } else {
            log.append(KIND_EDITS, edits).await
        };
        if let Err(e) = appended {
            self.poisoned = Some(e.to_string());
            return Err(e);
        }
        self.state = next;
        let size = log.size();
        let number = log.number();
        if size > self.options.snapshot_size.max(2 * self.snapshot_bytes) {
            if let Err(e) = self.switch_to_new_log(number + 1).await {
                self.poisoned = Some(e.to_string());
                return Err(e);
            }
        }
        Ok(())
    }

    /// Test hook: the next `apply` fails as if its write returned EIO.
    #[doc(hidden)]
    pub fn inject_write_fault(&mut self) {
        self.inject_fault = true;
    }

    /// Number of the live log file (`MANIFEST-<n>`).
    pub fn number(&self) -> u64 {
        self.log.as_ref().map_or(0, LogWriter::number)
    }

    /// Closes the log file. Later `apply` calls return [`Error::Closed`].
    pub async fn close(&mut self) -> Result<()> {
        match self.log.take() {
            Some(log) => log.close().await,
            None => Ok(()),
        }
    }

    /// Writes the state as a snapshot to log `number`, makes it current and
    /// deletes the previous log.
    async fn switch_to_new_log(&mut self, number: u64) -> Result<()> {
        let name = manifest_name(number);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let path = self.dir.join(&name);
        io::remove_file(&tmp)?;
        let file = DirectFile::create_new(&tmp).await?;
        let mut writer = LogWriter::new(file, number);
        writer
            .append(KIND_SNAPSHOT, &record::snapshot_edits(&self.state))
            .await?;
        io::rename(&tmp, &path)?;
        io::sync_dir(&self.dir).await?;
        write_current(&self.dir, number).await?;
        self.snapshot_bytes = writer.size();
        if let Some(old) = self.log.replace(writer) {
            let old_number = old.number();
            old.close().await?;
            io::remove_file(&self.dir.join(manifest_name(old_number)))?;
        }
        Ok(())
    }

    /// Without `CURRENT`, logs can only be leftovers of an interrupted first
    /// creation (which record no tables): remove them. Logs that name tables
    /// mean `CURRENT` was lost: refuse rather than forget the tables.
    async fn adopt_orphans(&self, logs: &[u64]) -> Result<()> {
        for &n in logs {
            let path = self.dir.join(manifest_name(n));
            let file = DirectFile::open_rw(&path).await?;
            let log::Replayed { state, writer, .. } = log::replay(file, n).await?;
            writer.close().await?;
            if !state.tables.is_empty() {
                return Err(Error::corruption(
                    self.dir.join(CURRENT_FILE_NAME),
                    0,
                    format!(
                        "CURRENT is missing but {} names {} tables",
                        path.display(),
                        state.tables.len()
                    ),
                ));
            }
        }
        for &n in logs {
            io::remove_file(&self.dir.join(manifest_name(n)))?;
        }
        Ok(())
    }
}

fn manifest_name(number: u64) -> String {
    format!("MANIFEST-{number:020}")
}

fn parse_manifest_name(name: &str) -> Option<u64> {
    name.strip_prefix("MANIFEST-")
        .filter(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
}

/// Replaces `CURRENT` atomically with one naming log `number`.
async fn write_current(dir: &Path, number: u64) -> Result<()> {
    let tmp = dir.join(format!("{CURRENT_FILE_NAME}.tmp"));
    io::remove_file(&tmp)?;
    let file = DirectFile::create_new(&tmp).await?;
    let line = format!("{}\n", manifest_name(number));
    let mut buf = file.alloc(BLOCK_SIZE);
    buf.as_bytes_mut()[..line.len()].copy_from_slice(line.as_bytes());
    file.write_at(buf, 0).await?;
    file.sync().await?;
    file.close().await?;
    io::rename(&tmp, &dir.join(CURRENT_FILE_NAME))?;
    io::sync_dir(dir).await
}

/// Reads `CURRENT`: one line naming a log, then zeros.
async fn read_current(path: &Path) -> Result<u64> {
    let file = DirectFile::open_read(path).await?;
    let bytes = file.read_at(0, BLOCK_SIZE).await?;
    file.close().await?;
    let bad =
        |offset: usize, reason: &str| Error::corruption(path, offset as u64, reason.to_owned());
    let Some(nl) = bytes.iter().position(|&b| b == b'\n') else {
        return Err(bad(0, "CURRENT holds no line"));
    };
    if let Some(i) = bytes[nl + 1..].iter().position(|&b| b != 0) {
        return Err(bad(nl + 1 + i, "CURRENT has bytes after its line"));
    }
    let number = std::str::from_utf8(&bytes[..nl])
        .ok()
        .and_then(parse_manifest_name)
        .ok_or_else(|| bad(0, "CURRENT does not name a manifest (MANIFEST-<20 digits>)"))?;
    // Bounded so that the next log's number (`number + 1`) never overflows.
    if number > MANIFEST_NUMBER_MAX {
        return Err(bad(
            0,
            &format!("CURRENT names manifest {number}, over the limit {MANIFEST_NUMBER_MAX}"),
        ));
    }
    Ok(number)
}
