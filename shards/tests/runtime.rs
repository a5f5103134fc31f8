//! The runtime in-process: `run_shards` serves real sockets with real
//! engines, forwards between shards, and returns Ok after a requested stop
//! with every engine closed (the data is there at the next start).

use ringkv_net::client::{Client, ClientOptions};
use ringkv_shards::runtime::run_shards;
use ringkv_shards::shard::NodeShared;
use ringkv_shards::NodeConfig;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A base port with `span` free ports from it, below the ephemeral range
/// (32768 and up on Linux), where a released port-0 pick could be handed to a
/// client socket or another test at once; spread by process id.
fn free_port(span: u16) -> u16 {
    let start = 20_000 + (std::process::id() % 600) as u16 * 20;
    (0..600u16)
        .map(|i| 20_000 + (start - 20_000 + i * 20) % 12_000)
        .find(|&base| {
            (0..span).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        })
        .expect("no free ports below the ephemeral range")
}

fn start(
    config: &NodeConfig,
) -> (
    Arc<NodeShared>,
    std::thread::JoinHandle<Result<(), ringkv_shards::Error>>,
) {
    let node = Arc::new(NodeShared::default());
    let (c, n) = (Arc::new(config.clone()), node.clone());
    let handle = std::thread::spawn(move || run_shards(c, n));
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.ready.load(std::sync::atomic::Ordering::SeqCst) < config.shards {
        assert!(!handle.is_finished(), "the node stopped while starting");
        assert!(Instant::now() < deadline, "the node did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    (node, handle)
}

#[test]
fn a_node_serves_forwards_and_stops_cleanly_in_process() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut config = NodeConfig::new();
    config.shards = 2;
    config.pin = false;
    config.port = free_port(4);
    config.resp_port = 0;
    config.data_dir = dir.path().to_path_buf();
    config.io_memory = 1 << 20;
    config.memtable_size = 1 << 20;
    config.block_cache_size = 1 << 20;

    let (node, handle) = start(&config);
    let addr = format!("127.0.0.1:{}", config.port);
    let mut client =
        Client::connect(std::slice::from_ref(&addr), ClientOptions::default()).unwrap();
    for i in 0..100 {
        client.put(format!("k{i}").as_bytes(), b"v", None).unwrap();
    }
    drop(client);
    node.request_stop();
    handle.join().unwrap().unwrap();

    let (node, handle) = start(&config);
    let mut client = Client::connect(&[addr], ClientOptions::default()).unwrap();
    for i in 0..100 {
        assert_eq!(
            client
                .get(format!("k{i}").as_bytes())
                .unwrap()
                .unwrap()
                .value,
            b"v"
        );
    }
    drop(client);
    node.request_stop();
    handle.join().unwrap().unwrap();
}
