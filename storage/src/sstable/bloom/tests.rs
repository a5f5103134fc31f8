use super::*;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

fn keys(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen::<[u8; 16]>().to_vec()).collect()
}

#[test]
fn bloom_has_no_false_negatives_and_about_one_percent_false_positives() {
    let seed = 0x5eed_b100;
    let inserted = keys(seed, 100_000);
    let hashes: Vec<u64> = inserted.iter().map(|k| key_hash(k)).collect();
    let bloom = Bloom::build(&hashes, 10);
    assert_eq!(bloom.probes(), 7);
    for k in &inserted {
        assert!(bloom.may_contain(k), "false negative (seed {seed:#x})");
    }
    let probes = keys(seed + 1, 100_000);
    let fp = probes.iter().filter(|k| bloom.may_contain(k)).count();
    let rate = fp as f64 / probes.len() as f64;
    println!("bloom false-positive rate at 10 bits/key: {rate:.4}");
    assert!(
        rate < 0.015,
        "false-positive rate {rate} too high (seed {seed:#x})"
    );
    assert!(bloom.memory_bytes() <= 100_000 * 10 / 8 + 64);
}

#[test]
fn zero_bits_per_key_answers_maybe_for_everything() {
    let bloom = Bloom::build(&[1, 2, 3], 0);
    assert!(keys(7, 100).iter().all(|k| bloom.may_contain(k)));
}

#[test]
fn every_bit_flip_and_truncation_of_a_bloom_is_an_error() {
    let hashes: Vec<u64> = keys(3, 200).iter().map(|k| key_hash(k)).collect();
    let bloom = Bloom::build(&hashes, 10);
    let mut bytes = Vec::new();
    bloom.encode(&mut bytes);
    let crc = crc32c::crc32c(&bytes);
    assert_eq!(decode(&bytes, crc).expect("decodes"), bloom);
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(decode(&b, crc).is_err(), "flip of bit {bit} accepted");
    }
    for len in 0..bytes.len() {
        assert!(
            decode(&bytes[..len], crc).is_err(),
            "truncation to {len} accepted"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]
    #[test]
    fn any_bloom_round_trips_without_false_negatives(hashes in prop::collection::vec(any::<u64>(), 0..2000), bits in 1u32..20) {
        let bloom = Bloom::build(&hashes, bits);
        let mut bytes = Vec::new();
        bloom.encode(&mut bytes);
        let back = decode(&bytes, crc32c::crc32c(&bytes)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for h in &hashes {
            prop_assert!(back.may_contain_hash(*h));
        }
        prop_assert_eq!(back, bloom);
    }

    #[test]
    fn random_bytes_never_panic_the_bloom_decoder(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode(&bytes, crc32c::crc32c(&bytes));
    }
}
