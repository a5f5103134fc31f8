//! Every limit of the storage engine, named, with the relations between them
//! checked at compile time. Qualifier last: `KEY_SIZE_MAX`, not `MAX_KEY_SIZE`.

/// Largest key the engine accepts, in bytes. Larger keys are refused with
/// [`crate::Error::KeyTooLarge`] before anything is written.
pub const KEY_SIZE_MAX: usize = 1024;

/// Largest value the engine accepts, in bytes. Larger values are refused with
/// [`crate::Error::ValueTooLarge`] before anything is written.
pub const VALUE_SIZE_MAX: usize = 1024 * 1024;

/// Unit of every direct-I/O transfer and alignment: offsets and lengths of all
/// reads and writes are multiples of this.
pub const BLOCK_SIZE: usize = 4096;

/// Largest number of entries in one write batch.
pub const BATCH_ENTRIES_MAX: usize = 4096;

/// Largest encoded write batch (one WAL record), in bytes.
pub const BATCH_SIZE_MAX: usize = 16 * 1024 * 1024;

/// Largest single direct read issued, in bytes. Reads above this are split:
/// very large O_DIRECT reads through glommio have been reported to hang.
pub const DIRECT_READ_SIZE_MAX: usize = 128 * 1024;

const _: () = assert!(BLOCK_SIZE.is_power_of_two());
const _: () = assert!(DIRECT_READ_SIZE_MAX % BLOCK_SIZE == 0);
const _: () = assert!(KEY_SIZE_MAX + VALUE_SIZE_MAX + 64 <= BATCH_SIZE_MAX);
