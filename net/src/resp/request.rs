//! The client side of [`crate::resp::parse_command`]: commands encoded as
//! client libraries send them, an array of bulk strings.
//!
//! ```text
//! *<argc>\r\n ( $<len>\r\n <bytes> \r\n ){argc}
//! ```

use super::reply::push_decimal;

/// Appends `args` (the command name first) to `out` as an array of bulk
/// strings. Any bytes are allowed in an argument.
pub fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    write_header(out, b'*', args.len());
    for arg in args {
        write_header(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// `<tag><n>\r\n`.
fn write_header(out: &mut Vec<u8>, tag: u8, n: usize) {
    out.push(tag);
    // A length always fits: no buffer holds i64::MAX bytes.
    push_decimal(out, i64::try_from(n).unwrap_or(i64::MAX));
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_encode_as_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&[b"SET", b"k", b"a\r\nb"], &mut out);
        encode_command(&[b"PING"], &mut out);
        encode_command(&[b"GET", &[b'x'; 10]], &mut out);
        let mut want =
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n*1\r\n$4\r\nPING\r\n".to_vec();
        want.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$10\r\nxxxxxxxxxx\r\n");
        assert_eq!(out, want);
    }
}
