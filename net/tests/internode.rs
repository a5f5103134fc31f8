//! Codec tests of internode frames: round trips of every message kind, frames
//! split at every byte, every truncation, checksum and bit-flip faults (with
//! and without a recomputed checksum), oversize and misaligned input. Every
//! fault is an error or "incomplete", never a panic or a wrong value.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ringkv_net::internode::{
    decode_frame, encode_frame, Batch, FrameBuffer, Hello, InternodeError, Message, WireRecord,
    FRAME_HEADER_SIZE, PREFACE,
};
use ringkv_net::limits::INTERNODE_FRAME_SIZE_MAX;

fn record(value: Option<&[u8]>, hlc: u64) -> WireRecord {
    WireRecord {
        value: value.map(<[u8]>::to_vec),
        hlc,
        node: 7,
        expires_at_ms: 1_700_000_000_000,
    }
}

fn hello() -> Hello {
    Hello {
        node_id: 3,
        shards: 2,
        shard: 1,
        host: "127.0.0.1".into(),
        port: 7379,
        rack: "r1".into(),
        tokens: (0..256u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect(),
        replication_factor: 3,
        ring_version: 42,
    }
}

/// One message of every kind, with every optional field both ways.
fn every_message() -> Vec<Message> {
    vec![
        Message::Hello(hello()),
        Message::Write {
            op: 1,
            key: b"key".to_vec(),
            record: record(Some(b"value"), 5 << 16 | 3),
        },
        Message::Write {
            op: 2,
            key: Vec::new(),
            record: record(None, u64::MAX),
        },
        Message::WriteAck { op: 1, error: None },
        Message::WriteAck {
            op: 2,
            error: Some("storage error: disk full".into()),
        },
        Message::Read {
            op: 3,
            key: vec![0xFF; 1024],
        },
        Message::ReadReply {
            op: 3,
            record: Some(record(Some(&[0u8; 300]), 9)),
            error: None,
        },
        Message::ReadReply {
            op: 4,
            record: Some(record(None, 10)),
            error: None,
        },
        Message::ReadReply {
            op: 5,
            record: None,
            error: Some("timeout".into()),
        },
    ]
}

fn batch(messages: Vec<Message>) -> Batch {
    Batch {
        from_node: 1,
        from_shard: 0,
        clock: 1_700_000_000_000 << 16 | 17,
        messages,
    }
}

fn encode(b: &Batch) -> Vec<u8> {
    let mut out = Vec::new();
    let n = encode_frame(b, &mut out).expect("encode");
    assert_eq!(n, out.len());
    out
}

/// Copies `bytes` into a fresh aligned buffer.
fn aligned(bytes: &[u8]) -> FrameBuffer {
    let mut buf = FrameBuffer::new();
    buf.spare(bytes.len())[..bytes.len()].copy_from_slice(bytes);
    buf.filled(bytes.len());
    buf
}

/// Decodes every frame of `buf` into owned batches.
fn decode_all(buf: &mut FrameBuffer) -> Result<Vec<Batch>, InternodeError> {
    let mut out = Vec::new();
    while let Some((archived, len)) = decode_frame(buf.bytes())? {
        out.push(Batch::from_archived(archived)?);
        buf.consume(len);
    }
    Ok(out)
}

#[test]
fn every_message_kind_round_trips_alone_and_together() {
    for m in every_message() {
        let b = batch(vec![m]);
        let mut buf = aligned(&encode(&b));
        assert_eq!(decode_all(&mut buf).expect("decode"), vec![b]);
        assert!(buf.is_empty());
    }
    let b = batch(every_message());
    let mut buf = aligned(&encode(&b));
    assert_eq!(decode_all(&mut buf).expect("decode"), vec![b]);
    let empty = batch(Vec::new());
    let mut buf = aligned(&encode(&empty));
    assert_eq!(decode_all(&mut buf).expect("decode"), vec![empty]);
}

#[test]
fn archived_batch_is_read_in_place_without_copying() {
    let b = batch(every_message());
    let frame = encode(&b);
    let buf = aligned(&frame);
    let (archived, len) = decode_frame(buf.bytes()).expect("valid").expect("complete");
    assert_eq!(len, frame.len());
    assert_eq!(archived.from_node.to_native(), 1);
    assert_eq!(archived.clock.to_native(), b.clock);
    assert_eq!(archived.messages.len(), b.messages.len());
    let range = buf.bytes().as_ptr_range();
    match &archived.messages[1] {
        ringkv_net::internode::ArchivedMessage::Write { op, key, record } => {
            assert_eq!(op.to_native(), 1);
            assert_eq!(key.as_slice(), b"key");
            assert!(
                range.contains(&key.as_slice().as_ptr()),
                "key points into the buffer"
            );
            let value = record.value.as_ref().expect("value");
            assert_eq!(value.as_slice(), b"value");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn frames_are_multiples_of_sixteen_and_start_with_the_length_and_crc() {
    for m in every_message() {
        let frame = encode(&batch(vec![m]));
        assert_eq!(frame.len() % 16, 0);
        let archive_len = u32::from_le_bytes(frame[0..4].try_into().expect("4")) as usize;
        let crc = u32::from_le_bytes(frame[4..8].try_into().expect("4"));
        assert!(archive_len + FRAME_HEADER_SIZE <= frame.len());
        assert!(frame.len() - archive_len - FRAME_HEADER_SIZE < 16);
        assert_eq!(
            crc,
            crc32c::crc32c(&frame[FRAME_HEADER_SIZE..FRAME_HEADER_SIZE + archive_len])
        );
        assert_eq!(&frame[8..16], &[0u8; 8]);
    }
}

#[test]
fn encoding_after_unaligned_bytes_still_yields_a_decodable_frame() {
    let b = batch(every_message());
    let mut out = vec![0xAB; 5];
    let n = encode_frame(&b, &mut out).expect("encode");
    assert_eq!(out.len(), 5 + n);
    let mut buf = aligned(&out[5..]);
    assert_eq!(decode_all(&mut buf).expect("decode"), vec![b]);
}

#[test]
fn several_frames_split_at_every_byte_decode_in_order() {
    let batches: Vec<Batch> = every_message()
        .into_iter()
        .map(|m| batch(vec![m]))
        .collect();
    let mut stream = Vec::new();
    for b in &batches {
        encode_frame(b, &mut stream).expect("encode");
    }
    for split in 0..=stream.len() {
        let mut buf = FrameBuffer::new();
        let mut got = Vec::new();
        for part in [&stream[..split], &stream[split..]] {
            buf.spare(part.len())[..part.len()].copy_from_slice(part);
            buf.filled(part.len());
            got.extend(decode_all(&mut buf).expect("decode"));
        }
        assert_eq!(got, batches, "split at {split}");
        assert!(buf.is_empty());
    }
}

#[test]
fn a_stream_fed_in_small_reads_after_the_preface_decodes() {
    let batches: Vec<Batch> = every_message()
        .into_iter()
        .map(|m| batch(vec![m]))
        .collect();
    let mut stream = PREFACE.to_vec();
    for b in &batches {
        encode_frame(b, &mut stream).expect("encode");
    }
    for chunk in [1, 3, 7, 16, 100, 4096] {
        let mut buf = FrameBuffer::new();
        let mut got = Vec::new();
        let mut preface_seen = false;
        for part in stream.chunks(chunk) {
            buf.spare(part.len())[..part.len()].copy_from_slice(part);
            buf.filled(part.len());
            if !preface_seen {
                if buf.len() < PREFACE.len() {
                    continue;
                }
                assert_eq!(&buf.bytes()[..PREFACE.len()], &PREFACE);
                buf.consume(PREFACE.len());
                preface_seen = true;
            }
            got.extend(decode_all(&mut buf).expect("decode"));
        }
        assert_eq!(got, batches, "chunk {chunk}");
    }
}

#[test]
fn every_truncation_is_incomplete() {
    let frame = encode(&batch(every_message()));
    let buf = aligned(&frame);
    for len in 0..frame.len() {
        match decode_frame(&buf.bytes()[..len]) {
            Ok(None) => {}
            other => panic!("truncation to {len} bytes gave {other:?}"),
        }
    }
}

#[test]
fn a_changed_archive_byte_is_a_checksum_mismatch() {
    let frame = encode(&batch(every_message()));
    let mut bad = frame.clone();
    bad[FRAME_HEADER_SIZE + 3] ^= 0x40;
    let buf = aligned(&bad);
    match decode_frame(buf.bytes()) {
        Err(InternodeError::ChecksumMismatch { offset, .. }) => {
            assert_eq!(offset, FRAME_HEADER_SIZE);
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
}

#[test]
fn every_single_bit_flip_is_refused_or_incomplete() {
    let frame = encode(&batch(every_message()));
    for bit in 0..frame.len() * 8 {
        let mut bad = frame.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let buf = aligned(&bad);
        let decoded = decode_frame(buf.bytes());
        assert!(
            !matches!(decoded, Ok(Some(_))),
            "flip of bit {bit} was accepted"
        );
    }
}

/// Flips bits in the archive and recomputes the checksum, so bytecheck is the
/// only defence: the decoder must never panic, and whatever it accepts must be
/// a value that deserializes.
#[test]
fn flips_behind_a_recomputed_checksum_never_panic() {
    let seed: u64 = rand::random();
    let mut rng = SmallRng::seed_from_u64(seed);
    let frame = encode(&batch(every_message()));
    let archive_len = u32::from_le_bytes(frame[0..4].try_into().expect("4")) as usize;
    let archive = FRAME_HEADER_SIZE..FRAME_HEADER_SIZE + archive_len;
    let mut accepted = 0;
    let mut check = |bad: &mut Vec<u8>| {
        let crc = crc32c::crc32c(&bad[archive.clone()]);
        bad[4..8].copy_from_slice(&crc.to_le_bytes());
        let buf = aligned(bad);
        if let Ok(Some((archived, _))) = decode_frame(buf.bytes()) {
            if let Err(e) = Batch::from_archived(archived) {
                panic!("seed {seed}: an accepted archive does not deserialize: {e}");
            }
            accepted += 1;
        }
    };
    for bit in 0..archive_len * 8 {
        let mut bad = frame.clone();
        bad[FRAME_HEADER_SIZE + bit / 8] ^= 1 << (bit % 8);
        check(&mut bad);
    }
    for _ in 0..20_000 {
        let mut bad = frame.clone();
        for _ in 0..rng.gen_range(1..8) {
            let i = rng.gen_range(archive.clone());
            bad[i] = rng.gen();
        }
        check(&mut bad);
    }
    println!("seed {seed}: {accepted} corrupted archives were valid values");
}

#[test]
fn random_garbage_never_panics() {
    let seed: u64 = rand::random();
    let mut rng = SmallRng::seed_from_u64(seed);
    for _ in 0..20_000 {
        let len = rng.gen_range(0..512);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if len >= 16 && rng.gen_bool(0.5) {
            // A plausible header, so the crc and bytecheck paths are reached.
            let archive_len = (len - 16) as u32 & !0xF;
            bytes[0..4].copy_from_slice(&archive_len.to_le_bytes());
            bytes[8..16].fill(0);
            let end = 16 + archive_len as usize;
            let crc = crc32c::crc32c(&bytes[16..end]);
            bytes[4..8].copy_from_slice(&crc.to_le_bytes());
        }
        let buf = aligned(&bytes);
        if let Ok(Some((archived, _))) = decode_frame(buf.bytes()) {
            Batch::from_archived(archived).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
    }
}

#[test]
fn an_oversize_length_is_refused_from_the_first_four_bytes() {
    let len = (INTERNODE_FRAME_SIZE_MAX + 1) as u32;
    let buf = aligned(&len.to_le_bytes());
    match decode_frame(buf.bytes()) {
        Err(InternodeError::TooLarge { size, size_max, .. }) => {
            assert_eq!(size, INTERNODE_FRAME_SIZE_MAX + 1);
            assert_eq!(size_max, INTERNODE_FRAME_SIZE_MAX);
        }
        other => panic!("expected too large, got {other:?}"),
    }
    let buf = aligned(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_frame(buf.bytes()),
        Err(InternodeError::TooLarge { .. })
    ));
}

#[test]
fn an_oversize_batch_is_not_encoded() {
    let b = batch(vec![Message::Write {
        op: 1,
        key: b"k".to_vec(),
        record: record(Some(&vec![0u8; INTERNODE_FRAME_SIZE_MAX]), 1),
    }]);
    let mut out = vec![1, 2, 3];
    match encode_frame(&b, &mut out) {
        Err(InternodeError::TooLarge { size_max, .. }) => {
            assert_eq!(size_max, INTERNODE_FRAME_SIZE_MAX);
        }
        other => panic!("expected too large, got {other:?}"),
    }
    assert_eq!(out, vec![1, 2, 3], "nothing appended");
}

#[test]
fn misaligned_input_is_an_error_not_a_panic() {
    let frame = encode(&batch(every_message()));
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&frame);
    let buf = aligned(&shifted);
    match decode_frame(&buf.bytes()[1..]) {
        Err(InternodeError::Misaligned { address }) => assert_ne!(address % 16, 0),
        other => panic!("expected misaligned, got {other:?}"),
    }
}

#[test]
fn nonzero_reserved_fields_and_padding_are_refused() {
    let frame = encode(&batch(vec![Message::WriteAck { op: 1, error: None }]));
    for at in [8usize, 12] {
        let mut bad = frame.clone();
        bad[at] = 1;
        let buf = aligned(&bad);
        assert!(matches!(
            decode_frame(buf.bytes()),
            Err(InternodeError::ReservedNotZero { offset, value: 1 }) if offset == at
        ));
    }
    let archive_len = u32::from_le_bytes(frame[0..4].try_into().expect("4")) as usize;
    if FRAME_HEADER_SIZE + archive_len < frame.len() {
        let mut bad = frame.clone();
        let last = bad.len() - 1;
        bad[last] = 9;
        let buf = aligned(&bad);
        assert!(matches!(
            decode_frame(buf.bytes()),
            Err(InternodeError::PaddingNotZero { value: 9, .. })
        ));
    }
}

#[test]
fn the_preface_is_not_a_client_frame() {
    assert_ne!(PREFACE[4], ringkv_net::client_frame::PROTOCOL_VERSION);
    assert_eq!(&PREFACE[..7], b"RKVNODE");
}

#[test]
fn sniffing_tells_the_preface_from_a_client_frame() {
    use ringkv_net::client_frame::{encode_request, Request, RequestHeader};
    use ringkv_net::internode::{sniff, Sniffed};
    for n in 0..PREFACE.len() {
        assert_eq!(sniff(&PREFACE[..n]), Sniffed::Incomplete, "{n} bytes");
    }
    let mut stream = PREFACE.to_vec();
    stream.extend_from_slice(&[0; 32]);
    assert_eq!(sniff(&stream), Sniffed::Internode);
    let mut frame = Vec::new();
    encode_request(&RequestHeader::default(), &Request::Ping, &mut frame);
    assert_eq!(sniff(&frame), Sniffed::Client);
    // A client frame whose length bytes spell "RKVN" differs at byte 4.
    frame[..4].copy_from_slice(b"RKVN");
    assert_eq!(sniff(&frame[..5]), Sniffed::Client);
    assert_eq!(sniff(&frame[..4]), Sniffed::Incomplete);
}

#[test]
fn a_large_frame_read_in_small_pieces_decodes() {
    let b = batch(vec![Message::Write {
        op: 1,
        key: b"big".to_vec(),
        record: record(Some(&vec![7u8; 3 * 1024 * 1024]), 1),
    }]);
    let frame = encode(&b);
    let mut buf = FrameBuffer::new();
    let mut got = Vec::new();
    for piece in frame.chunks(4096) {
        buf.spare(piece.len())[..piece.len()].copy_from_slice(piece);
        buf.filled(piece.len());
        got.extend(decode_all(&mut buf).expect("decode"));
    }
    assert_eq!(got, vec![b]);
    assert!(buf.is_empty());
}
