use super::*;
use proptest::prelude::*;

fn record(i: u64, tombstone: bool, expires: u64, value_len: usize) -> Record {
    let version = Version {
        hlc: i * 7 + 1,
        node: (i % 5) as u32,
    };
    if tombstone {
        Record::tombstone(version)
    } else {
        Record::put(version, vec![(i % 251) as u8; value_len], expires)
    }
}

fn sample(compression: Compression) -> (Vec<(Vec<u8>, Record)>, Vec<u8>) {
    let mut b = BlockBuilder::new();
    let mut entries = Vec::new();
    for i in 0..20u64 {
        let key = format!("key-{i:04}").into_bytes();
        let r = record(
            i,
            i % 7 == 3,
            if i % 5 == 1 { 1_000_000 + i } else { 0 },
            40,
        );
        b.add(&key, &r);
        entries.push((key, r));
    }
    let mut out = Vec::new();
    let n = b.finish(compression, &mut out);
    assert_eq!(n, out.len());
    (entries, out)
}

fn assert_same(block: &Block, entries: &[(Vec<u8>, Record)]) {
    assert_eq!(block.len(), entries.len());
    for (i, (k, r)) in entries.iter().enumerate() {
        let e = block.entry(i);
        assert_eq!(e.key, k.as_slice());
        assert_eq!(&e.to_record(), r);
        assert_eq!(block.get(k).as_ref(), Some(r));
    }
}

#[test]
fn sample_block_round_trips_raw_and_lz4() {
    for c in [Compression::None, Compression::Lz4] {
        let (entries, bytes) = sample(c);
        assert_eq!(bytes.len() % 4096, 0);
        let block = decode(&bytes).expect("decodes");
        assert_same(&block, &entries);
        assert_eq!(block.get(b"key-0003a"), None);
        assert_eq!(block.seek(b"a"), 0);
        assert_eq!(block.seek(b"z"), entries.len());
        assert_eq!(block.last_key(), entries[entries.len() - 1].0.as_slice());
    }
}

#[test]
fn lz4_block_is_smaller_when_values_compress() {
    let (_, raw) = sample(Compression::None);
    let (_, lz4) = sample(Compression::Lz4);
    assert_eq!(raw[4] & FLAG_LZ4, 0);
    assert_eq!(lz4[4] & FLAG_LZ4, FLAG_LZ4);
    let stored = |b: &[u8]| u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    assert!(stored(&lz4) < stored(&raw));
}

#[test]
fn an_entry_larger_than_a_page_makes_a_larger_block() {
    let mut b = BlockBuilder::new();
    let r = record(1, false, 0, 10_000);
    b.add(b"big", &r);
    let mut out = Vec::new();
    assert_eq!(b.finish(Compression::None, &mut out), 12_288);
    assert_eq!(decode(&out).expect("decodes").get(b"big"), Some(r));
}

#[test]
fn every_bit_flip_of_a_block_is_an_error_or_lands_in_padding() {
    for c in [Compression::None, Compression::Lz4] {
        let (entries, bytes) = sample(c);
        let stored_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let covered = BLOCK_HEADER_SIZE + stored_len;
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            match decode(&b) {
                Err(_) => assert!(bit / 8 < covered, "flip in padding at bit {bit} refused"),
                Ok(block) => {
                    assert!(
                        bit / 8 >= covered,
                        "flip at bit {bit} (byte {}) accepted",
                        bit / 8
                    );
                    assert_same(&block, &entries);
                }
            }
        }
    }
}

#[test]
fn every_truncation_of_a_block_is_an_error() {
    for c in [Compression::None, Compression::Lz4] {
        let (_, bytes) = sample(c);
        let stored_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        for len in 0..BLOCK_HEADER_SIZE + stored_len {
            assert!(
                decode(&bytes[..len]).is_err(),
                "truncation to {len} accepted"
            );
        }
    }
}

#[test]
fn a_well_checksummed_block_with_bad_structure_is_an_error() {
    // Forge blocks with a valid checksum but broken contents: decode must
    // still refuse them (defends against bugs, not only against bit rot).
    let forge = |payload: &[u8]| {
        let mut out = vec![0u8; BLOCK_HEADER_SIZE];
        out[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        out[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
        let crc = crc32c::crc32c(&out[4..]);
        out[0..4].copy_from_slice(&crc.to_le_bytes());
        out
    };
    assert!(decode(&forge(&[])).is_err());
    assert!(decode(&forge(&0u32.to_le_bytes())).is_err());
    assert!(decode(&forge(&u32::MAX.to_le_bytes())).is_err());
    let mut one = Vec::new();
    one.extend_from_slice(&2u16.to_le_bytes());
    one.extend_from_slice(b"ab");
    one.push(0x80); // unknown kind
    one.extend_from_slice(&[0u8; 12]);
    one.extend_from_slice(&0u32.to_le_bytes());
    one.extend_from_slice(&1u32.to_le_bytes());
    assert!(decode(&forge(&one)).is_err());
}

fn arb_entries() -> impl Strategy<Value = Vec<(Vec<u8>, Record)>> {
    let rec = (
        any::<u64>(),
        any::<u32>(),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..300)),
        any::<u64>(),
    )
        .prop_map(|(hlc, node, value, expires)| Record {
            version: Version { hlc, node },
            expires_at_ms: if expires % 3 == 0 { 0 } else { expires },
            value,
        });
    prop::collection::btree_map(prop::collection::vec(any::<u8>(), 0..40), rec, 1..60)
        .prop_map(|m| m.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn any_sorted_entries_round_trip(entries in arb_entries(), lz4 in any::<bool>()) {
        let mut b = BlockBuilder::new();
        for (k, r) in &entries {
            b.add(k, r);
        }
        let mut out = Vec::new();
        b.finish(if lz4 { Compression::Lz4 } else { Compression::None }, &mut out);
        let block = decode(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        assert_same(&block, &entries);
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = decode(&bytes);
    }
}
