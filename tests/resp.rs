//! The Redis protocol of a real `ringkv serve --shards 2` process, driven by
//! clients we did not write: the `redis` crate and `redis-cli` (Debian's
//! redis-tools), plus raw bytes for what no client sends (split pipelines,
//! protocol errors, RESP3 replies).

mod common;

use common::{free_base_port, key_owned_by, temp_dir, Node};
use redis::{Commands, Connection, RedisError, Value};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A node with a RESP port, and its temp dir (kept alive with it).
struct RespNode {
    node: Node,
    resp_port: u16,
    _dir: tempfile::TempDir,
}

impl RespNode {
    fn start(extra: &[&str]) -> RespNode {
        let dir = temp_dir();
        let resp_port = free_base_port(0);
        let port = resp_port.to_string();
        // Durability is not what these tests are about: do not wait for disks.
        let args = [
            &["--resp-port", port.as_str(), "--durability", "none"],
            extra,
        ]
        .concat();
        let node = Node::start(&dir.path().join("data"), 2, &args);
        let deadline = Instant::now() + common::START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", resp_port)).is_err() {
            assert!(Instant::now() < deadline, "RESP port did not open");
            std::thread::sleep(Duration::from_millis(20));
        }
        RespNode {
            node,
            resp_port,
            _dir: dir,
        }
    }

    fn con(&self) -> Connection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.resp_port))
            .expect("redis url");
        let con = client
            .get_connection_with_timeout(Duration::from_secs(10))
            .expect("connect");
        con.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        con
    }

    fn raw(&self) -> RawResp {
        RawResp::connect(self.resp_port)
    }
}

/// `CODE detail`, the error line the server sent (without the leading `-`).
fn err_line(e: &RedisError) -> String {
    format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""))
}

fn q<T: redis::FromRedisValue>(con: &mut Connection, args: &[&[u8]]) -> T {
    let mut c = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
        .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(&args.concat())))
}

fn qerr(con: &mut Connection, args: &[&str]) -> String {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    match c.query::<Value>(con) {
        Ok(v) => panic!("{args:?} succeeded with {v:?}"),
        Err(e) => err_line(&e),
    }
}

/// A raw RESP connection: sends bytes, reads whole replies.
struct RawResp {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawResp {
    fn connect(port: u16) -> RawResp {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(common::IO_TIMEOUT))
            .expect("timeout");
        RawResp {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The length of the complete reply at the start of `b`, if complete.
    fn reply_len(b: &[u8]) -> Option<usize> {
        let cr = b.windows(2).position(|w| w == b"\r\n")?;
        let head = std::str::from_utf8(&b[1..cr]).ok()?;
        let after = cr + 2;
        match b[0] {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' => Some(after),
            b'$' | b'=' => {
                let n: i64 = head.parse().ok()?;
                if n < 0 {
                    return Some(after);
                }
                let end = after + n as usize + 2;
                (b.len() >= end).then_some(end)
            }
            b'*' | b'%' | b'~' => {
                let n: i64 = head.parse().ok()?;
                let items = if b[0] == b'%' { n * 2 } else { n.max(0) };
                let mut at = after;
                for _ in 0..items {
                    at += Self::reply_len(&b[at..])?;
                }
                Some(at)
            }
            other => panic!("unexpected reply type {:?}", other as char),
        }
    }

    /// The next complete reply's bytes; `None` when the server closed.
    fn recv(&mut self) -> Option<Vec<u8>> {
        loop {
            if !self.buf.is_empty() {
                if let Some(n) = Self::reply_len(&self.buf) {
                    return Some(self.buf.drain(..n).collect());
                }
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

    fn call(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.send(bytes);
        self.recv().expect("a reply")
    }
}

fn redis_cli(port: u16, args: &[&str], stdin: Option<&[u8]>) -> String {
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli must be installed (apt-get install -y redis-tools)");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write to redis-cli");
    }
    let out = child.wait_with_output().expect("redis-cli output");
    assert!(
        out.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn string_commands_follow_redis_semantics_and_error_strings() {
    let n = RespNode::start(&[]);
    let mut c = n.con();
    let v: String = q(&mut c, &[b"SET", b"k", b"v"]);
    assert_eq!(v, "OK");
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"GET", b"k"]),
        Some("v".into())
    );
    assert_eq!(q::<Option<String>>(&mut c, &[b"GET", b"missing"]), None);
    // NX / XX / GET / KEEPTTL / EX / PX / EXAT / PXAT.
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"SET", b"k", b"x", b"NX"]),
        None
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"SET", b"new", b"x", b"XX"]),
        None
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"SET", b"k", b"v2", b"GET"]),
        Some("v".into())
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"SET", b"k", b"v3", b"XX", b"EX", b"100"]),
        Some("OK".into())
    );
    let ttl: i64 = q(&mut c, &[b"TTL", b"k"]);
    assert!((99..=100).contains(&ttl), "{ttl}");
    let _: () = q(&mut c, &[b"SET", b"k", b"v4", b"KEEPTTL"]);
    assert!(q::<i64>(&mut c, &[b"PTTL", b"k"]) > 90_000);
    let _: () = q(&mut c, &[b"SET", b"k", b"v5"]);
    assert_eq!(q::<i64>(&mut c, &[b"TTL", b"k"]), -1);
    let _: () = q(&mut c, &[b"SET", b"px", b"v", b"PX", b"50000"]);
    assert!(q::<i64>(&mut c, &[b"PTTL", b"px"]) > 40_000);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at = (now_s + 1000).to_string();
    let _: () = q(&mut c, &[b"SET", b"exat", b"v", b"EXAT", at.as_bytes()]);
    assert!(q::<i64>(&mut c, &[b"TTL", b"exat"]) > 990);
    let pat = ((now_s + 1000) * 1000).to_string();
    let _: () = q(&mut c, &[b"SET", b"pxat", b"v", b"PXAT", pat.as_bytes()]);
    assert!(q::<i64>(&mut c, &[b"TTL", b"pxat"]) > 990);
    assert_eq!(
        qerr(&mut c, &["SET", "k", "v", "NX", "XX"]),
        "ERR syntax error"
    );
    assert_eq!(
        qerr(&mut c, &["SET", "k", "v", "EX", "0"]),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        qerr(&mut c, &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
    // SETNX, SETEX, PSETEX, GETSET, GETDEL, GETEX.
    assert_eq!(q::<i64>(&mut c, &[b"SETNX", b"nx", b"1"]), 1);
    assert_eq!(q::<i64>(&mut c, &[b"SETNX", b"nx", b"2"]), 0);
    let _: () = q(&mut c, &[b"SETEX", b"se", b"100", b"v"]);
    assert!(q::<i64>(&mut c, &[b"TTL", b"se"]) > 90);
    let _: () = q(&mut c, &[b"PSETEX", b"pse", b"100000", b"v"]);
    assert!(q::<i64>(&mut c, &[b"PTTL", b"pse"]) > 90_000);
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"GETSET", b"nx", b"3"]),
        Some("1".into())
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"GETDEL", b"nx"]),
        Some("3".into())
    );
    assert_eq!(q::<Option<String>>(&mut c, &[b"GETDEL", b"nx"]), None);
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"GETEX", b"se", b"PERSIST"]),
        Some("v".into())
    );
    assert_eq!(q::<i64>(&mut c, &[b"TTL", b"se"]), -1);
    let _: Option<String> = q(&mut c, &[b"GETEX", b"se", b"EX", b"500"]);
    assert!(q::<i64>(&mut c, &[b"TTL", b"se"]) > 490);
    // Counters are decimal text.
    assert_eq!(q::<i64>(&mut c, &[b"INCR", b"ctr"]), 1);
    assert_eq!(q::<i64>(&mut c, &[b"INCRBY", b"ctr", b"41"]), 42);
    assert_eq!(q::<i64>(&mut c, &[b"DECR", b"ctr"]), 41);
    assert_eq!(q::<i64>(&mut c, &[b"DECRBY", b"ctr", b"50"]), -9);
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"GET", b"ctr"]),
        Some("-9".into())
    );
    assert_eq!(
        qerr(&mut c, &["INCR", "k"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        qerr(&mut c, &["INCRBY", "ctr", "x"]),
        "ERR value is not an integer or out of range"
    );
    let _: () = q(&mut c, &[b"SET", b"big", i64::MAX.to_string().as_bytes()]);
    assert_eq!(
        qerr(&mut c, &["INCR", "big"]),
        "ERR increment or decrement would overflow"
    );
    // APPEND, STRLEN.
    assert_eq!(q::<i64>(&mut c, &[b"APPEND", b"ap", b"abc"]), 3);
    assert_eq!(q::<i64>(&mut c, &[b"APPEND", b"ap", b"de"]), 5);
    assert_eq!(q::<i64>(&mut c, &[b"STRLEN", b"ap"]), 5);
    assert_eq!(q::<i64>(&mut c, &[b"STRLEN", b"missing"]), 0);
    // EXPIRE family, PERSIST, TTL, PTTL, TYPE.
    assert_eq!(q::<i64>(&mut c, &[b"EXPIRE", b"missing", b"10"]), 0);
    assert_eq!(q::<i64>(&mut c, &[b"EXPIRE", b"ap", b"100"]), 1);
    assert_eq!(q::<i64>(&mut c, &[b"EXPIRE", b"ap", b"200", b"NX"]), 0);
    assert_eq!(q::<i64>(&mut c, &[b"EXPIRE", b"ap", b"50", b"GT"]), 0);
    assert_eq!(q::<i64>(&mut c, &[b"EXPIRE", b"ap", b"50", b"LT"]), 1);
    assert!(q::<i64>(&mut c, &[b"TTL", b"ap"]) <= 50);
    assert_eq!(q::<i64>(&mut c, &[b"PEXPIRE", b"ap", b"80000"]), 1);
    let at = (now_s + 300).to_string();
    assert_eq!(q::<i64>(&mut c, &[b"EXPIREAT", b"ap", at.as_bytes()]), 1);
    let pat = ((now_s + 400) * 1000).to_string();
    assert_eq!(q::<i64>(&mut c, &[b"PEXPIREAT", b"ap", pat.as_bytes()]), 1);
    assert!(q::<i64>(&mut c, &[b"TTL", b"ap"]) > 390);
    assert_eq!(q::<i64>(&mut c, &[b"PERSIST", b"ap"]), 1);
    assert_eq!(q::<i64>(&mut c, &[b"PERSIST", b"ap"]), 0);
    assert_eq!(q::<i64>(&mut c, &[b"TTL", b"ap"]), -1);
    assert_eq!(q::<i64>(&mut c, &[b"TTL", b"missing"]), -2);
    assert_eq!(q::<i64>(&mut c, &[b"PTTL", b"missing"]), -2);
    assert_eq!(q::<String>(&mut c, &[b"TYPE", b"ap"]), "string");
    assert_eq!(q::<String>(&mut c, &[b"TYPE", b"missing"]), "none");
    assert_eq!(
        qerr(&mut c, &["EXPIRE", "ap", "10", "NX", "XX"]),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    // A past expiry deletes the key; a short one expires it.
    assert_eq!(q::<i64>(&mut c, &[b"EXPIRE", b"ap", b"-1"]), 1);
    assert_eq!(q::<Option<String>>(&mut c, &[b"GET", b"ap"]), None);
    let _: () = q(&mut c, &[b"SET", b"short", b"v", b"PX", b"100"]);
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(q::<Option<String>>(&mut c, &[b"GET", b"short"]), None);
    assert_eq!(q::<i64>(&mut c, &[b"EXISTS", b"short"]), 0);
}

#[test]
fn multi_key_commands_span_both_shards_and_answer_in_order() {
    let n = RespNode::start(&[]);
    let mut c = n.con();
    let k0 = key_owned_by(0, 2, "m");
    let k1 = key_owned_by(1, 2, "m");
    let (k0, k1) = (k0.as_slice(), k1.as_slice());
    let _: () = q(&mut c, &[b"MSET", k0, b"zero", k1, b"one"]);
    let got: Vec<Option<String>> = q(&mut c, &[b"MGET", k1, b"nope", k0, k1]);
    assert_eq!(
        got,
        vec![
            Some("one".into()),
            None,
            Some("zero".into()),
            Some("one".into())
        ]
    );
    assert_eq!(q::<i64>(&mut c, &[b"EXISTS", k0, k1, k0, b"nope"]), 3);
    assert_eq!(q::<i64>(&mut c, &[b"MSETNX", b"fresh", b"1", k0, b"x"]), 0);
    assert_eq!(q::<Option<String>>(&mut c, &[b"GET", b"fresh"]), None);
    assert_eq!(
        q::<i64>(&mut c, &[b"MSETNX", b"fresh", b"1", b"fresh2", b"2"]),
        1
    );
    assert_eq!(q::<i64>(&mut c, &[b"DEL", k0, k1, k0, b"nope"]), 2);
    assert_eq!(q::<i64>(&mut c, &[b"UNLINK", b"fresh", b"fresh2"]), 2);
    assert_eq!(q::<i64>(&mut c, &[b"EXISTS", k0, k1, b"fresh"]), 0);
    assert_eq!(
        qerr(&mut c, &["MSET", "a", "1", "b"]),
        "ERR wrong number of arguments for 'mset' command"
    );
    // Single-key commands on both shards (one is forwarded).
    for k in [k0, k1] {
        assert_eq!(q::<i64>(&mut c, &[b"INCRBY", k, b"5"]), 5);
        assert_eq!(q::<Option<String>>(&mut c, &[b"GET", k]), Some("5".into()));
    }
}

#[test]
fn pipelines_keep_order_and_values_are_binary_safe() {
    let n = RespNode::start(&[]);
    let mut c = n.con();
    let tricky: Vec<u8> = b"a\r\nb\0c\r\n$3\r\n*1\r\n\xff\x00".to_vec();
    let mut pipe = redis::pipe();
    for i in 0..500 {
        let key = format!("p{i}");
        let mut value = tricky.clone();
        value.extend_from_slice(key.as_bytes());
        pipe.cmd("SET").arg(&key).arg(value);
        pipe.cmd("GET").arg(&key);
        pipe.cmd("INCR").arg(format!("cnt{}", i % 7));
    }
    let replies: Vec<Value> = pipe.query(&mut c).expect("pipeline");
    assert_eq!(replies.len(), 1500);
    for i in 0..500 {
        let mut value = tricky.clone();
        value.extend_from_slice(format!("p{i}").as_bytes());
        assert_eq!(replies[3 * i + 1], Value::BulkString(value), "GET p{i}");
        assert_eq!(replies[3 * i + 2], Value::Int((i / 7 + 1) as i64));
    }
    // Binary keys too.
    let key = b"\r\n\0key\xfe";
    let _: () = q(&mut c, &[b"SET", key, &tricky]);
    assert_eq!(q::<Vec<u8>>(&mut c, &[b"GET", key]), tricky);
    // A raw pipeline delivered one byte at a time: same replies.
    let mut raw = n.raw();
    let req =
        b"*3\r\n$3\r\nSET\r\n$2\r\nsp\r\n$4\r\na\r\nb\r\n*2\r\n$3\r\nGET\r\n$2\r\nsp\r\nPING\r\n";
    for b in req.iter() {
        raw.send(std::slice::from_ref(b));
    }
    assert_eq!(raw.recv().unwrap(), b"+OK\r\n");
    assert_eq!(raw.recv().unwrap(), b"$4\r\na\r\nb\r\n");
    assert_eq!(raw.recv().unwrap(), b"+PONG\r\n");
}

#[test]
fn scan_keys_dbsize_and_a_guarded_flush_cover_every_shard() {
    let n = RespNode::start(&[]);
    let mut c = n.con();
    let mut want = BTreeSet::new();
    for i in 0..100 {
        let k = format!("s:{i:03}");
        let _: () = q(&mut c, &[b"SET", k.as_bytes(), b"v"]);
        want.insert(k);
    }
    let _: () = q(&mut c, &[b"SET", b"other", b"v"]);
    assert_eq!(q::<i64>(&mut c, &[b"DBSIZE"]), 101);
    // SCAN with a small COUNT, by hand.
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    let mut rounds = 0;
    loop {
        let (next, keys): (String, Vec<String>) = q(
            &mut c,
            &[b"SCAN", cursor.as_bytes(), b"MATCH", b"s:*", b"COUNT", b"7"],
        );
        assert!(keys.len() <= 7);
        for k in keys {
            assert!(seen.insert(k), "a key is returned once");
        }
        rounds += 1;
        assert!(rounds < 100);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen, want);
    // The crate's iterator.
    let all: BTreeSet<String> = c.scan::<String>().unwrap().collect();
    assert_eq!(all.len(), 101);
    let mut keys: Vec<String> = q(&mut c, &[b"KEYS", b"s:*"]);
    keys.sort();
    assert_eq!(keys, want.iter().cloned().collect::<Vec<_>>());
    assert_eq!(q::<Vec<String>>(&mut c, &[b"KEYS", b"*"]).len(), 101);
    assert!(qerr(&mut c, &["KEYS", "s?x*"]).starts_with("ERR unsupported pattern"));
    assert_eq!(qerr(&mut c, &["SCAN", "12345"]), "ERR invalid cursor");
    let (next, keys): (String, Vec<String>) = q(&mut c, &[b"SCAN", b"0", b"TYPE", b"hash"]);
    assert_eq!((next.as_str(), keys.len()), ("0", 0));
    // FLUSHDB is refused unless the config allows it.
    let e = qerr(&mut c, &["FLUSHDB"]);
    assert!(e.contains("allow_flush = true"), "{e}");
    assert_eq!(q::<i64>(&mut c, &[b"DBSIZE"]), 101);

    let n2 = RespNode::start(&["--allow-flush", "true"]);
    let mut c2 = n2.con();
    for i in 0..50 {
        let _: () = q(&mut c2, &[b"SET", format!("f{i}").as_bytes(), b"v"]);
    }
    assert_eq!(q::<i64>(&mut c2, &[b"DBSIZE"]), 50);
    assert_eq!(q::<String>(&mut c2, &[b"FLUSHALL"]), "OK");
    assert_eq!(q::<i64>(&mut c2, &[b"DBSIZE"]), 0);
    assert_eq!(q::<Option<String>>(&mut c2, &[b"GET", b"f1"]), None);
}

#[test]
fn connection_commands_info_config_and_unknown_commands() {
    let n = RespNode::start(&[]);
    let mut c = n.con();
    assert_eq!(q::<String>(&mut c, &[b"PING"]), "PONG");
    assert_eq!(q::<String>(&mut c, &[b"PING", b"hi"]), "hi");
    assert_eq!(q::<String>(&mut c, &[b"ECHO", b"x\r\ny"]), "x\r\ny");
    assert_eq!(q::<String>(&mut c, &[b"SELECT", b"0"]), "OK");
    assert_eq!(
        qerr(&mut c, &["SELECT", "1"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        qerr(&mut c, &["NOSUCH", "a", "b"]),
        "ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' "
    );
    assert_eq!(q::<String>(&mut c, &[b"PING"]), "PONG", "still usable");
    // CLIENT.
    let id: i64 = q(&mut c, &[b"CLIENT", b"ID"]);
    assert!(id > 0);
    assert_eq!(q::<Option<String>>(&mut c, &[b"CLIENT", b"GETNAME"]), None);
    let _: () = q(&mut c, &[b"CLIENT", b"SETNAME", b"tester"]);
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"CLIENT", b"GETNAME"]),
        Some("tester".into())
    );
    assert_ne!(q::<i64>(&mut n.con(), &[b"CLIENT", b"ID"]), id);
    // CONFIG GET answers what client libraries probe.
    let cfg: Vec<String> = q(&mut c, &[b"CONFIG", b"GET", b"save", b"appendonly"]);
    assert_eq!(cfg, vec!["save", "", "appendonly", "no"]);
    let cfg: Vec<String> = q(&mut c, &[b"CONFIG", b"GET", b"databases"]);
    assert_eq!(cfg, vec!["databases", "1"]);
    let cfg: Vec<String> = q(&mut c, &[b"CONFIG", b"GET", b"maxmemory"]);
    assert_eq!(cfg, vec!["maxmemory", "0"]);
    // INFO with real figures.
    let _: () = q(&mut c, &[b"SET", b"ik", b"v"]);
    let info: String = q(&mut c, &[b"INFO"]);
    for needle in [
        "# Server",
        "redis_version:",
        "uptime_in_seconds:",
        "# Clients",
        "connected_clients:",
        "# Memory",
        "used_memory:",
        "# Stats",
        "total_commands_processed:",
        "# Keyspace",
        "db0:keys=1,",
    ] {
        assert!(info.contains(needle), "{needle} in {info}");
    }
    let info: String = q(&mut c, &[b"INFO", b"keyspace"]);
    assert!(!info.contains("# Server") && info.contains("db0:keys=1,"));
    // COMMAND.
    let count: i64 = q(&mut c, &[b"COMMAND", b"COUNT"]);
    assert!(count >= 40, "{count}");
    let docs: Value = q(&mut c, &[b"COMMAND", b"DOCS", b"get"]);
    assert!(
        matches!(docs, Value::Array(ref a) if a.len() == 2),
        "{docs:?}"
    );
    let all: Value = q(&mut c, &[b"COMMAND"]);
    assert!(matches!(all, Value::Array(ref a) if a.len() as i64 == count));
    // RESP3 after HELLO 3, RESP2 before; QUIT closes.
    let mut raw = n.raw();
    assert_eq!(raw.call(b"GET nothing\r\n"), b"$-1\r\n");
    let hello = raw.call(b"HELLO 3\r\n");
    assert!(
        hello.starts_with(b"%7\r\n"),
        "{:?}",
        String::from_utf8_lossy(&hello)
    );
    assert_eq!(raw.call(b"GET nothing\r\n"), b"_\r\n");
    assert_eq!(
        raw.call(b"CONFIG GET databases\r\n"),
        b"%1\r\n$9\r\ndatabases\r\n$1\r\n1\r\n"
    );
    assert_eq!(raw.call(b"QUIT\r\n"), b"+OK\r\n");
    assert_eq!(raw.recv(), None);
}

#[test]
fn a_protocol_error_answers_and_closes_while_others_keep_working() {
    let n = RespNode::start(&[]);
    let mut healthy = n.con();
    let _: () = q(&mut healthy, &[b"SET", b"keep", b"me"]);
    for (bad, reply) in [
        (
            &b"*1\r\n$abc\r\n"[..],
            &b"-ERR Protocol error: invalid bulk length\r\n"[..],
        ),
        (
            b"*1\r\n$-5\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$99999999999\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*x\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*2\r\n:1\r\n",
            b"-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            b"PING \"open\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ] {
        let mut raw = n.raw();
        // A good command first: its reply comes before the error.
        raw.send(b"PING\r\n");
        raw.send(bad);
        assert_eq!(raw.recv().unwrap(), b"+PONG\r\n");
        assert_eq!(
            raw.recv().unwrap(),
            reply,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
        assert_eq!(raw.recv(), None, "closed after a protocol error");
    }
    let mut garbage = n.raw();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    println!("garbage seed {seed:#x}");
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    garbage.send(&bytes);
    while garbage
        .stream
        .read(&mut [0u8; 4096])
        .map(|n| n > 0)
        .unwrap_or(false)
    {}
    assert_eq!(
        q::<Option<String>>(&mut healthy, &[b"GET", b"keep"]),
        Some("me".into())
    );
}

#[test]
fn auth_is_required_when_a_password_is_configured() {
    let n = RespNode::start(&["--requirepass", "s3cret"]);
    let mut raw = n.raw();
    assert_eq!(
        raw.call(b"GET k\r\n"),
        b"-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        raw.call(b"AUTH wrong\r\n"),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(raw.call(b"AUTH s3cret\r\n"), b"+OK\r\n");
    assert_eq!(raw.call(b"SET k v\r\n"), b"+OK\r\n");
    // HELLO authenticates and switches protocol at once, or says how.
    let mut hello = n.raw();
    assert!(hello
        .call(b"HELLO 3\r\n")
        .starts_with(b"-NOAUTH HELLO must be called"));
    assert!(hello
        .call(b"HELLO 3 AUTH default wrong\r\n")
        .starts_with(b"-WRONGPASS"));
    assert!(hello
        .call(b"HELLO 3 AUTH default s3cret SETNAME me\r\n")
        .starts_with(b"%7\r\n"));
    assert_eq!(hello.call(b"CLIENT GETNAME\r\n"), b"$2\r\nme\r\n");
    assert_eq!(hello.call(b"GET nothing\r\n"), b"_\r\n");
    let client =
        redis::Client::open(format!("redis://:s3cret@127.0.0.1:{}/", n.resp_port)).unwrap();
    let mut c = client.get_connection().unwrap();
    assert_eq!(
        q::<Option<String>>(&mut c, &[b"GET", b"k"]),
        Some("v".into())
    );
    // Without a password configured, AUTH says so.
    let open = RespNode::start(&[]);
    let e = qerr(&mut open.con(), &["AUTH", "x"]);
    assert!(
        e.starts_with("ERR AUTH <password> called without any password"),
        "{e}"
    );
    // SIGTERM with RESP connections open: a clean exit.
    let mut node = n;
    assert_eq!(raw.call(b"PING\r\n"), b"+PONG\r\n");
    assert!(node.node.terminate().success());
}

#[test]
fn redis_cli_sets_gets_and_mass_inserts_ten_thousand_keys() {
    let n = RespNode::start(&[]);
    assert_eq!(
        redis_cli(n.resp_port, &["set", "a", "b"], None).trim(),
        "OK"
    );
    assert_eq!(redis_cli(n.resp_port, &["get", "a"], None).trim(), "b");
    let mut input = Vec::new();
    for i in 0..10_000 {
        let (k, v) = (format!("mass:{i}"), format!("value-{i}"));
        input.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
                k.len(),
                v.len()
            )
            .as_bytes(),
        );
    }
    let out = redis_cli(n.resp_port, &["--pipe"], Some(&input));
    assert!(out.contains("errors: 0, replies: 10000"), "{out}");
    assert_eq!(
        redis_cli(n.resp_port, &["get", "mass:9999"], None).trim(),
        "value-9999"
    );
    // 10,000 keys plus `a`.
    assert_eq!(redis_cli(n.resp_port, &["dbsize"], None).trim(), "10001");
    assert_eq!(redis_cli(n.resp_port, &["del", "a"], None).trim(), "1");
    assert_eq!(redis_cli(n.resp_port, &["dbsize"], None).trim(), "10000");
    let scanned = redis_cli(n.resp_port, &["--scan", "--pattern", "mass:*"], None);
    assert_eq!(scanned.lines().count(), 10_000);
}

#[test]
fn counters_are_shared_between_resp_and_the_binary_protocol() {
    let n = RespNode::start(&[]);
    let mut con = n.con();
    let after_resp: i64 = con.incr("shared-counter", 40).expect("INCRBY over RESP");
    assert_eq!(after_resp, 40);
    let mut client = n.node.client();
    assert_eq!(
        client
            .incr(b"shared-counter", 2)
            .expect("INCR over the binary protocol"),
        42
    );
    let text: String = con.get("shared-counter").expect("GET over RESP");
    assert_eq!(text, "42", "the binary protocol stores decimal text too");
    let back: i64 = con.decr("shared-counter", 2).expect("DECRBY over RESP");
    assert_eq!(back, 40);
}

/// SETs are run at once when they can (`resp_exec::execute_now`) and
/// replied to in place, and the batch waits for their commit before the
/// replies are sent. So a pipelined GET sees the SET sent before it, on
/// either shard, and every SET replied to is still there after a SIGKILL
/// taken right after the last reply. Two shards: the keys of the other shard
/// go the forwarded (queued) way, and 2 KiB values overflow several 4 MiB
/// memtables, so SETs that must wait for room queue too.
#[test]
fn pipelined_sets_are_in_order_and_durable_when_replied_to() {
    for mode in ["sync", "batch"] {
        let dir = temp_dir();
        let data = dir.path().join("data");
        let start = |data: &std::path::Path| {
            let resp_port = free_base_port(0);
            let port = resp_port.to_string();
            let node = Node::start(data, 2, &["--durability", mode, "--resp-port", &port]);
            let deadline = Instant::now() + common::START_TIMEOUT;
            while TcpStream::connect(("127.0.0.1", resp_port)).is_err() {
                assert!(Instant::now() < deadline, "RESP port did not open");
                std::thread::sleep(Duration::from_millis(20));
            }
            (node, resp_port)
        };
        let (mut node, resp_port) = start(&data);
        let mut raw = RawResp::connect(resp_port);
        let keys = 3000u64;
        let key = |i: u64| format!("resp-fast-{i:05}");
        let value = |i: u64| vec![b'a' + (i % 26) as u8; 2048];
        let command = |args: &[&[u8]]| {
            let mut bytes = Vec::new();
            ringkv_net::resp::encode_command(args, &mut bytes);
            bytes
        };
        let bulk = |v: &[u8]| [format!("${}\r\n", v.len()).as_bytes(), v, b"\r\n"].concat();
        for chunk in (0..keys).collect::<Vec<_>>().chunks(100) {
            let mut bytes = Vec::new();
            let mut want: Vec<Vec<u8>> = Vec::new();
            for &i in chunk {
                let (k, v) = (key(i), value(i));
                if i % 5 == 0 {
                    bytes.extend(command(&[b"SET", k.as_bytes(), &v, b"EX", b"100000"]));
                } else {
                    bytes.extend(command(&[b"SET", k.as_bytes(), &v]));
                }
                want.push(b"+OK\r\n".to_vec());
                if i % 7 == 0 {
                    bytes.extend(command(&[b"GET", k.as_bytes()]));
                    want.push(bulk(&v));
                }
                if i % 3 == 0 {
                    bytes.extend(command(&[b"DEL", k.as_bytes()]));
                    want.push(b":1\r\n".to_vec());
                    bytes.extend(command(&[b"GET", k.as_bytes()]));
                    want.push(b"$-1\r\n".to_vec());
                }
            }
            raw.send(&bytes);
            for (n, w) in want.iter().enumerate() {
                let got = raw.recv().expect("a reply");
                assert!(
                    got == *w,
                    "{mode}: reply {n} of the chunk from key {}: {:?}",
                    chunk[0],
                    String::from_utf8_lossy(&got[..got.len().min(40)])
                );
            }
        }
        // Killed right after the last reply: a reply sent before its write
        // was durable would lose that write here.
        drop(raw);
        node.kill();
        let (_node, resp_port) = start(&data);
        let mut raw = RawResp::connect(resp_port);
        for i in 0..keys {
            let want = if i % 3 == 0 {
                b"$-1\r\n".to_vec()
            } else {
                bulk(&value(i))
            };
            let got = raw.call(&command(&[b"GET", key(i).as_bytes()]));
            assert!(got == want, "{mode} after the restart: key {i}");
        }
    }
}

/// Commands of the other shard's keys are forwarded in runs (consecutive
/// commands of one shard, in one call): whatever shard the connection lands
/// on, each command of a pipeline that mixes both shards' keys, errors,
/// conditional writes and commands that are not run at once gets exactly its
/// own reply, in its place, with the effects of the commands before it.
#[test]
fn forwarded_runs_answer_each_command_in_its_place() {
    let n = RespNode::start(&[]);
    for round in 0..4 {
        let mut raw = n.raw();
        let mut bytes = Vec::new();
        let mut want: Vec<&[u8]> = Vec::new();
        for shard in [1u32, 0, 1, 1, 0, 0] {
            let a = key_owned_by(shard, 2, &format!("run{round}-{}a", bytes.len()));
            let b = key_owned_by(shard, 2, &format!("run{round}-{}b", bytes.len()));
            let script: [(&[&[u8]], &[u8]); 13] = [
                (&[b"SET", &a, b"1"], b"+OK\r\n"),
                (&[b"INCR", &a], b":2\r\n"),
                (&[b"APPEND", &a, b"x"], b":2\r\n"),
                (
                    &[b"INCR", &a],
                    b"-ERR value is not an integer or out of range\r\n",
                ),
                (&[b"GET", &a], b"$2\r\n2x\r\n"),
                (
                    &[b"SET", &b, b"v", b"EX", b"0"],
                    b"-ERR invalid expire time in 'set' command\r\n",
                ),
                (&[b"SET", &b, b"v", b"NX", b"XX"], b"-ERR syntax error\r\n"),
                (&[b"GET", &b], b"$-1\r\n"),
                (&[b"SETNX", &b, b"q"], b":1\r\n"),
                (&[b"SET", &b, b"r", b"NX"], b"$-1\r\n"),
                (&[b"GET", &b], b"$1\r\nq\r\n"),
                (&[b"DEL", &a, &b], b":2\r\n"),
                (&[b"STRLEN", &a], b":0\r\n"),
            ];
            for (args, reply) in script {
                ringkv_net::resp::encode_command(args, &mut bytes);
                want.push(reply);
            }
        }
        raw.send(&bytes);
        for (i, w) in want.iter().enumerate() {
            let got = raw.recv().expect("a reply");
            assert!(
                got == *w,
                "round {round}, reply {i}: got {:?}, want {:?}",
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(w)
            );
        }
    }
    // Runs of large replies: the owner stops at the batch's output cap
    // (1 MiB) and the commands it did not run are run by the next batches,
    // each answered once, in order.
    let mut raw = n.raw();
    let mut bytes = Vec::new();
    let mut want = Vec::new();
    for shard in [0u32, 1] {
        for i in 0..3 {
            let key = key_owned_by(shard, 2, &format!("big{i}"));
            let value = vec![b'a' + (shard * 3 + i) as u8; 300 << 10];
            ringkv_net::resp::encode_command(&[b"SET", &key, &value], &mut bytes);
            want.push(b"+OK\r\n".to_vec());
            for _ in 0..8 {
                ringkv_net::resp::encode_command(&[b"GET", &key], &mut bytes);
                want.push([format!("${}\r\n", value.len()).as_bytes(), &value, b"\r\n"].concat());
            }
        }
    }
    raw.send(&bytes);
    for (i, w) in want.iter().enumerate() {
        let got = raw.recv().expect("a reply");
        assert!(got == *w, "large reply {i}: {} bytes", got.len());
    }
}

/// Requests larger than the receive buffer's first size, through the
/// network loop's flow control for RESP: a 1 MiB value (the limit) arrives
/// over many receives and is stored and read back whole; a value one byte
/// over the limit is refused with Redis's error and the connection goes on;
/// an inline line past Redis's 64 KiB inline limit, never ended, is a
/// protocol error that answers and closes.
#[test]
fn large_values_and_oversized_requests_over_the_network_loop() {
    let n = RespNode::start(&[]);
    let mut raw = n.raw();
    let command = |args: &[&[u8]]| {
        let mut bytes = Vec::new();
        ringkv_net::resp::encode_command(args, &mut bytes);
        bytes
    };
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut pipeline = command(&[b"SET", b"big", &big]);
    pipeline.extend(command(&[b"GET", b"big"]));
    pipeline.extend(command(&[b"SET", b"too-big", &[b'x'; 1024 * 1024 + 1]]));
    pipeline.extend(command(&[b"PING"]));
    raw.send(&pipeline);
    assert_eq!(raw.recv().unwrap(), b"+OK\r\n");
    let got = raw.recv().unwrap();
    let want = [format!("${}\r\n", big.len()).as_bytes(), &big, b"\r\n"].concat();
    assert!(got == want, "GET big: {} bytes back", got.len());
    let refused = String::from_utf8(raw.recv().unwrap()).unwrap();
    assert!(
        refused.starts_with("-ERR string of 1048577 bytes exceeds maximum allowed size"),
        "{refused}"
    );
    assert_eq!(raw.recv().unwrap(), b"+PONG\r\n");

    let mut inline = n.raw();
    inline.send(&vec![b'a'; 70 * 1024]);
    assert_eq!(
        inline.recv().unwrap(),
        b"-ERR Protocol error: too big inline request\r\n"
    );
    assert_eq!(inline.recv(), None, "closed after a protocol error");
}
