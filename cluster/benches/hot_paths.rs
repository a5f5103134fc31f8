//! Hot paths of the cluster layer, timed with `Instant` (no bench framework):
//! a ring lookup, and one QUORUM write and one QUORUM read through the
//! coordinator with every replica acking. Run:
//! `cargo bench -p ringkv-cluster --bench hot_paths`.

use ringkv_cluster::{
    default_tokens, Coordinator, CoordinatorConfig, Effect, Level, Mutation, NodeInfo, Record,
    Ring, Version,
};
use std::hint::black_box;
use std::time::Instant;

fn ring(nodes: u32, racks: bool) -> Ring {
    let infos = (1..=nodes)
        .map(|id| NodeInfo {
            id,
            host: "127.0.0.1".into(),
            port: 7000,
            shards: 1,
            rack: if racks {
                format!("r{}", id % 3)
            } else {
                String::new()
            },
            tokens: default_tokens(id, 256),
        })
        .collect();
    Ring::new(infos, 3).unwrap()
}

fn time(name: &str, iters: u64, mut f: impl FnMut(u64)) {
    for i in 0..iters / 10 {
        f(i); // warm up
    }
    let start = Instant::now();
    for i in 0..iters {
        f(i);
    }
    let ns = start.elapsed().as_nanos() as f64 / iters as f64;
    println!("{name:<40} {ns:>8.1} ns/op");
}

fn main() {
    let mix = |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for (nodes, racks) in [(3, false), (12, false), (12, true)] {
        let r = ring(nodes, racks);
        let name = format!("ring.replicas {nodes} nodes racks={racks}");
        time(&name, 2_000_000, |i| {
            black_box(r.replicas(mix(i)));
        });
    }

    let r = ring(3, false);
    let mut c = Coordinator::new(CoordinatorConfig::new(1));
    let mut out: Vec<Effect> = Vec::with_capacity(16);
    let up = |_: u32| true;
    time("coordinator QUORUM write, 3 acks", 1_000_000, |i| {
        let m = Mutation {
            key: b"key".to_vec(),
            record: Record::put(Version { hlc: i, node: 1 }, vec![0; 100], 0),
        };
        let op = c.write(0, &r, &up, mix(i), m, Level::Quorum, &mut out);
        for n in 1..=3 {
            c.on_write_ack(0, n, op, Ok(()), &mut out);
        }
        out.clear();
    });
    let rec = Record::put(Version { hlc: 1, node: 1 }, vec![0; 100], 0);
    time("coordinator QUORUM read, 3 equal answers", 1_000_000, |i| {
        let op = c.read(0, &r, &up, mix(i), b"key".to_vec(), Level::Quorum, &mut out);
        for n in 1..=3 {
            c.on_read_reply(0, n, op, Ok(Some(rec.clone())), &mut out);
        }
        out.clear();
    });
    assert_eq!(c.pending(), 0);
}
