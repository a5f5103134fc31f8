//! Status codes of the client protocol: stable numbers, carried as `u16` (LE)
//! in error frames. Numbers are never reused or renumbered; new codes may be
//! added without a protocol version bump, and a client that meets a code it
//! does not know decodes it as [`Status::Unknown`] (an error of unknown kind).
//!
//! Ranges: `0..=9` outcomes that are not failures, `10..=29` the request was
//! refused as malformed or out of limits (do not retry unchanged), `30..=49`
//! the node could not serve it now (may retry, elsewhere or later), `50..=69`
//! the node failed.

use std::fmt;

/// One stable status code. See the module doc for the ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
#[non_exhaustive]
pub enum Status {
    /// Success (never sent in an error frame; reserved so 0 never means failure).
    Ok = 0,
    /// The key does not exist.
    NotFound = 1,
    /// A compare-and-swap found a different current state.
    CasMismatch = 2,
    /// The request is malformed: a length runs past the frame, a field holds an
    /// invalid value, trailing bytes follow the body.
    BadRequest = 10,
    /// The opcode is not one this node knows; the frame was skipped.
    UnknownOpcode = 11,
    /// A key is longer than `KEY_SIZE_MAX`.
    KeyTooLarge = 12,
    /// A value is longer than `VALUE_SIZE_MAX`.
    ValueTooLarge = 13,
    /// The frame's declared length exceeds the node's frame maximum; the
    /// connection is closed.
    FrameTooLarge = 14,
    /// The frame's protocol version is not one this node speaks; the connection
    /// is closed.
    UnsupportedVersion = 15,
    /// INCR/DECR on a value that is not a decimal signed 64-bit integer.
    NotAnInteger = 16,
    /// INCR/DECR would overflow an `i64`.
    Overflow = 17,
    /// An MGET/MPUT holds more than `BATCH_KEYS_MAX` keys.
    TooManyKeys = 18,
    /// Not enough replicas are reachable for the consistency level.
    Unavailable = 30,
    /// The request did not complete within the node's deadline; its effect is
    /// unknown (a write may or may not have been applied).
    Timeout = 31,
    /// The node refuses work to protect itself (connection or queue limit).
    Overloaded = 32,
    /// The node is shutting down and accepts no new requests.
    ShuttingDown = 33,
    /// The storage engine failed (I/O error, corruption, poisoned engine).
    StorageError = 50,
    /// A bug or an unexpected state in the node.
    Internal = 51,
    /// A code this build does not know (sent by a newer peer).
    Unknown = 0xFFFF,
}

impl Status {
    /// The stable wire number of this status.
    #[must_use]
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The status for a wire number; numbers this build does not know map to
    /// [`Status::Unknown`].
    #[must_use]
    pub fn from_code(code: u16) -> Status {
        match code {
            0 => Status::Ok,
            1 => Status::NotFound,
            2 => Status::CasMismatch,
            10 => Status::BadRequest,
            11 => Status::UnknownOpcode,
            12 => Status::KeyTooLarge,
            13 => Status::ValueTooLarge,
            14 => Status::FrameTooLarge,
            15 => Status::UnsupportedVersion,
            16 => Status::NotAnInteger,
            17 => Status::Overflow,
            18 => Status::TooManyKeys,
            30 => Status::Unavailable,
            31 => Status::Timeout,
            32 => Status::Overloaded,
            33 => Status::ShuttingDown,
            50 => Status::StorageError,
            51 => Status::Internal,
            _ => Status::Unknown,
        }
    }

    /// Every known status (for tests and documentation).
    pub const ALL: [Status; 19] = [
        Status::Ok,
        Status::NotFound,
        Status::CasMismatch,
        Status::BadRequest,
        Status::UnknownOpcode,
        Status::KeyTooLarge,
        Status::ValueTooLarge,
        Status::FrameTooLarge,
        Status::UnsupportedVersion,
        Status::NotAnInteger,
        Status::Overflow,
        Status::TooManyKeys,
        Status::Unavailable,
        Status::Timeout,
        Status::Overloaded,
        Status::ShuttingDown,
        Status::StorageError,
        Status::Internal,
        Status::Unknown,
    ];

    /// The upper-case name used in logs and the protocol spec.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::NotFound => "NOT_FOUND",
            Status::CasMismatch => "CAS_MISMATCH",
            Status::BadRequest => "BAD_REQUEST",
            Status::UnknownOpcode => "UNKNOWN_OPCODE",
            Status::KeyTooLarge => "KEY_TOO_LARGE",
            Status::ValueTooLarge => "VALUE_TOO_LARGE",
            Status::FrameTooLarge => "FRAME_TOO_LARGE",
            Status::UnsupportedVersion => "UNSUPPORTED_VERSION",
            Status::NotAnInteger => "NOT_AN_INTEGER",
            Status::Overflow => "OVERFLOW",
            Status::TooManyKeys => "TOO_MANY_KEYS",
            Status::Unavailable => "UNAVAILABLE",
            Status::Timeout => "TIMEOUT",
            Status::Overloaded => "OVERLOADED",
            Status::ShuttingDown => "SHUTTING_DOWN",
            Status::StorageError => "STORAGE_ERROR",
            Status::Internal => "INTERNAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    /// Whether the same request may succeed if sent again later or to another
    /// node (the node was unavailable, overloaded or stopping).
    #[must_use]
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Status::Unavailable | Status::Timeout | Status::Overloaded | Status::ShuttingDown
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_code() {
        for s in Status::ALL {
            assert_eq!(Status::from_code(s.code()), s);
        }
    }

    #[test]
    fn unknown_codes_decode_as_unknown() {
        assert_eq!(Status::from_code(9), Status::Unknown);
        assert_eq!(Status::from_code(1000), Status::Unknown);
    }

    #[test]
    fn status_numbers_are_stable() {
        // These numbers are part of the wire protocol (docs/protocol.md).
        assert_eq!(Status::BadRequest.code(), 10);
        assert_eq!(Status::UnknownOpcode.code(), 11);
        assert_eq!(Status::KeyTooLarge.code(), 12);
        assert_eq!(Status::ValueTooLarge.code(), 13);
        assert_eq!(Status::FrameTooLarge.code(), 14);
        assert_eq!(Status::UnsupportedVersion.code(), 15);
        assert_eq!(Status::Internal.code(), 51);
    }
}
