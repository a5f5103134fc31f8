//! Response frames: [`encode_response`] (server side) and [`decode_response`]
//! (client side). Layouts are drawn in the parent module and in
//! `docs/protocol.md`.
//!
//! The client treats every decoding error as fatal for the connection: it
//! cannot know which request a malformed answer belonged to.

use ringkv_cluster::ring::NodeInfo;

use super::list::{EntryList, ValueList};
use super::ring::{encode_ring_body, RingNodeList};
use super::status::Status;
use super::wire::{
    put_i64, put_key, put_message, put_u16, put_u32, put_u64, put_u8, put_value, put_version,
    BodyError, Reader,
};
use super::{
    begin_frame, end_frame, frame_extent, frame_id, kind, Decoded, Extent, Response, TtlState,
};
use crate::error::FrameError;
use crate::limits::{RESPONSE_HEADER_SIZE, SHARD_COUNT_MAX};

/// The response kind byte of `response`.
fn kind_of(response: &Response<'_>) -> u8 {
    match response {
        Response::Pong => kind::PONG,
        Response::Hello { .. } => kind::HELLO,
        Response::Value { .. } => kind::VALUE,
        Response::NotFound => kind::NOT_FOUND,
        Response::Written { .. } => kind::WRITTEN,
        Response::Values { .. } => kind::VALUES,
        Response::ScanPage { .. } => kind::SCAN_PAGE,
        Response::CasMismatch { .. } => kind::CAS_MISMATCH,
        Response::Integer { .. } => kind::INTEGER,
        Response::Ttl { .. } => kind::TTL,
        Response::Bool(_) => kind::BOOL,
        Response::Stats { .. } => kind::STATS,
        Response::Ring { .. } => kind::RING,
        Response::Error { .. } => kind::ERROR,
    }
}

/// Appends one response frame answering request `id` to `out`. Error messages
/// longer than `ERROR_MESSAGE_SIZE_MAX` are truncated.
///
/// Panics if a key is longer than `u16::MAX` bytes or the frame exceeds the
/// `u32` length prefix (the server only answers with keys and values it
/// validated).
pub fn encode_response(id: u64, response: &Response<'_>, out: &mut Vec<u8>) {
    let start = begin_frame(out, kind_of(response), id);
    match *response {
        Response::Pong | Response::NotFound => {}
        Response::Hello {
            node_id,
            shard_count,
            base_port,
            protocol_version,
        } => {
            put_u32(out, node_id);
            put_u32(out, shard_count);
            put_u16(out, base_port);
            put_u8(out, protocol_version);
        }
        Response::Value {
            value,
            version,
            expires_at_ms,
        } => {
            put_version(out, version);
            put_u64(out, expires_at_ms);
            put_value(out, value);
        }
        Response::Written { version } => put_version(out, version),
        Response::Values { items } => items.encode(out),
        Response::ScanPage {
            entries,
            next_after,
        } => {
            entries.encode(out);
            put_key(out, next_after);
        }
        Response::CasMismatch { current } => match current {
            None => put_u8(out, 0),
            Some((value, version)) => {
                put_u8(out, 1);
                put_version(out, version);
                put_value(out, value);
            }
        },
        Response::Integer { value, version } => {
            put_i64(out, value);
            put_version(out, version);
        }
        Response::Ttl { state } => {
            let (tag, ms) = match state {
                TtlState::Missing => (0, 0),
                TtlState::NoExpiry => (1, 0),
                TtlState::RemainingMs(ms) => (2, ms),
            };
            put_u8(out, tag);
            put_u64(out, ms);
        }
        Response::Bool(b) => put_u8(out, u8::from(b)),
        Response::Stats { text } => put_value(out, text),
        Response::Ring {
            version,
            replication_factor,
            nodes,
        } => {
            put_u64(out, version);
            put_u32(out, replication_factor);
            nodes.encode(out);
        }
        Response::Error { status, message } => {
            put_u16(out, status.code());
            put_message(out, message);
        }
    }
    end_frame(out, start);
}

/// Appends one RING response frame answering request `id` to `out`: the
/// ring's `version`, its configured `replication_factor` and `nodes` (in the
/// order given; a server passes `Ring::nodes()`, sorted by id). What a server
/// answers to [`super::Request::Ring`]; a standalone node sends its one node.
///
/// Panics if the ring breaks the wire limits (`RING_NODES_MAX` nodes,
/// `RING_TOKENS_MAX` tokens per node, `RING_NAME_SIZE_MAX`-byte names), which
/// `ringkv_cluster::ring::Ring::new` refuses.
pub fn encode_ring_response(
    id: u64,
    version: u64,
    replication_factor: u32,
    nodes: &[NodeInfo],
    out: &mut Vec<u8>,
) {
    let start = begin_frame(out, kind::RING, id);
    encode_ring_body(version, replication_factor, nodes, out);
    end_frame(out, start);
}

/// Decodes the first response frame of `buf`.
///
/// Returns `Incomplete` when `buf` holds only part of a (so far valid) frame,
/// `Frame` with the request id, the response and the frame's length when it
/// holds a whole valid one, and an error otherwise (the connection should be
/// closed). A frame whose declared size exceeds `frame_size_max` is refused
/// from its first four bytes.
pub fn decode_response(
    buf: &[u8],
    frame_size_max: usize,
) -> Result<Decoded<(u64, Response<'_>)>, FrameError> {
    let total = match frame_extent(buf, frame_size_max, RESPONSE_HEADER_SIZE)? {
        Extent::Incomplete { needed } => return Ok(Decoded::Incomplete { needed }),
        Extent::Complete { total } => total,
    };
    let frame = &buf[..total];
    let id = frame_id(frame);
    let mut r = Reader::new(&frame[RESPONSE_HEADER_SIZE..]);
    let malformed = |e: BodyError| FrameError::Malformed {
        id: Some(id),
        status: e.status,
        reason: e.message,
    };
    let response = decode_body(frame[5], &mut r).map_err(malformed)?;
    r.finish("the response").map_err(malformed)?;
    Ok(Decoded::Frame {
        frame: (id, response),
        len: total,
    })
}

fn decode_body<'a>(code: u8, r: &mut Reader<'a>) -> Result<Response<'a>, BodyError> {
    Ok(match code {
        kind::PONG => Response::Pong,
        kind::HELLO => decode_hello(r)?,
        kind::VALUE => {
            let version = r.version("value version")?;
            let expires_at_ms = r.u64("expires_at_ms")?;
            let value = r.value("value")?;
            Response::Value {
                value,
                version,
                expires_at_ms,
            }
        }
        kind::NOT_FOUND => Response::NotFound,
        kind::WRITTEN => Response::Written {
            version: r.version("written version")?,
        },
        kind::VALUES => Response::Values {
            items: ValueList::decode(r)?,
        },
        kind::SCAN_PAGE => {
            let entries = EntryList::decode(r)?;
            let next_after = r.key("scan next_after")?;
            Response::ScanPage {
                entries,
                next_after,
            }
        }
        kind::CAS_MISMATCH => {
            let current = if r.flag("cas current presence")? {
                let version = r.version("cas current version")?;
                let value = r.value("cas current value")?;
                Some((value, version))
            } else {
                None
            };
            Response::CasMismatch { current }
        }
        kind::INTEGER => {
            let value = r.i64("integer")?;
            let version = r.version("integer version")?;
            Response::Integer { value, version }
        }
        kind::TTL => {
            let tag = r.u8("ttl state")?;
            let ms = r.u64("ttl remaining_ms")?;
            let state = match (tag, ms) {
                (0, 0) => TtlState::Missing,
                (1, 0) => TtlState::NoExpiry,
                (2, ms) => TtlState::RemainingMs(ms),
                _ => {
                    return Err(BodyError::new(
                        Status::BadRequest,
                        format!("invalid ttl state {tag} with {ms} ms"),
                    ))
                }
            };
            Response::Ttl { state }
        }
        kind::BOOL => Response::Bool(r.flag("bool")?),
        kind::STATS => Response::Stats {
            text: r.text("stats text")?,
        },
        kind::RING => Response::Ring {
            version: r.u64("ring version")?,
            replication_factor: r.u32("ring replication factor")?,
            nodes: RingNodeList::decode(r)?,
        },
        kind::ERROR => {
            let status = Status::from_code(r.u16("status")?);
            let message = r.message("error message")?;
            Response::Error { status, message }
        }
        other => {
            return Err(BodyError::new(
                Status::BadRequest,
                format!("unknown response kind 0x{other:02x}"),
            ))
        }
    })
}

fn decode_hello<'a>(r: &mut Reader<'a>) -> Result<Response<'a>, BodyError> {
    let node_id = r.u32("node id")?;
    let shard_count = r.u32("shard count")?;
    let base_port = r.u16("base port")?;
    let protocol_version = r.u8("protocol version")?;
    if shard_count == 0 || shard_count > SHARD_COUNT_MAX {
        return Err(BodyError::new(
            Status::BadRequest,
            format!("shard count {shard_count} is outside 1..={SHARD_COUNT_MAX}"),
        ));
    }
    Ok(Response::Hello {
        node_id,
        shard_count,
        base_port,
        protocol_version,
    })
}
