//! What a run leaves behind besides the table: the JSON document (`--json`) and the
//! HdrHistogram interval log (`--hdr-log`).
//!
//! HDR log layout (the standard text format, V2 deflate-compressed histograms, readable by
//! HistogramLogAnalyzer and `hdrhistogram` libraries); values are nanoseconds, the max column
//! is divided by 1000 (microseconds):
//!
//! ```text
//! #[ringkv loadgen ...]             comments
//! Tag=read,0.000,1.000,<max us>,<base64 histogram>          per op, per second (2 digits)
//! ...
//! Tag=read-total,0.000,<run s>,<max us>,<base64 histogram>  per op, the whole run (3 digits)
//! ```

use std::io::Write;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use serde::Serialize;

use crate::stats::{Interval, OpSummary, Totals};
use crate::workload::OpKind;

/// One second of the run as it appears in JSON and plots.
#[derive(Debug, Clone, Serialize)]
pub struct IntervalPoint {
    /// Second of the run.
    pub second: u64,
    /// Requests completed in it.
    pub ops: u64,
    /// Errors in it.
    pub errors: u64,
    /// Median latency in it (us).
    pub p50_us: f64,
    /// 99th percentile in it (us).
    pub p99_us: f64,
}

impl IntervalPoint {
    /// Summarises one interval.
    pub fn from_interval(i: &Interval) -> Self {
        Self {
            second: i.second,
            ops: i.ops(),
            errors: i.errors,
            p50_us: i.quantile_us(0.5),
            p99_us: i.quantile_us(0.99),
        }
    }
}

/// The whole JSON document of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// `load` or `run`.
    pub phase: String,
    /// Measured seconds.
    pub elapsed_s: f64,
    /// Requests completed per second, all kinds.
    pub ops_per_s: f64,
    /// Successful requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// One row per operation kind (and `all`).
    pub ops: Vec<OpSummary>,
    /// Per second.
    pub intervals: Vec<IntervalPoint>,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Times a loadgen thread's executor slept with its timers overdue and was woken by the
    /// watchdog: each is a client stall the latencies include (0 in a clean run).
    pub executor_nudges: u64,
}

/// Writes the HDR interval log of one phase to `out`.
pub fn write_hdr_log<W: Write>(
    out: &mut W,
    comment: &str,
    intervals: &[Interval],
    totals: &Totals,
    elapsed: Duration,
) -> std::io::Result<()> {
    let mut serializer = V2DeflateSerializer::new();
    let mut builder = IntervalLogWriterBuilder::new();
    builder
        .add_comment(comment)
        .add_comment("latency unit: nanoseconds; max column: microseconds")
        .with_start_time(SystemTime::now())
        .with_max_value_divisor(1000.0);
    let mut log = builder.begin_log_with(out, &mut serializer)?;
    let io_error = |e| std::io::Error::other(format!("HDR log: {e:?}"));
    for interval in intervals {
        for kind in OpKind::ALL {
            let h = &interval.per_op[kind.index()];
            if !h.is_empty() {
                log.write_histogram(
                    h,
                    Duration::from_secs(interval.second),
                    Duration::from_secs(1),
                    Tag::new(kind.name()),
                )
                .map_err(io_error)?;
            }
        }
    }
    for kind in OpKind::ALL {
        let h = &totals.per_op[kind.index()];
        if !h.is_empty() {
            let tag = format!("{}-total", kind.name());
            log.write_histogram(h, Duration::ZERO, elapsed, Tag::new(&tag))
                .map_err(io_error)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Recorder;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use std::time::Instant;

    #[test]
    fn hdr_log_holds_every_interval_and_the_totals_and_reads_back() {
        let (tx, rx) = std::sync::mpsc::channel();
        let start = Instant::now();
        let mut r = Recorder::new(0, start, Some(tx));
        for i in 0..30u64 {
            r.record(
                OpKind::Read,
                Duration::from_micros(50 + i),
                start + Duration::from_millis(i * 100),
            );
            r.record(
                OpKind::Update,
                Duration::from_micros(80),
                start + Duration::from_millis(i * 100),
            );
        }
        let totals = r.finish();
        let mut merger = crate::stats::IntervalMerger::new(1);
        rx.try_iter().for_each(|rep| merger.add(rep));
        merger.finish_thread(0);
        let intervals = merger.take_complete();
        let mut out = Vec::new();
        write_hdr_log(
            &mut out,
            "test",
            &intervals,
            &totals,
            Duration::from_secs(3),
        )
        .expect("in-memory write");
        let mut tags = Vec::new();
        for entry in IntervalLogIterator::new(&out) {
            if let Ok(LogEntry::Interval(h)) = entry {
                tags.push(h.tag().map(|t| t.as_str().to_string()).unwrap_or_default());
            }
        }
        assert_eq!(tags.iter().filter(|t| *t == "read").count(), 3);
        assert_eq!(tags.iter().filter(|t| *t == "update").count(), 3);
        assert!(
            tags.contains(&"read-total".to_string()) && tags.contains(&"update-total".to_string())
        );
    }
}
