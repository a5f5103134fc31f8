//! Codec micro-benchmark (std only, no harness): nanoseconds per encode and
//! per decode of the frames on the hot path. Run: `cargo bench -p ringkv-net`.

use std::hint::black_box;
use std::time::Instant;

use ringkv_net::client_frame::{
    decode_request, decode_response, encode_request, encode_response, Consistency, Decoded,
    KeyList, Request, RequestHeader, Response, WireVersion,
};
use ringkv_net::limits::FRAME_SIZE_MAX_DEFAULT;
use ringkv_net::routing::{shard_for, token};

const ROUNDS: u32 = 1_000_000;

fn measure(name: &str, rounds: u32, mut f: impl FnMut(u32)) {
    for i in 0..rounds / 10 {
        f(i); // warm-up
    }
    let started = Instant::now();
    for i in 0..rounds {
        f(i);
    }
    let ns = started.elapsed().as_nanos() as f64 / f64::from(rounds);
    println!("{name:<40} {ns:>8.1} ns/op");
}

fn main() {
    let header = RequestHeader {
        id: 1,
        consistency: Consistency::One,
        session: WireVersion {
            hlc: 1 << 40,
            node: 1,
        },
    };
    let key = b"user:0000012345";
    let value = [7u8; 100];
    let mut out = Vec::with_capacity(4096);

    measure("route key (xxh3 + shard_for)", ROUNDS, |_| {
        black_box(shard_for(token(black_box(key)), 8));
    });
    measure("encode GET request", ROUNDS, |i| {
        out.clear();
        let h = RequestHeader {
            id: u64::from(i),
            ..header
        };
        encode_request(&h, &Request::Get { key }, &mut out);
        black_box(&out);
    });
    let mut get = Vec::new();
    encode_request(&header, &Request::Get { key }, &mut get);
    measure("decode GET request", ROUNDS, |_| {
        black_box(decode_request(black_box(&get), FRAME_SIZE_MAX_DEFAULT).ok());
    });
    let response = Response::Value {
        value: &value,
        version: header.session,
        expires_at_ms: 0,
    };
    measure("encode VALUE response (100 B)", ROUNDS, |i| {
        out.clear();
        encode_response(u64::from(i), &response, &mut out);
        black_box(&out);
    });
    let mut val = Vec::new();
    encode_response(1, &response, &mut val);
    measure("decode VALUE response (100 B)", ROUNDS, |_| {
        black_box(decode_response(black_box(&val), FRAME_SIZE_MAX_DEFAULT).ok());
    });
    let keys: Vec<Vec<u8>> = (0..100)
        .map(|i| format!("user:{i:010}").into_bytes())
        .collect();
    let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let mut mget = Vec::new();
    encode_request(
        &header,
        &Request::MGet {
            keys: KeyList::new(&refs),
        },
        &mut mget,
    );
    measure("decode + iterate MGET (100 keys)", ROUNDS / 10, |_| {
        if let Ok(Decoded::Frame {
            frame: (_, Request::MGet { keys }),
            ..
        }) = decode_request(black_box(&mget), FRAME_SIZE_MAX_DEFAULT)
        {
            black_box(keys.iter().map(<[u8]>::len).sum::<usize>());
        }
    });
}
