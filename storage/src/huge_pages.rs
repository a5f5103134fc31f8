//! Memory the kernel backs with transparent huge pages: 2 MiB regions mapped
//! aligned and advised before their first touch, and advice for large
//! vectors.
//!
//! Why: the row cache's entries are read at random among hundreds of MiB. With 4 KiB pages the TLB covers a few MiB, so each
//! such read is a TLB miss as well as a cache miss, and in a VM each page
//! walk is two-dimensional. On 2 MiB pages the TLB covers them (measured in
//! perf/RESULTS.md, "Memory, not code").
//!
//! Cost: the first touch of a huge page zeroes 2 MiB (about 3 ms in this
//! VM, host side included), so users keep their regions and reuse them
//! rather than mapping fresh ones on a request path. (That cost is why the
//! memtable's arena does not use them: perf/RESULTS.md, "A memtable
//! arena".)

use std::ptr::NonNull;

/// Bytes of one huge region: one transparent huge page on x86_64 and aarch64.
pub(crate) const HUGE_PAGE_BYTES: usize = 2 << 20;

/// A [`HUGE_PAGE_BYTES`]-aligned anonymous mapping of [`HUGE_PAGE_BYTES`],
/// advised `MADV_HUGEPAGE` before anything touches it, unmapped on drop. Its
/// bytes are zero until written.
#[derive(Debug)]
pub(crate) struct HugeRegion {
    /// The first byte of the region.
    base: NonNull<u8>,
}

// SAFETY: a region owns its mapping alone (nothing else refers to it until
// its owner hands out pointers, which the owner's own contract bounds), so
// moving it to another thread moves that ownership whole.
unsafe impl Send for HugeRegion {}

impl HugeRegion {
    /// Maps a fresh region and asks for a huge page; `None` if the kernel
    /// refuses the mapping.
    pub(crate) fn map() -> Option<HugeRegion> {
        // Twice the size, then the unaligned head and tail are unmapped:
        // mmap itself only promises 4 KiB alignment.
        let span = 2 * HUGE_PAGE_BYTES;
        // SAFETY: a new private anonymous mapping; no existing memory is
        // touched. The result is checked against MAP_FAILED.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        let start = raw as usize;
        let head = start.next_multiple_of(HUGE_PAGE_BYTES) - start;
        let tail = span - head - HUGE_PAGE_BYTES;
        // SAFETY: head < HUGE_PAGE_BYTES, inside the mapping.
        let base = unsafe { raw.cast::<u8>().add(head) };
        // SAFETY: both ranges lie inside the mapping just made and outside
        // the aligned region kept; nothing refers to them. MADV_HUGEPAGE only
        // changes how the region is backed (EINVAL without THP is harmless).
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap(base.add(HUGE_PAGE_BYTES).cast(), tail);
            }
            libc::madvise(base.cast(), HUGE_PAGE_BYTES, libc::MADV_HUGEPAGE);
        }
        NonNull::new(base).map(|base| HugeRegion { base })
    }

    /// The region's first byte; [`HUGE_PAGE_BYTES`] bytes from it are the
    /// region's for as long as it lives.
    pub(crate) fn base(&self) -> NonNull<u8> {
        self.base
    }
}

impl Drop for HugeRegion {
    fn drop(&mut self) {
        // SAFETY: the region was mapped by `HugeRegion::map` with this size
        // and is unmapped once. Its owner's contract (the entry slab's
        // `Stored` handles) keeps every pointer into it from outliving it.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), HUGE_PAGE_BYTES);
        }
    }
}

/// Asks the kernel to back the whole 2 MiB pages inside `vec`'s allocation
/// (its capacity) with transparent huge pages. A hint for a large table
/// about to be filled: pages already touched keep their size until the
/// kernel merges them; without THP it does nothing. Changes no contents.
pub(crate) fn advise_huge_pages<T>(vec: &Vec<T>) {
    advise_whole_huge_pages(vec, libc::MADV_HUGEPAGE);
}

/// Takes back [`advise_huge_pages`] from `vec`'s allocation, before it is
/// freed: the allocator reuses the memory for anything, and an unrelated
/// allocation there would fault a whole huge page on first touch.
pub(crate) fn advise_normal_pages<T>(vec: &Vec<T>) {
    advise_whole_huge_pages(vec, libc::MADV_NOHUGEPAGE);
}

/// `madvise(advice)` over the whole 2 MiB pages inside `vec`'s allocation.
fn advise_whole_huge_pages<T>(vec: &Vec<T>, advice: libc::c_int) {
    let start = vec.as_ptr() as usize;
    let end = start + vec.capacity() * std::mem::size_of::<T>();
    let first = start.next_multiple_of(HUGE_PAGE_BYTES);
    let last = end / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES;
    if last > first {
        // SAFETY: the range is page aligned and inside `vec`'s allocation;
        // the advice changes how it is backed, not what it holds (failure,
        // EINVAL without THP, is harmless).
        unsafe {
            libc::madvise(first as *mut libc::c_void, last - first, advice);
        }
    }
}
