//! [`Client`]: the blocking, shard-aware client (std `TcpStream`), used by
//! ringctl and tests.
//!
//! How it works: `connect` sends HELLO to the first reachable address and
//! learns the node's shard count and base port. Each key is routed to its
//! shard (`routing::shard_for(token(key))`) and sent on that shard's own
//! connection (`base_port + 1 + shard`, opened lazily, TCP_NODELAY; if that
//! port cannot be reached, the node's base address is used, where the server
//! forwards). MGET/MPUT/SCAN/STATS are split per shard (and into frames of at
//! most `BATCH_KEYS_MAX` keys), written to every shard first and then read
//! back (pipelined across shards), answers matched by id; a shard gets at
//! most one frame per wave, so a huge batch cannot deadlock two full socket
//! buffers.
//!
//! Invariants: a connection with unread answers is never reused after an
//! error (it is dropped); every request has a deadline of `options.timeout`;
//! only idempotent requests (GET, MGET, EXISTS, TTL, SCAN, PING, STATS) are
//! retried, up to `options.read_retries` times, after a lost connection or a
//! timeout; the session version only grows.
//!
//! Token-aware routing: after HELLO, `connect` asks the home node for the
//! RING. With a ring of more than one node (and `options.token_aware`), a
//! single-key request goes to a replica of its key, chosen by
//! [`super::pick_node`]: the home node if it is a replica, else the first
//! reachable replica in ring order, on that node's owning shard port
//! (`shard_port(node.port, shard_for(token, node.shards))`). A node that
//! cannot be connected to is routed around for
//! `CLIENT_NODE_RETRY_DELAY_MS` (next replica, then the home node, which
//! coordinates any key). MGET/MPUT/SCAN/STATS go to the home node's shards.
//! A node that does not know RING (an error answer) leaves the client as a
//! single-node client. Connections are kept per (node, shard) in `slots`:
//! slots `0..home.shard_count` are the home node's shards, the others are
//! opened lazily for other nodes.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use ringkv_cluster::ring::Ring;

use super::buffer::RecvBuffer;
use super::route::pick_node;
use super::scan::merge_scan_pages;
use super::{
    highest_version, CasExpectOwned, CasOutcome, ScanEntryOwned, ScanPageOwned, ScanSpec,
    ValueOwned,
};
use crate::client_frame::{
    decode_response, encode_request, CasExpect, Consistency, Decoded, KeyList, PairList, Request,
    RequestHeader, Response, TtlState, WireVersion,
};
use crate::error::ClientError;
use crate::limits::{
    BATCH_KEYS_MAX, CLIENT_BATCH_SIZE_MAX, CLIENT_NODE_RETRY_DELAY_MS, FRAME_SIZE_MAX_DEFAULT,
    KEY_SIZE_MAX, SCAN_LIMIT_MAX, VALUE_SIZE_MAX,
};
use crate::routing::{shard_for, shard_port, token};

/// Client settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// Deadline of each request (connect, send and answer), per attempt.
    pub timeout: Duration,
    /// Consistency level sent with every request.
    pub consistency: Consistency,
    /// How many times an idempotent request is retried after a lost
    /// connection or a timeout.
    pub read_retries: u32,
    /// Route single-key requests to a replica of the key (when the node
    /// answers RING with more than one node). Off: everything goes to the
    /// home node, which coordinates.
    pub token_aware: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(5),
            consistency: Consistency::Default,
            read_retries: 2,
            token_aware: true,
        }
    }
}

/// What HELLO told us about the node.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// The address that answered HELLO (the node's shared port).
    addr: SocketAddr,
    node_id: u32,
    shard_count: u32,
    base_port: u16,
}

/// One destination (a shard of a node) and its lazily opened connection.
#[derive(Debug)]
struct Slot {
    /// The node this slot belongs to.
    node_id: u32,
    /// The shard's own port.
    own: SocketAddr,
    /// The node's shared port, tried when `own` cannot be reached (the server
    /// forwards to the owning shard).
    fallback: Option<SocketAddr>,
    conn: Option<Conn>,
}

/// One TCP connection with its receive buffer.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    recv: RecvBuffer,
    /// The server sent a connection-level error (id 0) and closes.
    broken: bool,
}

fn remaining(
    deadline: Instant,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Duration, ClientError> {
    let now = Instant::now();
    if now >= deadline {
        return Err(timeout_error(addr, timeout));
    }
    Ok(deadline - now)
}

fn timeout_error(addr: SocketAddr, timeout: Duration) -> ClientError {
    ClientError::Timeout {
        addr: addr.to_string(),
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    }
}

fn io_error(addr: SocketAddr, source: io::Error, timeout: Duration) -> ClientError {
    match source.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timeout_error(addr, timeout),
        _ => ClientError::Io {
            addr: addr.to_string(),
            source,
        },
    }
}

impl Conn {
    fn open(addr: SocketAddr, timeout: Duration) -> Result<Conn, ClientError> {
        let stream =
            TcpStream::connect_timeout(&addr, timeout).map_err(|e| io_error(addr, e, timeout))?;
        stream
            .set_nodelay(true)
            .map_err(|e| io_error(addr, e, timeout))?;
        Ok(Conn {
            stream,
            addr,
            recv: RecvBuffer::default(),
            broken: false,
        })
    }

    fn send(
        &mut self,
        bytes: &[u8],
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        let left = remaining(deadline, self.addr, timeout)?;
        let addr = self.addr;
        self.stream
            .set_write_timeout(Some(left))
            .and_then(|()| self.stream.write_all(bytes))
            .map_err(|e| io_error(addr, e, timeout))
    }

    /// Reads until a whole response frame is at the front of the buffer and
    /// returns its length (the frame stays in the buffer).
    fn recv_frame_len(
        &mut self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<usize, ClientError> {
        loop {
            match decode_response(self.recv.data(), FRAME_SIZE_MAX_DEFAULT)? {
                Decoded::Frame { len, .. } => return Ok(len),
                Decoded::Incomplete { needed } => {
                    let left = remaining(deadline, self.addr, timeout)?;
                    let addr = self.addr;
                    self.stream
                        .set_read_timeout(Some(left))
                        .map_err(|e| io_error(addr, e, timeout))?;
                    let n = self
                        .stream
                        .read(self.recv.spare(needed))
                        .map_err(|e| io_error(addr, e, timeout))?;
                    if n == 0 {
                        let eof = io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "connection closed by the server",
                        );
                        return Err(io_error(addr, eof, timeout));
                    }
                    self.recv.filled(n);
                }
            }
        }
    }
}

/// The blocking client. Not thread-safe by design (`&mut self`); open one per
/// thread.
#[derive(Debug)]
pub struct Client {
    options: ClientOptions,
    /// The home node (the one `connect` or `set_home` reached).
    node: Node,
    /// The ring the home node answered, with the version it announced; `None`
    /// if it does not know RING.
    ring: Option<(Ring, u64)>,
    /// Destinations: `0..node.shard_count` are the home node's shards, in
    /// order; later ones are other nodes' shards, found through `slot_of`.
    slots: Vec<Slot>,
    /// Slot of (node id, shard) for nodes other than the home node.
    slot_of: HashMap<(u32, u32), usize>,
    /// Nodes that could not be connected to, and until when to route around them.
    unreachable: HashMap<u32, Instant>,
    /// Highest version seen in any reply; sent with every request.
    session: WireVersion,
    next_id: u64,
}

/// Callback for each answer of an exchange: the index of the request it
/// answers and the response (never an error response).
type OnAnswer<'f> = dyn FnMut(usize, Response<'_>) -> Result<(), ClientError> + 'f;

impl Client {
    /// Connects to the first reachable address of `addrs` ("host:port"), asks
    /// it HELLO (shard count and base port) and then RING (the cluster's
    /// ring; a node that answers RING with an error leaves the client without
    /// a ring, talking to that node only). Shard connections are opened on
    /// first use.
    pub fn connect(addrs: &[String], options: ClientOptions) -> Result<Client, ClientError> {
        let mut last = String::from("no address given");
        for addr in addrs {
            let connected = hello(addr, options).and_then(|node| {
                let mut client = Client {
                    options,
                    node,
                    ring: None,
                    slots: home_slots(node),
                    slot_of: HashMap::new(),
                    unreachable: HashMap::new(),
                    session: WireVersion::ZERO,
                    next_id: 1,
                };
                client.try_refresh_ring()?;
                Ok(client)
            });
            match connected {
                Ok(client) => return Ok(client),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(ClientError::NoReachableNode {
            addrs: addrs.to_vec(),
            last,
        })
    }

    /// Makes the node at `addr` ("host:port") the home node: HELLO, then RING
    /// from it. Every connection is closed and reopened lazily; the session
    /// version is kept (one client writing through two coordinators keeps its
    /// session guarantees). On error the client is left as it was.
    pub fn set_home(&mut self, addr: &str) -> Result<(), ClientError> {
        let node = hello(addr, self.options)?;
        let old = (
            self.node,
            std::mem::replace(&mut self.slots, home_slots(node)),
            std::mem::take(&mut self.slot_of),
            std::mem::take(&mut self.unreachable),
            self.ring.take(),
        );
        self.node = node;
        if let Err(e) = self.try_refresh_ring() {
            (
                self.node,
                self.slots,
                self.slot_of,
                self.unreachable,
                self.ring,
            ) = old;
            return Err(e);
        }
        Ok(())
    }

    /// The ring the home node answered, if it knows RING.
    #[must_use]
    pub fn ring(&self) -> Option<&Ring> {
        self.ring.as_ref().map(|(ring, _)| ring)
    }

    /// The ring version the home node announced with its ring.
    #[must_use]
    pub fn ring_version(&self) -> Option<u64> {
        self.ring.as_ref().map(|(_, version)| *version)
    }

    /// Asks the home node for the ring again. On failure the previous ring is
    /// kept (see [`Client::try_refresh_ring`] for the error).
    pub fn refresh_ring(&mut self) {
        // The previous ring stays in use: routing is an optimisation, and the
        // next request reports the node's failure if there is one.
        let _ = self.try_refresh_ring();
    }

    /// Asks the home node for the ring. An error answer (a node that does not
    /// know RING) clears the ring: the client then sends everything to the
    /// home node. A ring that `Ring::new` refuses is a protocol error (the
    /// previous ring is kept).
    pub fn try_refresh_ring(&mut self) -> Result<(), ClientError> {
        let mut answer: Option<Result<(Ring, u64), ClientError>> = None;
        let result = self.exchange(&[(0, Request::Ring)], &mut |_, r| match r {
            Response::Ring {
                version,
                replication_factor,
                nodes,
            } => {
                let built = nodes
                    .to_node_infos()
                    .map_err(ClientError::from)
                    .and_then(|nodes| {
                        Ring::new(nodes, replication_factor).map_err(|e| {
                            ClientError::Protocol(format!("the node's ring is invalid: {e}"))
                        })
                    });
                answer = Some(built.map(|ring| (ring, version)));
                Ok(())
            }
            other => Err(unexpected("RING", &other)),
        });
        match result {
            Ok(()) => {}
            Err(ClientError::Server { .. }) => {
                self.ring = None;
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        match answer {
            Some(Ok(ring)) => {
                self.ring = Some(ring);
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Err(ClientError::Protocol("no answer to RING".into())),
        }
    }

    /// Number of shards of the node.
    #[must_use]
    pub fn shard_count(&self) -> u32 {
        self.node.shard_count
    }

    /// The node's id (from HELLO).
    #[must_use]
    pub fn node_id(&self) -> u32 {
        self.node.node_id
    }

    /// The node's base port (from HELLO); shard `i` listens on `base + 1 + i`.
    #[must_use]
    pub fn base_port(&self) -> u16 {
        self.node.base_port
    }

    /// The highest version seen so far (sent as the session version).
    #[must_use]
    pub fn session(&self) -> WireVersion {
        self.session
    }

    /// Sets the consistency level of later requests.
    pub fn set_consistency(&mut self, c: Consistency) {
        self.options.consistency = c;
    }

    /// Round trip of a PING to shard 0.
    pub fn ping(&mut self) -> Result<Duration, ClientError> {
        let started = Instant::now();
        self.exchange(&[(0, Request::Ping)], &mut |_, r| match r {
            Response::Pong => Ok(()),
            other => Err(unexpected("PING", &other)),
        })?;
        Ok(started.elapsed())
    }

    /// Reads a key: `None` if absent.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<ValueOwned>, ClientError> {
        check_key(key)?;
        let mut out = None;
        self.single(key, Request::Get { key }, &mut |_, r| {
            out = match r {
                Response::Value {
                    value,
                    version,
                    expires_at_ms,
                } => Some(ValueOwned {
                    value: value.to_vec(),
                    version,
                    expires_at_ms,
                }),
                Response::NotFound => None,
                other => return Err(unexpected("GET", &other)),
            };
            Ok(())
        })?;
        Ok(out)
    }

    /// Writes a key, with an optional time to live; returns the new version.
    pub fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<WireVersion, ClientError> {
        check_key(key)?;
        check_value(value)?;
        let request = Request::Put {
            key,
            value,
            ttl_ms: ttl_ms(ttl),
        };
        self.written("PUT", key, request)
    }

    /// Deletes a key; returns the tombstone's version.
    pub fn delete(&mut self, key: &[u8]) -> Result<WireVersion, ClientError> {
        check_key(key)?;
        self.written("DELETE", key, Request::Delete { key })
    }

    fn written(
        &mut self,
        op: &str,
        key: &[u8],
        request: Request<'_>,
    ) -> Result<WireVersion, ClientError> {
        let mut out = WireVersion::ZERO;
        self.single(key, request, &mut |_, r| match r {
            Response::Written { version } => {
                out = version;
                Ok(())
            }
            other => Err(unexpected(op, &other)),
        })?;
        Ok(out)
    }

    /// Reads many keys; answers in the order of `keys`. Keys are split per
    /// shard (and into frames of at most `BATCH_KEYS_MAX` keys) and pipelined.
    /// MGET answers carry no expiry: `expires_at_ms` is reported as 0.
    pub fn mget(&mut self, keys: &[&[u8]]) -> Result<Vec<Option<ValueOwned>>, ClientError> {
        for key in keys {
            check_key(key)?;
        }
        let chunks = self.chunk(keys.len(), |i| (keys[i], 2 + keys[i].len()));
        let key_lists: Vec<Vec<&[u8]>> = chunks
            .iter()
            .map(|(_, idx)| idx.iter().map(|&i| keys[i]).collect())
            .collect();
        let requests: Vec<(u32, Request<'_>)> = chunks
            .iter()
            .zip(&key_lists)
            .map(|((shard, _), list)| {
                (
                    *shard,
                    Request::MGet {
                        keys: KeyList::new(list),
                    },
                )
            })
            .collect();
        let mut out: Vec<Option<ValueOwned>> = vec![None; keys.len()];
        self.exchange(&requests, &mut |i, r| match r {
            Response::Values { items } if items.len() == chunks[i].1.len() => {
                for (item, &slot) in items.iter().zip(&chunks[i].1) {
                    out[slot] = item.map(|(value, version)| ValueOwned {
                        value: value.to_vec(),
                        version,
                        expires_at_ms: 0,
                    });
                }
                Ok(())
            }
            other => Err(unexpected("MGET", &other)),
        })?;
        Ok(out)
    }

    /// Writes many keys with one optional TTL, split per shard and pipelined.
    /// Not atomic: on error some pairs may have been written.
    pub fn mput(
        &mut self,
        pairs: &[(&[u8], &[u8])],
        ttl: Option<Duration>,
    ) -> Result<(), ClientError> {
        for (key, value) in pairs {
            check_key(key)?;
            check_value(value)?;
        }
        let chunks = self.chunk(pairs.len(), |i| {
            (pairs[i].0, 6 + pairs[i].0.len() + pairs[i].1.len())
        });
        let pair_lists: Vec<Vec<(&[u8], &[u8])>> = chunks
            .iter()
            .map(|(_, idx)| idx.iter().map(|&i| pairs[i]).collect())
            .collect();
        let ttl_ms = ttl_ms(ttl);
        let requests: Vec<(u32, Request<'_>)> = chunks
            .iter()
            .zip(&pair_lists)
            .map(|((shard, _), list)| {
                let pairs = PairList::new(list);
                (*shard, Request::MPut { pairs, ttl_ms })
            })
            .collect();
        self.exchange(&requests, &mut |_, r| match r {
            Response::Written { .. } => Ok(()),
            other => Err(unexpected("MPUT", &other)),
        })
    }

    /// One page of a scan over every shard, merged in key order. Continue
    /// with `spec.after = page.next_after` until `next_after` is empty.
    pub fn scan(&mut self, spec: &ScanSpec) -> Result<ScanPageOwned, ClientError> {
        for key in [&spec.start, &spec.end, &spec.after] {
            check_key(key)?;
        }
        if spec.limit == 0 || spec.limit > SCAN_LIMIT_MAX {
            return Err(ClientError::InvalidRequest(format!(
                "scan limit {} is outside 1..={SCAN_LIMIT_MAX}",
                spec.limit
            )));
        }
        let request = Request::Scan {
            start: &spec.start,
            end: &spec.end,
            prefix: spec.prefix,
            limit: spec.limit,
            after: &spec.after,
        };
        let requests: Vec<(u32, Request<'_>)> =
            (0..self.node.shard_count).map(|s| (s, request)).collect();
        let mut pages: Vec<ScanPageOwned> = vec![ScanPageOwned::default(); requests.len()];
        self.exchange(&requests, &mut |i, r| match r {
            Response::ScanPage {
                entries,
                next_after,
            } => {
                pages[i] = ScanPageOwned {
                    entries: entries.iter().map(ScanEntryOwned::from).collect(),
                    next_after: next_after.to_vec(),
                };
                Ok(())
            }
            other => Err(unexpected("SCAN", &other)),
        })?;
        Ok(merge_scan_pages(pages, spec.limit as usize))
    }

    /// Compare-and-swap: writes `value` if the key matches `expect`.
    pub fn cas(
        &mut self,
        key: &[u8],
        expect: CasExpectOwned,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, ClientError> {
        check_key(key)?;
        check_value(value)?;
        let expect = match &expect {
            CasExpectOwned::Absent => CasExpect::Absent,
            CasExpectOwned::Version(v) => CasExpect::Version(*v),
            CasExpectOwned::Value(v) => {
                check_value(v)?;
                CasExpect::Value(v)
            }
        };
        let request = Request::Cas {
            key,
            expect,
            value,
            ttl_ms: ttl_ms(ttl),
        };
        let mut out = None;
        self.single(key, request, &mut |_, r| {
            out = Some(match r {
                Response::Written { version } => CasOutcome::Written(version),
                Response::CasMismatch { current } => CasOutcome::Mismatch {
                    current: current.map(|(v, ver)| (v.to_vec(), ver)),
                },
                other => return Err(unexpected("CAS", &other)),
            });
            Ok(())
        })?;
        out.ok_or_else(|| ClientError::Protocol("no answer to CAS".into()))
    }

    /// Adds `delta` (negative to decrement) to an integer value; returns the
    /// new value.
    pub fn incr(&mut self, key: &[u8], delta: i64) -> Result<i64, ClientError> {
        check_key(key)?;
        let mut out = 0;
        self.single(key, Request::Incr { key, delta }, &mut |_, r| match r {
            Response::Integer { value, .. } => {
                out = value;
                Ok(())
            }
            other => Err(unexpected("INCR", &other)),
        })?;
        Ok(out)
    }

    /// A key's remaining time to live.
    pub fn ttl(&mut self, key: &[u8]) -> Result<TtlState, ClientError> {
        check_key(key)?;
        let mut out = TtlState::Missing;
        self.single(key, Request::Ttl { key }, &mut |_, r| match r {
            Response::Ttl { state } => {
                out = state;
                Ok(())
            }
            other => Err(unexpected("TTL", &other)),
        })?;
        Ok(out)
    }

    /// Whether a key exists.
    pub fn exists(&mut self, key: &[u8]) -> Result<bool, ClientError> {
        check_key(key)?;
        let mut out = false;
        self.single(key, Request::Exists { key }, &mut |_, r| match r {
            Response::Bool(b) => {
                out = b;
                Ok(())
            }
            other => Err(unexpected("EXISTS", &other)),
        })?;
        Ok(out)
    }

    /// Every shard's statistics, each section headed by `# shard <i>`.
    pub fn stats(&mut self) -> Result<String, ClientError> {
        let requests: Vec<(u32, Request<'_>)> = (0..self.node.shard_count)
            .map(|s| (s, Request::Stats))
            .collect();
        let mut texts = vec![String::new(); requests.len()];
        self.exchange(&requests, &mut |i, r| match r {
            Response::Stats { text } => {
                texts[i] = String::from_utf8_lossy(text).into_owned();
                Ok(())
            }
            other => Err(unexpected("STATS", &other)),
        })?;
        let mut out = String::new();
        for (i, text) in texts.iter().enumerate() {
            out.push_str(&format!("# shard {i}\n{text}"));
            if !text.is_empty() && !text.ends_with('\n') {
                out.push('\n');
            }
        }
        Ok(out)
    }

    /// The home node's shard (= slot) that owns `key`.
    fn shard_of(&self, key: &[u8]) -> u32 {
        shard_for(token(key), self.node.shard_count)
    }

    /// The slot a single-key request for `key` goes to: the home node's
    /// owning shard, or (token-aware, with a ring of several nodes) the owning
    /// shard of the replica [`pick_node`] chooses, whose connection is opened
    /// here so that a node that cannot be reached is routed around before
    /// anything is sent.
    fn route(&mut self, key: &[u8]) -> u32 {
        let token = token(key);
        let home_slot = shard_for(token, self.node.shard_count);
        if !self.options.token_aware {
            return home_slot;
        }
        let home = self.node.node_id;
        let tries = self
            .ring
            .as_ref()
            .map_or(0, |(ring, _)| ring.replication_factor());
        for _ in 0..tries {
            let Some((ring, _)) = self.ring.as_ref().filter(|(r, _)| r.nodes().len() > 1) else {
                return home_slot;
            };
            let now = Instant::now();
            let unreachable = &self.unreachable;
            let id = pick_node(ring, token, home, |id| {
                unreachable.get(&id).is_none_or(|until| now >= *until)
            });
            let Some(node) = ring.node(id).filter(|_| id != home) else {
                return home_slot;
            };
            let shard = shard_for(token, node.shards);
            let slot = match self.slot_of.get(&(id, shard)) {
                Some(&slot) => Some(slot),
                None => self.add_slot(id, shard),
            };
            if let Some(slot) = slot {
                if self.open(slot).is_ok() {
                    // Slots are bounded by nodes x shards, far below u32::MAX.
                    return slot as u32;
                }
            }
            let retry_at = now + Duration::from_millis(CLIENT_NODE_RETRY_DELAY_MS);
            self.unreachable.insert(id, retry_at);
        }
        home_slot
    }

    /// Adds the slot of `shard` of ring node `id` (not the home node); `None`
    /// if the node's host does not resolve.
    fn add_slot(&mut self, id: u32, shard: u32) -> Option<usize> {
        let (ring, _) = self.ring.as_ref()?;
        let node = ring.node(id)?;
        let resolve = |port: u16| (node.host.as_str(), port).to_socket_addrs().ok()?.next();
        let own = resolve(shard_port(node.port, shard))?;
        let fallback = resolve(node.port);
        self.slots.push(Slot {
            node_id: id,
            own,
            fallback,
            conn: None,
        });
        let slot = self.slots.len() - 1;
        self.slot_of.insert((id, shard), slot);
        Some(slot)
    }

    /// Sends one single-key request to the slot [`Client::route`] picks and
    /// hands its answer to `on`. Idempotent requests are retried after a lost
    /// connection or a timeout (routed again: a replica that died is then
    /// routed around); writes are never retried.
    fn single(
        &mut self,
        key: &[u8],
        request: Request<'_>,
        on: &mut OnAnswer<'_>,
    ) -> Result<(), ClientError> {
        let retries = if request.is_idempotent() {
            self.options.read_retries
        } else {
            0
        };
        let mut attempt = 0;
        loop {
            let slot = self.route(key);
            match self.exchange_once(&[(slot, request)], on) {
                Err(e) if e.is_connection_loss() && attempt < retries => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(10 << attempt.min(4)));
                }
                result => return result,
            }
        }
    }

    /// Groups items by shard into chunks of at most `BATCH_KEYS_MAX` items and
    /// `CLIENT_BATCH_SIZE_MAX` encoded bytes. `item(i)` gives the routing key
    /// and encoded size of item `i`. Returns `(shard, item indexes)`.
    fn chunk<'k>(
        &self,
        count: usize,
        item: impl Fn(usize) -> (&'k [u8], usize),
    ) -> Vec<(u32, Vec<usize>)> {
        let mut open: Vec<Option<(usize, usize)>> = vec![None; self.node.shard_count as usize];
        let mut chunks: Vec<(u32, Vec<usize>)> = Vec::new();
        for i in 0..count {
            let (key, size) = item(i);
            let shard = self.shard_of(key);
            let slot = &mut open[shard as usize];
            let fits = matches!(slot, Some((c, bytes)) if chunks[*c].1.len() < BATCH_KEYS_MAX && *bytes + size <= CLIENT_BATCH_SIZE_MAX);
            if !fits {
                chunks.push((shard, Vec::new()));
                *slot = Some((chunks.len() - 1, 0));
            }
            if let Some((c, bytes)) = slot {
                chunks[*c].1.push(i);
                *bytes += size;
            }
        }
        chunks
    }

    /// Sends `requests` (each to its shard), pipelined, and hands every answer
    /// to `on` with the request's index. Error responses become
    /// `ClientError::Server` (the first one is returned after all answers were
    /// read). Idempotent exchanges are retried after a lost connection or a
    /// timeout.
    ///
    /// Requests go out in waves of at most one request per shard: a wave's
    /// answers are read before the next wave is written, so neither side can
    /// block writing while the other is blocked writing too (a large MGET's
    /// answers could otherwise fill both socket buffers).
    fn exchange(
        &mut self,
        requests: &[(u32, Request<'_>)],
        on: &mut OnAnswer<'_>,
    ) -> Result<(), ClientError> {
        let mut waves: Vec<Vec<usize>> = Vec::new();
        let mut sent_to = vec![0usize; self.slots.len()];
        for (i, (shard, _)) in requests.iter().enumerate() {
            let wave = sent_to.get_mut(*shard as usize).map_or(0, |n| {
                *n += 1;
                *n - 1
            });
            if waves.len() <= wave {
                waves.push(Vec::new());
            }
            waves[wave].push(i);
        }
        let mut first_error = None;
        for wave in waves {
            let batch: Vec<(u32, Request<'_>)> = wave.iter().map(|&i| requests[i]).collect();
            let result = self.exchange_wave(&batch, &mut |j, r| on(wave[j], r));
            match result {
                Ok(()) => {}
                Err(e @ ClientError::Server { .. }) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// One wave of [`Client::exchange`], retried if idempotent.
    fn exchange_wave(
        &mut self,
        requests: &[(u32, Request<'_>)],
        on: &mut OnAnswer<'_>,
    ) -> Result<(), ClientError> {
        let idempotent = requests.iter().all(|(_, r)| r.is_idempotent());
        let retries = if idempotent {
            self.options.read_retries
        } else {
            0
        };
        let mut attempt = 0;
        loop {
            match self.exchange_once(requests, on) {
                Err(e) if e.is_connection_loss() && attempt < retries => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(10 << attempt.min(4)));
                }
                result => return result,
            }
        }
    }

    fn exchange_once(
        &mut self,
        requests: &[(u32, Request<'_>)],
        on: &mut OnAnswer<'_>,
    ) -> Result<(), ClientError> {
        let first_id = self.next_id;
        self.next_id += requests.len() as u64;
        let deadline = Instant::now() + self.options.timeout;
        let mut frames: Vec<Vec<u8>> = vec![Vec::new(); self.slots.len()];
        let mut pending = vec![0usize; self.slots.len()];
        for (i, (shard, request)) in requests.iter().enumerate() {
            let header = RequestHeader {
                id: first_id + i as u64,
                consistency: self.options.consistency,
                session: self.session,
            };
            assert!(
                (*shard as usize) < frames.len(),
                "request routed to shard {shard} of {}",
                frames.len()
            );
            encode_request(&header, request, &mut frames[*shard as usize]);
            pending[*shard as usize] += 1;
        }
        let result = self.send_and_receive(&frames, &mut pending, first_id, requests, deadline, on);
        for (slot, s) in self.slots.iter_mut().enumerate() {
            // A connection with unread answers, or one the server is closing,
            // cannot be reused: its next answer would belong to this exchange.
            let conn = &mut s.conn;
            if conn.as_ref().is_some_and(|c| c.broken) || (result.is_err() && pending[slot] > 0) {
                *conn = None;
            }
        }
        result
    }

    fn send_and_receive(
        &mut self,
        frames: &[Vec<u8>],
        pending: &mut [usize],
        first_id: u64,
        requests: &[(u32, Request<'_>)],
        deadline: Instant,
        on: &mut OnAnswer<'_>,
    ) -> Result<(), ClientError> {
        let timeout = self.options.timeout;
        for (shard, bytes) in frames.iter().enumerate() {
            if !bytes.is_empty() {
                self.open(shard)?.send(bytes, deadline, timeout)?;
            }
        }
        let mut answered = vec![false; requests.len()];
        let mut first_error = None;
        for (shard, left) in pending.iter_mut().enumerate() {
            while *left > 0 {
                // Opened by the send loop above; borrowed by field so the
                // session can be updated while the frame is borrowed.
                let conn = self
                    .slots
                    .get_mut(shard)
                    .and_then(|s| s.conn.as_mut())
                    .ok_or_else(|| {
                        ClientError::Protocol(format!("no connection to shard {shard}"))
                    })?;
                let len = conn.recv_frame_len(deadline, timeout)?;
                let (id, response) =
                    match decode_response(&conn.recv.data()[..len], FRAME_SIZE_MAX_DEFAULT)? {
                        Decoded::Frame { frame, .. } => frame,
                        Decoded::Incomplete { .. } => {
                            return Err(ClientError::Protocol("frame became incomplete".into()))
                        }
                    };
                if let Response::Error { status, message } = response {
                    if id == 0 {
                        // A connection-level error: the server closes the stream.
                        conn.broken = true;
                        return Err(server_error(status, message));
                    }
                }
                let index = id.wrapping_sub(first_id) as usize;
                let expected = index < requests.len()
                    && requests[index].0 as usize == shard
                    && !answered[index];
                if !expected {
                    return Err(ClientError::Protocol(format!(
                        "answer with unexpected id {id} on the connection of shard {shard}"
                    )));
                }
                answered[index] = true;
                *left -= 1;
                if let Some(v) = highest_version(&response) {
                    self.session = self.session.max(v);
                }
                let outcome = match response {
                    Response::Error { status, message } => Err(server_error(status, message)),
                    other => on(index, other),
                };
                conn.recv.consume(len);
                match outcome {
                    Ok(()) => {}
                    Err(e @ ClientError::Server { .. }) => {
                        first_error.get_or_insert(e);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The connection of `slot`, opened if needed (the shard's own port
    /// first, the node's shared port as a fallback: the server forwards).
    fn open(&mut self, slot: usize) -> Result<&mut Conn, ClientError> {
        let timeout = self.options.timeout;
        let slot = self
            .slots
            .get_mut(slot)
            .ok_or_else(|| ClientError::Protocol(format!("no connection slot {slot}")))?;
        if slot.conn.is_none() {
            let conn = match (Conn::open(slot.own, timeout), slot.fallback) {
                (Ok(c), _) => c,
                (Err(_), Some(fallback)) => Conn::open(fallback, timeout)?,
                (Err(e), None) => return Err(e),
            };
            slot.conn = Some(conn);
        }
        slot.conn
            .as_mut()
            .ok_or_else(|| ClientError::Protocol(format!("no connection to node {}", slot.node_id)))
    }
}

/// The slots of the home node's shards, in shard order: each shard's own
/// port, with the node's shared port as fallback.
fn home_slots(node: Node) -> Vec<Slot> {
    (0..node.shard_count)
        .map(|shard| Slot {
            node_id: node.node_id,
            own: SocketAddr::new(node.addr.ip(), shard_port(node.base_port, shard)),
            fallback: Some(node.addr),
            conn: None,
        })
        .collect()
}

/// Sends HELLO to `addr` and reads the node's description.
fn hello(addr: &str, options: ClientOptions) -> Result<Node, ClientError> {
    let resolved: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|source| ClientError::Io {
            addr: addr.to_string(),
            source,
        })?
        .collect();
    let mut last = ClientError::InvalidRequest(format!("{addr} resolves to no address"));
    for sa in resolved {
        match hello_one(sa, options) {
            Ok(node) => return Ok(node),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn hello_one(addr: SocketAddr, options: ClientOptions) -> Result<Node, ClientError> {
    let deadline = Instant::now() + options.timeout;
    let mut conn = Conn::open(addr, options.timeout)?;
    let mut out = Vec::new();
    let header = RequestHeader {
        id: 1,
        consistency: options.consistency,
        session: WireVersion::ZERO,
    };
    encode_request(&header, &Request::Hello, &mut out);
    conn.send(&out, deadline, options.timeout)?;
    let len = conn.recv_frame_len(deadline, options.timeout)?;
    match decode_response(&conn.recv.data()[..len], FRAME_SIZE_MAX_DEFAULT)? {
        Decoded::Frame {
            frame:
                (
                    1,
                    Response::Hello {
                        node_id,
                        shard_count,
                        base_port,
                        ..
                    },
                ),
            ..
        } => Ok(Node {
            addr,
            node_id,
            shard_count,
            base_port,
        }),
        Decoded::Frame {
            frame: (_, Response::Error { status, message }),
            ..
        } => Err(server_error(status, message)),
        Decoded::Frame { frame: (id, r), .. } => Err(ClientError::Protocol(format!(
            "expected HELLO for id 1, got {} for id {id}",
            kind_name(&r)
        ))),
        Decoded::Incomplete { .. } => Err(ClientError::Protocol("frame became incomplete".into())),
    }
}

fn check_key(key: &[u8]) -> Result<(), ClientError> {
    if key.len() > KEY_SIZE_MAX {
        return Err(ClientError::InvalidRequest(format!(
            "key of {} bytes exceeds the limit of {KEY_SIZE_MAX} bytes",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), ClientError> {
    if value.len() > VALUE_SIZE_MAX {
        return Err(ClientError::InvalidRequest(format!(
            "value of {} bytes exceeds the limit of {VALUE_SIZE_MAX} bytes",
            value.len()
        )));
    }
    Ok(())
}

/// A TTL on the wire: 0 = none, otherwise at least 1 ms (a sub-millisecond TTL
/// must not turn into "never expires").
fn ttl_ms(ttl: Option<Duration>) -> u64 {
    match ttl {
        None => 0,
        Some(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1),
    }
}

fn server_error(status: crate::client_frame::Status, message: &[u8]) -> ClientError {
    ClientError::Server {
        status,
        message: String::from_utf8_lossy(message).into_owned(),
    }
}

fn kind_name(r: &Response<'_>) -> &'static str {
    match r {
        Response::Pong => "PONG",
        Response::Hello { .. } => "HELLO",
        Response::Value { .. } => "VALUE",
        Response::NotFound => "NOT_FOUND",
        Response::Written { .. } => "WRITTEN",
        Response::Values { .. } => "VALUES",
        Response::ScanPage { .. } => "SCAN_PAGE",
        Response::CasMismatch { .. } => "CAS_MISMATCH",
        Response::Integer { .. } => "INTEGER",
        Response::Ttl { .. } => "TTL",
        Response::Bool(_) => "BOOL",
        Response::Stats { .. } => "STATS",
        Response::Ring { .. } => "RING",
        Response::Error { .. } => "ERROR",
    }
}

fn unexpected(op: &str, r: &Response<'_>) -> ClientError {
    match r {
        Response::NotFound => ClientError::Server {
            status: crate::client_frame::Status::NotFound,
            message: format!("{op}: key not found"),
        },
        _ => ClientError::Protocol(format!("unexpected {} answer to {op}", kind_name(r))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_below_a_millisecond_still_expires() {
        assert_eq!(ttl_ms(None), 0);
        assert_eq!(ttl_ms(Some(Duration::from_micros(10))), 1);
        assert_eq!(ttl_ms(Some(Duration::from_secs(2))), 2000);
    }
}
