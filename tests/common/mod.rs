//! Test harness for real `ringkv` processes on 127.0.0.1: free ports, a guard
//! that kills the child on drop, ringctl and raw-protocol helpers. Every wait
//! is bounded.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use ringkv_net::client_frame::{
    decode_response, encode_request, Decoded, Request, RequestHeader, Response, Status,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// How long a node may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node may take to stop after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Socket read timeout of raw-protocol tests.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A base port such that `port..=port + 1 + shards` are all free now. Ports
/// come from 20000..32000 (below the ephemeral range), spread by process id.
pub fn free_base_port(shards: u32) -> u16 {
    let span = shards as u16 + 2;
    let _ = NEXT_PORT.compare_exchange(
        0,
        20_000 + (std::process::id() % 500) as u16 * 20,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..1000 {
        let mut base = NEXT_PORT.fetch_add(span, Ordering::SeqCst);
        if base > 32_000 {
            NEXT_PORT.store(20_000, Ordering::SeqCst);
            base = NEXT_PORT.fetch_add(span, Ordering::SeqCst);
        }
        let all_free = (0..span).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free port range found");
}

/// A fresh directory on the real disk (direct I/O needs one).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir")
}

/// A running `ringkv serve`; killed (SIGKILL) on drop if still running.
pub struct Node {
    child: Option<Child>,
    /// The node port.
    pub port: u16,
    /// Shard count.
    pub shards: u32,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Where the node's stderr goes.
    pub log: PathBuf,
}

impl Node {
    /// Starts a node with `--shards shards` on free ports and waits until
    /// every port accepts connections.
    pub fn start(data_dir: &Path, shards: u32, extra: &[&str]) -> Node {
        let dir_arg = data_dir.to_str().expect("utf-8 path");
        Node::start_in(
            None,
            data_dir,
            shards,
            &[&["--data-dir", dir_arg], extra].concat(),
        )
    }

    /// Starts a node in working directory `cwd` (if given) whose data ends up
    /// in `data_dir`; `args` say how (e.g. `--data-dir`, or nothing for the default).
    pub fn start_in(cwd: Option<&Path>, data_dir: &Path, shards: u32, args: &[&str]) -> Node {
        Node::start_on(cwd, free_base_port(shards), data_dir, shards, args)
    }

    /// Starts a node on `port` (a restarted cluster node keeps its address).
    /// Its stderr is appended to `<data_dir>.<port>.log`.
    pub fn start_on(
        cwd: Option<&Path>,
        port: u16,
        data_dir: &Path,
        shards: u32,
        args: &[&str],
    ) -> Node {
        let log = data_dir.with_extension(format!("{port}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringkv"));
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        let child = cmd
            .arg("serve")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--shards", &shards.to_string()])
            .args([
                "--io-memory",
                "1MiB",
                "--memtable-size",
                "4MiB",
                "--block-cache-size",
                "8MiB",
            ])
            .args(args)
            .args(if args.contains(&"--resp-port") {
                &[][..]
            } else {
                &["--resp-port", "0"][..]
            })
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn ringkv");
        let mut node = Node {
            child: Some(child),
            port,
            shards,
            data_dir: data_dir.to_path_buf(),
            log,
        };
        node.wait_ready();
        node
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let ports: Vec<u16> = (0..=self.shards as u16).map(|i| self.port + i).collect();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "ringkv exited during start with {status}; log:\n{}",
                    self.log_text()
                );
            }
            if ports
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ringkv did not start in time; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The node's stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port of shard `i`.
    pub fn shard_port(&self, i: u32) -> u16 {
        ringkv_net::routing::shard_port(self.port, i)
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as libc::pid_t, sig) };
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().expect("node running");
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ringkv did not exit in time; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then waits for the exit (bounded).
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(STOP_TIMEOUT)
    }

    /// SIGKILL, then waits for the exit.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.wait_exit(STOP_TIMEOUT);
    }

    /// A blocking client of this node.
    pub fn client(&self) -> ringkv_net::client::Client {
        ringkv_net::client::Client::connect(
            &[self.addr()],
            ringkv_net::client::ClientOptions::default(),
        )
        .expect("client connects")
    }

    /// Runs ringctl against this node.
    pub fn ctl(&self, args: &[&str]) -> Output {
        ctl(&self.addr(), args)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs ringctl with `--addr addr` (bounded by its own timeout).
pub fn ctl(addr: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringctl"))
        .args(["--addr", addr, "--timeout-ms", "10000"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ringctl")
}

/// ringctl's stdout, asserting success.
pub fn ctl_ok(node: &Node, args: &[&str]) -> String {
    let out = node.ctl(args);
    assert!(
        out.status.success(),
        "ringctl {args:?} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A raw protocol connection (no client library): for byte-level tests.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    /// Connects to `port` on 127.0.0.1.
    pub fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends raw bytes.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Encodes and sends one request with id `id`.
    pub fn send(&mut self, id: u64, req: &Request<'_>) {
        let mut out = Vec::new();
        encode_request(&header(id), req, &mut out);
        self.send_bytes(&out);
    }

    /// Reads the next response; `None` when the server closed the connection.
    pub fn recv(&mut self) -> Option<(u64, OwnedAnswer)> {
        loop {
            match decode_response(&self.buf, 64 << 20) {
                Ok(Decoded::Frame {
                    frame: (id, resp),
                    len,
                }) => {
                    let answer = OwnedAnswer::from(&resp);
                    self.buf.drain(..len);
                    return Some((id, answer));
                }
                Ok(Decoded::Incomplete { .. }) => {}
                Err(e) => panic!("server sent a bad frame: {e}"),
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// Sends one request and reads its answer.
    pub fn call(&mut self, id: u64, req: &Request<'_>) -> OwnedAnswer {
        self.send(id, req);
        let (got, answer) = self.recv().expect("an answer");
        assert_eq!(got, id, "answer id");
        answer
    }
}

/// A request header with id `id` and no session.
pub fn header(id: u64) -> RequestHeader {
    RequestHeader {
        id,
        ..RequestHeader::default()
    }
}

/// The interesting parts of a response, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedAnswer {
    Pong,
    Value(Vec<u8>),
    NotFound,
    Written,
    Error(Status),
    Other(String),
}

impl From<&Response<'_>> for OwnedAnswer {
    fn from(r: &Response<'_>) -> Self {
        match r {
            Response::Pong => OwnedAnswer::Pong,
            Response::Value { value, .. } => OwnedAnswer::Value(value.to_vec()),
            Response::NotFound => OwnedAnswer::NotFound,
            Response::Written { .. } => OwnedAnswer::Written,
            Response::Error { status, .. } => OwnedAnswer::Error(*status),
            other => OwnedAnswer::Other(format!("{other:?}")),
        }
    }
}

/// A key that shard `shard` of a node with `shards` shards owns.
pub fn key_owned_by(shard: u32, shards: u32, tag: &str) -> Vec<u8> {
    (0..10_000)
        .map(|i| format!("{tag}-{i}").into_bytes())
        .find(|k| ringkv_net::routing::shard_for(ringkv_net::routing::token(k), shards) == shard)
        .expect("some key maps to every shard")
}
