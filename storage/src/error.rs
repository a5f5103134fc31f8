//! The storage engine's one error type. Every variant carries the evidence an
//! operator needs (the file, the offset, the sizes), and its doc says what state
//! the engine is left in.

use std::path::PathBuf;

/// Result alias for the storage engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the storage engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed. Nothing was acknowledged by the call
    /// that returned this; the engine may need to be reopened if it was a WAL write.
    #[error("I/O error during {op} on {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk failed validation (checksum, magic, bounds). The file is not
    /// trusted; nothing from it was returned. Restore the shard from a replica.
    #[error("corruption in {} at offset {offset}: {reason}", file.display())]
    Corruption {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A key longer than the limit was refused; nothing was written.
    #[error("key of {size} bytes exceeds the limit of {size_max} bytes")]
    KeyTooLarge { size: usize, size_max: usize },
    /// A value longer than the limit was refused; nothing was written.
    #[error("value of {size} bytes exceeds the limit of {size_max} bytes")]
    ValueTooLarge { size: usize, size_max: usize },
    /// A write batch over the entry or byte limit was refused; nothing was written.
    #[error("write batch of {entries} entries / {size} bytes exceeds the limits ({entries_max} entries, {size_max} bytes)")]
    BatchTooLarge {
        entries: usize,
        entries_max: usize,
        size: usize,
        size_max: usize,
    },
    /// The data directory is on a filesystem without O_DIRECT (tmpfs) while the
    /// engine was configured to require direct I/O. Nothing was opened.
    #[error("direct I/O is not available for {}: {reason}", path.display())]
    DirectIoUnavailable { path: PathBuf, reason: String },
    /// An earlier WAL or manifest write failed, so the engine no longer accepts
    /// writes (its durable state is unknown). Reopen the engine to recover.
    #[error("the engine refused the operation: an earlier write failed ({reason}); reopen it")]
    Poisoned { reason: String },
    /// The engine was closed.
    #[error("the engine is closed")]
    Closed,
    /// An empty key was refused (keys must have at least one byte); nothing was written.
    #[error("empty keys are not allowed")]
    KeyEmpty,
}

impl Error {
    /// Wraps an I/O error with the operation and path it concerns.
    pub fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<std::io::Error>,
    ) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }

    /// A corruption error naming the file and offset.
    pub fn corruption(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corruption {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }
}
