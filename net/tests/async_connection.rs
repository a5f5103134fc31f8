//! Tests of `AsyncConnection` over an in-memory stream that delivers the
//! server's bytes in small pieces: queued requests leave in one write,
//! pipelined answers are read back in whatever order and split they arrive.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::future::block_on;
use futures_lite::{AsyncRead, AsyncWrite};
use ringkv_net::client::{AsyncConnection, OwnedResponse};
use ringkv_net::client_frame::{
    decode_request, encode_response, Consistency, Decoded, Request, RequestHeader, Response,
    Status, WireVersion,
};
use ringkv_net::limits::FRAME_SIZE_MAX_DEFAULT;
use ringkv_net::ClientError;

/// Reads come from `input`, at most `chunk` bytes at a time; writes go to
/// `written`, counted.
struct MockStream {
    input: Vec<u8>,
    at: usize,
    chunk: usize,
    written: Vec<u8>,
    writes: usize,
}

impl MockStream {
    fn new(input: Vec<u8>, chunk: usize) -> Self {
        MockStream {
            input,
            at: 0,
            chunk,
            written: Vec::new(),
            writes: 0,
        }
    }
}

impl AsyncRead for MockStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = buf.len().min(self.chunk).min(self.input.len() - self.at);
        let at = self.at;
        buf[..n].copy_from_slice(&self.input[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for MockStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.extend_from_slice(buf);
        self.writes += 1;
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn header(id: u64) -> RequestHeader {
    RequestHeader {
        id,
        consistency: Consistency::One,
        session: WireVersion::ZERO,
    }
}

fn version(hlc: u64) -> WireVersion {
    WireVersion { hlc, node: 1 }
}

#[test]
fn queued_requests_leave_in_one_write_and_decode_in_order() {
    let mut conn = AsyncConnection::new(MockStream::new(Vec::new(), 1), FRAME_SIZE_MAX_DEFAULT);
    for id in 1..=16 {
        conn.queue(&header(id), &Request::Get { key: b"k" });
    }
    assert_eq!(conn.queued(), 16);
    block_on(conn.flush()).unwrap();
    assert_eq!(conn.queued(), 0);
    let stream = conn.into_inner();
    assert_eq!(stream.writes, 1);
    let mut at = 0;
    let mut ids = Vec::new();
    while at < stream.written.len() {
        match decode_request(&stream.written[at..], FRAME_SIZE_MAX_DEFAULT).unwrap() {
            Decoded::Frame { frame: (h, _), len } => {
                ids.push(h.id);
                at += len;
            }
            Decoded::Incomplete { .. } => panic!("partial frame written"),
        }
    }
    assert_eq!(ids, (1..=16).collect::<Vec<_>>());
}

#[test]
fn answers_split_into_single_bytes_and_out_of_order_are_matched_by_id() {
    let mut input = Vec::new();
    encode_response(
        3,
        &Response::Written {
            version: version(7),
        },
        &mut input,
    );
    encode_response(
        1,
        &Response::Value {
            value: b"one",
            version: version(5),
            expires_at_ms: 0,
        },
        &mut input,
    );
    encode_response(2, &Response::NotFound, &mut input);
    for chunk in [1, 2, 3, 7, 1000] {
        let mut conn = AsyncConnection::new(
            MockStream::new(input.clone(), chunk),
            FRAME_SIZE_MAX_DEFAULT,
        );
        let mut got: Vec<(u64, OwnedResponse)> = Vec::new();
        for _ in 0..3 {
            let r = block_on(conn.recv()).unwrap();
            got.push((r.id, r.response));
        }
        got.sort_by_key(|(id, _)| *id);
        assert_eq!(got[0].0, 1);
        assert!(matches!(&got[0].1, OwnedResponse::Value(v) if v.value == b"one"));
        assert_eq!(got[1].1, OwnedResponse::NotFound);
        assert_eq!(
            got[2].1,
            OwnedResponse::Written {
                version: version(7)
            }
        );
        let e = block_on(conn.recv()).unwrap_err();
        assert!(e.is_connection_loss(), "chunk {chunk}: {e}");
    }
}

#[test]
fn recv_ref_lends_answers_from_the_receive_buffer() {
    let mut input = Vec::new();
    for id in 0..100u64 {
        let value = id.to_le_bytes();
        encode_response(
            id,
            &Response::Value {
                value: &value,
                version: version(id),
                expires_at_ms: 0,
            },
            &mut input,
        );
    }
    let mut conn = AsyncConnection::new(MockStream::new(input, 4096), FRAME_SIZE_MAX_DEFAULT);
    for id in 0..100u64 {
        let (got, response) = block_on(conn.recv_ref()).unwrap();
        assert_eq!(got, id);
        match response {
            Response::Value { value, .. } => assert_eq!(value, id.to_le_bytes()),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn error_answers_are_returned_as_responses() {
    let mut input = Vec::new();
    encode_response(
        4,
        &Response::Error {
            status: Status::KeyTooLarge,
            message: b"too big",
        },
        &mut input,
    );
    let mut conn = AsyncConnection::new(MockStream::new(input, 5), FRAME_SIZE_MAX_DEFAULT);
    let r = block_on(conn.recv()).unwrap();
    assert_eq!(r.id, 4);
    assert_eq!(
        r.response,
        OwnedResponse::Error {
            status: Status::KeyTooLarge,
            message: "too big".into()
        }
    );
}

#[test]
fn an_oversize_answer_is_refused_from_its_header() {
    let mut input = (FRAME_SIZE_MAX_DEFAULT as u32).to_le_bytes().to_vec();
    input.extend_from_slice(&[1, 1]);
    let mut conn = AsyncConnection::new(MockStream::new(input, 100), FRAME_SIZE_MAX_DEFAULT);
    let e = block_on(conn.recv()).unwrap_err();
    assert!(
        matches!(e, ClientError::Protocol(ref m) if m.contains("exceeds")),
        "{e}"
    );
}
