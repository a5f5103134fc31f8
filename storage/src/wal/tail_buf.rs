//! The bytes of a WAL tail: appended at the end, released from the front a
//! whole block at a time once written.
//!
//! Releasing does not move what is left. The writer used to `Vec::drain` the
//! written blocks after every write, which moved every byte appended while
//! the write was in flight: 2.3 % of a shard's CPU at about 1M SETs/s with
//! `Durability::None` (its 1 MiB writes every 10 ms leave MiBs behind them).
//! Now the live bytes move to the front only when an append would otherwise
//! grow the allocation (a growth would copy them anyway), or when at most a
//! block is left (a move of at most 4 KiB).

use crate::limits::BLOCK_SIZE;

/// Live bytes `bytes[head..]`, in log order; the released prefix
/// `bytes[..head]` is dead and reused once the live bytes move to the front.
#[derive(Default)]
pub(super) struct TailBuf {
    bytes: Vec<u8>,
    head: usize,
}

impl TailBuf {
    /// An empty buffer that holds `capacity` bytes before it grows.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(capacity),
            head: 0,
        }
    }

    /// A buffer whose live bytes are `bytes`.
    pub(super) fn from_vec(bytes: Vec<u8>) -> Self {
        Self { bytes, head: 0 }
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
        if self.len() <= BLOCK_SIZE {
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
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn append(buf: &mut TailBuf, data: &[u8]) {
        buf.appender(data.len()).extend_from_slice(data);
    }

    #[test]
    fn released_bytes_are_not_moved_until_an_append_needs_their_room() {
        let mut buf = TailBuf::with_capacity(4 * BLOCK_SIZE);
        let data: Vec<u8> = (0..3 * BLOCK_SIZE).map(|i| i as u8).collect();
        append(&mut buf, &data);
        let at = buf.bytes.as_ptr();
        buf.release(BLOCK_SIZE);
        assert_eq!(buf.head, BLOCK_SIZE, "two blocks left live: not moved");
        assert_eq!(buf.live(), &data[BLOCK_SIZE..]);
        // Fits behind the live bytes: still not moved.
        append(&mut buf, &[7; 100]);
        assert_eq!(buf.head, BLOCK_SIZE);
        // Does not fit any more: the live bytes move to the front instead of
        // the allocation growing.
        append(&mut buf, &[9; BLOCK_SIZE]);
        assert_eq!(buf.head, 0);
        assert_eq!(buf.capacity(), 4 * BLOCK_SIZE);
        assert_eq!(buf.bytes.as_ptr(), at);
        assert_eq!(&buf.live()[..2 * BLOCK_SIZE], &data[BLOCK_SIZE..]);
        assert_eq!(buf.len(), 3 * BLOCK_SIZE + 100);
    }

    #[test]
    fn a_release_that_leaves_at_most_a_block_moves_it_to_the_front() {
        let mut buf = TailBuf::with_capacity(4 * BLOCK_SIZE);
        append(&mut buf, &vec![1; 2 * BLOCK_SIZE + 10]);
        buf.release(2 * BLOCK_SIZE);
        assert_eq!(buf.head, 0);
        assert_eq!(buf.live(), &[1; 10]);
    }

    #[test]
    #[should_panic(expected = "release of")]
    fn releasing_more_than_is_live_is_a_bug() {
        let mut buf = TailBuf::from_vec(vec![0; 10]);
        buf.release(11);
    }

    proptest! {
        /// Any sequence of appends and releases keeps exactly the bytes a
        /// plain queue keeps, and the allocation never grows past twice the
        /// most bytes ever live at once: dead bytes never make it grow.
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
            }
        }
    }
}
