//! What shards send each other over the mesh: owned copies of requests (the
//! receive buffer of a connection never leaves its shard) and their answers.

use crate::store::ScanSpan;
use ringkv_storage::{Entry, Version};

/// A request from one shard to another.
#[derive(Debug)]
pub enum Call {
    /// A complete single-key request frame, copied from the receive buffer;
    /// the owner decodes it in place, executes it and answers with the
    /// encoded response frame ([`Answer::Frame`]).
    Frame(Vec<u8>),
    /// Part of an MGET: the owner reads these keys.
    Get {
        /// Keys owned by the callee.
        keys: Vec<Vec<u8>>,
    },
    /// Part of an MPUT: the owner writes these pairs atomically.
    Put {
        /// Pairs owned by the callee.
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
        /// Time to live, 0 = none.
        ttl_ms: u64,
        /// The request's session version.
        session: Version,
    },
    /// Part of a node-wide SCAN: the owner's live entries of `span`.
    Scan {
        /// Which keys.
        span: ScanSpan,
        /// At most this many.
        limit: usize,
    },
    /// The callee's STATS lines.
    Stats,
}

/// A shard's answer to a [`Call`].
#[derive(Debug)]
pub enum Answer {
    /// An encoded response frame, to append to the connection's output as is.
    Frame(Vec<u8>),
    /// MGET part answers, in the order of the keys.
    Values(Vec<Option<(Vec<u8>, Version)>>),
    /// MPUT part written with this version.
    Written(Version),
    /// SCAN part.
    Entries(Vec<Entry>),
    /// STATS lines.
    Stats(String),
    /// The call failed with this status code and message.
    Failed(ringkv_net::client_frame::Status, String),
    /// The callee stopped before answering.
    Unavailable,
}
