//! Every limit of the client protocol, named, with the relations between them
//! checked at compile time. Qualifier last: `KEY_SIZE_MAX`, not `MAX_KEY_SIZE`.
//!
//! A decoder checks each declared length against these limits and against the
//! bytes that remain before it uses the length, so a hostile peer can make us
//! neither allocate nor read past a frame.

/// Largest key accepted on the wire, in bytes. A longer key is answered with
/// `Status::KeyTooLarge`.
pub const KEY_SIZE_MAX: usize = 1024;

/// Largest value accepted on the wire, in bytes. A longer value is answered with
/// `Status::ValueTooLarge`.
pub const VALUE_SIZE_MAX: usize = 1024 * 1024;

/// Default largest frame (length prefix included), in bytes. Servers may
/// configure their own maximum (at least [`FRAME_SIZE_MAX_MIN`]); a frame whose
/// header declares more is refused before its body is buffered.
pub const FRAME_SIZE_MAX_DEFAULT: usize = 8 * 1024 * 1024;

/// Smallest frame maximum a server may be configured with: one PUT of a
/// maximal key and value, plus headers, must always fit.
pub const FRAME_SIZE_MAX_MIN: usize = VALUE_SIZE_MAX + KEY_SIZE_MAX + 64;

/// Largest frame maximum that can be expressed by the `u32` length prefix.
pub const FRAME_SIZE_MAX_LIMIT: usize = u32::MAX as usize;

/// Largest number of keys in one MGET or pairs in one MPUT. More is answered
/// with `Status::TooManyKeys`.
pub const BATCH_KEYS_MAX: usize = 1024;

/// Largest `limit` of one SCAN request (entries per page).
pub const SCAN_LIMIT_MAX: u32 = 10_000;

/// Largest error message carried in an error frame, in bytes. Longer messages
/// are truncated by the encoder (at a UTF-8 boundary).
pub const ERROR_MESSAGE_SIZE_MAX: usize = 1024;

/// Bytes of a request frame before its body: length (4), version (1),
/// opcode (1), id (8), consistency (1), flags (1), session version (12).
pub const REQUEST_HEADER_SIZE: usize = 28;

/// Bytes of a response frame before its body: length (4), version (1),
/// kind (1), id (8).
pub const RESPONSE_HEADER_SIZE: usize = 14;

/// Bytes of a version on the wire: hlc (8) and node (4).
pub const WIRE_VERSION_SIZE: usize = 12;

/// Largest number of shards a node may announce in HELLO. Bounds the
/// connections a client opens per node.
pub const SHARD_COUNT_MAX: u32 = 1024;

/// Largest encoded body of one MGET/MPUT the client sends: a batch is split
/// into frames of at most this size, so it fits the smallest frame maximum a
/// server may configure.
pub const CLIENT_BATCH_SIZE_MAX: usize = FRAME_SIZE_MAX_MIN - REQUEST_HEADER_SIZE - 12;

const _: () = assert!(KEY_SIZE_MAX <= u16::MAX as usize);
const _: () = assert!(VALUE_SIZE_MAX <= u32::MAX as usize);
const _: () = assert!(FRAME_SIZE_MAX_MIN <= FRAME_SIZE_MAX_DEFAULT);
const _: () = assert!(FRAME_SIZE_MAX_DEFAULT <= FRAME_SIZE_MAX_LIMIT);
const _: () =
    assert!(REQUEST_HEADER_SIZE + 8 + 2 + KEY_SIZE_MAX + 4 + VALUE_SIZE_MAX <= FRAME_SIZE_MAX_MIN);
// A full MGET of maximal keys fits in the default frame.
const _: () = assert!(
    REQUEST_HEADER_SIZE + 4 + BATCH_KEYS_MAX * (2 + KEY_SIZE_MAX) <= FRAME_SIZE_MAX_DEFAULT
);
const _: () = assert!(BATCH_KEYS_MAX <= u16::MAX as usize);
// One maximal MPUT pair always fits in one client batch.
const _: () = assert!(2 + KEY_SIZE_MAX + 4 + VALUE_SIZE_MAX <= CLIENT_BATCH_SIZE_MAX);
const _: () = assert!(ERROR_MESSAGE_SIZE_MAX <= u16::MAX as usize);
const _: () = assert!(SHARD_COUNT_MAX as usize <= u16::MAX as usize);

// ---- RESP (Redis protocol) limits. See `crate::resp` and docs/resp.md. ----

/// Largest inline command line (as telnet and redis-cli send), and largest
/// `*<count>` or `$<len>` header line, in bytes. Redis's
/// `PROTO_INLINE_MAX_SIZE`. A longer line is a protocol error.
pub const RESP_INLINE_SIZE_MAX: usize = 64 * 1024;

/// Bytes a RESP bulk string may exceed [`VALUE_SIZE_MAX`] by and still be
/// buffered, so that a value slightly over the limit gets a command error
/// ("value too large") and the connection stays usable.
pub const RESP_BULK_SIZE_SLACK: usize = 64 * 1024;

/// Largest RESP bulk string accepted (Redis: 512 MiB). A larger declared
/// length is a protocol error before any of it is buffered.
pub const RESP_BULK_SIZE_MAX: usize = VALUE_SIZE_MAX + RESP_BULK_SIZE_SLACK;

/// Largest number of arguments (array elements) of one RESP command,
/// command name included. More is a protocol error before anything is
/// allocated for them.
pub const RESP_ARGS_MAX: usize = 64 * 1024;

/// Largest RESP command on the wire (all its bulk strings and headers), in
/// bytes. A command declaring more is a protocol error before its body is
/// buffered, so one command never holds more than this in a receive buffer.
pub const RESP_COMMAND_SIZE_MAX: usize = 64 * 1024 * 1024;

/// Largest array length an unauthenticated RESP connection may send (Redis's
/// limit, which keeps a client that has not sent AUTH from making the server
/// buffer much).
pub const RESP_UNAUTHENTICATED_ARGS_MAX: usize = 10;

/// Largest bulk string an unauthenticated RESP connection may send (Redis's
/// limit).
pub const RESP_UNAUTHENTICATED_BULK_SIZE_MAX: usize = 16 * 1024;

/// Fewest bytes one RESP bulk string takes on the wire: `$0\r\n\r\n`. Used for
/// the lower bound of bytes still needed by an incomplete command.
pub const RESP_BULK_WIRE_SIZE_MIN: usize = 6;

/// Largest client name (CLIENT SETNAME, HELLO SETNAME) and client library
/// attribute (CLIENT SETINFO), in bytes.
pub const RESP_CLIENT_NAME_SIZE_MAX: usize = 256;

const _: () = assert!(RESP_BULK_SIZE_MAX > VALUE_SIZE_MAX);
const _: () = assert!(RESP_BULK_SIZE_MAX > KEY_SIZE_MAX);
// One SET of a maximal bulk key and value always fits in one command.
const _: () =
    assert!(16 + 2 * (RESP_INLINE_SIZE_MAX + 2 + RESP_BULK_SIZE_MAX + 2) <= RESP_COMMAND_SIZE_MAX);
const _: () = assert!(RESP_UNAUTHENTICATED_ARGS_MAX <= RESP_ARGS_MAX);
const _: () = assert!(RESP_UNAUTHENTICATED_BULK_SIZE_MAX <= RESP_BULK_SIZE_MAX);
const _: () = assert!(RESP_ARGS_MAX as u64 <= i32::MAX as u64);

// ---- Internode frames. See `crate::internode` and docs/protocol.md. ----

/// Largest rkyv archive in one internode frame, in bytes. A frame declaring
/// more is refused (and the connection closed) from its first four bytes.
pub const INTERNODE_FRAME_SIZE_MAX: usize = 64 * 1024 * 1024;

/// A sender closes a batch (and starts another frame) once its messages hold
/// about this many bytes, so one frame never delays the next turn's messages
/// for long and stays far under [`INTERNODE_FRAME_SIZE_MAX`].
pub const INTERNODE_BATCH_BYTES_TARGET: usize = 1024 * 1024;

// A frame of a full batch target plus one maximal write always fits.
const _: () = assert!(
    INTERNODE_BATCH_BYTES_TARGET + 2 * (KEY_SIZE_MAX + VALUE_SIZE_MAX) <= INTERNODE_FRAME_SIZE_MAX
);
const _: () = assert!(INTERNODE_FRAME_SIZE_MAX < u32::MAX as usize);

// ---- RING answers. See `crate::client_frame` (RING) and docs/protocol.md. ----

/// Most nodes a RING answer may list (the cluster crate's `NODES_MAX`).
pub const RING_NODES_MAX: usize = 1024;

/// Most vnode tokens one node of a RING answer may list (the cluster crate's
/// `TOKENS_PER_NODE_MAX`).
pub const RING_TOKENS_MAX: usize = 4096;

/// Longest host or rack name in a RING answer, in bytes (the cluster crate's
/// `NAME_SIZE_MAX`).
pub const RING_NAME_SIZE_MAX: usize = 255;

/// Fewest bytes one node takes in a RING answer: id (4), port (2), shards (4),
/// host length (2), rack length (2), token count (4).
pub const RING_NODE_SIZE_MIN: usize = 18;

const _: () = assert!(RING_NODES_MAX == ringkv_cluster::limits::NODES_MAX);
const _: () = assert!(RING_TOKENS_MAX == ringkv_cluster::limits::TOKENS_PER_NODE_MAX);
const _: () = assert!(RING_NAME_SIZE_MAX == ringkv_cluster::limits::NAME_SIZE_MAX);
const _: () = assert!(RING_NAME_SIZE_MAX <= u16::MAX as usize);
// A ring of the most nodes, each with the default vnode count and the longest
// names, fits in the default frame (a larger ring needs a larger frame maximum).
const _: () = assert!(
    RESPONSE_HEADER_SIZE
        + 16
        + RING_NODES_MAX
            * (RING_NODE_SIZE_MIN
                + 2 * RING_NAME_SIZE_MAX
                + 8 * ringkv_cluster::limits::VNODES_DEFAULT as usize)
        <= FRAME_SIZE_MAX_DEFAULT
);

// ---- Client library. ----

/// How long the blocking client routes around a node it could not connect to
/// (token-aware routing then uses the next replica, or the home node), in ms.
pub const CLIENT_NODE_RETRY_DELAY_MS: u64 = 1000;
