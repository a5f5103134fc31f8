//! Static membership from seeds: what a node knows of its peers, and the
//! peers file that keeps it across restarts.
//!
//! A node starts with its own [`NodeInfo`] and the seed addresses it was given
//! (`--seeds`). The shell connects to each seed, learns the [`NodeInfo`] the
//! node there reports in its handshake, and calls [`Membership::learn`]. Once
//! every seed is resolved, [`Membership::ring`] builds the ring. The peers
//! file lets a restarted node build its ring before its peers answer.
//!
//! Invariants: no two known nodes share an id, and none has this node's id;
//! a seed equal to this node's own `host:port` is dropped; seeds are unique.
//!
//! Peers file (UTF-8 text, one record per line, fields separated by one space):
//! ```text
//! ringkv-peers v1
//! peer <addr> <id> <host> <port> <shards> <rack> <tokens>
//! ...
//! checksum <xxh3-64 of every byte before this line, 16 hex digits>
//! ```
//! `addr`, `host` and `rack` are escaped: bytes outside `[A-Za-z0-9._:[]-]`
//! become `%XX`, and the empty string is written `%`. `tokens` is the tokens
//! as 16-hex-digit numbers joined by `,`. Not here: gossip, joins, removals.

use crate::error::{MembershipError, RingError};
use crate::limits::{PEERS_LINES_MAX, TOKENS_PER_NODE_MAX};
use crate::record::NodeId;
use crate::ring::{NodeInfo, Ring};
use xxhash_rust::xxh3::xxh3_64;

const HEADER: &str = "ringkv-peers v1";

/// What a node knows of its peers: the seed addresses (`host:port`, as given)
/// and the [`NodeInfo`] learned for each.
#[derive(Debug, Clone)]
pub struct Membership {
    me: NodeInfo,
    seeds: Vec<String>,
    /// Parallel to `seeds`.
    known: Vec<Option<NodeInfo>>,
}

impl Membership {
    /// Membership of `me` with `seeds`; a seed equal to my own `host:port` and
    /// repeated seeds are dropped.
    pub fn new(me: NodeInfo, seeds: Vec<String>) -> Self {
        let mine = format!("{}:{}", me.host, me.port);
        let mut unique: Vec<String> = Vec::with_capacity(seeds.len());
        for s in seeds {
            if s != mine && !unique.contains(&s) {
                unique.push(s);
            }
        }
        let known = vec![None; unique.len()];
        Membership {
            me,
            seeds: unique,
            known,
        }
    }

    /// This node.
    pub fn me(&self) -> &NodeInfo {
        &self.me
    }

    /// The seed addresses, as given (minus my own and repeats).
    pub fn seeds(&self) -> &[String] {
        &self.seeds
    }

    /// Records what the node at seed `addr` said about itself. Err (nothing
    /// changed) if `addr` is not a seed, another known node already has that
    /// id, or the id is mine; `Ok(true)` if anything changed.
    pub fn learn(&mut self, addr: &str, info: NodeInfo) -> Result<bool, MembershipError> {
        let Some(at) = self.seeds.iter().position(|s| s == addr) else {
            return Err(MembershipError::UnknownSeed { addr: addr.into() });
        };
        if info.id == self.me.id {
            return Err(MembershipError::MyId {
                addr: addr.into(),
                node: info.id,
            });
        }
        for (i, k) in self.known.iter().enumerate() {
            if i != at && k.as_ref().is_some_and(|k| k.id == info.id) {
                return Err(MembershipError::DuplicateId {
                    addr: addr.into(),
                    node: info.id,
                    other_addr: self.seeds[i].clone(),
                });
            }
        }
        if self.known[at].as_ref() == Some(&info) {
            return Ok(false);
        }
        self.known[at] = Some(info);
        Ok(true)
    }

    /// What the node at seed `addr` said about itself, if known.
    pub fn known(&self, addr: &str) -> Option<&NodeInfo> {
        let at = self.seeds.iter().position(|s| s == addr)?;
        self.known[at].as_ref()
    }

    /// Seeds with no [`NodeInfo`] yet.
    pub fn unresolved(&self) -> Vec<&str> {
        self.seeds
            .iter()
            .zip(&self.known)
            .filter(|(_, k)| k.is_none())
            .map(|(s, _)| s.as_str())
            .collect()
    }

    /// The ring (me + every seed's node) once every seed is resolved; `None` before.
    pub fn ring(&self, replication_factor: u32) -> Option<Result<Ring, RingError>> {
        let mut nodes = Vec::with_capacity(self.known.len() + 1);
        nodes.push(self.me.clone());
        for k in &self.known {
            nodes.push(k.clone()?);
        }
        Some(Ring::new(nodes, replication_factor))
    }

    /// The peers file text: one line per resolved seed, then a checksum line
    /// (format in the module doc).
    pub fn encode_peers(&self) -> String {
        let mut text = String::from(HEADER);
        text.push('\n');
        for (addr, k) in self.seeds.iter().zip(&self.known) {
            let Some(n) = k else { continue };
            let tokens: Vec<String> = n.tokens.iter().map(|t| format!("{t:016x}")).collect();
            text.push_str(&format!(
                "peer {} {} {} {} {} {} {}\n",
                escape(addr),
                n.id,
                escape(&n.host),
                n.port,
                n.shards,
                escape(&n.rack),
                tokens.join(",")
            ));
        }
        let sum = xxh3_64(text.as_bytes());
        text.push_str(&format!("checksum {sum:016x}\n"));
        text
    }

    /// Loads a peers file written by [`Membership::encode_peers`]: every
    /// listed seed that is still a seed is learned. A bad checksum, a
    /// malformed line or a conflicting id is refused with the line number and
    /// nothing is changed. Peers no longer among the seeds are skipped.
    pub fn load_peers(&mut self, text: &str) -> Result<(), MembershipError> {
        let peers = parse_peers(text)?;
        let mut next = self.clone();
        for (line, addr, info) in peers {
            if !next.seeds.contains(&addr) {
                continue;
            }
            next.learn(&addr, info)
                .map_err(|e| bad(line, e.to_string()))?;
        }
        *self = next;
        Ok(())
    }
}

fn bad(line: usize, reason: impl Into<String>) -> MembershipError {
    MembershipError::BadPeersLine {
        line,
        reason: reason.into(),
    }
}

/// Parses and checks a peers file: (line number, addr, info) per peer line.
fn parse_peers(text: &str) -> Result<Vec<(usize, String, NodeInfo)>, MembershipError> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.len() > PEERS_LINES_MAX + 1 {
        return Err(bad(
            PEERS_LINES_MAX + 2,
            format!("more than {} lines", PEERS_LINES_MAX + 1),
        ));
    }
    if lines.first().map(|l| l.trim_end_matches('\n')) != Some(HEADER) {
        return Err(bad(1, format!("expected header {HEADER:?}")));
    }
    let Some(last) = lines.len().checked_sub(1).filter(|&i| i > 0) else {
        return Err(bad(2, "missing checksum line"));
    };
    let sum_line = lines[last].trim_end_matches('\n');
    let found = sum_line
        .strip_prefix("checksum ")
        .filter(|h| h.len() == 16)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or_else(|| {
            bad(
                last + 1,
                "expected \"checksum <16 hex digits>\" as the last line",
            )
        })?;
    let covered: usize = lines[..last].iter().map(|l| l.len()).sum();
    let expected = xxh3_64(&text.as_bytes()[..covered]);
    if expected != found {
        return Err(MembershipError::BadPeersChecksum {
            line: last + 1,
            expected,
            found,
        });
    }
    let mut peers = Vec::with_capacity(last.saturating_sub(1));
    for (i, l) in lines[1..last].iter().enumerate() {
        let line = i + 2;
        let (addr, info) = parse_peer(l.trim_end_matches('\n')).map_err(|r| bad(line, r))?;
        peers.push((line, addr, info));
    }
    Ok(peers)
}

fn parse_peer(line: &str) -> Result<(String, NodeInfo), String> {
    let f: Vec<&str> = line.split(' ').collect();
    if f.len() != 8 || f[0] != "peer" {
        return Err(format!(
            "expected \"peer\" and 7 fields, got {} fields",
            f.len()
        ));
    }
    let num = |what: &str, s: &str| -> Result<u64, String> {
        s.parse::<u64>().map_err(|_| format!("bad {what} {s:?}"))
    };
    let id = NodeId::try_from(num("id", f[2])?).map_err(|_| format!("id {} out of range", f[2]))?;
    let port =
        u16::try_from(num("port", f[4])?).map_err(|_| format!("port {} out of range", f[4]))?;
    let shards =
        u32::try_from(num("shards", f[5])?).map_err(|_| format!("shards {} out of range", f[5]))?;
    let tokens_text: Vec<&str> = f[7].split(',').collect();
    if tokens_text.len() > TOKENS_PER_NODE_MAX {
        return Err(format!(
            "{} tokens, more than {TOKENS_PER_NODE_MAX}",
            tokens_text.len()
        ));
    }
    let mut tokens = Vec::with_capacity(tokens_text.len());
    for t in tokens_text {
        let v = (t.len() == 16)
            .then(|| u64::from_str_radix(t, 16).ok())
            .flatten()
            .ok_or_else(|| format!("bad token {t:?}"))?;
        tokens.push(v);
    }
    let info = NodeInfo {
        id,
        host: unescape(f[3]).ok_or("bad host escape")?,
        port,
        shards,
        rack: unescape(f[6]).ok_or("bad rack escape")?,
        tokens,
    };
    Ok((unescape(f[1]).ok_or("bad addr escape")?, info))
}

fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b".:_-[]".contains(&b)
}

/// Escapes a string into one space-free field (see the module doc).
fn escape(s: &str) -> String {
    if s.is_empty() {
        return "%".into();
    }
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if plain(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Inverse of [`escape`]; `None` on a malformed escape or non-UTF-8 result.
fn unescape(s: &str) -> Option<String> {
    if s == "%" {
        return Some(String::new());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if plain(b[i]) {
            out.push(b[i]);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_awkward_names() {
        for s in ["", "rack a", "%", "é", "host-1.example:70", "[::1]"] {
            let e = escape(s);
            assert!(!e.contains(' ') && !e.is_empty());
            assert_eq!(unescape(&e).as_deref(), Some(s));
        }
        for bad in ["%4", "%zz", "a b", "%C3"] {
            assert_eq!(unescape(bad), None, "{bad}");
        }
    }
}
