//! The RESP codec against `redis-cli`, a client we did not write: a toy
//! in-memory server on 127.0.0.1 (parser + typed commands + reply encoder,
//! one thread per connection) answers `redis-cli` run as a subprocess,
//! including `--pipe` mass insertion and RESP3 (`-3`). Skipped, with a note,
//! when `redis-cli` is not on PATH.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command as Process, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringkv_net::resp::command::unknown_command_message;
use ringkv_net::resp::replies::{write_hello, HelloInfo};
use ringkv_net::resp::table;
use ringkv_net::resp::{parse_command, Command, Decoded, Reply, RespLimits, RespVersion};

type Store = Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>;

/// Executes one command; returns false when the connection should close.
fn execute(cmd: Command<'_>, store: &Store, version: &mut RespVersion, out: &mut Vec<u8>) -> bool {
    let mut db = store.lock().unwrap();
    let mut reply = Reply::new(out, *version);
    match cmd {
        Command::Empty => {}
        Command::Ping { message: None } => reply.simple("PONG"),
        Command::Ping { message: Some(m) } | Command::Echo { message: m } => reply.bulk(m),
        Command::Hello { protover, .. } => {
            if let Some(v) = protover {
                *version = v;
            }
            let mut reply = Reply::new(out, *version);
            write_hello(
                &mut reply,
                &HelloInfo {
                    server: "redis",
                    version: "7.2.0",
                    client_id: 1,
                },
            );
        }
        Command::Set {
            key, value, get, ..
        } => {
            let old = db.insert(key.to_vec(), value.to_vec());
            if get {
                reply.bulk_or_null(old.as_deref());
            } else {
                reply.ok();
            }
        }
        Command::Get { key } => reply.bulk_or_null(db.get(key).map(Vec::as_slice)),
        Command::MGet { keys } => {
            reply.array_header(keys.len());
            for k in keys.iter() {
                reply.bulk_or_null(db.get(k).map(Vec::as_slice));
            }
        }
        Command::DbSize => reply.integer(db.len() as i64),
        Command::CommandList => table::write_command_list(&mut reply),
        Command::CommandCount => reply.integer(table::command_count() as i64),
        Command::CommandDocs { names } => table::write_command_docs_reply(&mut reply, names.iter()),
        Command::CommandInfo { names } => table::write_command_info_reply(&mut reply, names.iter()),
        Command::Info { .. } => reply.verbatim_text(b"# Server\r\nredis_version:7.2.0\r\n"),
        Command::Quit => {
            reply.ok();
            return false;
        }
        Command::Unknown { args } => reply.error(&unknown_command_message(args.iter())),
        other => reply.error(&format!("ERR not in the toy server: {other:?}")),
    }
    true
}

fn serve_connection(mut stream: TcpStream, store: Store) {
    let limits = RespLimits::default();
    let mut version = RespVersion::Resp2;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let mut out = Vec::new();
        let mut consumed = 0;
        let mut open = true;
        loop {
            match parse_command(&buf[consumed..], &limits) {
                Ok(Decoded::Frame { frame, len }) => {
                    consumed += len;
                    match Command::parse(&frame) {
                        Ok(cmd) => open = execute(cmd, &store, &mut version, &mut out),
                        Err(e) => Reply::new(&mut out, version).error(&e.to_string()),
                    }
                    if !open {
                        break;
                    }
                }
                Ok(Decoded::Incomplete { .. }) => break,
                Err(e) => {
                    Reply::new(&mut out, version).error(&e.redis_message());
                    open = false;
                    break;
                }
            }
        }
        buf.drain(..consumed);
        if stream.write_all(&out).is_err() || !open {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn start_toy_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let store: Store = Arc::default();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let store = store.clone();
            std::thread::spawn(move || serve_connection(stream, store));
        }
    });
    port
}

fn redis_cli_available() -> bool {
    let found = Process::new("redis-cli").arg("--version").output().is_ok();
    if !found {
        eprintln!("redis-cli not found on PATH: test skipped");
    }
    found
}

fn cli(port: u16, args: &[&str], stdin: Option<&[u8]>) -> String {
    // `timeout` (coreutils) bounds the test if the codec ever stalls redis-cli.
    let mut child = Process::new("timeout")
        .args([
            "60",
            "redis-cli",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.trim_end().to_owned()
}

#[test]
fn redis_cli_sets_gets_and_mass_inserts_through_the_codec() {
    if !redis_cli_available() {
        return;
    }
    let port = start_toy_server();
    assert_eq!(cli(port, &["ping"], None), "PONG");
    assert_eq!(cli(port, &["set", "a", "b"], None), "OK");
    assert_eq!(cli(port, &["get", "a"], None), "b");
    assert_eq!(cli(port, &["get", "missing"], None), "");
    assert_eq!(
        cli(port, &["set", "a", "b", "NX", "XX"], None),
        "ERR syntax error"
    );
    assert_eq!(
        cli(port, &["nosuch", "x"], None),
        "ERR unknown command 'nosuch', with args beginning with: 'x'"
    );

    let mut pipe = Vec::new();
    for i in 0..10_000 {
        let (k, v) = (format!("key:{i}"), format!("value\r\n{i}"));
        pipe.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
                k.len(),
                v.len()
            )
            .as_bytes(),
        );
    }
    let summary = cli(port, &["--pipe"], Some(&pipe));
    assert!(summary.contains("errors: 0, replies: 10000"), "{summary}");
    assert_eq!(cli(port, &["dbsize"], None), "10001");
    assert_eq!(
        cli(port, &["--no-raw", "get", "key:7"], None),
        "\"value\\r\\n7\""
    );
}

#[test]
fn redis_cli_reads_command_tables_and_resp3_replies() {
    if !redis_cli_available() {
        return;
    }
    let port = start_toy_server();
    assert_eq!(
        cli(port, &["command", "count"], None),
        table::command_count().to_string()
    );
    let docs = cli(port, &["command", "docs", "get"], None);
    assert!(
        docs.contains("Returns the string value of a key."),
        "{docs}"
    );
    let info = cli(port, &["command", "info", "mset"], None);
    assert!(
        info.starts_with("mset\n-3\nwrite\ndenyoom\n1\n-1\n2"),
        "{info}"
    );
    let all = cli(port, &["command"], None);
    assert!(all.contains("client|setname"), "{all}");
    // RESP3: redis-cli -3 sends HELLO 3, then reads nulls and maps in RESP3.
    assert_eq!(cli(port, &["-3", "get", "missing"], None), "");
    let hello = cli(port, &["-3", "hello", "3"], None);
    assert!(hello.contains("proto") && hello.contains('3'), "{hello}");
    let verbatim = cli(port, &["-3", "info"], None);
    assert!(verbatim.contains("redis_version:7.2.0"), "{verbatim}");
}

#[test]
fn protocol_error_closes_the_connection_after_the_error_reply() {
    let port = start_toy_server();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"PING\r\n*1\r\n:1\r\nPING\r\n").unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(
        got,
        b"+PONG\r\n-ERR Protocol error: expected '$', got ':'\r\n"
    );
}
