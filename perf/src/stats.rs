//! Latency and throughput bookkeeping: one [`Recorder`] per loadgen thread (no sharing on the
//! hot path), per-second interval histograms streamed to the main thread, and summaries.
//!
//! Latencies are recorded in nanoseconds. Whole-run histograms keep 3 significant digits up to
//! `LATENCY_NS_MAX` (slower requests saturate there and are still counted); per-second
//! histograms keep 2 digits so a long run stays small. A thread hands its interval `k` over as
//! soon as it records into a later second, so memory does not grow with the run's length; the
//! main thread's [`IntervalMerger`] declares second `k` complete once every thread has moved past
//! it (or finished).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::limits::{HISTOGRAM_DIGITS, INTERVAL_HISTOGRAM_DIGITS, LATENCY_NS_MAX};
use crate::workload::{OpKind, OP_KINDS};

/// A whole-run latency histogram (ns, 3 digits).
pub fn latency_histogram() -> Histogram<u64> {
    hist_with(HISTOGRAM_DIGITS)
}

fn interval_histogram() -> Histogram<u64> {
    hist_with(INTERVAL_HISTOGRAM_DIGITS)
}

fn hist_with(digits: u8) -> Histogram<u64> {
    match Histogram::new_with_bounds(1, LATENCY_NS_MAX, digits) {
        Ok(h) => h,
        // The bounds are constants that hdrhistogram accepts (1 <= low, high >= 2 * low, digits <= 5).
        Err(e) => unreachable!("constant histogram bounds rejected: {e}"),
    }
}

/// What one thread measured in one second of the run.
#[derive(Debug, Clone)]
pub struct IntervalReport {
    /// The reporting thread.
    pub thread: usize,
    /// Second of the run (0 = first).
    pub second: u64,
    /// Latencies per [`OpKind`] index.
    pub per_op: Vec<Histogram<u64>>,
    /// Errors in that second.
    pub errors: u64,
}

/// Per-thread recorder. Not `Send`-shared: each thread owns one and merges at the end.
#[derive(Debug)]
pub struct Recorder {
    thread: usize,
    start: Instant,
    totals: Vec<Histogram<u64>>,
    errors: [u64; OP_KINDS],
    misses: [u64; OP_KINDS],
    second: u64,
    interval: Vec<Histogram<u64>>,
    interval_errors: u64,
    sink: Option<std::sync::mpsc::Sender<IntervalReport>>,
}

impl Recorder {
    /// A recorder for `thread`, whose seconds count from `start`; intervals go to `sink` if any.
    pub fn new(
        thread: usize,
        start: Instant,
        sink: Option<std::sync::mpsc::Sender<IntervalReport>>,
    ) -> Self {
        Self {
            thread,
            start,
            totals: (0..OP_KINDS).map(|_| latency_histogram()).collect(),
            errors: [0; OP_KINDS],
            misses: [0; OP_KINDS],
            second: 0,
            interval: (0..OP_KINDS).map(|_| interval_histogram()).collect(),
            interval_errors: 0,
            sink,
        }
    }

    /// Records one completed request of `kind` that took `latency`, finishing at `now`.
    pub fn record(&mut self, kind: OpKind, latency: Duration, now: Instant) {
        self.rotate(now);
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.totals[kind.index()].saturating_record(ns);
        self.interval[kind.index()].saturating_record(ns);
    }

    /// Counts a read that found no value (a success, reported separately).
    pub fn record_miss(&mut self, kind: OpKind) {
        self.misses[kind.index()] += 1;
    }

    /// Counts a failed request (error reply, timeout or broken connection).
    pub fn record_error(&mut self, kind: OpKind, now: Instant) {
        self.rotate(now);
        self.errors[kind.index()] += 1;
        self.interval_errors += 1;
    }

    fn rotate(&mut self, now: Instant) {
        let second = now.saturating_duration_since(self.start).as_secs();
        if second != self.second {
            self.flush_interval();
            self.second = second;
        }
    }

    fn flush_interval(&mut self) {
        let empty = self.interval.iter().all(|h| h.is_empty()) && self.interval_errors == 0;
        if let (Some(sink), false) = (&self.sink, empty) {
            let per_op = std::mem::replace(
                &mut self.interval,
                (0..OP_KINDS).map(|_| interval_histogram()).collect(),
            );
            // The receiver outlives the threads; if it is gone the run is ending and intervals no longer matter.
            let _ = sink.send(IntervalReport {
                thread: self.thread,
                second: self.second,
                per_op,
                errors: self.interval_errors,
            });
        } else {
            self.interval.iter_mut().for_each(|h| h.reset());
        }
        self.interval_errors = 0;
    }

    /// Sends the last interval and returns the whole-run totals.
    pub fn finish(mut self) -> Totals {
        self.flush_interval();
        Totals {
            per_op: self.totals,
            errors: self.errors,
            misses: self.misses,
        }
    }
}

/// Whole-run results of one or more threads.
#[derive(Debug, Clone)]
pub struct Totals {
    /// Latencies per [`OpKind`] index.
    pub per_op: Vec<Histogram<u64>>,
    /// Errors per kind.
    pub errors: [u64; OP_KINDS],
    /// Misses (reads of absent keys) per kind.
    pub misses: [u64; OP_KINDS],
}

impl Totals {
    /// Empty totals.
    pub fn new() -> Self {
        Self {
            per_op: (0..OP_KINDS).map(|_| latency_histogram()).collect(),
            errors: [0; OP_KINDS],
            misses: [0; OP_KINDS],
        }
    }

    /// Adds another thread's totals.
    pub fn merge(&mut self, other: &Totals) {
        for (mine, theirs) in self.per_op.iter_mut().zip(&other.per_op) {
            // Same bounds on both sides, so `add` cannot fail; a failure would lose only this thread's samples.
            let _ = mine.add(theirs);
        }
        for i in 0..OP_KINDS {
            self.errors[i] += other.errors[i];
            self.misses[i] += other.misses[i];
        }
    }

    /// Completed requests plus errors, all kinds.
    pub fn requests(&self) -> u64 {
        self.per_op.iter().map(|h| h.len()).sum::<u64>() + self.errors.iter().sum::<u64>()
    }

    /// Errors, all kinds.
    pub fn error_count(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// One summary per kind that saw traffic, then `all` if more than one did.
    pub fn summaries(&self, elapsed: Duration) -> Vec<OpSummary> {
        let mut rows: Vec<OpSummary> = OpKind::ALL
            .iter()
            .filter(|k| self.per_op[k.index()].len() + self.errors[k.index()] > 0)
            .map(|k| {
                OpSummary::new(
                    k.name(),
                    &self.per_op[k.index()],
                    self.errors[k.index()],
                    self.misses[k.index()],
                    elapsed,
                )
            })
            .collect();
        if rows.len() > 1 {
            let mut all = latency_histogram();
            for h in &self.per_op {
                let _ = all.add(h);
            }
            rows.push(OpSummary::new(
                "all",
                &all,
                self.error_count(),
                self.misses.iter().sum(),
                elapsed,
            ));
        }
        rows
    }
}

impl Default for Totals {
    fn default() -> Self {
        Self::new()
    }
}

/// One row of the results table (latencies in microseconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpSummary {
    /// Operation name.
    pub op: String,
    /// Successful requests.
    pub count: u64,
    /// Failed requests.
    pub errors: u64,
    /// Reads that found nothing.
    pub misses: u64,
    /// Successful requests per second of the measured phase.
    pub ops_per_s: f64,
    /// Mean latency.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// 99.99th percentile.
    pub p9999_us: f64,
    /// Slowest.
    pub max_us: f64,
}

impl OpSummary {
    /// The summary of `hist` (ns) over `elapsed`.
    pub fn new(
        op: &str,
        hist: &Histogram<u64>,
        errors: u64,
        misses: u64,
        elapsed: Duration,
    ) -> Self {
        let us = |q: f64| {
            if hist.is_empty() {
                0.0
            } else {
                hist.value_at_quantile(q) as f64 / 1000.0
            }
        };
        let secs = elapsed.as_secs_f64().max(1e-9);
        Self {
            op: op.to_string(),
            count: hist.len(),
            errors,
            misses,
            ops_per_s: hist.len() as f64 / secs,
            mean_us: if hist.is_empty() {
                0.0
            } else {
                hist.mean() / 1000.0
            },
            p50_us: us(0.5),
            p90_us: us(0.9),
            p99_us: us(0.99),
            p999_us: us(0.999),
            p9999_us: us(0.9999),
            max_us: if hist.is_empty() {
                0.0
            } else {
                hist.max() as f64 / 1000.0
            },
        }
    }
}

/// The results table, one row per summary.
pub fn render_table(rows: &[OpSummary]) -> String {
    let mut out = format!(
        "{:<7} {:>11} {:>12} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "op",
        "requests",
        "ops/s",
        "errors",
        "misses",
        "p50 us",
        "p90 us",
        "p99 us",
        "p99.9 us",
        "p99.99 us",
        "max us",
        "mean us"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<7} {:>11} {:>12.0} {:>8} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}\n",
            r.op, r.count, r.ops_per_s, r.errors, r.misses, r.p50_us, r.p90_us, r.p99_us, r.p999_us, r.p9999_us, r.max_us, r.mean_us
        ));
    }
    out
}

/// One completed second of the whole run (all threads).
#[derive(Debug, Clone)]
pub struct Interval {
    /// Second of the run.
    pub second: u64,
    /// Latencies per [`OpKind`] index.
    pub per_op: Vec<Histogram<u64>>,
    /// Errors in that second.
    pub errors: u64,
}

impl Interval {
    /// Requests completed in this second, all kinds.
    pub fn ops(&self) -> u64 {
        self.per_op.iter().map(|h| h.len()).sum()
    }

    /// The given quantile over all kinds, in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        let mut all = interval_histogram();
        for h in &self.per_op {
            let _ = all.add(h);
        }
        if all.is_empty() {
            0.0
        } else {
            all.value_at_quantile(q) as f64 / 1000.0
        }
    }
}

/// Merges the threads' interval reports into whole-run seconds, in order.
#[derive(Debug)]
pub struct IntervalMerger {
    /// Per thread: the highest second it reported, or that it finished.
    progress: Vec<Option<u64>>,
    finished: Vec<bool>,
    pending: BTreeMap<u64, Interval>,
}

impl IntervalMerger {
    /// A merger for `threads` threads.
    pub fn new(threads: usize) -> Self {
        Self {
            progress: vec![None; threads],
            finished: vec![false; threads],
            pending: BTreeMap::new(),
        }
    }

    /// Adds one report. Reports of one thread arrive in increasing `second`.
    pub fn add(&mut self, report: IntervalReport) {
        let entry = self
            .pending
            .entry(report.second)
            .or_insert_with(|| Interval {
                second: report.second,
                per_op: (0..OP_KINDS).map(|_| interval_histogram()).collect(),
                errors: 0,
            });
        for (mine, theirs) in entry.per_op.iter_mut().zip(&report.per_op) {
            let _ = mine.add(theirs);
        }
        entry.errors += report.errors;
        if let Some(slot) = self.progress.get_mut(report.thread) {
            *slot = Some(slot.map_or(report.second, |s| s.max(report.second)));
        }
    }

    /// Marks `thread` as done: it will report nothing more.
    pub fn finish_thread(&mut self, thread: usize) {
        if let Some(f) = self.finished.get_mut(thread) {
            *f = true;
        }
    }

    /// Seconds that no thread can add to any more, in order.
    pub fn take_complete(&mut self) -> Vec<Interval> {
        // A second is complete once every live thread has reported a later one.
        let horizon = self
            .progress
            .iter()
            .zip(&self.finished)
            .map(|(p, &done)| if done { u64::MAX } else { p.map_or(0, |s| s) })
            .min()
            .unwrap_or(u64::MAX);
        let mut out = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() >= horizon {
                break;
            }
            out.push(entry.remove());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn recorder_hands_over_each_second_and_totals_keep_everything() {
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        let mut r = Recorder::new(0, start, Some(tx));
        for i in 0..100u64 {
            r.record(
                OpKind::Read,
                Duration::from_micros(100 + i),
                start + Duration::from_millis(i * 25),
            );
        }
        r.record_error(OpKind::Update, start + Duration::from_millis(2600));
        r.record_miss(OpKind::Read);
        let totals = r.finish();
        let reports: Vec<IntervalReport> = rx.try_iter().collect();
        let seconds: Vec<u64> = reports.iter().map(|r| r.second).collect();
        assert_eq!(seconds, [0, 1, 2]);
        assert_eq!(
            reports
                .iter()
                .map(|r| r.per_op[0].len())
                .collect::<Vec<_>>(),
            [40, 40, 20]
        );
        assert_eq!(reports[2].errors, 1);
        assert_eq!(totals.per_op[0].len(), 100);
        assert_eq!(totals.requests(), 101);
        let rows = totals.summaries(Duration::from_secs(2));
        assert_eq!(
            rows.iter().map(|r| r.op.as_str()).collect::<Vec<_>>(),
            ["read", "update", "all"]
        );
        assert_eq!(rows[0].misses, 1);
        assert!((rows[0].ops_per_s - 50.0).abs() < 1e-9);
        assert!((rows[0].p50_us - 149.0).abs() <= 1.0, "{}", rows[0].p50_us);
        assert!(render_table(&rows).lines().count() == 4);
    }

    #[test]
    fn latencies_past_the_histogram_range_saturate_instead_of_vanishing() {
        let start = Instant::now();
        let mut r = Recorder::new(0, start, None);
        r.record(OpKind::Read, Duration::from_secs(3600), start);
        let totals = r.finish();
        assert_eq!(totals.per_op[0].len(), 1);
        assert!(totals.per_op[0].max() >= LATENCY_NS_MAX / 2);
    }

    #[test]
    fn merger_releases_a_second_only_when_every_thread_moved_past_it() {
        let report = |thread, second, n: u64| {
            let mut per_op: Vec<Histogram<u64>> =
                (0..OP_KINDS).map(|_| interval_histogram()).collect();
            per_op[0].record_n(1000, n).expect("in range");
            IntervalReport {
                thread,
                second,
                per_op,
                errors: 0,
            }
        };
        let mut m = IntervalMerger::new(2);
        m.add(report(0, 0, 5));
        m.add(report(0, 1, 5));
        assert!(
            m.take_complete().is_empty(),
            "thread 1 has not reported second 0 yet"
        );
        m.add(report(1, 0, 7));
        assert!(
            m.take_complete().is_empty(),
            "thread 1 may still add to second 0"
        );
        m.add(report(1, 2, 1));
        let done = m.take_complete();
        assert_eq!(
            done.iter().map(|i| (i.second, i.ops())).collect::<Vec<_>>(),
            [(0, 12)]
        );
        m.finish_thread(0);
        m.finish_thread(1);
        let rest = m.take_complete();
        assert_eq!(
            rest.iter().map(|i| (i.second, i.ops())).collect::<Vec<_>>(),
            [(1, 5), (2, 1)]
        );
        assert!((rest[0].quantile_us(0.99) - 1.0).abs() < 0.02);
    }
}
