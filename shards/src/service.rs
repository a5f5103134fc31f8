//! Executing client requests on a shard: the local fast path for keys this
//! shard owns, forwarding for keys another shard owns, and the fan-out of
//! multi-key requests (MGET, MPUT, SCAN) to every owner.
//!
//! Invariants:
//! - Every write is stamped by the owner shard's clock above the request's
//!   session version (and, for read-modify-write ops, above the version read).
//! - PUT, DELETE, CAS, INCR and the local part of MPUT hold the key lock from
//!   their read (if any) to the end of their write, so a CAS or INCR never
//!   interleaves with another write of the same key. A PUT or DELETE run at
//!   once ([`write_now`]) takes no lock: it runs only when no one holds or
//!   waits for its key's lock, and it does not await between its stamp and
//!   its memtable insert, which is all the lock guarantees.
//! - Nothing is answered before the store acknowledged it (durable per the
//!   node's durability mode).
//! - A forwarded request travels as an owned copy of its frame; its answer
//!   comes back as an encoded frame appended to the connection's output.

use crate::clock::StampError;
use crate::forward::{Answer, Call};
use crate::shard::{Shard, ShardCounters};
use crate::store::BatchWrite;
use ringkv_cluster::consistency::Level;
use ringkv_net::client_frame::{
    decode_request, encode_response, CasExpect, Consistency, Decoded, Request, RequestHeader,
    Response, Status, TtlState, WireVersion,
};
use ringkv_storage::wal::Lsn;
use ringkv_storage::{Record, RecordRef, Version};
use std::cell::RefCell;
use std::rc::Rc;

/// Which keys a SCAN covers, decided by the port the connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Accepted on a shard's own port (`port + 1 + i`): a SCAN covers that
    /// shard's keys only. Shard-aware clients scan every shard port and merge.
    Shard,
    /// Accepted on the node's port: a SCAN covers every shard of the node
    /// (fanned out and merged here).
    Node,
}

/// The owned result of one request, encoded once it is known.
#[derive(Debug)]
pub enum Outcome {
    /// A live value.
    Value(Record),
    /// No live value.
    NotFound,
    /// Written with this version.
    Written(Version),
    /// CAS found another state (live value and version, or absent).
    CasMismatch(Option<(Vec<u8>, Version)>),
    /// INCR result.
    Integer(i64, Version),
    /// TTL state.
    Ttl(TtlState),
    /// EXISTS answer.
    Bool(bool),
    /// Failure with a status.
    Error(Status, String),
}

/// Converts a storage version to its wire form.
pub fn wire(v: Version) -> WireVersion {
    WireVersion {
        hlc: v.hlc,
        node: v.node,
    }
}

/// Converts a wire version to the storage form.
pub fn unwire(v: WireVersion) -> Version {
    Version {
        hlc: v.hlc,
        node: v.node,
    }
}

/// Encodes `outcome` as the answer to request `id`.
pub fn encode_outcome(id: u64, outcome: &Outcome, out: &mut Vec<u8>) {
    let resp = match outcome {
        Outcome::Value(r) => Response::Value {
            value: r.value.as_deref().unwrap_or_default(),
            version: wire(r.version),
            expires_at_ms: r.expires_at_ms,
        },
        Outcome::NotFound => Response::NotFound,
        Outcome::Written(v) => Response::Written { version: wire(*v) },
        Outcome::CasMismatch(cur) => Response::CasMismatch {
            current: cur.as_ref().map(|(v, ver)| (v.as_slice(), wire(*ver))),
        },
        Outcome::Integer(value, v) => Response::Integer {
            value: *value,
            version: wire(*v),
        },
        Outcome::Ttl(state) => Response::Ttl { state: *state },
        Outcome::Bool(b) => Response::Bool(*b),
        Outcome::Error(status, msg) => Response::Error {
            status: *status,
            message: msg.as_bytes(),
        },
    };
    encode_response(id, &resp, out);
}

/// Encodes an error answer.
pub fn encode_error(id: u64, status: Status, message: &str, out: &mut Vec<u8>) {
    encode_response(
        id,
        &Response::Error {
            status,
            message: message.as_bytes(),
        },
        out,
    );
}

pub(crate) fn storage_failure(shard: &Shard, e: &ringkv_storage::Error) -> Outcome {
    use ringkv_storage::Error as E;
    match e {
        E::KeyTooLarge { .. } => Outcome::Error(Status::KeyTooLarge, e.to_string()),
        E::ValueTooLarge { .. } => Outcome::Error(Status::ValueTooLarge, e.to_string()),
        _ => {
            ShardCounters::bump(&shard.counters.storage_errors);
            tracing::warn!(shard = shard.id, "storage error: {e}");
            Outcome::Error(Status::StorageError, e.to_string())
        }
    }
}

/// The wall clock in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    crate::clock::wall_ms()
}

pub(crate) fn expires_at(now: u64, ttl_ms: u64) -> u64 {
    if ttl_ms == 0 {
        0
    } else {
        now.saturating_add(ttl_ms)
    }
}

/// The live value of a record at `now`, if any.
pub(crate) fn live(record: Option<Record>, now: u64) -> Option<Record> {
    record.filter(|r| !r.is_dead_at(now))
}

/// Checks a key and value against the node's configured limits (the decoder
/// already checked the protocol's).
pub(crate) fn check_sizes(shard: &Shard, key: &[u8], value: Option<&[u8]>) -> Result<(), Outcome> {
    let c = &shard.config;
    if key.len() > c.key_size_max {
        return Err(Outcome::Error(
            Status::KeyTooLarge,
            format!(
                "key of {} bytes exceeds the limit of {} bytes",
                key.len(),
                c.key_size_max
            ),
        ));
    }
    if let Some(v) = value {
        if v.len() > c.value_size_max {
            return Err(Outcome::Error(
                Status::ValueTooLarge,
                format!(
                    "value of {} bytes exceeds the limit of {} bytes",
                    v.len(),
                    c.value_size_max
                ),
            ));
        }
    }
    Ok(())
}

/// Stamps a write version above `session` and `floor`.
pub(crate) fn stamp(
    shard: &Shard,
    session: Version,
    floor: Option<Version>,
) -> Result<Version, Outcome> {
    stamp_at(shard, session, floor, now_ms())
}

/// [`stamp`] with the wall clock already read (`now_ms`), for callers that
/// read it once for many requests.
pub(crate) fn stamp_at(
    shard: &Shard,
    session: Version,
    floor: Option<Version>,
    now_ms: u64,
) -> Result<Version, Outcome> {
    let mut clock = shard.clock.borrow_mut();
    if let Some(f) = floor {
        clock.observe(f);
    }
    clock.stamp(now_ms, session).map_err(|e| match e {
        StampError::SessionAhead(e) => Outcome::Error(Status::BadRequest, e.to_string()),
        StampError::Lease { .. } => {
            tracing::error!(shard = shard.id, "{e}");
            Outcome::Error(Status::StorageError, e.to_string())
        }
    })
}

/// The coordinator level for a request's consistency (level 0 = the node's default).
pub(crate) fn level_of(shard: &Shard, c: Consistency) -> Level {
    match c {
        Consistency::Default => shard.config.cluster.default_consistency,
        Consistency::One => Level::One,
        Consistency::Quorum => Level::Quorum,
        Consistency::All => Level::All,
    }
}

/// The highest-version record of `key`: from this shard's store on a
/// standalone node, from R replicas at `level` in a cluster (storage and
/// quorum errors become an outcome).
pub(crate) async fn read(
    shard: &Shard,
    key: &[u8],
    level: Consistency,
) -> Result<Option<Record>, Outcome> {
    if let Some(cluster) = shard.cluster() {
        return cluster.read(key, level_of(shard, level)).await;
    }
    shard
        .store
        .get_record(key)
        .await
        .map_err(|e| storage_failure(shard, &e))
}

/// Writes a value: to this shard's store on a standalone node, to the
/// replicas at `level` in a cluster. Acknowledged means durable (per the
/// durability mode) on one or W replicas.
pub(crate) async fn put_value(
    shard: &Shard,
    key: &[u8],
    value: &[u8],
    version: Version,
    expires_at_ms: u64,
    level: Consistency,
) -> Result<(), Outcome> {
    if let Some(cluster) = shard.cluster() {
        let record = Record::put(version, value.to_vec(), expires_at_ms);
        return cluster.write(key, record, level_of(shard, level)).await;
    }
    shard
        .store
        .put(key, value, version, expires_at_ms)
        .await
        .map_err(|e| storage_failure(shard, &e))
}

/// Writes a tombstone, like [`put_value`].
pub(crate) async fn delete_key(
    shard: &Shard,
    key: &[u8],
    version: Version,
    level: Consistency,
) -> Result<(), Outcome> {
    if let Some(cluster) = shard.cluster() {
        let record = Record {
            version,
            expires_at_ms: 0,
            value: None,
        };
        return cluster.write(key, record, level_of(shard, level)).await;
    }
    shard
        .store
        .delete(key, version)
        .await
        .map_err(|e| storage_failure(shard, &e))
}

/// Executes a single-key request on the shard that owns the key.
pub async fn execute_key(shard: &Shard, header: &RequestHeader, req: &Request<'_>) -> Outcome {
    match execute_key_inner(shard, header, req).await {
        Ok(o) | Err(o) => o,
    }
}

async fn execute_key_inner(
    shard: &Shard,
    header: &RequestHeader,
    req: &Request<'_>,
) -> Result<Outcome, Outcome> {
    let session = unwire(header.session);
    let level = header.consistency;
    let now = now_ms();
    match *req {
        Request::Get { key } => {
            check_sizes(shard, key, None)?;
            Ok(live(read(shard, key, level).await?, now).map_or(Outcome::NotFound, Outcome::Value))
        }
        Request::Exists { key } => {
            check_sizes(shard, key, None)?;
            Ok(Outcome::Bool(
                live(read(shard, key, level).await?, now).is_some(),
            ))
        }
        Request::Ttl { key } => {
            check_sizes(shard, key, None)?;
            let state = match live(read(shard, key, level).await?, now) {
                None => TtlState::Missing,
                Some(r) if r.expires_at_ms == 0 => TtlState::NoExpiry,
                Some(r) => TtlState::RemainingMs(r.expires_at_ms.saturating_sub(now)),
            };
            Ok(Outcome::Ttl(state))
        }
        Request::Delete { key } => {
            check_sizes(shard, key, None)?;
            let _guard = shard.locks.lock(key).await;
            let version = stamp_at(shard, session, None, now)?;
            delete_key(shard, key, version, level).await?;
            Ok(Outcome::Written(version))
        }
        Request::Put { key, value, ttl_ms } => {
            check_sizes(shard, key, Some(value))?;
            let _guard = shard.locks.lock(key).await;
            let version = stamp_at(shard, session, None, now)?;
            put_value(shard, key, value, version, expires_at(now, ttl_ms), level).await?;
            Ok(Outcome::Written(version))
        }
        Request::Cas {
            key,
            expect,
            value,
            ttl_ms,
        } => {
            check_sizes(shard, key, Some(value))?;
            let _guard = shard.locks.lock(key).await;
            let record = read(shard, key, level).await?;
            let floor = record.as_ref().map(|r| r.version);
            let current = live(record, now_ms());
            let matches = match (&expect, &current) {
                (CasExpect::Absent, None) => true,
                (CasExpect::Version(v), Some(r)) => unwire(*v) == r.version,
                (CasExpect::Value(v), Some(r)) => r.value.as_deref() == Some(*v),
                _ => false,
            };
            if !matches {
                return Ok(Outcome::CasMismatch(
                    current.and_then(|r| r.value.map(|v| (v, r.version))),
                ));
            }
            let version = stamp(shard, session, floor)?;
            let expires = expires_at(now_ms(), ttl_ms);
            put_value(shard, key, value, version, expires, level).await?;
            Ok(Outcome::Written(version))
        }
        Request::Incr { key, delta } => {
            check_sizes(shard, key, None)?;
            let _guard = shard.locks.lock(key).await;
            let record = read(shard, key, level).await?;
            let floor = record.as_ref().map(|r| r.version);
            let (current, expires) = match live(record, now_ms()) {
                None => (0i64, 0u64),
                Some(r) => {
                    // Counters are decimal text, as in Redis, so the binary
                    // protocol and RESP read and write the same counters.
                    let bytes = r.value.as_deref().unwrap_or_default();
                    let Some(n) = ringkv_net::resp::num::parse_i64(bytes) else {
                        return Err(Outcome::Error(
                            Status::NotAnInteger,
                            format!(
                                "the value ({} bytes) is not a decimal signed 64-bit integer",
                                bytes.len()
                            ),
                        ));
                    };
                    (n, r.expires_at_ms)
                }
            };
            let Some(next) = current.checked_add(delta) else {
                return Err(Outcome::Error(
                    Status::Overflow,
                    format!("{current} + {delta} overflows a signed 64-bit integer"),
                ));
            };
            let version = stamp(shard, session, floor)?;
            let text = next.to_string();
            put_value(shard, key, text.as_bytes(), version, expires, level).await?;
            Ok(Outcome::Integer(next, version))
        }
        _ => Err(Outcome::Error(
            Status::Internal,
            "not a single-key request".into(),
        )),
    }
}

/// Answers `req` at once, with no future and no allocation beyond the
/// answer, when that gives exactly what [`handle`] would: a GET of a key this
/// shard owns on a standalone node whose record the store knows without
/// I/O (see [`read_at_once`]). Returns
/// false (having done nothing) otherwise; then call `handle`. `now_ms` is
/// the wall clock read once for the whole batch (expiry has millisecond
/// granularity; a batch runs in microseconds).
pub fn answer_now(
    shard: &Shard,
    header: &RequestHeader,
    req: &Request<'_>,
    now_ms: u64,
    out: &RefCell<Vec<u8>>,
) -> bool {
    let Request::Get { key } = *req else {
        return false;
    };
    // Encoded straight from the cache entry: no copy of the value into a
    // record of its own (an allocation, a copy and a free per GET).
    let answered = read_at_once(shard, key, now_ms, |record| {
        let resp = match record {
            Some(record) => Response::Value {
                value: record.value.unwrap_or_default(),
                version: wire(record.version),
                expires_at_ms: record.expires_at_ms,
            },
            None => Response::NotFound,
        };
        encode_response(header.id, &resp, &mut out.borrow_mut());
    });
    answered.is_some()
}

/// Reads `key` at once, with no future and no copy of the value, when that
/// gives exactly what a read through the store would: a key this shard owns
/// on a standalone node, within the size limits, whose record the store
/// knows without I/O (the row cache or the memtables hold it, see
/// [`crate::store::Store::read_now`]). `f` gets the live record (`None`: no live value,
/// as of `now_ms`) and the request is counted; `None` (having done nothing)
/// when the read must take the slow path. Shared by both protocols, so a GET
/// means the same in each.
pub(crate) fn read_at_once<R>(
    shard: &Shard,
    key: &[u8],
    now_ms: u64,
    f: impl FnOnce(Option<RecordRef<'_>>) -> R,
) -> Option<R> {
    if shard.has_cluster()
        || shard.owner_of(key) != shard.id
        || check_sizes(shard, key, None).is_err()
    {
        return None;
    }
    let answer = shard.store.read_now(key, |record| {
        f(record.filter(|r| r.value.is_some() && !r.is_dead_at(now_ms)))
    })?;
    ShardCounters::bump(&shard.counters.requests);
    Some(answer)
}

/// A put or delete [`write_at_once`] did: in the WAL and the memtable,
/// visible to reads, durable once the WAL is through `lsn`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WrittenAtOnce {
    /// The version the write was stamped with.
    pub(crate) version: Version,
    /// Its place in the WAL (see [`crate::store::Store::commit`]).
    pub(crate) lsn: Lsn,
}

/// Writes `value` (`None`: a tombstone) for `key`, expiring at
/// `expires_at_ms` (0: never), at once, with no task and
/// no lock, when that gives exactly what the queued path would: a key this
/// shard owns on a standalone node, within the size limits, that no other
/// request holds or waits to lock, and a store that takes the write without
/// waiting. Everything from the stamp to the memtable insert happens here
/// with no await, which is what the key lock guarantees the queued path.
/// `None` (having done nothing) when the write must take the queued path;
/// `Some(Err)` when the store refused it. The write is counted as a
/// request. Nothing may be acknowledged before
/// [`crate::store::Store::is_durable`] or `commit` says its `lsn` is
/// durable.
pub(crate) fn write_at_once(
    shard: &Shard,
    key: &[u8],
    value: Option<&[u8]>,
    session: Version,
    expires_at_ms: u64,
    now_ms: u64,
) -> Option<Result<WrittenAtOnce, Outcome>> {
    if shard.has_cluster()
        || shard.owner_of(key) != shard.id
        || check_sizes(shard, key, value).is_err()
        || !shard.locks.is_free(key)
    {
        return None;
    }
    // A stamp refused here is refused again, with its error, by the queued path.
    let version = stamp_at(shard, session, None, now_ms).ok()?;
    let written = shard
        .store
        .try_write_now(key, value, version, expires_at_ms)?;
    ShardCounters::bump(&shard.counters.requests);
    Some(
        written
            .map(|lsn| WrittenAtOnce { version, lsn })
            .map_err(|e| storage_failure(shard, &e)),
    )
}

/// What [`write_now`] did with a request.
pub(crate) enum WrittenNow<'b> {
    /// Nothing: the request is not such a write, or it would have to wait
    /// (a lock held on its key, a full memtable). Run it with [`handle`].
    NotTaken,
    /// Written and answered (durable at once under the durability mode, or
    /// refused with an error answer).
    Answered,
    /// Written (in the WAL and the memtable, visible to reads); the future
    /// waits until it is durable, then appends the answer.
    Committing(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'b>>),
}

/// Runs a PUT or DELETE at once, with no task and no lock, when that gives
/// exactly what [`handle`] would: a key this shard owns on a standalone node,
/// within the size limits, that no other request holds or waits to lock,
/// and a store that takes the write without waiting. Everything from the
/// stamp to the memtable insert happens here with no await, which is what
/// the key lock guarantees for [`handle`]; nothing is answered before the
/// write is durable per the durability mode. `now_ms` is the wall clock read
/// once for the whole batch.
pub(crate) fn write_now<'b>(
    shard: &'b Shard,
    header: &RequestHeader,
    req: &Request<'_>,
    now_ms: u64,
    out: &'b RefCell<Vec<u8>>,
) -> WrittenNow<'b> {
    let (key, value, ttl_ms) = match *req {
        Request::Put { key, value, ttl_ms } => (key, Some(value), ttl_ms),
        Request::Delete { key } => (key, None, 0),
        _ => return WrittenNow::NotTaken,
    };
    let session = unwire(header.session);
    let expires = if value.is_some() {
        expires_at(now_ms, ttl_ms)
    } else {
        0
    };
    let Some(written) = write_at_once(shard, key, value, session, expires, now_ms) else {
        return WrittenNow::NotTaken;
    };
    let id = header.id;
    let WrittenAtOnce { version, lsn } = match written {
        Ok(w) => w,
        Err(outcome) => {
            encode_outcome(id, &outcome, &mut out.borrow_mut());
            return WrittenNow::Answered;
        }
    };
    if shard.store.is_durable(lsn) {
        encode_outcome(id, &Outcome::Written(version), &mut out.borrow_mut());
        return WrittenNow::Answered;
    }
    WrittenNow::Committing(Box::pin(async move {
        let outcome = match shard.store.commit(lsn).await {
            Ok(()) => Outcome::Written(version),
            Err(e) => storage_failure(shard, &e),
        };
        encode_outcome(id, &outcome, &mut out.borrow_mut());
    }))
}

/// Answers one decoded request, appending the encoded answer to `out`.
/// `raw` is the request's complete frame (forwarded as is when another shard
/// owns the key).
pub async fn handle(
    shard: &Rc<Shard>,
    scope: Scope,
    header: RequestHeader,
    req: Request<'_>,
    raw: &[u8],
    out: &RefCell<Vec<u8>>,
) {
    ShardCounters::bump(&shard.counters.requests);
    let id = header.id;
    if let Some(key) = req.key() {
        let owner = shard.owner_of(key);
        if owner == shard.id {
            let outcome = execute_key(shard, &header, &req).await;
            encode_outcome(id, &outcome, &mut out.borrow_mut());
        } else {
            match shard.call(owner, Call::Frame(raw.to_vec())).await {
                Answer::Frame(bytes) => out.borrow_mut().extend_from_slice(&bytes),
                other => encode_unexpected(id, other, &mut out.borrow_mut()),
            }
        }
        return;
    }
    match req {
        Request::Ping => encode_response(id, &Response::Pong, &mut out.borrow_mut()),
        Request::Hello => encode_response(
            id,
            &Response::Hello {
                node_id: shard.config.node_id,
                shard_count: shard.shard_count,
                base_port: shard.config.port,
                protocol_version: ringkv_net::client_frame::PROTOCOL_VERSION,
            },
            &mut out.borrow_mut(),
        ),
        Request::Ring => {
            let ring = shard
                .cluster()
                .and_then(|c| c.ring())
                .or_else(|| crate::cluster::standalone_ring(&shard.config).map(Rc::new));
            let Some(ring) = ring else {
                encode_error(id, Status::Internal, "no ring", &mut out.borrow_mut());
                return;
            };
            ringkv_net::client_frame::encode_ring_response(
                id,
                ring.version(),
                ring.replication_factor(),
                ring.nodes(),
                &mut out.borrow_mut(),
            );
        }
        Request::Stats => {
            let text = stats_text(shard);
            encode_response(
                id,
                &Response::Stats {
                    text: text.as_bytes(),
                },
                &mut out.borrow_mut(),
            );
        }
        Request::MGet { keys } => {
            let keys: Vec<&[u8]> = keys.iter().collect();
            crate::multi::mget(shard, id, &keys, header.consistency, out).await;
        }
        Request::MPut { pairs, ttl_ms } => {
            let pairs: Vec<(&[u8], &[u8])> = pairs.iter().collect();
            let session = unwire(header.session);
            let level = header.consistency;
            crate::multi::mput(shard, id, session, &pairs, ttl_ms, level, out).await;
        }
        Request::Scan {
            start,
            end,
            prefix,
            limit,
            after,
        } => crate::multi::scan(shard, scope, id, (start, end, prefix, after), limit, out).await,
        // Single-key requests were handled above.
        _ => encode_error(
            id,
            Status::Internal,
            "unroutable request",
            &mut out.borrow_mut(),
        ),
    }
}

pub(crate) fn encode_unexpected(id: u64, answer: Answer, out: &mut Vec<u8>) {
    match answer {
        Answer::Failed(status, msg) => encode_error(id, status, &msg, out),
        Answer::Unavailable => {
            encode_error(id, Status::Unavailable, "the owning shard is stopping", out)
        }
        _ => encode_error(
            id,
            Status::Internal,
            "unexpected answer from the owning shard",
            out,
        ),
    }
}

/// Answers a call another shard sent to this one.
pub async fn answer_call(shard: Rc<Shard>, call: Call) -> Answer {
    ShardCounters::bump(&shard.counters.forwarded_in);
    match call {
        Call::Frame(bytes) => {
            let mut out = Vec::new();
            match decode_request(&bytes, shard.config.frame_size_max) {
                Ok(Decoded::Frame {
                    frame: (header, req),
                    ..
                }) => {
                    let outcome = execute_key(&shard, &header, &req).await;
                    encode_outcome(header.id, &outcome, &mut out);
                }
                Ok(Decoded::Incomplete { .. }) => encode_error(
                    0,
                    Status::Internal,
                    "a forwarded frame was incomplete",
                    &mut out,
                ),
                Err(e) => encode_error(e.id.unwrap_or(0), e.status, &e.message, &mut out),
            }
            Answer::Frame(out)
        }
        Call::Get { keys, level } => {
            let mut values = Vec::with_capacity(keys.len());
            for key in &keys {
                match get_local(&shard, key, level).await {
                    Ok(v) => values.push(v),
                    Err(Outcome::Error(s, m)) => return Answer::Failed(s, m),
                    Err(_) => return Answer::Failed(Status::Internal, "unexpected outcome".into()),
                }
            }
            Answer::Values(values)
        }
        Call::Put {
            pairs,
            ttl_ms,
            session,
            level,
        } => {
            let pairs: Vec<(&[u8], &[u8])> = pairs
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
                .collect();
            match put_local(&shard, session, &pairs, ttl_ms, level).await {
                Ok(v) => Answer::Written(v),
                Err(Outcome::Error(s, m)) => Answer::Failed(s, m),
                Err(_) => Answer::Failed(Status::Internal, "unexpected outcome".into()),
            }
        }
        Call::Scan { span, limit } => match shard.store.scan(span, limit, now_ms()).await {
            Ok(entries) => Answer::Entries(entries),
            Err(e) => match storage_failure(&shard, &e) {
                Outcome::Error(s, m) => Answer::Failed(s, m),
                _ => Answer::Failed(Status::StorageError, e.to_string()),
            },
        },
        Call::Stats => Answer::Stats(stats_text(&shard)),
        Call::Commit(lsn) => match shard.store.commit(lsn).await {
            Ok(()) => Answer::Committed,
            Err(e) => match storage_failure(&shard, &e) {
                Outcome::Error(s, m) => Answer::Failed(s, m),
                _ => Answer::Failed(Status::StorageError, e.to_string()),
            },
        },
        call @ (Call::Resp { .. } | Call::Keys { .. } | Call::Walk(_)) => {
            crate::resp_exec::answer_call(&shard, call).await
        }
    }
}

pub(crate) async fn get_local(
    shard: &Shard,
    key: &[u8],
    level: Consistency,
) -> Result<Option<(Vec<u8>, Version)>, Outcome> {
    check_sizes(shard, key, None)?;
    let record = read(shard, key, level).await?;
    Ok(live(record, now_ms()).and_then(|r| r.value.map(|v| (v, r.version))))
}

pub(crate) async fn put_local(
    shard: &Shard,
    session: Version,
    pairs: &[(&[u8], &[u8])],
    ttl_ms: u64,
    level: Consistency,
) -> Result<Version, Outcome> {
    for (k, v) in pairs {
        check_sizes(shard, k, Some(v))?;
    }
    let keys: Vec<&[u8]> = pairs.iter().map(|(k, _)| *k).collect();
    let _guards = shard.locks.lock_many(&keys).await;
    let version = stamp(shard, session, None)?;
    let expires = expires_at(now_ms(), ttl_ms);
    if shard.cluster().is_some() {
        // In a cluster each pair is replicated on its own, at the
        // request's level: an MPUT is atomic per key, not as a whole.
        for (k, v) in pairs {
            put_value(shard, k, v, version, expires, level).await?;
        }
        return Ok(version);
    }
    // One version for the whole batch: the keys differ, and a repeated key
    // keeps its last value (the batch is applied in order).
    let mut batch: Vec<BatchWrite> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        if let Some(prev) = batch.iter_mut().find(|w| w.key.as_slice() == *k) {
            prev.record = Record::put(version, v.to_vec(), expires);
        } else {
            batch.push(BatchWrite {
                key: k.to_vec(),
                record: Record::put(version, v.to_vec(), expires),
            });
        }
    }
    shard
        .store
        .write(batch)
        .await
        .map_err(|e| storage_failure(shard, &e))?;
    Ok(version)
}

/// This shard's STATS text: `key value` lines.
pub fn stats_text(shard: &Shard) -> String {
    use std::fmt::Write;
    let c = &shard.counters;
    let mut s = String::new();
    let mut line = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(s, "{k} {v}");
    };
    line("shard", &shard.id);
    line("shard_count", &shard.shard_count);
    line("node_id", &shard.config.node_id);
    line(
        "connections_node",
        &shard
            .node
            .connections
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    line("connections_accepted", &c.accepted.get());
    line("connections_refused", &c.refused.get());
    line("requests", &c.requests.get());
    line("forwarded_out", &c.forwarded_out.get());
    line("forwarded_in", &c.forwarded_in.get());
    line("bad_requests", &c.bad_requests.get());
    line("storage_errors", &c.storage_errors.get());
    line("network_missed_wakeups", &c.network_missed_wakeups.get());
    line("network_unwoken_batches", &c.network_unwoken_batches.get());
    line("executor_nudges", &shard.node.watchdog.nudges_of(shard.id));
    // What the shard's core ran: every task queue, and of it the storage's
    // background queue (flushes, compactions), so an operator can tell how
    // much of a busy core background work takes.
    line(
        "executor_runtime_ms",
        &crate::executor_clock::runtime_total().as_millis(),
    );
    line(
        "executor_background_runtime_ms",
        &ringkv_storage::io::background_runtime()
            .unwrap_or_default()
            .as_millis(),
    );
    line("key_locks_held", &shard.locks.len());
    line("clock_hlc", &shard.clock.borrow().last());
    line("clock_lease_hlc", &shard.clock.borrow().lease());
    for (k, v) in shard.store.stats() {
        line(&k, &v);
    }
    if let Some(cluster) = shard.cluster() {
        for (k, v) in cluster.stats() {
            line(&k, &v);
        }
    }
    s
}
