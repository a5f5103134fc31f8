//! Inline commands: one line of space-separated arguments, as telnet and
//! `redis-cli` piping plain text send, split with Redis's `sdssplitargs`
//! rules:
//!
//! ```text
//! set "a key" 'it''s'\r\n      -> ["set", "a key", ...]
//! line := arg (space arg)* [\r]\n
//! "..."  escapes: \n \r \t \b \a \\ \" \xHH ; any other \c is c
//! '...'  escape:  \' only
//! ```
//!
//! A closing quote must be followed by a space or the end of the line, and
//! every quote must be closed: otherwise "unbalanced quotes in request". A
//! quote may start in the middle of an argument (`a"b c"` is `ab c`), as in
//! Redis. A NUL byte ends the line, as in Redis (which splits a C string).
//!
//! Arguments borrow the buffer unless quoting made their bytes differ from
//! the wire bytes (an escape, or a quote inside the argument).

use std::borrow::Cow;

use super::args::Args;
use super::error::RespError;
use super::parse::RespLimits;
use crate::client_frame::Decoded;

/// Parses one inline command line at the start of `buf` (which does not
/// start with `*`).
pub(crate) fn parse_inline<'a>(
    buf: &'a [u8],
    limits: &RespLimits,
) -> Result<Decoded<Args<'a>>, RespError> {
    let max = limits.inline_size_max;
    let newline = match buf.iter().position(|&b| b == b'\n') {
        None if buf.len() > max => {
            return Err(RespError::InlineTooLong {
                size: buf.len(),
                size_max: max,
            })
        }
        None => return Ok(Decoded::Incomplete { needed: 1 }),
        Some(n) if n > max => {
            return Err(RespError::InlineTooLong {
                size: n,
                size_max: max,
            })
        }
        Some(n) => n,
    };
    let mut line = &buf[..newline];
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    if let Some(nul) = line.iter().position(|&b| b == 0) {
        line = &line[..nul];
    }
    let args = split_args(line).ok_or(RespError::UnbalancedQuotes)?;
    Ok(Decoded::Frame {
        frame: args,
        len: newline + 1,
    })
}

/// C's `isspace` in the "C" locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One argument being built: a borrowed range of the line while its bytes
/// are the line's bytes, owned once they differ.
struct ArgBuilder {
    start: usize,
    end: usize,
    owned: Option<Vec<u8>>,
}

impl ArgBuilder {
    fn new(at: usize) -> Self {
        ArgBuilder {
            start: at,
            end: at,
            owned: None,
        }
    }

    /// Appends the line's byte at `at`.
    fn push_from_line(&mut self, line: &[u8], at: usize) {
        match &mut self.owned {
            Some(v) => v.push(line[at]),
            None if self.start == self.end => {
                self.start = at;
                self.end = at + 1;
            }
            None if self.end == at => self.end += 1,
            None => self.push_byte(line, line[at]),
        }
    }

    /// Appends a byte that is not the line's byte at this place.
    fn push_byte(&mut self, line: &[u8], b: u8) {
        self.owned
            .get_or_insert_with(|| line[self.start..self.end].to_vec())
            .push(b);
    }

    fn finish(self, line: &[u8]) -> Cow<'_, [u8]> {
        match self.owned {
            Some(v) => Cow::Owned(v),
            None => Cow::Borrowed(&line[self.start..self.end]),
        }
    }
}

/// Splits a line as Redis's `sdssplitargs` does; `None` for unbalanced
/// quotes.
fn split_args(line: &[u8]) -> Option<Args<'_>> {
    let at = |i: usize| line.get(i).copied();
    let mut args = Args::default();
    let mut p = 0;
    loop {
        while at(p).is_some_and(is_space) {
            p += 1;
        }
        if p >= line.len() {
            return Some(args);
        }
        let mut arg = ArgBuilder::new(p);
        let (mut in_double, mut in_single, mut done) = (false, false, false);
        while !done {
            let c = at(p);
            if in_double {
                match c {
                    None => return None,
                    Some(b'\\') if at(p + 1) == Some(b'x') => {
                        match (at(p + 2).and_then(hex_value), at(p + 3).and_then(hex_value)) {
                            (Some(hi), Some(lo)) => {
                                arg.push_byte(line, hi * 16 + lo);
                                p += 3;
                            }
                            // Not a valid \xHH: `\x` escapes to `x`.
                            _ => {
                                p += 1;
                                arg.push_byte(line, b'x');
                            }
                        }
                    }
                    Some(b'\\') if at(p + 1).is_some() => {
                        p += 1;
                        let escaped = match line[p] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        };
                        arg.push_byte(line, escaped);
                    }
                    Some(b'"') => {
                        if at(p + 1).is_some_and(|n| !is_space(n)) {
                            return None;
                        }
                        done = true;
                    }
                    Some(_) => arg.push_from_line(line, p),
                }
            } else if in_single {
                match c {
                    None => return None,
                    Some(b'\\') if at(p + 1) == Some(b'\'') => {
                        p += 1;
                        arg.push_byte(line, b'\'');
                    }
                    Some(b'\'') => {
                        if at(p + 1).is_some_and(|n| !is_space(n)) {
                            return None;
                        }
                        done = true;
                    }
                    Some(_) => arg.push_from_line(line, p),
                }
            } else {
                match c {
                    None | Some(b' ' | b'\n' | b'\r' | b'\t' | 0) => done = true,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(_) => arg.push_from_line(line, p),
                }
            }
            if p < line.len() {
                p += 1;
            }
        }
        args.push(arg.finish(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Option<Vec<Vec<u8>>> {
        split_args(line.as_bytes()).map(|a| a.iter().map(<[u8]>::to_vec).collect())
    }

    fn v(items: &[&str]) -> Option<Vec<Vec<u8>>> {
        Some(items.iter().map(|s| s.as_bytes().to_vec()).collect())
    }

    #[test]
    fn inline_split_follows_sdssplitargs() {
        assert_eq!(split("set a b"), v(&["set", "a", "b"]));
        assert_eq!(split("  set   a\tb  "), v(&["set", "a", "b"]));
        assert_eq!(split(""), v(&[]));
        assert_eq!(split("set \"a b\" c"), v(&["set", "a b", "c"]));
        assert_eq!(split("set 'a b' c"), v(&["set", "a b", "c"]));
        assert_eq!(
            split(r#"x "\n\r\t\b\a\\\"\q""#),
            v(&["x", "\n\r\t\x08\x07\\\"q"])
        );
        assert_eq!(split(r#""\x41\x4a\x6b""#), v(&["AJk"]));
        assert_eq!(split(r#""\xZZ""#), v(&["xZZ"]));
        assert_eq!(split(r"'it\'s'"), v(&["it's"]));
        assert_eq!(split(r"'a\nb'"), v(&["a\\nb"]));
        assert_eq!(split("a\"b c\"d e"), None);
        assert_eq!(split("a\"b c\" e"), v(&["ab c", "e"]));
        assert_eq!(split("\"\""), v(&[""]));
        assert_eq!(split("\"abc"), None);
        assert_eq!(split("'abc"), None);
        assert_eq!(split("\"a\"b"), None);
        assert_eq!(split("'a'b"), None);
        assert_eq!(split("\"a\\"), None);
    }

    #[test]
    fn inline_arguments_borrow_unless_quoting_changed_them() {
        let args = split_args(b"set \"key\" 'val' plain").unwrap();
        assert!(args.is_borrowed());
        let args = split_args(b"set \"k\\ney\"").unwrap();
        assert!(!args.is_borrowed());
        assert_eq!(args.get(1), Some(&b"k\ney"[..]));
    }
}
