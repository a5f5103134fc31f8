//! A shard-aware pipelined connection to one ringkv node over the binary client protocol
//! (`ringkv_net::client::AsyncConnection` per shard).
//!
//! Connecting sends HELLO to the given address to learn the shard count and base port, then
//! opens one connection to each shard's own port (`routing::shard_port`). Each key goes to
//! the shard that owns it (`routing::shard_for(routing::token(key))`), so the server never has
//! to forward. A scan goes to the shard of its start key (one page of that shard).
//!
//! Answers can come back out of order within a shard; they carry the request id, which is
//! what [`RingkvConnection::recv`] returns. Across shards, answers are read shard by shard in
//! the order the requests were sent: a slow shard delays reading (not serving) a fast one's
//! answers, which only matters with several shards.
//!
//! The connection keeps the highest version seen in any reply and sends it as the session
//! (session guarantees, as the blocking client does).

use std::collections::VecDeque;
use std::future::Future;
use std::io;

use futures_lite::{AsyncRead, AsyncWrite};
use ringkv_net::client::AsyncConnection;
use ringkv_net::client_frame::{Consistency, Request, RequestHeader, Response, WireVersion};
use ringkv_net::limits::FRAME_SIZE_MAX_DEFAULT;
use ringkv_net::routing;
use ringkv_net::ClientError;

use super::{Answer, ConnError, Req};

/// One logical connection: a socket per shard of the node.
#[derive(Debug)]
pub struct RingkvConnection<S> {
    shards: Vec<AsyncConnection<S>>,
    /// Shard of every unanswered request, oldest first.
    order: VecDeque<u32>,
    session: WireVersion,
    consistency: Consistency,
}

fn client_error(e: ClientError) -> ConnError {
    match e {
        ClientError::Io { source, .. } => ConnError::Io(source),
        other => ConnError::Protocol(other.to_string()),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RingkvConnection<S> {
    /// Connects to the node at `addr` (`host:port`) with `connect`, learns its shards with
    /// HELLO, and opens one connection per shard.
    pub async fn connect<F, Fut>(
        addr: &str,
        consistency: Consistency,
        mut connect: F,
    ) -> Result<Self, ConnError>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = io::Result<S>>,
    {
        let host = addr
            .rsplit_once(':')
            .map(|(h, _)| h)
            .ok_or_else(|| ConnError::Protocol(format!("address {addr:?} has no port")))?;
        let mut hello =
            AsyncConnection::new(connect(addr.to_string()).await?, FRAME_SIZE_MAX_DEFAULT);
        let header = RequestHeader {
            id: 1,
            consistency,
            session: WireVersion::ZERO,
        };
        hello.queue(&header, &Request::Hello);
        hello.flush().await?;
        let (shard_count, base_port) = match hello.recv_ref().await.map_err(client_error)? {
            (
                1,
                Response::Hello {
                    shard_count,
                    base_port,
                    ..
                },
            ) if shard_count >= 1 => (shard_count, base_port),
            (id, other) => {
                return Err(ConnError::Protocol(format!(
                    "HELLO (id 1) answered with id {id}: {other:?}"
                )));
            }
        };
        let mut shards = Vec::with_capacity(shard_count as usize);
        for shard in 0..shard_count {
            let port = routing::shard_port(base_port, shard);
            let stream = connect(format!("{host}:{port}")).await?;
            shards.push(AsyncConnection::new(stream, FRAME_SIZE_MAX_DEFAULT));
        }
        Ok(Self {
            shards,
            order: VecDeque::new(),
            session: WireVersion::ZERO,
            consistency,
        })
    }

    /// Shards of the node (one socket each).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Encodes `req` into its shard's send buffer; its answer will carry `id`.
    pub fn queue(&mut self, id: u64, req: Req<'_>) -> Result<(), ConnError> {
        let key = match req {
            Req::Get(key) | Req::Set(key, _) | Req::Scan(key, _) => key,
        };
        let shard = routing::shard_for(routing::token(key), self.shards.len() as u32);
        let header = RequestHeader {
            id,
            consistency: self.consistency,
            session: self.session,
        };
        let request = match req {
            Req::Get(key) => Request::Get { key },
            Req::Set(key, value) => Request::Put {
                key,
                value,
                ttl_ms: 0,
            },
            Req::Scan(start, limit) => Request::Scan {
                start,
                end: b"",
                prefix: false,
                limit,
                after: b"",
            },
        };
        let shard_count = self.shards.len();
        let conn = self.shards.get_mut(shard as usize).ok_or_else(|| {
            ConnError::Protocol(format!("routing chose shard {shard} of {shard_count}"))
        })?;
        conn.queue(&header, &request);
        self.order.push_back(shard);
        Ok(())
    }

    /// Writes every shard's queued requests (one write per shard with requests).
    pub async fn flush(&mut self) -> Result<(), ConnError> {
        for conn in &mut self.shards {
            if conn.queued() > 0 {
                conn.flush().await?;
            }
        }
        Ok(())
    }

    /// Requests sent and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.order.len()
    }

    /// The next answer and the id of the request it answers. Cancel-safe:
    /// dropped before an answer arrives, it leaves the request in flight (an
    /// open loop races it against its send timer).
    pub async fn recv(&mut self) -> Result<(u64, Answer), ConnError> {
        let shard = *self
            .order
            .front()
            .ok_or_else(|| ConnError::Protocol("recv with nothing in flight".into()))?;
        let conn = &mut self.shards[shard as usize];
        let (id, response) = conn.recv_ref().await.map_err(client_error)?;
        // Only an answer received takes its request out of flight.
        self.order.pop_front();
        let (answer, version) = match response {
            Response::Value { version, .. }
            | Response::Written { version }
            | Response::Integer { version, .. } => (Answer::Done, Some(version)),
            Response::NotFound => (Answer::Miss, None),
            Response::Error { status, message } => (
                Answer::Refused(format!("{status}: {}", String::from_utf8_lossy(message))),
                None,
            ),
            _ => (Answer::Done, None),
        };
        if let Some(v) = version {
            self.session = self.session.max(v);
        }
        Ok((id, answer))
    }
}
