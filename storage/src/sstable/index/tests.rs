use super::*;
use proptest::prelude::*;

fn sample() -> Index {
    let mut index = Index::new();
    for i in 0..12u32 {
        index.push(
            format!("last-{i:03}").as_bytes(),
            4096 * (1 + (i as usize % 3)),
        );
    }
    index
}

fn encoded(index: &Index) -> (Vec<u8>, u32) {
    let mut out = Vec::new();
    index.encode(&mut out);
    let crc = crc32c::crc32c(&out);
    (out, crc)
}

#[test]
fn sample_index_round_trips_and_finds_blocks() {
    let index = sample();
    let (bytes, crc) = encoded(&index);
    let back = decode(&bytes, crc, index.data_end()).expect("decodes");
    assert_eq!(back, index);
    assert_eq!(back.find(b"a"), Some(0));
    assert_eq!(back.find(b"last-000"), Some(0));
    assert_eq!(back.find(b"last-0005"), Some(1));
    assert_eq!(back.find(b"last-011"), Some(11));
    assert_eq!(back.find(b"last-012"), None);
    assert_eq!(
        back.handle(0),
        BlockHandle {
            offset: 0,
            len: 4096
        }
    );
    assert_eq!(
        back.handle(1),
        BlockHandle {
            offset: 4096,
            len: 8192
        }
    );
}

#[test]
fn every_bit_flip_and_truncation_of_an_index_is_an_error() {
    let index = sample();
    let (bytes, crc) = encoded(&index);
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(
            decode(&b, crc, index.data_end()).is_err(),
            "flip of bit {bit} accepted"
        );
    }
    for len in 0..bytes.len() {
        assert!(
            decode(&bytes[..len], crc, index.data_end()).is_err(),
            "truncation to {len} accepted"
        );
    }
    assert!(decode(&bytes, crc, index.data_end() + 4096).is_err());
}

#[test]
fn a_well_checksummed_index_with_bad_structure_is_an_error() {
    let with_crc = |b: &[u8]| decode(b, crc32c::crc32c(b), 4096);
    // count claims more entries than the bytes hold
    assert!(with_crc(&1000u32.to_le_bytes()).is_err());
    // a block that does not start where the previous ended
    let mut b = 1u32.to_le_bytes().to_vec();
    b.extend_from_slice(&1u16.to_le_bytes());
    b.push(b'k');
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    assert!(with_crc(&b).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn any_index_round_trips(keys in prop::collection::btree_set(prop::collection::vec(any::<u8>(), 0..50), 0..100),
                             pages in prop::collection::vec(1usize..5, 100)) {
        let mut index = Index::new();
        for (k, p) in keys.iter().zip(&pages) {
            index.push(k, p * 4096);
        }
        let (bytes, crc) = encoded(&index);
        let back = decode(&bytes, crc, index.data_end()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, index);
    }

    #[test]
    fn random_bytes_never_panic_the_index_decoder(bytes in prop::collection::vec(any::<u8>(), 0..500)) {
        let crc = crc32c::crc32c(&bytes);
        let _ = decode(&bytes, crc, 4096 * 3);
    }
}
