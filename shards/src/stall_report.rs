//! An operator's diagnostic (`stall_report_ms`): glommio's stall detector on
//! every shard, reporting a task queue that ran past its budget (the request
//! queue's is `FOREGROUND_LATENCY`) by more than a threshold, with a
//! backtrace of the shard's thread taken while it is stuck.
//!
//! The budget is glommio's preemption timer of the moment: the smallest
//! latency goal of the queues with work (1 ms while requests wait), glommio's
//! 100 ms default while only background work runs; so a long background
//! step that a request arriving midway waits for is reported only past that
//! longer budget.
//!
//! What it is for: a latency spike whose cause is in no counter (a long
//! synchronous step of a flush, a compaction, a request) names its code in
//! the log. Each report costs a signal, a backtrace and a log line, taken
//! inside the executor: an option to turn on while looking, off by default.
//! glommio delivers the detector's signal as `SIGUSR1`, which nothing else in
//! the node uses, and writes the report through the `log` crate, which the
//! node's tracing subscriber receives (as a `warn` of target
//! `glommio::executor::stall`).

use glommio::{StallDetectionHandler, TaskQueueHandle};
use std::time::Duration;

/// A stall detector that reports every task queue run more than
/// `threshold` over its budget (glommio's report and signal).
#[derive(Debug)]
pub struct StallReport {
    threshold: Duration,
}

impl StallReport {
    /// A detector with `threshold`.
    pub fn new(threshold: Duration) -> Self {
        StallReport { threshold }
    }
}

impl StallDetectionHandler for StallReport {
    fn threshold(&self, _queue: TaskQueueHandle, _budget: Duration) -> Option<Duration> {
        Some(self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Counts glommio's stall reports (the only `log` records of this test binary's logger).
    struct CountReports;
    static REPORTS: AtomicU64 = AtomicU64::new(0);
    impl log::Log for CountReports {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            if record.args().to_string().contains("stall-detector") {
                REPORTS.fetch_add(1, Ordering::Relaxed);
            }
        }
        fn flush(&self) {}
    }

    #[test]
    fn a_queue_run_past_its_budget_and_the_threshold_is_reported_and_a_short_one_is_not() {
        log::set_logger(&CountReports).expect("the only logger of this binary");
        log::set_max_level(log::LevelFilter::Warn);
        glommio::LocalExecutorBuilder::default()
            .detect_stalls(Some(Box::new(StallReport::new(Duration::from_millis(20)))))
            .make()
            .expect("executor")
            .run(async {
                let queue = glommio::executor().create_task_queue(
                    glommio::Shares::default(),
                    glommio::Latency::Matters(Duration::from_millis(1)),
                    "requests",
                );
                let spin = |d: Duration| async move {
                    let t = std::time::Instant::now();
                    while t.elapsed() < d {
                        std::hint::spin_loop();
                    }
                };
                glommio::spawn_local_into(spin(Duration::from_micros(200)), queue)
                    .expect("spawn")
                    .await;
                glommio::timer::sleep(Duration::from_millis(20)).await;
                assert_eq!(REPORTS.load(Ordering::Relaxed), 0, "a short run");
                glommio::spawn_local_into(spin(Duration::from_millis(150)), queue)
                    .expect("spawn")
                    .await;
                // The detector's thread takes the backtrace; the executor reports it.
                glommio::timer::sleep(Duration::from_millis(20)).await;
            });
        assert!(
            REPORTS.load(Ordering::Relaxed) >= 1,
            "a 150 ms run went unreported"
        );
    }
}
