//! RESP micro-benchmark (std only, no harness): nanoseconds per parse, per
//! typed command and per reply on the redis-benchmark hot path (SET with a
//! 100-byte value, GET). Run: `cargo bench -p ringkv-net --bench resp`.

use std::hint::black_box;
use std::time::Instant;

use ringkv_net::resp::{parse_command, Command, Decoded, Reply, RespLimits, RespVersion};

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
    println!("{name:<44} {ns:>8.1} ns/op");
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    ringkv_net::resp::encode_command(args, &mut out);
    out
}

fn main() {
    let limits = RespLimits::default();
    let value = [b'x'; 100];
    let set = encode(&[b"SET", b"key:000000012345", &value]);
    let get = encode(&[b"GET", b"key:000000012345"]);
    let pipeline: Vec<u8> = (0..16).flat_map(|_| get.clone()).collect();

    measure("parse_command SET 100 B", ROUNDS, |_| {
        black_box(parse_command(black_box(&set), &limits).ok());
    });
    measure("parse_command + Command::parse SET 100 B", ROUNDS, |_| {
        if let Ok(Decoded::Frame { frame, .. }) = parse_command(black_box(&set), &limits) {
            black_box(Command::parse(&frame).ok());
        }
    });
    measure("parse_command + Command::parse GET", ROUNDS, |_| {
        if let Ok(Decoded::Frame { frame, .. }) = parse_command(black_box(&get), &limits) {
            black_box(Command::parse(&frame).ok());
        }
    });
    measure("pipeline of 16 GETs (all 16)", ROUNDS / 16, |_| {
        let mut at = 0;
        while let Ok(Decoded::Frame { frame, len }) = parse_command(&pipeline[at..], &limits) {
            black_box(Command::parse(&frame).ok());
            at += len;
        }
    });
    let mut out = Vec::with_capacity(4096);
    measure("reply bulk 100 B", ROUNDS, |_| {
        out.clear();
        Reply::new(&mut out, RespVersion::Resp2).bulk(black_box(&value));
        black_box(&out);
    });
    measure("reply +OK", ROUNDS, |_| {
        out.clear();
        Reply::new(&mut out, RespVersion::Resp2).ok();
        black_box(&out);
    });
}
