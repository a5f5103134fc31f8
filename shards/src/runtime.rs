//! Starting and stopping a node: the memlock check, the data directory, one
//! pinned glommio executor per shard, the signal thread, and the ordered
//! shutdown.
//!
//! Shutdown order (SIGTERM/SIGINT, or a shard failing):
//! 1. every shard stops accepting and lets each connection finish the batch
//!    in flight (its gate closes; idle connections close at once);
//! 2. shards wait for each other (forwarded requests need their owner alive
//!    until every connection is done);
//! 3. each shard closes its mesh end, flushes and closes its engine;
//! 4. the process exits 0 (non-zero if a shard failed).
//!
//! A second signal during shutdown exits at once with status 130 (nothing
//! acknowledged is lost in `sync` mode: the WAL holds it).

use crate::clock::LeasedClock;
use crate::config::{NetEngine, NodeConfig};
use crate::datadir::{self, NodeIdentity};
use crate::error::Error;
use crate::forward::{Answer, Call};
use crate::limits::{
    FOREGROUND_LATENCY, FOREGROUND_SHARES, MESH_CHANNEL_CAPACITY, SHUTDOWN_DRAIN_TIMEOUT,
    STOP_POLL_INTERVAL,
};
use crate::listener::Protocol;
use crate::memlock;
use crate::mesh::{self, Mesh, MeshHandle};
use crate::service::Scope;
use crate::shard::{NodeShared, Shard};
use crate::stop::StopEvent;
use crate::store::Store;
use glommio::{LocalExecutorBuilder, Placement};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Runs a node until SIGTERM/SIGINT (or a shard failure). Blocks the calling
/// thread. Returns `Ok` after a clean shutdown: every engine flushed and closed.
pub fn run(mut config: NodeConfig) -> Result<(), Error> {
    config.validate()?;
    crate::clock::set_wall_offset_ms(config.clock_offset_ms);
    if config.clock_offset_ms != 0 {
        tracing::warn!(
            "this node's clock runs {} ms off the real one (--clock-offset-ms, for tests only)",
            config.clock_offset_ms
        );
    }
    let report = memlock::ensure_memlock(0)?;
    let wanted = memlock::memlock_wanted(config.shards, config.io_memory);
    if report.soft_after < wanted && !report.privileged {
        tracing::warn!(
            "RLIMIT_MEMLOCK is {} bytes; {} shards would like {} bytes to register their io_uring buffers. \
             The node runs, with slower I/O; raise it with `ulimit -l unlimited` or LimitMEMLOCK=infinity",
            report.soft_after,
            config.shards,
            wanted
        );
    }
    check_ports_free(&config)?;
    datadir::prepare(
        &config.data_dir,
        NodeIdentity {
            shards: config.shards,
            node_id: config.node_id,
        },
    )?;
    // glommio opens directories relative to nothing (a relative path fails
    // with EBADF in `Directory::open`), so every path handed on is absolute.
    config.data_dir = std::fs::canonicalize(&config.data_dir).map_err(|e| Error::DataDir {
        path: config.data_dir.clone(),
        reason: format!("cannot resolve the absolute path: {e}"),
    })?;
    let _lock = datadir::lock(&config.data_dir)?;
    let node = Arc::new(NodeShared::default());
    start_signal_thread(node.clone())?;
    run_shards(Arc::new(config), node)
}

/// Refuses to start when a port is already taken. The shards bind with
/// SO_REUSEPORT, which would let a second node on the same ports start and
/// silently take half the connections; a plain bind first fails instead.
fn check_ports_free(config: &NodeConfig) -> Result<(), Error> {
    let resp = (config.resp_port != 0).then_some(config.resp_port);
    let ports = std::iter::once(config.port)
        .chain((0..config.shards).map(|i| ringkv_net::routing::shard_port(config.port, i)))
        .chain(resp);
    for port in ports {
        let addr = format!("{}:{port}", config.host);
        if let Err(source) = std::net::TcpListener::bind(addr.as_str()) {
            // Connections of a previous run of this node (killed, say) may
            // linger on the port in TIME_WAIT or FIN_WAIT2 and fail the probe
            // although nothing listens: only a port that accepts is taken.
            let listening = source.kind() != std::io::ErrorKind::AddrInUse
                || std::net::TcpStream::connect_timeout(
                    &match addr.parse() {
                        Ok(a) => a,
                        Err(_) => return Err(Error::PortInUse { addr, source }),
                    },
                    std::time::Duration::from_millis(500),
                )
                .is_ok();
            if listening {
                return Err(Error::PortInUse { addr, source });
            }
        }
    }
    Ok(())
}

/// Runs the shards (no signal handling, no memlock check): the node stops
/// when `node.request_stop()` is called. Used by `run` and by tests.
pub fn run_shards(config: Arc<NodeConfig>, node: Arc<NodeShared>) -> Result<(), Error> {
    let cpus = crate::config::cpu_count() as usize;
    let _ = node.started_unix_ms.compare_exchange(
        0,
        ringkv_storage::io::now_ms(),
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let mesh_builder: MeshHandle<Call, Answer> =
        mesh::builder(config.shards as usize, MESH_CHANNEL_CAPACITY);
    let mut handles = Vec::new();
    for i in 0..config.shards {
        let placement = if config.pin {
            Placement::Fixed(i as usize % cpus)
        } else {
            Placement::Unbound
        };
        let (config, node, mesh_builder) = (config.clone(), node.clone(), mesh_builder.clone());
        let stall_report = config.stall_report.map(|threshold| {
            Box::new(crate::stall_report::StallReport::new(threshold))
                as Box<dyn glommio::StallDetectionHandler>
        });
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{i}"))
            .io_memory(config.io_memory)
            .detect_stalls(stall_report)
            .spawn(move || async move {
                let result = shard_main(i, config, node.clone(), mesh_builder).await;
                if let Err(e) = &result {
                    node.fail(i, e.to_string());
                }
                result
            })
            .map_err(|e| Error::Startup(format!("starting the executor of shard {i}: {e}")))?;
        handles.push(handle);
    }
    let mut first_error = None;
    for (i, h) in handles.into_iter().enumerate() {
        let outcome = match h.join() {
            Ok(r) => r,
            Err(e) => Err(Error::Shard {
                shard: i as u32,
                reason: format!("executor failed: {e}"),
            }),
        };
        if let Err(e) = outcome {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Marks this shard drained when dropped (also on early error returns), so
/// the other shards never wait for it forever.
struct DrainedMark(Arc<NodeShared>, bool);

impl DrainedMark {
    fn mark(&mut self) {
        if !self.1 {
            self.1 = true;
            self.0.drained.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for DrainedMark {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A shard that panicked cannot serve its keys: stop the node
            // rather than answer for them with a hole.
            self.0.request_stop();
        }
        self.mark();
    }
}

async fn shard_main(
    id: u32,
    config: Arc<NodeConfig>,
    node: Arc<NodeShared>,
    mesh_builder: MeshHandle<Call, Answer>,
) -> Result<(), Error> {
    let mut drained = DrainedMark(node.clone(), false);
    let _watched = watch_executor(id, &node);
    let executor = glommio::executor();
    crate::executor_clock::reset();
    // The request queue never runs dry under load (the network loop yields
    // and goes on), so its latency is how often the executor switches queues
    // and reaps I/O completions: at 10 ms the flush's writes completed one
    // slice at a time, a flush took over a second and writers stalled.
    let foreground = executor.create_task_queue(
        glommio::Shares::Static(FOREGROUND_SHARES),
        glommio::Latency::Matters(FOREGROUND_LATENCY),
        "ringkv-requests",
    );
    ringkv_storage::io::set_background_queue(config.background_shares);

    // Join the mesh first: joining waits for every shard, and nothing before
    // it can fail, so a shard that fails later never leaves others waiting.
    let shard_cell: Rc<std::cell::RefCell<Option<Rc<Shard>>>> =
        Rc::new(std::cell::RefCell::new(None));
    let cell = shard_cell.clone();
    let handler = move |call: Call| {
        let shard = cell.borrow().clone();
        async move {
            match shard {
                Some(shard) => crate::service::answer_call(shard, call).await,
                None => Answer::Unavailable,
            }
        }
    };
    let (mesh, mesh_tasks) = if config.shards > 1 {
        let (m, t) = Mesh::join(mesh_builder, foreground, handler)
            .await
            .map_err(|reason| Error::Shard { shard: id, reason })?;
        (Some(m), t)
    } else {
        (None, Vec::new())
    };

    let dir = config.shard_dir(id);
    let store = Store::open(&dir, &config)
        .await
        .map_err(|source| Error::Storage { shard: id, source })?;
    let clock_path = config.data_dir.join(format!("clock-{id}"));
    let clock = match LeasedClock::open(&clock_path, config.node_id) {
        Ok(c) => c,
        Err(reason) => {
            let _ = store.close().await;
            return Err(Error::DataDir {
                path: clock_path,
                reason,
            });
        }
    };
    let cluster = if config.cluster.clustered() {
        match crate::cluster::ClusterShard::open(id, config.clone()).await {
            Ok(c) => Some(c),
            Err(reason) => {
                let _ = store.close().await;
                return Err(Error::Shard { shard: id, reason });
            }
        }
    } else {
        None
    };
    let shard = Shard::new(id, config.clone(), node.clone(), store.clone(), clock);
    if let Some(m) = mesh {
        shard.attach_mesh(m);
    }
    if let Some(c) = cluster {
        c.start(&shard);
        shard.attach_cluster(c);
    }
    *shard_cell.borrow_mut() = Some(shard.clone());

    let result = serve_until_stopped(&shard, foreground, &mut drained).await;

    // Every shard has drained (or failed): no call can arrive any more.
    if let Some(c) = shard.detach_cluster() {
        c.close().await;
    }
    shard.close_mesh();
    for t in mesh_tasks {
        t.cancel().await;
    }
    *shard_cell.borrow_mut() = None;
    let closed = async {
        store.flush().await?;
        store.close().await
    }
    .await
    .map_err(|source| Error::Storage { shard: id, source });
    tracing::info!(shard = id, "stopped");
    result.and(closed)
}

async fn serve_until_stopped(
    shard: &Rc<Shard>,
    foreground: glommio::TaskQueueHandle,
    drained: &mut DrainedMark,
) -> Result<(), Error> {
    let config = &shard.config;
    let node = &shard.node;
    let stop = StopEvent::new();
    let gate = Rc::new(glommio::sync::Gate::new());
    let net = start_net_loop(shard, &gate, foreground, &stop);
    let mut accepts = Vec::new();
    let listen = (|| {
        let shared = crate::listener::bind(shard.id, &config.host, config.port)?;
        let own_port = ringkv_net::routing::shard_port(config.port, shard.id);
        let own = crate::listener::bind(shard.id, &config.host, own_port)?;
        let mut all = vec![
            (Protocol::Binary(Scope::Node), shared),
            (Protocol::Binary(Scope::Shard), own),
        ];
        if config.resp_port != 0 {
            let resp = crate::listener::bind(shard.id, &config.host, config.resp_port)?;
            all.push((Protocol::Resp, resp));
        }
        Ok::<_, Error>(all)
    })();
    match listen {
        Ok(listeners) => {
            for (protocol, l) in listeners {
                let task = glommio::spawn_local_into(
                    crate::listener::accept_loop(
                        shard.clone(),
                        protocol,
                        l,
                        gate.clone(),
                        stop.clone(),
                        net.clone(),
                    ),
                    foreground,
                )
                .map_err(|e| Error::Startup(format!("spawning an accept loop: {e}")))?;
                accepts.push(task);
            }
            let ready = node.ready.fetch_add(1, Ordering::SeqCst) + 1;
            if ready == shard.shard_count {
                tracing::info!(
                    host = %config.host,
                    port = config.port,
                    shards = shard.shard_count,
                    resp_port = config.resp_port,
                    "ringkv node ready: {}:{} (shard ports {}..={}; Redis protocol {})",
                    config.host,
                    config.port,
                    ringkv_net::routing::shard_port(config.port, 0),
                    ringkv_net::routing::shard_port(config.port, shard.shard_count - 1),
                    if config.resp_port == 0 {
                        "off".to_string()
                    } else {
                        format!("port {}", config.resp_port)
                    }
                );
            }
        }
        Err(e) => {
            node.fail(shard.id, e.to_string());
        }
    }

    while !node.stopping() {
        glommio::timer::sleep(STOP_POLL_INTERVAL).await;
    }
    tracing::info!(
        shard = shard.id,
        "stopping: no new connections, finishing requests in flight"
    );
    stop.fire();
    for t in accepts {
        t.await;
    }
    let closed = futures_lite::future::or(
        async {
            let _ = gate.close().await;
            true
        },
        async {
            glommio::timer::sleep(SHUTDOWN_DRAIN_TIMEOUT).await;
            false
        },
    )
    .await;
    if !closed {
        tracing::warn!(
            shard = shard.id,
            "connections still busy after {SHUTDOWN_DRAIN_TIMEOUT:?}; closing anyway"
        );
    }
    drained.mark();
    while node.drained.load(Ordering::SeqCst) < shard.shard_count {
        glommio::timer::sleep(STOP_POLL_INTERVAL).await;
    }
    Ok(())
}

/// Stops watching a shard's executor when dropped (on its thread, before
/// the thread ends).
struct Unwatch(Arc<NodeShared>, u32);

impl Drop for Unwatch {
    fn drop(&mut self) {
        self.0.watchdog.unwatch(self.1);
    }
}

/// Puts this shard's executor under the node's watchdog: a task bumps its
/// heartbeat on a timer and keeps timers pending, for as long as the
/// executor runs (see [`crate::watchdog`]).
fn watch_executor(id: u32, node: &Arc<NodeShared>) -> Unwatch {
    let heartbeat = node.watchdog.watch_this_thread(id);
    glommio::spawn_local(crate::watchdog::beat_with_timers_pending(heartbeat)).detach();
    Unwatch(node.clone(), id)
}

/// Starts the shard's io_uring network loop when the node's engine is
/// `uring`. A kernel without what it needs is not fatal: the shard serves
/// its clients through glommio and says so.
fn start_net_loop(
    shard: &Rc<Shard>,
    gate: &Rc<glommio::sync::Gate>,
    foreground: glommio::TaskQueueHandle,
    stop: &StopEvent,
) -> Option<Rc<crate::uring::NetLoop>> {
    match shard.config.net_engine {
        NetEngine::Glommio => None,
        NetEngine::Uring => {
            match crate::uring::NetLoop::start(shard.clone(), gate, foreground, stop.clone()) {
                Ok(net) => Some(net),
                Err(e) => {
                    tracing::warn!(
                        shard = shard.id,
                        "{e}; serving client connections through glommio instead"
                    );
                    None
                }
            }
        }
    }
}

/// Blocks SIGTERM and SIGINT in this thread (inherited by every executor
/// thread started after) and starts a thread that waits for them: the first
/// asks the node to stop, a second exits at once with status 130.
fn start_signal_thread(node: Arc<NodeShared>) -> Result<(), Error> {
    // SAFETY: plain libc signal-set manipulation on sets we own.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(Error::Startup(format!("pthread_sigmask failed: {rc}")));
        }
        set
    };
    std::thread::Builder::new()
        .name("ringkv-signals".into())
        .spawn(move || {
            let mut count = 0;
            loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: sigwait reads a set we own and writes an int we own.
                let rc = unsafe { libc::sigwait(&set, &mut sig) };
                if rc != 0 {
                    continue;
                }
                count += 1;
                if count == 1 {
                    tracing::info!(
                        signal = sig,
                        "signal received: shutting down (send again to exit at once)"
                    );
                    node.request_stop();
                } else {
                    tracing::warn!(signal = sig, "second signal: exiting at once");
                    std::process::exit(130);
                }
            }
        })
        .map_err(|e| Error::Startup(format!("starting the signal thread: {e}")))?;
    Ok(())
}
