//! The RESP request parser against pipelines split at every byte, oversized
//! and negative lengths, inline quoting and garbage.

use std::borrow::Cow;

use proptest::prelude::*;
use ringkv_net::limits::{RESP_BULK_SIZE_MAX, RESP_INLINE_SIZE_MAX};
use ringkv_net::resp::{parse_command, Args, Decoded, RespError, RespLimits};

type Owned = Vec<Vec<u8>>;

fn owned(args: &Args<'_>) -> Owned {
    args.iter().map(<[u8]>::to_vec).collect()
}

/// Encodes `args` as an array of bulk strings, as client libraries send.
fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    ringkv_net::resp::encode_command(args, &mut out);
    out
}

/// Parses everything in `buf`; returns the commands and the unparsed tail
/// length, or the first error.
fn parse_all(buf: &[u8], limits: &RespLimits) -> Result<(Vec<Owned>, usize), RespError> {
    let mut at = 0;
    let mut out = Vec::new();
    loop {
        match parse_command(&buf[at..], limits)? {
            Decoded::Frame { frame, len } => {
                assert!(len >= 1 && len <= buf.len() - at, "len {len} out of range");
                out.push(owned(&frame));
                at += len;
            }
            Decoded::Incomplete { needed } => {
                assert!(needed >= 1);
                return Ok((out, buf.len() - at));
            }
        }
    }
}

/// Feeds `stream` in the given chunks, as a connection receiving reads
/// would, checking that every `needed` is a true lower bound.
fn feed(stream: &[u8], cuts: &[usize], limits: &RespLimits) -> Result<Vec<Owned>, RespError> {
    let mut pending: Vec<u8> = Vec::new();
    let mut commands = Vec::new();
    let mut promised_len = 0; // pending must reach this length for the next command
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        pending.extend_from_slice(&stream[from..cut]);
        from = cut;
        loop {
            match parse_command(&pending, limits)? {
                Decoded::Frame { frame, len } => {
                    assert!(
                        len >= promised_len,
                        "command completed at {len} bytes after a promise of {promised_len}"
                    );
                    commands.push(owned(&frame));
                    pending.drain(..len);
                    promised_len = 0;
                }
                Decoded::Incomplete { needed } => {
                    promised_len = pending.len() + needed;
                    break;
                }
            }
        }
    }
    Ok(commands)
}

fn sample_pipeline() -> (Vec<u8>, Vec<Owned>) {
    let cmds: Vec<Vec<&[u8]>> = vec![
        vec![b"SET", b"key", b"va\r\nl\0ue"],
        vec![b"GET", b"key"],
        vec![b"MSET", b"a", b"", b"b", b"\r\n"],
        vec![b"PING"],
    ];
    let mut stream = Vec::new();
    let mut expected: Vec<Owned> = Vec::new();
    for c in &cmds {
        stream.extend_from_slice(&encode(c));
        expected.push(c.iter().map(|a| a.to_vec()).collect());
    }
    stream.extend_from_slice(b"set \"in line\" 'x y'\r\n");
    expected.push(vec![b"set".to_vec(), b"in line".to_vec(), b"x y".to_vec()]);
    stream.extend_from_slice(b"*0\r\n*-1\r\n\r\n");
    expected.extend([vec![], vec![], vec![]]);
    stream.extend_from_slice(b"get k\n");
    expected.push(vec![b"get".to_vec(), b"k".to_vec()]);
    (stream, expected)
}

#[test]
fn pipeline_split_at_every_byte_parses_to_the_same_commands() {
    let (stream, expected) = sample_pipeline();
    let limits = RespLimits::default();
    assert_eq!(feed(&stream, &[], &limits).unwrap(), expected);
    for cut in 0..=stream.len() {
        assert_eq!(
            feed(&stream, &[cut], &limits).unwrap(),
            expected,
            "cut at {cut}"
        );
    }
    for a in (0..=stream.len()).step_by(3) {
        for b in a..=stream.len() {
            assert_eq!(
                feed(&stream, &[a, b], &limits).unwrap(),
                expected,
                "cuts {a} {b}"
            );
        }
    }
    let every: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(feed(&stream, &every, &limits).unwrap(), expected);
}

#[test]
fn array_arguments_borrow_the_buffer() {
    let buf = encode(&[b"SET", b"k", b"v"]);
    let Decoded::Frame { frame, len } = parse_command(&buf, &RespLimits::default()).unwrap() else {
        panic!("incomplete")
    };
    assert_eq!(len, buf.len());
    assert!(frame.is_borrowed());
    let v = frame.get(2).unwrap();
    assert!(buf.as_ptr_range().contains(&v.as_ptr()));
}

fn error_of(buf: &[u8], limits: &RespLimits) -> String {
    match parse_command(buf, limits) {
        Err(e) => e.redis_message(),
        Ok(other) => panic!(
            "expected an error for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

#[test]
fn oversized_bulk_is_refused_before_its_body_arrives() {
    let limits = RespLimits::default();
    let header = format!("*2\r\n$3\r\nSET\r\n${}\r\n", RESP_BULK_SIZE_MAX + 1);
    assert_eq!(
        error_of(header.as_bytes(), &limits),
        "ERR Protocol error: invalid bulk length"
    );
    assert_eq!(
        error_of(b"*2\r\n$3\r\nGET\r\n$99999999999999999999999\r\n", &limits),
        "ERR Protocol error: invalid bulk length"
    );
    // At the limit: the parser waits, and says how much for.
    let header = format!("*2\r\n$3\r\nSET\r\n${RESP_BULK_SIZE_MAX}\r\n");
    match parse_command(header.as_bytes(), &limits).unwrap() {
        Decoded::Incomplete { needed } => assert_eq!(needed, RESP_BULK_SIZE_MAX + 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn oversized_array_is_refused_before_anything_is_allocated() {
    let limits = RespLimits::default();
    let header = format!("*{}\r\n", limits.args_max + 1);
    assert_eq!(
        error_of(header.as_bytes(), &limits),
        "ERR Protocol error: invalid multibulk length"
    );
    assert_eq!(
        error_of(b"*9223372036854775807\r\n", &limits),
        "ERR Protocol error: invalid multibulk length"
    );
}

#[test]
fn command_over_the_size_limit_is_refused_at_the_header_that_exceeds_it() {
    let limits = RespLimits {
        command_size_max: 100,
        ..RespLimits::default()
    };
    assert!(matches!(
        parse_command(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$90\r\n", &limits),
        Err(RespError::CommandTooLarge { size_max: 100, .. })
    ));
}

#[test]
fn negative_lengths_other_than_null_array_are_protocol_errors() {
    let limits = RespLimits::default();
    for skipped in [&b"*-1\r\n"[..], b"*0\r\n"] {
        match parse_command(skipped, &limits).unwrap() {
            Decoded::Frame { frame, len } => {
                assert!(frame.is_empty());
                assert_eq!(len, skipped.len());
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        error_of(b"*-2\r\n", &limits),
        "ERR Protocol error: invalid multibulk length"
    );
    assert_eq!(
        error_of(b"*-0\r\n", &limits),
        "ERR Protocol error: invalid multibulk length"
    );
    assert_eq!(
        error_of(b"*1\r\n$-1\r\n", &limits),
        "ERR Protocol error: invalid bulk length"
    );
    assert_eq!(
        error_of(b"*1\r\n$-7\r\n", &limits),
        "ERR Protocol error: invalid bulk length"
    );
    assert_eq!(
        error_of(b"*x\r\n", &limits),
        "ERR Protocol error: invalid multibulk length"
    );
    assert_eq!(
        error_of(b"*+1\r\n", &limits),
        "ERR Protocol error: invalid multibulk length"
    );
    assert_eq!(
        error_of(b"*1\r\n$01\r\n", &limits),
        "ERR Protocol error: invalid bulk length"
    );
}

#[test]
fn non_bulk_element_reports_the_byte_found() {
    let limits = RespLimits::default();
    assert_eq!(
        error_of(b"*1\r\n:1\r\n", &limits),
        "ERR Protocol error: expected '$', got ':'"
    );
    assert_eq!(
        error_of(b"*2\r\n$1\r\na\r\nx", &limits),
        "ERR Protocol error: expected '$', got 'x'"
    );
    assert_eq!(
        error_of(b"*1\r\n\x01", &limits),
        "ERR Protocol error: expected '$', got '\\x01'"
    );
}

#[test]
fn bulk_without_crlf_and_bare_cr_are_protocol_errors() {
    let limits = RespLimits::default();
    assert!(matches!(
        parse_command(b"*1\r\n$1\r\nabc", &limits),
        Err(RespError::BulkNotTerminated { size: 1, .. })
    ));
    assert!(matches!(
        parse_command(b"*1x\r\n", &limits),
        Err(RespError::InvalidMultibulkLength { .. })
    ));
    assert!(matches!(
        parse_command(b"*1\rx", &limits),
        Err(RespError::BareCarriageReturn { .. })
    ));
}

#[test]
fn long_header_and_inline_lines_are_refused_whatever_the_split() {
    let limits = RespLimits::default();
    let mut digits = b"*".to_vec();
    digits.resize(RESP_INLINE_SIZE_MAX + 2, b'1');
    assert_eq!(
        error_of(&digits, &limits),
        "ERR Protocol error: too big mbulk count string"
    );
    digits.extend_from_slice(b"\r\n");
    assert_eq!(
        error_of(&digits, &limits),
        "ERR Protocol error: too big mbulk count string"
    );

    let mut bulk = b"*1\r\n$".to_vec();
    bulk.resize(RESP_INLINE_SIZE_MAX + 10, b'1');
    assert_eq!(
        error_of(&bulk, &limits),
        "ERR Protocol error: too big bulk count string"
    );

    let mut inline = vec![b'a'; RESP_INLINE_SIZE_MAX + 1];
    assert_eq!(
        error_of(&inline, &limits),
        "ERR Protocol error: too big inline request"
    );
    inline.push(b'\n');
    assert_eq!(
        error_of(&inline, &limits),
        "ERR Protocol error: too big inline request"
    );
}

#[test]
fn unauthenticated_connections_get_redis_tight_limits() {
    let limits = RespLimits {
        authenticated: false,
        ..RespLimits::default()
    };
    assert_eq!(
        error_of(b"*11\r\n", &limits),
        "ERR Protocol error: unauthenticated multibulk length"
    );
    assert_eq!(
        error_of(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n", &limits),
        "ERR Protocol error: unauthenticated bulk length"
    );
    let (cmds, rest) = parse_all(&encode(&[b"AUTH", b"secret"]), &limits).unwrap();
    assert_eq!((cmds.len(), rest), (1, 0));
}

#[test]
fn inline_commands_follow_redis_quoting() {
    let limits = RespLimits::default();
    let (cmds, rest) = parse_all(
        b"SET k \"a\\x00b\\r\\n\"\r\nset 'k 2' 'it\\'s'\nPING\r\n  \r\nEXISTS a\0b c\r\n",
        &limits,
    )
    .unwrap();
    assert_eq!(rest, 0);
    let expected: Vec<Owned> = vec![
        vec![b"SET".to_vec(), b"k".to_vec(), b"a\0b\r\n".to_vec()],
        vec![b"set".to_vec(), b"k 2".to_vec(), b"it's".to_vec()],
        vec![b"PING".to_vec()],
        vec![],
        // A NUL byte ends an inline line, as in Redis.
        vec![b"EXISTS".to_vec(), b"a".to_vec()],
    ];
    assert_eq!(cmds, expected);
    for bad in [
        &b"set \"k v\r\n"[..],
        b"set 'k\r\n",
        b"set \"k\"v\r\n",
        b"set 'k'v\n",
    ] {
        assert_eq!(
            error_of(bad, &limits),
            "ERR Protocol error: unbalanced quotes in request"
        );
    }
}

#[test]
fn args_can_be_built_and_copied_out_of_the_buffer() {
    let args = Args::from_parts(vec![Cow::Borrowed(&b"GET"[..]), Cow::Owned(b"k".to_vec())]);
    assert!(!args.is_borrowed());
    let copy = args.clone().into_owned();
    assert_eq!(owned(&copy), owned(&args));
}

/// Inline-encodes an argument so the parser gets it back exactly.
fn quote_inline(arg: &[u8]) -> Vec<u8> {
    let mut out = b"\"".to_vec();
    for &b in arg {
        out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
    }
    out.push(b'"');
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let limits = RespLimits::default();
        let _ = parse_all(&bytes, &limits);
        let small = RespLimits { bulk_size_max: 8, args_max: 4, command_size_max: 64, inline_size_max: 16, authenticated: false };
        let _ = parse_all(&bytes, &small);
    }

    #[test]
    fn resp_like_garbage_never_panics(parts in proptest::collection::vec(
        proptest::sample::select(vec![
            &b"*"[..], b"$", b"\r\n", b"\r", b"\n", b"-1", b"0", b"3", b"abc", b"\"", b"'", b"\\x4", b" ",
        ]), 0..64)) {
        let bytes: Vec<u8> = parts.concat();
        let _ = parse_all(&bytes, &RespLimits::default());
        let _ = feed(&bytes, &[bytes.len() / 2], &RespLimits::default());
    }

    #[test]
    fn encoded_commands_round_trip_through_any_split(
        cmds in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 1..5), 1..5),
        cut_seed in any::<u64>(),
    ) {
        let mut stream = Vec::new();
        for (i, c) in cmds.iter().enumerate() {
            if i % 2 == 0 {
                let refs: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
                stream.extend_from_slice(&encode(&refs));
            } else {
                // Inline commands never start with '*': prefix a plain name.
                let line: Vec<Vec<u8>> = c.iter().map(|a| quote_inline(a)).collect();
                stream.extend_from_slice(b"x ");
                stream.extend_from_slice(&line.join(&b' '));
                stream.extend_from_slice(b"\r\n");
            }
        }
        let expected: Vec<Owned> = cmds.iter().enumerate().map(|(i, c)| {
            if i % 2 == 0 { c.clone() } else { std::iter::once(b"x".to_vec()).chain(c.iter().cloned()).collect() }
        }).collect();
        let cut = (cut_seed % (stream.len() as u64 + 1)) as usize;
        let got = feed(&stream, &[cut], &RespLimits::default());
        prop_assert_eq!(got, Ok(expected));
    }

    #[test]
    fn bit_flips_of_a_pipeline_never_panic(flip in 0usize..2000, bit in 0u8..8) {
        let (mut stream, _) = sample_pipeline();
        let i = flip % stream.len();
        stream[i] ^= 1 << bit;
        let _ = parse_all(&stream, &RespLimits::default());
    }
}
