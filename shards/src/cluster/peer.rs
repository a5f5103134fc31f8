//! Inbound internode connections: a peer shard's link to this shard. The
//! peer sends replica writes and reads; this shard applies them to its own
//! store and answers on the same connection.
//!
//! ```text
//!  buf: [ frame | frame | partial ]   frames read in place (zero-copy):
//!         \_ every message of every complete frame runs concurrently _/
//!  out: [ one frame with every answer ]  -> one write
//! ```
//!
//! Invariants: keys and values are applied straight from the receive buffer
//! (no copy until the engine's own); a write for a key this shard does not
//! own is refused (the sender's view of our shard count is wrong), never
//! stored where no read would find it; a broken or hostile frame closes the
//! connection (the peer dials again); the sender's clock advances ours.

use super::convert::{archived_version, wire_from_store};
use super::link::{encode_messages, read_hello};
use crate::join::join_all;
use crate::limits::INTERNODE_READ_CHUNK;
use crate::shard::Shard;
use crate::stop::StopEvent;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use ringkv_net::internode::{
    decode_frame, encode_frame, ArchivedBatch, ArchivedMessage, ArchivedWireRecord, FrameBuffer,
    Message, PREFACE,
};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// Serves one inbound internode connection until it closes or `stop` fires.
/// The preface has been peeked, not read.
pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream, stop: StopEvent) {
    let Some(cluster) = shard.cluster() else {
        tracing::warn!(
            shard = shard.id,
            "an internode connection reached a standalone node (no --seeds); closing it"
        );
        return;
    };
    let served = async {
        let mut preface = [0u8; PREFACE.len()];
        stream.read_exact(&mut preface).await?;
        let mut buf = FrameBuffer::new();
        let hello = read_hello(&mut stream, &mut buf).await?;
        cluster.peer_said_hello(&hello);
        let mut out = Vec::new();
        encode_frame(&cluster.hello_batch(), &mut out).map_err(std::io::Error::other)?;
        stream.write_all(&out).await?;
        loop {
            let (consumed, answers) = answer_frames(&shard, buf.bytes()).await?;
            buf.consume(consumed);
            if !answers.is_empty() {
                out.clear();
                encode_messages(&cluster, answers, &mut out)?;
                stream.write_all(&out).await?;
            }
            let n = stream.read(buf.spare(INTERNODE_READ_CHUNK)).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            buf.filled(n);
        }
    };
    let ended = futures_lite::future::or(served, async {
        stop.wait().await;
        Ok(())
    })
    .await;
    if let Err(e) = ended {
        if e.kind() != std::io::ErrorKind::UnexpectedEof {
            tracing::info!(shard = shard.id, "internode connection closed: {e}");
        }
    }
}

/// Answers every message of every complete frame at the start of `buf`
/// (concurrently); returns the bytes consumed and the answers.
async fn answer_frames(shard: &Rc<Shard>, buf: &[u8]) -> std::io::Result<(usize, Vec<Message>)> {
    let mut consumed = 0;
    let mut work: Vec<Pin<Box<dyn Future<Output = Option<Message>> + '_>>> = Vec::new();
    while let Some((batch, len)) = decode_frame(&buf[consumed..]).map_err(std::io::Error::other)? {
        observe_clock(shard, batch);
        for m in batch.messages.iter() {
            work.push(Box::pin(answer(shard, m)));
        }
        consumed += len;
    }
    let answers = join_all(work).await.into_iter().flatten().collect();
    Ok((consumed, answers))
}

fn observe_clock(shard: &Shard, batch: &ArchivedBatch) {
    if let Some(c) = shard.cluster() {
        c.observe_peer_clock(batch.clock.to_native());
    }
}

/// The answer to one message (`None` for messages that need none).
async fn answer(shard: &Shard, m: &ArchivedMessage) -> Option<Message> {
    match m {
        ArchivedMessage::Write { op, key, record } => {
            let error = apply_write(shard, key.as_slice(), record).await.err();
            Some(Message::WriteAck {
                op: op.to_native(),
                error,
            })
        }
        ArchivedMessage::Read { op, key } => {
            let (record, error) = match read_local(shard, key.as_slice()).await {
                Ok(r) => (r.map(wire_from_store), None),
                Err(e) => (None, Some(e)),
            };
            Some(Message::ReadReply {
                op: op.to_native(),
                record,
                error,
            })
        }
        // HELLO only opens a connection; answers only flow the other way.
        _ => None,
    }
}

fn check_owner(shard: &Shard, key: &[u8]) -> Result<(), String> {
    let owner = shard.owner_of(key);
    if owner != shard.id {
        return Err(format!(
            "key belongs to shard {owner} of node {}, not shard {} (the sender's shard count for this node is wrong)",
            shard.config.node_id, shard.id
        ));
    }
    if key.len() > shard.config.key_size_max {
        return Err(format!(
            "key of {} bytes exceeds the limit of {} bytes",
            key.len(),
            shard.config.key_size_max
        ));
    }
    Ok(())
}

/// Applies a replica write; the engine keeps the highest version.
async fn apply_write(shard: &Shard, key: &[u8], record: &ArchivedWireRecord) -> Result<(), String> {
    check_owner(shard, key)?;
    let version = archived_version(record);
    // Bounded like the batch clock: a broken peer cannot push ours far ahead.
    if let Some(cluster) = shard.cluster() {
        cluster.observe_peer_clock(version.hlc);
    }
    let result = match record.value.as_ref() {
        Some(value) => {
            let value = value.as_slice();
            if value.len() > shard.config.value_size_max {
                return Err(format!(
                    "value of {} bytes exceeds the limit of {} bytes",
                    value.len(),
                    shard.config.value_size_max
                ));
            }
            shard
                .store
                .put(key, value, version, record.expires_at_ms.to_native())
                .await
        }
        None => shard.store.delete(key, version).await,
    };
    result.map_err(|e| e.to_string())
}

/// Reads this shard's copy (tombstones and expired values included: the
/// coordinator compares versions, then decides what is live).
async fn read_local(shard: &Shard, key: &[u8]) -> Result<Option<ringkv_storage::Record>, String> {
    check_owner(shard, key)?;
    shard.store.get_record(key).await.map_err(|e| e.to_string())
}
