//! Memory for the row cache's entries: equal-size blocks carved from 2 MiB
//! chunks that the kernel backs with transparent huge pages.
//!
//! Why: a row cache hit reads a random bucket and then a random entry among
//! hundreds of MiB. With 4 KiB pages the TLB covers a few MiB, so the entry
//! read is a TLB miss as well as a cache miss, and in a VM each page walk is
//! two-dimensional. Entries allocated one by one from the global allocator
//! sit on 4 KiB pages; from these chunks they sit on 2 MiB pages, which the
//! TLB covers (see [`crate::huge_pages`]; measured in perf/RESULTS.md,
//! "Memory, not code": GET P16 about +5 % with the entries on huge pages,
//! +6 % with the bucket table too).
//!
//! The design is memcached's slab allocator, reduced: a block size per class
//! (a multiple of [`BLOCK_ALIGN`] up to [`SLAB_ENTRY_MAX`]); a chunk serves one
//! class; each class keeps the chunks that have a free block; a chunk whose
//! last block is freed goes back to a small pool any class can take. The
//! number of chunks is bounded (`chunks_max`), so the slab never holds more
//! than its budget: past it, or for a larger entry, [`EntrySlab::store`] puts
//! the entry on the heap.
//!
//! Not done (memcached's "slab rebalancing"): a chunk goes back to the pool
//! only when every one of its blocks is free, which random eviction rarely
//! achieves; so once the bound is reached, a shift in entry sizes sends new
//! entries of the new sizes to the heap until the cache is cleared.
//!
//! Single owner, single thread; blocks are plain bytes (nothing to drop).
//! [`Stored`] handles point into the chunks, so the slab's owner must give
//! each one back ([`EntrySlab::release`]) or drop it before the slab is
//! dropped or reset: the `unsafe` methods say so.

use crate::huge_pages::{HugeRegion, HUGE_PAGE_BYTES};
use crate::prefaulted::Prefaulter;
use std::ptr::NonNull;

/// Bytes of one chunk: one huge page.
pub(crate) const CHUNK_BYTES: usize = HUGE_PAGE_BYTES;

/// Block sizes are multiples of this many bytes (and blocks are aligned to it).
const BLOCK_ALIGN: usize = 32;

/// The largest entry a block holds; larger entries live on the heap.
pub(crate) const SLAB_ENTRY_MAX: usize = 1024;

/// Size classes: class `c` holds blocks of `(c + 1) * BLOCK_ALIGN` bytes.
const CLASSES: usize = SLAB_ENTRY_MAX / BLOCK_ALIGN;

/// Empty chunks kept for reuse instead of being unmapped: a chunk emptied
/// and another needed soon after would otherwise pay a fresh huge page's
/// fault (the kernel zeroes 2 MiB) each time.
const EMPTY_CHUNKS_KEPT: usize = 2;

/// One chunk, serving blocks of one class.
struct Chunk {
    /// The chunk's memory.
    region: HugeRegion,
    /// The size class its blocks are cut for (while it has live blocks).
    class: usize,
    /// Blocks carved so far (the rest of the chunk is untouched).
    carved: u32,
    /// Blocks handed out and not freed.
    live: u32,
    /// Freed blocks, by index (a chunk has at most 65536 blocks of 32
    /// bytes), reused before carving more.
    free: Vec<u16>,
    /// Whether the chunk is in its class's list of chunks with room.
    listed: bool,
    /// A bit per block, set while it is handed out: a second free of the
    /// same block is caught, not turned into two owners of one block.
    handed_out: Vec<u64>,
}

impl Chunk {
    /// Bytes of each of its blocks.
    fn block_bytes(&self) -> usize {
        class_block_bytes(self.class)
    }

    /// Blocks the chunk holds.
    fn capacity(&self) -> u32 {
        (CHUNK_BYTES / self.block_bytes()) as u32
    }

    /// Whether a block is free or not carved yet.
    fn has_room(&self) -> bool {
        !self.free.is_empty() || self.carved < self.capacity()
    }
}

/// The size class of a block for `len` bytes, or `None` when no block
/// serves that size (0, or over [`SLAB_ENTRY_MAX`]).
fn class_for(len: usize) -> Option<usize> {
    (1..=SLAB_ENTRY_MAX)
        .contains(&len)
        .then(|| (len - 1) / BLOCK_ALIGN)
}

/// Bytes of a block of `class`.
fn class_block_bytes(class: usize) -> usize {
    (class + 1) * BLOCK_ALIGN
}

/// Where a block came from, for [`EntrySlab::free`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkId(u32);

/// Blocks for entries of up to [`SLAB_ENTRY_MAX`] bytes, in at most
/// `chunks_max` chunks of [`CHUNK_BYTES`].
pub(crate) struct EntrySlab {
    /// Chunks by id; `None` for ids unmapped (reused by the next chunk).
    chunks: Vec<Option<Chunk>>,
    /// Per class, the ids of its chunks with a free or uncarved block.
    with_room: Vec<Vec<u32>>,
    /// Ids of empty chunks kept mapped for any class.
    empty: Vec<u32>,
    /// Ids whose slot in `chunks` is `None`.
    vacant: Vec<u32>,
    /// Chunks mapped now (in use or empty).
    mapped: usize,
    /// The most chunks mapped at once.
    chunks_max: usize,
}

impl EntrySlab {
    /// A slab of at most `chunks_max` chunks (none are mapped until needed).
    pub(crate) fn new(chunks_max: usize) -> Self {
        EntrySlab {
            chunks: Vec::new(),
            with_room: vec![Vec::new(); CLASSES],
            empty: Vec::new(),
            vacant: Vec::new(),
            mapped: 0,
            chunks_max,
        }
    }

    /// A block of at least `len` bytes (its contents are whatever the block
    /// last held, or zeros), or `None` when `len` is 0 or over
    /// [`SLAB_ENTRY_MAX`], or the slab is at `chunks_max` with no block of
    /// that size free, or the kernel refused a mapping. The block stays valid
    /// until it is given to [`free`](Self::free) or the slab is dropped.
    fn alloc(&mut self, len: usize) -> Option<(NonNull<u8>, ChunkId)> {
        let class = class_for(len)?;
        let id = match self.with_room[class].last() {
            Some(&id) => id,
            None => self.take_chunk(class)?,
        };
        let chunk = self.chunks.get_mut(id as usize)?.as_mut()?;
        let index = match chunk.free.pop() {
            Some(index) => u32::from(index),
            None => {
                chunk.carved += 1;
                chunk.carved - 1
            }
        };
        chunk.live += 1;
        chunk.handed_out[index as usize / 64] |= 1 << (index % 64);
        if !chunk.has_room() {
            chunk.listed = false;
            self.with_room[class].pop();
        }
        let offset = index as usize * chunk.block_bytes();
        // SAFETY: index < capacity, so the block lies inside the chunk.
        let block = unsafe { chunk.region.base().add(offset) };
        Some((block, ChunkId(id)))
    }

    /// Gives back a block from [`alloc`](Self::alloc) (`block` and `chunk` as
    /// it returned them), once. The block must not be used afterwards.
    /// Panics on a block that is not one of this slab's live blocks' places
    /// (a caller's bug that would otherwise corrupt the free lists).
    fn free(&mut self, block: NonNull<u8>, chunk: ChunkId) {
        let id = chunk.0;
        let Some(Some(chunk)) = self.chunks.get_mut(id as usize) else {
            panic!("a block freed to chunk {id}, which is not mapped");
        };
        let offset = (block.as_ptr() as usize)
            .checked_sub(chunk.region.base().as_ptr() as usize)
            .filter(|&o| o < CHUNK_BYTES && o % chunk.block_bytes() == 0);
        let Some(offset) = offset else {
            panic!("a block freed to chunk {id} that is not one of its blocks");
        };
        let index = offset / chunk.block_bytes();
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        assert!(
            chunk.handed_out[word] & bit != 0,
            "block {index} of chunk {id} freed but not handed out (freed twice?)"
        );
        chunk.handed_out[word] &= !bit;
        // At most CHUNK_BYTES / BLOCK_ALIGN = 65536 blocks: fits in u16.
        chunk.free.push(index as u16);
        chunk.live -= 1;
        let class = chunk.class;
        if chunk.live == 0 {
            self.retire(id, class);
        } else if !chunk.listed {
            chunk.listed = true;
            self.with_room[class].push(id);
        }
    }

    /// Chunks mapped now.
    #[cfg(test)]
    fn chunks_mapped(&self) -> usize {
        self.mapped
    }

    /// Takes back every block at once, keeping the chunks mapped (and their
    /// huge pages faulted in) for whatever is stored next.
    ///
    /// # Safety
    /// Every [`Stored`] this slab made must have been released or dropped.
    pub(crate) unsafe fn reset(&mut self) {
        for list in &mut self.with_room {
            list.clear();
        }
        self.empty.clear();
        for (id, chunk) in self.chunks.iter_mut().enumerate() {
            if let Some(chunk) = chunk {
                chunk.live = 0;
                chunk.listed = false;
                self.empty.push(id as u32);
            }
        }
    }

    /// A chunk for `class`, listed as having room: an empty one kept, else a
    /// new one if the bound allows.
    fn take_chunk(&mut self, class: usize) -> Option<u32> {
        let id = match self.empty.pop() {
            Some(id) => id,
            None => {
                if self.mapped >= self.chunks_max {
                    return None;
                }
                // One faulted in already by the prefaulter's thread if it
                // has one ready: a fresh region's first touch zeroes its
                // huge page in this thread, in the read that fills it
                // (3.4 % of a GET P1 profile while the cache filled).
                let region = Prefaulter::global()
                    .and_then(Prefaulter::try_take)
                    .or_else(HugeRegion::map)?;
                self.mapped += 1;
                let chunk = Chunk {
                    region,
                    class,
                    carved: 0,
                    live: 0,
                    free: Vec::new(),
                    listed: false,
                    handed_out: Vec::new(),
                };
                match self.vacant.pop() {
                    Some(id) => {
                        self.chunks[id as usize] = Some(chunk);
                        id
                    }
                    None => {
                        self.chunks.push(Some(chunk));
                        (self.chunks.len() - 1) as u32
                    }
                }
            }
        };
        let chunk = self.chunks.get_mut(id as usize)?.as_mut()?;
        // An empty chunk may have served another class: start it afresh.
        chunk.class = class;
        chunk.carved = 0;
        chunk.free.clear();
        chunk.listed = true;
        chunk.handed_out.clear();
        chunk
            .handed_out
            .resize((chunk.capacity() as usize).div_ceil(64), 0);
        self.with_room[class].push(id);
        Some(id)
    }

    /// A chunk whose last block was freed: off its class's list, then kept
    /// empty for reuse or unmapped.
    fn retire(&mut self, id: u32, class: usize) {
        if let Some(at) = self.with_room[class].iter().position(|&c| c == id) {
            self.with_room[class].swap_remove(at);
        }
        if let Some(Some(chunk)) = self.chunks.get_mut(id as usize) {
            chunk.listed = false;
        }
        // The pool holds more than EMPTY_CHUNKS_KEPT only after a reset.
        if self.empty.len() < EMPTY_CHUNKS_KEPT {
            self.empty.push(id);
        } else {
            self.chunks[id as usize] = None;
            self.vacant.push(id);
            self.mapped -= 1;
        }
    }
}

/// An entry's bytes, in a block of an [`EntrySlab`] or (when the slab
/// cannot serve it) on the heap. Derefs to exactly the bytes stored.
///
/// Invariant the owner keeps: a `Stored` from a slab is given back with
/// [`EntrySlab::release`] or dropped before that slab is (dropping one
/// without releasing it only strands its block until the slab goes).
pub(crate) struct Stored {
    /// The first byte: in a chunk of the slab, or of a boxed slice.
    ptr: NonNull<u8>,
    /// Bytes stored (at most the block's size).
    len: u32,
    /// The chunk of its block, or [`ON_HEAP`]: a leaked `Box<[u8]>` of `len`.
    chunk: u32,
}

/// The `chunk` of a [`Stored`] on the heap (no chunk has this id).
const ON_HEAP: u32 = u32::MAX;

impl std::ops::Deref for Stored {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` holds `len` initialized bytes: a live block of the
        // slab (the owner's invariant keeps the slab alive) or a boxed slice
        // this value owns.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len as usize) }
    }
}

impl std::ops::DerefMut for Stored {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len as usize) }
    }
}

impl Drop for Stored {
    fn drop(&mut self) {
        if self.chunk == ON_HEAP {
            let slice = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len as usize);
            // SAFETY: made by `Box::into_raw` of a boxed slice of `len` bytes
            // in `EntrySlab::place`, and dropped only here; or `nothing`'s
            // dangling pointer with `len` 0, which is what an empty boxed
            // slice holds (its drop deallocates nothing).
            drop(unsafe { Box::from_raw(slice) });
        }
    }
}

impl EntrySlab {
    /// `len` bytes written by `fill` (which must write every byte it is
    /// given), in a block of the slab or on the heap.
    ///
    /// # Safety
    /// The result must be given back with [`release`](Self::release) (to this
    /// slab) or dropped before this slab is dropped or reset.
    pub(crate) unsafe fn store(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Stored {
        let mut stored = self.place(len);
        fill(&mut stored);
        stored
    }

    /// Stores `len` bytes written by `fill` in place of `stored`'s: in the
    /// same place when it fits (a block of the right size class, or a heap
    /// entry of exactly `len` bytes: an overwrite of the same or a slightly
    /// different size allocates nothing), else in a new place, the old one
    /// freed first (so at the chunk bound its block can serve).
    ///
    /// # Safety
    /// `stored` was made by this slab (and the contract of
    /// [`store`](Self::store) holds for it still).
    pub(crate) unsafe fn replace(
        &mut self,
        stored: &mut Stored,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) {
        let fits = if stored.chunk == ON_HEAP {
            stored.len as usize == len
        } else {
            let class = self
                .chunks
                .get(stored.chunk as usize)
                .and_then(|c| c.as_ref().map(|c| c.class));
            class.is_some() && class == class_for(len)
        };
        if fits {
            stored.len = len as u32;
        } else {
            let old = std::mem::replace(stored, Stored::nothing());
            // SAFETY: `old` was made by this slab (the caller's promise).
            unsafe { self.release(old) };
            *stored = self.place(len);
        }
        fill(stored);
    }

    /// Frees what [`store`](Self::store) made.
    ///
    /// # Safety
    /// `stored` was made by this slab.
    pub(crate) unsafe fn release(&mut self, stored: Stored) {
        if stored.chunk != ON_HEAP {
            self.free(stored.ptr, ChunkId(stored.chunk));
        }
        // A heap entry is freed by its drop; a slab one's drop does nothing.
    }

    /// A place for `len` bytes (contents not yet written): a block, or a
    /// zeroed heap allocation.
    fn place(&mut self, len: usize) -> Stored {
        let len32 = u32::try_from(len).expect("row cache entries are far below 4 GiB");
        match self.alloc(len) {
            Some((ptr, chunk)) => Stored {
                ptr,
                len: len32,
                chunk: chunk.0,
            },
            None => {
                let boxed: Box<[u8]> = vec![0; len].into_boxed_slice();
                let ptr = NonNull::new(Box::into_raw(boxed).cast::<u8>())
                    .expect("Box::into_raw is never null");
                Stored {
                    ptr,
                    len: len32,
                    chunk: ON_HEAP,
                }
            }
        }
    }
}

impl Stored {
    /// Zero bytes on the heap, allocating nothing (a boxed empty slice's
    /// pointer is dangling, so its drop frees nothing): a placeholder.
    fn nothing() -> Stored {
        Stored {
            ptr: NonNull::dangling(),
            len: 0,
            chunk: ON_HEAP,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn write(block: NonNull<u8>, bytes: &[u8]) {
        // SAFETY: the test only writes blocks it was given, within their size.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), block.as_ptr(), bytes.len()) }
    }

    fn read(block: NonNull<u8>, len: usize) -> Vec<u8> {
        // SAFETY: as in `write`.
        unsafe { std::slice::from_raw_parts(block.as_ptr(), len).to_vec() }
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_keep_what_was_written() {
        // A chunk per class.
        let mut slab = EntrySlab::new(CLASSES);
        let mut blocks = Vec::new();
        for i in 0..3000usize {
            let len = 1 + i % SLAB_ENTRY_MAX;
            let (block, chunk) = slab.alloc(len).expect("room");
            assert_eq!(block.as_ptr() as usize % BLOCK_ALIGN, 0);
            write(block, &vec![(i % 251) as u8; len]);
            blocks.push((block, chunk, len, (i % 251) as u8));
        }
        for &(block, _, len, byte) in &blocks {
            assert_eq!(read(block, len), vec![byte; len]);
        }
    }

    #[test]
    fn sizes_it_cannot_serve_and_a_full_slab_say_no() {
        let mut slab = EntrySlab::new(1);
        assert!(slab.alloc(0).is_none());
        assert!(slab.alloc(SLAB_ENTRY_MAX + 1).is_none());
        // One chunk of 1 KiB blocks holds 2048 of them; then no more.
        let taken: Vec<_> = (0..2048).map(|_| slab.alloc(1000).expect("room")).collect();
        assert!(slab.alloc(1000).is_none(), "over the chunk bound");
        assert!(
            slab.alloc(10).is_none(),
            "another class needs another chunk"
        );
        // A freed block is reused by its class.
        let (block, chunk) = taken[7];
        slab.free(block, chunk);
        assert_eq!(slab.alloc(1000), Some((block, chunk)));
        assert_eq!(slab.chunks_mapped(), 1);
    }

    #[test]
    fn an_emptied_chunk_serves_another_class_and_surplus_ones_are_unmapped() {
        let mut slab = EntrySlab::new(8);
        let per_chunk = CHUNK_BYTES / 64;
        // Four chunks of 64-byte blocks, then all freed.
        let taken: Vec<_> = (0..4 * per_chunk)
            .map(|_| slab.alloc(64).expect("room"))
            .collect();
        assert_eq!(slab.chunks_mapped(), 4);
        for (block, chunk) in taken {
            slab.free(block, chunk);
        }
        assert_eq!(slab.chunks_mapped(), EMPTY_CHUNKS_KEPT, "the rest unmapped");
        // A kept chunk now serves 512-byte blocks, carved from its start.
        let (block, _) = slab.alloc(512).expect("room");
        write(block, &[9; 512]);
        assert_eq!(read(block, 512), vec![9; 512]);
        assert_eq!(slab.chunks_mapped(), EMPTY_CHUNKS_KEPT);
    }

    /// The bookkeeping's invariants: a chunk is in its own class's list once
    /// exactly when it has room and live blocks; free and live blocks add up
    /// to the carved ones; emptied chunks are pooled; vacant ids are the
    /// unmapped ones; the bound holds.
    fn check_invariants(slab: &EntrySlab) {
        let mut mapped = 0;
        for (id, chunk) in slab.chunks.iter().enumerate() {
            let id = id as u32;
            let Some(chunk) = chunk else {
                assert!(slab.vacant.contains(&id), "unmapped chunk {id} not vacant");
                continue;
            };
            mapped += 1;
            assert!(!slab.vacant.contains(&id));
            for (class, list) in slab.with_room.iter().enumerate() {
                let times = list.iter().filter(|&&c| c == id).count();
                let expected = usize::from(class == chunk.class && chunk.listed);
                assert_eq!(times, expected, "chunk {id} in class {class}'s list");
            }
            if chunk.live == 0 {
                assert!(
                    slab.empty.contains(&id) && !chunk.listed,
                    "emptied chunk {id}"
                );
            } else {
                assert!(!slab.empty.contains(&id));
                assert_eq!(chunk.listed, chunk.has_room(), "chunk {id} listed iff room");
                assert_eq!(
                    chunk.live as usize + chunk.free.len(),
                    chunk.carved as usize
                );
                let free: std::collections::HashSet<_> = chunk.free.iter().collect();
                assert_eq!(free.len(), chunk.free.len(), "a block free twice");
                assert!(chunk.free.iter().all(|&i| u32::from(i) < chunk.carved));
                assert!(chunk.carved <= chunk.capacity());
            }
        }
        assert_eq!(mapped, slab.mapped);
        assert!(slab.mapped <= slab.chunks_max);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Runs of allocations and frees that fill chunks to the last block
        /// and empty them, over four classes and bounds of 0 to 4 chunks:
        /// the invariants hold after every run, no block is handed out
        /// twice, and every live block keeps its bytes.
        #[test]
        fn bookkeeping_holds_as_chunks_fill_and_empty(
            runs in proptest::collection::vec((any::<bool>(), 0usize..4, 1usize..5000, any::<u64>()), 1..40),
            chunks_max in 0usize..5,
        ) {
            let sizes = [1024usize, 993, 700, 64];
            let mut slab = EntrySlab::new(chunks_max);
            let mut live: Vec<(NonNull<u8>, ChunkId, usize, u8)> = Vec::new();
            let mut handed = std::collections::HashSet::new();
            let mut n = 0usize;
            for (allocate, class, count, mut seed) in runs {
                if allocate {
                    for _ in 0..count {
                        n += 1;
                        let len = sizes[class];
                        if let Some((block, chunk)) = slab.alloc(len) {
                            prop_assert!(handed.insert(block.as_ptr() as usize), "handed out twice");
                            let byte = (n % 251) as u8;
                            write(block, &vec![byte; len]);
                            live.push((block, chunk, len, byte));
                        }
                    }
                } else {
                    for _ in 0..count.min(live.len()) {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        let (block, chunk, len, byte) = live.swap_remove((seed >> 33) as usize % live.len());
                        prop_assert_eq!(read(block, len), vec![byte; len]);
                        handed.remove(&(block.as_ptr() as usize));
                        slab.free(block, chunk);
                    }
                }
                check_invariants(&slab);
            }
        }
    }

    #[test]
    fn a_block_freed_twice_is_refused_not_reused() {
        let mut slab = EntrySlab::new(1);
        let (block, chunk) = slab.alloc(100).expect("room");
        let _other = slab.alloc(100).expect("room");
        slab.free(block, chunk);
        let again =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| slab.free(block, chunk)));
        assert!(again.is_err(), "a second free of the same block must panic");
    }

    #[test]
    fn replace_keeps_the_block_within_its_class_and_moves_across() {
        let mut slab = EntrySlab::new(2);
        // SAFETY: every Stored is released or dropped before the slab.
        unsafe {
            let mut s = slab.store(100, |e| e.fill(1));
            let block = s.as_ptr();
            slab.replace(&mut s, 120, |e| e.fill(2));
            assert_eq!(
                (s.as_ptr(), &s[..]),
                (block, &[2u8; 120][..]),
                "same 128-byte class"
            );
            slab.replace(&mut s, 2000, |e| e.fill(3));
            assert_eq!(&s[..], &[3u8; 2000][..], "over SLAB_ENTRY_MAX: on the heap");
            slab.replace(&mut s, 40, |e| e.fill(4));
            assert_eq!(&s[..], &[4u8; 40][..], "back in a block");
            slab.release(s);
            slab.reset();
            assert_eq!(slab.chunks_mapped(), 1, "a reset keeps the chunks mapped");
            let t = slab.store(40, |e| e.fill(5));
            assert_eq!(&t[..], &[5u8; 40][..]);
            slab.release(t);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Any sequence of allocations and frees: every live block keeps its
        /// bytes, no two live blocks overlap, and the chunk bound holds.
        #[test]
        fn live_blocks_never_overlap_and_keep_their_bytes(
            ops in proptest::collection::vec((any::<bool>(), 1usize..=SLAB_ENTRY_MAX, any::<u16>()), 1..600)
        ) {
            let mut slab = EntrySlab::new(3);
            let mut live: Vec<(NonNull<u8>, ChunkId, usize, u8)> = Vec::new();
            for (n, (free, len, pick)) in ops.into_iter().enumerate() {
                if free && !live.is_empty() {
                    let (block, chunk, len, byte) = live.swap_remove(pick as usize % live.len());
                    prop_assert_eq!(read(block, len), vec![byte; len]);
                    slab.free(block, chunk);
                } else if let Some((block, chunk)) = slab.alloc(len) {
                    let byte = (n % 253) as u8;
                    write(block, &vec![byte; len]);
                    live.push((block, chunk, len, byte));
                }
                prop_assert!(slab.chunks_mapped() <= 3);
            }
            let mut spans: Vec<(usize, usize)> =
                live.iter().map(|&(b, _, len, _)| (b.as_ptr() as usize, len)).collect();
            spans.sort_unstable();
            for pair in spans.windows(2) {
                prop_assert!(pair[0].0 + pair[0].1 <= pair[1].0, "blocks overlap");
            }
            for (block, _, len, byte) in live {
                prop_assert_eq!(read(block, len), vec![byte; len]);
            }
        }
    }
}
