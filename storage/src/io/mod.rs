//! The engine's only door to the operating system: direct-I/O files, directory
//! operations, background tasks and timers. Everything glommio-specific in this
//! crate lives in this folder, so the executor can be swapped (or simulated) by
//! replacing it; the rest of the engine calls only what is exported here.
//!
//! Invariants:
//! - Every read and write offset and length is a multiple of [`BLOCK_SIZE`].
//! - Before the first direct file is opened on a thread, [`prepare_dir`] opens a
//!   non-empty probe file in the data directory. glommio 0.9 probes I/O-poll
//!   support once per device per thread by reading the first file it opens; if
//!   that file is empty the probe "succeeds", the device is wrongly marked
//!   pollable, and every later O_DIRECT read fails with EOPNOTSUPP (os error 95).
//! - Directory metadata operations (create dir, rename, remove, list) use
//!   blocking std calls: they are rare (flush, compaction, open) and glommio has
//!   no asynchronous form of them for paths.

mod direct_file;
mod runtime;

pub use direct_file::{AlignedBuf, DirectFile};
pub use runtime::{
    background_runtime, now_ms, register_backlog, set_background_queue, sleep, spawn_background,
    spawn_beside, yield_now, BackgroundTask, BacklogSource, FOREGROUND_SHARES,
};

use crate::error::{Error, Result};
use crate::limits::BLOCK_SIZE;
use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Name of the non-empty file opened first on each thread (see module doc).
pub const PROBE_FILE_NAME: &str = ".direct-io-probe";

/// tmpfs's magic number from statfs(2): glommio silently disables O_DIRECT there.
const TMPFS_MAGIC: i64 = 0x0102_1994;

thread_local! {
    /// Devices (st_dev) whose poll probe this thread has already run honestly.
    static PROBED_DEVICES: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// Rounds `len` up to the next multiple of [`BLOCK_SIZE`].
pub fn align_up(len: usize) -> usize {
    len.div_ceil(BLOCK_SIZE) * BLOCK_SIZE
}

/// Whether direct I/O really happens in `dir` (false on tmpfs, where glommio
/// drops O_DIRECT without saying so).
pub fn direct_io_supported(dir: &Path) -> Result<bool> {
    let c_path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|e| {
        Error::io(
            "statfs",
            dir,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        )
    })?;
    // SAFETY: statfs writes into a zeroed struct we own; the path is NUL-terminated.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut buf) };
    if rc != 0 {
        return Err(Error::io("statfs", dir, std::io::Error::last_os_error()));
    }
    #[allow(
        clippy::unnecessary_cast,
        reason = "f_type's width differs between libc targets"
    )]
    let fs_type = buf.f_type as i64;
    Ok(fs_type != TMPFS_MAGIC)
}

/// Makes `dir` ready for direct I/O on this thread: creates it, writes the
/// probe file if missing, and opens it once per device per thread so glommio's
/// poll probe reads real bytes (see the module doc). Call before opening any
/// [`DirectFile`] in `dir`. With `require_direct_io`, a tmpfs directory is
/// refused with [`Error::DirectIoUnavailable`].
pub async fn prepare_dir(dir: &Path, require_direct_io: bool) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create_dir_all", dir, e))?;
    if require_direct_io && !direct_io_supported(dir)? {
        return Err(Error::DirectIoUnavailable {
            path: dir.to_path_buf(),
            reason: "the directory is on tmpfs, which does not support O_DIRECT; use a directory on a real disk".into(),
        });
    }
    let probe = dir.join(PROBE_FILE_NAME);
    let meta = match std::fs::metadata(&probe) {
        Ok(m) if m.len() >= BLOCK_SIZE as u64 => m,
        _ => {
            std::fs::write(&probe, vec![0xA5u8; BLOCK_SIZE])
                .map_err(|e| Error::io("write probe", &probe, e))?;
            std::fs::metadata(&probe).map_err(|e| Error::io("stat probe", &probe, e))?
        }
    };
    use std::os::unix::fs::MetadataExt;
    let dev = meta.dev();
    let first_on_thread = PROBED_DEVICES.with(|p| p.borrow_mut().insert(dev));
    if first_on_thread {
        let file = DirectFile::open_read(&probe).await?;
        // A read proves the device answers direct reads on this thread.
        file.read_at(0, BLOCK_SIZE).await?;
        file.close().await?;
    }
    Ok(())
}

/// fsyncs a directory so that file creations, renames and removals in it are durable.
pub async fn sync_dir(dir: &Path) -> Result<()> {
    // glommio's Directory::open fails with EBADF on a relative path, so hand it
    // an absolute one.
    let dir = &std::path::absolute(dir).map_err(|e| Error::io("absolute path", dir, e))?;
    let d = glommio::io::Directory::open(dir)
        .await
        .map_err(|e| Error::io("open dir", dir, e))?;
    d.sync().await.map_err(|e| Error::io("fsync dir", dir, e))?;
    d.close()
        .await
        .map_err(|e| Error::io("close dir", dir, e))?;
    Ok(())
}

/// Renames a file (atomic on one filesystem). Not durable until [`sync_dir`].
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| Error::io("rename", from, e))
}

/// Removes a file; a file already gone is not an error.
pub fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Removes a file on glommio's blocking-thread pool, off the executor
/// thread; a file already gone is not an error. For files removed while
/// requests are served: unlinking a large file (a WAL segment, a compacted
/// table) frees its extents, and on a filesystem mounted with `discard`
/// that took 35-70 ms, all of it a stall of the shard's executor.
pub async fn remove_file_off_thread(path: &Path) -> Result<()> {
    match glommio::io::remove(path).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let e = std::io::Error::from(e);
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(Error::io("remove", path, e))
            }
        }
    }
}

/// Lists the file names in `dir` (not recursive), sorted.
pub fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("read_dir", dir, e))? {
        let entry = entry.map_err(|e| Error::io("read_dir", dir, e))?;
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}
