//! The machine's own stalls: how long a CPU stops running a thread that
//! never blocks, and what that alone does to open-loop latency.
//!
//! On a virtual machine the hypervisor takes a vCPU away now and then (the
//! guest sees no interrupt, no context switch and no steal time, only a jump
//! of the clock). A request that falls due while the server's or the
//! client's CPU is taken away waits for it to come back, however fast both
//! programs are. `stall-probe` spins on each CPU reading the clock and keeps
//! every jump; this module turns those jumps into the share of a
//! constant-rate request stream that a stall alone delays past a bound.
//!
//! A stall of length `L` starting at `t` delays a request due at `t + x`
//! (`0 <= x < L`) by at least `L - x`: by more than `bound` exactly when
//! `x < L - bound`. So of requests due at a constant rate, the share delayed
//! past `bound` is `sum(max(0, L - bound)) / elapsed`. Stalls on the server's
//! and the client's CPU add up (a request can meet either), so the shares of
//! the two CPUs add. When that sum exceeds 1 - q, the q-quantile of latency
//! cannot be below `bound` on this machine, for any server: for example
//! 0.1 % delayed past 2 ms rules out a p99.9 under 2 ms.

use std::time::{Duration, Instant};

/// Gaps between two clock readings shorter than this are the loop itself
/// (and interrupts), not kept.
pub const GAP_KEPT_MIN: Duration = Duration::from_micros(10);

/// The clock jumps one spinning CPU saw.
#[derive(Debug, Clone, Default)]
pub struct StallLog {
    /// Every gap of at least [`GAP_KEPT_MIN`], in order.
    gaps: Vec<Duration>,
    /// Time spun, from the first reading to the last.
    elapsed: Duration,
}

impl StallLog {
    /// A log of `gaps` (the short ones are dropped) over `elapsed`.
    pub fn new(gaps: impl IntoIterator<Item = Duration>, elapsed: Duration) -> Self {
        Self {
            gaps: gaps.into_iter().filter(|g| *g >= GAP_KEPT_MIN).collect(),
            elapsed,
        }
    }

    /// Spins on the calling thread for `duration`, reading the clock, and
    /// logs every gap. Pin the thread first: this measures whatever CPU it
    /// runs on.
    pub fn spin(duration: Duration) -> Self {
        let start = Instant::now();
        let mut last = start;
        let mut gaps = Vec::new();
        loop {
            let now = Instant::now();
            let gap = now - last;
            if gap >= GAP_KEPT_MIN {
                gaps.push(gap);
            }
            last = now;
            if now - start >= duration {
                return Self {
                    gaps,
                    elapsed: now - start,
                };
            }
        }
    }

    /// Time spun.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Number of gaps of at least `min`.
    pub fn count_at_least(&self, min: Duration) -> usize {
        self.gaps.iter().filter(|g| **g >= min).count()
    }

    /// Total length of the gaps of at least `min`.
    pub fn time_in_gaps_at_least(&self, min: Duration) -> Duration {
        self.gaps.iter().filter(|g| **g >= min).sum()
    }

    /// The longest gap (zero if none was kept).
    pub fn longest(&self) -> Duration {
        self.gaps.iter().copied().max().unwrap_or_default()
    }

    /// Share (0..=1) of requests due at a constant rate that this CPU's
    /// stalls alone delay by more than `bound` (see the module doc).
    pub fn share_delayed_past(&self, bound: Duration) -> f64 {
        if self.elapsed.is_zero() {
            return 0.0;
        }
        let delayed: Duration = self.gaps.iter().map(|g| g.saturating_sub(bound)).sum();
        (delayed.as_secs_f64() / self.elapsed.as_secs_f64()).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: f64) -> Duration {
        Duration::from_secs_f64(x / 1000.0)
    }

    #[test]
    fn the_share_delayed_counts_only_what_each_stall_holds_past_the_bound() {
        // Over 10 s: stalls of 4 ms, 2.5 ms and 1 ms, and loop noise.
        let log = StallLog::new([ms(4.0), ms(0.005), ms(2.5), ms(1.0)], ms(10_000.0));
        assert_eq!(log.count_at_least(ms(1.0)), 3);
        assert_eq!(log.time_in_gaps_at_least(ms(2.0)), ms(6.5));
        assert_eq!(log.longest(), ms(4.0));
        // Past 2 ms: (4 - 2) + (2.5 - 2) = 2.5 ms of the 10 s.
        assert!((log.share_delayed_past(ms(2.0)) - 2.5e-4).abs() < 1e-9);
        // Past 1 ms: 3 + 1.5 + 0 = 4.5 ms.
        assert!((log.share_delayed_past(ms(1.0)) - 4.5e-4).abs() < 1e-9);
        // Past the longest stall: nothing.
        assert_eq!(log.share_delayed_past(ms(4.0)), 0.0);
    }

    #[test]
    fn gaps_under_the_kept_minimum_are_dropped_and_an_empty_log_delays_nothing() {
        let log = StallLog::new([Duration::from_micros(9)], Duration::ZERO);
        assert_eq!(log.count_at_least(Duration::ZERO), 0);
        assert_eq!(log.share_delayed_past(Duration::ZERO), 0.0);
    }

    #[test]
    fn spinning_keeps_the_time_asked_for() {
        let log = StallLog::spin(Duration::from_millis(20));
        assert!(log.elapsed() >= Duration::from_millis(20));
        // Every kept gap lies within the time spun.
        assert!(log.time_in_gaps_at_least(Duration::ZERO) <= log.elapsed());
    }
}
