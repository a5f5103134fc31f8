//! Multi-key requests: MGET and MPUT split per owning shard (the local part
//! runs here, the other parts go over the mesh, all concurrently, answers
//! reassembled in request order), and SCAN over one shard or the whole node
//! (every shard's page merged in key order).
//!
//! Invariants: an MGET answer has one item per requested key, in request
//! order; MPUT is atomic per shard (one engine batch), not across shards, and
//! answers with the highest version written; a SCAN page holds at most
//! `limit` live entries in ascending key order, and `next_after` is empty only
//! when no shard may hold more.

use crate::forward::{Answer, Call};
use crate::service::{
    encode_unexpected, get_local, now_ms, put_local, storage_failure, wire, Outcome, Scope,
};
use crate::shard::Shard;
use crate::store::ScanSpan;
use ringkv_net::client_frame::{
    encode_response, Consistency, EntryList, Response, ScanEntry, Status, ValueList, WireVersion,
};
use ringkv_storage::{Entry, Version};
use std::cell::RefCell;
use std::ops::Bound;
use std::rc::Rc;

/// Splits `items` (by key) per owning shard, keeping each item's position.
pub(crate) fn group_by_owner<'k, T: Copy>(
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

/// Reads every key from its owning shard (locally, or over the mesh), in
/// request order. On failure, returns the owner's answer for the caller to
/// render in its own protocol (binary or RESP).
pub(crate) async fn mget_values(
    shard: &Rc<Shard>,
    keys: &[&[u8]],
    level: Consistency,
) -> Result<Vec<Option<(Vec<u8>, Version)>>, Answer> {
    let groups = group_by_owner(shard, keys, |k| k);
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
                    match get_local(&shard, key, level).await {
                        Ok(v) => values.push(v),
                        Err(Outcome::Error(s, m)) => return (group, Answer::Failed(s, m)),
                        Err(other) => {
                            let message = format!("unexpected outcome {other:?}");
                            return (group, Answer::Failed(Status::Internal, message));
                        }
                    }
                }
                Answer::Values(values)
            } else {
                let keys = group.iter().map(|(_, k)| k.to_vec()).collect();
                shard.call(owner as u32, Call::Get { keys, level }).await
            };
            (group, answer)
        }));
    }
    let mut results: Vec<Option<(Vec<u8>, Version)>> = vec![None; keys.len()];
    for (group, answer) in crate::join::join_all(parts).await {
        match answer {
            Answer::Values(values) if values.len() == group.len() => {
                for ((pos, _), v) in group.into_iter().zip(values) {
                    results[pos] = v;
                }
            }
            other => return Err(other),
        }
    }
    Ok(results)
}

/// Answers MGET: every key read from its owner, in request order.
pub(crate) async fn mget(
    shard: &Rc<Shard>,
    id: u64,
    keys: &[&[u8]],
    level: Consistency,
    out: &RefCell<Vec<u8>>,
) {
    let results = match mget_values(shard, keys, level).await {
        Ok(results) => results,
        Err(answer) => {
            encode_unexpected(id, answer, &mut out.borrow_mut());
            return;
        }
    };
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

/// Answers MPUT: each owner writes its pairs as one atomic batch.
pub(crate) async fn mput(
    shard: &Rc<Shard>,
    id: u64,
    session: Version,
    pairs: &[(&[u8], &[u8])],
    ttl_ms: u64,
    level: Consistency,
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
                match put_local(&shard, session, &pairs, ttl_ms, level).await {
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
                            level,
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

/// Answers SCAN over this shard ([`Scope::Shard`]) or every shard ([`Scope::Node`]).
pub(crate) async fn scan(
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
