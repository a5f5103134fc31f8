//! Token-aware routing as a pure function: `pick_node` sends a key to the home
//! node when it is a replica, else to the first reachable replica in ring
//! order, else back to the home node. (The client is tested against real
//! nodes in the root package's tests.)

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ringkv_cluster::ring::{default_tokens, NodeInfo, Ring};
use ringkv_net::client::pick_node;
use ringkv_net::routing::{shard_for, shard_port, token};

fn ring(nodes: u32, rf: u32) -> Ring {
    let infos = (1..=nodes)
        .map(|id| NodeInfo {
            id,
            host: "127.0.0.1".into(),
            port: 7000 + 10 * id as u16,
            shards: id,
            rack: String::new(),
            tokens: default_tokens(id, 64),
        })
        .collect();
    Ring::new(infos, rf).unwrap()
}

#[test]
fn the_home_node_is_chosen_when_it_holds_a_replica() {
    let r = ring(5, 3);
    for i in 0..500u64 {
        let t = token(&i.to_le_bytes());
        let replicas = r.replicas(t);
        for home in replicas.iter() {
            let picked = pick_node(&r, t, home, |id| {
                assert_ne!(id, home, "the home node is never asked about");
                true
            });
            assert_eq!(picked, home);
        }
    }
}

#[test]
fn otherwise_the_first_replica_in_ring_order_is_chosen() {
    let r = ring(5, 3);
    for i in 0..500u64 {
        let t = token(&i.to_le_bytes());
        let replicas = r.replicas(t);
        let home = (1..=5).find(|id| !replicas.contains(*id)).unwrap();
        assert_eq!(pick_node(&r, t, home, |_| true), replicas.as_slice()[0]);
    }
}

#[test]
fn unreachable_replicas_are_skipped_and_then_the_home_node_coordinates() {
    let r = ring(5, 3);
    for i in 0..500u64 {
        let t = token(&i.to_le_bytes());
        let replicas = r.replicas(t);
        let home = (1..=5).find(|id| !replicas.contains(*id)).unwrap();
        let first = replicas.as_slice()[0];
        let second = replicas.as_slice()[1];
        assert_eq!(pick_node(&r, t, home, |id| id != first), second);
        assert_eq!(pick_node(&r, t, home, |_| false), home);
    }
}

#[test]
fn a_random_reachability_always_picks_the_home_node_or_a_reachable_replica() {
    let seed: u64 = rand::random();
    let mut rng = SmallRng::seed_from_u64(seed);
    let r = ring(7, 3);
    for _ in 0..5_000 {
        let t: u64 = rng.gen();
        let home = rng.gen_range(1..=7);
        let up: Vec<bool> = (0..=7).map(|_| rng.gen_bool(0.6)).collect();
        let picked = pick_node(&r, t, home, |id| up[id as usize]);
        let replicas = r.replicas(t);
        let ok = picked == home || (replicas.contains(picked) && up[picked as usize]);
        assert!(ok, "seed {seed}: token {t} home {home} picked {picked}");
        if replicas.contains(home) {
            assert_eq!(picked, home, "seed {seed}");
        }
    }
}

#[test]
fn a_chosen_node_is_addressed_on_its_owning_shard_port() {
    let r = ring(4, 2);
    let t = token(b"some key");
    let id = pick_node(&r, t, 99, |_| true);
    let node = r.node(id).unwrap();
    let shard = shard_for(t, node.shards);
    assert!(shard < node.shards);
    assert_eq!(
        u32::from(shard_port(node.port, shard)),
        u32::from(node.port) + 1 + shard
    );
}

#[test]
fn a_one_node_ring_routes_everything_home() {
    let r = ring(1, 3);
    for i in 0..100u64 {
        assert_eq!(pick_node(&r, token(&i.to_le_bytes()), 1, |_| true), 1);
    }
}
