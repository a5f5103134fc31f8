//! The cluster with real processes on loopback: three `ringkv serve` nodes
//! (one shard each), replication factor 3, killed, restarted and skewed.
//! Every wait is bounded; a failure prints the nodes' logs.

mod common;

use common::{free_base_port, temp_dir, Node};
use ringkv_net::client::{Client, ClientOptions};
use ringkv_net::client_frame::{Consistency, Status};
use ringkv_net::error::ClientError;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Longest wait for the cluster to converge (ring, links, hints, repair).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Three (or more) nodes on fixed ports, each with every other as a seed.
struct Cluster {
    _dir: tempfile::TempDir,
    root: PathBuf,
    ports: Vec<u16>,
    extra: Vec<Vec<String>>,
    nodes: Vec<Option<Node>>,
}

impl Cluster {
    /// Starts `n` nodes; `extra(i)` adds flags to node `i` (0-based).
    fn start(n: usize, extra: impl Fn(usize) -> Vec<String>) -> Cluster {
        let dir = temp_dir();
        let root = dir.path().to_path_buf();
        let ports: Vec<u16> = (0..n).map(|_| free_base_port(1)).collect();
        let mut c = Cluster {
            _dir: dir,
            root,
            ports,
            extra: (0..n).map(extra).collect(),
            nodes: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            c.start_node(i);
        }
        for i in 0..n {
            c.wait_peers_up(i, n - 1);
        }
        c
    }

    /// Starts (or restarts) node `i` on its port with its data directory.
    fn start_node(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        let seeds: Vec<String> = (0..self.ports.len())
            .filter(|&j| j != i)
            .map(|j| format!("127.0.0.1:{}", self.ports[j]))
            .collect();
        let data = self.root.join(format!("node-{}", i + 1));
        let id = (i + 1).to_string();
        let seeds = seeds.join(",");
        let mut args: Vec<&str> = vec![
            "--data-dir",
            data.to_str().expect("utf-8 path"),
            "--node-id",
            &id,
            "--seeds",
            &seeds,
            "--pin",
            "false",
        ];
        args.extend(self.extra[i].iter().map(String::as_str));
        self.nodes[i] = Some(Node::start_on(None, self.ports[i], &data, 1, &args));
    }

    fn kill(&mut self, i: usize) {
        self.nodes[i].take().expect("node running").kill();
    }

    fn stop(&mut self, i: usize) {
        let status = self.nodes[i].take().expect("node running").terminate();
        assert!(status.success(), "node {i} stopped with {status}");
    }

    fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i])
    }

    /// A client whose every request goes to node `i` (its coordinator).
    fn client(&self, i: usize, consistency: Consistency) -> Client {
        let options = ClientOptions {
            consistency,
            token_aware: false,
            ..ClientOptions::default()
        };
        Client::connect(&[self.addr(i)], options).expect("client connects")
    }

    /// Every log, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for (i, port) in self.ports.iter().enumerate() {
            let log = self
                .root
                .join(format!("node-{}", i + 1))
                .with_extension(format!("{port}.log"));
            out += &format!(
                "\n===== node {} =====\n{}",
                i + 1,
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        out
    }

    /// A STATS figure of node `i` (its only shard).
    fn stat(&self, i: usize, name: &str) -> Option<u64> {
        let mut client = self.client(i, Consistency::Default);
        let text = client.stats().ok()?;
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.trim().parse().ok())
    }

    /// Waits until node `i` sees `n` peers up.
    fn wait_peers_up(&self, i: usize, n: usize) {
        self.wait(&format!("node {} to see {n} peers up", i + 1), || {
            self.stat(i, "cluster_peers_up") == Some(n as u64)
        });
    }

    /// Polls `done` every 50 ms until it holds (panics with the logs after
    /// CONVERGE_TIMEOUT).
    fn wait(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

fn value(i: usize, round: &str) -> Vec<u8> {
    format!("{round}-value-{i}").into_bytes()
}

/// The value node `i` holds for `k` by itself (ONE, answered from its copy).
fn local_value(c: &Cluster, client: &mut Client, k: &[u8]) -> Option<Vec<u8>> {
    match client.get(k) {
        Ok(v) => v.map(|v| v.value),
        Err(e) => panic!("ONE read failed: {e}{}", c.logs()),
    }
}

fn expect_unavailable(
    result: Result<impl std::fmt::Debug, ClientError>,
    needed: usize,
    got: usize,
) {
    match result {
        Err(ClientError::Server { status, message }) => {
            assert_eq!(status, Status::Unavailable, "{message}");
            assert!(
                message.contains(&format!("needed {needed}"))
                    && message.contains(&format!("got {got}")),
                "{message}"
            );
        }
        other => panic!("expected UNAVAILABLE (needed {needed}, got {got}), got {other:?}"),
    }
}

#[test]
fn quorum_writes_survive_a_sigkill_and_hints_bring_the_restarted_node_up_to_date() {
    const KEYS: usize = 5_000;
    const WRITERS: usize = 4;
    let mut c = Cluster::start(3, |_| Vec::new());
    let addr = c.addr(0);
    // Writers go through node 1 while node 3 is killed and later restarted.
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (addr, progress) = (addr.clone(), progress.clone());
            std::thread::spawn(move || {
                let options = ClientOptions {
                    consistency: Consistency::Quorum,
                    token_aware: false,
                    ..ClientOptions::default()
                };
                let mut client = Client::connect(&[addr], options).expect("client");
                let mut acked = Vec::new();
                for i in (w..KEYS).step_by(WRITERS) {
                    if client.put(&key(i), &value(i, "v1"), None).is_ok() {
                        acked.push(i);
                    }
                    progress.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    // Pace the writers so the kill and restart land mid-stream.
                    std::thread::sleep(Duration::from_micros(300));
                }
                acked
            })
        })
        .collect();
    let at = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while progress.load(std::sync::atomic::Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "writers stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    at(KEYS / 4);
    c.kill(2);
    at(KEYS * 3 / 4);
    c.start_node(2);
    let acked: Vec<usize> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer"))
        .collect();
    assert!(
        acked.len() >= KEYS * 9 / 10,
        "only {} of {KEYS} QUORUM writes were acknowledged with one node down{}",
        acked.len(),
        c.logs()
    );
    assert!(
        c.stat(0, "cluster_hints_stored").unwrap_or(0) > 0,
        "no hints were stored"
    );

    // 0 acknowledged writes lost: every one reads back at QUORUM.
    let mut reader = c.client(0, Consistency::Quorum);
    for &i in &acked {
        let got = reader.get(&key(i)).expect("QUORUM read").map(|v| v.value);
        assert_eq!(got, Some(value(i, "v1")), "key {i} lost{}", c.logs());
    }

    // After hint replay, the restarted node alone has the latest values.
    c.wait_peers_up(2, 2);
    let mut one = c.client(2, Consistency::One);
    let mut missing: Vec<usize> = acked.clone();
    c.wait("hint replay to node 3", || {
        missing.retain(|&i| local_value(&c, &mut one, &key(i)) != Some(value(i, "v1")));
        missing.is_empty()
    });
    assert!(c.stat(0, "cluster_hints_delivered").unwrap_or(0) > 0);
}

#[test]
fn one_node_down_leaves_quorum_working_and_all_unavailable_two_down_leave_quorum_unavailable() {
    let mut c = Cluster::start(3, |_| Vec::new());
    let mut all = c.client(0, Consistency::All);
    all.put(b"k", b"v0", None)
        .expect("ALL write with every node up");

    c.kill(2);
    c.wait_peers_up(0, 1);
    let mut quorum = c.client(0, Consistency::Quorum);
    quorum
        .put(b"k", b"v1", None)
        .expect("QUORUM write, one node down");
    assert_eq!(
        quorum.get(b"k").expect("QUORUM read").map(|v| v.value),
        Some(b"v1".to_vec())
    );
    let mut all = c.client(0, Consistency::All);
    expect_unavailable(all.put(b"k", b"v2", None), 3, 2);
    expect_unavailable(all.get(b"k"), 3, 2);
    // Multi-key requests carry their level too.
    expect_unavailable(all.mput(&[(&b"m1"[..], &b"x"[..])], None), 3, 2);
    expect_unavailable(all.mget(&[&b"k"[..]]), 3, 2);
    quorum
        .mput(&[(&b"m1"[..], &b"x"[..]), (&b"m2"[..], &b"y"[..])], None)
        .expect("QUORUM MPUT, one node down");
    let got = quorum.mget(&[&b"m1"[..], &b"m2"[..]]).expect("QUORUM MGET");
    assert_eq!(got.iter().filter(|v| v.is_some()).count(), 2);

    c.kill(1);
    c.wait_peers_up(0, 0);
    let mut quorum = c.client(0, Consistency::Quorum);
    expect_unavailable(quorum.put(b"k", b"v3", None), 2, 1);
    expect_unavailable(quorum.get(b"k"), 2, 1);
    // ONE still works from the surviving replica, with the QUORUM value.
    let mut one = c.client(0, Consistency::One);
    assert_eq!(
        one.get(b"k").expect("ONE read").map(|v| v.value),
        Some(b"v1".to_vec())
    );
}

#[test]
fn a_quorum_read_repairs_a_stale_replica() {
    const KEYS: usize = 300;
    // No hints anywhere: only read repair can bring node 3 up to date.
    let mut c = Cluster::start(3, |_| vec!["--hints".into(), "false".into()]);
    let mut all = c.client(0, Consistency::All);
    for i in 0..KEYS {
        all.put(&key(i), &value(i, "old"), None).expect("ALL write");
    }
    c.stop(2);
    c.wait_peers_up(0, 1);
    let mut quorum = c.client(0, Consistency::Quorum);
    for i in 0..KEYS {
        quorum
            .put(&key(i), &value(i, "new"), None)
            .expect("QUORUM write");
    }
    c.start_node(2);
    c.wait_peers_up(0, 2);
    c.wait_peers_up(2, 2);

    // Node 3 is stale (so the check below can fail).
    let mut one = c.client(2, Consistency::One);
    for i in 0..KEYS {
        assert_eq!(local_value(&c, &mut one, &key(i)), Some(value(i, "old")));
    }
    // A QUORUM read of each key through node 1 returns the new value...
    let mut quorum = c.client(0, Consistency::Quorum);
    for i in 0..KEYS {
        let got = quorum.get(&key(i)).expect("QUORUM read").map(|v| v.value);
        assert_eq!(got, Some(value(i, "new")));
    }
    // ...and repairs node 3 in the background.
    let mut stale: Vec<usize> = (0..KEYS).collect();
    c.wait("read repair of node 3", || {
        stale.retain(|&i| local_value(&c, &mut one, &key(i)) != Some(value(i, "new")));
        stale.is_empty()
    });
    assert!(c.stat(0, "cluster_read_repairs").unwrap_or(0) >= KEYS as u64);
}

#[test]
fn concurrent_writers_through_different_coordinators_converge_on_every_replica() {
    const KEYS: usize = 200;
    const ROUNDS: usize = 5;
    let c = Cluster::start(3, |_| Vec::new());
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let addr = c.addr(w);
            std::thread::spawn(move || {
                let options = ClientOptions {
                    consistency: Consistency::Quorum,
                    token_aware: false,
                    ..ClientOptions::default()
                };
                let mut client = Client::connect(&[addr], options).expect("client");
                for round in 0..ROUNDS {
                    for i in 0..KEYS {
                        client
                            .put(&key(i), &value(i, &format!("w{w}r{round}")), None)
                            .expect("QUORUM write");
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    let mut clients: Vec<Client> = (0..3).map(|i| c.client(i, Consistency::One)).collect();
    let mut diverged: Vec<usize> = (0..KEYS).collect();
    c.wait("every replica to hold the same newest version", || {
        diverged.retain(|&i| {
            let seen: Vec<_> = clients
                .iter_mut()
                .map(|cl| {
                    cl.get(&key(i))
                        .expect("ONE read")
                        .map(|v| (v.value, v.version))
                })
                .collect();
            seen.iter().any(|s| s != &seen[0]) || seen[0].is_none()
        });
        diverged.is_empty()
    });
}

#[test]
fn a_clients_second_write_wins_over_its_first_through_a_node_whose_clock_is_ten_seconds_ahead() {
    const KEYS: usize = 100;
    let c = Cluster::start(3, |i| {
        if i == 0 {
            vec!["--clock-offset-ms".into(), "10000".into()]
        } else {
            Vec::new()
        }
    });
    // One client (one session): each key first through the fast node, then
    // through a normal one.
    let mut client = c.client(0, Consistency::Quorum);
    for i in 0..KEYS {
        client.set_home(&c.addr(0)).expect("home: fast node");
        client
            .put(&key(i), &value(i, "first"), None)
            .expect("write via node 1");
        client.set_home(&c.addr(1)).expect("home: normal node");
        client
            .put(&key(i), &value(i, "second"), None)
            .expect("write via node 2");
    }
    for node in 0..3 {
        let mut quorum = c.client(node, Consistency::Quorum);
        for i in 0..KEYS {
            let got = quorum.get(&key(i)).expect("QUORUM read").map(|v| v.value);
            assert_eq!(
                got,
                Some(value(i, "second")),
                "key {i} via node {}",
                node + 1
            );
        }
    }
    let mut clients: Vec<Client> = (0..3).map(|i| c.client(i, Consistency::One)).collect();
    let mut behind: Vec<(usize, usize)> = (0..3)
        .flat_map(|n| (0..KEYS).map(move |i| (n, i)))
        .collect();
    c.wait("every node to hold the second value", || {
        behind.retain(|&(n, i)| {
            local_value(&c, &mut clients[n], &key(i)) != Some(value(i, "second"))
        });
        behind.is_empty()
    });
}

#[test]
fn dev_cluster_starts_three_nodes_that_replicate_and_stops_them_on_sigterm() {
    let dir = temp_dir();
    let base = free_base_port(28);
    let out_path = dir.path().join("dev-cluster.out");
    let out = std::fs::File::create(&out_path).expect("out file");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args([
            "dev-cluster",
            "--nodes",
            "3",
            "--base-port",
            &base.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir.path().join("cluster"))
        .args(["--", "--io-memory", "1MiB", "--memtable-size", "4MiB"])
        .stdout(std::process::Stdio::from(out))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start dev-cluster");
    // If an assertion fails, SIGKILL dev-cluster: its nodes get SIGTERM from
    // the kernel (PR_SET_PDEATHSIG), so nothing outlives the test.
    struct KillOnDrop(Option<std::process::Child>);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Some(mut c) = self.0.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut guard = KillOnDrop(Some(child));
    let child = guard.0.as_mut().expect("child");
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    let addrs: Vec<String> = (0..3)
        .map(|k| format!("127.0.0.1:{}", base + k * 10))
        .collect();
    // A write at ALL succeeds once every node is up and linked.
    loop {
        let ok = Client::connect(
            &[addrs[0].clone()],
            ClientOptions {
                consistency: Consistency::All,
                ..ClientOptions::default()
            },
        )
        .and_then(|mut cl| cl.put(b"dev", b"cluster", None));
        if ok.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dev-cluster never accepted an ALL write: {ok:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for addr in &addrs {
        let mut one = Client::connect(
            std::slice::from_ref(addr),
            ClientOptions {
                consistency: Consistency::One,
                token_aware: false,
                ..ClientOptions::default()
            },
        )
        .expect("client");
        // Each node answers ONE from its own copy once it has built its ring.
        loop {
            match one.get(b"dev") {
                Ok(v) => {
                    assert_eq!(v.map(|v| v.value), Some(b"cluster".to_vec()), "node {addr}");
                    break;
                }
                Err(ClientError::Server {
                    status: Status::Unavailable,
                    ..
                }) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("ONE read from {addr}: {e}"),
            }
        }
    }
    let printed = std::fs::read_to_string(&out_path).unwrap_or_default();
    let pids: Vec<i32> = printed
        .lines()
        .filter(|l| l.contains("127.0.0.1:"))
        .filter_map(|l| l.split_whitespace().nth(3).and_then(|p| p.parse().ok()))
        .collect();
    assert_eq!(pids.len(), 3, "dev-cluster printed:\n{printed}");
    // SAFETY: SIGTERM to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "dev-cluster did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "dev-cluster exited with {status}");
    guard.0 = None;
    for pid in pids {
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(
            !alive,
            "node pid {pid} still running after dev-cluster stopped"
        );
    }
}

#[test]
fn hints_survive_a_restart_of_the_coordinator_that_stored_them() {
    const KEYS: usize = 200;
    let mut c = Cluster::start(3, |_| Vec::new());
    c.kill(2);
    c.wait_peers_up(0, 1);
    let mut quorum = c.client(0, Consistency::Quorum);
    for i in 0..KEYS {
        quorum
            .put(&key(i), &value(i, "hinted"), None)
            .expect("QUORUM write");
    }
    c.wait("node 1 to store a hint per write", || {
        c.stat(0, "cluster_hints_stored") == Some(KEYS as u64)
    });
    // The coordinator stops (its hints are on disk), then the replica comes
    // back: nobody else holds hints for it, so it stays stale...
    c.stop(0);
    c.start_node(2);
    c.wait_peers_up(2, 1);
    let mut one = c.client(2, Consistency::One);
    assert_eq!(local_value(&c, &mut one, &key(0)), None);
    // ...until the coordinator restarts and replays the hints it kept.
    c.start_node(0);
    let mut stale: Vec<usize> = (0..KEYS).collect();
    c.wait("node 1 to replay its hints after a restart", || {
        stale.retain(|&i| local_value(&c, &mut one, &key(i)) != Some(value(i, "hinted")));
        stale.is_empty()
    });
}

#[test]
fn a_token_aware_client_sends_each_write_to_a_replica_of_its_key() {
    const KEYS: usize = 300;
    // One copy per key: only token-aware routing makes nodes 2 and 3
    // coordinate writes of a client that connected to node 1.
    let c = Cluster::start(3, |_| vec!["--replication-factor".into(), "1".into()]);
    let options = ClientOptions {
        consistency: Consistency::One,
        ..ClientOptions::default()
    };
    let mut client = Client::connect(&[c.addr(0)], options).expect("client");
    let ring = client.ring().expect("the client fetched the ring").clone();
    assert_eq!(ring.nodes().len(), 3);
    for i in 0..KEYS {
        client
            .put(&key(i), &value(i, "routed"), None)
            .expect("write");
    }
    let coordinated: Vec<u64> = (0..3)
        .map(|n| c.stat(n, "cluster_writes").unwrap_or(0))
        .collect();
    assert_eq!(
        coordinated.iter().sum::<u64>(),
        KEYS as u64,
        "{coordinated:?}"
    );
    // Each write was coordinated by the key's only replica, so each node
    // coordinated exactly the keys it owns.
    for (n, count) in coordinated.iter().enumerate() {
        let owned = (0..KEYS)
            .filter(|&i| {
                ring.replicas(ringkv_net::routing::token(&key(i)))
                    .contains(n as u32 + 1)
            })
            .count() as u64;
        assert_eq!(
            *count,
            owned,
            "node {} coordinated {count}, owns {owned}",
            n + 1
        );
        assert!(owned > 0);
    }
    // And each key is on its replica: a non-token-aware read through any
    // node finds it (the coordinator asks the replica).
    let mut via_3 = c.client(2, Consistency::One);
    for i in 0..KEYS {
        let got = via_3.get(&key(i)).expect("read").map(|v| v.value);
        assert_eq!(got, Some(value(i, "routed")));
    }
}

#[test]
fn redis_clients_read_and_write_through_any_node_at_the_default_quorum() {
    let resp_ports: Vec<u16> = (0..3).map(|_| free_base_port(0)).collect();
    let ports = resp_ports.clone();
    let c = Cluster::start(3, move |i| vec!["--resp-port".into(), ports[i].to_string()]);
    let connect = |i: usize| {
        redis::Client::open(format!("redis://127.0.0.1:{}/", resp_ports[i]))
            .and_then(|cl| cl.get_connection())
            .expect("redis connection")
    };
    let (mut r1, mut r2, mut r3) = (connect(0), connect(1), connect(2));
    let _: () = redis::cmd("SET")
        .arg("greeting")
        .arg("hello")
        .query(&mut r1)
        .expect("SET");
    let got: Option<String> = redis::cmd("GET")
        .arg("greeting")
        .query(&mut r3)
        .expect("GET");
    assert_eq!(got.as_deref(), Some("hello"));
    for _ in 0..5 {
        let _: i64 = redis::cmd("INCR")
            .arg("counter")
            .query(&mut r2)
            .expect("INCR");
    }
    let n: i64 = redis::cmd("INCRBY")
        .arg("counter")
        .arg(10)
        .query(&mut r3)
        .expect("INCRBY");
    assert_eq!(n, 15);
    // Every replica holds both keys (QUORUM wrote to all three live nodes).
    for node in 0..3 {
        let mut one = c.client(node, Consistency::One);
        let mut missing = vec![&b"greeting"[..], &b"counter"[..]];
        c.wait("the RESP writes on every replica", || {
            missing.retain(|k| one.get(k).expect("ONE read").is_none());
            missing.is_empty()
        });
    }
    let deleted: i64 = redis::cmd("DEL")
        .arg("greeting")
        .query(&mut r2)
        .expect("DEL");
    assert_eq!(deleted, 1);
    let got: Option<String> = redis::cmd("GET")
        .arg("greeting")
        .query(&mut r1)
        .expect("GET");
    assert_eq!(got, None);
}

#[test]
fn hostile_internode_bytes_close_that_connection_and_the_node_keeps_serving() {
    use std::io::{Read, Write};
    let c = Cluster::start(3, |_| Vec::new());
    let shard_port = ringkv_net::routing::shard_port(c.ports[0], 0);
    let hostile: Vec<Vec<u8>> = vec![
        // A header claiming a frame far over the limit.
        [
            &ringkv_net::internode::PREFACE[..],
            &u32::MAX.to_le_bytes(),
            &[0u8; 12],
        ]
        .concat(),
        // A header whose checksum does not match its 16 bytes of archive.
        [
            &ringkv_net::internode::PREFACE[..],
            &16u32.to_le_bytes(),
            &[0xAB; 28],
        ]
        .concat(),
        // Garbage after the preface.
        [&ringkv_net::internode::PREFACE[..], &[0xFF; 64][..]].concat(),
    ];
    for bytes in hostile {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", shard_port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(&bytes).expect("send");
        let mut rest = Vec::new();
        // The node closes the connection (EOF or reset) without answering,
        // rather than waiting for more.
        if let Err(e) = s.read_to_end(&mut rest) {
            assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "the node kept a hostile internode connection open"
            );
        }
        assert!(rest.is_empty(), "answered hostile bytes with {rest:?}");
    }
    // The node and its links are unharmed: a write at ALL still succeeds.
    let mut all = c.client(0, Consistency::All);
    all.put(b"after", b"hostile", None).expect("ALL write");
    c.wait_peers_up(0, 2);
}
