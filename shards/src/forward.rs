//! What shards send each other over the mesh: owned copies of requests (the
//! receive buffer of a connection never leaves its shard) and their answers.

use crate::store::ScanSpan;
use ringkv_net::client_frame::Consistency;
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
        /// The request's consistency level (in a cluster).
        level: Consistency,
    },
    /// Part of an MPUT: the owner writes these pairs atomically.
    Put {
        /// Pairs owned by the callee.
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
        /// Time to live, 0 = none.
        ttl_ms: u64,
        /// The request's session version.
        session: Version,
        /// The request's consistency level (in a cluster).
        level: Consistency,
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
    /// A run of single-key RESP commands whose keys the callee owns, to be
    /// run there in order; answered with [`Answer::Resp`].
    Resp {
        /// The commands, RESP-encoded back to back.
        commands: Vec<u8>,
        /// How many commands `commands` holds.
        count: usize,
        /// Reply bytes after which the callee stops (it runs at least one
        /// command): the caller's output cap.
        reply_budget: usize,
        /// The protocol version of the calling connection.
        version: ringkv_net::resp::RespVersion,
    },
    /// Part of a RESP DEL/UNLINK/EXISTS: keys the callee owns ([`Answer::Count`]).
    Keys {
        /// What to do with each key.
        op: KeysOp,
        /// The keys, in request order (duplicates kept).
        keys: Vec<Vec<u8>>,
    },
    /// Walk every live key of the callee (DBSIZE, INFO keyspace, KEYS, FLUSHDB).
    Walk(WalkOp),
    /// Wait until the callee's WAL is durable through this position (the
    /// one an [`Answer::RespWritten`] named); answered with
    /// [`Answer::Committed`] or [`Answer::Failed`].
    Commit(ringkv_storage::wal::Lsn),
}

/// What a [`Call::Keys`] does with each key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysOp {
    /// Count the live keys (a key named twice counts twice).
    Exists,
    /// Delete the live keys; count the deleted ones.
    Delete,
}

/// What a [`Call::Walk`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkOp {
    /// Count live keys and those with a TTL ([`Answer::Counted`]).
    Count,
    /// Delete every key; count the deleted ones ([`Answer::Counted`]).
    Flush,
    /// Every live key starting with the prefix ([`Answer::Keys`]).
    Keys(Vec<u8>),
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
    /// The replies of the first `ran` commands of a [`Call::Resp`], one
    /// each, in order (the rest were not run: the reply budget was spent).
    Resp {
        /// The encoded replies.
        replies: Vec<u8>,
        /// How many commands ran.
        ran: usize,
        /// Some of them are writes the callee applied (visible to reads)
        /// whose WAL records are not yet durable: the caller must not send
        /// the replies before a [`Call::Commit`] of this position to the
        /// same callee succeeds. So a pipeline of forwarded writes shares
        /// the callee's commits instead of waiting for one fsync each.
        unsettled: Option<ringkv_storage::wal::Lsn>,
    },
    /// The [`Call::Commit`] position is durable.
    Committed,
    /// Keys counted (EXISTS) or deleted (DEL).
    Count(u64),
    /// Keys walked, and how many of them have a TTL.
    Counted {
        /// Live keys (or keys deleted).
        keys: u64,
        /// Of which with a TTL.
        expires: u64,
    },
    /// Keys found by a walk, in key order.
    Keys(Vec<Vec<u8>>),
    /// The call failed with this status code and message.
    Failed(ringkv_net::client_frame::Status, String),
    /// The callee stopped before answering.
    Unavailable,
}
