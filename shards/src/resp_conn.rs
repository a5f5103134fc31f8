//! One RESP (Redis protocol) client connection: read into a buffer, parse
//! every complete command in place, execute them in order, encode all
//! replies of the batch into one buffer, write it once.
//!
//! ```text
//!  buf: [ cmd | cmd | cmd | partial... ]   <- read appends here
//!  out: [ reply | reply | reply ]          -> one write
//! ```
//!
//! Invariants:
//! - Replies come in request order, and commands of one connection run one
//!   after the other (a pipelined `SET k v` then `GET k` reads `v`), as in
//!   Redis. Concurrency comes from connections, not from one pipeline.
//! - The receive buffer never grows beyond the command size limit plus its
//!   initial size (the parser refuses larger commands from their headers).
//! - A batch stops after [`RESP_BATCH_COMMANDS_MAX`] commands or
//!   [`RESP_BATCH_OUTPUT_MAX`] bytes of replies, so one pipeline cannot hold
//!   unbounded memory.
//! - A protocol error is answered with Redis's error line after the replies
//!   of the commands before it, then the connection is closed; an unknown
//!   command or bad arguments get an error reply and the connection goes on.

use crate::conn::BatchEnd;
use crate::limits::RECEIVE_BUFFER_SIZE_INITIAL;
use crate::resp_exec::{
    commit_on, execute, execute_now, foreign_owner, forward_run, PendingCommit, RanNow, Session,
};
use crate::service::now_ms;
use crate::shard::{Shard, ShardCounters};
use crate::stop::StopEvent;
use crate::store::EntryHints;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use ringkv_net::resp::{parse_command, Command, CommandError, Decoded, Reply, RespLimits};
use std::rc::Rc;

/// Largest number of commands executed before their replies are written.
pub const RESP_BATCH_COMMANDS_MAX: usize = 1024;

/// Reply bytes after which a batch stops and writes (the command that
/// crosses it still completes; a run forwarded to another shard stops there
/// too, and its unrun commands wait for the next batch).
pub const RESP_BATCH_OUTPUT_MAX: usize = 1 << 20;

/// The replies of a batch that wait for their writes to be durable: the
/// furthest WAL position to wait for on each shard that holds one (this
/// shard's writes run at once, and writes forwarded to their owners), and
/// where in the reply buffer the first of those replies starts (what a
/// failed commit takes back).
struct Unsettled {
    lsns: Vec<PendingCommit>,
    replies_from: usize,
}

impl Unsettled {
    /// Adds a reply that starts at `replies_from` and waits for `pending`.
    fn add(unsettled: &mut Option<Unsettled>, pending: PendingCommit, replies_from: usize) {
        let u = unsettled.get_or_insert(Unsettled {
            lsns: Vec::new(),
            replies_from,
        });
        match u.lsns.iter_mut().find(|p| p.shard == pending.shard) {
            Some(p) => p.lsn = p.lsn.max(pending.lsn),
            None => u.lsns.push(pending),
        }
    }

    /// Waits for every shard's commit, together; the first failure's
    /// error line.
    async fn settle(&self, shard: &Shard) -> Result<(), String> {
        let commits: Vec<_> = self
            .lsns
            .iter()
            .map(|p| Box::pin(commit_on(shard, p.shard, p.lsn)))
            .collect();
        crate::join::join_all(commits).await.into_iter().collect()
    }
}

/// Consecutive commands of a batch, `buf[from..ends.last()]`, whose keys
/// shard `owner` owns: forwarded there in one call and run in order.
struct Run {
    owner: u32,
    from: usize,
    /// Where each command ends in `buf`.
    ends: Vec<usize>,
}

impl Run {
    /// Forwards `run` (if any) and appends its replies to `out`, adding the
    /// commit they wait for to `unsettled`. The owner stops once the batch's
    /// output reaches [`RESP_BATCH_OUTPUT_MAX`]: then the commands it did not
    /// run are given back to the buffer (`end`), and `true` says the batch
    /// must stop.
    async fn send(
        run: Option<Run>,
        shard: &Shard,
        session: &Session,
        buf: &[u8],
        out: &mut Vec<u8>,
        unsettled: &mut Option<Unsettled>,
        end: &mut BatchEnd,
    ) -> bool {
        let Some(run) = run else { return false };
        let replies_from = out.len();
        let to = run.ends.last().copied().unwrap_or(run.from);
        let commands = buf[run.from..to].to_vec();
        let count = run.ends.len();
        let budget = RESP_BATCH_OUTPUT_MAX.saturating_sub(out.len());
        let (pending, ran) = forward_run(
            shard,
            run.owner,
            commands,
            count,
            budget,
            session.version,
            out,
        )
        .await;
        if let Some(pending) = pending {
            Unsettled::add(unsettled, pending, replies_from);
        }
        if ran >= count {
            return false;
        }
        end.consumed = run.ends[..ran].last().copied().unwrap_or(run.from);
        end.frames -= count - ran;
        true
    }
}

/// Parses and executes the complete commands at the start of `buf`, in
/// order, appending every reply to `out`; at most
/// [`RESP_BATCH_COMMANDS_MAX`] commands or [`RESP_BATCH_OUTPUT_MAX`] bytes of
/// replies. Commands that can run at once do ([`execute_now`]); a SET run at
/// once is replied to in place, and the batch waits for its commit before it
/// returns, so its replies may be sent when it does (a pipeline of SETs
/// shares one commit, as the binary protocol's do); a SET forwarded to its
/// owner is replied to once applied there, and the batch waits for the
/// owner's commit the same way (one per shard, together). If that commit fails,
/// the replies from the first that waits on (for a forwarded run, from the
/// run's first reply) are replaced by the storage error, and the connection
/// is closed. Shared by both network engines.
pub(crate) async fn run_batch(
    shard: &Rc<Shard>,
    session: &mut Session,
    buf: &[u8],
    out: &mut Vec<u8>,
) -> BatchEnd {
    let mut end = BatchEnd {
        consumed: 0,
        needed: 0,
        close: false,
        frames: 0,
    };
    let now = now_ms();
    let mut unsettled: Option<Unsettled> = None;
    'batch: while end.consumed < buf.len() {
        // Parse a stretch of commands ahead (only while authenticated: an
        // AUTH changes the limits the commands after it are parsed with).
        let ahead_max = if session.authenticated {
            RESP_PARSE_AHEAD
        } else {
            1
        };
        let limits = RespLimits {
            authenticated: session.authenticated,
            ..RespLimits::default()
        };
        let mut ahead = Vec::with_capacity(ahead_max);
        let mut pos = end.consumed;
        let mut stopped = None;
        while ahead.len() < ahead_max
            && pos < buf.len()
            && end.frames + ahead.len() < RESP_BATCH_COMMANDS_MAX
        {
            match parse_command(&buf[pos..], &limits) {
                Ok(Decoded::Frame { frame: args, len }) => {
                    pos += len;
                    ahead.push((args, len));
                }
                Ok(Decoded::Incomplete { needed }) => {
                    stopped = Some(Ok(needed));
                    break;
                }
                Err(e) => {
                    stopped = Some(Err(e));
                    break;
                }
            }
        }
        if ahead.is_empty() && stopped.is_none() {
            break; // the command cap
        }
        let commands: Vec<_> = ahead.iter().map(|(args, _)| Command::parse(args)).collect();
        let (reads, writes) = hint_keys(shard, &commands);
        let mut entry_hints = EntryHints::new(&shard.store, &reads, &writes);
        // Consecutive commands of one other shard's keys go there together.
        let mut run: Option<Run> = None;
        for ((args, len), parsed) in ahead.iter().zip(commands) {
            if out.len() >= RESP_BATCH_OUTPUT_MAX {
                Run::send(
                    run.take(),
                    shard,
                    session,
                    buf,
                    out,
                    &mut unsettled,
                    &mut end,
                )
                .await;
                break 'batch;
            }
            let owner = foreign_owner(shard, session, &parsed);
            // A command that does not join the run in the making sends it
            // first (before it counts itself: a run cut short by the output
            // cap gives its unrun commands back, and this one with them).
            if !matches!((&run, owner), (Some(r), Some(o)) if r.owner == o)
                && Run::send(
                    run.take(),
                    shard,
                    session,
                    buf,
                    out,
                    &mut unsettled,
                    &mut end,
                )
                .await
            {
                break 'batch;
            }
            let at = end.consumed;
            end.consumed += len;
            end.frames += 1;
            if let Some(owner) = owner {
                match &mut run {
                    Some(r) => r.ends.push(end.consumed),
                    None => {
                        run = Some(Run {
                            owner,
                            from: at,
                            ends: vec![end.consumed],
                        })
                    }
                }
                continue;
            }
            match parsed {
                Ok(Command::Get { .. }) => entry_hints.next_read(&shard.store),
                Ok(Command::Set { .. }) => entry_hints.next_write(&shard.store),
                _ => {}
            }
            let replies_from = out.len();
            let ran = match &parsed {
                Ok(command) => execute_now(shard, session, command, now, out),
                Err(_) => RanNow::NotTaken,
            };
            match ran {
                RanNow::Replied => {}
                RanNow::Written(lsn) => {
                    if !shard.store.is_durable(lsn) {
                        let pending = PendingCommit {
                            shard: shard.id,
                            lsn,
                        };
                        Unsettled::add(&mut unsettled, pending, replies_from);
                    }
                }
                RanNow::NotTaken => {
                    if let Some(pending) = execute(shard, session, args, parsed, out).await {
                        Unsettled::add(&mut unsettled, pending, replies_from);
                    }
                }
            }
            if session.quit {
                end.close = true;
                break 'batch;
            }
        }
        if Run::send(
            run.take(),
            shard,
            session,
            buf,
            out,
            &mut unsettled,
            &mut end,
        )
        .await
        {
            break 'batch;
        }
        match stopped {
            None => {}
            Some(Ok(needed)) => {
                end.needed = needed.max(1);
                break;
            }
            Some(Err(e)) => {
                ShardCounters::bump(&shard.counters.bad_requests);
                tracing::debug!(shard = shard.id, "RESP protocol error: {e}");
                Reply::new(out, session.version).error(&e.redis_message());
                end.close = true;
                break;
            }
        }
    }
    if let Some(u) = unsettled {
        if let Err(failure) = u.settle(shard).await {
            out.truncate(u.replies_from);
            Reply::new(out, session.version).error(&failure);
            end.close = true;
        }
    }
    end
}

/// Commands a batch parses before it runs them, so that the keys of their
/// GETs and SETs are hinted to the caches together and their cache misses
/// overlap (as the binary protocol's batch does).
const RESP_PARSE_AHEAD: usize = 32;

/// Hints the keys of the GETs (reads) and SETs (writes) among `commands` to
/// the store (see [`crate::store::Store::prefetch`]). Returns the keys of
/// the GETs and of the SETs this shard runs, in order (for [`EntryHints`]).
fn hint_keys<'a>(
    shard: &Shard,
    commands: &[Result<Command<'a>, CommandError>],
) -> (Vec<&'a [u8]>, Vec<&'a [u8]>) {
    let mut reads: Vec<&'a [u8]> = Vec::new();
    let mut writes: Vec<&'a [u8]> = Vec::new();
    // Keys of other shards are forwarded, not read here.
    let ours = |key: &[u8]| shard.shard_count == 1 || shard.owner_of(key) == shard.id;
    for command in commands.iter().flatten() {
        match command {
            Command::Get { key } if ours(key) => reads.push(key),
            Command::Set { key, .. } if ours(key) => writes.push(key),
            _ => {}
        }
    }
    if !reads.is_empty() || !writes.is_empty() {
        shard.store.prefetch(&reads, &writes);
    }
    (reads, writes)
}

/// Serves one RESP connection until the peer closes it, sends QUIT or a
/// protocol error, or the shard stops (after the batch in flight).
pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream, stop: StopEvent) {
    let size_max = RespLimits::default().command_size_max + RECEIVE_BUFFER_SIZE_INITIAL;
    let mut session = Session::new(&shard, crate::listener::peer_of(&stream));
    let mut buf = vec![0u8; RECEIVE_BUFFER_SIZE_INITIAL];
    let mut filled = 0usize;
    let mut out = Vec::with_capacity(RECEIVE_BUFFER_SIZE_INITIAL);
    loop {
        let end = run_batch(&shard, &mut session, &buf[..filled], &mut out).await;
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
            if out.capacity() > 4 * RECEIVE_BUFFER_SIZE_INITIAL {
                out.shrink_to(RECEIVE_BUFFER_SIZE_INITIAL);
            }
        }
        if end.close {
            let _ = stream.close().await;
            return;
        }
        if end.consumed > 0 {
            buf.copy_within(end.consumed..filled, 0);
            filled -= end.consumed;
        }
        if end.frames > 0 && end.needed == 0 && filled > 0 {
            // The batch stopped at a cap: more complete commands may wait.
            continue;
        }
        if stop.is_fired() {
            let _ = stream.close().await;
            return;
        }
        let want = (filled + end.needed.max(1)).min(size_max);
        if want > buf.len() {
            buf.resize(want.max(buf.len() * 2).min(size_max), 0);
        } else if filled == 0 && buf.len() > 4 * RECEIVE_BUFFER_SIZE_INITIAL {
            buf.truncate(RECEIVE_BUFFER_SIZE_INITIAL);
            buf.shrink_to_fit();
        }
        if filled == buf.len() {
            // Cannot happen: the parser refuses a command larger than the
            // buffer can grow to. Refuse the stream rather than spin.
            let _ = stream
                .write_all(b"-ERR Protocol error: command too large\r\n")
                .await;
            return;
        }
        let read = futures_lite::future::or(
            async { Some(stream.read(&mut buf[filled..]).await) },
            async {
                stop.wait().await;
                None
            },
        )
        .await;
        match read {
            Some(Ok(0)) | Some(Err(_)) => return,
            Some(Ok(n)) => filled += n,
            None => {
                let _ = stream.close().await;
                return;
            }
        }
    }
}
