//! Integer parsing with Redis's exact rules (`string2ll`, `string2ull`): an
//! optional `-`, then decimal digits with no leading zero (except `0`
//! itself), no `+`, no spaces, and the value in range. Used for protocol
//! lengths and for integer arguments, so both are refused exactly when Redis
//! refuses them.

/// Parses a signed 64-bit integer as Redis's `string2ll` does.
#[must_use]
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let magnitude = parse_magnitude(digits)?;
    if negative {
        if digits == b"0" {
            return None;
        }
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Parses an unsigned 64-bit integer as Redis's `string2ull` does (used for
/// SCAN cursors).
#[must_use]
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    parse_magnitude(s)
}

fn parse_magnitude(digits: &[u8]) -> Option<u64> {
    match digits {
        [] => None,
        [b'0'] => Some(0),
        [first, ..] if !(b'1'..=b'9').contains(first) => None,
        _ if digits.len() > 20 => None,
        _ => digits.iter().try_fold(0u64, |acc, &d| {
            if d.is_ascii_digit() {
                acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            } else {
                None
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_redis_string2ll_rules() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"42"), Some(42));
        assert_eq!(parse_i64(b"-42"), Some(-42));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1.0",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999999",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"-1"), None);
    }
}
