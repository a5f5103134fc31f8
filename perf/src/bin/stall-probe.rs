//! `stall-probe`: how often this machine takes a CPU away from a thread
//! that never blocks, and the latency floor that sets for any server (see
//! `ringkv_perf::stalls`). One pinned spinning thread per CPU, all at once.
//!
//! ```text
//! stall-probe --cpus 0,1 --seconds 10
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ringkv_perf::stalls::StallLog;

/// Spins on each CPU reading the clock; reports the stalls and the share of
/// constant-rate requests they alone would delay past 1 ms and 2 ms.
#[derive(Debug, Parser)]
#[command(name = "stall-probe", version)]
struct Cli {
    /// CPUs to probe, comma-separated (the server's and the client's).
    #[arg(long, default_value = "0,1", value_delimiter = ',')]
    cpus: Vec<usize>,
    /// How long to spin, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
}

/// The latency bounds of the issue's open-loop goal: the quantile each must
/// hold for, and the bound.
const GOALS: [(&str, f64, Duration); 2] = [
    ("p99", 0.99, Duration::from_millis(1)),
    ("p99.9", 0.999, Duration::from_millis(2)),
];

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !(cli.seconds > 0.0 && cli.seconds <= 3600.0) {
        eprintln!(
            "stall-probe: --seconds {} must be in (0, 3600]",
            cli.seconds
        );
        return ExitCode::from(1);
    }
    let duration = Duration::from_secs_f64(cli.seconds);
    let available = ringkv_perf::pin::available_cpus();
    if let Some(cpu) = cli.cpus.iter().find(|c| !available.contains(c)) {
        eprintln!("stall-probe: CPU {cpu} is not one this process may run on ({available:?})");
        return ExitCode::from(1);
    }
    let threads: Vec<_> = cli
        .cpus
        .iter()
        .map(|&cpu| {
            std::thread::spawn(move || {
                ringkv_perf::pin::pin_current_thread(cpu)?;
                Ok::<_, String>(StallLog::spin(duration))
            })
        })
        .collect();
    let mut logs = Vec::new();
    for (cpu, thread) in cli.cpus.iter().zip(threads) {
        match thread.join() {
            Ok(Ok(log)) => logs.push((*cpu, log)),
            Ok(Err(e)) => {
                eprintln!("stall-probe: {e}");
                return ExitCode::from(1);
            }
            Err(_) => {
                eprintln!("stall-probe: the thread on CPU {cpu} panicked");
                return ExitCode::from(1);
            }
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (cpu, log) in &logs {
        println!(
            "stall-probe: cpu {cpu}: {:.1} s spun; stalls >= 1 ms: {} ({:.1} ms in all), >= 2 ms: {}, longest {:.2} ms; requests delayed past 1 ms: {:.3} %, past 2 ms: {:.3} %",
            log.elapsed().as_secs_f64(),
            log.count_at_least(Duration::from_millis(1)),
            ms(log.time_in_gaps_at_least(Duration::from_millis(1))),
            log.count_at_least(Duration::from_millis(2)),
            ms(log.longest()),
            100.0 * log.share_delayed_past(Duration::from_millis(1)),
            100.0 * log.share_delayed_past(Duration::from_millis(2)),
        );
    }
    let verdicts: Vec<String> = GOALS
        .iter()
        .map(|&(name, quantile, bound)| {
            let share: f64 = logs.iter().map(|(_, l)| l.share_delayed_past(bound)).sum();
            let verdict = if share > 1.0 - quantile {
                "ruled out at this stall rate"
            } else {
                "not ruled out"
            };
            format!(
                "{:.3} % delayed past {} ms: {name} < {} ms {verdict}",
                100.0 * share,
                ms(bound),
                ms(bound)
            )
        })
        .collect();
    println!(
        "stall-probe: cpus {:?} together: {}",
        cli.cpus,
        verdicts.join("; ")
    );
    ExitCode::SUCCESS
}
