//! Shard-aware routing: which shard of a node owns a key, and on which port
//! that shard listens.
//!
//! Invariants: `token` is xxh3-64 of the key bytes (seed 0), stable across
//! versions and platforms; `shard_for` maps a token by its high bits (a
//! multiply-shift, "Lemire's fast range"), so each shard owns one contiguous
//! token range and a token range never splits across shards; a shard listens on
//! `base_port + 1 + shard`. Every server and client computes the same answer.

/// The token of a key: xxh3-64 of its bytes, seed 0.
#[must_use]
pub fn token(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// The shard (in `0..shard_count`) that owns `token`: the high bits of the
/// token scaled to `shard_count`, so shard `i` owns the contiguous range
/// `[ceil(i * 2^64 / n), ceil((i + 1) * 2^64 / n))`.
///
/// `shard_count` must be at least 1 (asserted: it is our own configuration,
/// validated when read from the wire).
#[must_use]
pub fn shard_for(token: u64, shard_count: u32) -> u32 {
    assert!(shard_count >= 1, "shard_count must be at least 1");
    // The product is < 2^64 * shard_count, so the shifted result is < shard_count.
    ((u128::from(token) * u128::from(shard_count)) >> 64) as u32
}

/// The port of shard `shard` of a node whose base port is `base_port`:
/// `base_port + 1 + shard`, saturating at `u16::MAX` (a configuration that
/// would overflow is refused by the server at start).
#[must_use]
pub fn shard_port(base_port: u16, shard: u32) -> u16 {
    let port = u32::from(base_port) + 1 + shard;
    u16::try_from(port).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_xxh3_64_of_the_key() {
        // Reference value of xxh3-64("") with seed 0.
        assert_eq!(token(b""), 0x2D06_8005_38D3_94C2);
    }

    #[test]
    fn shard_for_maps_by_high_bits_and_stays_in_range() {
        assert_eq!(shard_for(0, 4), 0);
        assert_eq!(shard_for(u64::MAX, 4), 3);
        assert_eq!(shard_for(1 << 62, 4), 1);
        assert_eq!(shard_for((1 << 62) - 1, 4), 0);
        assert_eq!(shard_for(u64::MAX, 1), 0);
        for t in [0u64, 1, 12345, u64::MAX / 3, u64::MAX] {
            for n in 1..=17 {
                assert!(shard_for(t, n) < n);
            }
        }
    }

    #[test]
    fn shard_for_is_monotonic_in_the_token() {
        let mut prev = 0;
        for i in 0..=1000u64 {
            let t = i.wrapping_mul(u64::MAX / 1000);
            let s = shard_for(t, 7);
            assert!(s >= prev);
            prev = s;
        }
    }

    #[test]
    fn shard_port_is_base_plus_one_plus_shard() {
        assert_eq!(shard_port(7379, 0), 7380);
        assert_eq!(shard_port(7379, 3), 7383);
        assert_eq!(shard_port(u16::MAX, 3), u16::MAX);
    }
}
