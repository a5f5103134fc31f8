//! Codec tests of the client protocol: round trips of every request and
//! response (proptest), every truncation of sample frames is `Incomplete`,
//! bit flips and random garbage never panic, and each bad input gets its
//! status and resync.

use proptest::collection::vec;
use proptest::prelude::*;
use ringkv_cluster::ring::NodeInfo;
use ringkv_net::client_frame::{
    decode_request, decode_response, encode_request, encode_response, opcode, CasExpect,
    Consistency, Decoded, EntryList, KeyList, PairList, Request, RequestHeader, Response, Resync,
    ScanEntry, Status, TtlState, ValueList, WireVersion, PROTOCOL_VERSION,
};
use ringkv_net::client_frame::{encode_ring_response, kind, RingNodeList};
use ringkv_net::limits::{
    BATCH_KEYS_MAX, FRAME_SIZE_MAX_DEFAULT, KEY_SIZE_MAX, RING_NAME_SIZE_MAX, RING_NODES_MAX,
    RING_TOKENS_MAX, VALUE_SIZE_MAX,
};

const MAX: usize = FRAME_SIZE_MAX_DEFAULT;

// ---------------------------------------------------------------- owned models

#[derive(Debug, Clone)]
enum OwnedExpect {
    Absent,
    Version(WireVersion),
    Value(Vec<u8>),
}

#[derive(Debug, Clone)]
enum OwnedRequest {
    Ping,
    Hello,
    Stats,
    Ring,
    Get(Vec<u8>),
    Exists(Vec<u8>),
    Ttl(Vec<u8>),
    Delete(Vec<u8>),
    Put(Vec<u8>, Vec<u8>, u64),
    MGet(Vec<Vec<u8>>),
    MPut(Vec<(Vec<u8>, Vec<u8>)>, u64),
    Scan(Vec<u8>, Vec<u8>, bool, u32, Vec<u8>),
    Cas(Vec<u8>, OwnedExpect, Vec<u8>, u64),
    Incr(Vec<u8>, i64),
}

fn with_request<R>(o: &OwnedRequest, f: impl FnOnce(&Request<'_>) -> R) -> R {
    match o {
        OwnedRequest::Ping => f(&Request::Ping),
        OwnedRequest::Hello => f(&Request::Hello),
        OwnedRequest::Stats => f(&Request::Stats),
        OwnedRequest::Ring => f(&Request::Ring),
        OwnedRequest::Get(k) => f(&Request::Get { key: k }),
        OwnedRequest::Exists(k) => f(&Request::Exists { key: k }),
        OwnedRequest::Ttl(k) => f(&Request::Ttl { key: k }),
        OwnedRequest::Delete(k) => f(&Request::Delete { key: k }),
        OwnedRequest::Put(k, v, ttl_ms) => f(&Request::Put {
            key: k,
            value: v,
            ttl_ms: *ttl_ms,
        }),
        OwnedRequest::MGet(keys) => {
            let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            f(&Request::MGet {
                keys: KeyList::new(&refs),
            })
        }
        OwnedRequest::MPut(pairs, ttl_ms) => {
            let refs: Vec<(&[u8], &[u8])> = pairs
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
                .collect();
            f(&Request::MPut {
                pairs: PairList::new(&refs),
                ttl_ms: *ttl_ms,
            })
        }
        OwnedRequest::Scan(start, end, prefix, limit, after) => f(&Request::Scan {
            start,
            end,
            prefix: *prefix,
            limit: *limit,
            after,
        }),
        OwnedRequest::Cas(k, e, v, ttl_ms) => {
            let expect = match e {
                OwnedExpect::Absent => CasExpect::Absent,
                OwnedExpect::Version(v) => CasExpect::Version(*v),
                OwnedExpect::Value(v) => CasExpect::Value(v),
            };
            f(&Request::Cas {
                key: k,
                expect,
                value: v,
                ttl_ms: *ttl_ms,
            })
        }
        OwnedRequest::Incr(k, delta) => f(&Request::Incr {
            key: k,
            delta: *delta,
        }),
    }
}

#[derive(Debug, Clone)]
enum OwnedResponse {
    Pong,
    Hello(u32, u32, u16, u8),
    Value(Vec<u8>, WireVersion, u64),
    NotFound,
    Written(WireVersion),
    Values(Vec<Option<(Vec<u8>, WireVersion)>>),
    ScanPage(Vec<(Vec<u8>, Vec<u8>, WireVersion)>, Vec<u8>),
    CasMismatch(Option<(Vec<u8>, WireVersion)>),
    Integer(i64, WireVersion),
    Ttl(TtlState),
    Bool(bool),
    Stats(Vec<u8>),
    Ring(u64, u32, Vec<NodeInfo>),
    Error(Status, Vec<u8>),
}

fn with_response<R>(o: &OwnedResponse, f: impl FnOnce(&Response<'_>) -> R) -> R {
    match o {
        OwnedResponse::Pong => f(&Response::Pong),
        OwnedResponse::Hello(node_id, shard_count, base_port, protocol_version) => {
            f(&Response::Hello {
                node_id: *node_id,
                shard_count: *shard_count,
                base_port: *base_port,
                protocol_version: *protocol_version,
            })
        }
        OwnedResponse::Value(v, version, expires_at_ms) => f(&Response::Value {
            value: v,
            version: *version,
            expires_at_ms: *expires_at_ms,
        }),
        OwnedResponse::NotFound => f(&Response::NotFound),
        OwnedResponse::Written(version) => f(&Response::Written { version: *version }),
        OwnedResponse::Values(items) => {
            let refs: Vec<Option<(&[u8], WireVersion)>> = items
                .iter()
                .map(|i| i.as_ref().map(|(v, ver)| (v.as_slice(), *ver)))
                .collect();
            f(&Response::Values {
                items: ValueList::new(&refs),
            })
        }
        OwnedResponse::ScanPage(entries, next_after) => {
            let refs: Vec<ScanEntry<'_>> = entries
                .iter()
                .map(|(key, value, version)| ScanEntry {
                    key,
                    value,
                    version: *version,
                })
                .collect();
            f(&Response::ScanPage {
                entries: EntryList::new(&refs),
                next_after,
            })
        }
        OwnedResponse::CasMismatch(current) => f(&Response::CasMismatch {
            current: current.as_ref().map(|(v, ver)| (v.as_slice(), *ver)),
        }),
        OwnedResponse::Integer(value, version) => f(&Response::Integer {
            value: *value,
            version: *version,
        }),
        OwnedResponse::Ttl(state) => f(&Response::Ttl { state: *state }),
        OwnedResponse::Bool(b) => f(&Response::Bool(*b)),
        OwnedResponse::Stats(text) => f(&Response::Stats { text }),
        OwnedResponse::Ring(version, rf, nodes) => {
            // A RING node list exists only decoded from the wire: encode it
            // with the server's encoder and decode it back.
            let mut buf = Vec::new();
            encode_ring_response(0, *version, *rf, nodes, &mut buf);
            match decode_response(&buf, usize::MAX) {
                Ok(Decoded::Frame {
                    frame: (_, r @ Response::Ring { .. }),
                    ..
                }) => f(&r),
                other => panic!("encoded ring did not decode: {other:?}"),
            }
        }
        OwnedResponse::Error(status, message) => f(&Response::Error {
            status: *status,
            message,
        }),
    }
}

// ---------------------------------------------------------------- strategies

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => vec(any::<u8>(), 0..24),
        1 => vec(any::<u8>(), KEY_SIZE_MAX..=KEY_SIZE_MAX),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => vec(any::<u8>(), 0..64),
        1 => vec(any::<u8>(), 1000..5000),
    ]
}

fn version() -> impl Strategy<Value = WireVersion> {
    (any::<u64>(), any::<u32>()).prop_map(|(hlc, node)| WireVersion { hlc, node })
}

fn header() -> impl Strategy<Value = RequestHeader> {
    (
        any::<u64>(),
        prop_oneof![
            Just(Consistency::Default),
            Just(Consistency::One),
            Just(Consistency::Quorum),
            Just(Consistency::All)
        ],
        version(),
    )
        .prop_map(|(id, consistency, session)| RequestHeader {
            id,
            consistency,
            session,
        })
}

fn request() -> impl Strategy<Value = OwnedRequest> {
    let expect = prop_oneof![
        Just(OwnedExpect::Absent),
        version().prop_map(OwnedExpect::Version),
        value().prop_map(OwnedExpect::Value),
    ];
    prop_oneof![
        Just(OwnedRequest::Ping),
        Just(OwnedRequest::Hello),
        Just(OwnedRequest::Stats),
        Just(OwnedRequest::Ring),
        key().prop_map(OwnedRequest::Get),
        key().prop_map(OwnedRequest::Exists),
        key().prop_map(OwnedRequest::Ttl),
        key().prop_map(OwnedRequest::Delete),
        (key(), value(), any::<u64>()).prop_map(|(k, v, t)| OwnedRequest::Put(k, v, t)),
        vec(key(), 0..20).prop_map(OwnedRequest::MGet),
        (vec((key(), value()), 0..20), any::<u64>()).prop_map(|(p, t)| OwnedRequest::MPut(p, t)),
        (key(), key(), any::<bool>(), 1u32..=10_000, key())
            .prop_map(|(s, e, p, l, a)| OwnedRequest::Scan(s, e, p, l, a)),
        (key(), expect, value(), any::<u64>())
            .prop_map(|(k, e, v, t)| OwnedRequest::Cas(k, e, v, t)),
        (key(), any::<i64>()).prop_map(|(k, d)| OwnedRequest::Incr(k, d)),
    ]
}

fn ring_node() -> impl Strategy<Value = NodeInfo> {
    (
        any::<u32>(),
        "[a-z0-9.:-]{0,40}",
        any::<u16>(),
        1u32..=1024,
        "\\PC{0,8}",
        vec(any::<u64>(), 0..40),
    )
        .prop_map(|(id, host, port, shards, rack, tokens)| NodeInfo {
            id,
            host,
            port,
            shards,
            rack,
            tokens,
        })
}

fn response() -> impl Strategy<Value = OwnedResponse> {
    let ttl = prop_oneof![
        Just(TtlState::Missing),
        Just(TtlState::NoExpiry),
        any::<u64>().prop_map(TtlState::RemainingMs),
    ];
    prop_oneof![
        Just(OwnedResponse::Pong),
        (any::<u32>(), 1u32..=1024, any::<u16>(), any::<u8>())
            .prop_map(|(n, s, p, v)| OwnedResponse::Hello(n, s, p, v)),
        (value(), version(), any::<u64>()).prop_map(|(v, ver, e)| OwnedResponse::Value(v, ver, e)),
        Just(OwnedResponse::NotFound),
        version().prop_map(OwnedResponse::Written),
        vec(proptest::option::of((value(), version())), 0..20).prop_map(OwnedResponse::Values),
        (vec((key(), value(), version()), 0..20), key())
            .prop_map(|(e, n)| OwnedResponse::ScanPage(e, n)),
        proptest::option::of((value(), version())).prop_map(OwnedResponse::CasMismatch),
        (any::<i64>(), version()).prop_map(|(v, ver)| OwnedResponse::Integer(v, ver)),
        ttl.prop_map(OwnedResponse::Ttl),
        any::<bool>().prop_map(OwnedResponse::Bool),
        vec(any::<u8>(), 0..300).prop_map(OwnedResponse::Stats),
        (any::<u64>(), any::<u32>(), vec(ring_node(), 0..6))
            .prop_map(|(v, rf, nodes)| OwnedResponse::Ring(v, rf, nodes)),
        (
            proptest::sample::select(Status::ALL.to_vec()),
            vec(any::<u8>(), 0..=1024)
        )
            .prop_map(|(s, m)| OwnedResponse::Error(s, m)),
    ]
}

// ---------------------------------------------------------------- helpers

fn encode_req(header: &RequestHeader, o: &OwnedRequest) -> Vec<u8> {
    let mut out = Vec::new();
    with_request(o, |r| encode_request(header, r, &mut out));
    out
}

fn encode_resp(id: u64, o: &OwnedResponse) -> Vec<u8> {
    let mut out = Vec::new();
    with_response(o, |r| encode_response(id, r, &mut out));
    out
}

fn header0() -> RequestHeader {
    RequestHeader {
        id: 7,
        consistency: Consistency::Quorum,
        session: WireVersion { hlc: 99, node: 3 },
    }
}

fn sample_requests() -> Vec<Vec<u8>> {
    let h = header0();
    let samples = [
        OwnedRequest::Ping,
        OwnedRequest::Ring,
        OwnedRequest::Get(b"key".to_vec()),
        OwnedRequest::Put(b"k".to_vec(), b"value".to_vec(), 1000),
        OwnedRequest::MGet(vec![b"a".to_vec(), b"bb".to_vec(), vec![]]),
        OwnedRequest::MPut(
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"22".to_vec()),
            ],
            0,
        ),
        OwnedRequest::Scan(b"p".to_vec(), vec![], true, 100, b"pa".to_vec()),
        OwnedRequest::Cas(
            b"c".to_vec(),
            OwnedExpect::Value(b"old".to_vec()),
            b"new".to_vec(),
            5,
        ),
        OwnedRequest::Cas(
            b"c".to_vec(),
            OwnedExpect::Version(WireVersion { hlc: 1, node: 2 }),
            b"n".to_vec(),
            0,
        ),
        OwnedRequest::Incr(b"n".to_vec(), -5),
    ];
    samples.iter().map(|s| encode_req(&h, s)).collect()
}

fn sample_ring_nodes() -> Vec<NodeInfo> {
    vec![
        NodeInfo {
            id: 1,
            host: "10.0.0.1".into(),
            port: 7379,
            shards: 2,
            rack: "r1".into(),
            tokens: vec![5, 1 << 40, u64::MAX],
        },
        NodeInfo {
            id: 2,
            host: "node-2".into(),
            port: 7400,
            shards: 1,
            rack: String::new(),
            tokens: vec![7],
        },
    ]
}

fn sample_responses() -> Vec<Vec<u8>> {
    let v = WireVersion { hlc: 5, node: 1 };
    let samples = [
        OwnedResponse::Pong,
        OwnedResponse::Hello(1, 4, 7379, PROTOCOL_VERSION),
        OwnedResponse::Ring(42, 3, sample_ring_nodes()),
        OwnedResponse::Value(b"value".to_vec(), v, 0),
        OwnedResponse::Values(vec![Some((b"x".to_vec(), v)), None]),
        OwnedResponse::ScanPage(vec![(b"a".to_vec(), b"1".to_vec(), v)], b"a".to_vec()),
        OwnedResponse::CasMismatch(Some((b"cur".to_vec(), v))),
        OwnedResponse::Integer(-3, v),
        OwnedResponse::Ttl(TtlState::RemainingMs(500)),
        OwnedResponse::Stats(b"keys 3\n".to_vec()),
        OwnedResponse::Error(Status::KeyTooLarge, b"key too large".to_vec()),
    ];
    samples.iter().map(|s| encode_resp(42, s)).collect()
}

fn request_error(buf: &[u8]) -> ringkv_net::client_frame::RequestError {
    match decode_request(buf, MAX) {
        Err(e) => e,
        Ok(d) => panic!("expected an error, got {d:?}"),
    }
}

/// A request frame with a hand-written body (for bad-input cases).
fn raw_request(op: u8, id: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&((24 + body.len()) as u32).to_le_bytes());
    out.push(PROTOCOL_VERSION);
    out.push(op);
    out.extend_from_slice(&id.to_le_bytes());
    out.push(0); // consistency
    out.push(0); // flags
    out.extend_from_slice(&[0; 12]); // session
    out.extend_from_slice(body);
    out
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_request_round_trips(h in header(), o in request(), trailing in vec(any::<u8>(), 0..8)) {
        let mut buf = encode_req(&h, &o);
        let len = buf.len();
        buf.extend_from_slice(&trailing);
        let decoded = decode_request(&buf, MAX);
        with_request(&o, |r| {
            prop_assert_eq!(decoded, Ok(Decoded::Frame { frame: (h, *r), len }));
            Ok(())
        })?;
    }

    #[test]
    fn every_response_round_trips(id in any::<u64>(), o in response(), trailing in vec(any::<u8>(), 0..8)) {
        let mut buf = encode_resp(id, &o);
        let len = buf.len();
        buf.extend_from_slice(&trailing);
        let decoded = decode_response(&buf, MAX);
        with_response(&o, |r| {
            prop_assert_eq!(decoded, Ok(Decoded::Frame { frame: (id, *r), len }));
            Ok(())
        })?;
    }

    #[test]
    fn random_garbage_never_panics_and_never_overreads(buf in vec(any::<u8>(), 0..512)) {
        if let Ok(Decoded::Frame { len, .. }) = decode_request(&buf, MAX) {
            prop_assert!(len <= buf.len());
        }
        if let Ok(Decoded::Frame { len, .. }) = decode_response(&buf, MAX) {
            prop_assert!(len <= buf.len());
        }
    }

    #[test]
    fn garbage_after_a_valid_header_never_panics_and_decodes_canonically(
        op in prop_oneof![any::<u8>(), 0x10u8..=0x1A],
        body in vec(any::<u8>(), 0..256),
    ) {
        let buf = raw_request(op, 1, &body);
        // Whatever decodes re-encodes to a frame that decodes the same (the
        // property the fuzz targets check on unstructured input).
        if let Ok(Decoded::Frame { frame: (h, r), .. }) = decode_request(&buf, MAX) {
            let mut out = Vec::new();
            encode_request(&h, &r, &mut out);
            prop_assert_eq!(decode_request(&out, MAX), Ok(Decoded::Frame { frame: (h, r), len: out.len() }));
        }
        if let Ok(Decoded::Frame { frame: (id, r), .. }) = decode_response(&buf, MAX) {
            let mut out = Vec::new();
            encode_response(id, &r, &mut out);
            prop_assert_eq!(decode_response(&out, MAX), Ok(Decoded::Frame { frame: (id, r), len: out.len() }));
        }
    }
}

// ---------------------------------------------------------------- truncation, bit flips

#[test]
fn every_truncation_of_a_sample_request_is_incomplete() {
    for frame in sample_requests() {
        for n in 0..frame.len() {
            match decode_request(&frame[..n], MAX) {
                Ok(Decoded::Incomplete { needed }) => {
                    assert!(
                        needed >= 1 && n + needed <= frame.len(),
                        "n={n} needed={needed}"
                    );
                }
                other => panic!("truncation to {n} of {} bytes gave {other:?}", frame.len()),
            }
        }
    }
}

#[test]
fn every_truncation_of_a_sample_response_is_incomplete() {
    for frame in sample_responses() {
        for n in 0..frame.len() {
            match decode_response(&frame[..n], MAX) {
                Ok(Decoded::Incomplete { needed }) => {
                    assert!(
                        needed >= 1 && n + needed <= frame.len(),
                        "n={n} needed={needed}"
                    );
                }
                other => panic!("truncation to {n} of {} bytes gave {other:?}", frame.len()),
            }
        }
    }
}

#[test]
fn every_bit_flip_of_sample_frames_never_panics() {
    for frame in sample_requests().into_iter().chain(sample_responses()) {
        for bit in 0..frame.len() * 8 {
            let mut f = frame.clone();
            f[bit / 8] ^= 1 << (bit % 8);
            if let Ok(Decoded::Frame { len, .. }) = decode_request(&f, MAX) {
                assert!(len <= f.len());
            }
            if let Ok(Decoded::Frame { len, .. }) = decode_response(&f, MAX) {
                assert!(len <= f.len());
            }
        }
    }
}

#[test]
fn pipelined_requests_decode_one_after_another() {
    let mut buf = Vec::new();
    for frame in sample_requests() {
        buf.extend_from_slice(&frame);
    }
    let mut at = 0;
    let mut count = 0;
    while at < buf.len() {
        match decode_request(&buf[at..], MAX) {
            Ok(Decoded::Frame { len, .. }) => at += len,
            other => panic!("at {at}: {other:?}"),
        }
        count += 1;
    }
    assert_eq!(count, sample_requests().len());
}

// ---------------------------------------------------------------- bad input, one status each

#[test]
fn unknown_opcode_is_skipped_with_its_length() {
    let frame = raw_request(0x7E, 5, b"whatever");
    let e = request_error(&frame);
    assert_eq!(e.status, Status::UnknownOpcode);
    assert_eq!(e.id, Some(5));
    assert_eq!(e.resync, Resync::Skip(frame.len()));
}

#[test]
fn key_over_the_limit_is_key_too_large() {
    let mut out = Vec::new();
    let key = vec![b'k'; KEY_SIZE_MAX + 1];
    encode_request(&header0(), &Request::Get { key: &key }, &mut out);
    let e = request_error(&out);
    assert_eq!(e.status, Status::KeyTooLarge);
    assert_eq!(e.resync, Resync::Skip(out.len()));
    assert!(e.message.contains("1025"), "{}", e.message);
}

#[test]
fn key_of_exactly_the_limit_is_accepted() {
    let mut out = Vec::new();
    let key = vec![b'k'; KEY_SIZE_MAX];
    encode_request(&header0(), &Request::Get { key: &key }, &mut out);
    assert!(matches!(
        decode_request(&out, MAX),
        Ok(Decoded::Frame { .. })
    ));
}

#[test]
fn value_over_the_limit_is_value_too_large() {
    let mut out = Vec::new();
    let value = vec![0u8; VALUE_SIZE_MAX + 1];
    encode_request(
        &header0(),
        &Request::Put {
            key: b"k",
            value: &value,
            ttl_ms: 0,
        },
        &mut out,
    );
    let e = request_error(&out);
    assert_eq!(e.status, Status::ValueTooLarge);
    assert_eq!(e.resync, Resync::Skip(out.len()));
}

#[test]
fn value_of_exactly_the_limit_is_accepted() {
    let mut out = Vec::new();
    let value = vec![0u8; VALUE_SIZE_MAX];
    encode_request(
        &header0(),
        &Request::Put {
            key: b"k",
            value: &value,
            ttl_ms: 0,
        },
        &mut out,
    );
    assert!(matches!(
        decode_request(&out, MAX),
        Ok(Decoded::Frame { .. })
    ));
}

#[test]
fn oversize_frame_is_refused_from_its_header_alone() {
    let declared = (MAX as u32) - 3; // total = MAX + 1
    let e = request_error(&declared.to_le_bytes());
    assert_eq!(e.status, Status::FrameTooLarge);
    assert_eq!(e.resync, Resync::Close);
    assert_eq!(e.id, None);
    let e = decode_response(&u32::MAX.to_le_bytes(), MAX)
        .err()
        .map(|e| e.status());
    assert_eq!(e, Some(Status::FrameTooLarge));
}

#[test]
fn frame_of_exactly_the_configured_max_is_accepted_from_the_header() {
    let declared = (1000u32 - 4).to_le_bytes();
    assert!(matches!(
        decode_request(&declared, 1000),
        Ok(Decoded::Incomplete { .. })
    ));
    let over = decode_request(&[declared[0] + 1, declared[1], 0, 0], 1000)
        .err()
        .map(|e| e.status);
    assert_eq!(over, Some(Status::FrameTooLarge));
}

#[test]
fn unknown_protocol_version_closes_the_stream() {
    let mut frame = raw_request(opcode::PING, 1, &[]);
    frame[4] = 2;
    let e = request_error(&frame[..5]);
    assert_eq!(e.status, Status::UnsupportedVersion);
    assert_eq!(e.resync, Resync::Close);
}

#[test]
fn frame_shorter_than_a_header_closes_the_stream() {
    let mut frame = raw_request(opcode::PING, 1, &[]);
    frame[0] = 10;
    let e = request_error(&frame);
    assert_eq!(e.status, Status::BadRequest);
    assert_eq!(e.resync, Resync::Close);
}

#[test]
fn trailing_bytes_after_a_body_are_a_bad_request() {
    let mut body = Vec::new();
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(b"kX");
    let frame = raw_request(opcode::GET, 3, &body);
    let e = request_error(&frame);
    assert_eq!(e.status, Status::BadRequest);
    assert_eq!(e.resync, Resync::Skip(frame.len()));
}

#[test]
fn key_length_past_the_frame_end_is_a_bad_request() {
    let mut body = Vec::new();
    body.extend_from_slice(&100u16.to_le_bytes());
    body.extend_from_slice(b"short");
    let frame = raw_request(opcode::GET, 3, &body);
    let e = request_error(&frame);
    assert_eq!(e.status, Status::BadRequest);
    assert_eq!(e.id, Some(3));
}

#[test]
fn too_many_keys_in_mget_is_refused_before_iterating() {
    let keys: Vec<&[u8]> = vec![b"k"; BATCH_KEYS_MAX + 1];
    let mut out = Vec::new();
    encode_request(
        &header0(),
        &Request::MGet {
            keys: KeyList::new(&keys),
        },
        &mut out,
    );
    assert_eq!(request_error(&out).status, Status::TooManyKeys);
    let frame = raw_request(opcode::MGET, 1, &u32::MAX.to_le_bytes());
    assert_eq!(request_error(&frame).status, Status::TooManyKeys);
    let frame = raw_request(opcode::MGET, 1, &1000u32.to_le_bytes());
    assert_eq!(request_error(&frame).status, Status::BadRequest);
}

#[test]
fn unknown_consistency_and_nonzero_flags_are_bad_requests() {
    let mut frame = raw_request(opcode::PING, 1, &[]);
    frame[14] = 9;
    assert_eq!(request_error(&frame).status, Status::BadRequest);
    let mut frame = raw_request(opcode::PING, 1, &[]);
    frame[15] = 1;
    assert_eq!(request_error(&frame).status, Status::BadRequest);
}

#[test]
fn scan_limit_outside_its_range_is_a_bad_request() {
    for limit in [0u32, 10_001] {
        let mut out = Vec::new();
        let req = Request::Scan {
            start: b"",
            end: b"",
            prefix: false,
            limit,
            after: b"",
        };
        encode_request(&header0(), &req, &mut out);
        assert_eq!(request_error(&out).status, Status::BadRequest);
    }
}

#[test]
fn decr_decodes_as_incr_by_the_negated_delta() {
    let mut body = Vec::new();
    body.extend_from_slice(&1u16.to_le_bytes());
    body.push(b'n');
    body.extend_from_slice(&7i64.to_le_bytes());
    let frame = raw_request(opcode::DECR, 1, &body);
    match decode_request(&frame, MAX) {
        Ok(Decoded::Frame {
            frame: (_, req), ..
        }) => assert_eq!(
            req,
            Request::Incr {
                key: b"n",
                delta: -7
            }
        ),
        other => panic!("{other:?}"),
    }
    let mut body = body[..3].to_vec();
    body.extend_from_slice(&i64::MIN.to_le_bytes());
    assert_eq!(
        request_error(&raw_request(opcode::DECR, 1, &body)).status,
        Status::Overflow
    );
}

#[test]
fn hello_with_zero_shards_is_refused_by_the_client_decoder() {
    let mut out = Vec::new();
    let hello = Response::Hello {
        node_id: 1,
        shard_count: 0,
        base_port: 1,
        protocol_version: 1,
    };
    encode_response(1, &hello, &mut out);
    assert!(decode_response(&out, MAX).is_err());
}

#[test]
fn unknown_status_codes_decode_as_unknown() {
    let mut out = Vec::new();
    encode_response(
        1,
        &Response::Error {
            status: Status::Internal,
            message: b"m",
        },
        &mut out,
    );
    out[14] = 0xEE; // status low byte
    match decode_response(&out, MAX) {
        Ok(Decoded::Frame {
            frame: (_, Response::Error { status, message }),
            ..
        }) => {
            assert_eq!(status, Status::Unknown);
            assert_eq!(message, b"m");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn long_error_messages_are_truncated_not_refused() {
    let mut out = Vec::new();
    let message = vec![b'x'; 5000];
    encode_response(
        1,
        &Response::Error {
            status: Status::Internal,
            message: &message,
        },
        &mut out,
    );
    match decode_response(&out, MAX) {
        Ok(Decoded::Frame {
            frame: (_, Response::Error { message, .. }),
            ..
        }) => assert_eq!(message.len(), 1024),
        other => panic!("{other:?}"),
    }
}

#[test]
fn decoded_keys_borrow_the_receive_buffer() {
    let mut out = Vec::new();
    encode_request(&header0(), &Request::Get { key: b"zero-copy" }, &mut out);
    if let Ok(Decoded::Frame {
        frame: (_, Request::Get { key }),
        ..
    }) = decode_request(&out, MAX)
    {
        let range = out.as_ptr_range();
        assert!(range.contains(&key.as_ptr()));
    } else {
        panic!("GET did not decode");
    }
}

#[test]
fn the_put_example_of_the_spec_encodes_byte_for_byte() {
    // docs/protocol.md, section 11.
    let header = RequestHeader {
        id: 1,
        consistency: Consistency::One,
        session: WireVersion::ZERO,
    };
    let mut out = Vec::new();
    encode_request(
        &header,
        &Request::Put {
            key: b"k",
            value: b"v",
            ttl_ms: 0,
        },
        &mut out,
    );
    let expected: Vec<u8> = [
        &[0x28, 0, 0, 0, 1, 0x14][..],
        &[1, 0, 0, 0, 0, 0, 0, 0],
        &[1, 0],
        &[0; 12],
        &[0; 8],
        &[1, 0, b'k'],
        &[1, 0, 0, 0, b'v'],
    ]
    .concat();
    assert_eq!(out, expected);
    let mut answer = Vec::new();
    encode_response(
        1,
        &Response::Written {
            version: WireVersion {
                hlc: 0x10000,
                node: 1,
            },
        },
        &mut answer,
    );
    let expected: Vec<u8> = [
        &[0x16, 0, 0, 0, 1, 0x05][..],
        &[1, 0, 0, 0, 0, 0, 0, 0],
        &[0, 0, 1, 0, 0, 0, 0, 0],
        &[1, 0, 0, 0],
    ]
    .concat();
    assert_eq!(answer, expected);
}

// ---------------------------------------------------------------- RING

/// A response frame of kind `k` with `body` (for hand-made bad bodies).
fn raw_response(k: u8, id: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&((10 + body.len()) as u32).to_le_bytes());
    out.push(PROTOCOL_VERSION);
    out.push(k);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn decoded_ring(frame: &[u8]) -> (u64, u32, RingNodeList<'_>) {
    match decode_response(frame, MAX) {
        Ok(Decoded::Frame {
            frame:
                (
                    _,
                    Response::Ring {
                        version,
                        replication_factor,
                        nodes,
                    },
                ),
            ..
        }) => (version, replication_factor, nodes),
        other => panic!("expected a ring, got {other:?}"),
    }
}

fn ring_error(frame: &[u8]) -> String {
    match decode_response(frame, MAX) {
        Err(e) => e.to_string(),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// One node's bytes on the wire, with counts chosen by the caller.
fn raw_ring_node(
    id: u32,
    shards: u32,
    host: &[u8],
    rack: &[u8],
    token_count: u32,
    tokens: &[u64],
) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&id.to_le_bytes());
    b.extend_from_slice(&7379u16.to_le_bytes());
    b.extend_from_slice(&shards.to_le_bytes());
    b.extend_from_slice(&(host.len() as u16).to_le_bytes());
    b.extend_from_slice(host);
    b.extend_from_slice(&(rack.len() as u16).to_le_bytes());
    b.extend_from_slice(rack);
    b.extend_from_slice(&token_count.to_le_bytes());
    for t in tokens {
        b.extend_from_slice(&t.to_le_bytes());
    }
    b
}

fn raw_ring(node_count: u32, nodes: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&9u64.to_le_bytes());
    body.extend_from_slice(&3u32.to_le_bytes());
    body.extend_from_slice(&node_count.to_le_bytes());
    body.extend_from_slice(nodes);
    raw_response(kind::RING, 1, &body)
}

#[test]
fn a_ring_answer_decodes_zero_copy_back_to_its_nodes() {
    let nodes = sample_ring_nodes();
    let mut frame = Vec::new();
    encode_ring_response(5, 42, 3, &nodes, &mut frame);
    let (version, rf, list) = decoded_ring(&frame);
    assert_eq!((version, rf, list.len()), (42, 3, 2));
    let first = list.iter().next().unwrap();
    assert_eq!(first.host, b"10.0.0.1");
    assert!(
        frame.as_ptr_range().contains(&first.host.as_ptr()),
        "host borrows the frame"
    );
    assert_eq!(
        first.tokens.iter().collect::<Vec<_>>(),
        vec![5, 1 << 40, u64::MAX]
    );
    assert_eq!(list.to_node_infos().unwrap(), nodes);
}

#[test]
fn a_one_node_ring_is_what_a_standalone_node_answers() {
    let node = NodeInfo {
        id: 0,
        host: "127.0.0.1".into(),
        port: 7379,
        shards: 4,
        rack: String::new(),
        tokens: ringkv_cluster::ring::default_tokens(0, 256),
    };
    let ring = ringkv_cluster::ring::Ring::new(vec![node.clone()], 3).unwrap();
    let mut frame = Vec::new();
    encode_ring_response(1, ring.version(), 3, ring.nodes(), &mut frame);
    let (version, rf, list) = decoded_ring(&frame);
    let again = ringkv_cluster::ring::Ring::new(list.to_node_infos().unwrap(), rf).unwrap();
    assert_eq!(again.version(), version);
    assert_eq!(again.nodes(), &[node]);
}

#[test]
fn a_ring_with_too_many_nodes_is_refused_before_iterating() {
    let e = ring_error(&raw_ring(RING_NODES_MAX as u32 + 1, &[0; 64]));
    assert!(e.contains(&format!("{}", RING_NODES_MAX + 1)), "{e}");
    // A count within the limit but beyond the bytes present.
    let e = ring_error(&raw_ring(100, &raw_ring_node(1, 1, b"h", b"", 0, &[])));
    assert!(e.contains("ring node count"), "{e}");
}

#[test]
fn a_node_with_too_many_tokens_or_tokens_past_the_end_is_refused() {
    let node = raw_ring_node(1, 1, b"h", b"", RING_TOKENS_MAX as u32 + 1, &[1, 2]);
    let e = ring_error(&raw_ring(1, &node));
    assert!(e.contains(&format!("{}", RING_TOKENS_MAX + 1)), "{e}");
    let node = raw_ring_node(1, 1, b"h", b"", 3, &[1, 2]);
    let e = ring_error(&raw_ring(1, &node));
    assert!(e.contains("token count"), "{e}");
}

#[test]
fn ring_names_over_the_limit_or_not_utf8_and_zero_shards_are_refused() {
    let long = vec![b'h'; RING_NAME_SIZE_MAX + 1];
    let e = ring_error(&raw_ring(1, &raw_ring_node(1, 1, &long, b"", 1, &[1])));
    assert!(e.contains(&format!("{}", RING_NAME_SIZE_MAX + 1)), "{e}");
    let e = ring_error(&raw_ring(
        1,
        &raw_ring_node(1, 1, b"h", &[0xFF, 0xFE], 1, &[1]),
    ));
    assert!(e.contains("UTF-8"), "{e}");
    let e = ring_error(&raw_ring(1, &raw_ring_node(1, 0, b"h", b"", 1, &[1])));
    assert!(e.contains("shard count 0"), "{e}");
    let exact = vec![b'h'; RING_NAME_SIZE_MAX];
    let frame = raw_ring(1, &raw_ring_node(1, 1, &exact, b"", 1, &[1]));
    let (_, _, list) = decoded_ring(&frame);
    assert_eq!(list.len(), 1);
}

#[test]
fn trailing_bytes_after_a_ring_are_refused() {
    let mut nodes = raw_ring_node(1, 1, b"h", b"", 1, &[1]);
    nodes.push(0);
    let e = ring_error(&raw_ring(1, &nodes));
    assert!(e.contains("trailing"), "{e}");
}

#[test]
fn the_ring_request_is_opcode_4_with_an_empty_body_and_is_idempotent() {
    assert_eq!(opcode::RING, 0x04);
    assert_eq!(kind::RING, 0x0D);
    assert!(Request::Ring.is_idempotent());
    let mut out = Vec::new();
    encode_request(&header0(), &Request::Ring, &mut out);
    assert_eq!(out.len(), ringkv_net::limits::REQUEST_HEADER_SIZE);
    assert!(matches!(
        decode_request(&out, MAX),
        Ok(Decoded::Frame {
            frame: (_, Request::Ring),
            ..
        })
    ));
}
