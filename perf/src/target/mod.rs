//! The systems loadgen drives, behind one interface so the workload code is the same for all:
//! queue requests with a caller-chosen id, flush them in one write, receive answers by id.
//!
//! - [`resp::RespConnection`]: any Redis-protocol server (Redis, the echo baseline, ringkv's
//!   RESP port). Replies come back in order; ids are matched FIFO.
//! - [`ringkv::RingkvConnection`]: ringkv's binary protocol, shard-aware: HELLO, then one
//!   connection per shard port, each key sent to its owning shard (`ringkv_net::routing`).
//!
//! A [`ConnError`] means the connection is unusable (I/O error, protocol violation); a refused
//! request is an [`Answer::Refused`] and the connection goes on.

pub mod resp;
pub mod ringkv;

use std::fmt;
use std::io;

/// One request, borrowing its key and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Req<'a> {
    /// Read one key.
    Get(&'a [u8]),
    /// Write one key.
    Set(&'a [u8], &'a [u8]),
    /// Read up to `n` keys from `start` on, in key order.
    Scan(&'a [u8], u32),
}

/// What a request got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A value (or a scan page, or a write acknowledgement).
    Done,
    /// The key does not exist.
    Miss,
    /// The server refused the request; the connection is still usable.
    Refused(String),
}

/// The connection cannot be used any more.
#[derive(Debug)]
pub enum ConnError {
    /// A socket operation failed or the server closed the connection.
    Io(io::Error),
    /// The server broke the protocol (or answered a request never sent).
    Protocol(String),
    /// The target cannot do what the workload asks (e.g. range scans over RESP).
    Unsupported(&'static str),
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Io(e) => write!(f, "I/O error: {e}"),
            ConnError::Protocol(m) => write!(f, "protocol violation: {m}"),
            ConnError::Unsupported(m) => write!(f, "unsupported by this target: {m}"),
        }
    }
}

impl std::error::Error for ConnError {}

impl From<io::Error> for ConnError {
    fn from(e: io::Error) -> Self {
        ConnError::Io(e)
    }
}

/// Where to send load, parsed from `redis://HOST:PORT` or `ringkv://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetAddr {
    /// A RESP server at `host:port`.
    Redis(String),
    /// A ringkv node whose HELLO port is `host:port`.
    Ringkv(String),
}

impl TargetAddr {
    /// Parses a target URL; the port is required.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("target {url:?}: expected SCHEME://HOST:PORT"))?;
        let rest = rest.trim_end_matches('/');
        let port_ok = rest
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !port_ok {
            return Err(format!(
                "target {url:?}: expected HOST:PORT after {scheme}://"
            ));
        }
        match scheme {
            "redis" | "resp" => Ok(TargetAddr::Redis(rest.to_string())),
            "ringkv" => Ok(TargetAddr::Ringkv(rest.to_string())),
            other => Err(format!(
                "target {url:?}: unknown scheme {other:?} (redis, ringkv)"
            )),
        }
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        match self {
            TargetAddr::Redis(a) | TargetAddr::Ringkv(a) => a,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_urls_parse_and_bad_ones_are_refused() {
        assert_eq!(
            TargetAddr::parse("redis://127.0.0.1:6379"),
            Ok(TargetAddr::Redis("127.0.0.1:6379".into()))
        );
        assert_eq!(
            TargetAddr::parse("ringkv://localhost:7000/"),
            Ok(TargetAddr::Ringkv("localhost:7000".into()))
        );
        for bad in [
            "127.0.0.1:6379",
            "redis://127.0.0.1",
            "redis://:1",
            "http://a:1",
            "redis://a:99999",
        ] {
            assert!(TargetAddr::parse(bad).is_err(), "{bad}");
        }
    }
}
