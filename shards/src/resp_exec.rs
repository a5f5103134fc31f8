//! Executing RESP (Redis protocol) commands on a shard, with Redis's
//! semantics, on top of the same store, clock and key locks as the binary
//! protocol.
//!
//! Routing: a single-key command runs on the shard that owns its key (here
//! when it is ours, else forwarded over the mesh, with the commands of that
//! shard's keys that follow it, as their bytes, and answered with the
//! encoded replies); multi-key commands (MGET, MSET, MSETNX,
//! DEL, UNLINK, EXISTS) are split per owner, run concurrently and answered
//! in request order; node-wide commands (SCAN, KEYS, DBSIZE, FLUSHDB, INFO)
//! visit every shard.
//!
//! Invariants:
//! - Every write holds the key's lock from its read to the end of its write
//!   and is stamped by the owner's clock above the version it read, so a
//!   RESP read-modify-write (INCR, APPEND, SET NX, EXPIRE...) never
//!   interleaves with another write of the key, from either protocol.
//! - No reply leaves before the store acknowledged its command: a SET run at
//!   once ([`execute_now`]) is replied to in place, and the batch waits for
//!   its commit before the replies are sent; a SET forwarded to its owner and
//!   run at once there comes back with the owner's WAL position
//!   ([`PendingCommit`]), and the batch waits for that commit too.
//! - Commands of a connection take effect (become visible) in order, also
//!   across shards: a forwarded command is applied by its owner before the
//!   next one runs. Their durability is not ordered across shards: after a
//!   crash, of a pipeline's unreplied writes, one shard's may be kept and
//!   an earlier one's on another shard lost.
//! - RESP writes carry no consistency level: they run at the node default.
//! - Values are bytes; INCR and friends read and write them as decimal text,
//!   as Redis does (the binary protocol's INCR uses 8-byte little-endian
//!   integers: the two do not read each other's counters).
//! - MSET and MSETNX are atomic per shard, not across shards (as in Redis
//!   Cluster without hash tags); MSETNX checks then writes, so a concurrent
//!   writer of one of its keys on another shard can slip in between.
//!
//! SCAN cursors: a cursor must be an integer for Redis clients, and a
//! position in ringkv is (shard, last key returned). Each connection keeps
//! the positions of its last [`RESP_SCAN_CURSORS_MAX`] cursors and hands out
//! their numbers; a cursor from another connection, or forgotten, answers
//! `ERR invalid cursor`. SCAN guarantees what Redis's does: every key present
//! for the whole iteration is returned, and exactly once (keys are visited in
//! order, shard by shard).

use crate::forward::{Answer, Call, KeysOp, WalkOp};
use crate::limits::{
    RESP_SCAN_COUNT_DEFAULT, RESP_SCAN_COUNT_MAX, RESP_SCAN_CURSORS_MAX, RESP_WALK_PAGE,
};
use crate::multi::{group_by_owner, mget_values, scan_span};
use crate::service::{
    live, now_ms, put_local, read_at_once, stamp, storage_failure, write_at_once, Outcome,
};
use crate::shard::{Shard, ShardCounters};
use crate::store::{BatchWrite, ScanSpan};
use ringkv_net::client_frame::Consistency;
use ringkv_net::resp::command::{
    unknown_command_message, Expiry, GetExTtl, KeyPattern, SetCondition, SetTtl, TtlUnit,
};
use ringkv_net::resp::{
    parse_command, replies, table, ArgSlice, Args, Command, CommandError, Decoded, Reply,
    RespLimits, RespVersion,
};
use ringkv_storage::wal::Lsn;
use ringkv_storage::{Entry, Record, Version};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering;

/// The Redis version ringkv reports (HELLO, INFO): clients enable features
/// by it, and ringkv implements the Redis 7 forms of what it supports.
pub const REDIS_VERSION_COMPAT: &str = "7.2.0";

/// The error of FLUSHDB/FLUSHALL while they are not allowed.
pub const ERR_FLUSH_DISABLED: &str = "ERR FLUSHDB and FLUSHALL are disabled on this server; enable them with `allow_flush = true` in the config file or `--allow-flush true` on the command line";

const ERR_HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";

/// The state of one RESP connection.
#[derive(Debug)]
pub struct Session {
    /// Reply encoding (RESP2 until HELLO 3).
    pub version: RespVersion,
    /// Whether the connection may run commands (no password configured, or AUTH succeeded).
    pub authenticated: bool,
    /// CLIENT SETNAME.
    pub name: Option<Vec<u8>>,
    /// CLIENT ID (unique on the node).
    pub id: i64,
    /// The peer's address, for CLIENT INFO.
    pub peer: String,
    /// QUIT was received: close after writing the replies.
    pub quit: bool,
    cursors: VecDeque<(u64, u32, Vec<u8>)>,
    next_cursor: u64,
}

impl Session {
    /// A fresh connection's state.
    pub fn new(shard: &Shard, peer: String) -> Session {
        let id = shard.node.resp_client_ids.fetch_add(1, Ordering::Relaxed) + 1;
        Session {
            version: RespVersion::Resp2,
            authenticated: shard.config.requirepass.is_none(),
            name: None,
            id: i64::try_from(id).unwrap_or(i64::MAX),
            peer,
            quit: false,
            cursors: VecDeque::new(),
            next_cursor: 0,
        }
    }

    fn remember_cursor(&mut self, shard: u32, after: Vec<u8>) -> u64 {
        // Cursor numbers are never 0 (the end) and never reused on a connection.
        self.next_cursor = self.next_cursor.wrapping_add(1).max(1);
        if self.cursors.len() >= RESP_SCAN_CURSORS_MAX {
            self.cursors.pop_front();
        }
        self.cursors.push_back((self.next_cursor, shard, after));
        self.next_cursor
    }

    fn cursor(&self, cursor: u64) -> Option<(u32, Vec<u8>)> {
        if cursor == 0 {
            return Some((0, Vec::new()));
        }
        self.cursors
            .iter()
            .find(|(c, _, _)| *c == cursor)
            .map(|(_, s, k)| (*s, k.clone()))
    }
}

/// Executes one command, appending its reply to `out`: `parsed` is
/// [`Command::parse`] of its arguments `args` (kept for forwarding them to
/// the key's owner). A write forwarded to its owner may come back applied
/// but not yet durable: then the reply is in `out` and the commit it waits
/// for is returned, for the caller to wait on (with [`commit_on`]) before
/// sending it, so that a pipeline's forwarded writes share their commits.
pub async fn execute(
    shard: &Rc<Shard>,
    session: &mut Session,
    args: &Args<'_>,
    parsed: Result<Command<'_>, CommandError>,
    out: &mut Vec<u8>,
) -> Option<PendingCommit> {
    ShardCounters::bump(&shard.counters.requests);
    if !session.authenticated
        && !matches!(
            parsed,
            Ok(Command::Auth { .. } | Command::Hello { .. } | Command::Quit | Command::Empty)
        )
    {
        Reply::new(out, session.version).error(replies::ERR_NOAUTH);
        return None;
    }
    let cmd = match parsed {
        Ok(c) => c,
        Err(e) => {
            Reply::new(out, session.version).error(&e.to_string());
            return None;
        }
    };
    if let Some(key) = cmd.key() {
        let owner = shard.owner_of(key);
        if owner == shard.id {
            exec_key(shard, &cmd, &mut Reply::new(out, session.version)).await;
            return None;
        }
        // Not reached from a batch (it forwards such commands in runs).
        let mut command = Vec::new();
        ringkv_net::resp::encode_command(&args.iter().collect::<Vec<_>>(), &mut command);
        let (pending, _) =
            forward_run(shard, owner, command, 1, usize::MAX, session.version, out).await;
        return pending;
    }
    exec_other(shard, session, cmd, out).await;
    None
}

/// The shard a command is forwarded to: another shard's, when the command
/// is a well-formed single-key command of an authenticated connection
/// (anything else runs here, if only to be refused here).
pub fn foreign_owner(
    shard: &Shard,
    session: &Session,
    parsed: &Result<Command<'_>, CommandError>,
) -> Option<u32> {
    let key = parsed.as_ref().ok()?.key()?;
    let owner = shard.owner_of(key);
    (session.authenticated && owner != shard.id).then_some(owner)
}

/// Runs `count` commands, RESP-encoded back to back in `commands`, each a
/// well-formed single-key command of a key shard `owner` owns, on that
/// shard in order, in one mesh call; appends the replies of those it ran,
/// exactly one per command and in order, to `out` (an error reply for each
/// when the call fails). The owner stops after `reply_budget` bytes of
/// replies, having run at least one command. Returns the commit the replies
/// wait for, when some are writes not yet durable there (see [`execute`]),
/// and how many commands ran.
pub async fn forward_run(
    shard: &Shard,
    owner: u32,
    commands: Vec<u8>,
    count: usize,
    reply_budget: usize,
    version: RespVersion,
    out: &mut Vec<u8>,
) -> (Option<PendingCommit>, usize) {
    let call = Call::Resp {
        commands,
        count,
        reply_budget,
        version,
    };
    match shard.call(owner, call).await {
        Answer::Resp {
            replies,
            ran,
            unsettled,
        } => {
            out.extend_from_slice(&replies);
            let pending = unsettled.map(|lsn| PendingCommit { shard: owner, lsn });
            (pending, ran)
        }
        other => {
            let message = unexpected(other);
            for _ in 0..count {
                Reply::new(out, version).error(&message);
            }
            (None, count)
        }
    }
}

/// Runs a [`Call::Resp`] here: commands from `commands`, in order, one
/// reply each into the answer, until `count` ran or the replies reached
/// `reply_budget` bytes.
async fn answer_run(
    shard: &Shard,
    commands: &[u8],
    count: usize,
    reply_budget: usize,
    version: RespVersion,
) -> Answer {
    let limits = RespLimits {
        authenticated: true,
        ..RespLimits::default()
    };
    let mut out = Vec::new();
    let mut unsettled: Option<Lsn> = None;
    let mut pos = 0;
    let mut ran = 0;
    while ran < count && (ran == 0 || out.len() < reply_budget) {
        ran += 1;
        let args = match parse_command(&commands[pos.min(commands.len())..], &limits) {
            Ok(Decoded::Frame { frame, len }) => {
                pos += len;
                frame
            }
            // Cannot happen (the caller parsed these very bytes): one
            // error reply per command keeps the replies in step.
            Ok(Decoded::Incomplete { .. }) | Err(_) => {
                Reply::new(&mut out, version).error("ERR a forwarded command was malformed");
                continue;
            }
        };
        match Command::parse(&args) {
            Ok(cmd) if cmd.key().is_some_and(|k| shard.owner_of(k) == shard.id) => {
                // As on the caller's own keys: run at once when that answers
                // the same, and let a write's caller wait for its commit
                // (with the rest of its pipeline's).
                match run_now(shard, version, &cmd, now_ms(), &mut out) {
                    RanNow::Written(lsn) => {
                        if !shard.store.is_durable(lsn) {
                            unsettled = Some(unsettled.map_or(lsn, |u| u.max(lsn)));
                        }
                    }
                    RanNow::Replied => {}
                    RanNow::NotTaken => {
                        // (The fast paths count their own requests.)
                        ShardCounters::bump(&shard.counters.requests);
                        exec_key(shard, &cmd, &mut Reply::new(&mut out, version)).await
                    }
                }
            }
            Ok(_) => Reply::new(&mut out, version)
                .error("ERR a forwarded command was not a key of this shard"),
            Err(e) => Reply::new(&mut out, version).error(&e.to_string()),
        }
    }
    Answer::Resp {
        replies: out,
        ran,
        unsettled,
    }
}

/// A reply already in the output whose write is applied on `shard` but not
/// yet durable: it must not be sent before [`commit_on`] of `lsn` succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingCommit {
    /// The shard whose WAL holds the write (this one or another).
    pub shard: u32,
    /// The WAL position to wait for.
    pub lsn: Lsn,
}

/// Waits until `shard`'s WAL is durable through `lsn` (this shard's own, or
/// another's over the mesh); the RESP error line's text when that fails.
pub async fn commit_on(me: &Shard, shard: u32, lsn: Lsn) -> Result<(), String> {
    if shard == me.id {
        return me
            .store
            .commit(lsn)
            .await
            .map_err(|e| outcome_message(storage_failure(me, &e)));
    }
    match me.call(shard, Call::Commit(lsn)).await {
        Answer::Committed => Ok(()),
        other => Err(unexpected(other)),
    }
}

/// What [`execute_now`] did with a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RanNow {
    /// Nothing: run it with [`execute`].
    NotTaken,
    /// Run and replied.
    Replied,
    /// Written (in the WAL and the memtable, visible to reads) and replied;
    /// the reply must not be sent before the WAL is durable through this
    /// position ([`crate::store::Store::commit`]).
    Written(Lsn),
}

/// Runs a command at once, with no future, when that gives exactly what
/// [`execute`] would: a GET whose record the store knows without I/O, or a
/// plain SET (no condition, no GET, no KEEPTTL) the store takes without
/// waiting, of a key this shard owns on a standalone node (see
/// [`read_at_once`] and [`write_at_once`]). Replies into `out`; does
/// nothing and answers [`RanNow::NotTaken`] otherwise. `now_ms` is the wall
/// clock read once for the whole batch.
pub fn execute_now(
    shard: &Shard,
    session: &Session,
    command: &Command<'_>,
    now_ms: u64,
    out: &mut Vec<u8>,
) -> RanNow {
    if !session.authenticated {
        return RanNow::NotTaken;
    }
    run_now(shard, session.version, command, now_ms, out)
}

/// [`execute_now`] for an authenticated caller whose replies are encoded in
/// `version` (a connection of this shard, or one of another shard whose
/// command was forwarded here).
fn run_now(
    shard: &Shard,
    version: RespVersion,
    command: &Command<'_>,
    now_ms: u64,
    out: &mut Vec<u8>,
) -> RanNow {
    match *command {
        Command::Get { key } => {
            let replied = read_at_once(shard, key, now_ms, |record| {
                Reply::new(out, version).bulk_or_null(record.and_then(|r| r.value));
            });
            match replied {
                Some(()) => RanNow::Replied,
                None => RanNow::NotTaken,
            }
        }
        Command::Set {
            key,
            value,
            condition: SetCondition::Always,
            ttl,
            get: false,
        } => {
            let expires = match ttl {
                SetTtl::Clear => 0,
                SetTtl::Expire(e) => match deadline(e, now_ms, "set") {
                    Ok(d) => d,
                    // The slow path replies with the error.
                    Err(_) => return RanNow::NotTaken,
                },
                SetTtl::Keep => return RanNow::NotTaken,
            };
            match write_at_once(shard, key, Some(value), Version::ZERO, expires, now_ms) {
                None => RanNow::NotTaken,
                Some(Ok(written)) => {
                    Reply::new(out, version).ok();
                    RanNow::Written(written.lsn)
                }
                Some(Err(outcome)) => {
                    Reply::new(out, version).error(&outcome_message(outcome));
                    RanNow::Replied
                }
            }
        }
        _ => RanNow::NotTaken,
    }
}

fn unexpected(answer: Answer) -> String {
    match answer {
        Answer::Failed(_, m) => err(&m),
        Answer::Unavailable => "ERR the owning shard is stopping".into(),
        _ => "ERR unexpected answer from the owning shard".into(),
    }
}

/// `ERR <message>` (messages of our own errors carry no code).
fn err(message: &str) -> String {
    if message.starts_with("ERR ") {
        message.to_string()
    } else {
        format!("ERR {message}")
    }
}

/// The RESP error line's text for a failed outcome.
pub(crate) fn outcome_message(o: Outcome) -> String {
    match o {
        Outcome::Error(_, m) => err(&m),
        other => err(&format!("unexpected outcome {other:?}")),
    }
}

/// Answers a RESP call another shard sent to this one.
pub async fn answer_call(shard: &Rc<Shard>, call: Call) -> Answer {
    match call {
        Call::Resp {
            commands,
            count,
            reply_budget,
            version,
        } => answer_run(shard, &commands, count, reply_budget, version).await,
        Call::Keys { op, keys } => {
            let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            match keys_local(shard, op, &keys).await {
                Ok(n) => Answer::Count(n),
                Err(m) => Answer::Failed(ringkv_net::client_frame::Status::StorageError, m),
            }
        }
        Call::Walk(op) => walk_local(shard, &op).await,
        _ => Answer::Failed(
            ringkv_net::client_frame::Status::Internal,
            "not a RESP call".into(),
        ),
    }
}

// ---------------------------------------------------------------------------
// Single-key commands (run on the owner).

fn check_key(shard: &Shard, key: &[u8]) -> Result<(), String> {
    let max = shard.config.key_size_max;
    if key.len() > max {
        return Err(format!(
            "ERR key of {} bytes exceeds maximum allowed size ({max} bytes)",
            key.len()
        ));
    }
    Ok(())
}

fn check_value(shard: &Shard, len: usize) -> Result<(), String> {
    let max = shard.config.value_size_max;
    if len > max {
        return Err(format!(
            "ERR string of {len} bytes exceeds maximum allowed size ({max} bytes)"
        ));
    }
    Ok(())
}

/// The live record of `key` and the version of whatever is stored (live,
/// expired or tombstone), which a following write must be stamped above.
async fn read(shard: &Shard, key: &[u8]) -> Result<(Option<Record>, Option<Version>), String> {
    let record = crate::service::read(shard, key, Consistency::Default)
        .await
        .map_err(outcome_message)?;
    let floor = record.as_ref().map(|r| r.version);
    Ok((live(record, now_ms()), floor))
}

async fn write(
    shard: &Shard,
    key: &[u8],
    value: &[u8],
    floor: Option<Version>,
    expires_at_ms: u64,
) -> Result<(), String> {
    let version = stamp(shard, Version::ZERO, floor).map_err(outcome_message)?;
    crate::service::put_value(
        shard,
        key,
        value,
        version,
        expires_at_ms,
        Consistency::Default,
    )
    .await
    .map_err(outcome_message)
}

async fn delete(shard: &Shard, key: &[u8], floor: Option<Version>) -> Result<(), String> {
    let version = stamp(shard, Version::ZERO, floor).map_err(outcome_message)?;
    crate::service::delete_key(shard, key, version, Consistency::Default)
        .await
        .map_err(outcome_message)
}

/// The deadline of `expiry` in Unix ms (at least 1: 0 means "no expiry" in
/// the store), or Redis's invalid-expire-time error for `command`.
fn deadline(expiry: Expiry, now: u64, command: &'static str) -> Result<u64, String> {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    match expiry.deadline_unix_ms(now) {
        Some(d) => Ok(u64::try_from(d).unwrap_or(0).max(1)),
        None => Err(CommandError::InvalidExpireTime { command }.to_string()),
    }
}

fn value_of(r: &Record) -> &[u8] {
    r.value.as_deref().unwrap_or_default()
}

async fn exec_key(shard: &Shard, cmd: &Command<'_>, r: &mut Reply<'_>) {
    if let Err(m) = run_key(shard, cmd, r).await {
        r.error(&m);
    }
}

async fn run_key(shard: &Shard, cmd: &Command<'_>, r: &mut Reply<'_>) -> Result<(), String> {
    match *cmd {
        Command::Get { key } => {
            check_key(shard, key)?;
            let (cur, _) = read(shard, key).await?;
            r.bulk_or_null(cur.as_ref().map(value_of));
        }
        Command::Set {
            key,
            value,
            condition,
            ttl,
            get,
        } => {
            check_key(shard, key)?;
            check_value(shard, value.len())?;
            let _guard = shard.locks.lock(key).await;
            // A plain SET needs nothing of the old value (like the binary
            // PUT, it is stamped above everything this shard stamped).
            let needs_read =
                get || condition != SetCondition::Always || matches!(ttl, SetTtl::Keep);
            let (cur, floor) = if needs_read {
                read(shard, key).await?
            } else {
                (None, None)
            };
            let now = now_ms();
            let ok = match condition {
                SetCondition::Always => true,
                SetCondition::IfAbsent => cur.is_none(),
                SetCondition::IfPresent => cur.is_some(),
            };
            if ok {
                let expires = match ttl {
                    SetTtl::Clear => 0,
                    SetTtl::Keep => cur.as_ref().map_or(0, |c| c.expires_at_ms),
                    SetTtl::Expire(e) => deadline(e, now, "set")?,
                };
                write(shard, key, value, floor, expires).await?;
            }
            if get {
                r.bulk_or_null(cur.as_ref().map(value_of));
            } else if ok {
                r.ok();
            } else {
                r.null();
            }
        }
        Command::SetNx { key, value } => {
            check_key(shard, key)?;
            check_value(shard, value.len())?;
            let _guard = shard.locks.lock(key).await;
            let (cur, floor) = read(shard, key).await?;
            if cur.is_some() {
                r.integer(0);
            } else {
                write(shard, key, value, floor, 0).await?;
                r.integer(1);
            }
        }
        Command::GetDel { key } => {
            check_key(shard, key)?;
            let _guard = shard.locks.lock(key).await;
            let (cur, floor) = read(shard, key).await?;
            if cur.is_some() {
                delete(shard, key, floor).await?;
            }
            r.bulk_or_null(cur.as_ref().map(value_of));
        }
        Command::GetEx { key, ttl } => {
            check_key(shard, key)?;
            let _guard = shard.locks.lock(key).await;
            let (cur, floor) = read(shard, key).await?;
            let Some(cur) = cur else {
                r.null();
                return Ok(());
            };
            let now = now_ms();
            match ttl {
                GetExTtl::Unchanged => {}
                GetExTtl::Persist => {
                    if cur.expires_at_ms != 0 {
                        write(shard, key, value_of(&cur), floor, 0).await?;
                    }
                }
                GetExTtl::Expire(e) => {
                    let d = deadline(e, now, "getex")?;
                    if d <= now {
                        delete(shard, key, floor).await?;
                    } else {
                        write(shard, key, value_of(&cur), floor, d).await?;
                    }
                }
            }
            r.bulk(value_of(&cur));
        }
        Command::IncrBy { key, delta } => {
            check_key(shard, key)?;
            let _guard = shard.locks.lock(key).await;
            let (cur, floor) = read(shard, key).await?;
            let (current, expires) = match &cur {
                None => (0, 0),
                Some(c) => (
                    ringkv_net::resp::num::parse_i64(value_of(c))
                        .ok_or_else(|| replies::ERR_NOT_INTEGER.to_string())?,
                    c.expires_at_ms,
                ),
            };
            let next = current
                .checked_add(delta)
                .ok_or_else(|| replies::ERR_INCR_OVERFLOW.to_string())?;
            write(shard, key, next.to_string().as_bytes(), floor, expires).await?;
            r.integer(next);
        }
        Command::Append { key, value } => {
            check_key(shard, key)?;
            let _guard = shard.locks.lock(key).await;
            let (cur, floor) = read(shard, key).await?;
            let old = cur.as_ref().map_or(&[][..], value_of);
            check_value(shard, old.len() + value.len())?;
            let mut next = Vec::with_capacity(old.len() + value.len());
            next.extend_from_slice(old);
            next.extend_from_slice(value);
            let expires = cur.as_ref().map_or(0, |c| c.expires_at_ms);
            write(shard, key, &next, floor, expires).await?;
            r.integer(next.len() as i64);
        }
        Command::Strlen { key } => {
            check_key(shard, key)?;
            let (cur, _) = read(shard, key).await?;
            r.integer(cur.as_ref().map_or(0, |c| value_of(c).len()) as i64);
        }
        Command::Expire {
            key,
            when,
            flags,
            command,
        } => {
            check_key(shard, key)?;
            let _guard = shard.locks.lock(key).await;
            let (cur, floor) = read(shard, key).await?;
            let now = now_ms();
            let d = deadline(when, now, command)?;
            let Some(cur) = cur else {
                r.integer(0);
                return Ok(());
            };
            let old = cur.expires_at_ms; // 0: no TTL, i.e. infinite
            let refused = (flags.nx && old != 0)
                || (flags.xx && old == 0)
                || (flags.gt && (old == 0 || d <= old))
                || (flags.lt && old != 0 && d >= old);
            if refused {
                r.integer(0);
                return Ok(());
            }
            if d <= now {
                delete(shard, key, floor).await?;
            } else {
                write(shard, key, value_of(&cur), floor, d).await?;
            }
            r.integer(1);
        }
        Command::Persist { key } => {
            check_key(shard, key)?;
            let _guard = shard.locks.lock(key).await;
            let (cur, floor) = read(shard, key).await?;
            match cur {
                Some(c) if c.expires_at_ms != 0 => {
                    write(shard, key, value_of(&c), floor, 0).await?;
                    r.integer(1);
                }
                _ => r.integer(0),
            }
        }
        Command::Ttl { key, unit } => {
            check_key(shard, key)?;
            let (cur, _) = read(shard, key).await?;
            let n = match cur {
                None => -2,
                Some(c) if c.expires_at_ms == 0 => -1,
                Some(c) => {
                    let ms = c.expires_at_ms.saturating_sub(now_ms());
                    let n = match unit {
                        TtlUnit::Millis => ms,
                        TtlUnit::Seconds => ms.saturating_add(500) / 1000,
                    };
                    i64::try_from(n).unwrap_or(i64::MAX)
                }
            };
            r.integer(n);
        }
        Command::Type { key } => {
            check_key(shard, key)?;
            let (cur, _) = read(shard, key).await?;
            r.simple(if cur.is_some() { "string" } else { "none" });
        }
        _ => r.error("ERR not a single-key command"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Multi-key and node-wide commands.

/// Counts (EXISTS) or deletes (DEL) this shard's `keys`.
async fn keys_local(shard: &Shard, op: KeysOp, keys: &[&[u8]]) -> Result<u64, String> {
    let mut n = 0;
    for key in keys {
        check_key(shard, key)?;
        match op {
            KeysOp::Exists => {
                if read(shard, key).await?.0.is_some() {
                    n += 1;
                }
            }
            KeysOp::Delete => {
                let _guard = shard.locks.lock(key).await;
                let (cur, floor) = read(shard, key).await?;
                if cur.is_some() {
                    delete(shard, key, floor).await?;
                    n += 1;
                }
            }
        }
    }
    Ok(n)
}

/// Runs `op` on every key of `keys`, each on its owner; the total count.
async fn keys_everywhere(shard: &Rc<Shard>, op: KeysOp, keys: ArgSlice<'_>) -> Result<u64, String> {
    let keys: Vec<&[u8]> = keys.iter().collect();
    let groups = group_by_owner(shard, &keys, |k| k);
    let mut parts = Vec::new();
    for (owner, group) in groups.into_iter().enumerate() {
        if group.is_empty() {
            continue;
        }
        let shard = shard.clone();
        parts.push(Box::pin(async move {
            let keys: Vec<&[u8]> = group.iter().map(|(_, k)| *k).collect();
            if owner as u32 == shard.id {
                keys_local(&shard, op, &keys).await
            } else {
                let keys = keys.iter().map(|k| k.to_vec()).collect();
                match shard.call(owner as u32, Call::Keys { op, keys }).await {
                    Answer::Count(n) => Ok(n),
                    other => Err(unexpected(other)),
                }
            }
        }));
    }
    let mut total = 0;
    for part in crate::join::join_all(parts).await {
        total += part?;
    }
    Ok(total)
}

/// MGET: every key read from its owner, in request order.
async fn mget(shard: &Rc<Shard>, keys: ArgSlice<'_>) -> Result<Vec<Option<Vec<u8>>>, String> {
    let keys: Vec<&[u8]> = keys.iter().collect();
    let values = mget_values(shard, &keys, Consistency::Default)
        .await
        .map_err(unexpected)?;
    Ok(values
        .into_iter()
        .map(|v| v.map(|(value, _)| value))
        .collect())
}

/// MSET: each owner writes its pairs as one atomic batch.
async fn mset(shard: &Rc<Shard>, pairs: ArgSlice<'_>) -> Result<(), String> {
    let pairs: Vec<(&[u8], &[u8])> = pairs.pairs().collect();
    for (k, v) in &pairs {
        check_key(shard, k)?;
        check_value(shard, v.len())?;
    }
    let groups = group_by_owner(shard, &pairs, |(k, _)| k);
    let mut parts = Vec::new();
    for (owner, group) in groups.into_iter().enumerate() {
        if group.is_empty() {
            continue;
        }
        let shard = shard.clone();
        parts.push(Box::pin(async move {
            if owner as u32 == shard.id {
                let pairs: Vec<(&[u8], &[u8])> = group.iter().map(|(_, p)| *p).collect();
                put_local(&shard, Version::ZERO, &pairs, 0, Consistency::Default)
                    .await
                    .map(|_| ())
                    .map_err(outcome_message)
            } else {
                let pairs = group
                    .iter()
                    .map(|(_, (k, v))| (k.to_vec(), v.to_vec()))
                    .collect();
                let call = Call::Put {
                    pairs,
                    ttl_ms: 0,
                    session: Version::ZERO,
                    level: Consistency::Default,
                };
                match shard.call(owner as u32, call).await {
                    Answer::Written(_) => Ok(()),
                    other => Err(unexpected(other)),
                }
            }
        }));
    }
    for part in crate::join::join_all(parts).await {
        part?;
    }
    Ok(())
}

/// The span of keys matching `pattern` after `after` (`None`: empty).
fn pattern_span(pattern: KeyPattern<'_>, after: &[u8]) -> Option<ScanSpan> {
    match pattern {
        KeyPattern::All => scan_span(b"", b"", false, after),
        KeyPattern::Prefix(p) => scan_span(p, b"", true, after),
    }
}

/// Up to `limit` live entries of shard `owner` in `span`.
async fn scan_shard(
    shard: &Shard,
    owner: u32,
    span: ScanSpan,
    limit: usize,
) -> Result<Vec<Entry>, String> {
    if owner == shard.id {
        shard
            .store
            .scan(span, limit, now_ms())
            .await
            .map_err(|e| outcome_message(storage_failure(shard, &e)))
    } else {
        match shard.call(owner, Call::Scan { span, limit }).await {
            Answer::Entries(e) => Ok(e),
            other => Err(unexpected(other)),
        }
    }
}

/// Walks every live key of this shard (in pages) for `op`.
async fn walk_local(shard: &Shard, op: &WalkOp) -> Answer {
    match walk_local_inner(shard, op).await {
        Ok(a) => a,
        Err(m) => Answer::Failed(ringkv_net::client_frame::Status::StorageError, m),
    }
}

async fn walk_local_inner(shard: &Shard, op: &WalkOp) -> Result<Answer, String> {
    let prefix: &[u8] = match op {
        WalkOp::Keys(p) => p,
        _ => b"",
    };
    let pattern = if prefix.is_empty() {
        KeyPattern::All
    } else {
        KeyPattern::Prefix(prefix)
    };
    let (mut keys, mut expires) = (0u64, 0u64);
    let mut found = Vec::new();
    let mut after: Vec<u8> = Vec::new();
    while let Some(span) = pattern_span(pattern, &after) {
        let page = scan_shard(shard, shard.id, span, RESP_WALK_PAGE).await?;
        let full = page.len() >= RESP_WALK_PAGE;
        let Some(last) = page.last() else { break };
        after = last.key.clone();
        keys += page.len() as u64;
        expires += page.iter().filter(|e| e.record.expires_at_ms != 0).count() as u64;
        match op {
            WalkOp::Count => {}
            WalkOp::Keys(_) => found.extend(page.into_iter().map(|e| e.key)),
            WalkOp::Flush => {
                let names: Vec<&[u8]> = page.iter().map(|e| e.key.as_slice()).collect();
                let _guards = shard.locks.lock_many(&names).await;
                let floor = page.iter().map(|e| e.record.version).max();
                let version = stamp(shard, Version::ZERO, floor).map_err(outcome_message)?;
                if shard.cluster().is_some() {
                    // Tombstones must reach the replicas too, or read
                    // repair would bring the keys back.
                    for e in &page {
                        crate::service::delete_key(shard, &e.key, version, Consistency::Default)
                            .await
                            .map_err(outcome_message)?;
                    }
                    continue;
                }
                let batch = page
                    .into_iter()
                    .map(|e| BatchWrite {
                        key: e.key,
                        record: Record {
                            version,
                            expires_at_ms: 0,
                            value: None,
                        },
                    })
                    .collect();
                shard
                    .store
                    .write(batch)
                    .await
                    .map_err(|e| outcome_message(storage_failure(shard, &e)))?;
            }
        }
        if !full {
            break;
        }
        // A page of a memtable-only shard takes no I/O, so without this the
        // walk of a large shard held it from the first page to the last
        // (DBSIZE over 1M keys: 0.23-0.38 s during which no request of the
        // shard was answered). Between pages the shard serves the others.
        futures_lite::future::yield_now().await;
    }
    Ok(match op {
        WalkOp::Keys(_) => Answer::Keys(found),
        _ => Answer::Counted { keys, expires },
    })
}

/// Runs `op` on every shard; the answers in shard order.
async fn walk_all(shard: &Rc<Shard>, op: WalkOp) -> Result<Vec<Answer>, String> {
    let mut parts = Vec::new();
    for owner in 0..shard.shard_count {
        let (shard, op) = (shard.clone(), op.clone());
        parts.push(Box::pin(async move {
            if owner == shard.id {
                walk_local(&shard, &op).await
            } else {
                shard.call(owner, Call::Walk(op)).await
            }
        }));
    }
    let mut answers = Vec::new();
    for a in crate::join::join_all(parts).await {
        match a {
            Answer::Failed(..) | Answer::Unavailable => return Err(unexpected(a)),
            a => answers.push(a),
        }
    }
    Ok(answers)
}

/// Live keys and keys with a TTL on the whole node (exact: walks every key).
pub(crate) async fn count_keys(shard: &Rc<Shard>) -> Result<(u64, u64), String> {
    let (mut keys, mut expires) = (0, 0);
    for a in walk_all(shard, WalkOp::Count).await? {
        if let Answer::Counted {
            keys: k,
            expires: e,
        } = a
        {
            keys += k;
            expires += e;
        }
    }
    Ok((keys, expires))
}

/// SCAN: up to `count` keys from the position of `cursor`, shard by shard.
async fn scan(
    shard: &Rc<Shard>,
    session: &mut Session,
    cursor: u64,
    pattern: KeyPattern<'_>,
    count: usize,
) -> Result<(u64, Vec<Vec<u8>>), String> {
    let (mut at, mut after) = session
        .cursor(cursor)
        .ok_or_else(|| CommandError::InvalidCursor.to_string())?;
    let mut keys = Vec::new();
    while at < shard.shard_count {
        let want = count - keys.len();
        let page = match pattern_span(pattern, &after) {
            Some(span) => scan_shard(shard, at, span, want).await?,
            None => Vec::new(),
        };
        let full = page.len() >= want;
        if let Some(last) = page.last() {
            after = last.key.clone();
        }
        keys.extend(page.into_iter().map(|e| e.key));
        if full {
            let next = session.remember_cursor(at, after);
            return Ok((next, keys));
        }
        at += 1;
        after = Vec::new();
    }
    Ok((0, keys))
}

async fn exec_other(shard: &Rc<Shard>, session: &mut Session, cmd: Command<'_>, out: &mut Vec<u8>) {
    let version = session.version;
    if let Err(m) = run_other(shard, session, cmd, out).await {
        Reply::new(out, version).error(&m);
    }
}

async fn run_other(
    shard: &Rc<Shard>,
    session: &mut Session,
    cmd: Command<'_>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let v = session.version;
    match cmd {
        Command::Empty => {}
        Command::Ping { message } => {
            let mut r = Reply::new(out, v);
            match message {
                None => r.simple("PONG"),
                Some(m) => r.bulk(m),
            }
        }
        Command::Echo { message } => Reply::new(out, v).bulk(message),
        Command::Hello {
            protover,
            auth,
            setname,
        } => {
            if let Some((user, pass)) = auth {
                if !password_ok(shard, Some(user), pass) {
                    return Err(replies::ERR_WRONGPASS.into());
                }
                session.authenticated = true;
            }
            if !session.authenticated {
                return Err(ERR_HELLO_NOAUTH.into());
            }
            if let Some(p) = protover {
                session.version = p;
            }
            if let Some(name) = setname {
                session.name = (!name.is_empty()).then(|| name.to_vec());
            }
            let info = replies::HelloInfo {
                server: "redis",
                version: REDIS_VERSION_COMPAT,
                client_id: session.id,
            };
            replies::write_hello(&mut Reply::new(out, session.version), &info);
        }
        Command::Auth { username, password } => {
            if shard.config.requirepass.is_none() && username.is_none() {
                return Err(replies::ERR_AUTH_NOT_CONFIGURED.into());
            }
            if !password_ok(shard, username, password) {
                return Err(replies::ERR_WRONGPASS.into());
            }
            session.authenticated = true;
            Reply::new(out, v).ok();
        }
        Command::Select { index } => {
            if index != 0 {
                return Err(replies::ERR_DB_INDEX.into());
            }
            Reply::new(out, v).ok();
        }
        Command::Quit => {
            session.quit = true;
            Reply::new(out, v).ok();
        }
        Command::MGet { keys } => {
            for k in keys.iter() {
                check_key(shard, k)?;
            }
            let values = mget(shard, keys).await?;
            let mut r = Reply::new(out, v);
            r.array_header(values.len());
            for value in &values {
                r.bulk_or_null(value.as_deref());
            }
        }
        Command::MSet { pairs } => {
            mset(shard, pairs).await?;
            Reply::new(out, v).ok();
        }
        Command::MSetNx { pairs } => {
            let keys: Vec<Cow<'_, [u8]>> = pairs.pairs().map(|(k, _)| Cow::Borrowed(k)).collect();
            let keys = Args::from_parts(keys);
            let existing = keys_everywhere(shard, KeysOp::Exists, keys.as_slice()).await?;
            if existing > 0 {
                Reply::new(out, v).integer(0);
            } else {
                mset(shard, pairs).await?;
                Reply::new(out, v).integer(1);
            }
        }
        Command::Del { keys } | Command::Unlink { keys } => {
            let n = keys_everywhere(shard, KeysOp::Delete, keys).await?;
            Reply::new(out, v).integer(n as i64);
        }
        Command::Exists { keys } => {
            let n = keys_everywhere(shard, KeysOp::Exists, keys).await?;
            Reply::new(out, v).integer(n as i64);
        }
        Command::Scan {
            cursor,
            pattern,
            count,
            type_name,
        } => {
            let count = count.map_or(RESP_SCAN_COUNT_DEFAULT, |c| {
                usize::try_from(c)
                    .unwrap_or(usize::MAX)
                    .clamp(1, RESP_SCAN_COUNT_MAX)
            });
            // Every ringkv key is a string: TYPE string filters nothing and
            // any other type matches nothing.
            let (next, keys) = match type_name {
                Some(t) if !t.eq_ignore_ascii_case(b"string") => (0, Vec::new()),
                _ => scan(shard, session, cursor, pattern, count).await?,
            };
            let mut r = Reply::new(out, v);
            r.array_header(2);
            r.bulk(next.to_string().as_bytes());
            r.array_header(keys.len());
            for k in &keys {
                r.bulk(k);
            }
        }
        Command::Keys { pattern } => {
            let prefix = match pattern {
                KeyPattern::All => Vec::new(),
                KeyPattern::Prefix(p) => p.to_vec(),
            };
            let mut keys = Vec::new();
            for a in walk_all(shard, WalkOp::Keys(prefix)).await? {
                if let Answer::Keys(k) = a {
                    keys.extend(k);
                }
            }
            keys.sort_unstable();
            let mut r = Reply::new(out, v);
            r.array_header(keys.len());
            for k in &keys {
                r.bulk(k);
            }
        }
        Command::DbSize => {
            let (keys, _) = count_keys(shard).await?;
            Reply::new(out, v).integer(keys as i64);
        }
        Command::Flush { .. } => {
            if !shard.config.allow_flush {
                return Err(ERR_FLUSH_DISABLED.into());
            }
            walk_all(shard, WalkOp::Flush).await?;
            Reply::new(out, v).ok();
        }
        Command::Info { sections } => {
            let text = crate::resp_info::info_text(shard, sections).await?;
            Reply::new(out, v).verbatim_text(text.as_bytes());
        }
        Command::CommandList => table::write_command_list(&mut Reply::new(out, v)),
        Command::CommandCount => Reply::new(out, v).integer(table::command_count() as i64),
        Command::CommandDocs { names } => {
            table::write_command_docs_reply(&mut Reply::new(out, v), names.iter())
        }
        Command::CommandInfo { names } => {
            table::write_command_info_reply(&mut Reply::new(out, v), names.iter())
        }
        Command::ClientSetName { name } => {
            session.name = (!name.is_empty()).then(|| name.to_vec());
            Reply::new(out, v).ok();
        }
        Command::ClientGetName => Reply::new(out, v).bulk_or_null(session.name.as_deref()),
        Command::ClientId => Reply::new(out, v).integer(session.id),
        Command::ClientInfo => {
            let line = format!(
                "id={} addr={} name={} db=0 resp={}\n",
                session.id,
                session.peer,
                String::from_utf8_lossy(session.name.as_deref().unwrap_or_default()),
                session.version.number()
            );
            Reply::new(out, v).verbatim_text(line.as_bytes());
        }
        Command::ClientSetInfo { .. } => Reply::new(out, v).ok(),
        Command::ConfigGet { parameters } => {
            let known = crate::resp_info::config_values(shard);
            let matched: Vec<&(&str, String)> = known
                .iter()
                .filter(|(name, _)| {
                    parameters
                        .iter()
                        .any(|p| crate::resp_info::glob_match(p, name.as_bytes()))
                })
                .collect();
            let mut r = Reply::new(out, v);
            r.map_header(matched.len());
            for (name, value) in matched {
                r.bulk(name.as_bytes());
                r.bulk(value.as_bytes());
            }
        }
        Command::Unknown { args } => return Err(unknown_command_message(args.iter())),
        // Single-key commands are routed before this point.
        _ => {
            let mut r = Reply::new(out, v);
            exec_key(shard, &cmd, &mut r).await;
        }
    }
    Ok(())
}

/// Whether `user`/`password` are the configured credentials (the only user
/// is `default`; without `requirepass` every password is accepted, as Redis's
/// `nopass` default user does).
fn password_ok(shard: &Shard, user: Option<&[u8]>, password: &[u8]) -> bool {
    if user.is_some_and(|u| u != b"default") {
        return false;
    }
    match &shard.config.requirepass {
        None => true,
        Some(p) => {
            let p = p.as_bytes();
            // Compare without an early exit on the first differing byte.
            p.len() == password.len()
                && p.iter()
                    .zip(password)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        }
    }
}
