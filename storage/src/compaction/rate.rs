//! A token bucket limiting compaction I/O to a byte rate.
//!
//! The caller asks before each write how long to wait; the bucket may go into
//! debt by one request, so a write larger than the burst still proceeds after
//! the proportional wait. Time is an argument (no clock inside), so it is
//! tested without sleeping.

use std::time::{Duration, Instant};

/// Smallest burst the bucket allows, in bytes (one table block write batch).
const BURST_BYTES_MIN: f64 = 256.0 * 1024.0;

/// A byte-rate limiter; a rate of 0 means unlimited.
#[derive(Debug)]
pub struct TokenBucket {
    rate_bytes_per_sec: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling at `rate_bytes_per_sec` (0 = unlimited), with a
    /// burst of a tenth of a second's worth of bytes (at least 256 KiB).
    pub fn new(rate_bytes_per_sec: u64, now: Instant) -> Self {
        let rate = rate_bytes_per_sec as f64;
        let capacity = (rate / 10.0).max(BURST_BYTES_MIN);
        TokenBucket {
            rate_bytes_per_sec: rate,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    /// Takes `bytes` from the bucket and returns how long the caller must wait
    /// before issuing them (zero when the bucket had enough).
    pub fn take(&mut self, bytes: u64, now: Instant) -> Duration {
        if self.rate_bytes_per_sec <= 0.0 {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate_bytes_per_sec).min(self.capacity);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate_bytes_per_sec)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_bucket_never_waits() {
        let now = Instant::now();
        let mut b = TokenBucket::new(0, now);
        assert_eq!(b.take(u64::MAX / 2, now), Duration::ZERO);
    }

    #[test]
    fn burst_is_free_then_waits_follow_the_rate() {
        let now = Instant::now();
        let mut b = TokenBucket::new(10 * 1024 * 1024, now); // burst 1 MiB
        assert_eq!(b.take(1024 * 1024, now), Duration::ZERO);
        // Another MiB at 10 MiB/s: a tenth of a second of debt.
        let wait = b.take(1024 * 1024, now);
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        // After paying the debt and a further 50 ms, half a MiB is free again.
        let later = now + Duration::from_millis(150);
        assert_eq!(b.take(512 * 1024, later), Duration::ZERO);
    }

    #[test]
    fn long_idle_periods_do_not_build_more_than_the_burst() {
        let now = Instant::now();
        let mut b = TokenBucket::new(1024 * 1024, now); // burst 256 KiB
        let later = now + Duration::from_secs(3600);
        assert_eq!(b.take(256 * 1024, later), Duration::ZERO);
        assert!(b.take(1024 * 1024, later) >= Duration::from_millis(999));
    }
}
