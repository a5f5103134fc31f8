//! The receive buffer shared by the blocking and async clients: bytes read
//! from the socket, of which a prefix may already be consumed.
//!
//! Invariants: `start <= end <= data.len()`; `data[start..end]` are received
//! and not yet consumed; the buffer grows only to hold one frame (bounded by
//! the frame maximum, checked by the decoder from the frame header) plus one
//! read chunk.

/// Bytes read per socket read when the buffer has room to spare.
const READ_CHUNK_SIZE: usize = 64 * 1024;

/// A growable receive buffer with a consumed prefix.
#[derive(Debug, Default)]
pub(crate) struct RecvBuffer {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl RecvBuffer {
    /// The received, unconsumed bytes.
    pub(crate) fn data(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Marks `n` bytes at the front as consumed.
    pub(crate) fn consume(&mut self, n: usize) {
        assert!(
            n <= self.end - self.start,
            "consumed more than was received"
        );
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room to read at least `needed` more bytes into (compacting or growing
    /// the buffer); call [`RecvBuffer::filled`] with the count read.
    pub(crate) fn spare(&mut self, needed: usize) -> &mut [u8] {
        let want = needed.max(READ_CHUNK_SIZE);
        if self.data.len() - self.end < want {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.data.len() - self.end < want {
                self.data.resize(self.end + want, 0);
            }
        }
        &mut self.data[self.end..]
    }

    /// Records that `n` bytes were read into the slice returned by `spare`.
    pub(crate) fn filled(&mut self, n: usize) {
        assert!(
            self.end + n <= self.data.len(),
            "filled past the spare room"
        );
        self.end += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_before_growing_and_keeps_unconsumed_bytes() {
        let mut b = RecvBuffer::default();
        let s = b.spare(10);
        s[..5].copy_from_slice(b"hello");
        b.filled(5);
        b.consume(2);
        assert_eq!(b.data(), b"llo");
        let cap = b.spare(READ_CHUNK_SIZE).len();
        assert!(cap >= READ_CHUNK_SIZE);
        assert_eq!(b.data(), b"llo");
        b.consume(3);
        assert!(b.data().is_empty());
    }
}
