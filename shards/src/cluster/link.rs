//! Outbound internode links: one persistent connection from this shard to one
//! shard of a peer node, carrying this shard's replica requests there and
//! their answers back.
//!
//! ```text
//!  coordinator ──push(Message)──► queue ──writer: one frame per turn──► socket
//!  coordinator ◄──on_answers──── reader: frames read in place ◄───────── socket
//! ```
//!
//! Invariants: a message is queued only while the link is up (`push` refuses
//! otherwise, so the caller fails that replica at once instead of waiting for
//! a timeout); every message queued in one reactor turn leaves in one frame
//! (batching); when the connection breaks, the queue is dropped and the node
//! reported down, and the link dials again every `PEER_RECONNECT_INTERVAL`.

use super::ClusterShard;
use crate::limits::{INTERNODE_READ_CHUNK, PEER_CONNECT_TIMEOUT, PEER_RECONNECT_INTERVAL};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use ringkv_cluster::record::NodeId;
use ringkv_net::internode::{
    decode_frame, encode_frame, ArchivedMessage, Batch, FrameBuffer, Hello, Message, PREFACE,
};
use ringkv_net::limits::INTERNODE_BATCH_BYTES_TARGET;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// One outbound link to shard `shard` of node `node`.
pub struct Link {
    /// The peer node.
    pub node: NodeId,
    /// The peer's shard.
    pub shard: u32,
    /// `host:port` of that shard's own port.
    pub addr: String,
    up: Cell<bool>,
    queue: RefCell<Vec<Message>>,
    queued_bytes: Cell<usize>,
    writer: RefCell<Option<Waker>>,
}

impl Link {
    /// A link not yet connected.
    pub fn new(node: NodeId, shard: u32, addr: String) -> Rc<Link> {
        Rc::new(Link {
            node,
            shard,
            addr,
            up: Cell::new(false),
            queue: RefCell::new(Vec::new()),
            queued_bytes: Cell::new(0),
            writer: RefCell::new(None),
        })
    }

    /// Whether the connection is established (HELLO exchanged).
    pub fn is_up(&self) -> bool {
        self.up.get()
    }

    /// Queues `message` for the next frame; `false` (message dropped) when
    /// the link is down.
    pub fn push(&self, message: Message, size_hint: usize) -> bool {
        if !self.up.get() {
            return false;
        }
        self.queue.borrow_mut().push(message);
        self.queued_bytes.set(self.queued_bytes.get() + size_hint);
        if let Some(w) = self.writer.borrow_mut().take() {
            w.wake();
        }
        true
    }

    fn take_queue(&self) -> Vec<Message> {
        self.queued_bytes.set(0);
        std::mem::take(&mut *self.queue.borrow_mut())
    }

    /// Resolves when the queue holds a message.
    fn wait_for_messages(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.queue.borrow().is_empty() {
                *self.writer.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
    }
}

/// Dials `addr`, sends the preface and our HELLO, and reads the peer's
/// HELLO, all within `PEER_CONNECT_TIMEOUT`. Returns the stream and the
/// receive buffer (which may already hold bytes after the HELLO frame).
pub async fn dial(addr: &str, hello: &Batch) -> Result<(TcpStream, FrameBuffer, Hello), String> {
    let attempt = async {
        let mut stream = TcpStream::connect_timeout(addr, PEER_CONNECT_TIMEOUT)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut out = PREFACE.to_vec();
        encode_frame(hello, &mut out).map_err(|e| e.to_string())?;
        stream
            .write_all(&out)
            .await
            .map_err(|e| format!("sending HELLO to {addr}: {e}"))?;
        let mut buf = FrameBuffer::new();
        let peer = read_hello(&mut stream, &mut buf)
            .await
            .map_err(|e| format!("reading HELLO from {addr}: {e}"))?;
        Ok::<_, String>((stream, buf, peer))
    };
    futures_lite::future::or(attempt, async {
        glommio::timer::sleep(PEER_CONNECT_TIMEOUT).await;
        Err(format!(
            "no HELLO from {addr} within {PEER_CONNECT_TIMEOUT:?}"
        ))
    })
    .await
}

/// Reads the first frame of a connection, which must hold exactly one HELLO.
pub async fn read_hello(stream: &mut TcpStream, buf: &mut FrameBuffer) -> io::Result<Hello> {
    loop {
        if let Some((batch, len)) = decode_frame(buf.bytes()).map_err(io::Error::other)? {
            let hello = match batch.messages.as_slice() {
                [ArchivedMessage::Hello(h)] => {
                    rkyv::deserialize::<Hello, rkyv::rancor::Error>(h).map_err(io::Error::other)?
                }
                _ => {
                    return Err(io::Error::other(
                        "the first frame of an internode connection must hold one HELLO",
                    ))
                }
            };
            buf.consume(len);
            return Ok(hello);
        }
        let n = stream.read(buf.spare(INTERNODE_READ_CHUNK)).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.filled(n);
    }
}

/// Keeps `link` connected until the task is cancelled: dial, serve, and
/// after a failure report the node down and dial again.
pub async fn run(cluster: Rc<ClusterShard>, link: Rc<Link>) {
    let mut logged_failure = false;
    loop {
        match dial(&link.addr, &cluster.hello_batch()).await {
            Ok((stream, buf, hello)) if hello.node_id == link.node && hello.shard == link.shard => {
                logged_failure = false;
                link.up.set(true);
                cluster.link_up(&link, &hello);
                let end = serve(&cluster, &link, stream, buf).await;
                link.up.set(false);
                tracing::warn!(
                    shard = cluster.shard_id(),
                    peer = link.node,
                    peer_shard = link.shard,
                    "link to {} lost: {end}",
                    link.addr
                );
                let dropped = link.take_queue();
                cluster.link_down(&link, dropped);
            }
            Ok((_, _, hello)) => {
                if !logged_failure {
                    tracing::error!(
                        shard = cluster.shard_id(),
                        "{} answered as node {} shard {}, expected node {} shard {}",
                        link.addr,
                        hello.node_id,
                        hello.shard,
                        link.node,
                        link.shard
                    );
                    logged_failure = true;
                }
                cluster.link_down(&link, Vec::new());
            }
            Err(e) => {
                if !logged_failure {
                    tracing::info!(
                        shard = cluster.shard_id(),
                        peer = link.node,
                        "peer shard unreachable: {e}"
                    );
                    logged_failure = true;
                }
                cluster.link_down(&link, Vec::new());
            }
        }
        glommio::timer::sleep(PEER_RECONNECT_INTERVAL).await;
    }
}

/// Serves an established link until its connection fails; returns why.
async fn serve(
    cluster: &Rc<ClusterShard>,
    link: &Rc<Link>,
    stream: TcpStream,
    buf: FrameBuffer,
) -> String {
    let (reader, writer) = futures_lite::io::split(stream);
    let result = futures_lite::future::or(
        write_loop(cluster, link, writer),
        read_loop(cluster, link, reader, buf),
    )
    .await;
    match result {
        Ok(()) => "closed".into(),
        Err(e) => e.to_string(),
    }
}

async fn write_loop(
    cluster: &Rc<ClusterShard>,
    link: &Link,
    mut writer: futures_lite::io::WriteHalf<TcpStream>,
) -> io::Result<()> {
    let mut out = Vec::new();
    loop {
        link.wait_for_messages().await;
        // Let every task of this reactor turn add its messages: they all
        // leave in one frame.
        futures_lite::future::yield_now().await;
        let messages = link.take_queue();
        out.clear();
        encode_messages(cluster, messages, &mut out)?;
        writer.write_all(&out).await?;
    }
}

/// Encodes `messages` as frames of about `INTERNODE_BATCH_BYTES_TARGET` bytes each.
pub fn encode_messages(
    cluster: &ClusterShard,
    messages: Vec<Message>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let mut chunk = Vec::new();
    let mut bytes = 0;
    let total = messages.len();
    for (i, m) in messages.into_iter().enumerate() {
        bytes += message_size(&m);
        chunk.push(m);
        if bytes >= INTERNODE_BATCH_BYTES_TARGET || i + 1 == total {
            let batch = cluster.batch(std::mem::take(&mut chunk));
            encode_frame(&batch, out).map_err(io::Error::other)?;
            bytes = 0;
        }
    }
    Ok(())
}

/// About how many bytes `m` takes in a frame (for batching decisions).
pub fn message_size(m: &Message) -> usize {
    match m {
        Message::Write { key, record, .. } => {
            48 + key.len() + record.value.as_ref().map_or(0, Vec::len)
        }
        Message::ReadReply { record, .. } => {
            48 + record
                .as_ref()
                .and_then(|r| r.value.as_ref())
                .map_or(0, Vec::len)
        }
        Message::Read { key, .. } => 24 + key.len(),
        _ => 64,
    }
}

async fn read_loop(
    cluster: &Rc<ClusterShard>,
    link: &Link,
    mut reader: futures_lite::io::ReadHalf<TcpStream>,
    mut buf: FrameBuffer,
) -> io::Result<()> {
    loop {
        let mut consumed = 0;
        while let Some((batch, len)) =
            decode_frame(&buf.bytes()[consumed..]).map_err(io::Error::other)?
        {
            cluster.on_answers(link.node, batch);
            consumed += len;
        }
        buf.consume(consumed);
        let n = reader.read(buf.spare(INTERNODE_READ_CHUNK)).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.filled(n);
    }
}
