//! The provided buffer ring of a shard's network ring: the receive buffers
//! the kernel picks from when a multishot receive completes.
//!
//! ```text
//!  entries (page-aligned mmap, shared with the kernel; tail in entry 0)
//!  [ addr,len,bid | addr,len,bid | ... RECV_BUFFER_COUNT ]
//!        |              |
//!        v              v
//!  buffers: [ buf 0 | buf 1 | ... ]   one allocation, RECV_BUFFER_SIZE each
//! ```
//!
//! Invariants: every buffer id is either owned by the kernel (published in
//! the ring) or lent to the loop between a completion naming it and
//! [`BufRing::recycle`]; the loop recycles every buffer in the turn it
//! arrived, after copying its bytes out. The memory stays mapped until the
//! ring that uses it is gone (the network loop drops the ring first).

use super::limits::{RECV_BUFFER_COUNT, RECV_BUFFER_SIZE};
use io_uring::types::BufRingEntry;
use io_uring::IoUring;
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

/// The buffer group id of the receive buffers (one group per ring).
pub const BUF_GROUP: u16 = 0;

/// The registered ring of receive buffers.
pub struct BufRing {
    entries: *mut BufRingEntry,
    entries_len: usize,
    buffers: Vec<u8>,
    tail: u16,
}

impl BufRing {
    /// Maps the entries, registers them with `ring` as group [`BUF_GROUP`]
    /// and hands every buffer to the kernel.
    pub fn new(ring: &IoUring) -> io::Result<Self> {
        let entries_len = usize::from(RECV_BUFFER_COUNT) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: an anonymous private mapping, checked for MAP_FAILED below;
        // mmap memory is page aligned and zeroed, as the kernel requires.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                entries_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut this = Self {
            entries: ptr.cast::<BufRingEntry>(),
            entries_len,
            buffers: vec![0u8; usize::from(RECV_BUFFER_COUNT) * RECV_BUFFER_SIZE],
            tail: 0,
        };
        // SAFETY: `entries` maps RECV_BUFFER_COUNT entries and stays mapped
        // until `this` is dropped, which the owner does after the ring.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                ptr as u64,
                RECV_BUFFER_COUNT,
                BUF_GROUP,
                0,
            )?
        };
        for bid in 0..RECV_BUFFER_COUNT {
            this.recycle(bid);
        }
        Ok(this)
    }

    /// The first `len` bytes of buffer `bid` (a completion's buffer id and
    /// result; both are clamped, never trusted to be in range).
    pub fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let bid = usize::from(bid % RECV_BUFFER_COUNT);
        let start = bid * RECV_BUFFER_SIZE;
        &self.buffers[start..start + len.min(RECV_BUFFER_SIZE)]
    }

    /// Hands buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        assert!(bid < RECV_BUFFER_COUNT, "buffer id {bid} out of range");
        let slot = usize::from(self.tail & (RECV_BUFFER_COUNT - 1));
        let addr = self.buffers.as_ptr() as u64 + (usize::from(bid) * RECV_BUFFER_SIZE) as u64;
        // SAFETY: slot < RECV_BUFFER_COUNT, inside the mapping; the kernel
        // reads no entry past the published tail, and this one is published
        // only after it is written.
        unsafe {
            let entry = &mut *self.entries.add(slot);
            entry.set_addr(addr);
            entry.set_len(RECV_BUFFER_SIZE as u32);
            entry.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field lives in entry 0 of the mapping; AtomicU16
        // has u16's layout; release ordering publishes the entry above.
        unsafe {
            let tail = BufRingEntry::tail(self.entries)
                .cast_mut()
                .cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// Gives up the buffer memory without freeing it: used when the ring is
    /// torn down with receives still in flight, which could still write
    /// into it.
    pub fn leak(&mut self) {
        std::mem::forget(std::mem::take(&mut self.buffers));
        self.entries_len = 0;
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.entries_len > 0 {
            // SAFETY: the mapping made in `new`, unmapped once; the ring that
            // used it is gone (see the module invariants).
            unsafe { libc::munmap(self.entries.cast(), self.entries_len) };
        }
    }
}
