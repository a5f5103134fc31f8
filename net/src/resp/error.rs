//! [`RespError`]: a RESP request stream that cannot be parsed. Every variant
//! carries its evidence (sizes, limits, offsets) for logs, and
//! [`RespError::redis_message`] gives the exact error line Redis sends for it.
//!
//! After a protocol error the stream can no longer be trusted: the server
//! replies with [`RespError::redis_message`] and closes the connection, as
//! Redis does.

use std::fmt::Write as _;

/// A RESP request stream that cannot be parsed. Nothing was consumed; the
/// caller should send `-{redis_message}\r\n` and close the connection.
// Variant fields are described in each variant's doc.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RespError {
    /// A `*<count>` line longer than the header line limit without its CRLF.
    #[error("array header line of {size}+ bytes exceeds {size_max} bytes")]
    MultibulkCountTooLong { size: usize, size_max: usize },
    /// A `$<len>` line longer than the header line limit without its CRLF.
    #[error("bulk header line of {size}+ bytes exceeds {size_max} bytes")]
    BulkCountTooLong { size: usize, size_max: usize },
    /// The array count is not an integer, is negative (other than the null
    /// array `*-1`), or exceeds `args_max`.
    #[error("invalid array length {declared:?} (limit {args_max} elements)")]
    InvalidMultibulkLength { declared: String, args_max: usize },
    /// A bulk length that is not an integer, is negative, or exceeds
    /// `size_max`.
    #[error("invalid bulk length {declared:?} at offset {offset} (limit {size_max} bytes)")]
    InvalidBulkLength {
        declared: String,
        offset: usize,
        size_max: usize,
    },
    /// An array element that does not start with `$`.
    #[error("expected '$' at offset {offset}, got byte {got:#04x}")]
    ExpectedBulk { got: u8, offset: usize },
    /// A bulk string's bytes are not followed by CRLF.
    #[error("bulk string of {size} bytes at offset {offset} is not followed by CRLF")]
    BulkNotTerminated { size: usize, offset: usize },
    /// A header line whose `\r` is not followed by `\n`.
    #[error("header line at offset {offset} ends with a CR not followed by LF")]
    BareCarriageReturn { offset: usize },
    /// An unauthenticated connection sent an array longer than allowed.
    #[error("unauthenticated array of {count} elements exceeds {count_max}")]
    UnauthenticatedMultibulkLength { count: usize, count_max: usize },
    /// An unauthenticated connection sent a bulk string longer than allowed.
    #[error("unauthenticated bulk string of {size} bytes exceeds {size_max}")]
    UnauthenticatedBulkLength { size: usize, size_max: usize },
    /// An inline command line longer than the limit.
    #[error("inline command line of {size}+ bytes exceeds {size_max} bytes")]
    InlineTooLong { size: usize, size_max: usize },
    /// An inline command with an unterminated quote, or a closing quote not
    /// followed by a space.
    #[error("unbalanced quotes in inline command")]
    UnbalancedQuotes,
    /// The command's declared size (headers and bulk strings) exceeds the
    /// command limit; nothing past the offending header was buffered.
    #[error("command of {size}+ bytes exceeds the limit of {size_max} bytes")]
    CommandTooLarge { size: usize, size_max: usize },
}

impl RespError {
    /// The error line Redis 7 sends for this fault, without the leading `-`
    /// and the trailing CRLF, e.g. `ERR Protocol error: invalid bulk length`.
    /// Faults Redis does not detect (a bulk not followed by CRLF, a bare CR, a
    /// command over our size limit) get a message in the same style.
    #[must_use]
    pub fn redis_message(&self) -> String {
        let what = match self {
            RespError::MultibulkCountTooLong { .. } => "too big mbulk count string",
            RespError::BulkCountTooLong { .. } => "too big bulk count string",
            RespError::InvalidMultibulkLength { .. } => "invalid multibulk length",
            RespError::InvalidBulkLength { .. } => "invalid bulk length",
            RespError::ExpectedBulk { got, .. } => {
                let mut s = String::from("ERR Protocol error: expected '$', got '");
                push_printable(&mut s, *got);
                s.push('\'');
                return s;
            }
            RespError::BulkNotTerminated { .. } => "bulk string not followed by CRLF",
            RespError::BareCarriageReturn { .. } => "CR not followed by LF",
            RespError::UnauthenticatedMultibulkLength { .. } => "unauthenticated multibulk length",
            RespError::UnauthenticatedBulkLength { .. } => "unauthenticated bulk length",
            RespError::InlineTooLong { .. } => "too big inline request",
            RespError::UnbalancedQuotes => "unbalanced quotes in request",
            RespError::CommandTooLarge { .. } => "command too large",
        };
        format!("ERR Protocol error: {what}")
    }
}

/// Appends `b` as Redis's `%c` would show it, except that bytes that would
/// break the error line or are not printable ASCII show as `\xHH`.
fn push_printable(s: &mut String, b: u8) {
    if b.is_ascii_graphic() || b == b' ' {
        s.push(char::from(b));
    } else {
        // Writing to a String cannot fail.
        let _ = write!(s, "\\x{b:02x}");
    }
}

/// Shows untrusted header bytes in evidence: at most 32 bytes, escaped.
pub(crate) fn evidence(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(32)];
    let mut s = String::with_capacity(shown.len() + 3);
    for &b in shown {
        push_printable(&mut s, b);
    }
    if bytes.len() > shown.len() {
        s.push_str("...");
    }
    s
}
