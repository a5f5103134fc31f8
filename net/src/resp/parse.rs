//! The incremental, zero-copy RESP request parser: [`parse_command`].
//!
//! A request is either an array of bulk strings (what every client library
//! sends) or an inline command line (what telnet and `redis-cli` in some modes
//! send; see [`super::inline`]):
//!
//! ```text
//! *<count>\r\n                      count: 1..=args_max (0 and -1: skipped)
//!   $<len>\r\n<len bytes>\r\n       repeated count times; len: 0..=bulk_size_max
//!
//! <arg> <arg> "quoted arg" 'single'\r\n   (inline: first byte is not '*')
//! ```
//!
//! Invariants:
//! - The parser is a pure function of the buffer: it keeps no state between
//!   calls and consumes nothing unless it returns a complete command. Called
//!   again with more bytes, it reaches the same command; the outcome never
//!   depends on where reads split the stream (every limit is checked on the
//!   bytes the command declares, not on how many have arrived).
//! - Every declared length is checked against [`RespLimits`] before the bytes
//!   it announces are waited for, so a hostile peer can make the server
//!   neither allocate nor buffer more than the limits.
//! - Arguments of arrays borrow the buffer; nothing is copied.
//!
//! The caller re-parses a command from its start when more bytes arrive;
//! [`Decoded::Incomplete`]'s lower bound lets it wait for a large bulk string
//! in one go rather than re-parsing on every read.

use std::borrow::Cow;

use super::args::Args;
use super::error::{evidence, RespError};
use super::inline::parse_inline;
use super::num::parse_i64;
use crate::client_frame::Decoded;
use crate::limits::{
    RESP_ARGS_MAX, RESP_BULK_SIZE_MAX, RESP_BULK_WIRE_SIZE_MIN, RESP_COMMAND_SIZE_MAX,
    RESP_INLINE_SIZE_MAX, RESP_UNAUTHENTICATED_ARGS_MAX, RESP_UNAUTHENTICATED_BULK_SIZE_MAX,
};

/// Limits applied by [`parse_command`]. [`RespLimits::default`] uses the
/// constants of [`crate::limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespLimits {
    /// Largest bulk string, in bytes.
    pub bulk_size_max: usize,
    /// Largest number of arguments of one command, its name included.
    pub args_max: usize,
    /// Largest command on the wire, in bytes.
    pub command_size_max: usize,
    /// Largest inline command line or `*`/`$` header line, in bytes.
    pub inline_size_max: usize,
    /// Whether the connection has authenticated (or needs no
    /// authentication). When false, Redis's tighter limits apply:
    /// [`RESP_UNAUTHENTICATED_ARGS_MAX`] and
    /// [`RESP_UNAUTHENTICATED_BULK_SIZE_MAX`].
    pub authenticated: bool,
}

impl Default for RespLimits {
    fn default() -> Self {
        RespLimits {
            bulk_size_max: RESP_BULK_SIZE_MAX,
            args_max: RESP_ARGS_MAX,
            command_size_max: RESP_COMMAND_SIZE_MAX,
            inline_size_max: RESP_INLINE_SIZE_MAX,
            authenticated: true,
        }
    }
}

/// Parses the first command in `buf`.
///
/// - `Ok(Decoded::Frame { frame, len })`: a complete command of `len` bytes;
///   consume them and parse again for the next pipelined command. An empty
///   `frame` is a command Redis skips silently (`*0`, `*-1`, a blank line).
/// - `Ok(Decoded::Incomplete { needed })`: read at least `needed` more bytes
///   (a lower bound, >= 1) and parse again from the same start.
/// - `Err(e)`: a protocol error; reply `-{e.redis_message()}` and close.
pub fn parse_command<'a>(
    buf: &'a [u8],
    limits: &RespLimits,
) -> Result<Decoded<Args<'a>>, RespError> {
    match buf.first() {
        None => Ok(Decoded::Incomplete { needed: 1 }),
        Some(b'*') => parse_array(buf, limits),
        Some(_) => parse_inline(buf, limits),
    }
}

/// A `*<n>` or `$<n>` header line.
enum Line<'a> {
    /// The text between the type byte and CRLF, and where the next line starts.
    Complete { text: &'a [u8], next: usize },
    /// At least `needed` more bytes are needed to finish the line.
    Incomplete { needed: usize },
}

/// Reads the header line starting at `start` (its type byte). A line longer
/// than `limits.inline_size_max` is an error whether or not its CRLF has
/// arrived, so the outcome does not depend on how the stream was split.
fn header_line<'a>(
    buf: &'a [u8],
    start: usize,
    limits: &RespLimits,
    too_long: fn(usize, usize) -> RespError,
) -> Result<Line<'a>, RespError> {
    let rest = &buf[start..];
    let max = limits.inline_size_max;
    match rest.iter().position(|&b| b == b'\r') {
        None if rest.len() > max => Err(too_long(rest.len(), max)),
        None => Ok(Line::Incomplete { needed: 2 }),
        Some(cr) if cr > max => Err(too_long(cr, max)),
        Some(cr) => match rest.get(cr + 1) {
            None => Ok(Line::Incomplete { needed: 1 }),
            Some(b'\n') => Ok(Line::Complete {
                text: &rest[1..cr],
                next: start + cr + 2,
            }),
            Some(_) => Err(RespError::BareCarriageReturn { offset: start + cr }),
        },
    }
}

fn parse_array<'a>(buf: &'a [u8], limits: &RespLimits) -> Result<Decoded<Args<'a>>, RespError> {
    let (text, mut at) = match header_line(buf, 0, limits, |size, size_max| {
        RespError::MultibulkCountTooLong { size, size_max }
    })? {
        Line::Complete { text, next } => (text, next),
        Line::Incomplete { needed } => return Ok(Decoded::Incomplete { needed }),
    };
    let invalid = || RespError::InvalidMultibulkLength {
        declared: evidence(text),
        args_max: limits.args_max,
    };
    let count = parse_i64(text).ok_or_else(invalid)?;
    if count == 0 || count == -1 {
        return Ok(Decoded::Frame {
            frame: Args::default(),
            len: at,
        });
    }
    let count = usize::try_from(count).map_err(|_| invalid())?;
    if count > limits.args_max {
        return Err(invalid());
    }
    if !limits.authenticated && count > RESP_UNAUTHENTICATED_ARGS_MAX {
        return Err(RespError::UnauthenticatedMultibulkLength {
            count,
            count_max: RESP_UNAUTHENTICATED_ARGS_MAX,
        });
    }
    // Preallocate for what the buffer can hold, not for what the peer claims.
    let mut args = Args::with_capacity(count.min(buf.len() / RESP_BULK_WIRE_SIZE_MIN + 1));
    for index in 0..count {
        let remaining_after = count - index - 1;
        let Some(&kind) = buf.get(at) else {
            return Ok(Decoded::Incomplete {
                needed: (remaining_after + 1).saturating_mul(RESP_BULK_WIRE_SIZE_MIN),
            });
        };
        if kind != b'$' {
            return Err(RespError::ExpectedBulk {
                got: kind,
                offset: at,
            });
        }
        let (text, body) = match header_line(buf, at, limits, |size, size_max| {
            RespError::BulkCountTooLong { size, size_max }
        })? {
            Line::Complete { text, next } => (text, next),
            Line::Incomplete { needed } => {
                return Ok(Decoded::Incomplete {
                    needed: needed + 2 + remaining_after * RESP_BULK_WIRE_SIZE_MIN,
                })
            }
        };
        let size = bulk_size(text, at, limits)?;
        let end = body + size + 2;
        if end > limits.command_size_max {
            return Err(RespError::CommandTooLarge {
                size: end,
                size_max: limits.command_size_max,
            });
        }
        if buf.len() < end {
            return Ok(Decoded::Incomplete {
                needed: end - buf.len() + remaining_after * RESP_BULK_WIRE_SIZE_MIN,
            });
        }
        if &buf[body + size..end] != b"\r\n" {
            return Err(RespError::BulkNotTerminated { size, offset: body });
        }
        args.push(Cow::Borrowed(&buf[body..body + size]));
        at = end;
    }
    Ok(Decoded::Frame {
        frame: args,
        len: at,
    })
}

/// Checks a declared bulk length (the text of its `$` line at `offset`).
fn bulk_size(text: &[u8], offset: usize, limits: &RespLimits) -> Result<usize, RespError> {
    let invalid = || RespError::InvalidBulkLength {
        declared: evidence(text),
        offset,
        size_max: limits.bulk_size_max,
    };
    let size = parse_i64(text).ok_or_else(invalid)?;
    let size = usize::try_from(size).map_err(|_| invalid())?;
    if size > limits.bulk_size_max {
        return Err(invalid());
    }
    if !limits.authenticated && size > RESP_UNAUTHENTICATED_BULK_SIZE_MAX {
        return Err(RespError::UnauthenticatedBulkLength {
            size,
            size_max: RESP_UNAUTHENTICATED_BULK_SIZE_MAX,
        });
    }
    Ok(size)
}
