//! Memory for the row cache's entries: equal-size blocks carved from 2 MiB
//! chunks that the kernel backs with transparent huge pages.
//!
//! Why: a row cache hit reads a random bucket and then a random entry among
//! hundreds of MiB. With 4 KiB pages the TLB covers a few MiB, so the entry
//! read is a TLB miss as well as a cache miss, and in a VM each page walk is
//! two-dimensional. Entries allocated one by one from the global allocator
//! sit on 4 KiB pages; from these chunks they sit on 2 MiB pages, which the
//! TLB covers. (Measured in perf/RESULTS.md, "Memory, not code": GET P16
//! about +5 % with the entries on huge pages, +6 % with the bucket table too.)
//!
//! The design is memcached's slab allocator, reduced: a block size per class
//! (a multiple of [`BLOCK_ALIGN`] up to [`SLAB_ENTRY_MAX`]); a chunk serves one
//! class; each class keeps the chunks that have a free block; a chunk whose
//! last block is freed goes back to a small pool any class can take. The
//! number of chunks is bounded (`chunks_max`), so the slab never holds more
//! than its budget: past it, or for a larger entry, [`EntrySlab::alloc`]
//! says no and the caller allocates on the heap.
//!
//! Single owner, single thread; blocks are plain bytes (nothing to drop).

use std::ptr::NonNull;

/// Bytes of one chunk: one transparent huge page on x86_64 and aarch64.
pub(crate) const CHUNK_BYTES: usize = 2 << 20;

/// Block sizes are multiples of this many bytes (and blocks are aligned to it).
const BLOCK_ALIGN: usize = 32;

/// The largest entry a block holds; larger entries live on the heap.
pub(crate) const SLAB_ENTRY_MAX: usize = 1024;

const CLASSES: usize = SLAB_ENTRY_MAX / BLOCK_ALIGN;

/// Empty chunks kept for reuse instead of being unmapped: a chunk emptied
/// and another needed soon after would otherwise pay a fresh huge page's
/// fault (the kernel zeroes 2 MiB) each time.
const EMPTY_CHUNKS_KEPT: usize = 2;

/// A 2 MiB-aligned anonymous mapping of [`CHUNK_BYTES`], unmapped on drop.
struct Region {
    base: NonNull<u8>,
}

impl Region {
    /// Maps a fresh region and asks for huge pages; `None` if the kernel
    /// refuses the mapping.
    fn map() -> Option<Region> {
        // Twice the size, then the unaligned head and tail are unmapped:
        // mmap itself only promises 4 KiB alignment.
        let span = 2 * CHUNK_BYTES;
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
        let aligned = start.next_multiple_of(CHUNK_BYTES);
        let head = aligned - start;
        let tail = span - head - CHUNK_BYTES;
        // SAFETY: both ranges lie inside the mapping just made and outside
        // the aligned chunk kept; nothing refers to them. MADV_HUGEPAGE only
        // changes how the chunk is backed (EINVAL without THP is harmless).
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap((aligned + CHUNK_BYTES) as *mut libc::c_void, tail);
            }
            libc::madvise(
                aligned as *mut libc::c_void,
                CHUNK_BYTES,
                libc::MADV_HUGEPAGE,
            );
        }
        NonNull::new(aligned as *mut u8).map(|base| Region { base })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the region was mapped by `Region::map` with this size and
        // is unmapped once; the slab hands out no block of a dropped chunk
        // (its owner frees or forgets every block first).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), CHUNK_BYTES);
        }
    }
}

/// Asks the kernel to back the whole 2 MiB pages inside `vec`'s allocation
/// (its capacity) with transparent huge pages. A hint for a large table
/// about to be filled: pages already touched keep their size until the
/// kernel merges them; without THP it does nothing. Changes no contents.
pub(crate) fn advise_huge_pages<T>(vec: &Vec<T>) {
    let start = vec.as_ptr() as usize;
    let end = start + vec.capacity() * std::mem::size_of::<T>();
    let first = start.next_multiple_of(CHUNK_BYTES);
    let last = end / CHUNK_BYTES * CHUNK_BYTES;
    if last > first {
        // SAFETY: the range is page aligned and inside `vec`'s allocation;
        // MADV_HUGEPAGE changes how it is backed, not what it holds.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

/// One chunk, serving blocks of one class.
struct Chunk {
    region: Region,
    class: usize,
    /// Blocks carved so far (the rest of the chunk is untouched).
    carved: u32,
    /// Blocks handed out and not freed.
    live: u32,
    /// Freed blocks, by index, reused before carving more.
    free: Vec<u32>,
    /// Whether the chunk is in its class's list of chunks with room.
    listed: bool,
}

impl Chunk {
    fn block_bytes(&self) -> usize {
        class_block_bytes(self.class)
    }

    fn capacity(&self) -> u32 {
        (CHUNK_BYTES / self.block_bytes()) as u32
    }

    fn has_room(&self) -> bool {
        !self.free.is_empty() || self.carved < self.capacity()
    }
}

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

    /// A block of at least `len` bytes (uninitialized contents are whatever
    /// the block last held, or zeros), or `None` when `len` is 0 or over
    /// [`SLAB_ENTRY_MAX`], or the slab is at `chunks_max` with no block of
    /// that size free, or the kernel refused a mapping. The block stays valid
    /// until it is given to [`free`](Self::free) or the slab is dropped.
    pub(crate) fn alloc(&mut self, len: usize) -> Option<(NonNull<u8>, ChunkId)> {
        if len == 0 || len > SLAB_ENTRY_MAX {
            return None;
        }
        let class = (len - 1) / BLOCK_ALIGN;
        let id = match self.with_room[class].last() {
            Some(&id) => id,
            None => self.take_chunk(class)?,
        };
        let chunk = self.chunks.get_mut(id as usize)?.as_mut()?;
        let index = match chunk.free.pop() {
            Some(index) => index,
            None => {
                chunk.carved += 1;
                chunk.carved - 1
            }
        };
        chunk.live += 1;
        if !chunk.has_room() {
            chunk.listed = false;
            self.with_room[class].pop();
        }
        let offset = index as usize * chunk.block_bytes();
        // SAFETY: index < capacity, so the block lies inside the chunk.
        let block = unsafe { chunk.region.base.add(offset) };
        Some((block, ChunkId(id)))
    }

    /// Gives back a block from [`alloc`](Self::alloc) (`block` and `chunk` as
    /// it returned them). The block must not be used afterwards.
    pub(crate) fn free(&mut self, block: NonNull<u8>, chunk: ChunkId) {
        let id = chunk.0;
        let Some(Some(chunk)) = self.chunks.get_mut(id as usize) else {
            debug_assert!(false, "a block freed to a chunk that is gone");
            return;
        };
        let offset = block.as_ptr() as usize - chunk.region.base.as_ptr() as usize;
        debug_assert!(offset < CHUNK_BYTES && offset % chunk.block_bytes() == 0);
        chunk.free.push((offset / chunk.block_bytes()) as u32);
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
    pub(crate) fn chunks_mapped(&self) -> usize {
        self.mapped
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
                let region = Region::map()?;
                self.mapped += 1;
                let chunk = Chunk {
                    region,
                    class,
                    carved: 0,
                    live: 0,
                    free: Vec::new(),
                    listed: false,
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
    ptr: NonNull<u8>,
    len: u32,
    /// The chunk of its block, or [`ON_HEAP`]: a leaked `Box<[u8]>` of `len`.
    chunk: u32,
}

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
            // in `EntrySlab::store`, and dropped only here.
            drop(unsafe { Box::from_raw(slice) });
        }
    }
}

impl EntrySlab {
    /// `len` bytes written by `fill` (which must write every byte it is
    /// given), in a block of the slab or on the heap.
    pub(crate) fn store(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Stored {
        let len32 = u32::try_from(len).expect("row cache entries are far below 4 GiB");
        let mut stored = match self.alloc(len) {
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
        };
        fill(&mut stored);
        stored
    }

    /// Frees what [`store`](Self::store) made.
    pub(crate) fn release(&mut self, stored: Stored) {
        if stored.chunk != ON_HEAP {
            self.free(stored.ptr, ChunkId(stored.chunk));
        }
        // A heap entry is freed by its drop; a slab one's drop does nothing.
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
