//! The RESP reply encoder: [`Reply`] appends replies to a `Vec<u8>` in the
//! protocol version of the connection ([`RespVersion`], RESP2 until the
//! client sends `HELLO 3`).
//!
//! ```text
//! type        RESP2                          RESP3
//! simple      +OK\r\n                        same
//! error       -ERR message\r\n               same
//! integer     :42\r\n                        same
//! bulk        $3\r\nabc\r\n                  same
//! null        $-1\r\n                        _\r\n
//! null array  *-1\r\n                        _\r\n
//! array       *2\r\n<elem><elem>             same
//! map         *4\r\n<k><v><k><v> (flat)      %2\r\n<k><v><k><v>
//! set         *2\r\n<elem><elem>             ~2\r\n<elem><elem>
//! double      $3\r\n1.5\r\n (bulk)           ,1.5\r\n  (,inf ,-inf ,nan)
//! boolean     :1\r\n / :0\r\n                #t\r\n / #f\r\n
//! verbatim    $5\r\nhello\r\n (bulk)         =9\r\ntxt:hello\r\n
//! ```
//!
//! Invariants: every call appends exactly one complete element (or, for the
//! `*_header` calls, one aggregate header whose elements the caller appends
//! next). Simple strings and errors never contain CR or LF: they are
//! replaced by spaces, as Redis does, so a reply can never inject another.

/// The RESP version of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RespVersion {
    /// RESP2, every connection's version until `HELLO 3`.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

impl RespVersion {
    /// The number HELLO uses for this version (2 or 3).
    #[must_use]
    pub fn number(self) -> i64 {
        match self {
            RespVersion::Resp2 => 2,
            RespVersion::Resp3 => 3,
        }
    }
}

/// Appends replies to `out` in one protocol version.
#[derive(Debug)]
pub struct Reply<'o> {
    out: &'o mut Vec<u8>,
    version: RespVersion,
}

impl<'o> Reply<'o> {
    /// An encoder appending to `out` in `version`.
    pub fn new(out: &'o mut Vec<u8>, version: RespVersion) -> Self {
        Reply { out, version }
    }

    /// The version replies are encoded in.
    #[must_use]
    pub fn version(&self) -> RespVersion {
        self.version
    }

    /// `+text\r\n` (CR and LF in `text` become spaces).
    pub fn simple(&mut self, text: &str) {
        self.line(b'+', text.as_bytes());
    }

    /// `+OK\r\n`.
    pub fn ok(&mut self) {
        self.out.extend_from_slice(b"+OK\r\n");
    }

    /// `-message\r\n`. `message` starts with its error code (`ERR ...`,
    /// `WRONGPASS ...`); CR and LF in it become spaces.
    pub fn error(&mut self, message: &str) {
        self.line(b'-', message.as_bytes());
    }

    /// `:n\r\n`.
    pub fn integer(&mut self, n: i64) {
        self.header(b':', n);
    }

    /// `$len\r\nbytes\r\n` (binary-safe).
    pub fn bulk(&mut self, bytes: &[u8]) {
        self.header(b'$', bytes.len() as i64);
        self.out.extend_from_slice(bytes);
        self.out.extend_from_slice(b"\r\n");
    }

    /// A bulk string or, for `None`, the null reply.
    pub fn bulk_or_null(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(b) => self.bulk(b),
            None => self.null(),
        }
    }

    /// The null reply: `$-1\r\n` (RESP2) or `_\r\n` (RESP3).
    pub fn null(&mut self) {
        self.out.extend_from_slice(match self.version {
            RespVersion::Resp2 => b"$-1\r\n",
            RespVersion::Resp3 => b"_\r\n",
        });
    }

    /// The null array: `*-1\r\n` (RESP2) or `_\r\n` (RESP3).
    pub fn null_array(&mut self) {
        self.out.extend_from_slice(match self.version {
            RespVersion::Resp2 => b"*-1\r\n",
            RespVersion::Resp3 => b"_\r\n",
        });
    }

    /// `*len\r\n`; the caller then appends `len` elements.
    pub fn array_header(&mut self, len: usize) {
        self.header(b'*', len as i64);
    }

    /// A map of `pairs` entries: `%pairs\r\n` (RESP3) or a flat array
    /// `*2·pairs\r\n` (RESP2); the caller then appends key, value, key,
    /// value...
    pub fn map_header(&mut self, pairs: usize) {
        match self.version {
            RespVersion::Resp2 => self.header(b'*', (pairs as i64).saturating_mul(2)),
            RespVersion::Resp3 => self.header(b'%', pairs as i64),
        }
    }

    /// A set of `len` elements: `~len\r\n` (RESP3) or `*len\r\n` (RESP2).
    pub fn set_header(&mut self, len: usize) {
        match self.version {
            RespVersion::Resp2 => self.header(b'*', len as i64),
            RespVersion::Resp3 => self.header(b'~', len as i64),
        }
    }

    /// A double: `,text\r\n` (RESP3) or a bulk string of the same text
    /// (RESP2). Text is the shortest that round-trips, `inf`, `-inf` or
    /// `nan`.
    pub fn double(&mut self, x: f64) {
        let text = if x.is_nan() {
            "nan".to_owned()
        } else if x.is_infinite() {
            if x > 0.0 { "inf" } else { "-inf" }.to_owned()
        } else {
            format!("{x}")
        };
        match self.version {
            RespVersion::Resp2 => self.bulk(text.as_bytes()),
            RespVersion::Resp3 => {
                self.out.push(b',');
                self.out.extend_from_slice(text.as_bytes());
                self.out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// A boolean: `#t\r\n`/`#f\r\n` (RESP3) or `:1\r\n`/`:0\r\n` (RESP2).
    pub fn boolean(&mut self, b: bool) {
        self.out.extend_from_slice(match (self.version, b) {
            (RespVersion::Resp2, true) => b":1\r\n",
            (RespVersion::Resp2, false) => b":0\r\n",
            (RespVersion::Resp3, true) => b"#t\r\n",
            (RespVersion::Resp3, false) => b"#f\r\n",
        });
    }

    /// A verbatim string of plain text (as INFO replies):
    /// `=len\r\ntxt:bytes\r\n` (RESP3) or a bulk string (RESP2).
    pub fn verbatim_text(&mut self, bytes: &[u8]) {
        self.verbatim(*b"txt", bytes);
    }

    /// A verbatim string with a three-byte `format` (`txt`, `mkd`):
    /// `=len\r\nfmt:bytes\r\n` (RESP3) or a bulk string (RESP2).
    pub fn verbatim(&mut self, format: [u8; 3], bytes: &[u8]) {
        match self.version {
            RespVersion::Resp2 => self.bulk(bytes),
            RespVersion::Resp3 => {
                self.header(b'=', bytes.len() as i64 + 4);
                self.out.extend_from_slice(&format);
                self.out.push(b':');
                self.out.extend_from_slice(bytes);
                self.out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Appends bytes already encoded as RESP (e.g. a reply forwarded from
    /// another shard in the same version).
    pub fn raw(&mut self, encoded: &[u8]) {
        self.out.extend_from_slice(encoded);
    }

    fn header(&mut self, kind: u8, n: i64) {
        self.out.push(kind);
        push_decimal(self.out, n);
        self.out.extend_from_slice(b"\r\n");
    }

    fn line(&mut self, kind: u8, text: &[u8]) {
        self.out.push(kind);
        self.out.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        self.out.extend_from_slice(b"\r\n");
    }
}

/// Appends `n` in decimal without going through `fmt` (every reply header
/// does this, so it is on the hot path).
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut m = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(f: impl Fn(&mut Reply<'_>)) -> (Vec<u8>, Vec<u8>) {
        let mut a = Vec::new();
        f(&mut Reply::new(&mut a, RespVersion::Resp2));
        let mut b = Vec::new();
        f(&mut Reply::new(&mut b, RespVersion::Resp3));
        (a, b)
    }

    #[test]
    fn errors_and_simple_strings_cannot_inject_lines() {
        let (a, _) = both(|r| r.error("ERR bad\r\n+OK"));
        assert_eq!(a, b"-ERR bad  +OK\r\n");
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for n in [0, 7, -7, 10, 1234567890, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            Reply::new(&mut out, RespVersion::Resp2).integer(n);
            assert_eq!(out, format!(":{n}\r\n").into_bytes());
        }
    }

    #[test]
    fn null_differs_between_versions() {
        assert_eq!(both(|r| r.null()), (b"$-1\r\n".to_vec(), b"_\r\n".to_vec()));
    }
}
