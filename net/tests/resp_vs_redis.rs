//! Differential test: our parser's error replies against a real
//! `redis-server` (skipped, with a note, when none is on PATH). Every line
//! below is refused by our parser; Redis must refuse it with the very same
//! error line. Protocol errors are compared on fresh connections, since
//! Redis closes the connection after one.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ringkv_net::resp::{parse_command, Command, Decoded, RespLimits};

/// A private `redis-server` listening only on a Unix socket in its own
/// directory. No TCP port: tests running in parallel (and their client
/// sockets' ephemeral ports) can never collide with it, which a
/// bind-to-0-then-release port pick could (CI saw a reset from a server
/// that was not this test's).
struct Server {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_redis() -> Option<Server> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ringkv-resp-vs-redis-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok()?;
    let socket = dir.join("redis.sock");
    let child = Process::new("redis-server")
        .args(["--port", "0", "--unixsocket"])
        .arg(&socket)
        .args([
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut server = Server { child, dir, socket };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if UnixStream::connect(&server.socket).is_ok() {
            return Some(server);
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            eprintln!("redis-server exited at start: {status}");
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn connect(server: &Server) -> (UnixStream, BufReader<UnixStream>) {
    let s = UnixStream::connect(&server.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

fn reply_line(
    stream: &mut UnixStream,
    reader: &mut BufReader<UnixStream>,
    request: &[u8],
) -> String {
    stream.write_all(request).unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line.trim_end_matches("\r\n").to_owned()
}

/// Our error reply for one inline line.
fn our_error(line: &str) -> String {
    let buf = format!("{line}\r\n");
    match parse_command(buf.as_bytes(), &RespLimits::default()) {
        Err(e) => format!("-{}", e.redis_message()),
        Ok(Decoded::Frame { frame, .. }) => match Command::parse(&frame) {
            Err(e) => format!("-{e}"),
            Ok(Command::Unknown { args }) => {
                format!(
                    "-{}",
                    ringkv_net::resp::command::unknown_command_message(args.iter())
                )
            }
            Ok(c) => panic!("{line:?} is accepted by our parser: {c:?}"),
        },
        Ok(Decoded::Incomplete { .. }) => panic!("{line:?} incomplete"),
    }
}

/// Lines our parser refuses. CLIENT SETINFO (Redis 7.2) is left out so the
/// test also runs against Redis 7.0; its errors are in `resp_command.rs`.
const REFUSED: &[&str] = &[
    "GET",
    "get a b",
    "SET k",
    "setnx k",
    "SETEX k 10",
    "psetex k 10",
    "getset k",
    "getdel",
    "getex",
    "mget",
    "mset k",
    "MSET k v k2",
    "msetnx a b c",
    "del",
    "unlink",
    "exists",
    "incr",
    "decr a b",
    "incrby k",
    "decrby k",
    "append k",
    "strlen",
    "expire k",
    "pexpire k",
    "expireat k",
    "pexpireat k",
    "persist",
    "ttl",
    "pttl",
    "type",
    "scan",
    "keys",
    "dbsize x",
    "ping a b",
    "echo",
    "auth a b c",
    "select",
    "client",
    "client setname",
    "client getname x",
    "client id x",
    "config",
    "config get",
    "command count x",
    "SET k v NX XX",
    "SET k v XX NX",
    "SET k v EX 1 PX 2",
    "SET k v PX 1 EXAT 2",
    "SET k v EX 1 KEEPTTL",
    "SET k v KEEPTTL EX 1",
    "SET k v EX",
    "SET k v PERSIST",
    "SET k v FOO",
    "GETEX k NX",
    "GETEX k GET",
    "GETEX k KEEPTTL",
    "GETEX k EX 1 PERSIST",
    "GETEX k PERSIST PX 1",
    "GETEX k EX",
    "SET k v EX 0",
    "SET k v PX -5",
    "SET k v EX 9223372036854776",
    "SET k v EX abc",
    "SET k v EX 1.5",
    "SETEX k 0 v",
    "PSETEX k -1 v",
    "SETEX k x v",
    "GETEX k EX 0",
    "INCRBY k x",
    "INCRBY k 1.0",
    "INCRBY k 9223372036854775808",
    "DECRBY k ''",
    "INCRBY k 01",
    "DECRBY k -9223372036854775808",
    "EXPIRE k 1 NX XX",
    "EXPIRE k 1 NX LT",
    "EXPIRE k 1 GT LT",
    "EXPIRE k 1 FOO",
    "EXPIRE k x",
    "EXPIRE k x FOO",
    "EXPIRE k 9223372036854776",
    "EXPIREAT k -9223372036854776",
    "SCAN x",
    "SCAN 0 COUNT 0",
    "SCAN 0 COUNT -3",
    "SCAN 0 COUNT x",
    "SCAN 0 COUNT",
    "SCAN 0 FOO bar",
    "FLUSHDB FOO",
    "FLUSHALL SYNC ASYNC",
    "COMMAND FOO",
    "CONFIG FOO a b",
    "SELECT x",
    "SELECT 2147483648",
    "HELLO x",
    "HELLO 4",
    "HELLO 1",
    "HELLO 3 AUTH u",
    "HELLO 3 SETNAME",
    "HELLO 3 FOO",
    "HELLO 2 SETNAME 'a b'",
    "CLIENT SETNAME \"a\\nb\"",
    "CLIENT FOO x",
    "FOO a b",
    "foo",
    "nosuchcommand 'a b' c",
    "set \"k v",
    "set 'k",
    "set \"k\"v",
    "set 'k'v",
];

#[test]
fn error_replies_match_a_real_redis_server() {
    let Some(server) = start_redis() else {
        eprintln!("redis-server not found on PATH: differential test skipped");
        return;
    };
    let (mut stream, mut reader) = connect(&server);
    // GETEX checks its expire time only when the key exists (Redis answers
    // nil for a missing key first; ringkv checks while parsing).
    assert_eq!(reply_line(&mut stream, &mut reader, b"SET k v\r\n"), "+OK");
    let mut mismatches = Vec::new();
    for line in REFUSED {
        let ours = our_error(line);
        let theirs = if ours.contains("Protocol error") {
            let (mut s, mut r) = connect(&server);
            reply_line(&mut s, &mut r, format!("{line}\r\n").as_bytes())
        } else {
            reply_line(&mut stream, &mut reader, format!("{line}\r\n").as_bytes())
        };
        if ours != theirs {
            mismatches.push(format!("{line:?}\n  ours:   {ours}\n  theirs: {theirs}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn protocol_errors_match_a_real_redis_server() {
    let Some(server) = start_redis() else {
        eprintln!("redis-server not found on PATH: differential test skipped");
        return;
    };
    let cases: &[&[u8]] = &[
        b"*1\r\n:1\r\n",
        b"*2\r\n$3\r\nGET\r\nx\r\n",
        b"*1\r\n$-1\r\n",
        b"*1\r\n$-7\r\n",
        b"*x\r\n",
        b"*+1\r\n",
        b"*1\r\n$01\r\n",
        b"*1\r\n$x\r\n",
        b"*9999999999\r\n",
        b"*2\r\n$3\r\nGET\r\n$9999999999999\r\n",
    ];
    for case in cases {
        let ours = match parse_command(case, &RespLimits::default()) {
            Err(e) => format!("-{}", e.redis_message()),
            other => panic!("{case:?}: {other:?}"),
        };
        let (mut s, mut r) = connect(&server);
        let theirs = reply_line(&mut s, &mut r, case);
        assert_eq!(ours, theirs, "request {:?}", String::from_utf8_lossy(case));
    }
}

/// Reads one whole RESP2 reply; returns its first line.
fn read_reply(reader: &mut BufReader<UnixStream>) -> String {
    use std::io::Read;
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let line = line.trim_end_matches("\r\n").to_owned();
    let n: i64 = line.get(1..).and_then(|t| t.parse().ok()).unwrap_or(-1);
    match line.as_bytes().first() {
        Some(b'$') if n >= 0 => {
            let mut body = vec![0; n as usize + 2];
            reader.read_exact(&mut body).unwrap();
        }
        Some(b'*') => (0..n.max(0)).for_each(|_| {
            read_reply(reader);
        }),
        _ => {}
    }
    line
}

/// Lines our parser accepts, which Redis must accept too (no argument
/// error; execution errors such as WRONGTYPE would be fine).
const ACCEPTED: &[&str] = &[
    "PING",
    "PING hi",
    "ECHO hi",
    "SET k v",
    "SET k v XX GET KEEPTTL",
    "SET k v NX GET",
    "SET k v PX 1500",
    "SET k v EXAT 99999999999",
    "SET k v PXAT 99999999999999",
    "SET k v EX 1 EX 2 NX NX",
    "SETEX k 3 v",
    "PSETEX k 3 v",
    "GETSET k v",
    "GETEX k",
    "GETEX k persist",
    "GETEX k EX 2",
    "GETEX k PXAT 99999999999999",
    "MGET a b c",
    "MSET a 1 b 2",
    "MSETNX x 1",
    "DEL a a",
    "UNLINK a",
    "EXISTS a b",
    "INCR n",
    "DECR n",
    "INCRBY n -7",
    "DECRBY n 7",
    "APPEND s v",
    "STRLEN s",
    "GETDEL s",
    "SETNX s v",
    "EXPIRE k 10",
    "PEXPIRE k 100000",
    "EXPIREAT k 99999999999",
    "PEXPIREAT k 99999999999999 nx",
    "EXPIRE k 100 XX GT",
    "TTL k",
    "PTTL k",
    "PERSIST k",
    "TYPE k",
    "SCAN 0",
    "scan 0 match user:* count 100 type string",
    "SCAN 0 MATCH a** MATCH *",
    "KEYS *",
    "KEYS ab*",
    "DBSIZE",
    "INFO",
    "INFO server keyspace",
    "COMMAND",
    "command COUNT",
    "COMMAND DOCS get set",
    "COMMAND INFO get",
    "CONFIG GET maxmemory save",
    "CLIENT SETNAME app-1",
    "client getname",
    "CLIENT ID",
    "CLIENT INFO",
    "SELECT 0",
    "HELLO 2",
    "HELLO 2 SETNAME x",
    "FLUSHDB",
    "flushall async",
    "FLUSHDB SYNC",
];

#[test]
fn accepted_commands_are_accepted_by_a_real_redis_server() {
    let Some(server) = start_redis() else {
        eprintln!("redis-server not found on PATH: differential test skipped");
        return;
    };
    let (mut stream, mut reader) = connect(&server);
    let argument_errors = [
        "-ERR wrong number",
        "-ERR syntax",
        "-ERR value is",
        "-ERR invalid",
        "-ERR unknown",
        "-NOPROTO",
        "-ERR Unsupported",
        "-ERR NX and",
        "-ERR GT and",
        "-ERR Syntax",
        "-ERR Protocol",
    ];
    let mut refused = Vec::new();
    for line in ACCEPTED {
        let buf = format!("{line}\r\n");
        let Ok(Decoded::Frame { frame, .. }) =
            parse_command(buf.as_bytes(), &RespLimits::default())
        else {
            panic!("{line:?} did not parse");
        };
        match Command::parse(&frame) {
            Ok(Command::Unknown { .. }) | Err(_) => panic!("{line:?} refused by our parser"),
            Ok(_) => {}
        }
        stream.write_all(buf.as_bytes()).unwrap();
        let first = read_reply(&mut reader);
        if argument_errors.iter().any(|e| first.starts_with(e)) {
            refused.push(format!("{line:?}: {first}"));
        }
    }
    assert!(refused.is_empty(), "{}", refused.join("\n"));
}
