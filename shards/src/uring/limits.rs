//! The limits of the io_uring network loop, named, qualifier last, with
//! their relations checked at compile time. (They live beside the loop
//! rather than in `crate::limits` because only this module uses them.)

/// Submission queue entries of a shard's network ring. A turn that queues
/// more submits early, so this bounds a batch, not the connections.
pub const RING_ENTRIES: u32 = 4096;

/// Completion queue entries: four per submission entry, since every
/// multishot receive posts many completions per submission.
pub const COMPLETION_ENTRIES: u32 = 4 * RING_ENTRIES;

/// Provided receive buffers of a shard (a power of two, at most 32768). The
/// kernel fills whichever is free; the loop copies the bytes out and hands
/// the buffer back in the same turn, so this only needs to cover the
/// completions of one turn.
pub const RECV_BUFFER_COUNT: u16 = 512;

/// Bytes of one provided receive buffer.
pub const RECV_BUFFER_SIZE: usize = 16 << 10;

/// Connection slots of one shard: a slot number travels in 24 bits of a
/// completion's user data.
pub const CONNECTION_SLOTS_MAX: usize = (1 << 24) - 1;

const _: () = assert!(RECV_BUFFER_COUNT.is_power_of_two() && RECV_BUFFER_COUNT <= 32_768);
const _: () = assert!(RECV_BUFFER_SIZE <= u32::MAX as usize);
const _: () = assert!(COMPLETION_ENTRIES >= RING_ENTRIES);
