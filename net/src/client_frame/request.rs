//! Request frames: [`encode_request`] (client side) and [`decode_request`]
//! (server side). Layouts are drawn in the parent module and in
//! `docs/protocol.md`.
//!
//! Decoding never panics and never reads past the buffer. A bad frame whose
//! length is within limits is skipped ([`Resync::Skip`]) and answered with an
//! error under its id; a frame whose header cannot be trusted (too large,
//! wrong version, shorter than a header) ends the stream ([`Resync::Close`]).

use std::fmt;

use super::list::{KeyList, PairList};
use super::status::Status;
use super::wire::{
    put_i64, put_key, put_u32, put_u64, put_u8, put_value, put_version, BodyError, Reader,
};
use super::{
    begin_frame, end_frame, frame_extent, frame_id, opcode, CasExpect, Consistency, Decoded, Extent,
};
use super::{Request, RequestHeader};
use crate::error::FrameError;
use crate::limits::{REQUEST_HEADER_SIZE, SCAN_LIMIT_MAX};

/// How the server continues after a bad request frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resync {
    /// The frame's length was trusted: skip these many bytes, answer the error
    /// under the request's id, and keep decoding.
    Skip(usize),
    /// The stream can no longer be trusted: send an error frame with id 0 and
    /// close the connection.
    Close,
}

/// A request the server could not decode, with the status to answer and how
/// to continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// The request's id, when the frame was complete enough to carry one.
    pub id: Option<u64>,
    /// The status to answer with.
    pub status: Status,
    /// Human-readable evidence (sizes, limits, offsets).
    pub message: String,
    /// How to continue the stream.
    pub resync: Resync,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad request (id {:?}): {}: {}",
            self.id, self.status, self.message
        )
    }
}

impl std::error::Error for RequestError {}

impl From<FrameError> for RequestError {
    fn from(e: FrameError) -> Self {
        RequestError {
            id: None,
            status: e.status(),
            message: e.to_string(),
            resync: Resync::Close,
        }
    }
}

/// Appends one request frame to `out`.
///
/// Panics if a key is longer than `u16::MAX` bytes or the frame exceeds the
/// `u32` length prefix; callers check keys and values against `limits` first
/// (a frame over the peer's limits is encoded, and refused by the peer).
pub fn encode_request(header: &RequestHeader, request: &Request<'_>, out: &mut Vec<u8>) {
    let start = begin_frame(out, request.opcode(), header.id);
    put_u8(out, header.consistency as u8);
    put_u8(out, 0); // flags: reserved, zero
    put_version(out, header.session);
    encode_body(request, out);
    end_frame(out, start);
    debug_assert!(out.len() - start >= REQUEST_HEADER_SIZE);
}

fn encode_body(request: &Request<'_>, out: &mut Vec<u8>) {
    match *request {
        Request::Ping | Request::Hello | Request::Stats | Request::Ring => {}
        Request::Get { key }
        | Request::Exists { key }
        | Request::Ttl { key }
        | Request::Delete { key } => {
            put_key(out, key);
        }
        Request::Put { key, value, ttl_ms } => {
            put_u64(out, ttl_ms);
            put_key(out, key);
            put_value(out, value);
        }
        Request::MGet { keys } => keys.encode(out),
        Request::MPut { pairs, ttl_ms } => {
            put_u64(out, ttl_ms);
            pairs.encode(out);
        }
        Request::Scan {
            start,
            end,
            prefix,
            limit,
            after,
        } => {
            put_u8(out, u8::from(prefix));
            put_u32(out, limit);
            put_key(out, start);
            put_key(out, end);
            put_key(out, after);
        }
        Request::Cas {
            key,
            expect,
            value,
            ttl_ms,
        } => {
            put_u64(out, ttl_ms);
            put_key(out, key);
            match expect {
                CasExpect::Absent => put_u8(out, 0),
                CasExpect::Version(v) => {
                    put_u8(out, 1);
                    put_version(out, v);
                }
                CasExpect::Value(v) => {
                    put_u8(out, 2);
                    put_value(out, v);
                }
            }
            put_value(out, value);
        }
        Request::Incr { key, delta } => {
            put_key(out, key);
            put_i64(out, delta);
        }
    }
}

/// Decodes the first request frame of `buf`.
///
/// Returns `Incomplete` when `buf` holds only part of a (so far valid) frame,
/// `Frame` with the frame's length when it holds a whole valid one, and an
/// error with its status and [`Resync`] otherwise. A frame whose declared size
/// (length prefix included) exceeds `frame_size_max` is refused from its first
/// four bytes.
pub fn decode_request(
    buf: &[u8],
    frame_size_max: usize,
) -> Result<Decoded<(RequestHeader, Request<'_>)>, RequestError> {
    let total = match frame_extent(buf, frame_size_max, REQUEST_HEADER_SIZE)? {
        Extent::Incomplete { needed } => return Ok(Decoded::Incomplete { needed }),
        Extent::Complete { total } => total,
    };
    let frame = &buf[..total];
    let id = frame_id(frame);
    let skip = |e: BodyError| RequestError {
        id: Some(id),
        status: e.status,
        message: e.message,
        resync: Resync::Skip(total),
    };
    let code = frame[5];
    if !is_known_opcode(code) {
        return Err(skip(BodyError::new(
            Status::UnknownOpcode,
            format!("unknown opcode 0x{code:02x} in a frame of {total} bytes"),
        )));
    }
    let mut r = Reader::new(&frame[14..]);
    let header = decode_header(id, &mut r).map_err(skip)?;
    let request = decode_body(code, &mut r).map_err(skip)?;
    r.finish("the request").map_err(skip)?;
    Ok(Decoded::Frame {
        frame: (header, request),
        len: total,
    })
}

fn is_known_opcode(code: u8) -> bool {
    matches!(code, opcode::PING..=opcode::RING | opcode::GET..=opcode::DECR)
}

fn decode_header(id: u64, r: &mut Reader<'_>) -> Result<RequestHeader, BodyError> {
    let c = r.u8("consistency")?;
    let consistency = Consistency::from_u8(c).ok_or_else(|| {
        BodyError::new(Status::BadRequest, format!("unknown consistency level {c}"))
    })?;
    let flags = r.u8("flags")?;
    if flags != 0 {
        return Err(BodyError::new(
            Status::BadRequest,
            format!("reserved header flags 0x{flags:02x} must be zero"),
        ));
    }
    let session = r.version("session version")?;
    Ok(RequestHeader {
        id,
        consistency,
        session,
    })
}

fn decode_body<'a>(code: u8, r: &mut Reader<'a>) -> Result<Request<'a>, BodyError> {
    Ok(match code {
        opcode::PING => Request::Ping,
        opcode::HELLO => Request::Hello,
        opcode::STATS => Request::Stats,
        opcode::RING => Request::Ring,
        opcode::GET => Request::Get { key: r.key("key")? },
        opcode::EXISTS => Request::Exists { key: r.key("key")? },
        opcode::TTL => Request::Ttl { key: r.key("key")? },
        opcode::DELETE => Request::Delete { key: r.key("key")? },
        opcode::PUT => {
            let ttl_ms = r.u64("ttl_ms")?;
            let key = r.key("key")?;
            let value = r.value("value")?;
            Request::Put { key, value, ttl_ms }
        }
        opcode::MGET => Request::MGet {
            keys: KeyList::decode(r)?,
        },
        opcode::MPUT => {
            let ttl_ms = r.u64("ttl_ms")?;
            let pairs = PairList::decode(r)?;
            Request::MPut { pairs, ttl_ms }
        }
        opcode::SCAN => decode_scan(r)?,
        opcode::CAS => decode_cas(r)?,
        opcode::INCR | opcode::DECR => {
            let key = r.key("key")?;
            let delta = r.i64("delta")?;
            let delta = if code == opcode::DECR {
                delta.checked_neg().ok_or_else(|| {
                    BodyError::new(
                        Status::Overflow,
                        format!("DECR by {delta} cannot be negated"),
                    )
                })?
            } else {
                delta
            };
            Request::Incr { key, delta }
        }
        other => {
            return Err(BodyError::new(
                Status::UnknownOpcode,
                format!("unknown opcode 0x{other:02x}"),
            ))
        }
    })
}

fn decode_scan<'a>(r: &mut Reader<'a>) -> Result<Request<'a>, BodyError> {
    let flags = r.u8("scan flags")?;
    if flags & !1 != 0 {
        return Err(BodyError::new(
            Status::BadRequest,
            format!("unknown scan flags 0x{flags:02x}"),
        ));
    }
    let limit = r.u32("scan limit")?;
    if limit == 0 || limit > SCAN_LIMIT_MAX {
        return Err(BodyError::new(
            Status::BadRequest,
            format!("scan limit {limit} is outside 1..={SCAN_LIMIT_MAX}"),
        ));
    }
    let start = r.key("scan start")?;
    let end = r.key("scan end")?;
    let after = r.key("scan after")?;
    Ok(Request::Scan {
        start,
        end,
        prefix: flags & 1 == 1,
        limit,
        after,
    })
}

fn decode_cas<'a>(r: &mut Reader<'a>) -> Result<Request<'a>, BodyError> {
    let ttl_ms = r.u64("ttl_ms")?;
    let key = r.key("key")?;
    let expect = match r.u8("cas expect kind")? {
        0 => CasExpect::Absent,
        1 => CasExpect::Version(r.version("cas expected version")?),
        2 => CasExpect::Value(r.value("cas expected value")?),
        other => {
            return Err(BodyError::new(
                Status::BadRequest,
                format!("unknown cas expect kind {other}"),
            ))
        }
    };
    let value = r.value("value")?;
    Ok(Request::Cas {
        key,
        expect,
        value,
        ttl_ms,
    })
}
