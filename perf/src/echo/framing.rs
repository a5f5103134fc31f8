//! What the echo baseline answers: one canned reply per complete request, of the size the real
//! server would send, without doing any work beyond finding where each request ends.
//!
//! - RESP: requests are arrays of bulk strings (`*N\r\n` then N × `$len\r\n<bytes>\r\n`, what
//!   redis-benchmark, redis-cli and loadgen send). GET gets `$<value size>\r\n<value>\r\n`,
//!   anything else `+OK\r\n` (SET's answer).
//! - ringkv: length-prefixed client frames, decoded with `ringkv_net::client_frame`; GET gets a
//!   `Value` of the configured size, PUT a `Written`, HELLO says one shard listening on this very
//!   port (base port = port - 1), anything else `Written`/`Pong`.
//!
//! [`answer`] consumes only whole requests; a partial one stays for the next read. A request
//! that can never be valid is an error and the server closes the connection. Sizes are bounded
//! by `limits::RESP_*` and ringkv's frame maximum.

use ringkv_net::client_frame::{
    decode_request, encode_response, Decoded, Request, Response, WireVersion, PROTOCOL_VERSION,
};
use ringkv_net::limits::FRAME_SIZE_MAX_DEFAULT;

use crate::limits::{RESP_ARRAY_LEN_MAX, RESP_LINE_SIZE_MAX, RESP_REPLY_SIZE_MAX};

/// The wire protocol the echo server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Redis protocol.
    Resp,
    /// ringkv's binary client protocol; `port` is where this server listens.
    Ringkv {
        /// The listening port (reported by HELLO as shard 0's port).
        port: u16,
    },
}

/// Precomputed replies.
#[derive(Debug, Clone)]
pub struct Canned {
    protocol: Protocol,
    value: Vec<u8>,
    resp_get: Vec<u8>,
}

impl Canned {
    /// Replies for `protocol` with GET values of `value_size` bytes.
    pub fn new(protocol: Protocol, value_size: usize) -> Self {
        let value = vec![b'v'; value_size];
        let mut resp_get = format!("${value_size}\r\n").into_bytes();
        resp_get.extend_from_slice(&value);
        resp_get.extend_from_slice(b"\r\n");
        Self {
            protocol,
            value,
            resp_get,
        }
    }
}

/// A request stream that can never be valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest(pub String);

/// Appends one reply per complete request at the start of `input` to `out`; returns the bytes
/// consumed (whole requests only).
pub fn answer(canned: &Canned, input: &[u8], out: &mut Vec<u8>) -> Result<usize, BadRequest> {
    match canned.protocol {
        Protocol::Resp => answer_resp(canned, input, out),
        Protocol::Ringkv { port } => answer_ringkv(canned, port, input, out),
    }
}

fn answer_ringkv(
    canned: &Canned,
    port: u16,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, BadRequest> {
    let version = WireVersion { hlc: 1, node: 1 };
    let mut consumed = 0;
    while consumed < input.len() {
        match decode_request(&input[consumed..], FRAME_SIZE_MAX_DEFAULT) {
            Ok(Decoded::Frame {
                frame: (header, request),
                len,
            }) => {
                let response = match request {
                    Request::Get { .. } => Response::Value {
                        value: &canned.value,
                        version,
                        expires_at_ms: 0,
                    },
                    Request::Hello => Response::Hello {
                        node_id: 0,
                        shard_count: 1,
                        base_port: port.saturating_sub(1),
                        protocol_version: PROTOCOL_VERSION,
                    },
                    Request::Ping => Response::Pong,
                    _ => Response::Written { version },
                };
                encode_response(header.id, &response, out);
                consumed += len;
            }
            Ok(Decoded::Incomplete { .. }) => break,
            Err(e) => {
                return Err(BadRequest(format!(
                    "ringkv frame at byte {consumed}: {}",
                    e.message
                )))
            }
        }
    }
    Ok(consumed)
}

fn answer_resp(canned: &Canned, input: &[u8], out: &mut Vec<u8>) -> Result<usize, BadRequest> {
    let mut consumed = 0;
    while let Some((len, is_get)) = resp_command(&input[consumed..])
        .map_err(|e| BadRequest(format!("RESP at byte {}: {e}", consumed)))?
    {
        out.extend_from_slice(if is_get { &canned.resp_get } else { b"+OK\r\n" });
        consumed += len;
    }
    Ok(consumed)
}

/// The length of the command at the start of `buf` and whether it is GET; `None` if incomplete.
fn resp_command(buf: &[u8]) -> Result<Option<(usize, bool)>, String> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        return Err(format!(
            "expected '*', got 0x{:02x} (inline commands are not supported)",
            buf[0]
        ));
    }
    let Some((argc, mut pos)) = number_line(buf, 1)? else {
        return Ok(None);
    };
    if !(1..=RESP_ARRAY_LEN_MAX).contains(&argc) {
        return Err(format!(
            "argument count {argc} not in 1..={RESP_ARRAY_LEN_MAX}"
        ));
    }
    let mut is_get = false;
    for arg in 0..argc {
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(other) => return Err(format!("expected '$' at {pos}, got 0x{other:02x}")),
        }
        let Some((len, body)) = number_line(buf, pos + 1)? else {
            return Ok(None);
        };
        if !(0..=RESP_REPLY_SIZE_MAX as i64).contains(&len) {
            return Err(format!(
                "bulk length {len} not in 0..={RESP_REPLY_SIZE_MAX}"
            ));
        }
        let end = body + len as usize;
        if buf.len() < end + 2 {
            if body > RESP_REPLY_SIZE_MAX {
                return Err(format!("command larger than {RESP_REPLY_SIZE_MAX} bytes"));
            }
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(format!("bulk string at {body} not followed by CRLF"));
        }
        if arg == 0 {
            is_get = buf[body..end].eq_ignore_ascii_case(b"GET");
        }
        pos = end + 2;
    }
    Ok(Some((pos, is_get)))
}

/// A decimal line starting at `from`: the number and the offset after its CRLF.
fn number_line(buf: &[u8], from: usize) -> Result<Option<(i64, usize)>, String> {
    let rest = buf.get(from..).unwrap_or(&[]);
    let window = &rest[..rest.len().min(RESP_LINE_SIZE_MAX)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        return if window.len() >= 21 {
            Err(format!("number at {from} too long"))
        } else {
            Ok(None)
        };
    };
    match rest.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(format!("CR without LF at {}", from + cr)),
    }
    let text =
        std::str::from_utf8(&rest[..cr]).map_err(|_| format!("number at {from} is not ASCII"))?;
    let n = text
        .parse::<i64>()
        .map_err(|_| format!("not a number at {from}: {text:?}"))?;
    Ok(Some((n, from + cr + 2)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::encode_command;
    use ringkv_net::client_frame::{decode_response, encode_request, Consistency, RequestHeader};

    #[test]
    fn resp_requests_get_one_canned_reply_each_at_every_split_point() {
        let canned = Canned::new(Protocol::Resp, 100);
        let mut stream = Vec::new();
        encode_command(&[b"GET", b"key:1"], &mut stream);
        encode_command(&[b"SET", b"key:1", &[b'x'; 300]], &mut stream);
        encode_command(&[b"get", b"key:2"], &mut stream);
        let mut want = canned.resp_get.clone();
        want.extend_from_slice(b"+OK\r\n");
        want.extend_from_slice(&canned.resp_get);
        assert_eq!(
            canned.resp_get.len(),
            108,
            "same size as Redis' answer for a 100-byte value"
        );
        for split in 0..=stream.len() {
            let mut pending = Vec::new();
            let mut out = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                pending.extend_from_slice(part);
                let n = answer(&canned, &pending, &mut out).expect("valid stream");
                pending.drain(..n);
            }
            assert_eq!(out, want, "split at {split}");
            assert!(pending.is_empty());
        }
    }

    #[test]
    fn resp_garbage_is_refused() {
        let canned = Canned::new(Protocol::Resp, 10);
        for bad in [
            &b"PING\r\n"[..],
            b"*0\r\n",
            b"*1\r\n:1\r\n",
            b"*1\r\n$3\r\nGETX\r\n",
            b"*x\r\n",
            b"*1\r\n$-1\r\n",
            b"*1\r\n$3\rGET",
        ] {
            assert!(answer(&canned, bad, &mut Vec::new()).is_err(), "{bad:?}");
        }
        assert!(
            answer(&canned, &[b'*'; 40], &mut Vec::new()).is_err(),
            "an endless number line"
        );
    }

    #[test]
    fn ringkv_requests_get_replies_with_their_own_ids() {
        let canned = Canned::new(Protocol::Ringkv { port: 7001 }, 100);
        let header = |id| RequestHeader {
            id,
            consistency: Consistency::Default,
            session: WireVersion::ZERO,
        };
        let mut stream = Vec::new();
        encode_request(&header(7), &Request::Hello, &mut stream);
        encode_request(&header(8), &Request::Get { key: b"k" }, &mut stream);
        encode_request(
            &header(9),
            &Request::Put {
                key: b"k",
                value: b"v",
                ttl_ms: 0,
            },
            &mut stream,
        );
        let mut out = Vec::new();
        let n = answer(&canned, &stream[..stream.len() - 1], &mut out).expect("valid frames");
        assert!(n < stream.len() - 1, "the truncated last frame waits");
        let n2 = answer(&canned, &stream[n..], &mut out).expect("valid frames");
        assert_eq!(n + n2, stream.len());
        let mut pos = 0;
        let mut ids = Vec::new();
        while pos < out.len() {
            match decode_response(&out[pos..], FRAME_SIZE_MAX_DEFAULT).expect("our own frames") {
                Decoded::Frame {
                    frame: (id, response),
                    len,
                } => {
                    match (id, response) {
                        (
                            7,
                            Response::Hello {
                                base_port,
                                shard_count,
                                ..
                            },
                        ) => assert_eq!((base_port, shard_count), (7000, 1)),
                        (8, Response::Value { value, .. }) => assert_eq!(value.len(), 100),
                        (9, Response::Written { .. }) => {}
                        other => panic!("unexpected {other:?}"),
                    }
                    ids.push(id);
                    pos += len;
                }
                Decoded::Incomplete { .. } => panic!("truncated reply"),
            }
        }
        assert_eq!(ids, [7, 8, 9]);
        assert!(answer(&canned, &[0xff; 64], &mut Vec::new()).is_err());
    }
}
