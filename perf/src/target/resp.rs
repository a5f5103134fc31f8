//! A pipelined RESP connection over any `futures-lite` byte stream (glommio's `TcpStream` in
//! loadgen). GET and SET only: Redis has no ordered range scan, so scans are refused up front.
//!
//! Invariants: `ids` holds the id of every request sent and not yet answered, oldest first
//! (RESP answers in order); the receive buffer holds at most one partial reply beyond what was
//! consumed, bounded by `RESP_REPLY_SIZE_MAX`.

use std::collections::VecDeque;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Answer, ConnError, Req};
use crate::limits::RESP_REPLY_SIZE_MAX;
use crate::resp::{decode_reply, encode_command, Decoded, Reply};

const READ_CHUNK: usize = 64 << 10;

/// One RESP connection.
#[derive(Debug)]
pub struct RespConnection<S> {
    stream: S,
    send: Vec<u8>,
    recv: Vec<u8>,
    /// Consumed bytes at the front of `recv`.
    start: usize,
    /// Filled bytes of `recv`.
    end: usize,
    ids: VecDeque<u64>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> RespConnection<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            send: Vec::with_capacity(16 << 10),
            recv: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            ids: VecDeque::new(),
        }
    }

    /// Encodes `req` into the send buffer; its answer will carry `id`.
    pub fn queue(&mut self, id: u64, req: Req<'_>) -> Result<(), ConnError> {
        match req {
            Req::Get(key) => encode_command(&[b"GET", key], &mut self.send),
            Req::Set(key, value) => encode_command(&[b"SET", key, value], &mut self.send),
            Req::Scan(..) => return Err(ConnError::Unsupported("range scans (YCSB E) over RESP")),
        }
        self.ids.push_back(id);
        Ok(())
    }

    /// Writes everything queued in one write.
    pub async fn flush(&mut self) -> Result<(), ConnError> {
        if !self.send.is_empty() {
            let result = self.stream.write_all(&self.send).await;
            self.send.clear();
            result?;
        }
        self.stream.flush().await?;
        Ok(())
    }

    /// Requests sent and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.ids.len()
    }

    /// The next answer and the id of the request it answers.
    pub async fn recv(&mut self) -> Result<(u64, Answer), ConnError> {
        loop {
            let needed = match decode_reply(&self.recv[self.start..self.end]) {
                Ok(Decoded::Frame { frame, len }) => {
                    let answer = match frame {
                        Reply::Error(message) => {
                            Answer::Refused(String::from_utf8_lossy(message).into_owned())
                        }
                        Reply::Bulk(None) | Reply::Null | Reply::Array(None) => Answer::Miss,
                        Reply::Simple(_)
                        | Reply::Integer(_)
                        | Reply::Bulk(Some(_))
                        | Reply::Array(Some(_)) => Answer::Done,
                    };
                    self.start += len;
                    let id = self.ids.pop_front().ok_or_else(|| {
                        ConnError::Protocol("server sent a reply to no request".into())
                    })?;
                    return Ok((id, answer));
                }
                Ok(Decoded::Incomplete { needed }) => needed,
                Err(e) => return Err(ConnError::Protocol(e.to_string())),
            };
            self.read_more(needed).await?;
        }
    }

    async fn read_more(&mut self, needed: usize) -> Result<(), ConnError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let want = (self.end - self.start) + needed.max(READ_CHUNK);
        if self.recv.len() - self.start < want {
            // Move the partial reply to the front, then grow if it still does not fit.
            self.recv.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.recv.len() < want {
                if want > RESP_REPLY_SIZE_MAX + READ_CHUNK {
                    return Err(ConnError::Protocol(format!(
                        "reply larger than {RESP_REPLY_SIZE_MAX} bytes"
                    )));
                }
                self.recv.resize(want, 0);
            }
        }
        let n = self.stream.read(&mut self.recv[self.end..]).await?;
        if n == 0 {
            return Err(ConnError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            )));
        }
        self.end += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A stream that returns canned reply bytes a few at a time and swallows writes.
    struct Canned {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
        written: Vec<u8>,
    }

    impl AsyncRead for Canned {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.chunk).min(self.data.len() - self.pos);
            let pos = self.pos;
            buf[..n].copy_from_slice(&self.data[pos..pos + n]);
            self.pos += n;
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for Canned {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.written.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn pipelined_answers_match_requests_in_order_at_any_read_size() {
        let big = vec![b'v'; 200_000];
        let mut replies = b"+OK\r\n$-1\r\n-ERR nope\r\n".to_vec();
        replies.extend_from_slice(format!("${}\r\n", big.len()).as_bytes());
        replies.extend_from_slice(&big);
        replies.extend_from_slice(b"\r\n");
        for chunk in [1, 3, 7, 4096, 1 << 20] {
            let stream = Canned {
                data: replies.clone(),
                pos: 0,
                chunk,
                written: Vec::new(),
            };
            let mut conn = RespConnection::new(stream);
            conn.queue(10, Req::Set(b"k", b"v"))
                .expect("set is supported");
            conn.queue(11, Req::Get(b"absent"))
                .expect("get is supported");
            conn.queue(12, Req::Get(b"k")).expect("get is supported");
            conn.queue(13, Req::Get(b"big")).expect("get is supported");
            assert!(conn.queue(14, Req::Scan(b"k", 10)).is_err());
            futures_lite::future::block_on(async {
                conn.flush().await.expect("canned stream accepts writes");
                let mut got = Vec::new();
                for _ in 0..4 {
                    got.push(conn.recv().await.expect("valid replies"));
                }
                assert_eq!(
                    got,
                    [
                        (10, Answer::Done),
                        (11, Answer::Miss),
                        (12, Answer::Refused("ERR nope".into())),
                        (13, Answer::Done)
                    ],
                    "chunk {chunk}"
                );
                assert!(
                    matches!(conn.recv().await, Err(ConnError::Io(_))),
                    "end of stream is an error"
                );
            });
            assert!(conn.stream.written.starts_with(b"*3\r\n$3\r\nSET\r\n"));
        }
    }

    #[test]
    fn a_reply_nobody_asked_for_or_garbage_breaks_the_connection() {
        let stream = Canned {
            data: b"+OK\r\n".to_vec(),
            pos: 0,
            chunk: 64,
            written: Vec::new(),
        };
        let mut conn = RespConnection::new(stream);
        assert!(matches!(
            futures_lite::future::block_on(conn.recv()),
            Err(ConnError::Protocol(_))
        ));
        let stream = Canned {
            data: b"!garbage\r\n".to_vec(),
            pos: 0,
            chunk: 64,
            written: Vec::new(),
        };
        let mut conn = RespConnection::new(stream);
        conn.queue(1, Req::Get(b"k")).expect("get is supported");
        assert!(matches!(
            futures_lite::future::block_on(conn.recv()),
            Err(ConnError::Protocol(_))
        ));
    }
}
