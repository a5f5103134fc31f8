//! [`FrameBuffer`]: a receive buffer whose unread bytes always start on a
//! 16-byte boundary, so [`super::decode_frame`] can read archives in place.
//!
//! Invariants: `start <= end <= data.len()`; `start` is a multiple of 16 (the
//! backing `AlignedVec<16>` starts 16-aligned, so `bytes()` does too); bytes
//! in `data[end..]` are initialised (zeroed when grown) so `spare` can hand
//! them out as a plain slice. Consuming whole frames (multiples of 16) only
//! moves `start`; consuming anything else (the 8-byte preface) or running out
//! of room moves the unread bytes to the front.

use rkyv::util::AlignedVec;

use super::FRAME_ALIGNMENT;

/// Smallest amount the buffer grows by, so small reads do not reallocate often.
const GROWTH_MIN: usize = 64 * 1024;

/// A receive buffer whose unread bytes start 16-aligned. Read into
/// [`spare`](Self::spare), report with [`filled`](Self::filled), decode from
/// [`bytes`](Self::bytes), drop decoded frames with [`consume`](Self::consume).
pub struct FrameBuffer {
    data: AlignedVec<16>,
    start: usize,
    end: usize,
}

impl Default for FrameBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FrameBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameBuffer")
            .field("len", &self.len())
            .field("capacity", &self.data.len())
            .finish()
    }
}

impl FrameBuffer {
    /// An empty buffer (allocates on the first `spare`).
    #[must_use]
    pub fn new() -> Self {
        FrameBuffer {
            data: AlignedVec::new(),
            start: 0,
            end: 0,
        }
    }

    /// Writable room after the unread bytes, at least `min` bytes long (it may
    /// be longer: read as much as the socket has). Report what was written
    /// with [`filled`](Self::filled).
    pub fn spare(&mut self, min: usize) -> &mut [u8] {
        if self.data.len() - self.end < min {
            self.compact();
        }
        if self.data.len() - self.end < min {
            // At least doubling keeps a large frame read in small pieces
            // linear in its size; the decoder refuses a frame over the limit
            // from its header, so a peer cannot make this grow unbounded.
            let new_len = (self.end + min.max(GROWTH_MIN)).max(2 * self.data.len());
            self.data.resize(new_len, 0);
        }
        &mut self.data[self.end..]
    }

    /// Marks `n` bytes of the last [`spare`](Self::spare) slice as received.
    /// Panics if `n` exceeds that slice (a bug in the caller).
    pub fn filled(&mut self, n: usize) {
        assert!(
            n <= self.data.len() - self.end,
            "filled past the spare room"
        );
        self.end += n;
    }

    /// The unread bytes; they start on a 16-byte boundary (when not empty).
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        let bytes = &self.data[self.start..self.end];
        debug_assert!(bytes.is_empty() || bytes.as_ptr() as usize % FRAME_ALIGNMENT == 0);
        bytes
    }

    /// Drops the first `n` unread bytes. The rest stay 16-aligned: a multiple
    /// of 16 just advances; anything else moves the rest to the front.
    /// Panics if `n > len()` (a bug in the caller).
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.len(), "consumed more than was buffered");
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start % FRAME_ALIGNMENT != 0 {
            self.compact();
        }
    }

    /// Number of unread bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether no bytes are unread.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves the unread bytes to the front of the (aligned) storage.
    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        self.data.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }
}
