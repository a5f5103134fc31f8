//! Static membership: learning seeds, building the ring, the peers file.

use ringkv_cluster::{default_tokens, Membership, MembershipError, NodeInfo};

fn info(id: u32, port: u16, rack: &str) -> NodeInfo {
    NodeInfo {
        id,
        host: "127.0.0.1".into(),
        port,
        shards: 2,
        rack: rack.into(),
        tokens: default_tokens(id, 16),
    }
}

fn seeds() -> Vec<String> {
    [
        "127.0.0.1:7001",
        "127.0.0.1:7002",
        "127.0.0.1:7003",
        "127.0.0.1:7002",
    ]
    .map(String::from)
    .to_vec()
}

fn resolved() -> Membership {
    let mut m = Membership::new(info(1, 7001, ""), seeds());
    assert!(m.learn("127.0.0.1:7002", info(2, 7002, "rack b")).unwrap());
    assert!(m.learn("127.0.0.1:7003", info(3, 7003, "")).unwrap());
    m
}

#[test]
fn my_own_address_and_repeated_seeds_are_dropped() {
    let m = Membership::new(info(1, 7001, ""), seeds());
    assert_eq!(m.seeds(), ["127.0.0.1:7002", "127.0.0.1:7003"]);
    assert_eq!(m.unresolved(), ["127.0.0.1:7002", "127.0.0.1:7003"]);
    assert_eq!(m.me().id, 1);
}

#[test]
fn the_ring_exists_once_every_seed_is_resolved() {
    let mut m = Membership::new(info(1, 7001, ""), seeds());
    assert!(m.ring(3).is_none());
    assert!(m.learn("127.0.0.1:7002", info(2, 7002, "")).unwrap());
    assert!(
        !m.learn("127.0.0.1:7002", info(2, 7002, "")).unwrap(),
        "nothing changed"
    );
    assert!(m.ring(3).is_none());
    assert_eq!(m.unresolved(), ["127.0.0.1:7003"]);
    m.learn("127.0.0.1:7003", info(3, 7003, "")).unwrap();
    let ring = m.ring(3).unwrap().unwrap();
    assert_eq!(
        ring.nodes().iter().map(|n| n.id).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(m.known("127.0.0.1:7003").unwrap().id, 3);
    assert!(m.ring(0).unwrap().is_err());
}

#[test]
fn two_nodes_with_one_id_or_my_id_are_refused() {
    let mut m = Membership::new(info(1, 7001, ""), seeds());
    m.learn("127.0.0.1:7002", info(2, 7002, "")).unwrap();
    assert!(matches!(
        m.learn("127.0.0.1:7003", info(2, 7003, "")),
        Err(MembershipError::DuplicateId { node: 2, .. })
    ));
    assert!(matches!(
        m.learn("127.0.0.1:7003", info(1, 7003, "")),
        Err(MembershipError::MyId { node: 1, .. })
    ));
    assert!(matches!(
        m.learn("10.0.0.1:1", info(5, 1, "")),
        Err(MembershipError::UnknownSeed { .. })
    ));
    // A node at a seed may come back with a new identity.
    assert!(m.learn("127.0.0.1:7002", info(4, 7002, "")).unwrap());
}

#[test]
fn the_peers_file_round_trips() {
    let m = resolved();
    let text = m.encode_peers();
    let mut fresh = Membership::new(info(1, 7001, ""), seeds());
    fresh.load_peers(&text).unwrap();
    assert_eq!(fresh.known("127.0.0.1:7002"), m.known("127.0.0.1:7002"));
    assert_eq!(fresh.known("127.0.0.1:7003"), m.known("127.0.0.1:7003"));
    assert_eq!(
        fresh.ring(3).unwrap().unwrap().version(),
        m.ring(3).unwrap().unwrap().version()
    );
    assert_eq!(fresh.encode_peers(), text);
}

#[test]
fn a_peers_file_for_other_seeds_loads_only_the_current_ones() {
    let text = resolved().encode_peers();
    let mut m = Membership::new(info(1, 7001, ""), vec!["127.0.0.1:7003".into()]);
    m.load_peers(&text).unwrap();
    assert!(m.unresolved().is_empty());
}

#[test]
fn a_damaged_peers_file_is_refused_with_its_line_and_changes_nothing() {
    let text = resolved().encode_peers();
    let mut m = Membership::new(info(1, 7001, ""), seeds());
    // Every single-byte change is caught (checksum, or a malformed line).
    for i in 0..text.len() {
        let mut bytes = text.clone().into_bytes();
        bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
        let Ok(damaged) = String::from_utf8(bytes) else {
            continue;
        };
        assert!(
            m.load_peers(&damaged).is_err(),
            "byte {i} changed but accepted"
        );
    }
    // Every truncation is refused (except of the final newline alone).
    for cut in 0..text.len() - 1 {
        assert!(m.load_peers(&text[..cut]).is_err(), "cut at {cut} accepted");
    }
    assert_eq!(m.unresolved().len(), 2, "nothing learned from bad files");
    let last = text.lines().count();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[last - 1] = "checksum 0000000000000000";
    let err = m.load_peers(&(lines.join("\n") + "\n")).unwrap_err();
    assert!(
        matches!(err, MembershipError::BadPeersChecksum { line, .. } if line == last),
        "{err}"
    );
}

#[test]
fn a_malformed_peer_line_names_its_line_number() {
    let body = "ringkv-peers v1\npeer 127.0.0.1:7002 2 127.0.0.1 7002 1 % 00000000000000zz\n";
    let text = format!(
        "{body}checksum {:016x}\n",
        xxhash_rust::xxh3::xxh3_64(body.as_bytes())
    );
    let mut m = Membership::new(info(1, 7001, ""), seeds());
    let err = m.load_peers(&text).unwrap_err();
    assert!(
        matches!(err, MembershipError::BadPeersLine { line: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("line 2"));
}

proptest::proptest! {
    #[test]
    fn arbitrary_peers_text_is_refused_or_loaded_never_a_panic(text in "\\PC{0,300}") {
        let mut m = Membership::new(info(1, 7001, ""), seeds());
        let _ = m.load_peers(&text);
        let _ = m.load_peers(&format!("ringkv-peers v1\n{text}"));
    }
}
