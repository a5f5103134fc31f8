//! The io_uring network engine (`--net-engine uring`) against the glommio
//! one, byte for byte: every scenario runs on both engines of a real
//! `ringkv serve` process and must give the same answers. The scenarios aim
//! at what the engine does itself: many pipelining connections in one turn,
//! frames split anywhere, answers larger than a send, a connection that
//! floods without reading, half-closed connections, bad streams, and stop.

mod common;

use common::{temp_dir, Node, OwnedAnswer, Raw};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ringkv_net::client_frame::{encode_request, Request, Status};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

const ENGINES: [&str; 2] = ["uring", "glommio"];

fn start(engine: &str, extra: &[&str]) -> (tempfile::TempDir, Node) {
    let dir = temp_dir();
    let args = [&["--net-engine", engine][..], extra].concat();
    let node = Node::start(&dir.path().join("data"), 2, &args);
    (dir, node)
}

fn seed() -> u64 {
    let seed = std::env::var("RINGKV_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with RINGKV_TEST_SEED={seed})");
    seed
}

fn encode(id: u64, req: &Request<'_>, out: &mut Vec<u8>) {
    encode_request(&common::header(id), req, out);
}

#[test]
fn many_connections_pipelining_split_frames_get_every_answer_by_id() {
    let seed = seed();
    for engine in ENGINES {
        let (_dir, node) = start(engine, &[]);
        let threads: Vec<_> = (0..12u64)
            .map(|conn| {
                let port = if conn % 3 == 0 {
                    node.shard_port((conn % 2) as u32)
                } else {
                    node.port
                };
                std::thread::spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(seed ^ conn);
                    let mut raw = Raw::connect(port);
                    let mut bytes = Vec::new();
                    let n = 400u64;
                    for i in 1..=n {
                        let key = format!("c{conn}-k{}", i % 50);
                        if i % 2 == 1 {
                            let value = format!("v{i}");
                            let put = Request::Put {
                                key: key.as_bytes(),
                                value: value.as_bytes(),
                                ttl_ms: 0,
                            };
                            encode(i, &put, &mut bytes);
                        } else {
                            encode(
                                i,
                                &Request::Get {
                                    key: key.as_bytes(),
                                },
                                &mut bytes,
                            );
                        }
                    }
                    // Frames cut at random places, written as separate sends.
                    let mut pos = 0;
                    while pos < bytes.len() {
                        let len = rng.gen_range(1..=4096).min(bytes.len() - pos);
                        raw.send_bytes(&bytes[pos..pos + len]);
                        pos += len;
                    }
                    let mut ids = Vec::new();
                    for _ in 0..n {
                        let (id, answer) = raw.recv().expect("an answer for every request");
                        if id % 2 == 1 {
                            assert_eq!(answer, OwnedAnswer::Written, "put {id} (seed {seed})");
                        } else {
                            // The put of the same key (id - 1) went in the same batch
                            // or an earlier one: any answer but an error is fine.
                            assert!(
                                matches!(answer, OwnedAnswer::Value(_) | OwnedAnswer::NotFound),
                                "get {id}: {answer:?} (seed {seed})"
                            );
                        }
                        ids.push(id);
                    }
                    ids.sort_unstable();
                    assert_eq!(ids, (1..=n).collect::<Vec<_>>(), "seed {seed}");
                })
            })
            .collect();
        for t in threads {
            t.join().expect("client thread");
        }
        let mut c = node.client();
        assert_eq!(
            c.get(b"c5-k49").unwrap().unwrap().value,
            b"v399",
            "{engine}"
        );
    }
}

#[test]
fn a_large_value_and_a_frame_sent_byte_by_byte_are_answered() {
    for engine in ENGINES {
        let (_dir, node) = start(engine, &[]);
        let mut raw = Raw::connect(node.port);
        let value: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let put = Request::Put {
            key: b"big",
            value: &value,
            ttl_ms: 0,
        };
        assert_eq!(raw.call(1, &put), OwnedAnswer::Written, "{engine}");
        // Eight gets of 1 MB in one batch: the answer is larger than any
        // socket buffer, so it goes out in several partial sends.
        let mut bytes = Vec::new();
        for id in 2..10 {
            encode(id, &Request::Get { key: b"big" }, &mut bytes);
        }
        raw.send_bytes(&bytes);
        for _ in 2..10 {
            let (_, answer) = raw.recv().expect("answer");
            assert_eq!(answer, OwnedAnswer::Value(value.clone()), "{engine}");
        }
        let mut small = Vec::new();
        encode(
            10,
            &Request::Put {
                key: b"slow",
                value: b"drip",
                ttl_ms: 0,
            },
            &mut small,
        );
        for b in &small {
            raw.send_bytes(std::slice::from_ref(b));
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(raw.recv().expect("answer"), (10, OwnedAnswer::Written));
        assert_eq!(
            raw.call(11, &Request::Get { key: b"slow" }),
            OwnedAnswer::Value(b"drip".to_vec()),
            "{engine}"
        );
    }
}

#[test]
fn a_connection_flooding_without_reading_neither_starves_others_nor_loses_answers() {
    for engine in ENGINES {
        let log_level = "info,ringkv_shards::uring=debug";
        let (_dir, node) = start(engine, &["--durability", "none", "--log-level", log_level]);
        let total = 1_000_000u64;
        let mut bytes = Vec::new();
        for id in 1..=total {
            encode(id, &Request::Get { key: b"flood" }, &mut bytes);
        }
        let mut flood = std::net::TcpStream::connect(("127.0.0.1", node.port)).expect("connect");
        flood.set_nodelay(true).expect("nodelay");
        let mut reader = flood.try_clone().expect("clone");
        let writer = std::thread::spawn(move || flood.write_all(&bytes).map(|()| flood));
        // While the flood waits unread, another connection is served.
        std::thread::sleep(Duration::from_millis(300));
        let mut other = Raw::connect(node.port);
        for id in 0..200 {
            let start = Instant::now();
            assert_eq!(
                other.call(id, &Request::Ping),
                OwnedAnswer::Pong,
                "{engine}"
            );
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{engine}: ping {id} took {:?} beside a flood",
                start.elapsed()
            );
        }
        // Now read every answer of the flood.
        reader
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut answers = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        let mut pending = Vec::new();
        while answers < total {
            let n = reader.read(&mut buf).expect("flood answers keep coming");
            assert!(n > 0, "{engine}: closed after {answers} answers");
            pending.extend_from_slice(&buf[..n]);
            let mut pos = 0;
            while pending.len() - pos >= 4 {
                let len = u32::from_le_bytes(pending[pos..pos + 4].try_into().unwrap()) as usize;
                if pending.len() - pos < 4 + len {
                    break;
                }
                pos += 4 + len;
                answers += 1;
            }
            pending.drain(..pos);
        }
        writer
            .join()
            .expect("writer")
            .expect("the flood was written");
        assert_eq!(answers, total, "{engine}");
        if engine == "uring" {
            // The flood went over the receive bound: the engine paused its
            // receive instead of buffering it all, and resumed it.
            let log = node.log_text();
            assert!(
                log.contains("receive paused") && log.contains("receive resumed"),
                "{log}"
            );
        }
    }
}

#[test]
fn a_half_closed_connection_gets_its_answers_then_the_end_of_stream() {
    for engine in ENGINES {
        let (_dir, node) = start(engine, &[]);
        let mut raw = Raw::connect(node.port);
        let mut bytes = Vec::new();
        for id in 1..=100u64 {
            let key = format!("half-{id}");
            let put = Request::Put {
                key: key.as_bytes(),
                value: b"x",
                ttl_ms: 0,
            };
            encode(id, &put, &mut bytes);
        }
        raw.send_bytes(&bytes);
        raw.stream.shutdown(Shutdown::Write).expect("half close");
        for _ in 0..100 {
            assert_eq!(
                raw.recv().expect("answer").1,
                OwnedAnswer::Written,
                "{engine}"
            );
        }
        assert!(
            raw.recv().is_none(),
            "{engine}: the server closes after answering"
        );
    }
}

#[test]
fn a_bad_stream_is_answered_with_id_zero_and_closed_while_others_keep_working() {
    for engine in ENGINES {
        let (_dir, node) = start(engine, &[]);
        let mut good = Raw::connect(node.port);
        assert_eq!(good.call(1, &Request::Ping), OwnedAnswer::Pong);
        let mut bad = Raw::connect(node.port);
        let mut bytes = Vec::new();
        encode(7, &Request::Ping, &mut bytes);
        // A frame of the wrong protocol version after a good one.
        bytes.extend_from_slice(&[20, 0, 0, 0, 0xee, 1]);
        bytes.extend_from_slice(&[0; 20]);
        bad.send_bytes(&bytes);
        // The batch answers in completion order: the error is known first.
        let mut answers = vec![
            bad.recv().expect("an answer"),
            bad.recv().expect("an answer"),
        ];
        answers.sort_by_key(|a| a.0);
        assert_eq!(answers[1], (7, OwnedAnswer::Pong), "{engine}");
        assert_eq!(answers[0].0, 0, "{engine}");
        assert!(
            matches!(answers[0].1, OwnedAnswer::Error(_)),
            "{engine}: {answers:?}"
        );
        assert!(bad.recv().is_none(), "{engine}: closed after the error");
        // A frame that declares more than the frame limit.
        let mut huge = Raw::connect(node.port);
        huge.send_bytes(&(u32::MAX - 8).to_le_bytes());
        assert_eq!(
            huge.recv().expect("error answer"),
            (0, OwnedAnswer::Error(Status::FrameTooLarge)),
            "{engine}"
        );
        assert_eq!(good.call(2, &Request::Ping), OwnedAnswer::Pong, "{engine}");
    }
}

#[test]
fn sigterm_closes_idle_connections_and_stops_promptly() {
    for engine in ENGINES {
        let (_dir, mut node) = start(engine, &[]);
        let mut idle: Vec<Raw> = (0..20)
            .map(|i| {
                let mut r = Raw::connect(node.port);
                assert_eq!(r.call(i, &Request::Ping), OwnedAnswer::Pong);
                r
            })
            .collect();
        let start = Instant::now();
        let status = node.terminate();
        assert!(status.success(), "{engine}: {status}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{engine}: stop took {:?}",
            start.elapsed()
        );
        for r in &mut idle {
            assert!(r.recv().is_none(), "{engine}: idle connection closed");
        }
    }
}
