//! A file opened with O_DIRECT, read and written in whole aligned blocks
//! through the shard's io_uring ring (glommio `DmaFile`).

use super::align_up;
use crate::error::{Error, Result};
use crate::limits::{BLOCK_SIZE, DIRECT_READ_SIZE_MAX};
use glommio::io::{DmaBuffer, DmaFile, OpenOptions};
use std::path::{Path, PathBuf};

/// A buffer aligned for direct I/O, whose length is a multiple of [`BLOCK_SIZE`].
pub struct AlignedBuf {
    inner: DmaBuffer,
}

impl AlignedBuf {
    /// The bytes of the buffer.
    pub fn as_bytes(&self) -> &[u8] {
        self.inner.as_bytes()
    }

    /// The bytes of the buffer, writable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.inner.as_bytes_mut()
    }

    /// Length in bytes (a multiple of [`BLOCK_SIZE`]).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// A file read and written with O_DIRECT. Offsets and lengths given to it must
/// be multiples of [`BLOCK_SIZE`]; this is asserted (it is our invariant, not input).
pub struct DirectFile {
    file: DmaFile,
    path: PathBuf,
}

impl DirectFile {
    /// Creates a new file for reading and writing; fails if it exists.
    pub async fn create_new(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .dma_open(path)
            .await
            .map_err(|e| Error::io("create", path, e))?;
        Ok(DirectFile {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing file read-only.
    pub async fn open_read(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .dma_open(path)
            .await
            .map_err(|e| Error::io("open", path, e))?;
        Ok(DirectFile {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing file for reading and writing.
    pub async fn open_rw(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(path)
            .await
            .map_err(|e| Error::io("open", path, e))?;
        Ok(DirectFile {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The file's path (for error messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Allocates a zeroed aligned buffer of at least `len` bytes (rounded up to
    /// a whole number of blocks).
    pub fn alloc(&self, len: usize) -> AlignedBuf {
        let mut inner = self.file.alloc_dma_buffer(align_up(len.max(1)));
        inner.as_bytes_mut().fill(0);
        AlignedBuf { inner }
    }

    /// An aligned buffer holding a copy of `data`, zero-padded to a whole
    /// number of blocks. Only the padding is zeroed: zeroing a multi-megabyte
    /// WAL write before copying over it doubled its cost.
    pub fn alloc_copy(&self, data: &[u8]) -> AlignedBuf {
        let mut inner = self.file.alloc_dma_buffer(align_up(data.len().max(1)));
        let bytes = inner.as_bytes_mut();
        bytes[..data.len()].copy_from_slice(data);
        bytes[data.len()..].fill(0);
        AlignedBuf { inner }
    }

    /// Writes the whole buffer at `offset`. Both are block-aligned.
    pub async fn write_at(&self, buf: AlignedBuf, offset: u64) -> Result<()> {
        assert!(
            offset % BLOCK_SIZE as u64 == 0,
            "unaligned write offset {offset}"
        );
        assert!(
            buf.len() % BLOCK_SIZE == 0,
            "unaligned write length {}",
            buf.len()
        );
        let len = buf.len();
        let written = self
            .file
            .write_at(buf.inner, offset)
            .await
            .map_err(|e| Error::io("write", &self.path, e))?;
        if written != len {
            return Err(Error::io(
                "write",
                &self.path,
                std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("short direct write: {written} of {len} bytes at offset {offset}"),
                ),
            ));
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` (both block-aligned) into `out`, which is
    /// cleared first. Returns fewer bytes only at end of file. Large reads are
    /// split into pieces of at most [`DIRECT_READ_SIZE_MAX`].
    pub async fn read_into(&self, offset: u64, len: usize, out: &mut Vec<u8>) -> Result<()> {
        assert!(
            offset % BLOCK_SIZE as u64 == 0,
            "unaligned read offset {offset}"
        );
        assert!(len % BLOCK_SIZE == 0, "unaligned read length {len}");
        out.clear();
        out.reserve(len);
        let mut done = 0usize;
        while done < len {
            let piece = (len - done).min(DIRECT_READ_SIZE_MAX);
            let pos = offset + done as u64;
            let got = self
                .file
                .read_at_aligned(pos, piece)
                .await
                .map_err(|e| Error::io("read", &self.path, e))?;
            out.extend_from_slice(&got);
            done += got.len();
            if got.len() < piece {
                break;
            }
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` (both block-aligned) into a new vector.
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_into(offset, len, &mut out).await?;
        Ok(out)
    }

    /// fdatasync: every completed write is durable when this returns.
    pub async fn sync(&self) -> Result<()> {
        self.file
            .fdatasync()
            .await
            .map_err(|e| Error::io("fdatasync", &self.path, e))
    }

    /// Allocates `len` bytes on disk without changing the visible size
    /// (fallocate with KEEP_SIZE when `keep_size`).
    pub async fn preallocate(&self, len: u64, keep_size: bool) -> Result<()> {
        self.file
            .pre_allocate(len, keep_size)
            .await
            .map_err(|e| Error::io("fallocate", &self.path, e))
    }

    /// Sets the file's length.
    pub async fn truncate(&self, len: u64) -> Result<()> {
        self.file
            .truncate(len)
            .await
            .map_err(|e| Error::io("truncate", &self.path, e))
    }

    /// The file's current size in bytes.
    pub async fn size(&self) -> Result<u64> {
        self.file
            .file_size()
            .await
            .map_err(|e| Error::io("stat", &self.path, e))
    }

    /// Closes the file, reporting any error the close surfaces.
    pub async fn close(self) -> Result<()> {
        self.file
            .close()
            .await
            .map_err(|e| Error::io("close", &self.path, e))
    }
}
