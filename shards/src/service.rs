//! Executing client requests on a shard: the local fast path for keys this
//! shard owns, forwarding for keys another shard owns, and the fan-out of
//! multi-key requests (MGET, MPUT, SCAN) to every owner.
//!
//! Invariants:
//! - Every write is stamped by the owner shard's clock above the request's
//!   session version (and, for read-modify-write ops, above the version read).
//! - PUT, DELETE, CAS, INCR and the local part of MPUT hold the key lock from
//!   their read (if any) to the end of their write, so a CAS or INCR never
//!   interleaves with another write of the same key.
//! - Nothing is answered before the store acknowledged it (durable per the
//!   node's durability mode).
//! - A forwarded request travels as an owned copy of its frame; its answer
//!   comes back as an encoded frame appended to the connection's output.

use crate::forward::{Answer, Call};
use crate::shard::{Shard, ShardCounters};
use crate::store::{BatchWrite, ScanSpan};
use ringkv_net::client_frame::{
    decode_request, encode_response, CasExpect, Decoded, EntryList, Request, RequestHeader,
    Response, ScanEntry, Status, TtlState, ValueList, WireVersion,
};
use ringkv_storage::{Entry, Record, Version};
use std::cell::RefCell;
use std::ops::Bound;
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

fn storage_failure(shard: &Shard, e: &ringkv_storage::Error) -> Outcome {
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

fn now_ms() -> u64 {
    ringkv_storage::io::now_ms()
}

fn expires_at(now: u64, ttl_ms: u64) -> u64 {
    if ttl_ms == 0 {
        0
    } else {
        now.saturating_add(ttl_ms)
    }
}

/// The live value of a record at `now`, if any.
fn live(record: Option<Record>, now: u64) -> Option<Record> {
    record.filter(|r| !r.is_dead_at(now))
}

/// Checks a key and value against the node's configured limits (the decoder
/// already checked the protocol's).
fn check_sizes(shard: &Shard, key: &[u8], value: Option<&[u8]>) -> Result<(), Outcome> {
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
fn stamp(shard: &Shard, session: Version, floor: Option<Version>) -> Result<Version, Outcome> {
    let mut clock = shard.clock.borrow_mut();
    if let Some(f) = floor {
        clock.observe(f);
    }
    clock
        .stamp(now_ms(), session)
        .map_err(|e| Outcome::Error(Status::BadRequest, e.to_string()))
}

/// The highest-version record of `key` (storage errors become an outcome).
async fn read(shard: &Shard, key: &[u8]) -> Result<Option<Record>, Outcome> {
    shard
        .store
        .get_record(key)
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
    let now = now_ms();
    match *req {
        Request::Get { key } => {
            check_sizes(shard, key, None)?;
            Ok(live(read(shard, key).await?, now).map_or(Outcome::NotFound, Outcome::Value))
        }
        Request::Exists { key } => {
            check_sizes(shard, key, None)?;
            Ok(Outcome::Bool(live(read(shard, key).await?, now).is_some()))
        }
        Request::Ttl { key } => {
            check_sizes(shard, key, None)?;
            let state = match live(read(shard, key).await?, now) {
                None => TtlState::Missing,
                Some(r) if r.expires_at_ms == 0 => TtlState::NoExpiry,
                Some(r) => TtlState::RemainingMs(r.expires_at_ms.saturating_sub(now)),
            };
            Ok(Outcome::Ttl(state))
        }
        Request::Delete { key } => {
            check_sizes(shard, key, None)?;
            let _guard = shard.locks.lock(key).await;
            let version = stamp(shard, session, None)?;
            shard
                .store
                .delete(key, version)
                .await
                .map_err(|e| storage_failure(shard, &e))?;
            Ok(Outcome::Written(version))
        }
        Request::Put { key, value, ttl_ms } => {
            check_sizes(shard, key, Some(value))?;
            let _guard = shard.locks.lock(key).await;
            let version = stamp(shard, session, None)?;
            shard
                .store
                .put(key, value, version, expires_at(now, ttl_ms))
                .await
                .map_err(|e| storage_failure(shard, &e))?;
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
            let record = read(shard, key).await?;
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
            shard
                .store
                .put(key, value, version, expires_at(now_ms(), ttl_ms))
                .await
                .map_err(|e| storage_failure(shard, &e))?;
            Ok(Outcome::Written(version))
        }
        Request::Incr { key, delta } => {
            check_sizes(shard, key, None)?;
            let _guard = shard.locks.lock(key).await;
            let record = read(shard, key).await?;
            let floor = record.as_ref().map(|r| r.version);
            let (current, expires) = match live(record, now_ms()) {
                None => (0i64, 0u64),
                Some(r) => {
                    let bytes = r.value.as_deref().unwrap_or_default();
                    let Ok(arr) = <[u8; 8]>::try_from(bytes) else {
                        return Err(Outcome::Error(
                            Status::NotAnInteger,
                            format!(
                                "the value is {} bytes, not an 8-byte little-endian integer",
                                bytes.len()
                            ),
                        ));
                    };
                    (i64::from_le_bytes(arr), r.expires_at_ms)
                }
            };
            let Some(next) = current.checked_add(delta) else {
                return Err(Outcome::Error(
                    Status::Overflow,
                    format!("{current} + {delta} overflows a signed 64-bit integer"),
                ));
            };
            let version = stamp(shard, session, floor)?;
            shard
                .store
                .put(key, &next.to_le_bytes(), version, expires)
                .await
                .map_err(|e| storage_failure(shard, &e))?;
            Ok(Outcome::Integer(next, version))
        }
        _ => Err(Outcome::Error(
            Status::Internal,
            "not a single-key request".into(),
        )),
    }
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
            mget(shard, id, &keys, out).await;
        }
        Request::MPut { pairs, ttl_ms } => {
            let pairs: Vec<(&[u8], &[u8])> = pairs.iter().collect();
            mput(shard, id, unwire(header.session), &pairs, ttl_ms, out).await;
        }
        Request::Scan {
            start,
            end,
            prefix,
            limit,
            after,
        } => scan(shard, scope, id, (start, end, prefix, after), limit, out).await,
        // Single-key requests were handled above.
        _ => encode_error(
            id,
            Status::Internal,
            "unroutable request",
            &mut out.borrow_mut(),
        ),
    }
}

fn encode_unexpected(id: u64, answer: Answer, out: &mut Vec<u8>) {
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
        Call::Get { keys } => {
            let mut values = Vec::with_capacity(keys.len());
            for key in &keys {
                match get_local(&shard, key).await {
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
        } => {
            let pairs: Vec<(&[u8], &[u8])> = pairs
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
                .collect();
            match put_local(&shard, session, &pairs, ttl_ms).await {
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
    }
}

async fn get_local(shard: &Shard, key: &[u8]) -> Result<Option<(Vec<u8>, Version)>, Outcome> {
    check_sizes(shard, key, None)?;
    let record = shard
        .store
        .get_record(key)
        .await
        .map_err(|e| storage_failure(shard, &e))?;
    Ok(live(record, now_ms()).and_then(|r| r.value.map(|v| (v, r.version))))
}

async fn put_local(
    shard: &Shard,
    session: Version,
    pairs: &[(&[u8], &[u8])],
    ttl_ms: u64,
) -> Result<Version, Outcome> {
    for (k, v) in pairs {
        check_sizes(shard, k, Some(v))?;
    }
    let keys: Vec<&[u8]> = pairs.iter().map(|(k, _)| *k).collect();
    let _guards = shard.locks.lock_many(&keys).await;
    let version = stamp(shard, session, None)?;
    let expires = expires_at(now_ms(), ttl_ms);
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

/// Splits `items` (by key) per owning shard, keeping each item's position.
fn group_by_owner<'k, T: Copy>(
    shard: &Shard,
    items: &[T],
    key_of: impl Fn(&T) -> &'k [u8],
) -> Vec<Vec<(usize, T)>> {
    let mut groups: Vec<Vec<(usize, T)>> = vec![Vec::new(); shard.shard_count as usize];
    for (i, item) in items.iter().enumerate() {
        groups[shard.owner_of(key_of(item)) as usize].push((i, *item));
    }
    groups
}

async fn mget(shard: &Rc<Shard>, id: u64, keys: &[&[u8]], out: &RefCell<Vec<u8>>) {
    let groups = group_by_owner(shard, keys, |k| k);
    let mut results: Vec<Option<(Vec<u8>, Version)>> = vec![None; keys.len()];
    let mut parts = Vec::new();
    for (owner, group) in groups.into_iter().enumerate() {
        if group.is_empty() {
            continue;
        }
        let shard = shard.clone();
        parts.push(Box::pin(async move {
            let answer = if owner as u32 == shard.id {
                let mut values = Vec::with_capacity(group.len());
                for (_, key) in &group {
                    match get_local(&shard, key).await {
                        Ok(v) => values.push(v),
                        Err(Outcome::Error(s, m)) => return (group, Answer::Failed(s, m)),
                        Err(_) => return (group, Answer::Failed(Status::Internal, String::new())),
                    }
                }
                Answer::Values(values)
            } else {
                let keys = group.iter().map(|(_, k)| k.to_vec()).collect();
                shard.call(owner as u32, Call::Get { keys }).await
            };
            (group, answer)
        }));
    }
    for (group, answer) in crate::join::join_all(parts).await {
        match answer {
            Answer::Values(values) if values.len() == group.len() => {
                for ((pos, _), v) in group.into_iter().zip(values) {
                    results[pos] = v;
                }
            }
            other => {
                encode_unexpected(id, other, &mut out.borrow_mut());
                return;
            }
        }
    }
    let items: Vec<Option<(&[u8], WireVersion)>> = results
        .iter()
        .map(|r| r.as_ref().map(|(v, ver)| (v.as_slice(), wire(*ver))))
        .collect();
    encode_response(
        id,
        &Response::Values {
            items: ValueList::new(&items),
        },
        &mut out.borrow_mut(),
    );
}

async fn mput(
    shard: &Rc<Shard>,
    id: u64,
    session: Version,
    pairs: &[(&[u8], &[u8])],
    ttl_ms: u64,
    out: &RefCell<Vec<u8>>,
) {
    let groups = group_by_owner(shard, pairs, |(k, _)| k);
    let mut parts = Vec::new();
    for (owner, group) in groups.into_iter().enumerate() {
        if group.is_empty() {
            continue;
        }
        let shard = shard.clone();
        parts.push(Box::pin(async move {
            if owner as u32 == shard.id {
                let pairs: Vec<(&[u8], &[u8])> = group.iter().map(|(_, p)| *p).collect();
                match put_local(&shard, session, &pairs, ttl_ms).await {
                    Ok(v) => Answer::Written(v),
                    Err(Outcome::Error(s, m)) => Answer::Failed(s, m),
                    Err(_) => Answer::Failed(Status::Internal, String::new()),
                }
            } else {
                let pairs = group
                    .iter()
                    .map(|(_, (k, v))| (k.to_vec(), v.to_vec()))
                    .collect();
                shard
                    .call(
                        owner as u32,
                        Call::Put {
                            pairs,
                            ttl_ms,
                            session,
                        },
                    )
                    .await
            }
        }));
    }
    let mut highest = Version::ZERO;
    for answer in crate::join::join_all(parts).await {
        match answer {
            Answer::Written(v) => highest = highest.max(v),
            other => {
                encode_unexpected(id, other, &mut out.borrow_mut());
                return;
            }
        }
    }
    encode_response(
        id,
        &Response::Written {
            version: wire(highest),
        },
        &mut out.borrow_mut(),
    );
}

/// The smallest key above every key starting with `prefix`, or `None` if
/// there is none (the prefix is all 0xFF bytes).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The key span of a SCAN request, or `None` when it is empty.
pub fn scan_span(start: &[u8], end: &[u8], prefix: bool, after: &[u8]) -> Option<ScanSpan> {
    let (mut lo, hi) = if prefix {
        (
            Bound::Included(start.to_vec()),
            prefix_end(start).map_or(Bound::Unbounded, Bound::Excluded),
        )
    } else {
        let hi = if end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(end.to_vec())
        };
        (Bound::Included(start.to_vec()), hi)
    };
    if !after.is_empty() && after >= start {
        lo = Bound::Excluded(after.to_vec());
    }
    let empty = match (&lo, &hi) {
        (Bound::Included(l), Bound::Excluded(h)) => l >= h,
        (Bound::Excluded(l), Bound::Excluded(h)) => l >= h,
        _ => false,
    };
    (!empty).then_some(ScanSpan::Range { start: lo, end: hi })
}

/// The span fields of a SCAN request: start, end, prefix flag, after.
type SpanFields<'a> = (&'a [u8], &'a [u8], bool, &'a [u8]);

async fn scan(
    shard: &Rc<Shard>,
    scope: Scope,
    id: u64,
    fields: SpanFields<'_>,
    limit: u32,
    out: &RefCell<Vec<u8>>,
) {
    let (start, end, prefix, after) = fields;
    let limit = limit as usize;
    let Some(span) = scan_span(start, end, prefix, after) else {
        encode_response(
            id,
            &Response::ScanPage {
                entries: EntryList::new(&[]),
                next_after: &[],
            },
            &mut out.borrow_mut(),
        );
        return;
    };
    let owners = match scope {
        Scope::Shard => shard.id..shard.id + 1,
        Scope::Node => 0..shard.shard_count,
    };
    let mut parts = Vec::new();
    for owner in owners {
        let shard = shard.clone();
        let span = span.clone();
        parts.push(Box::pin(async move {
            if owner == shard.id {
                match shard.store.scan(span, limit, now_ms()).await {
                    Ok(e) => Answer::Entries(e),
                    Err(e) => match storage_failure(&shard, &e) {
                        Outcome::Error(s, m) => Answer::Failed(s, m),
                        _ => Answer::Failed(Status::StorageError, e.to_string()),
                    },
                }
            } else {
                shard.call(owner, Call::Scan { span, limit }).await
            }
        }));
    }
    let mut merged: Vec<Entry> = Vec::new();
    for answer in crate::join::join_all(parts).await {
        match answer {
            Answer::Entries(e) => merged.extend(e),
            other => {
                encode_unexpected(id, other, &mut out.borrow_mut());
                return;
            }
        }
    }
    merged.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    let more = merged.len() >= limit;
    merged.truncate(limit);
    let entries: Vec<ScanEntry<'_>> = merged
        .iter()
        .map(|e| ScanEntry {
            key: &e.key,
            value: e.record.value.as_deref().unwrap_or_default(),
            version: wire(e.record.version),
        })
        .collect();
    let next_after: &[u8] = match (more, merged.last()) {
        (true, Some(last)) => &last.key,
        _ => &[],
    };
    encode_response(
        id,
        &Response::ScanPage {
            entries: EntryList::new(&entries),
            next_after,
        },
        &mut out.borrow_mut(),
    );
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
    line("key_locks_held", &shard.locks.len());
    line("clock_hlc", &shard.clock.borrow().last());
    for (k, v) in shard.store.stats() {
        line(&k, &v);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_span_ends_before_the_next_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(
            scan_span(b"ab", b"", true, b""),
            Some(ScanSpan::Range {
                start: Bound::Included(b"ab".to_vec()),
                end: Bound::Excluded(b"ac".to_vec())
            })
        );
    }

    #[test]
    fn a_continuation_resumes_strictly_after_the_key_and_an_empty_range_is_none() {
        assert_eq!(
            scan_span(b"a", b"z", false, b"m"),
            Some(ScanSpan::Range {
                start: Bound::Excluded(b"m".to_vec()),
                end: Bound::Excluded(b"z".to_vec())
            })
        );
        assert_eq!(scan_span(b"z", b"a", false, b""), None);
        assert_eq!(scan_span(b"a", b"c", false, b"c"), None);
        assert_eq!(scan_span(b"ab", b"", true, b"ac"), None);
    }
}
