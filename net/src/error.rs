//! The crate's error types: [`FrameError`] for frames that cannot be decoded
//! and [`ClientError`] for everything the client library reports. Every variant
//! carries its evidence (sizes and limits, the status and message of the
//! server) and its doc says what the caller should do.

use std::io;

use crate::client_frame::Status;

/// A frame that cannot be decoded. The stream it came from can no longer be
/// trusted: the caller should close the connection.
// Variant fields are described in each variant's doc.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame's declared size (length prefix included) exceeds the maximum;
    /// nothing past its header was read.
    #[error("frame of {size} bytes exceeds the limit of {size_max} bytes")]
    TooLarge { size: usize, size_max: usize },
    /// The frame's protocol version is not the one this build speaks.
    #[error("unsupported protocol version {version} (this side speaks {supported})")]
    UnsupportedVersion { version: u8, supported: u8 },
    /// The frame's length is within limits but its contents are invalid.
    #[error("malformed frame (id {id:?}): {status}: {reason}")]
    Malformed {
        /// The frame's id, if its header was complete.
        id: Option<u64>,
        /// The status that classifies the fault.
        status: Status,
        /// Evidence: which field, its size, the limit.
        reason: String,
    },
}

impl FrameError {
    /// The status a server answers this error with.
    #[must_use]
    pub fn status(&self) -> Status {
        match self {
            FrameError::TooLarge { .. } => Status::FrameTooLarge,
            FrameError::UnsupportedVersion { .. } => Status::UnsupportedVersion,
            FrameError::Malformed { status, .. } => *status,
        }
    }
}

/// Everything the client library can report.
// Variant fields are described in each variant's doc.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A socket operation failed (connect, read, write). The connection was
    /// dropped; the next call reconnects. A write may or may not have been
    /// applied.
    #[error("I/O error talking to {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// No answer within the configured timeout. The connection was dropped; a
    /// write may or may not have been applied.
    #[error("no answer from {addr} within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u64 },
    /// The server answered with an error status.
    #[error("server error {status}: {message}")]
    Server { status: Status, message: String },
    /// The server sent bytes that violate the protocol (or an answer that does
    /// not match the request). The connection was dropped.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The request was refused before sending (a key or value over the limits,
    /// an empty batch mismatch...). Nothing was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// None of the given addresses could be reached.
    #[error("could not connect to any of {addrs:?}: {last}")]
    NoReachableNode { addrs: Vec<String>, last: String },
}

impl ClientError {
    /// Whether the error ended the connection (so an idempotent request may be
    /// retried on a fresh one).
    #[must_use]
    pub fn is_connection_loss(&self) -> bool {
        matches!(self, ClientError::Io { .. } | ClientError::Timeout { .. })
    }
}

impl From<FrameError> for ClientError {
    fn from(e: FrameError) -> Self {
        ClientError::Protocol(e.to_string())
    }
}
