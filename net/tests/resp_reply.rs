//! Reply encoding: golden bytes for RESP2 and RESP3, and COMMAND replies
//! that a RESP reader can walk.

use ringkv_net::resp::table::{
    self, command_count, write_command_docs_reply, write_command_info, write_command_info_reply,
    write_command_list,
};
use ringkv_net::resp::{Reply, RespVersion};

fn encode(version: RespVersion, f: impl FnOnce(&mut Reply<'_>)) -> Vec<u8> {
    let mut out = Vec::new();
    f(&mut Reply::new(&mut out, version));
    out
}

fn golden(f: impl Fn(&mut Reply<'_>), resp2: &[u8], resp3: &[u8]) {
    let got2 = encode(RespVersion::Resp2, &f);
    let got3 = encode(RespVersion::Resp3, &f);
    assert_eq!(
        String::from_utf8_lossy(&got2),
        String::from_utf8_lossy(resp2),
        "RESP2"
    );
    assert_eq!(
        String::from_utf8_lossy(&got3),
        String::from_utf8_lossy(resp3),
        "RESP3"
    );
}

#[test]
fn scalar_replies_match_golden_bytes() {
    golden(|r| r.ok(), b"+OK\r\n", b"+OK\r\n");
    golden(|r| r.simple("PONG"), b"+PONG\r\n", b"+PONG\r\n");
    golden(
        |r| r.error("ERR syntax error"),
        b"-ERR syntax error\r\n",
        b"-ERR syntax error\r\n",
    );
    golden(|r| r.integer(-42), b":-42\r\n", b":-42\r\n");
    golden(
        |r| r.bulk(b"a\r\n\0b"),
        b"$5\r\na\r\n\0b\r\n",
        b"$5\r\na\r\n\0b\r\n",
    );
    golden(|r| r.bulk(b""), b"$0\r\n\r\n", b"$0\r\n\r\n");
    golden(|r| r.null(), b"$-1\r\n", b"_\r\n");
    golden(|r| r.bulk_or_null(None), b"$-1\r\n", b"_\r\n");
    golden(|r| r.null_array(), b"*-1\r\n", b"_\r\n");
    golden(|r| r.boolean(true), b":1\r\n", b"#t\r\n");
    golden(|r| r.boolean(false), b":0\r\n", b"#f\r\n");
    golden(|r| r.double(1.5), b"$3\r\n1.5\r\n", b",1.5\r\n");
    golden(|r| r.double(f64::INFINITY), b"$3\r\ninf\r\n", b",inf\r\n");
    golden(
        |r| r.double(f64::NEG_INFINITY),
        b"$4\r\n-inf\r\n",
        b",-inf\r\n",
    );
    golden(|r| r.double(f64::NAN), b"$3\r\nnan\r\n", b",nan\r\n");
    golden(
        |r| r.verbatim_text(b"# Server\r\n"),
        b"$10\r\n# Server\r\n\r\n",
        b"=14\r\ntxt:# Server\r\n\r\n",
    );
}

#[test]
fn aggregate_replies_match_golden_bytes() {
    golden(
        |r| {
            r.array_header(2);
            r.bulk(b"a");
            r.null();
        },
        b"*2\r\n$1\r\na\r\n$-1\r\n",
        b"*2\r\n$1\r\na\r\n_\r\n",
    );
    golden(
        |r| {
            r.map_header(1);
            r.bulk(b"proto");
            r.integer(3);
        },
        b"*2\r\n$5\r\nproto\r\n:3\r\n",
        b"%1\r\n$5\r\nproto\r\n:3\r\n",
    );
    golden(
        |r| {
            r.set_header(1);
            r.simple("fast");
        },
        b"*1\r\n+fast\r\n",
        b"~1\r\n+fast\r\n",
    );
    golden(|r| r.array_header(0), b"*0\r\n", b"*0\r\n");
}

#[test]
fn error_and_simple_lines_cannot_carry_newlines() {
    golden(
        |r| r.error("ERR a\r\nb"),
        b"-ERR a  b\r\n",
        b"-ERR a  b\r\n",
    );
    golden(|r| r.simple("a\nb"), b"+a b\r\n", b"+a b\r\n");
}

/// Reads one RESP reply starting at `at`; returns where it ends. Panics on
/// anything malformed, so a test that walks a whole reply checks its shape.
fn skip_reply(buf: &[u8], at: usize) -> usize {
    let line_end = at
        + buf[at..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("CRLF")
        + 2;
    let text = std::str::from_utf8(&buf[at + 1..line_end - 2]).expect("utf8 header");
    match buf[at] {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' => line_end,
        b'$' | b'=' => {
            let n: i64 = text.parse().expect("length");
            if n < 0 {
                return line_end;
            }
            let end = line_end + n as usize;
            assert_eq!(&buf[end..end + 2], b"\r\n");
            end + 2
        }
        b'*' | b'~' | b'%' => {
            let n: i64 = text.parse().expect("count");
            let elems = if buf[at] == b'%' { 2 * n } else { n.max(0) };
            (0..elems).fold(line_end, |pos, _| skip_reply(buf, pos))
        }
        other => panic!("unexpected type byte {other:?} at {at}"),
    }
}

#[test]
fn command_replies_are_well_formed_in_both_versions() {
    for version in [RespVersion::Resp2, RespVersion::Resp3] {
        let list = encode(version, write_command_list);
        assert_eq!(skip_reply(&list, 0), list.len());
        assert!(list.starts_with(format!("*{}\r\n", command_count()).as_bytes()));

        let docs = encode(version, |r| write_command_docs_reply(r, std::iter::empty()));
        assert_eq!(skip_reply(&docs, 0), docs.len());

        let names: [&[u8]; 3] = [b"GET", b"nosuch", b"client|setname"];
        let info = encode(version, |r| write_command_info_reply(r, names.into_iter()));
        assert_eq!(skip_reply(&info, 0), info.len());

        let docs = encode(version, |r| write_command_docs_reply(r, names.into_iter()));
        assert_eq!(skip_reply(&docs, 0), docs.len());
        let pairs_header: &[u8] = match version {
            RespVersion::Resp2 => b"*4\r\n",
            RespVersion::Resp3 => b"%2\r\n",
        };
        assert!(docs.starts_with(pairs_header), "unknown names are left out");
    }
}

#[test]
fn command_info_for_get_matches_redis_shape() {
    let got = encode(RespVersion::Resp2, |r| {
        write_command_info(r, table::lookup(b"get"))
    });
    let expected: &[u8] =
        b"*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n\
*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*0\r\n*0\r\n";
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
    let mset = encode(RespVersion::Resp2, |r| {
        write_command_info(r, table::lookup(b"MSET"))
    });
    let keys: &[u8] = b":1\r\n:-1\r\n:2\r\n";
    assert!(
        mset.windows(keys.len()).any(|w| w == keys),
        "mset keys: first 1, last -1, step 2"
    );
    let unknown = encode(RespVersion::Resp3, |r| {
        write_command_info(r, table::lookup(b"nosuch"))
    });
    assert_eq!(unknown, b"_\r\n");
}

#[test]
fn hello_reply_is_a_seven_entry_map_in_the_connection_version() {
    use ringkv_net::resp::replies::{write_hello, HelloInfo};
    let info = HelloInfo {
        server: "redis",
        version: "7.2.0",
        client_id: 7,
    };
    let resp3 = encode(RespVersion::Resp3, |r| write_hello(r, &info));
    assert!(resp3.starts_with(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.0\r\n$5\r\nproto\r\n:3\r\n"));
    assert!(resp3.ends_with(b"$7\r\nmodules\r\n*0\r\n"));
    assert_eq!(skip_reply(&resp3, 0), resp3.len());
    let resp2 = encode(RespVersion::Resp2, |r| write_hello(r, &info));
    assert!(resp2.starts_with(b"*14\r\n"));
    let proto: &[u8] = b"proto\r\n:2\r\n";
    assert!(resp2.windows(proto.len()).any(|w| w == proto));
    assert_eq!(skip_reply(&resp2, 0), resp2.len());
}

#[test]
fn command_docs_describe_arguments_for_redis_cli_hints() {
    let names: [&[u8]; 1] = [b"set"];
    let docs = encode(RespVersion::Resp3, |r| {
        write_command_docs_reply(r, names.into_iter())
    });
    assert_eq!(skip_reply(&docs, 0), docs.len());
    for needle in [
        &b"$9\r\narguments\r\n*5\r\n"[..],
        b"$4\r\nname\r\n$3\r\nkey\r\n$4\r\ntype\r\n$3\r\nkey\r\n$14\r\nkey_spec_index\r\n:0\r\n",
        b"$5\r\ntoken\r\n$2\r\nEX\r\n",
        b"$5\r\nflags\r\n~1\r\n+optional\r\n",
        b"$4\r\ntype\r\n$5\r\noneof\r\n",
    ] {
        assert!(
            docs.windows(needle.len()).any(|w| w == needle),
            "missing {:?}",
            String::from_utf8_lossy(needle)
        );
    }
}
