//! End-to-end tests of a real `ringkv serve` process on 127.0.0.1 (issue 3):
//! every operation through ringctl and through the client library, restart,
//! forwarding, bad input at the byte level, shutdown by SIGTERM and SIGKILL.

mod common;

use common::{ctl, ctl_ok, key_owned_by, temp_dir, Node, OwnedAnswer, Raw};
use ringkv_net::client::{CasExpectOwned, CasOutcome, ScanSpec};
use ringkv_net::client_frame::{PairList, Request, Status, TtlState};
use std::time::Duration;

#[test]
fn every_operation_works_through_ringctl_and_survives_a_restart() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut node = Node::start(&data, 2, &[]);

    assert!(ctl_ok(&node, &["ping"]).starts_with("PONG"));
    assert!(ctl_ok(&node, &["put", "alpha", "one"]).starts_with("OK "));
    assert_eq!(ctl_ok(&node, &["get", "alpha"]), "one");
    let missing = node.ctl(&["get", "nope"]);
    assert_eq!(
        missing.status.code(),
        Some(1),
        "get of a missing key exits 1"
    );
    assert!(ctl_ok(&node, &["put", "temp", "t", "--ttl", "1h"]).starts_with("OK "));
    let ttl: i64 = ctl_ok(&node, &["ttl", "temp"]).trim().parse().unwrap();
    assert!(ttl > 3_500_000 && ttl <= 3_600_000, "ttl {ttl}");
    assert_eq!(ctl_ok(&node, &["ttl", "alpha"]).trim(), "-1");
    assert_eq!(ctl_ok(&node, &["ttl", "nope"]).trim(), "-2");
    assert_eq!(
        ctl_ok(&node, &["mput", "k1", "v1", "k2", "v2", "k3", "v3"]).trim(),
        "OK"
    );
    assert_eq!(
        ctl_ok(&node, &["mget", "k1", "nope", "k3"]),
        "v1\n(nil)\nv3\n"
    );
    assert_eq!(
        ctl_ok(&node, &["scan", "--prefix", "k"]),
        "k1\tv1\nk2\tv2\nk3\tv3\n"
    );
    assert_eq!(
        ctl_ok(&node, &["scan", "--start", "k2", "--end", "k3"]),
        "k2\tv2\n"
    );
    assert_eq!(
        ctl_ok(&node, &["scan", "--prefix", "k", "--limit", "2"]),
        "k1\tv1\nk2\tv2\n"
    );
    assert_eq!(ctl_ok(&node, &["incr", "counter", "5"]).trim(), "5");
    assert_eq!(ctl_ok(&node, &["decr", "counter", "2"]).trim(), "3");
    assert_eq!(
        node.ctl(&["incr", "alpha"]).status.code(),
        Some(3),
        "INCR of text fails"
    );
    assert!(ctl_ok(&node, &["cas", "lock", "a", "--expect-absent"]).starts_with("OK "));
    assert_eq!(
        node.ctl(&["cas", "lock", "b", "--expect-absent"])
            .status
            .code(),
        Some(1)
    );
    assert!(ctl_ok(&node, &["cas", "lock", "b", "--expect-value", "a"]).starts_with("OK "));
    let json = ctl_ok(&node, &["--json", "get", "lock"]);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["value"], "b");
    let version = format!("{}:{}", doc["version"]["hlc"], doc["version"]["node"]);
    assert!(ctl_ok(&node, &["cas", "lock", "c", "--expect-version", &version]).starts_with("OK "));
    assert_eq!(ctl_ok(&node, &["exists", "lock"]).trim(), "true");
    assert!(ctl_ok(&node, &["del", "lock"]).starts_with("OK "));
    assert_eq!(ctl_ok(&node, &["exists", "lock"]).trim(), "false");
    let stats = ctl_ok(&node, &["stats"]);
    assert!(
        stats.contains("# shard 0") && stats.contains("# shard 1"),
        "{stats}"
    );

    assert!(node.terminate().success(), "log:\n{}", node.log_text());
    let node = Node::start(&data, 2, &[]);
    assert_eq!(ctl_ok(&node, &["get", "alpha"]), "one");
    assert_eq!(ctl_ok(&node, &["get", "temp"]), "t");
    assert_eq!(ctl_ok(&node, &["mget", "k1", "k2", "k3"]), "v1\nv2\nv3\n");
    assert_eq!(
        ctl_ok(&node, &["get", "counter"]),
        "3",
        "counters are decimal text"
    );
    assert_eq!(
        node.ctl(&["get", "lock"]).status.code(),
        Some(1),
        "the delete survives"
    );
}

#[test]
fn every_operation_works_through_the_library_and_survives_a_restart() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut node = Node::start(&data, 2, &[]);
    let mut c = node.client();
    assert_eq!(c.shard_count(), 2);
    c.ping().unwrap();

    let keys: Vec<Vec<u8>> = (0..200)
        .map(|i| format!("lib-{i:04}").into_bytes())
        .collect();
    for (i, k) in keys.iter().enumerate() {
        c.put(k, format!("value-{i}").as_bytes(), None).unwrap();
    }
    let v1 = c.put(b"same", b"1", None).unwrap();
    let v2 = c.put(b"same", b"2", None).unwrap();
    assert!(v2 > v1, "a later write has a higher version");
    assert_eq!(c.get(b"lib-0007").unwrap().unwrap().value, b"value-7");
    assert!(c.get(b"absent").unwrap().is_none());
    assert!(c.exists(b"lib-0001").unwrap());
    c.delete(b"lib-0001").unwrap();
    assert!(!c.exists(b"lib-0001").unwrap());

    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..50)
        .map(|i| (format!("m{i:02}").into_bytes(), vec![i as u8; 100]))
        .collect();
    let refs: Vec<(&[u8], &[u8])> = pairs
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    c.mput(&refs, None).unwrap();
    let ks: Vec<&[u8]> = pairs
        .iter()
        .map(|(k, _)| k.as_slice())
        .chain([b"nope".as_slice()])
        .collect();
    let got = c.mget(&ks).unwrap();
    assert_eq!(got.len(), 51);
    for (i, g) in got.iter().take(50).enumerate() {
        assert_eq!(g.as_ref().unwrap().value, vec![i as u8; 100]);
    }
    assert!(got[50].is_none());

    let mut spec = ScanSpec {
        start: b"lib-".to_vec(),
        prefix: true,
        limit: 64,
        ..ScanSpec::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = c.scan(&spec).unwrap();
        seen.extend(page.entries.into_iter().map(|e| e.key));
        if page.next_after.is_empty() {
            break;
        }
        spec.after = page.next_after;
    }
    let mut expected: Vec<Vec<u8>> = keys
        .iter()
        .filter(|k| k.as_slice() != b"lib-0001")
        .cloned()
        .collect();
    expected.sort();
    assert_eq!(
        seen, expected,
        "scan pages cover every live key once, in order"
    );

    assert_eq!(c.incr(b"n", 10).unwrap(), 10);
    assert_eq!(c.incr(b"n", -3).unwrap(), 7);
    c.put(b"big", i64::MAX.to_string().as_bytes(), None)
        .unwrap();
    match c.incr(b"big", 1) {
        Err(ringkv_net::ClientError::Server { status, .. }) => assert_eq!(status, Status::Overflow),
        other => panic!("expected Overflow, got {other:?}"),
    }
    match c.incr(b"lib-0002", 1) {
        Err(ringkv_net::ClientError::Server { status, .. }) => {
            assert_eq!(status, Status::NotAnInteger)
        }
        other => panic!("expected NotAnInteger, got {other:?}"),
    }
    assert!(matches!(
        c.cas(b"c", CasExpectOwned::Absent, b"x", None).unwrap(),
        CasOutcome::Written(_)
    ));
    match c
        .cas(b"c", CasExpectOwned::Value(b"y".to_vec()), b"z", None)
        .unwrap()
    {
        CasOutcome::Mismatch {
            current: Some((v, _)),
        } => assert_eq!(v, b"x"),
        other => panic!("expected a mismatch, got {other:?}"),
    }
    let cur = c.get(b"c").unwrap().unwrap();
    assert!(matches!(
        c.cas(b"c", CasExpectOwned::Version(cur.version), b"z", None)
            .unwrap(),
        CasOutcome::Written(_)
    ));
    c.put(b"short", b"s", Some(Duration::from_millis(300)))
        .unwrap();
    assert!(matches!(c.ttl(b"short").unwrap(), TtlState::RemainingMs(ms) if ms <= 300));
    assert_eq!(c.ttl(b"absent").unwrap(), TtlState::Missing);
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        c.get(b"short").unwrap().is_none(),
        "an expired key reads as absent"
    );
    assert!(c.stats().unwrap().contains("requests"));
    drop(c);

    assert!(node.terminate().success(), "log:\n{}", node.log_text());
    let node = Node::start(&data, 2, &[]);
    let mut c = node.client();
    for (i, k) in keys.iter().enumerate() {
        let got = c.get(k).unwrap();
        if k.as_slice() == b"lib-0001" {
            assert!(got.is_none());
        } else {
            assert_eq!(got.unwrap().value, format!("value-{i}").as_bytes());
        }
    }
    assert_eq!(c.get(b"same").unwrap().unwrap().value, b"2");
    assert_eq!(c.get(b"c").unwrap().unwrap().value, b"z");
    assert_eq!(c.incr(b"n", 0).unwrap(), 7);
    assert_eq!(
        c.mget(&[b"m07".as_slice()]).unwrap()[0]
            .as_ref()
            .unwrap()
            .value,
        vec![7u8; 100]
    );
}

#[test]
fn a_request_sent_to_the_wrong_shard_port_is_forwarded_and_answered() {
    let dir = temp_dir();
    let node = Node::start(&dir.path().join("data"), 2, &[]);
    let key0 = key_owned_by(0, 2, "fwd");
    let key1 = key_owned_by(1, 2, "fwd");
    // Write each key through the port of the shard that does NOT own it.
    let mut to_shard1 = Raw::connect(node.shard_port(1));
    let mut to_shard0 = Raw::connect(node.shard_port(0));
    assert_eq!(
        to_shard1.call(
            1,
            &Request::Put {
                key: &key0,
                value: b"zero",
                ttl_ms: 0
            }
        ),
        OwnedAnswer::Written
    );
    assert_eq!(
        to_shard0.call(
            2,
            &Request::Put {
                key: &key1,
                value: b"one",
                ttl_ms: 0
            }
        ),
        OwnedAnswer::Written
    );
    assert_eq!(
        to_shard1.call(3, &Request::Get { key: &key0 }),
        OwnedAnswer::Value(b"zero".to_vec())
    );
    assert_eq!(
        to_shard0.call(4, &Request::Get { key: &key1 }),
        OwnedAnswer::Value(b"one".to_vec())
    );
    // The owners have them: read through the right ports too.
    assert_eq!(
        to_shard0.call(5, &Request::Get { key: &key0 }),
        OwnedAnswer::Value(b"zero".to_vec())
    );
    // A multi-key request on one shard port reaching both shards.
    let pairs = [
        (key0.as_slice(), b"a".as_slice()),
        (key1.as_slice(), b"b".as_slice()),
    ];
    assert_eq!(
        to_shard0.call(
            6,
            &Request::MPut {
                pairs: PairList::new(&pairs),
                ttl_ms: 0
            }
        ),
        OwnedAnswer::Written
    );
    assert_eq!(
        to_shard1.call(7, &Request::Get { key: &key0 }),
        OwnedAnswer::Value(b"a".to_vec())
    );
    let stats = ctl_ok(&node, &["stats"]);
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("forwarded_in ") && l != "forwarded_in 0"),
        "{stats}"
    );
    // The node port spreads connections and forwards as needed as well.
    let mut shared = Raw::connect(node.port);
    assert_eq!(
        shared.call(8, &Request::Get { key: &key1 }),
        OwnedAnswer::Value(b"b".to_vec())
    );
}

#[test]
fn pipelined_requests_on_one_connection_are_all_answered_by_id() {
    let dir = temp_dir();
    let node = Node::start(&dir.path().join("data"), 2, &[]);
    let mut raw = Raw::connect(node.port);
    let keys: Vec<Vec<u8>> = (0..300).map(|i| format!("pipe-{i}").into_bytes()).collect();
    let mut bytes = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let req = Request::Put {
            key: k,
            value: k,
            ttl_ms: 0,
        };
        ringkv_net::client_frame::encode_request(&common::header(i as u64 + 1), &req, &mut bytes);
    }
    raw.send_bytes(&bytes);
    let mut ids: Vec<u64> = (0..keys.len())
        .map(|_| {
            let (id, a) = raw.recv().expect("answer");
            assert_eq!(a, OwnedAnswer::Written);
            id
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=keys.len() as u64).collect::<Vec<_>>());
    let mut c = node.client();
    assert_eq!(c.get(b"pipe-299").unwrap().unwrap().value, b"pipe-299");
}

/// Sends `bytes` on a fresh connection and returns the answers until the
/// server closes it (or `answers_max` arrive).
fn answers_to(port: u16, bytes: &[u8], answers_max: usize) -> (Vec<(u64, OwnedAnswer)>, bool) {
    let mut raw = Raw::connect(port);
    raw.send_bytes(bytes);
    let mut answers = Vec::new();
    while answers.len() < answers_max {
        match raw.recv() {
            Some(a) => answers.push(a),
            None => return (answers, true),
        }
    }
    (answers, false)
}

#[test]
fn bad_input_gets_its_status_and_harms_neither_other_connections_nor_data() {
    let dir = temp_dir();
    let node = Node::start(&dir.path().join("data"), 2, &["--max-frame-size", "2MiB"]);
    let mut healthy = Raw::connect(node.port);
    assert_eq!(
        healthy.call(
            1,
            &Request::Put {
                key: b"safe",
                value: b"data",
                ttl_ms: 0
            }
        ),
        OwnedAnswer::Written
    );
    let check_healthy = |healthy: &mut Raw, id: u64| {
        assert_eq!(
            healthy.call(id, &Request::Get { key: b"safe" }),
            OwnedAnswer::Value(b"data".to_vec())
        );
    };

    // Unknown opcode: answered under its id, the connection goes on.
    let mut good = Vec::new();
    ringkv_net::client_frame::encode_request(&common::header(7), &Request::Ping, &mut good);
    let mut unknown = good.clone();
    unknown[5] = 0xEE;
    let (answers, _) = answers_to(node.port, &[unknown, good.clone()].concat(), 2);
    assert_eq!(answers[0], (7, OwnedAnswer::Error(Status::UnknownOpcode)));
    assert_eq!(
        answers[1],
        (7, OwnedAnswer::Pong),
        "the connection survives an unknown opcode"
    );
    check_healthy(&mut healthy, 2);

    // Key over 1 KiB.
    let long_key = vec![b'k'; 1025];
    let mut bytes = Vec::new();
    ringkv_net::client_frame::encode_request(
        &common::header(8),
        &Request::Get { key: &long_key },
        &mut bytes,
    );
    bytes.extend_from_slice(&good);
    let (answers, _) = answers_to(node.port, &bytes, 2);
    assert_eq!(answers[0], (8, OwnedAnswer::Error(Status::KeyTooLarge)));
    assert_eq!(answers[1], (7, OwnedAnswer::Pong));
    check_healthy(&mut healthy, 3);

    // Value over 1 MiB.
    let big = vec![b'v'; 1024 * 1024 + 1];
    let mut bytes = Vec::new();
    ringkv_net::client_frame::encode_request(
        &common::header(9),
        &Request::Put {
            key: b"safe",
            value: &big,
            ttl_ms: 0,
        },
        &mut bytes,
    );
    bytes.extend_from_slice(&good);
    let (answers, _) = answers_to(node.port, &bytes, 2);
    assert_eq!(answers[0], (9, OwnedAnswer::Error(Status::ValueTooLarge)));
    assert_eq!(answers[1], (7, OwnedAnswer::Pong));
    check_healthy(&mut healthy, 4);

    // Frame over the configured maximum: refused from its header, id 0, closed.
    let mut header_only = Vec::new();
    header_only.extend_from_slice(&(3u32 << 20).to_le_bytes());
    header_only.extend_from_slice(&good[4..]);
    let (answers, closed) = answers_to(node.port, &header_only, 2);
    assert_eq!(
        answers,
        vec![(0, OwnedAnswer::Error(Status::FrameTooLarge))]
    );
    assert!(closed, "the connection is closed after an oversize frame");
    check_healthy(&mut healthy, 5);

    // Truncated frame, then the client closes: nothing is answered or applied.
    let mut put = Vec::new();
    ringkv_net::client_frame::encode_request(
        &common::header(10),
        &Request::Put {
            key: b"safe",
            value: b"torn",
            ttl_ms: 0,
        },
        &mut put,
    );
    let mut raw = Raw::connect(node.port);
    raw.send_bytes(&put[..put.len() - 3]);
    raw.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(raw.recv().is_none(), "a truncated frame gets no answer");
    check_healthy(&mut healthy, 6);

    // Random garbage (seeded): an error frame or a close, never a crash.
    let seed = 0x5eed_u64;
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(seed);
    for round in 0..20 {
        let len = rand::Rng::gen_range(&mut rng, 1..4096);
        let garbage: Vec<u8> = (0..len).map(|_| rand::Rng::gen(&mut rng)).collect();
        let mut raw = Raw::connect(node.port);
        raw.send_bytes(&garbage);
        let _ = raw.stream.shutdown(std::net::Shutdown::Write);
        while let Some((_, answer)) = raw.recv() {
            assert!(
                matches!(answer, OwnedAnswer::Error(_)),
                "seed {seed} round {round}: {answer:?}"
            );
        }
        check_healthy(&mut healthy, 100 + round);
    }

    // Unsupported protocol version: error frame, closed.
    let mut v2 = good.clone();
    v2[4] = 2;
    let (answers, closed) = answers_to(node.port, &v2, 2);
    assert_eq!(
        answers,
        vec![(0, OwnedAnswer::Error(Status::UnsupportedVersion))]
    );
    assert!(closed);

    check_healthy(&mut healthy, 200);
    let mut c = node.client();
    assert_eq!(
        c.get(b"safe").unwrap().unwrap().value,
        b"data",
        "stored data is intact"
    );
}

#[test]
fn connections_over_the_limit_are_refused_with_overloaded() {
    let dir = temp_dir();
    let node = Node::start(&dir.path().join("data"), 1, &["--max-connections", "2"]);
    // The start probe's connections are released asynchronously: retry until admitted.
    let admitted = || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut r = Raw::connect(node.port);
            r.send(1, &Request::Ping);
            if r.recv() == Some((1, OwnedAnswer::Pong)) {
                return r;
            }
            assert!(std::time::Instant::now() < deadline, "never admitted");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let a = admitted();
    let _b = admitted();
    let mut c = Raw::connect(node.port);
    assert_eq!(c.recv(), Some((0, OwnedAnswer::Error(Status::Overloaded))));
    assert_eq!(c.recv(), None);
    drop(a);
    // The slot is released when a connection ends.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut d = Raw::connect(node.port);
        d.send(5, &Request::Ping);
        match d.recv() {
            Some((5, OwnedAnswer::Pong)) => break,
            _ => assert!(
                std::time::Instant::now() < deadline,
                "the slot was never released"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A node whose log pipe closes (a log collector that died) goes on
/// serving and still stops on SIGTERM: a failed log write once made the
/// logger report it through `eprintln!`, which panicked the signal thread.
#[test]
fn a_node_whose_stderr_pipe_closes_still_serves_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = temp_dir();
    let port = common::free_base_port(1);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .arg("serve")
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--shards", "1", "--resp-port", "0", "--io-memory", "1MiB"])
        .args(["--memtable-size", "4MiB", "--block-cache-size", "8MiB"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringkv");
    let mut log = BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    while !line.contains("node ready") {
        line.clear();
        let read = log.read_line(&mut line).expect("read the log");
        assert!(read > 0, "ringkv exited before it was ready");
    }
    drop(log);
    let addr = format!("127.0.0.1:{port}");
    assert!(ctl(&addr, &["put", "piped", "v"]).status.success());
    let got = ctl(&addr, &["get", "piped"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "v");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + common::STOP_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ringkv did not stop on SIGTERM with its log pipe closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
}

#[test]
fn sigterm_stops_the_node_cleanly_and_sigkill_loses_no_acknowledged_write() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut node = Node::start(&data, 2, &[]);
    let mut c = node.client();
    for i in 0..100 {
        c.put(format!("term-{i}").as_bytes(), b"x", None).unwrap();
    }
    drop(c);
    let status = node.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM exits 0; log:\n{}",
        node.log_text()
    );

    let mut node = Node::start(&data, 2, &[]);
    let mut c = node.client();
    for i in 0..100 {
        assert!(
            c.get(format!("term-{i}").as_bytes()).unwrap().is_some(),
            "term-{i} survives SIGTERM"
        );
    }
    // Every write acknowledged before SIGKILL must survive it (sync durability).
    let mut acked = Vec::new();
    for i in 0..300 {
        let k = format!("kill-{i}");
        c.put(k.as_bytes(), k.as_bytes(), None).unwrap();
        acked.push(k);
    }
    c.incr(b"kill-counter", 42).unwrap();
    node.kill();
    drop(c);

    let node = Node::start(&data, 2, &[]);
    let mut c = node.client();
    for k in &acked {
        assert_eq!(
            c.get(k.as_bytes()).unwrap().map(|v| v.value),
            Some(k.clone().into_bytes()),
            "{k} survives SIGKILL"
        );
    }
    assert_eq!(c.incr(b"kill-counter", 0).unwrap(), 42);
}

#[test]
fn a_memlock_limit_below_the_minimum_exits_with_the_limit_and_the_fix() {
    let dir = temp_dir();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -l 64 && exec {} serve --resp-port 0 --data-dir {} --port {}",
            env!("CARGO_BIN_EXE_ringkv"),
            dir.path().join("data").display(),
            common::free_base_port(4)
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("65536"), "names the limit seen: {stderr}");
    assert!(
        stderr.contains("524288"),
        "names the limit needed: {stderr}"
    );
    assert!(
        stderr.contains("ulimit -l unlimited") && stderr.contains("LimitMEMLOCK=infinity"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn a_data_dir_made_with_another_shard_count_is_refused() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut node = Node::start(&data, 2, &[]);
    assert!(node.terminate().success());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args([
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--shards",
            "1",
            "--resp-port",
            "0",
        ])
        .args(["--port", &common::free_base_port(1).to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--shards 2"), "{stderr}");
    // ringctl reports a node that is not there with a non-zero status.
    let out = ctl(
        &format!("127.0.0.1:{}", common::free_base_port(1)),
        &["ping"],
    );
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn concurrent_increments_and_cas_from_many_connections_never_interleave() {
    let dir = temp_dir();
    let node = Node::start(&dir.path().join("data"), 2, &[]);
    let threads = 4;
    let rounds = 100;
    let ports: Vec<u16> = vec![node.port, node.shard_port(0), node.shard_port(1), node.port];
    let handles: Vec<_> = ports
        .into_iter()
        .take(threads)
        .map(|port| {
            std::thread::spawn(move || {
                let mut raw = Raw::connect(port);
                let mut cas_wins = 0;
                for i in 0..rounds {
                    match raw.call(
                        i,
                        &Request::Incr {
                            key: b"hot",
                            delta: 1,
                        },
                    ) {
                        OwnedAnswer::Other(s) => assert!(s.starts_with("Integer"), "{s}"),
                        other => panic!("INCR answered {other:?}"),
                    }
                    let req = Request::Cas {
                        key: b"owner",
                        expect: ringkv_net::client_frame::CasExpect::Absent,
                        value: b"me",
                        ttl_ms: 0,
                    };
                    if raw.call(1000 + i, &req) == OwnedAnswer::Written {
                        cas_wins += 1;
                    }
                }
                cas_wins
            })
        })
        .collect();
    let wins: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(wins, 1, "exactly one CAS on an absent key wins");
    let mut c = node.client();
    assert_eq!(c.incr(b"hot", 0).unwrap(), (threads as i64) * rounds as i64);
}

#[test]
fn writes_beyond_the_memtable_are_flushed_and_read_back_after_a_restart() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut node = Node::start(&data, 2, &[]);
    let mut c = node.client();
    // 10 MiB through 4 MiB memtables: a flush to a table per shard.
    let value = |i: usize| vec![(i % 251) as u8; 20 * 1024];
    let keys: Vec<Vec<u8>> = (0..512)
        .map(|i| format!("bulk-{i:04}").into_bytes())
        .collect();
    for chunk in keys.chunks(32).enumerate() {
        let (n, ks) = chunk;
        let vals: Vec<Vec<u8>> = (0..ks.len()).map(|j| value(n * 32 + j)).collect();
        let pairs: Vec<(&[u8], &[u8])> = ks
            .iter()
            .zip(&vals)
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        c.mput(&pairs, None).unwrap();
    }
    // The flushes show in every shard's statistics: the WAL took every
    // value, tables took what the flushes wrote, and the background queue
    // that ran them took a part of the executor's time.
    let stats = c.stats().unwrap();
    let per_shard = |name: &str| -> Vec<u64> {
        let values: Vec<u64> = stats
            .lines()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .map(|v| v.trim().parse().unwrap())
            .collect();
        assert_eq!(values.len(), 2, "a {name} line per shard: {stats}");
        values
    };
    let value_bytes = (keys.len() * value(0).len()) as u64;
    assert!(
        per_shard("storage_wal_bytes_written").iter().sum::<u64>() >= value_bytes,
        "{stats}"
    );
    // Each shard took more than its memtable's budget: its memtable is
    // flushed, or frozen and on its way (flushes run in the background).
    let flushes = per_shard("storage_flushes");
    let frozen = per_shard("storage_frozen_memtables");
    let flushed_bytes = per_shard("storage_flush_bytes_written");
    for shard in 0..2 {
        assert!(flushes[shard] + frozen[shard] >= 1, "{stats}");
        assert_eq!(flushes[shard] > 0, flushed_bytes[shard] > 0, "{stats}");
    }
    let frozen_max = ringkv_storage::engine::FROZEN_MEMTABLES_MAX as u64;
    assert!(frozen.iter().all(|&n| n <= frozen_max), "{stats}");
    let executor_ms = per_shard("executor_runtime_ms");
    let background_ms = per_shard("executor_background_runtime_ms");
    assert!(executor_ms.iter().sum::<u64>() > 0, "{stats}");
    for (background, executor) in background_ms.iter().zip(&executor_ms) {
        assert!(background <= executor, "{stats}");
    }
    drop(c);
    assert!(node.terminate().success(), "log:\n{}", node.log_text());
    let node = Node::start(&data, 2, &[]);
    let mut c = node.client();
    let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    for (n, chunk) in refs.chunks(64).enumerate() {
        for (j, got) in c.mget(chunk).unwrap().into_iter().enumerate() {
            assert_eq!(
                got.map(|v| v.value),
                Some(value(n * 64 + j)),
                "key {}",
                n * 64 + j
            );
        }
    }
    let stats = c.stats().unwrap();
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("storage_level0_tables ")
                || l.starts_with("storage_level1_tables ")),
        "{stats}"
    );
}

#[test]
fn sigterm_during_a_write_stream_answers_or_refuses_and_keeps_every_acknowledged_write() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut node = Node::start(&data, 2, &[]);
    let addr = node.addr();
    let writer = std::thread::spawn(move || {
        let mut c = ringkv_net::client::Client::connect(
            &[addr],
            ringkv_net::client::ClientOptions::default(),
        )
        .unwrap();
        let mut acked = Vec::new();
        for i in 0..100_000 {
            let k = format!("stream-{i}");
            match c.put(k.as_bytes(), b"v", None) {
                Ok(_) => acked.push(k),
                Err(_) => break,
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(300));
    let status = node.terminate();
    assert_eq!(status.code(), Some(0), "log:\n{}", node.log_text());
    let acked = writer.join().unwrap();
    assert!(!acked.is_empty());
    let node = Node::start(&data, 2, &[]);
    let mut c = node.client();
    for k in &acked {
        assert!(
            c.get(k.as_bytes()).unwrap().is_some(),
            "{k} was acknowledged before SIGTERM"
        );
    }
}

#[test]
fn with_no_data_dir_flag_the_node_keeps_its_data_in_ringkv_data_under_the_working_directory() {
    let dir = temp_dir();
    let mut node = Node::start_in(Some(dir.path()), &dir.path().join("ringkv-data"), 2, &[]);
    assert!(ctl_ok(&node, &["put", "k", "v"]).starts_with("OK "));
    assert!(node.terminate().success(), "log:\n{}", node.log_text());
    assert!(dir.path().join("ringkv-data/NODE").exists());
    assert!(dir.path().join("ringkv-data/shard-1").is_dir());
    let node = Node::start_in(
        Some(dir.path()),
        &dir.path().join("ringkv-data"),
        2,
        &["--data-dir", "ringkv-data"],
    );
    assert_eq!(ctl_ok(&node, &["get", "k"]), "v");
}

#[test]
fn a_second_node_on_the_same_ports_or_data_directory_is_refused() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let node = Node::start(&data, 2, &[]);
    let other = dir.path().join("other");
    let run = |data: &std::path::Path, port: u16| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ringkv"))
            .args([
                "serve",
                "--data-dir",
                data.to_str().unwrap(),
                "--shards",
                "2",
                "--resp-port",
                "0",
            ])
            .args(["--port", &port.to_string()])
            .output()
            .unwrap()
    };
    let same_ports = run(&other, node.port);
    let stderr = String::from_utf8_lossy(&same_ports.stderr);
    assert_eq!(same_ports.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen"), "{stderr}");
    let same_dir = run(&data, common::free_base_port(2));
    let stderr = String::from_utf8_lossy(&same_dir.stderr);
    assert_eq!(same_dir.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("another ringkv node"), "{stderr}");
    assert_eq!(
        ctl_ok(&node, &["ping"]).split(' ').next(),
        Some("PONG"),
        "the first node is unharmed"
    );
}

/// PUTs and DELETEs that a shard runs at once, with no task and no lock
/// (most of a pipeline), are still answered only once durable, in every
/// durability mode; the later requests of a pipeline see them; and enough of
/// them fill several 4 MiB memtables, so the queued path (a full memtable)
/// takes turns with them. After a SIGKILL (a clean stop for `none`, which
/// acknowledges before durable), every acknowledged write reads back.
#[test]
fn pipelined_writes_run_at_once_are_durable_when_answered_in_every_mode() {
    for mode in ["sync", "batch", "none"] {
        let dir = temp_dir();
        let data = dir.path().join("data");
        let mut node = Node::start(&data, 1, &["--durability", mode]);
        let mut raw = Raw::connect(node.port + 1);
        let keys = 3000u64;
        let key = |i: u64| format!("fast-{i:05}").into_bytes();
        let value = |i: u64| vec![b'a' + (i % 26) as u8; 2048];
        // Per key a PUT, and for every third key a DELETE after it.
        let mut expected = std::collections::HashMap::new();
        let mut id = 0u64;
        for chunk in (0..keys).collect::<Vec<_>>().chunks(100) {
            let mut bytes = Vec::new();
            let mut sent = 0;
            for &i in chunk {
                let (k, v) = (key(i), value(i));
                let mut send = |req: &Request<'_>, answer: OwnedAnswer| {
                    id += 1;
                    ringkv_net::client_frame::encode_request(&common::header(id), req, &mut bytes);
                    expected.insert(id, answer);
                    sent += 1;
                };
                let put = Request::Put {
                    key: &k,
                    value: &v,
                    ttl_ms: 0,
                };
                send(&put, OwnedAnswer::Written);
                if i % 3 == 0 {
                    send(&Request::Delete { key: &k }, OwnedAnswer::Written);
                }
            }
            raw.send_bytes(&bytes);
            for _ in 0..sent {
                let (id, answer) = raw.recv().expect("an answer");
                assert_eq!(Some(&answer), expected.get(&id), "{mode}: request {id}");
            }
        }
        // Stopped right after the last answer: an answer sent before its
        // write was durable would lose that write here.
        drop(raw);
        if mode == "none" {
            assert!(node.terminate().success());
        } else {
            node.kill();
        }
        let node = Node::start(&data, 1, &["--durability", mode]);
        let mut raw = Raw::connect(node.port + 1);
        for i in 0..keys {
            let want = if i % 3 == 0 {
                OwnedAnswer::NotFound
            } else {
                OwnedAnswer::Value(value(i))
            };
            let k = key(i);
            assert_eq!(
                raw.call(100_000 + i, &Request::Get { key: &k }),
                want,
                "{mode} after the restart: key {i}"
            );
        }
    }
}

/// GETs whose record is in memory (the row cache or the memtables) are answered while their batch is
/// decoded, ahead of queued work. They must still see every PUT sent before
/// them on the connection, and a record read from memory must still expire. (A PUT
/// the shard runs at once is applied before anything after it runs, in
/// every durability mode; one that waits for a full memtable is queued, and
/// the protocol lets queued requests finish in any order.)
#[test]
fn pipelined_gets_see_the_puts_sent_before_them_and_records_read_from_memory_expire() {
    let dir = temp_dir();
    let node = Node::start(&dir.path().join("data"), 1, &["--durability", "none"]);
    let mut raw = Raw::connect(node.port + 1);
    let key: &[u8] = b"cached-key";
    fn put<'a>(key: &'a [u8], value: &'a [u8], ttl_ms: u64) -> Request<'a> {
        Request::Put { key, value, ttl_ms }
    }
    assert_eq!(raw.call(1, &put(key, b"v-start", 0)), OwnedAnswer::Written);
    // Answered at once by the memtable (the row cache keeps out of the
    // active memtable's keys).
    for id in 2..4 {
        assert_eq!(
            raw.call(id, &Request::Get { key }),
            OwnedAnswer::Value(b"v-start".to_vec())
        );
    }
    // One write: rounds of GET, PUT v-i, GET. Each GET must see the latest
    // PUT before it in the stream.
    let rounds = 100u64;
    let values: Vec<Vec<u8>> = (0..rounds).map(|i| format!("v-{i}").into_bytes()).collect();
    let mut bytes = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let base = 10 + 3 * i as u64;
        let encode = |id, req: &Request<'_>, bytes: &mut Vec<u8>| {
            ringkv_net::client_frame::encode_request(&common::header(id), req, bytes)
        };
        encode(base, &Request::Get { key }, &mut bytes);
        encode(base + 1, &put(key, value, 0), &mut bytes);
        encode(base + 2, &Request::Get { key }, &mut bytes);
    }
    raw.send_bytes(&bytes);
    let mut answers = std::collections::HashMap::new();
    for _ in 0..3 * rounds {
        let (id, answer) = raw.recv().expect("an answer");
        answers.insert(id, answer);
    }
    for i in 0..rounds {
        let base = 10 + 3 * i;
        let before = if i == 0 {
            b"v-start".to_vec()
        } else {
            values[i as usize - 1].clone()
        };
        assert_eq!(answers[&base], OwnedAnswer::Value(before), "GET {base}");
        assert_eq!(
            answers[&(base + 1)],
            OwnedAnswer::Written,
            "PUT {}",
            base + 1
        );
        let after = values[i as usize].clone();
        assert_eq!(
            answers[&(base + 2)],
            OwnedAnswer::Value(after),
            "GET {}",
            base + 2
        );
    }
    // A record with a TTL is answered from memory until it expires.
    let ttl_ms = 300;
    assert_eq!(
        raw.call(1000, &put(key, b"short-lived", ttl_ms)),
        OwnedAnswer::Written
    );
    for id in 1001..1003 {
        assert_eq!(
            raw.call(id, &Request::Get { key }),
            OwnedAnswer::Value(b"short-lived".to_vec())
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(ttl_ms + 200));
    assert_eq!(raw.call(1003, &Request::Get { key }), OwnedAnswer::NotFound);
    let stats = ctl_ok(&node, &["stats"]);
    let stat = |name: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("a {name} line in the stats: {stats}"))
    };
    // Every read came from the memtable: none from a table, and the row
    // cache never held the key the memtable held.
    assert_eq!(stat("storage_row_cache_hits"), 0, "{stats}");
    assert_eq!(stat("storage_block_cache_misses"), 0, "{stats}");
}
