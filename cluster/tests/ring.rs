//! Ring properties: determinism, replica sets, rack awareness, balance and
//! movement when a node joins.

use rand::{rngs::SmallRng, Rng, SeedableRng};
use ringkv_cluster::{default_tokens, NodeInfo, Ring, RingError};

fn node(id: u32, rack: &str) -> NodeInfo {
    NodeInfo {
        id,
        host: "127.0.0.1".into(),
        port: 7000 + id as u16,
        shards: 1,
        rack: rack.into(),
        tokens: default_tokens(id, 256),
    }
}

fn ring(ids: &[u32], rf: u32) -> Ring {
    Ring::new(ids.iter().map(|&i| node(i, "")).collect(), rf).unwrap()
}

fn seeded() -> (u64, SmallRng) {
    let seed: u64 = rand::random();
    eprintln!("seed = {seed}");
    (seed, SmallRng::seed_from_u64(seed))
}

#[test]
fn default_tokens_are_deterministic_sorted_and_distinct_per_node() {
    let a = default_tokens(1, 256);
    assert_eq!(a, default_tokens(1, 256));
    assert_eq!(a.len(), 256);
    assert!(a.windows(2).all(|w| w[0] < w[1]));
    assert_ne!(a, default_tokens(2, 256));
    assert!(default_tokens(1, 0).is_empty());
}

#[test]
fn same_membership_in_any_order_gives_the_same_ring_and_version() {
    let a = ring(&[1, 2, 3], 3);
    let b = ring(&[3, 1, 2], 3);
    assert_eq!(a.version(), b.version());
    assert_eq!(a.nodes(), b.nodes());
    for t in [0, 1, u64::MAX / 2, u64::MAX] {
        assert_eq!(a.replicas(t), b.replicas(t));
    }
    // Unsorted, duplicated tokens are normalised.
    let mut shuffled = node(1, "");
    shuffled.tokens.reverse();
    shuffled.tokens.push(shuffled.tokens[0]);
    let c = Ring::new(vec![node(3, ""), shuffled, node(2, "")], 3).unwrap();
    assert_eq!(a.version(), c.version());
}

#[test]
fn version_changes_with_membership_or_replication_factor() {
    let base = ring(&[1, 2, 3], 3);
    assert_ne!(base.version(), ring(&[1, 2, 3], 2).version());
    assert_ne!(base.version(), ring(&[1, 2, 4], 3).version());
    let mut moved = vec![node(1, ""), node(2, ""), node(3, "")];
    moved[0].port += 1;
    assert_ne!(base.version(), Ring::new(moved, 3).unwrap().version());
}

#[test]
fn invalid_memberships_are_refused_with_the_reason() {
    assert_eq!(Ring::new(vec![], 3).unwrap_err(), RingError::NoNodes);
    assert_eq!(
        Ring::new(vec![node(1, ""), node(1, "")], 1).unwrap_err(),
        RingError::DuplicateNode { node: 1 }
    );
    let mut reserved = node(1, "");
    reserved.id = u32::MAX;
    assert!(matches!(
        Ring::new(vec![reserved], 1),
        Err(RingError::ReservedNodeId { .. })
    ));
    let mut no_tokens = node(1, "");
    no_tokens.tokens.clear();
    assert_eq!(
        Ring::new(vec![no_tokens], 1).unwrap_err(),
        RingError::NoTokens { node: 1 }
    );
    let mut no_shards = node(1, "");
    no_shards.shards = 0;
    assert_eq!(
        Ring::new(vec![no_shards], 1).unwrap_err(),
        RingError::NoShards { node: 1 }
    );
    for rf in [0, 8] {
        assert!(matches!(
            Ring::new(vec![node(1, "")], rf),
            Err(RingError::BadReplicationFactor { .. })
        ));
    }
    let mut many = node(1, "");
    many.tokens = (0..5000).collect();
    assert!(matches!(
        Ring::new(vec![many], 1),
        Err(RingError::TooManyTokens { .. })
    ));
}

#[test]
fn every_replica_set_has_min_of_rf_and_nodes_distinct_nodes() {
    let (_, mut rng) = seeded();
    for (ids, rf) in [
        (&[1u32][..], 3u32),
        (&[1, 2], 3),
        (&[1, 2, 3], 3),
        (&[1, 2, 3, 4, 5], 3),
        (&[1, 2, 3, 4, 5], 7),
    ] {
        let r = ring(ids, rf);
        let want = (rf as usize).min(ids.len());
        assert_eq!(r.replication_factor() as usize, want);
        assert_eq!(r.configured_replication_factor(), rf);
        for _ in 0..2000 {
            let t: u64 = rng.gen();
            let set = r.replicas(t);
            assert_eq!(set.len(), want);
            let mut v = set.as_slice().to_vec();
            v.sort_unstable();
            v.dedup();
            assert_eq!(v.len(), want);
            for id in set.iter() {
                assert!(r.is_replica(t, id));
            }
        }
    }
}

#[test]
fn the_primary_is_the_owner_of_the_first_token_at_or_after_the_key_wrapping() {
    let mk = |id, tokens: Vec<u64>| NodeInfo {
        tokens,
        ..node(id, "")
    };
    let r = Ring::new(
        vec![mk(1, vec![100, 300]), mk(2, vec![200]), mk(3, vec![300])],
        2,
    )
    .unwrap();
    assert_eq!(r.replicas(50).as_slice(), &[1, 2]);
    assert_eq!(r.replicas(100).as_slice(), &[1, 2]);
    assert_eq!(r.replicas(101).as_slice(), &[2, 1]);
    // Tie at 300 between nodes 1 and 3: the lower id first.
    assert_eq!(r.replicas(250).as_slice(), &[1, 3]);
    assert_eq!(r.replicas(301).as_slice(), &[1, 2]);
    assert_eq!(r.replicas(u64::MAX).as_slice(), &[1, 2]);
}

#[test]
fn rack_awareness_spreads_replicas_over_racks_then_fills_up() {
    let (_, mut rng) = seeded();
    // Racks a: {1,2}, b: {3,4}, c: {5}.
    let nodes = vec![
        node(1, "a"),
        node(2, "a"),
        node(3, "b"),
        node(4, "b"),
        node(5, "c"),
    ];
    let r = Ring::new(nodes, 3).unwrap();
    let rack = |id| r.node(id).unwrap().rack.clone();
    for _ in 0..2000 {
        let set = r.replicas(rng.gen());
        let mut racks: Vec<String> = set.iter().map(rack).collect();
        racks.sort();
        assert_eq!(racks, ["a", "b", "c"], "{set:?}");
    }
    // Two racks, rf 3: both racks, then one more node from the walk.
    let nodes = vec![node(1, "a"), node(2, "a"), node(3, "b"), node(4, "b")];
    let r = Ring::new(nodes, 3).unwrap();
    for _ in 0..2000 {
        let set = r.replicas(rng.gen());
        assert_eq!(set.len(), 3);
        let a = set.iter().filter(|&id| id <= 2).count();
        assert!(a == 1 || a == 2, "{set:?}");
        // The first two replicas are in different racks.
        assert_ne!(rack(set.as_slice()[0]), rack(set.as_slice()[1]));
    }
}

#[test]
fn with_256_vnodes_each_of_three_nodes_is_primary_for_a_fair_share() {
    let (seed, mut rng) = seeded();
    let r = ring(&[1, 2, 3], 3);
    let mut counts = [0usize; 4];
    let total = 100_000;
    for _ in 0..total {
        counts[r.replicas(rng.gen()).as_slice()[0] as usize] += 1;
    }
    for &c in &counts[1..] {
        let share = c as f64 / total as f64;
        assert!(
            (0.25..=0.42).contains(&share),
            "seed {seed}: shares {counts:?}"
        );
    }
}

#[test]
fn adding_a_fourth_node_moves_only_about_a_quarter_of_primaries() {
    let (seed, mut rng) = seeded();
    let before = ring(&[1, 2, 3], 3);
    let after = ring(&[1, 2, 3, 4], 3);
    let total = 100_000;
    let mut moved = 0;
    for _ in 0..total {
        let t = rng.gen();
        let (a, b) = (
            before.replicas(t).as_slice()[0],
            after.replicas(t).as_slice()[0],
        );
        if a != b {
            assert_eq!(b, 4, "a primary moved between old nodes");
            moved += 1;
        }
    }
    let share = moved as f64 / total as f64;
    assert!((0.17..=0.33).contains(&share), "seed {seed}: moved {share}");
}

proptest::proptest! {
    #[test]
    fn any_membership_builds_a_ring_or_an_error_and_lookups_never_panic(
        ids in proptest::collection::vec(proptest::prelude::any::<u32>(), 0..6),
        tokens in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..8),
        rf in 0u32..9,
        racks in proptest::collection::vec("[ab]?", 6),
        probe in proptest::prelude::any::<u64>(),
    ) {
        let nodes = ids.iter().zip(&racks).map(|(&id, rack)| NodeInfo {
            id,
            host: "h".into(),
            port: 1,
            shards: 1,
            rack: rack.clone(),
            tokens: tokens.iter().map(|t| t ^ u64::from(id)).collect(),
        }).collect();
        if let Ok(r) = Ring::new(nodes, rf) {
            let set = r.replicas(probe);
            proptest::prop_assert_eq!(set.len(), r.replication_factor() as usize);
        }
    }
}
