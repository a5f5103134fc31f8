//! Open-loop send times: when each request of a connection was *meant* to be sent.
//!
//! At a fixed rate, request `i` of a connection is due at `phase + i * period`. Latency is
//! measured from that intended time, not from when the request actually left: if the server
//! stalls, the requests that should have been sent during the stall are charged the time they
//! waited in the client too. This is the coordinated-omission correction (Gil Tene, "How NOT to
//! Measure Latency"; wrk2 does the same). Closed-loop runs have no schedule and measure from the
//! actual send.
//!
//! Times are `Duration`s since the start of the run, so the logic is pure and testable without
//! a clock. Invariant: `sent` only grows, and due times are issued in order, exactly once.

use std::time::Duration;

/// The schedule of one connection.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    period_ns: f64,
    phase_ns: f64,
    sent: u64,
}

impl OpenLoop {
    /// A connection sending `rate` requests per second, its first due at `phase` (spread phases
    /// over `0..period` across connections so they do not all fire at once). `rate > 0`.
    pub fn new(rate: f64, phase: Duration) -> Self {
        assert!(
            rate > 0.0 && rate.is_finite(),
            "open-loop rate must be positive"
        );
        Self {
            period_ns: 1e9 / rate,
            phase_ns: phase.as_nanos() as f64,
            sent: 0,
        }
    }

    /// The period between two requests.
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.period_ns as u64)
    }

    /// When request `index` is due.
    pub fn due_at(&self, index: u64) -> Duration {
        Duration::from_nanos((self.phase_ns + index as f64 * self.period_ns) as u64)
    }

    /// When the next unsent request is due.
    pub fn next_due(&self) -> Duration {
        self.due_at(self.sent)
    }

    /// If the next request is due at `now`, takes it and returns its intended send time.
    pub fn take_due(&mut self, now: Duration) -> Option<Duration> {
        let due = self.next_due();
        if due <= now {
            self.sent += 1;
            Some(due)
        } else {
            None
        }
    }

    /// Requests taken so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

/// The phase of connection `index` of `count`, spreading their first sends over one period.
pub fn phase_for(index: usize, count: usize, per_connection_rate: f64) -> Duration {
    let period_ns = 1e9 / per_connection_rate;
    Duration::from_nanos((period_ns * index as f64 / count.max(1) as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::latency_histogram;

    #[test]
    fn requests_come_due_at_the_rate_in_order_exactly_once() {
        let mut s = OpenLoop::new(1000.0, Duration::from_micros(250));
        assert_eq!(s.take_due(Duration::from_micros(249)), None);
        let mut taken = Vec::new();
        while let Some(t) = s.take_due(Duration::from_millis(10)) {
            taken.push(t);
        }
        // Due at 0.25 ms, 1.25 ms, ..., 9.25 ms: ten of them.
        assert_eq!(taken.len(), 10);
        assert!(taken
            .windows(2)
            .all(|w| w[1] - w[0] == Duration::from_millis(1)));
        assert_eq!(s.next_due(), Duration::from_micros(10_250));
        assert_eq!(s.sent(), 10);
    }

    #[test]
    fn phases_spread_connections_over_one_period() {
        let phases: Vec<Duration> = (0..4).map(|i| phase_for(i, 4, 100.0)).collect();
        assert_eq!(phases, [0, 2_500, 5_000, 7_500].map(Duration::from_micros));
    }

    /// One connection, pipeline depth 1, against a model server that answers in 50 us except for
    /// one 200 ms stall at t = 1 s. Returns p99 in microseconds.
    fn p99_with_a_stall(corrected: bool) -> u64 {
        let service = Duration::from_micros(50);
        let stall_at = Duration::from_secs(1);
        let stall = Duration::from_millis(200);
        let end = Duration::from_secs(2);
        let mut schedule = OpenLoop::new(1000.0, Duration::ZERO);
        let mut hist = latency_histogram();
        let mut now = Duration::ZERO;
        while now < end {
            let intended = match schedule.take_due(now) {
                Some(t) => t,
                None => {
                    now = schedule.next_due();
                    continue;
                }
            };
            let sent = now;
            let mut done = sent + service;
            if sent <= stall_at && stall_at < done + stall {
                done = stall_at.max(sent) + stall;
            }
            let start = if corrected { intended } else { sent };
            hist.saturating_record((done - start).as_nanos() as u64);
            now = done;
        }
        hist.value_at_quantile(0.99) / 1000
    }

    #[test]
    fn latency_from_intended_send_time_exposes_a_stall_that_closed_loop_hides() {
        let naive = p99_with_a_stall(false);
        let corrected = p99_with_a_stall(true);
        assert!(
            naive < 100,
            "measured from the actual send, the stall is one sample: p99 {naive} us"
        );
        assert!(
            corrected > 50_000,
            "from the intended time, ~200 requests waited: p99 {corrected} us"
        );
    }
}
