//! The client side of [`crate::resp::parse_command`]: commands encoded as
//! client libraries send them, an array of bulk strings.
//!
//! ```text
//! *<argc>\r\n ( $<len>\r\n <bytes> \r\n ){argc}
//! ```

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

/// `<tag><n>\r\n`, the decimal digits written without a formatter (this is
/// on load generators' send path).
fn write_header(out: &mut Vec<u8>, tag: u8, n: usize) {
    out.push(tag);
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
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
