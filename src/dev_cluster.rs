//! `ringkv dev-cluster`: a local N-node cluster on loopback for trying
//! ringkv out and for tests. Each node is its own `ringkv serve` process (so
//! one can be killed and restarted), with its own data directory, ports and
//! node id, and every other node as a seed.
//!
//! Ports: node `k` (1-based) listens on `base + (k - 1) * spacing`, its shards
//! on the following ports, and RESP on the last port of its block
//! (`spacing` is 10, or more for many shards). Ctrl-C or SIGTERM stops every
//! node with SIGTERM (SIGKILL after 30 s).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// What `dev-cluster` starts.
#[derive(Debug, Clone, clap::Args)]
pub struct DevCluster {
    /// Number of nodes
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    /// Port of node 1; node k uses base-port + (k-1) * 10 and the ports after it
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
    /// Directory holding node-1/, node-2/, ...
    #[arg(long, default_value = "./ringkv-dev-cluster")]
    pub data_dir: PathBuf,
    /// Shards per node
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// Copies of each key
    #[arg(long, default_value_t = 3)]
    pub replication_factor: u32,
    /// Further `ringkv serve` flags for every node (after `--`)
    #[arg(last = true)]
    pub serve_args: Vec<String>,
}

/// Longest wait for a node to stop after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// One started node.
struct Node {
    id: u32,
    port: u16,
    resp_port: u16,
    child: Child,
}

fn spacing(shards: u32) -> u32 {
    (shards + 3).div_ceil(10).max(1) * 10
}

/// Runs the cluster until SIGINT/SIGTERM; errors are one line.
pub fn run(args: DevCluster) -> Result<(), String> {
    if args.nodes == 0 || args.nodes > 64 {
        return Err(format!("--nodes {} must be between 1 and 64", args.nodes));
    }
    let spacing = spacing(args.shards);
    let last = u32::from(args.base_port) + args.nodes * spacing;
    if last > u32::from(u16::MAX) {
        return Err(format!(
            "--base-port {} leaves no room for {} nodes ({} ports each)",
            args.base_port, args.nodes, spacing
        ));
    }
    let exe = std::env::current_exe().map_err(|e| format!("finding the ringkv binary: {e}"))?;
    let signals = block_signals()?;
    let port_of = |k: u32| (u32::from(args.base_port) + (k - 1) * spacing) as u16;
    let mut nodes: Vec<Node> = Vec::new();
    for k in 1..=args.nodes {
        let port = port_of(k);
        let resp_port = (u32::from(port) + spacing - 1) as u16;
        let seeds: Vec<String> = (1..=args.nodes)
            .filter(|&j| j != k)
            .map(|j| format!("127.0.0.1:{}", port_of(j)))
            .collect();
        let dir = args.data_dir.join(format!("node-{k}"));
        match start_node(&exe, &args, k, port, resp_port, &seeds, &dir) {
            Ok(child) => nodes.push(Node {
                id: k,
                port,
                resp_port,
                child,
            }),
            Err(e) => {
                stop_all(&mut nodes);
                return Err(e);
            }
        }
    }
    println!(
        "ringkv dev-cluster: {} nodes, replication factor {}",
        args.nodes, args.replication_factor
    );
    println!(
        "{:>4}  {:<21} {:<10} {:>8}  data",
        "node", "address", "resp", "pid"
    );
    for n in &nodes {
        println!(
            "{:>4}  {:<21} {:<10} {:>8}  {}",
            n.id,
            format!("127.0.0.1:{}", n.port),
            n.resp_port,
            n.child.id(),
            args.data_dir.join(format!("node-{}", n.id)).display()
        );
    }
    println!(
        "try: ringctl --addr 127.0.0.1:{} put hello world; stop with Ctrl-C",
        port_of(1)
    );
    wait_for_signal(signals, &mut nodes);
    stop_all(&mut nodes);
    Ok(())
}

fn start_node(
    exe: &Path,
    args: &DevCluster,
    id: u32,
    port: u16,
    resp_port: u16,
    seeds: &[String],
    dir: &Path,
) -> Result<Child, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .args(["--node-id", &id.to_string()])
        .args(["--port", &port.to_string()])
        .args(["--resp-port", &resp_port.to_string()])
        .args(["--shards", &args.shards.to_string()])
        .args(["--replication-factor", &args.replication_factor.to_string()])
        // Several nodes share the machine's cores: pinning every node's
        // shard 0 to CPU 0 would stack them on one core.
        .args(["--pin", "false"])
        .arg("--data-dir")
        .arg(dir);
    if !seeds.is_empty() {
        cmd.args(["--seeds", &seeds.join(",")]);
    }
    // A node sizes its memtables from the machine's memory as if it had the
    // machine to itself; here several share it, so they keep the minimum
    // unless the flags after `--` choose, or a config file does (a flag
    // given here would override the file's `memtable_size`).
    if !args
        .serve_args
        .iter()
        .any(|a| a.starts_with("--memtable-size") || a.starts_with("--config"))
    {
        cmd.args(["--memtable-size", "64MiB"]);
    }
    cmd.args(&args.serve_args);
    // A node must not outlive dev-cluster (killed with SIGKILL, say): the
    // kernel sends it SIGTERM when its parent dies.
    // SAFETY: prctl is async-signal-safe; it runs in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| format!("starting node {id} ({}): {e}", exe.display()))
}

/// Blocks SIGINT and SIGTERM in this thread so `sigtimedwait` can take them.
fn block_signals() -> Result<libc::sigset_t, String> {
    // SAFETY: plain libc signal-set manipulation on a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(format!("pthread_sigmask failed: {rc}"));
        }
        Ok(set)
    }
}

/// Waits for SIGINT/SIGTERM, reporting nodes that exit meanwhile (one may be
/// killed on purpose; the others keep running).
fn wait_for_signal(set: libc::sigset_t, nodes: &mut [Node]) {
    let mut reported = vec![false; nodes.len()];
    loop {
        let timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        // SAFETY: waits on a set we own; no output buffer is needed.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
        if sig > 0 {
            println!("signal {sig}: stopping every node");
            return;
        }
        for (n, done) in nodes.iter_mut().zip(reported.iter_mut()) {
            if !*done {
                if let Ok(Some(status)) = n.child.try_wait() {
                    println!("node {} (pid {}) exited: {status}", n.id, n.child.id());
                    *done = true;
                }
            }
        }
    }
}

/// SIGTERM to every node still running, then wait (SIGKILL after STOP_TIMEOUT).
fn stop_all(nodes: &mut [Node]) {
    for n in nodes.iter() {
        // SAFETY: sends a signal to a child we started.
        unsafe {
            libc::kill(n.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for n in nodes.iter_mut() {
        loop {
            match n.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = n.child.kill();
                    let _ = n.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    println!("every node stopped");
}

#[cfg(test)]
mod tests {
    use super::spacing;

    #[test]
    fn a_node_block_holds_its_port_shards_and_resp_port() {
        assert_eq!(spacing(1), 10);
        assert_eq!(spacing(7), 10);
        assert_eq!(spacing(8), 20);
        for shards in 1..100 {
            assert!(spacing(shards) >= shards + 2);
        }
    }
}
