//! The bytes of a WAL tail: appended at the end, released from the front a
//! whole block at a time once written.
//!
//! Releasing moves nothing at once. The writer used to `Vec::drain` the
//! written blocks after every write, which moved every byte appended while
//! the write was in flight: 2.3 % of a shard's CPU at about 1M SETs/s with
//! `Durability::None` (its 1 MiB writes every 10 ms leave MiBs behind them).
//! Now the live bytes move to the front once the dead prefix is at least
//! [`DEAD_PER_LIVE_TO_MOVE`] times as long as they are, so every move is paid
//! for by that many released bytes, and the bytes in use stay within that
//! many times the live ones, plus them (and one append).
//!
//! Why four and not one: the writer writes a long tail a 1 MiB chunk at a
//! time and releases each chunk as it goes. At about 1M SETs/s a tail holds
//! about 1.7 MiB when its write starts, and with a move at one dead byte per
//! live byte the first chunk's release moved the other 0.7 MiB, every 10 ms
//! (1 % of a shard's CPU). At four, the move waits for the last chunk, after
//! which only the page the next write starts in and the bytes appended while
//! that chunk was written are live (0.5 % of the CPU left in moves). A
//! written chunk stays in the tail until its write completes (see the
//! writer's `lead`).
//! A tail that reserves its segment's size (up to 256 MiB) up front thus
//! touches no more pages than it needs and never reallocates: a fresh
//! allocation's pages fault in, at about 6-7 us each on this VM.

use crate::limits::WAL_TAIL_RESERVE_MAX;

/// Dead bytes per live byte at which a release moves the live bytes to the
/// front (see the module doc).
const DEAD_PER_LIVE_TO_MOVE: usize = 4;

/// Live bytes `bytes[head..]`, in log order; the released prefix
/// `bytes[..head]` is dead, and shorter than [`DEAD_PER_LIVE_TO_MOVE`] times
/// the live bytes (or empty).
#[derive(Default)]
pub(super) struct TailBuf {
    bytes: Vec<u8>,
    head: usize,
}

impl TailBuf {
    /// An empty buffer that holds `capacity` bytes before it grows. Pages
    /// are touched only as bytes are appended.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(capacity),
            head: 0,
        }
    }

    /// Bytes reserved up front for the tail of a segment of `segment_size`
    /// bytes: the whole segment, up to [`WAL_TAIL_RESERVE_MAX`].
    pub(super) fn reserve_for(segment_size: u64) -> usize {
        usize::try_from(segment_size).map_or(WAL_TAIL_RESERVE_MAX, |s| s.min(WAL_TAIL_RESERVE_MAX))
    }

    /// An empty buffer for the tail of a segment of `segment_size` bytes
    /// (see [`reserve_for`](Self::reserve_for)).
    pub(super) fn for_segment(segment_size: u64) -> Self {
        Self::with_capacity(Self::reserve_for(segment_size))
    }

    /// The same allocation with no live bytes, to be filled again.
    pub(super) fn emptied(mut self) -> Self {
        self.bytes.clear();
        self.head = 0;
        self
    }

    /// Number of live bytes.
    pub(super) fn len(&self) -> usize {
        self.bytes.len() - self.head
    }

    /// Bytes the allocation holds, dead ones included.
    pub(super) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// The live bytes.
    pub(super) fn live(&self) -> &[u8] {
        &self.bytes[self.head..]
    }

    /// The vector to append about `additional` bytes to (appending more is
    /// correct, only maybe slower). Positions in it are not stable across
    /// calls: take it once per frame. Moves the live bytes to the front first
    /// when the append would otherwise grow the allocation.
    pub(super) fn appender(&mut self, additional: usize) -> &mut Vec<u8> {
        if self.head > 0 && self.bytes.len() + additional > self.bytes.capacity() {
            self.compact();
        }
        &mut self.bytes
    }

    /// Drops the first `n` live bytes. Panics if fewer are live (a writer bug).
    pub(super) fn release(&mut self, n: usize) {
        assert!(
            n <= self.len(),
            "release of {n} bytes with {} live",
            self.len()
        );
        self.head += n;
        if self.head >= DEAD_PER_LIVE_TO_MOVE * self.len() {
            self.compact();
        }
    }

    fn compact(&mut self) {
        self.bytes.copy_within(self.head.., 0);
        self.bytes.truncate(self.bytes.len() - self.head);
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::BLOCK_SIZE;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn append(buf: &mut TailBuf, data: &[u8]) {
        buf.appender(data.len()).extend_from_slice(data);
    }

    #[test]
    fn live_bytes_move_only_once_four_times_as_many_bytes_are_dead() {
        let mut buf = TailBuf::with_capacity(16 * BLOCK_SIZE);
        let data: Vec<u8> = (0..6 * BLOCK_SIZE).map(|i| i as u8).collect();
        append(&mut buf, &data);
        let at = buf.bytes.as_ptr();
        buf.release(3 * BLOCK_SIZE);
        assert_eq!(
            buf.head,
            3 * BLOCK_SIZE,
            "three blocks dead, three live: not moved"
        );
        assert_eq!(buf.live(), &data[3 * BLOCK_SIZE..]);
        append(&mut buf, &[7; 100]);
        buf.release(BLOCK_SIZE);
        assert_eq!(
            buf.head,
            4 * BLOCK_SIZE,
            "four blocks dead, two and a bit live: not moved"
        );
        buf.release(BLOCK_SIZE);
        assert_eq!(buf.head, 0, "five blocks dead, one and a bit live: moved");
        assert_eq!(&buf.live()[..BLOCK_SIZE], &data[5 * BLOCK_SIZE..]);
        assert_eq!(&buf.live()[BLOCK_SIZE..], &[7; 100]);
        assert_eq!(buf.bytes.as_ptr(), at, "no reallocation");
    }

    #[test]
    fn an_append_that_would_grow_the_allocation_moves_the_live_bytes_instead() {
        let mut buf = TailBuf::with_capacity(4 * BLOCK_SIZE);
        append(&mut buf, &vec![1; 3 * BLOCK_SIZE]);
        buf.release(BLOCK_SIZE);
        assert_eq!(buf.head, BLOCK_SIZE);
        append(&mut buf, &[2; BLOCK_SIZE + 1]);
        assert_eq!(buf.head, 0);
        assert_eq!(buf.capacity(), 4 * BLOCK_SIZE);
        assert_eq!(buf.len(), 3 * BLOCK_SIZE + 1);
    }

    #[test]
    #[should_panic(expected = "release of")]
    fn releasing_more_than_is_live_is_a_bug() {
        let mut buf = TailBuf::default();
        append(&mut buf, &[0; 10]);
        buf.release(11);
    }

    proptest! {
        /// Any sequence of appends and releases keeps exactly the bytes a
        /// plain queue keeps; the bytes in use (dead and live) stay within
        /// `DEAD_PER_LIVE_TO_MOVE + 1` times the most ever live plus one
        /// append, and the allocation within twice the most ever live: dead
        /// bytes never make it grow.
        #[test]
        fn keeps_what_a_queue_keeps(ops in prop::collection::vec((any::<bool>(), 1usize..3 * BLOCK_SIZE), 1..200)) {
            let mut buf = TailBuf::default();
            let mut model: VecDeque<u8> = VecDeque::new();
            let mut next = 0u8;
            let mut live_max = 0;
            for (is_append, n) in ops {
                if is_append {
                    let data: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                    append(&mut buf, &data);
                    model.extend(&data);
                    live_max = live_max.max(buf.len());
                } else {
                    let n = n.min(buf.len());
                    buf.release(n);
                    model.drain(..n);
                }
                prop_assert_eq!(buf.live(), model.make_contiguous());
                prop_assert!(buf.capacity() <= (2 * live_max).max(8), "capacity {} for at most {} live", buf.capacity(), live_max);
                prop_assert!(buf.bytes.len() <= (DEAD_PER_LIVE_TO_MOVE + 1) * live_max + 3 * BLOCK_SIZE, "{} bytes in use for at most {} live", buf.bytes.len(), live_max);
            }
        }
    }
}
