//! Writes a seed corpus of valid encodings for the targets that need help to
//! reach deep code: `corpus/internode_frame/` (valid internode frames, alone
//! and several in a row) and `corpus/decode_response/` (a RING answer).
//! Run by `run.sh` before fuzzing.

// Linked for the coverage callbacks the instrumented build references.
extern crate libfuzzer_sys;

use std::fs;
use std::path::Path;

use ringkv_cluster::ring::{default_tokens, NodeInfo};
use ringkv_net::client_frame::encode_ring_response;
use ringkv_net::internode::{encode_frame, Batch, Hello, Message, WireRecord, PREFACE};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("create corpus dir");
    fs::write(dir.join(name), bytes).expect("write seed");
}

fn main() {
    let record = |value: Option<&[u8]>| WireRecord {
        value: value.map(<[u8]>::to_vec),
        hlc: 77 << 16 | 1,
        node: 2,
        expires_at_ms: 0,
    };
    let messages = vec![
        Message::Hello(Hello {
            node_id: 1,
            shards: 2,
            shard: 0,
            host: "127.0.0.1".into(),
            port: 7379,
            rack: "r".into(),
            tokens: default_tokens(1, 4),
            replication_factor: 3,
            ring_version: 9,
        }),
        Message::Write { op: 1, key: b"k".to_vec(), record: record(Some(b"v")) },
        Message::Write { op: 2, key: b"gone".to_vec(), record: record(None) },
        Message::WriteAck { op: 1, error: None },
        Message::WriteAck { op: 2, error: Some("disk".into()) },
        Message::Read { op: 3, key: b"k".to_vec() },
        Message::ReadReply { op: 3, record: Some(record(Some(b"v"))), error: None },
        Message::ReadReply { op: 4, record: None, error: Some("timeout".into()) },
    ];
    let dir = Path::new("corpus/internode_frame");
    let mut all = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let batch = Batch { from_node: 1, from_shard: 0, clock: 5 << 16, messages: vec![m.clone()] };
        let mut out = Vec::new();
        encode_frame(&batch, &mut out).expect("encode");
        write(dir, &format!("single-{i}"), &out);
        all.extend_from_slice(&out);
    }
    write(dir, "several", &all);
    let batch = Batch { from_node: 3, from_shard: 1, clock: 1, messages };
    let mut out = Vec::new();
    encode_frame(&batch, &mut out).expect("encode");
    write(dir, "batch", &out);
    write(dir, "preface", &PREFACE);

    let nodes: Vec<NodeInfo> = (1..=3)
        .map(|id| NodeInfo {
            id,
            host: format!("node-{id}"),
            port: 7379,
            shards: id,
            rack: if id == 2 { "r2".into() } else { String::new() },
            tokens: default_tokens(id, 3),
        })
        .collect();
    let mut out = Vec::new();
    encode_ring_response(1, 42, 3, &nodes, &mut out);
    write(Path::new("corpus/decode_response"), "ring", &out);
}
