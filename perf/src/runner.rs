//! Runs one phase (load or run) of loadgen: one glommio executor per thread, pinned to a CPU,
//! each driving many connections as local tasks; the calling thread merges per-second
//! intervals, reports progress and decides to abort.
//!
//! Two loops per connection:
//! - closed: send `pipeline` requests in one write, wait for every answer, repeat (as
//!   redis-benchmark `-P` and memtier do). Latency counts from the batch's send.
//! - open (`rate`): each connection sends at `rate / connections` on a fixed schedule,
//!   keeping at most `pipeline` requests in flight; latency counts from the intended send time
//!   (see `schedule`), so a stalled server is charged for the requests that queued behind it.
//!   A connection waits for an answer or the next send time, whichever comes first; with the
//!   window full, a due request waits for a slot and is charged for it.
//!
//! A connection that fails (I/O error, protocol violation) counts its in-flight requests as
//! errors and stops; the first such error is reported. The phase ends at the deadline, when
//! the request budget is spent, when the load phase has inserted every key, or when errors
//! pass the threshold (`error_threshold` of at least `ERRORS_BEFORE_ABORT_MIN` requests).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use glommio::net::TcpStream;
use glommio::{LocalExecutorBuilder, Placement};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use ringkv_net::client_frame::Consistency;
use ringkv_shards::watchdog::{beat_with_timers_pending, Watchdog};

use crate::limits::KEY_SIZE_MAX;
use crate::schedule::{phase_for, OpenLoop};
use crate::stats::{Interval, IntervalMerger, IntervalReport, Recorder, Totals};
use crate::target::resp::RespConnection;
use crate::target::ringkv::RingkvConnection;
use crate::target::{Answer, ConnError, Req, TargetAddr};
use crate::uring_stream::UringTransport;
use crate::workload::{draw_value, render_key, Generator, Op, OpKind, WorkloadSpec, Zipfian};

/// Requests to see before the error ratio can abort a run (a few early errors are noise).
pub const ERRORS_BEFORE_ABORT_MIN: u64 = 1_000;

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// As fast as answers come back.
    Closed,
    /// A fixed total rate (requests per second, all connections together).
    Open {
        /// Requests per second.
        rate: f64,
        /// Least time between two writes of a connection (zero: write as soon as a request is
        /// due). Requests that fall due in between go out together in the next write, still
        /// timed from their intended send times: at high rates this trades a little latency,
        /// which is measured, for far fewer system calls in the client.
        send_quantum: Duration,
    },
}

/// Everything a phase needs besides the workload.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Where to send.
    pub target: TargetAddr,
    /// Executor threads.
    pub threads: usize,
    /// CPU of each thread (round-robin); empty = unpinned.
    pub cpus: Vec<usize>,
    /// Connections per thread.
    pub connections: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Closed or open loop.
    pub pacing: Pacing,
    /// Stop after this long (measured time, after the warm-up).
    pub duration: Option<Duration>,
    /// Run phase only: run the workload this long before measuring, on the same connections at
    /// the same rate. Requests sent in it are neither recorded nor counted against
    /// [`requests`](Self::requests); errors are counted from the first request.
    pub warmup: Duration,
    /// Stop after this many requests.
    pub requests: Option<u64>,
    /// Abort (and fail) once errors / requests exceeds this.
    pub error_threshold: f64,
    /// Consistency level for ringkv requests.
    pub consistency: Consistency,
    /// Seed of every generator (connection `i` uses `seed + i`).
    pub seed: u64,
    /// Busy-poll this long before an idle executor parks (zero: park at once). Spinning keeps a
    /// dedicated client core from paying a scheduler wake-up per timer or answer.
    pub spin: Duration,
    /// How connections reach the target.
    pub transport: Transport,
}

/// The least busy-polling before an executor of the uring transport sleeps: its poller steps
/// aside on timers due at once (see [`crate::uring_stream`]), and the executor must not sleep
/// between two of them (that would be a system call and a wake-up per step).
const URING_SPIN_BEFORE_PARK: Duration = Duration::from_millis(1);

/// How loadgen's connections do their I/O (`--transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// glommio's `TcpStream`, on the executor's own rings (no `COOP_TASKRUN`: on loopback a
    /// server that answers while the client thread runs pays an IPI to interrupt it).
    Glommio,
    /// One io_uring per thread with `COOP_TASKRUN`, polled without sleeping while it has
    /// operations in flight ([`crate::uring_stream`]): the server pays no IPI to interrupt the
    /// client; the client's cores stay busy while they have requests out.
    Uring,
}

/// What drives a phase.
#[derive(Debug, Clone)]
pub enum Phase {
    /// Insert keys `0..keyspace` once, spread over all connections.
    Load,
    /// Run the workload.
    Run,
}

impl Phase {
    /// How long this phase runs before it measures: the configured warm-up for the run, none for
    /// the load (it inserts every key once, all of them counted).
    fn warmup(&self, config: &RunConfig) -> Duration {
        match self {
            Phase::Run => config.warmup,
            Phase::Load => Duration::ZERO,
        }
    }
}

/// Live numbers for the progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Since the phase started.
    pub elapsed: Duration,
    /// Requests answered so far.
    pub completed: u64,
    /// Errors so far.
    pub errors: u64,
}

/// Results of a phase.
#[derive(Debug)]
pub struct PhaseResult {
    /// Whole-phase histograms and counts.
    pub totals: Totals,
    /// Measured time.
    pub elapsed: Duration,
    /// Every second, in order.
    pub intervals: Vec<Interval>,
    /// The first connection-level or refusal error, if any.
    pub first_error: Option<String>,
    /// True if the error threshold stopped the phase early.
    pub aborted: bool,
    /// Times the watchdog woke a loadgen thread that slept with its timers overdue (see
    /// [`ringkv_shards::watchdog`]): each is a stall of at least its `STALL_AFTER` in the
    /// client (a longer one may count more than once), which this phase's latencies include. 0 in
    /// a clean run.
    pub executor_nudges: u64,
}

/// State shared by every thread of a phase (atomics only on batch boundaries).
#[derive(Debug)]
struct Shared {
    completed: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
    /// Requests left to claim (i64::MAX if unbounded).
    budget: AtomicI64,
    first_error: Mutex<Option<String>>,
    inserted: Arc<AtomicU64>,
    /// Watches the threads' executors while they measure.
    watchdog: Arc<Watchdog>,
    /// Nudges of every thread that has ended.
    executor_nudges: AtomicU64,
}

impl Shared {
    fn note_error(&self, message: String) {
        if let Ok(mut slot) = self.first_error.lock() {
            slot.get_or_insert(message);
        }
    }

    /// Claims up to `want` requests of the budget.
    fn claim(&self, want: usize) -> usize {
        let before = self.budget.fetch_sub(want as i64, Ordering::Relaxed);
        before.clamp(0, want as i64) as usize
    }
}

/// Runs one phase and blocks until it ends. `on_progress` is called about ten times a second
/// with live numbers and each newly completed interval.
pub fn run_phase(
    config: &RunConfig,
    phase: Phase,
    spec: &Arc<WorkloadSpec>,
    inserted: &Arc<AtomicU64>,
    values: &Arc<[u8]>,
    mut on_progress: impl FnMut(Progress, &[Interval]),
) -> Result<PhaseResult, String> {
    let zipf = Generator::zipfian_for(spec);
    let budget = match (&phase, config.requests) {
        (Phase::Run, Some(n)) => n.min(i64::MAX as u64) as i64,
        _ => i64::MAX,
    };
    let shared = Arc::new(Shared {
        completed: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        budget: AtomicI64::new(budget),
        first_error: Mutex::new(None),
        inserted: inserted.clone(),
        watchdog: Arc::new(Watchdog::default()),
        executor_nudges: AtomicU64::new(0),
    });
    let barrier = Arc::new(Barrier::new(config.threads + 1));
    let (interval_tx, interval_rx) = mpsc::channel::<IntervalReport>();
    let (done_tx, done_rx) = mpsc::channel::<(usize, Result<Totals, String>)>();
    let mut handles = Vec::new();
    for thread in 0..config.threads {
        let placement = match config.cpus.get(thread % config.cpus.len().max(1)) {
            Some(&cpu) => Placement::Fixed(cpu),
            None => Placement::Unbound,
        };
        let ctx = ThreadCtx {
            thread,
            config: config.clone(),
            phase: phase.clone(),
            spec: spec.clone(),
            zipf: zipf.clone(),
            values: values.clone(),
            shared: shared.clone(),
            barrier: barrier.clone(),
            interval_tx: interval_tx.clone(),
        };
        let done_tx = done_tx.clone();
        let mut builder = LocalExecutorBuilder::new(placement).name(&format!("loadgen-{thread}"));
        let spin = match config.transport {
            Transport::Uring => config.spin.max(URING_SPIN_BEFORE_PARK),
            Transport::Glommio => config.spin,
        };
        if !spin.is_zero() {
            builder = builder.spin_before_park(spin);
        }
        let handle = builder
            .spawn(move || async move {
                let result = thread_main(ctx).await;
                // The receiver lives until every thread reported.
                let _ = done_tx.send((thread, result));
            })
            .map_err(|e| format!("cannot start loadgen thread {thread}: {e}"))?;
        handles.push(handle);
    }
    drop(interval_tx);
    drop(done_tx);
    // Connections are set up; measuring starts now, for every thread at once.
    barrier.wait();
    let start = Instant::now();
    let warmup = phase.warmup(config);
    let mut merger = IntervalMerger::new(config.threads);
    let mut intervals = Vec::new();
    let mut totals = Totals::new();
    let mut thread_errors = Vec::new();
    let mut done = 0;
    let mut aborted = false;
    while done < config.threads {
        match done_rx.recv_timeout(Duration::from_millis(100)) {
            Ok((thread, result)) => {
                done += 1;
                // Intervals sent before `done` are already queued: drain them first.
                interval_rx.try_iter().for_each(|r| merger.add(r));
                merger.finish_thread(thread);
                match result {
                    Ok(t) => totals.merge(&t),
                    Err(e) => thread_errors.push(format!("thread {thread}: {e}")),
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        interval_rx.try_iter().for_each(|r| merger.add(r));
        let fresh = merger.take_complete();
        let progress = Progress {
            elapsed: start.elapsed(),
            completed: shared.completed.load(Ordering::Relaxed),
            errors: shared.errors.load(Ordering::Relaxed),
        };
        on_progress(progress, &fresh);
        intervals.extend(fresh);
        let seen = progress.completed + progress.errors;
        if !aborted
            && seen >= ERRORS_BEFORE_ABORT_MIN
            && progress.errors as f64 > config.error_threshold * seen as f64
        {
            aborted = true;
            shared.stop.store(true, Ordering::Relaxed);
        }
    }
    // Throughput counts measured time only; the progress display saw the warm-up too.
    let elapsed = start.elapsed().saturating_sub(warmup);
    for h in handles {
        if let Err(e) = h.join() {
            thread_errors.push(format!("executor: {e}"));
        }
    }
    interval_rx.try_iter().for_each(|r| merger.add(r));
    let rest = merger.take_complete();
    on_progress(
        Progress {
            elapsed: start.elapsed(),
            completed: shared.completed.load(Ordering::Relaxed),
            errors: shared.errors.load(Ordering::Relaxed),
        },
        &rest,
    );
    intervals.extend(rest);
    if let Some(e) = thread_errors.first() {
        if totals.requests() == 0 {
            return Err(e.clone());
        }
        shared.note_error(e.clone());
    }
    let first_error = shared.first_error.lock().ok().and_then(|s| s.clone());
    Ok(PhaseResult {
        totals,
        elapsed,
        intervals,
        first_error,
        aborted,
        executor_nudges: shared.executor_nudges.load(Ordering::Relaxed),
    })
}

struct ThreadCtx {
    thread: usize,
    config: RunConfig,
    phase: Phase,
    spec: Arc<WorkloadSpec>,
    zipf: Option<Arc<Zipfian>>,
    values: Arc<[u8]>,
    shared: Arc<Shared>,
    barrier: Arc<Barrier>,
    interval_tx: mpsc::Sender<IntervalReport>,
}

async fn thread_main(ctx: ThreadCtx) -> Result<Totals, String> {
    // Connect everything before the barrier so setup is not measured.
    let uring = match ctx.config.transport {
        Transport::Glommio => None,
        Transport::Uring => {
            let ring =
                UringTransport::new().map_err(|e| format!("loadgen's io_uring transport: {e}"))?;
            // Ends by itself once every connection (and this handle) is gone.
            glommio::spawn_local(ring.clone().poll_until_idle()).detach();
            Some(ring)
        }
    };
    let mut connecting = Vec::new();
    for _ in 0..ctx.config.connections {
        let target = ctx.config.target.clone();
        let consistency = ctx.config.consistency;
        let uring = uring.clone();
        connecting.push(glommio::spawn_local(async move {
            Conn::connect(&target, consistency, uring.as_ref()).await
        }));
    }
    drop(uring);
    let mut conns = Vec::new();
    let mut connect_error = None;
    for task in connecting {
        match task.await {
            Ok(c) => conns.push(c),
            Err(e) => connect_error = Some(format!("connect to {}: {e}", ctx.config.target.addr())),
        }
    }
    // Every thread must reach the barrier exactly once, even with no connection.
    ctx.barrier.wait();
    if let Some(e) = &connect_error {
        ctx.shared.note_error(e.clone());
    }
    if conns.is_empty() {
        return Err(connect_error.unwrap_or_else(|| "no connections".into()));
    }
    // glommio 0.9 can park with tasks ready to run, and only an event of its own ends that sleep
    // (see ringkv_shards::watchdog): with the uring transport, whose completions are not glommio's,
    // a run once hung for good that way. The shards' remedy, from here until the thread's tasks
    // end: timers kept pending by a heartbeat task, and a watchdog that wakes the thread if it
    // sleeps anyway. Registered after the barrier, where the thread blocks by design.
    let watched = Watched::register(&ctx.shared, ctx.thread as u32);
    glommio::spawn_local(beat_with_timers_pending(watched.heartbeat.clone())).detach();
    measure(&ctx, conns).await
}

/// A loadgen thread under the watchdog until this is dropped (also on a panic: the thread's id
/// must not stay registered once the thread is gone); its nudges are then added to the phase's.
struct Watched {
    shared: Arc<Shared>,
    id: u32,
    heartbeat: Arc<ringkv_shards::watchdog::Heartbeat>,
}

impl Watched {
    fn register(shared: &Arc<Shared>, id: u32) -> Watched {
        Watched {
            shared: shared.clone(),
            id,
            heartbeat: shared.watchdog.watch_this_thread(id),
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.shared.watchdog.unwatch(self.id);
        self.shared
            .executor_nudges
            .fetch_add(self.heartbeat.nudges(), Ordering::Relaxed);
    }
}

/// Drives `conns` through the phase and returns this thread's results.
async fn measure(ctx: &ThreadCtx, conns: Vec<Conn>) -> Result<Totals, String> {
    let start = Instant::now();
    let measure_from = start + ctx.phase.warmup(&ctx.config);
    let recorder = Rc::new(RefCell::new(Recorder::new(
        ctx.thread,
        measure_from,
        Some(ctx.interval_tx.clone()),
    )));
    let total_conns = ctx.config.threads * ctx.config.connections;
    let mut tasks = Vec::new();
    for (i, conn) in conns.into_iter().enumerate() {
        let global = ctx.thread * ctx.config.connections + i;
        let source = match ctx.phase {
            Phase::Load => Source::Load {
                next: global as u64,
                step: total_conns as u64,
                end: ctx.spec.keyspace,
                rng: SmallRng::seed_from_u64(ctx.config.seed.wrapping_add(global as u64)),
            },
            Phase::Run => Source::Workload(Generator::new(
                ctx.spec.clone(),
                ctx.zipf.clone(),
                ctx.shared.inserted.clone(),
                ctx.config.seed.wrapping_add(global as u64),
            )),
        };
        let driver = Driver {
            conn,
            source,
            spec: ctx.spec.clone(),
            values: ctx.values.clone(),
            shared: ctx.shared.clone(),
            recorder: recorder.clone(),
            in_flight: HashMap::with_capacity(ctx.config.pipeline * 2),
            next_id: 1,
            key: [0; KEY_SIZE_MAX],
            start,
            measure_from,
            // The load phase inserts every key whatever --duration says.
            deadline: match ctx.phase {
                Phase::Load => None,
                Phase::Run => ctx.config.duration.map(|d| measure_from + d),
            },
            pipeline: ctx.config.pipeline,
        };
        let pacing = ctx.config.pacing;
        let phase_offset = match pacing {
            Pacing::Open { rate, .. } => phase_for(global, total_conns, rate / total_conns as f64),
            Pacing::Closed => Duration::ZERO,
        };
        tasks.push(glommio::spawn_local(async move {
            let mut driver = driver;
            let result = match pacing {
                Pacing::Closed => driver.closed_loop().await,
                Pacing::Open { rate, send_quantum } => {
                    driver
                        .open_loop(rate / total_conns as f64, phase_offset, send_quantum)
                        .await
                }
            };
            if let Err(e) = result {
                driver.fail_in_flight(e);
            }
        }));
    }
    for task in tasks {
        task.await;
    }
    let recorder = Rc::try_unwrap(recorder)
        .map_err(|_| "recorder still shared after every task ended".to_string())?;
    Ok(recorder.into_inner().finish())
}

/// Where a connection's operations come from.
enum Source {
    /// The workload generator (run phase).
    Workload(Generator),
    /// Keys `next, next + step, ...` below `end`, each inserted once (load phase).
    Load {
        next: u64,
        step: u64,
        end: u64,
        rng: SmallRng,
    },
}

impl Source {
    fn next_op(&mut self, spec: &WorkloadSpec) -> Option<Op> {
        match self {
            Source::Workload(g) => Some(g.next_op()),
            Source::Load {
                next,
                step,
                end,
                rng,
            } => {
                if *next >= *end {
                    return None;
                }
                let key = *next;
                *next += *step;
                Some(Op {
                    kind: OpKind::Insert,
                    key,
                    value: draw_value(spec.value_size, rng),
                    scan_len: 0,
                })
            }
        }
    }
}

/// A connection to either kind of target.
enum Conn {
    Resp(RespConnection<Stream>),
    Ringkv(RingkvConnection<Stream>),
}

/// A socket on either transport: glommio's `TcpStream` or a [`crate::uring_stream::UringStream`] (one virtual call per
/// poll, nothing next to a system call).
type Stream = Box<dyn Socket>;

/// What a connection needs of its socket.
trait Socket: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin {}

impl<T: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin> Socket for T {}

impl Conn {
    async fn connect(
        target: &TargetAddr,
        consistency: Consistency,
        uring: Option<&UringTransport>,
    ) -> Result<Conn, ConnError> {
        let open = |addr: String| async move {
            if let Some(ring) = uring {
                return Ok::<Stream, std::io::Error>(Box::new(ring.connect(&addr)?));
            }
            let stream = TcpStream::connect(addr.as_str()).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream))
        };
        match target {
            TargetAddr::Redis(addr) => {
                Ok(Conn::Resp(RespConnection::new(open(addr.clone()).await?)))
            }
            TargetAddr::Ringkv(addr) => Ok(Conn::Ringkv(
                RingkvConnection::connect(addr, consistency, open).await?,
            )),
        }
    }

    fn queue(&mut self, id: u64, req: Req<'_>) -> Result<(), ConnError> {
        match self {
            Conn::Resp(c) => c.queue(id, req),
            Conn::Ringkv(c) => c.queue(id, req),
        }
    }

    async fn flush(&mut self) -> Result<(), ConnError> {
        match self {
            Conn::Resp(c) => c.flush().await,
            Conn::Ringkv(c) => c.flush().await,
        }
    }

    async fn recv(&mut self) -> Result<(u64, Answer), ConnError> {
        match self {
            Conn::Resp(c) => c.recv().await,
            Conn::Ringkv(c) => c.recv().await,
        }
    }
}

/// One request awaiting its answer.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    kind: OpKind,
    /// False for the read half of a read-modify-write (the write half is recorded).
    record: bool,
    /// Batch send time (closed) or intended send time (open).
    since: Instant,
}

struct Driver {
    conn: Conn,
    source: Source,
    spec: Arc<WorkloadSpec>,
    values: Arc<[u8]>,
    shared: Arc<Shared>,
    recorder: Rc<RefCell<Recorder>>,
    in_flight: HashMap<u64, InFlight>,
    next_id: u64,
    key: [u8; KEY_SIZE_MAX],
    start: Instant,
    /// Requests sent (closed loop) or due (open loop) before this are the warm-up's.
    measure_from: Instant,
    deadline: Option<Instant>,
    pipeline: usize,
}

impl Driver {
    /// Claims `want` requests of the phase's budget for requests sent at `since`; the warm-up's
    /// are free.
    fn claim(&self, want: usize, since: Instant) -> usize {
        if since < self.measure_from {
            want
        } else {
            self.shared.claim(want)
        }
    }

    fn should_stop(&self, now: Instant) -> bool {
        self.shared.stop.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| now >= d)
    }

    /// Queues the requests of `op`; returns false if the source is exhausted.
    fn push(&mut self, since: Instant) -> Result<bool, ConnError> {
        let Some(op) = self.source.next_op(&self.spec) else {
            return Ok(false);
        };
        let key = render_key(op.key, &mut self.key);
        let value = &self.values[op.value.0..op.value.0 + op.value.1];
        let mut send = |req: Req<'_>, record: bool| -> Result<(), ConnError> {
            let id = self.next_id;
            self.next_id += 1;
            self.conn.queue(id, req)?;
            self.in_flight.insert(
                id,
                InFlight {
                    kind: op.kind,
                    record,
                    since,
                },
            );
            Ok(())
        };
        match op.kind {
            OpKind::Read => send(Req::Get(key), true)?,
            OpKind::Update | OpKind::Insert => send(Req::Set(key, value), true)?,
            OpKind::Scan => send(Req::Scan(key, op.scan_len), true)?,
            OpKind::ReadModifyWrite => {
                send(Req::Get(key), false)?;
                send(Req::Set(key, value), true)?;
            }
        }
        Ok(true)
    }

    /// Receives one answer and records it.
    async fn complete_one(&mut self) -> Result<(), ConnError> {
        let (id, answer) = self.conn.recv().await?;
        let now = Instant::now();
        let Some(f) = self.in_flight.remove(&id) else {
            return Err(ConnError::Protocol(format!(
                "answer to request id {id}, which is not in flight"
            )));
        };
        let mut recorder = self.recorder.borrow_mut();
        let measured = f.record && f.since >= self.measure_from;
        match answer {
            Answer::Done | Answer::Miss if measured => {
                recorder.record(f.kind, now.saturating_duration_since(f.since), now);
                if answer == Answer::Miss {
                    recorder.record_miss(f.kind);
                }
                self.shared.completed.fetch_add(1, Ordering::Relaxed);
            }
            Answer::Done | Answer::Miss => {}
            Answer::Refused(message) => {
                recorder.record_error(f.kind, now);
                self.shared.errors.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .note_error(format!("{} refused: {message}", f.kind.name()));
            }
        }
        Ok(())
    }

    async fn closed_loop(&mut self) -> Result<(), ConnError> {
        loop {
            let now = Instant::now();
            if self.should_stop(now) {
                return Ok(());
            }
            let claimed = self.claim(self.pipeline, now);
            let mut exhausted = claimed == 0;
            for _ in 0..claimed {
                if !self.push(now)? {
                    exhausted = true;
                    break;
                }
            }
            if self.in_flight.is_empty() {
                return Ok(());
            }
            self.conn.flush().await?;
            while !self.in_flight.is_empty() {
                self.complete_one().await?;
            }
            if exhausted {
                return Ok(());
            }
        }
    }

    async fn open_loop(
        &mut self,
        rate: f64,
        phase: Duration,
        send_quantum: Duration,
    ) -> Result<(), ConnError> {
        let mut schedule = OpenLoop::new(rate, phase);
        let mut sending = true;
        // No write before this (the send quantum after the last one).
        let mut next_write = self.start;
        loop {
            let now = Instant::now();
            if self.shared.stop.load(Ordering::Relaxed) {
                sending = false;
            }
            let mut queued = false;
            while sending && now >= next_write && self.in_flight.len() < self.pipeline {
                let due = self.start + schedule.next_due();
                if self.deadline.is_some_and(|d| due >= d) {
                    sending = false;
                    break;
                }
                let Some(intended) = schedule.take_due(now.saturating_duration_since(self.start))
                else {
                    break;
                };
                if self.claim(1, self.start + intended) == 0 || !self.push(self.start + intended)? {
                    sending = false;
                    break;
                }
                queued = true;
            }
            if queued {
                self.conn.flush().await?;
                next_write = now + send_quantum;
            }
            // The next request goes out when it is due and the quantum allows.
            let send_at = (self.start + schedule.next_due()).max(next_write);
            if !self.in_flight.is_empty() && sending && self.in_flight.len() < self.pipeline {
                // Wait for an answer or for the next send time, whichever comes first, so a due
                // request is not held back by an answer still on its way. Both receive paths are
                // cancel-safe: bytes read stay in the connection's buffer, and an answer is
                // recorded without awaiting once received.
                let wait = send_at.saturating_duration_since(Instant::now());
                let answered =
                    futures_lite::future::or(async { Some(self.complete_one().await) }, async {
                        glommio::timer::sleep(wait).await;
                        None
                    })
                    .await;
                if let Some(result) = answered {
                    result?;
                }
            } else if !self.in_flight.is_empty() {
                self.complete_one().await?;
            } else if sending {
                let wait = send_at.saturating_duration_since(Instant::now());
                glommio::timer::sleep(wait).await;
            } else {
                return Ok(());
            }
        }
    }

    /// Counts every request still in flight as failed after the connection broke.
    fn fail_in_flight(&mut self, error: ConnError) {
        let now = Instant::now();
        let mut recorder = self.recorder.borrow_mut();
        let mut failed = 0;
        for (_, f) in self.in_flight.drain() {
            if f.record {
                recorder.record_error(f.kind, now);
                failed += 1;
            }
        }
        // A connection that cannot even send (unsupported operation) counts one error so it shows.
        let failed = failed.max(1);
        self.shared.errors.fetch_add(failed, Ordering::Relaxed);
        if matches!(error, ConnError::Unsupported(_)) {
            self.shared.stop.store(true, Ordering::Relaxed);
        }
        self.shared.note_error(error.to_string());
    }
}
