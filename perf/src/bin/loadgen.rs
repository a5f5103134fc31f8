//! `loadgen`: drives a ringkv node or any Redis-protocol server with a configurable workload and
//! reports throughput and latency percentiles per operation. See `perf/RESULTS.md` for uses.
//!
//! Exit status: 0 on success, 1 on a usage or setup error, 2 when errors passed
//! `--error-threshold`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use ringkv_net::client_frame::Consistency;
use ringkv_perf::limits::{CONNECTIONS_PER_THREAD_MAX, PIPELINE_DEPTH_MAX, THREADS_MAX};
use ringkv_perf::report::{write_hdr_log, IntervalPoint, PhaseReport};
use ringkv_perf::runner::{run_phase, Pacing, Phase, PhaseResult, RunConfig, Transport};
use ringkv_perf::stats::render_table;
use ringkv_perf::target::TargetAddr;
use ringkv_perf::workload::{value_pool, KeyDistribution, ValueSize, WorkloadSpec};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Load generator for ringkv and Redis-protocol servers.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Cli {
    /// redis://HOST:PORT (RESP) or ringkv://HOST:PORT (binary protocol, shard-aware).
    #[arg(long)]
    target: String,
    /// Executor threads (one glommio executor each).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// CPUs to pin the threads to, round-robin: "1", "0,1", "0-3". Default: unpinned.
    #[arg(long)]
    cpus: Option<String>,
    /// Connections per thread.
    #[arg(long, short = 'c', default_value_t = 16)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, short = 'P', default_value_t = 1)]
    pipeline: usize,
    /// get, set, mixed (reads:updates from --ratio), or ycsb-a .. ycsb-f.
    #[arg(long, short = 'w', default_value = "get")]
    workload: String,
    /// Reads:updates for `--workload mixed`.
    #[arg(long, default_value = "9:1")]
    ratio: String,
    /// uniform, zipfian or latest (default: the workload's own).
    #[arg(long)]
    distribution: Option<String>,
    /// Zipfian skew, 0 < theta < 1.
    #[arg(long, default_value_t = 0.99)]
    theta: f64,
    /// Keys in the keyspace.
    #[arg(long, default_value_t = 1_000_000)]
    keyspace: u64,
    /// Value size in bytes: "100" or a range "64-1024".
    #[arg(long, default_value = "100")]
    value_size: String,
    /// Insert every key of the keyspace before the run.
    #[arg(long)]
    load: bool,
    /// Only load, do not run the workload.
    #[arg(long)]
    load_only: bool,
    /// Open loop: total requests per second (latency from each intended send time).
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: least microseconds between two writes of a connection (0: write each request
    /// when due). Requests due in between share the next write and are still timed from when
    /// they were due; use it when the client, not the server, limits the rate.
    #[arg(long, default_value_t = 0)]
    send_quantum_us: u64,
    /// How long to run: "10", "10s", "500ms", "2m". Default 10s unless --requests.
    #[arg(long, short = 'd')]
    duration: Option<String>,
    /// Stop after this many requests.
    #[arg(long, short = 'n')]
    requests: Option<u64>,
    /// Run the workload this long before measuring ("1s", "500ms"; run phase only): the same
    /// connections, rate and schedule, its requests neither recorded nor counted. Percentiles
    /// then describe the steady state, not the connections' start (TCP windows, first page
    /// faults), which on a 5 s open-loop run alone can decide the p99.9.
    #[arg(long, default_value = "0s")]
    warmup: String,
    /// Fail (exit 2) when errors exceed this fraction of requests.
    #[arg(long, default_value_t = 0.01)]
    error_threshold: f64,
    /// ringkv consistency: default, one, quorum, all.
    #[arg(long, default_value = "default")]
    consistency: String,
    /// Busy-poll this many microseconds before an idle executor sleeps (0 = never spin). Use on
    /// a dedicated client core for open-loop runs: it removes the scheduler wake-up from every
    /// timer and answer.
    #[arg(long, default_value_t = 0)]
    spin_us: u64,
    /// How connections do their I/O: `glommio` (its TcpStream) or `uring` (one io_uring per
    /// thread with COOP_TASKRUN, polled while requests are out: on loopback the server then pays
    /// no IPI to interrupt the client, but each client thread keeps its core busy meanwhile).
    #[arg(long, value_enum, default_value_t = Transport::Glommio)]
    transport: Transport,
    /// Seed of the workload generators.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print results as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Write the HdrHistogram interval log of the run phase to FILE.
    #[arg(long)]
    hdr_log: Option<PathBuf>,
    /// Write PNG charts of the run phase into DIR.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    parse_span(text, false)
}

/// A warm-up may be zero (none).
fn parse_warmup(text: &str) -> Result<Duration, String> {
    parse_span(text, true).map_err(|e| format!("--warmup: {e}"))
}

fn parse_span(text: &str, zero_allowed: bool) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|e| format!("duration {text:?}: {e}"))?;
    if !(value.is_finite() && (value > 0.0 || (zero_allowed && value == 0.0))) {
        return Err(format!("duration {text:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

fn parse_cpus(text: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let parse = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|e| format!("cpus {text:?}: {e}"))
        };
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(parse(a)?..=parse(b)?),
            None => cpus.push(parse(part)?),
        }
    }
    if cpus.is_empty() {
        return Err(format!("cpus {text:?}: no CPU listed"));
    }
    Ok(cpus)
}

fn parse_ratio(text: &str) -> Result<(u32, u32), String> {
    let (r, w) = text
        .split_once(':')
        .ok_or_else(|| format!("ratio {text:?}: expected READS:WRITES"))?;
    let p = |s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|e| format!("ratio {text:?}: {e}"))
    };
    Ok((p(r)?, p(w)?))
}

struct Setup {
    config: RunConfig,
    spec: Arc<WorkloadSpec>,
}

fn setup(cli: &Cli) -> Result<Setup, String> {
    let target = TargetAddr::parse(&cli.target)?;
    if !(1..=THREADS_MAX).contains(&cli.threads) {
        return Err(format!(
            "--threads {} not in 1..={THREADS_MAX}",
            cli.threads
        ));
    }
    if !(1..=CONNECTIONS_PER_THREAD_MAX).contains(&cli.connections) {
        return Err(format!(
            "--connections {} not in 1..={CONNECTIONS_PER_THREAD_MAX}",
            cli.connections
        ));
    }
    if !(1..=PIPELINE_DEPTH_MAX).contains(&cli.pipeline) {
        return Err(format!(
            "--pipeline {} not in 1..={PIPELINE_DEPTH_MAX}",
            cli.pipeline
        ));
    }
    let distribution = match cli.distribution.as_deref() {
        None => None,
        Some("uniform") => Some(KeyDistribution::Uniform),
        Some("zipfian") => Some(KeyDistribution::Zipfian { theta: cli.theta }),
        Some("latest") => Some(KeyDistribution::Latest { theta: cli.theta }),
        Some(other) => {
            return Err(format!(
                "--distribution {other:?}: uniform, zipfian or latest"
            ))
        }
    };
    let value_size = ValueSize::parse(&cli.value_size)?;
    let spec = WorkloadSpec::named(
        &cli.workload,
        parse_ratio(&cli.ratio)?,
        distribution,
        cli.keyspace,
        value_size,
    )?;
    let pacing = match cli.rate {
        Some(rate) if rate > 0.0 && rate.is_finite() => Pacing::Open {
            rate,
            send_quantum: Duration::from_micros(cli.send_quantum_us),
        },
        Some(rate) => return Err(format!("--rate {rate} must be positive")),
        None => Pacing::Closed,
    };
    let duration = match (&cli.duration, cli.requests) {
        (Some(d), _) => Some(parse_duration(d)?),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let warmup = parse_warmup(&cli.warmup)?;
    let consistency = match cli.consistency.as_str() {
        "default" => Consistency::Default,
        "one" => Consistency::One,
        "quorum" => Consistency::Quorum,
        "all" => Consistency::All,
        other => {
            return Err(format!(
                "--consistency {other:?}: default, one, quorum or all"
            ))
        }
    };
    if !(0.0..=1.0).contains(&cli.error_threshold) {
        return Err(format!(
            "--error-threshold {} not in 0..=1",
            cli.error_threshold
        ));
    }
    let cpus = match &cli.cpus {
        Some(text) => parse_cpus(text)?,
        None => Vec::new(),
    };
    let config = RunConfig {
        target,
        threads: cli.threads,
        cpus,
        connections: cli.connections,
        pipeline: cli.pipeline,
        pacing,
        duration,
        warmup,
        requests: cli.requests,
        error_threshold: cli.error_threshold,
        consistency,
        seed: cli.seed,
        spin: Duration::from_micros(cli.spin_us),
        transport: cli.transport,
    };
    Ok(Setup {
        config,
        spec: Arc::new(spec),
    })
}

fn progress_bar(cli: &Cli, config: &RunConfig, phase: &str) -> ProgressBar {
    if cli.quiet {
        return ProgressBar::hidden();
    }
    let (len, unit) = match (config.duration, config.requests) {
        (Some(d), _) if phase == "run" => ((config.warmup + d).as_millis() as u64, "ms"),
        (_, Some(n)) if phase == "run" => (n, "req"),
        _ => (0, "req"),
    };
    let bar = if len > 0 {
        ProgressBar::new(len)
    } else {
        ProgressBar::new_spinner()
    };
    let template = format!(
        "{phase:>4} {{elapsed_precise}} [{{bar:30.cyan/blue}}] {{pos}}/{{len}} {unit} {{msg}}"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn run(
    cli: &Cli,
    setup: &Setup,
    phase: Phase,
    name: &str,
    inserted: &Arc<AtomicU64>,
) -> Result<PhaseResult, String> {
    let values = value_pool(setup.config.seed);
    let bar = progress_bar(cli, &setup.config, name);
    let by_time = setup.config.duration.is_some() && name == "run";
    let mut last = (Duration::ZERO, 0u64);
    let mut last_p99 = 0.0;
    let result = run_phase(
        &setup.config,
        phase,
        &setup.spec,
        inserted,
        &values,
        |p, fresh| {
            if let Some(i) = fresh.last() {
                last_p99 = i.quantile_us(0.99);
            }
            if by_time {
                bar.set_position(p.elapsed.as_millis() as u64);
            } else {
                bar.set_position(p.completed + p.errors);
            }
            let window = p.elapsed.saturating_sub(last.0);
            if window >= Duration::from_millis(500) {
                let rate = (p.completed - last.1) as f64 / window.as_secs_f64();
                bar.set_message(format!(
                    "{rate:>10.0} ops/s  p99 {last_p99:.0} us  errors {}",
                    p.errors
                ));
                last = (p.elapsed, p.completed);
            }
        },
    );
    bar.finish_and_clear();
    result
}

fn phase_report(name: &str, r: &PhaseResult) -> PhaseReport {
    PhaseReport {
        phase: name.to_string(),
        elapsed_s: r.elapsed.as_secs_f64(),
        ops_per_s: (r.totals.requests() - r.totals.error_count()) as f64
            / r.elapsed.as_secs_f64().max(1e-9),
        requests: r.totals.requests() - r.totals.error_count(),
        errors: r.totals.error_count(),
        ops: r.totals.summaries(r.elapsed),
        intervals: r
            .intervals
            .iter()
            .map(IntervalPoint::from_interval)
            .collect(),
        first_error: r.first_error.clone(),
        executor_nudges: r.executor_nudges,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let setup = match setup(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(1);
        }
    };
    let inserted = Arc::new(AtomicU64::new(setup.spec.keyspace));
    let mut reports = Vec::new();
    let mut failed = false;
    let mut phases = Vec::new();
    if cli.load || cli.load_only {
        phases.push((Phase::Load, "load"));
    }
    if !cli.load_only {
        phases.push((Phase::Run, "run"));
    }
    let mut table = String::new();
    for (phase, name) in phases {
        let result = match run(&cli, &setup, phase, name, &inserted) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("loadgen: {name} phase: {e}");
                return ExitCode::from(1);
            }
        };
        let report = phase_report(name, &result);
        table.push_str(&format!(
            "{} {} phase: {:.1} s, {:.0} ops/s, {} errors{}\n",
            setup.config.target.addr(),
            name,
            report.elapsed_s,
            report.ops_per_s,
            report.errors,
            result
                .first_error
                .as_ref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        ));
        table.push_str(&render_table(&report.ops));
        let requests = report.requests + report.errors;
        if result.aborted
            || (requests > 0 && report.errors as f64 > cli.error_threshold * requests as f64)
            || requests == 0
        {
            failed = true;
            if let Some(e) = &result.first_error {
                eprintln!("loadgen: {name} phase: first error: {e}");
            }
        }
        if result.executor_nudges > 0 {
            eprintln!(
                "loadgen: warning: {name} phase: a loadgen thread slept with work due and was woken by its watchdog \
                 {} time(s) (glommio parked with tasks ready to run): its latencies include those stalls",
                result.executor_nudges
            );
        }
        if let (Some(rate), "run") = (cli.rate, name) {
            if report.ops_per_s < 0.95 * rate {
                eprintln!(
                    "loadgen: warning: asked for {rate:.0} requests/s, completed {:.0}/s: the client or the server is \
                     saturated, and latencies include the backlog",
                    report.ops_per_s
                );
            }
        }
        if name == "run" {
            let title = format!(
                "{} {} P{}",
                setup.config.target.addr(),
                setup.spec.name,
                setup.config.pipeline
            );
            if let Some(path) = &cli.hdr_log {
                let written = std::fs::File::create(path).and_then(|mut f| {
                    write_hdr_log(
                        &mut f,
                        &title,
                        &result.intervals,
                        &result.totals,
                        result.elapsed,
                    )?;
                    f.flush()
                });
                if let Err(e) = written {
                    eprintln!("loadgen: --hdr-log {}: {e}", path.display());
                    failed = true;
                }
            }
            if let Some(dir) = &cli.plot {
                let whole = result.elapsed.as_secs();
                let points: Vec<IntervalPoint> = report
                    .intervals
                    .iter()
                    .filter(|i| i.second < whole)
                    .cloned()
                    .collect();
                let points = if points.is_empty() {
                    report.intervals.clone()
                } else {
                    points
                };
                match ringkv_perf::plot::write_charts(dir, &title, &result.totals.per_op, &points) {
                    Ok(paths) => paths
                        .iter()
                        .for_each(|p| eprintln!("loadgen: wrote {}", p.display())),
                    Err(e) => {
                        eprintln!("loadgen: --plot: {e}");
                        failed = true;
                    }
                }
            }
        }
        reports.push(report);
    }
    if cli.json {
        eprint!("{table}");
        let doc = serde_json::json!({
            "target": cli.target,
            "workload": *setup.spec,
            "threads": setup.config.threads,
            "connections_per_thread": setup.config.connections,
            "pipeline": setup.config.pipeline,
            "rate": cli.rate,
            "warmup_s": setup.config.warmup.as_secs_f64(),
            "phases": reports,
        });
        println!("{doc}");
    } else {
        print!("{table}");
    }
    if failed {
        eprintln!(
            "loadgen: errors passed the threshold ({}) or nothing completed",
            cli.error_threshold
        );
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_cpus_and_ratios_parse() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("-1").is_err() && parse_duration("x").is_err());
        assert!(parse_duration("0").is_err());
        assert_eq!(parse_warmup("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_warmup("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse_warmup("-1s").is_err() && parse_warmup("soon").is_err());
        assert_eq!(parse_cpus("1"), Ok(vec![1]));
        assert_eq!(parse_cpus("0-2,5"), Ok(vec![0, 1, 2, 5]));
        assert!(parse_cpus("").is_err());
        assert_eq!(parse_ratio("9:1"), Ok((9, 1)));
        assert!(parse_ratio("9").is_err());
    }
}
