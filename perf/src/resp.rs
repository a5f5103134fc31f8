//! A small pipelined RESP2 client codec: encode commands, decode replies from a receive buffer.
//!
//! Commands are arrays of bulk strings:
//!
//! ```text
//! *<argc>\r\n ( $<len>\r\n <bytes> \r\n ){argc}
//! ```
//!
//! Replies (RESP2, plus RESP3 null `_\r\n`):
//!
//! ```text
//! +<line>\r\n         simple string        -<line>\r\n   error
//! :<i64>\r\n          integer              $<len>\r\n<bytes>\r\n   bulk ($-1\r\n = nil)
//! *<n>\r\n<n replies> array (*-1\r\n = nil)
//! ```
//!
//! [`decode_reply`] never panics on any input: a reply that is not complete yet is
//! `Decoded::Incomplete`, a reply that can never be valid is a [`RespError`] with the offset and
//! the reason, and the caller closes the connection. Lines, bulk sizes, array lengths and nesting
//! are bounded by `limits::RESP_*`. Arrays are validated and counted, not materialised (loadgen
//! only needs to know what kind of answer it got), so decoding does not allocate.

use std::fmt;

use crate::limits::{RESP_ARRAY_LEN_MAX, RESP_DEPTH_MAX, RESP_LINE_SIZE_MAX, RESP_REPLY_SIZE_MAX};

/// One decoded reply, borrowing the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `+OK` and friends.
    Simple(&'a [u8]),
    /// `-ERR ...`: the server refused the command.
    Error(&'a [u8]),
    /// `:n`.
    Integer(i64),
    /// `$n` bulk string; `None` for nil.
    Bulk(Option<&'a [u8]>),
    /// `*n` array with its element count (elements validated, not kept); `None` for nil.
    Array(Option<usize>),
    /// RESP3 `_` null.
    Null,
}

/// The outcome of decoding at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<T> {
    /// A whole reply of `len` bytes.
    Frame {
        /// The reply.
        frame: T,
        /// Bytes it took.
        len: usize,
    },
    /// More bytes are needed: at least `needed` more.
    Incomplete {
        /// Lower bound of the bytes still missing (>= 1).
        needed: usize,
    },
}

/// A reply that can never become valid; the stream cannot be trusted after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RespError {
    /// Offset of the offending byte from the start of the reply.
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad RESP reply at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for RespError {}

/// Commands are encoded by the server's own crate (the one encoder of the
/// workspace), re-exported here for the load generator's targets.
pub use ringkv_net::resp::encode_command;

/// Decodes the reply at the start of `buf`.
pub fn decode_reply(buf: &[u8]) -> Result<Decoded<Reply<'_>>, RespError> {
    let mut cursor = Cursor { buf, pos: 0 };
    match cursor.reply(0)? {
        Some(reply) => Ok(Decoded::Frame {
            frame: reply,
            len: cursor.pos,
        }),
        None => Ok(Decoded::Incomplete {
            needed: cursor.pos.saturating_sub(buf.len()).max(1),
        }),
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn error<T>(&self, offset: usize, reason: impl Into<String>) -> Result<T, RespError> {
        Err(RespError {
            offset,
            reason: reason.into(),
        })
    }

    /// One reply at `pos`; `Ok(None)` if the buffer ends first.
    fn reply(&mut self, depth: usize) -> Result<Option<Reply<'a>>, RespError> {
        let start = self.pos;
        let Some(&tag) = self.buf.get(start) else {
            return Ok(None);
        };
        let Some(line) = self.line(start + 1)? else {
            return Ok(None);
        };
        match tag {
            b'+' => Ok(Some(Reply::Simple(line))),
            b'-' => Ok(Some(Reply::Error(line))),
            b':' => Ok(Some(Reply::Integer(self.number(line, start + 1)?))),
            b'_' if line.is_empty() => Ok(Some(Reply::Null)),
            b'$' => {
                let len = self.number(line, start + 1)?;
                if len == -1 {
                    return Ok(Some(Reply::Bulk(None)));
                }
                if len < 0 || len as u64 > RESP_REPLY_SIZE_MAX as u64 {
                    return self.error(
                        start + 1,
                        format!("bulk length {len} not in 0..={RESP_REPLY_SIZE_MAX}"),
                    );
                }
                let body = self.pos;
                let end = body + len as usize;
                if self.buf.len() < end + 2 {
                    self.needed_at_least(end + 2);
                    return Ok(None);
                }
                if &self.buf[end..end + 2] != b"\r\n" {
                    return self.error(end, "bulk string not followed by CRLF");
                }
                self.pos = end + 2;
                Ok(Some(Reply::Bulk(Some(&self.buf[body..end]))))
            }
            b'*' => {
                let n = self.number(line, start + 1)?;
                if n == -1 {
                    return Ok(Some(Reply::Array(None)));
                }
                if !(0..=RESP_ARRAY_LEN_MAX).contains(&n) {
                    return self.error(
                        start + 1,
                        format!("array length {n} not in 0..={RESP_ARRAY_LEN_MAX}"),
                    );
                }
                if depth + 1 >= RESP_DEPTH_MAX {
                    return self
                        .error(start, format!("arrays nested deeper than {RESP_DEPTH_MAX}"));
                }
                for _ in 0..n {
                    if self.reply(depth + 1)?.is_none() {
                        return Ok(None);
                    }
                    if self.pos - start > RESP_REPLY_SIZE_MAX {
                        return self.error(
                            start,
                            format!("reply larger than {RESP_REPLY_SIZE_MAX} bytes"),
                        );
                    }
                }
                Ok(Some(Reply::Array(Some(n as usize))))
            }
            other => self.error(start, format!("unknown reply type byte 0x{other:02x}")),
        }
    }

    /// The line starting at `from`, up to CRLF; moves `pos` past the CRLF.
    fn line(&mut self, from: usize) -> Result<Option<&'a [u8]>, RespError> {
        let rest = self.buf.get(from..).unwrap_or(&[]);
        let window = &rest[..rest.len().min(RESP_LINE_SIZE_MAX + 2)];
        match window.iter().position(|&b| b == b'\n') {
            Some(i) => {
                if i == 0 || window[i - 1] != b'\r' {
                    return self.error(from + i, "LF without CR");
                }
                self.pos = from + i + 1;
                Ok(Some(&rest[..i - 1]))
            }
            None if window.len() > RESP_LINE_SIZE_MAX => {
                self.error(from, format!("line longer than {RESP_LINE_SIZE_MAX} bytes"))
            }
            None => {
                self.needed_at_least(from + window.len() + 1);
                Ok(None)
            }
        }
    }

    fn number(&self, line: &[u8], offset: usize) -> Result<i64, RespError> {
        let text = std::str::from_utf8(line).ok();
        match text.and_then(|t| t.parse::<i64>().ok()) {
            Some(n) if !line.starts_with(b"+") => Ok(n),
            _ => self.error(
                offset,
                format!("not an integer: {:?}", String::from_utf8_lossy(line)),
            ),
        }
    }
}

impl Cursor<'_> {
    /// Records that the reply needs at least `total` bytes; `pos` doubles as that bound once the
    /// reply is known to be incomplete (nothing reads `pos` as a position after that).
    fn needed_at_least(&mut self, total: usize) {
        self.pos = total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    const SAMPLES: &[(&[u8], Reply<'static>)] = &[
        (b"+OK\r\n", Reply::Simple(b"OK")),
        (b"-ERR wrong type\r\n", Reply::Error(b"ERR wrong type")),
        (b":-42\r\n", Reply::Integer(-42)),
        (b"$5\r\nhello\r\n", Reply::Bulk(Some(b"hello"))),
        (b"$0\r\n\r\n", Reply::Bulk(Some(b""))),
        (b"$-1\r\n", Reply::Bulk(None)),
        (b"$4\r\na\r\nb\r\n", Reply::Bulk(Some(b"a\r\nb"))),
        (b"*-1\r\n", Reply::Array(None)),
        (b"*0\r\n", Reply::Array(Some(0))),
        (
            b"*3\r\n$1\r\na\r\n$-1\r\n*2\r\n:1\r\n+x\r\n",
            Reply::Array(Some(3)),
        ),
        (b"_\r\n", Reply::Null),
    ];

    #[test]
    fn every_sample_reply_decodes_whole_and_every_prefix_is_incomplete() {
        for (bytes, want) in SAMPLES {
            assert_eq!(
                decode_reply(bytes),
                Ok(Decoded::Frame {
                    frame: *want,
                    len: bytes.len()
                }),
                "{bytes:?}"
            );
            for cut in 0..bytes.len() {
                match decode_reply(&bytes[..cut]) {
                    Ok(Decoded::Incomplete { needed }) => {
                        assert!(
                            needed >= 1 && cut + needed <= bytes.len(),
                            "{bytes:?} cut {cut} needed {needed}"
                        )
                    }
                    other => panic!("{bytes:?} cut at {cut}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_pipelined_stream_decodes_reply_by_reply_at_every_split_point() {
        let stream: Vec<u8> = SAMPLES
            .iter()
            .flat_map(|(b, _)| b.iter().copied())
            .collect();
        for split in 0..=stream.len() {
            // Feed the stream in two parts, as two socket reads would deliver it.
            let mut buf = Vec::new();
            let mut decoded = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                buf.extend_from_slice(part);
                while let Decoded::Frame { frame, len } = decode_reply(&buf).expect("valid stream")
                {
                    decoded.push(format!("{frame:?}"));
                    buf.drain(..len);
                }
            }
            let want: Vec<String> = SAMPLES.iter().map(|(_, r)| format!("{r:?}")).collect();
            assert_eq!(decoded, want, "split at {split}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn malformed_replies_are_errors_with_an_offset() {
        let bad: &[&[u8]] = &[
            b"?what\r\n",
            b"+OK\n",
            b":12x\r\n",
            b":\r\n",
            b":+5\r\n",
            b"$-2\r\n",
            b"$3\r\nabcd\r\n",
            b"$99999999999\r\n",
            b"*-5\r\n",
            b"*1\r\n!\r\n",
            b"_x\r\n",
        ];
        for bytes in bad {
            assert!(
                decode_reply(bytes).is_err(),
                "{bytes:?} decoded as {:?}",
                decode_reply(bytes)
            );
        }
        let err = decode_reply(b"*2\r\n:1\r\n%\r\n").expect_err("bad type byte");
        assert_eq!(err.offset, 8);
    }

    #[test]
    fn limits_bound_lines_nesting_and_sizes() {
        let mut long = vec![b'+'];
        long.resize(RESP_LINE_SIZE_MAX + 10, b'a');
        assert!(
            decode_reply(&long).is_err(),
            "an endless line is refused before its end arrives"
        );
        let deep: Vec<u8> = b"*1\r\n".repeat(RESP_DEPTH_MAX + 1);
        assert!(decode_reply(&deep).is_err());
        let huge = format!("${}\r\n", RESP_REPLY_SIZE_MAX + 1);
        assert!(decode_reply(huge.as_bytes()).is_err());
    }

    #[test]
    fn random_garbage_never_panics() {
        let seed: u64 = 0x5eed;
        let mut rng = SmallRng::seed_from_u64(seed);
        let alphabet = b"+-:$*_\r\n0123456789-abc";
        for _ in 0..20_000 {
            let len = rng.gen_range(0..40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.gen_bool(0.9) {
                        alphabet[rng.gen_range(0..alphabet.len())]
                    } else {
                        rng.gen()
                    }
                })
                .collect();
            if let Ok(Decoded::Frame { len, .. }) = decode_reply(&bytes) {
                assert!(len <= bytes.len(), "seed {seed}: {bytes:?}");
            }
        }
    }

    #[test]
    fn commands_encode_as_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&[b"SET", b"key:1", b""], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$5\r\nkey:1\r\n$0\r\n\r\n");
        out.clear();
        encode_command(&[&[b'x'; 1234][..]], &mut out);
        assert!(out.starts_with(b"*1\r\n$1234\r\n"));
    }
}
