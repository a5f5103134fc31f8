use super::*;
use proptest::prelude::*;

fn sample() -> (Footer, u64) {
    let footer = Footer {
        data_end: 8192,
        index: Section {
            offset: 8192,
            len: 100,
            crc: 1,
        },
        bloom: Section {
            offset: 8292,
            len: 200,
            crc: 2,
        },
        props: Section {
            offset: 8492,
            len: 60,
            crc: 3,
        },
    };
    (footer, 12288)
}

fn props() -> Properties {
    Properties {
        entry_count: 10,
        tombstone_count: 2,
        max_version: Version { hlc: 99, node: 3 },
        smallest_key: b"aaa".to_vec(),
        largest_key: b"zzz".to_vec(),
    }
}

#[test]
fn footer_round_trips() {
    let (footer, size) = sample();
    assert_eq!(decode(&footer.encode(), size), Ok(footer));
}

#[test]
fn every_bit_flip_and_truncation_of_a_footer_is_an_error() {
    let (footer, size) = sample();
    let bytes = footer.encode();
    for bit in 0..FOOTER_SIZE * 8 {
        let mut b = bytes;
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(decode(&b, size).is_err(), "flip of bit {bit} accepted");
    }
    for len in 0..FOOTER_SIZE {
        assert!(decode(&bytes[..len], size).is_err());
    }
}

#[test]
fn a_footer_pointing_outside_the_file_is_an_error() {
    let (mut footer, size) = sample();
    footer.props.len = 4000;
    assert!(decode(&footer.encode(), size).is_err());
    let (mut footer, _) = sample();
    footer.data_end = 4097;
    assert!(decode(&footer.encode(), size).is_err());
    let (footer, _) = sample();
    assert!(decode(&footer.encode(), 50).is_err());
}

#[test]
fn every_bit_flip_and_truncation_of_properties_is_an_error() {
    let mut bytes = Vec::new();
    props().encode(&mut bytes);
    let crc = crc32c::crc32c(&bytes);
    assert_eq!(decode_properties(&bytes, crc), Ok(props()));
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(
            decode_properties(&b, crc).is_err(),
            "flip of bit {bit} accepted"
        );
    }
    for len in 0..bytes.len() {
        assert!(decode_properties(&bytes[..len], crc).is_err());
    }
}

proptest! {
    #[test]
    fn any_properties_round_trip(entries in 0u64..1000, tomb in 0u64..1000, hlc in any::<u64>(), node in any::<u32>(),
                                 a in prop::collection::vec(any::<u8>(), 1..64), b in prop::collection::vec(any::<u8>(), 1..64)) {
        let (smallest_key, largest_key) = if a <= b { (a, b) } else { (b, a) };
        let p = Properties { entry_count: entries + tomb, tombstone_count: tomb, max_version: Version { hlc, node }, smallest_key, largest_key };
        let mut bytes = Vec::new();
        p.encode(&mut bytes);
        prop_assert_eq!(decode_properties(&bytes, crc32c::crc32c(&bytes)), Ok(p));
    }

    #[test]
    fn random_bytes_never_panic_the_footer_decoder(bytes in prop::collection::vec(any::<u8>(), 0..100), size in any::<u64>()) {
        let _ = decode(&bytes, size);
        let _ = decode_properties(&bytes, crc32c::crc32c(&bytes));
    }
}
