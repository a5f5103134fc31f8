//! A memory prefetch hint: start loading a cache line without waiting for it.
//!
//! A batch of point reads touches one random bucket and one random entry of
//! the row cache per key; done one after another, each waits a full memory
//! (and TLB) miss. Hinting every key's lines first lets those misses overlap.

/// Asks the CPU to start loading the cache line holding `p` into every cache
/// level. Never faults and never changes what the program computes: an
/// invalid or dangling address is simply not loaded.
#[inline(always)]
pub(crate) fn prefetch_line<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint; it performs no access that can fault and
    // has no architectural effect, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Hints every cache line holding one of the `len` bytes from `start` (at
/// least the line of `start`). An entry stored on an 8- or 32-byte boundary
/// spans one line more than its length suggests whenever it starts late in
/// a line: hinting whole lines from its start missed its last one.
#[inline(always)]
pub(crate) fn prefetch_bytes(start: *const u8, len: usize) {
    let into_line = start as usize % 64;
    let first = start.wrapping_sub(into_line);
    let mut offset = 0;
    while offset < into_line + len.max(1) {
        prefetch_line(first.wrapping_add(offset));
        offset += 64;
    }
}
