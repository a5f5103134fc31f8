//! [`AsyncConnection`]: one pipelined protocol connection over any
//! `futures-lite` `AsyncRead + AsyncWrite` stream (glommio's `TcpStream` in
//! loadgen). Queue many requests, flush them with one write, then read the
//! responses as they arrive (possibly out of order; match them by id).
//!
//! It does no routing, retrying or id bookkeeping: the caller chooses ids and
//! owns that policy. Invariant: the receive buffer holds at most one frame
//! beyond what was consumed plus one read chunk; a frame larger than the
//! maximum is refused from its header.

use std::io;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::buffer::RecvBuffer;
use super::{OwnedResponse, ResponseOwned};
use crate::client_frame::{
    decode_response, encode_request, Decoded, Request, RequestHeader, Response,
};
use crate::error::ClientError;

/// A pipelined client connection over an async byte stream.
#[derive(Debug)]
pub struct AsyncConnection<S> {
    stream: S,
    send: Vec<u8>,
    recv: RecvBuffer,
    frame_size_max: usize,
    queued: usize,
    /// Length of the frame last lent out by `recv_ref`, consumed on the next call.
    lent: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncConnection<S> {
    /// Wraps `stream`; responses larger than `frame_size_max` bytes are
    /// refused (use `limits::FRAME_SIZE_MAX_DEFAULT` unless the server differs).
    pub fn new(stream: S, frame_size_max: usize) -> Self {
        AsyncConnection {
            stream,
            send: Vec::with_capacity(16 * 1024),
            recv: RecvBuffer::default(),
            frame_size_max,
            queued: 0,
            lent: 0,
        }
    }

    /// Encodes a request into the send buffer (nothing is written until
    /// [`AsyncConnection::flush`]). Keys and values should be within
    /// `limits`, or the server answers with an error.
    pub fn queue(&mut self, header: &RequestHeader, request: &Request<'_>) {
        encode_request(header, request, &mut self.send);
        self.queued += 1;
    }

    /// Number of requests queued since the last flush.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Writes every queued request in one `write_all` and flushes the stream.
    /// On error the connection should be dropped (some requests may have been
    /// sent).
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.send.is_empty() {
            let result = self.stream.write_all(&self.send).await;
            self.send.clear();
            self.queued = 0;
            result?;
        }
        self.stream.flush().await
    }

    /// Reads the next response and copies it out of the receive buffer.
    pub async fn recv(&mut self) -> Result<ResponseOwned, ClientError> {
        let (id, response) = self.recv_ref().await?;
        Ok(ResponseOwned {
            id,
            response: OwnedResponse::from(&response),
        })
    }

    /// Reads the next response and returns it borrowed from the receive
    /// buffer (no allocation); valid until the next call on this connection.
    pub async fn recv_ref(&mut self) -> Result<(u64, Response<'_>), ClientError> {
        // The frame returned last time is consumed only now, so it could be lent.
        self.recv.consume(std::mem::take(&mut self.lent));
        let len = loop {
            match decode_response(self.recv.data(), self.frame_size_max)? {
                Decoded::Frame { len, .. } => break len,
                Decoded::Incomplete { needed } => self.read_more(needed).await?,
            }
        };
        self.lent = len;
        // Decoded again to hand out a borrow (the loop above cannot return one
        // while it also reads into the buffer); the frame is small and valid.
        match decode_response(&self.recv.data()[..len], self.frame_size_max)? {
            Decoded::Frame { frame, .. } => Ok(frame),
            Decoded::Incomplete { .. } => Err(ClientError::Protocol(
                "a decoded frame became incomplete".into(),
            )),
        }
    }

    async fn read_more(&mut self, needed: usize) -> Result<(), ClientError> {
        let spare = self.recv.spare(needed);
        let n = self
            .stream
            .read(spare)
            .await
            .map_err(|source| ClientError::Io {
                addr: "async connection".into(),
                source,
            })?;
        if n == 0 {
            return Err(ClientError::Io {
                addr: "async connection".into(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed by the server",
                ),
            });
        }
        self.recv.filled(n);
        Ok(())
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Gives the stream back; queued and received bytes are dropped.
    pub fn into_inner(self) -> S {
        self.stream
    }
}
