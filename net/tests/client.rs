//! Tests of the blocking client's own logic (routing, pipelining, retries,
//! timeouts, session versions) against a tiny in-test server on 127.0.0.1
//! that speaks the protocol with a toy map per shard. The real server is
//! tested by the node's own tests.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ringkv_net::client::{CasExpectOwned, CasOutcome, Client, ClientOptions, ScanSpec};
use ringkv_net::client_frame::{
    decode_request, encode_response, opcode, Decoded, EntryList, Request, RequestHeader, Response,
    ScanEntry, Status, TtlState, ValueList, WireVersion, PROTOCOL_VERSION,
};
use ringkv_net::limits::{FRAME_SIZE_MAX_DEFAULT, KEY_SIZE_MAX};
use ringkv_net::routing::{shard_for, token};
use ringkv_net::ClientError;

type Map = BTreeMap<Vec<u8>, (Vec<u8>, WireVersion)>;

#[derive(Default)]
struct State {
    shards: u32,
    maps: Mutex<Vec<Map>>,
    /// (listener shard or None for the shared port, opcode, header) of every request.
    log: Mutex<Vec<(Option<u32>, u8, RequestHeader)>>,
    clock: AtomicU64,
    /// Close the connection instead of answering the next N GETs.
    drop_gets: AtomicUsize,
    /// Close the connection instead of answering the next N PUTs.
    drop_puts: AtomicUsize,
    /// Never answer GETs.
    silent_gets: AtomicBool,
    /// Answer the frames of one read in reverse order.
    reverse: AtomicBool,
}

struct Fake {
    addr: String,
    state: Arc<State>,
}

enum Flow {
    Answer,
    Close,
    Silent,
}

fn bind_consecutive(n: u32) -> (u16, Vec<TcpListener>) {
    for _ in 0..100 {
        let Ok(first) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let port = first.local_addr().unwrap().port();
        let mut listeners = vec![first];
        for i in 1..n {
            match TcpListener::bind(("127.0.0.1", port + i as u16)) {
                Ok(l) => listeners.push(l),
                Err(_) => break,
            }
        }
        if listeners.len() == n as usize {
            return (port, listeners);
        }
    }
    panic!("no {n} consecutive free ports");
}

impl Fake {
    /// A fake node with `shards` shard ports; `reachable_shards` false
    /// announces shard ports on which nothing listens.
    fn start(shards: u32, reachable_shards: bool) -> Fake {
        let state = Arc::new(State {
            shards,
            maps: Mutex::new(vec![Map::new(); shards as usize]),
            ..State::default()
        });
        let base_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = base_listener.local_addr().unwrap();
        let base_port = if reachable_shards {
            let (first, listeners) = bind_consecutive(shards);
            for (i, l) in listeners.into_iter().enumerate() {
                serve(l, Some(i as u32), state.clone(), first - 1);
            }
            first - 1
        } else {
            let gone = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            gone - 1
        };
        serve(base_listener, None, state.clone(), base_port);
        Fake {
            addr: addr.to_string(),
            state,
        }
    }

    fn log(&self) -> Vec<(Option<u32>, u8, RequestHeader)> {
        self.state.log.lock().unwrap().clone()
    }
}

fn serve(listener: TcpListener, shard: Option<u32>, state: Arc<State>, base_port: u16) {
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let state = state.clone();
            thread::spawn(move || connection(stream, shard, &state, base_port));
        }
    });
}

fn connection(mut stream: TcpStream, shard: Option<u32>, state: &State, base_port: u16) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let Ok(n) = stream.read(&mut chunk) else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut answers: Vec<Vec<u8>> = Vec::new();
        let mut at = 0;
        loop {
            match decode_request(&buf[at..], FRAME_SIZE_MAX_DEFAULT) {
                Ok(Decoded::Frame {
                    frame: (header, request),
                    len,
                }) => {
                    at += len;
                    state
                        .log
                        .lock()
                        .unwrap()
                        .push((shard, request.opcode(), header));
                    let mut out = Vec::new();
                    match answer(state, shard, base_port, &header, &request, &mut out) {
                        Flow::Answer => answers.push(out),
                        Flow::Close => return,
                        Flow::Silent => {}
                    }
                }
                Ok(Decoded::Incomplete { .. }) => break,
                Err(e) => {
                    let mut out = Vec::new();
                    let message = e.message.as_bytes();
                    encode_response(
                        e.id.unwrap_or(0),
                        &Response::Error {
                            status: e.status,
                            message,
                        },
                        &mut out,
                    );
                    let _ = stream.write_all(&out);
                    return;
                }
            }
        }
        buf.drain(..at);
        if state.reverse.load(Ordering::SeqCst) {
            answers.reverse();
        }
        if stream.write_all(&answers.concat()).is_err() {
            return;
        }
    }
}

fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// The toy node: each key lives in the map of its shard; a shard port refuses
/// keys of other shards (so a routing bug fails the test), the shared port
/// serves every key (forwarding).
fn answer(
    state: &State,
    shard: Option<u32>,
    base_port: u16,
    header: &RequestHeader,
    request: &Request<'_>,
    out: &mut Vec<u8>,
) -> Flow {
    let id = header.id;
    let mut maps = state.maps.lock().unwrap();
    let owner = |key: &[u8]| -> Result<usize, String> {
        if key.starts_with(b"err") {
            return Err("overloaded on purpose".into());
        }
        let s = shard_for(token(key), state.shards);
        match shard {
            Some(mine) if mine != s => Err(format!("key routed to shard {mine}, owned by {s}")),
            _ => Ok(s as usize),
        }
    };
    let version = || WireVersion {
        hlc: state.clock.fetch_add(1, Ordering::SeqCst) + 100,
        node: 9,
    };
    let response_owned: Result<Vec<u8>, String> = (|| {
        let mut o = Vec::new();
        match *request {
            Request::Ping => encode_response(id, &Response::Pong, &mut o),
            Request::Hello => encode_response(
                id,
                &Response::Hello {
                    node_id: 9,
                    shard_count: state.shards,
                    base_port,
                    protocol_version: PROTOCOL_VERSION,
                },
                &mut o,
            ),
            Request::Stats => encode_response(id, &Response::Stats { text: b"keys 0\n" }, &mut o),
            // A node that predates RING: the client must behave as a
            // single-node client.
            Request::Ring => encode_response(
                id,
                &Response::Error {
                    status: Status::UnknownOpcode,
                    message: b"unknown opcode 0x04",
                },
                &mut o,
            ),
            Request::Get { key } => {
                let s = owner(key)?;
                match maps[s].get(key) {
                    Some((value, version)) => encode_response(
                        id,
                        &Response::Value {
                            value,
                            version: *version,
                            expires_at_ms: 0,
                        },
                        &mut o,
                    ),
                    None => encode_response(id, &Response::NotFound, &mut o),
                }
            }
            Request::Exists { key } => {
                let s = owner(key)?;
                encode_response(id, &Response::Bool(maps[s].contains_key(key)), &mut o);
            }
            Request::Ttl { key } => {
                let s = owner(key)?;
                let state = if maps[s].contains_key(key) {
                    TtlState::NoExpiry
                } else {
                    TtlState::Missing
                };
                encode_response(id, &Response::Ttl { state }, &mut o);
            }
            Request::Put { key, value, .. } => {
                let s = owner(key)?;
                let v = version();
                maps[s].insert(key.to_vec(), (value.to_vec(), v));
                encode_response(id, &Response::Written { version: v }, &mut o);
            }
            Request::Delete { key } => {
                let s = owner(key)?;
                maps[s].remove(key);
                encode_response(id, &Response::Written { version: version() }, &mut o);
            }
            Request::MGet { keys } => {
                let mut items = Vec::new();
                for key in keys.iter() {
                    let s = owner(key)?;
                    items.push(maps[s].get(key).map(|(v, ver)| (v.clone(), *ver)));
                }
                let refs: Vec<Option<(&[u8], WireVersion)>> = items
                    .iter()
                    .map(|i| i.as_ref().map(|(v, ver)| (v.as_slice(), *ver)))
                    .collect();
                encode_response(
                    id,
                    &Response::Values {
                        items: ValueList::new(&refs),
                    },
                    &mut o,
                );
            }
            Request::MPut { pairs, .. } => {
                let v = version();
                for (key, value) in pairs.iter() {
                    let s = owner(key)?;
                    maps[s].insert(key.to_vec(), (value.to_vec(), v));
                }
                encode_response(id, &Response::Written { version: v }, &mut o);
            }
            Request::Scan {
                start,
                prefix,
                limit,
                after,
                ..
            } => {
                let mine: Vec<usize> = match shard {
                    Some(s) => vec![s as usize],
                    None => (0..state.shards as usize).collect(),
                };
                let mut found: Vec<(Vec<u8>, Vec<u8>, WireVersion)> = mine
                    .iter()
                    .flat_map(|&s| maps[s].iter())
                    .filter(|(k, _)| !prefix || k.starts_with(start))
                    .filter(|(k, _)| after.is_empty() || k.as_slice() > after)
                    .map(|(k, (v, ver))| (k.clone(), v.clone(), *ver))
                    .collect();
                found.sort();
                let more = found.len() > limit as usize;
                found.truncate(limit as usize);
                let next_after = if more {
                    found.last().map(|e| e.0.clone()).unwrap_or_default()
                } else {
                    vec![]
                };
                let entries: Vec<ScanEntry<'_>> = found
                    .iter()
                    .map(|(key, value, version)| ScanEntry {
                        key,
                        value,
                        version: *version,
                    })
                    .collect();
                encode_response(
                    id,
                    &Response::ScanPage {
                        entries: EntryList::new(&entries),
                        next_after: &next_after,
                    },
                    &mut o,
                );
            }
            Request::Cas { key, value, .. } => {
                let s = owner(key)?;
                match maps[s].get(key) {
                    Some((current, ver)) => encode_response(
                        id,
                        &Response::CasMismatch {
                            current: Some((current, *ver)),
                        },
                        &mut o,
                    ),
                    None => {
                        let v = version();
                        maps[s].insert(key.to_vec(), (value.to_vec(), v));
                        encode_response(id, &Response::Written { version: v }, &mut o);
                    }
                }
            }
            Request::Incr { key, delta } => {
                let s = owner(key)?;
                let v = version();
                encode_response(
                    id,
                    &Response::Integer {
                        value: delta,
                        version: v,
                    },
                    &mut o,
                );
                let _ = s;
            }
        }
        Ok(o)
    })();
    drop(maps);
    if matches!(request, Request::Get { .. }) {
        if state.silent_gets.load(Ordering::SeqCst) {
            return Flow::Silent;
        }
        if take_one(&state.drop_gets) {
            return Flow::Close;
        }
    }
    if matches!(request, Request::Put { .. }) && take_one(&state.drop_puts) {
        return Flow::Close;
    }
    match response_owned {
        Ok(bytes) => out.extend_from_slice(&bytes),
        Err(message) => encode_response(
            id,
            &Response::Error {
                status: Status::Overloaded,
                message: message.as_bytes(),
            },
            out,
        ),
    }
    Flow::Answer
}

fn options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    }
}

fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("key-{i:04}").into_bytes()).collect()
}

// ---------------------------------------------------------------- tests

#[test]
fn connect_learns_the_shard_count_and_routes_each_key_to_its_shard() {
    let fake = Fake::start(3, true);
    let mut client = Client::connect(std::slice::from_ref(&fake.addr), options()).unwrap();
    assert_eq!(client.shard_count(), 3);
    for key in keys(30) {
        client.put(&key, b"v", None).unwrap();
        assert_eq!(client.get(&key).unwrap().unwrap().value, b"v");
    }
    let log = fake.log();
    let on_shard_ports = log
        .iter()
        .filter(|(s, op, _)| s.is_some() && *op == opcode::PUT)
        .count();
    assert_eq!(on_shard_ports, 30, "every PUT went to a shard port");
    assert!(client.ping().unwrap() < Duration::from_secs(5));
}

#[test]
fn unreachable_shard_ports_fall_back_to_the_shared_port() {
    let fake = Fake::start(2, false);
    let mut client = Client::connect(std::slice::from_ref(&fake.addr), options()).unwrap();
    client.put(b"a", b"1", None).unwrap();
    assert_eq!(client.get(b"a").unwrap().unwrap().value, b"1");
    assert!(fake.log().iter().all(|(s, _, _)| s.is_none()));
}

#[test]
fn connect_skips_unreachable_addresses() {
    let fake = Fake::start(1, true);
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let client = Client::connect(&[dead, fake.addr.clone()], options()).unwrap();
    assert_eq!(client.shard_count(), 1);
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let e = Client::connect(&[dead], options()).unwrap_err();
    assert!(matches!(e, ClientError::NoReachableNode { .. }), "{e}");
}

#[test]
fn mget_and_mput_split_per_shard_and_answer_in_request_order() {
    let fake = Fake::start(4, true);
    fake.state.reverse.store(true, Ordering::SeqCst);
    let mut client = Client::connect(std::slice::from_ref(&fake.addr), options()).unwrap();
    let ks = keys(2500); // more than BATCH_KEYS_MAX in total and on some shards
    let values: Vec<Vec<u8>> = ks.iter().map(|k| [k.as_slice(), b"-v"].concat()).collect();
    let pairs: Vec<(&[u8], &[u8])> = ks
        .iter()
        .zip(&values)
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    client.mput(&pairs[..2000], None).unwrap();
    let refs: Vec<&[u8]> = ks.iter().map(Vec::as_slice).collect();
    let got = client.mget(&refs).unwrap();
    assert_eq!(got.len(), ks.len());
    for (i, g) in got.iter().enumerate() {
        if i < 2000 {
            assert_eq!(
                g.as_ref().map(|v| v.value.as_slice()),
                Some(values[i].as_slice()),
                "key {i}"
            );
        } else {
            assert!(g.is_none(), "key {i}");
        }
    }
    assert!(client.mget(&[]).unwrap().is_empty());
}

#[test]
fn scan_merges_every_shard_in_key_order_and_continues() {
    let fake = Fake::start(3, true);
    let mut client = Client::connect(std::slice::from_ref(&fake.addr), options()).unwrap();
    let ks = keys(50);
    for k in &ks {
        client.put(k, b"v", None).unwrap();
    }
    client.put(b"other", b"v", None).unwrap();
    let mut spec = ScanSpec {
        start: b"key-".to_vec(),
        prefix: true,
        limit: 7,
        ..ScanSpec::default()
    };
    let mut seen = Vec::new();
    for _ in 0..100 {
        let page = client.scan(&spec).unwrap();
        assert!(page.entries.len() <= 7);
        seen.extend(page.entries.into_iter().map(|e| e.key));
        if page.next_after.is_empty() {
            break;
        }
        spec.after = page.next_after;
    }
    assert_eq!(seen, ks);
}

#[test]
fn get_is_retried_after_the_connection_drops() {
    let fake = Fake::start(1, true);
    let mut client = Client::connect(std::slice::from_ref(&fake.addr), options()).unwrap();
    client.put(b"k", b"v", None).unwrap();
    fake.state.drop_gets.store(2, Ordering::SeqCst);
    assert_eq!(client.get(b"k").unwrap().unwrap().value, b"v");
    let gets = fake
        .log()
        .iter()
        .filter(|(_, op, _)| *op == opcode::GET)
        .count();
    assert_eq!(gets, 3);
}

#[test]
fn reads_give_up_after_the_configured_retries() {
    let fake = Fake::start(1, true);
    let opts = ClientOptions {
        read_retries: 1,
        ..options()
    };
    let mut client = Client::connect(std::slice::from_ref(&fake.addr), opts).unwrap();
    fake.state.drop_gets.store(5, Ordering::SeqCst);
    let e = client.get(b"k").unwrap_err();
    assert!(e.is_connection_loss(), "{e}");
    let gets = fake
        .log()
        .iter()
        .filter(|(_, op, _)| *op == opcode::GET)
        .count();
    assert_eq!(gets, 2);
}

#[test]
fn put_is_not_retried_after_the_connection_drops() {
    let fake = Fake::start(1, true);
    let mut client = Client::connect(std::slice::from_ref(&fake.addr), options()).unwrap();
    fake.state.drop_puts.store(1, Ordering::SeqCst);
    let e = client.put(b"k", b"v", None).unwrap_err();
    assert!(e.is_connection_loss(), "{e}");
    let puts = fake
        .log()
        .iter()
        .filter(|(_, op, _)| *op == opcode::PUT)
        .count();
    assert_eq!(puts, 1);
    // The next call reconnects.
    client.put(b"k", b"v", None).unwrap();
}

#[test]
fn a_silent_server_times_out_within_the_deadline() {
    let fake = Fake::start(1, true);
    let opts = ClientOptions {
        timeout: Duration::from_millis(200),
        read_retries: 0,
        ..options()
    };
    let mut client = Client::connect(std::slice::from_ref(&fake.addr), opts).unwrap();
    fake.state.silent_gets.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let e = client.get(b"k").unwrap_err();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The timed-out connection was dropped; a new one answers.
    fake.state.silent_gets.store(false, Ordering::SeqCst);
    assert_eq!(client.get(b"k").unwrap(), None);
}

#[test]
fn the_session_version_is_the_highest_seen_and_is_sent() {
    let fake = Fake::start(2, true);
    let mut client = Client::connect(std::slice::from_ref(&fake.addr), options()).unwrap();
    assert_eq!(client.session(), WireVersion::ZERO);
    let v1 = client.put(b"a", b"1", None).unwrap();
    let v2 = client.put(b"b", b"2", None).unwrap();
    assert!(v2 > v1);
    assert_eq!(client.session(), v2);
    client.get(b"a").unwrap(); // older version: the session does not go back
    assert_eq!(client.session(), v2);
    client.exists(b"a").unwrap();
    let last = fake.log().last().unwrap().2;
    assert_eq!(last.session, v2);
}

#[test]
fn server_errors_are_reported_and_the_connection_stays_usable() {
    let fake = Fake::start(2, true);
    let mut client = Client::connect(std::slice::from_ref(&fake.addr), options()).unwrap();
    match client.get(b"err-1") {
        Err(ClientError::Server { status, message }) => {
            assert_eq!(status, Status::Overloaded);
            assert!(message.contains("on purpose"));
        }
        other => panic!("{other:?}"),
    }
    // One failing chunk of an MGET fails the call; the other answers are still read.
    let e = client.mget(&[b"a", b"err-2", b"b", b"c"]).unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Server {
                status: Status::Overloaded,
                ..
            }
        ),
        "{e}"
    );
    client.put(b"x", b"1", None).unwrap();
    assert_eq!(client.get(b"x").unwrap().unwrap().value, b"1");
}

#[test]
fn every_operation_decodes_its_own_answer() {
    let fake = Fake::start(2, true);
    let mut client = Client::connect(std::slice::from_ref(&fake.addr), options()).unwrap();
    client
        .put(b"x", b"1", Some(Duration::from_secs(60)))
        .unwrap();
    let mismatch = client
        .cas(b"x", CasExpectOwned::Absent, b"2", None)
        .unwrap();
    assert!(matches!(mismatch, CasOutcome::Mismatch { current: Some((ref v, _)) } if v == b"1"));
    let written = client
        .cas(b"y", CasExpectOwned::Value(b"old".to_vec()), b"2", None)
        .unwrap();
    assert_eq!(written, CasOutcome::Written(client.session()));
    assert_eq!(client.incr(b"n", 5).unwrap(), 5);
    assert_eq!(client.incr(b"n", -5).unwrap(), -5);
    assert_eq!(client.ttl(b"y").unwrap(), TtlState::NoExpiry);
    assert_eq!(client.ttl(b"zz").unwrap(), TtlState::Missing);
    assert!(client.exists(b"y").unwrap());
    assert!(!client.exists(b"zz").unwrap());
    client.delete(b"y").unwrap();
    assert!(client.get(b"y").unwrap().is_none());
    assert!(client.stats().unwrap().contains("# shard 1\nkeys 0\n"));
}

#[test]
fn oversize_keys_and_values_are_refused_before_sending() {
    let fake = Fake::start(1, true);
    let mut client = Client::connect(std::slice::from_ref(&fake.addr), options()).unwrap();
    let before = fake.log().len();
    let key = vec![0u8; KEY_SIZE_MAX + 1];
    assert!(matches!(
        client.get(&key),
        Err(ClientError::InvalidRequest(_))
    ));
    let value = vec![0u8; ringkv_net::limits::VALUE_SIZE_MAX + 1];
    assert!(matches!(
        client.put(b"k", &value, None),
        Err(ClientError::InvalidRequest(_))
    ));
    assert_eq!(fake.log().len(), before);
}

#[test]
fn a_connection_level_error_frame_is_reported_as_a_server_error() {
    // A server that answers every request with an id-0 UNSUPPORTED_VERSION and closes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().take(3) {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 64];
            let _ = stream.read(&mut buf);
            let mut out = Vec::new();
            let response = Response::Error {
                status: Status::UnsupportedVersion,
                message: b"version 1 only",
            };
            encode_response(0, &response, &mut out);
            let _ = stream.write_all(&out);
        }
    });
    let e = Client::connect(&[addr.to_string()], options()).unwrap_err();
    assert!(e.to_string().contains("UNSUPPORTED_VERSION"), "{e}");
}

#[test]
fn an_answer_with_an_unknown_id_is_a_protocol_error() {
    // Answers HELLO (shard ports announced where nothing listens, so the
    // client falls back to this port), then answers everything under a wrong id.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let gone = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let mut stream = stream.unwrap();
            thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                let mut filled = 0;
                loop {
                    let Ok(n) = stream.read(&mut buf[filled..]) else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    filled += n;
                    while let Ok(Decoded::Frame { frame: (h, r), len }) =
                        decode_request(&buf[..filled], 4096)
                    {
                        let mut out = Vec::new();
                        let response = match r {
                            Request::Hello => Response::Hello {
                                node_id: 1,
                                shard_count: 1,
                                base_port: gone - 1,
                                protocol_version: 1,
                            },
                            Request::Ring => Response::Error {
                                status: Status::UnknownOpcode,
                                message: b"unknown opcode",
                            },
                            _ => Response::NotFound,
                        };
                        let id = if matches!(r, Request::Hello | Request::Ring) {
                            h.id
                        } else {
                            h.id + 1000
                        };
                        encode_response(id, &response, &mut out);
                        let _ = stream.write_all(&out);
                        buf.copy_within(len..filled, 0);
                        filled -= len;
                    }
                }
            });
        }
    });
    let opts = ClientOptions {
        read_retries: 0,
        ..options()
    };
    let mut client = Client::connect(&[addr.to_string()], opts).unwrap();
    let e = client.get(b"k").unwrap_err();
    assert!(
        matches!(e, ClientError::Protocol(ref m) if m.contains("unexpected id")),
        "{e}"
    );
}

#[test]
fn batches_larger_than_one_frame_go_out_in_waves_and_keep_their_order() {
    let fake = Fake::start(1, true);
    let mut client = Client::connect(std::slice::from_ref(&fake.addr), options()).unwrap();
    let ks = keys(2500); // three MPUT/MGET frames on the single shard
    let pairs: Vec<(&[u8], &[u8])> = ks.iter().map(|k| (k.as_slice(), k.as_slice())).collect();
    client.mput(&pairs, None).unwrap();
    let refs: Vec<&[u8]> = ks.iter().rev().map(Vec::as_slice).collect();
    let got = client.mget(&refs).unwrap();
    for (key, value) in refs.iter().zip(&got) {
        assert_eq!(value.as_ref().map(|v| v.value.as_slice()), Some(*key));
    }
    let mputs = fake
        .log()
        .iter()
        .filter(|(_, op, _)| *op == opcode::MPUT)
        .count();
    assert_eq!(mputs, 3);
}
