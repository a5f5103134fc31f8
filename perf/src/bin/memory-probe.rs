//! `memory-probe`: what a random memory access costs on this machine, on
//! 4 KiB and on 2 MiB pages (see `ringkv_perf::memprobe`). A point lookup in
//! a large memtable or cache is a chain of such loads; hints can overlap the
//! chains of many keys, not the links of one.
//!
//! ```text
//! memory-probe --cpu 0 --mib 8,128,1024 --loads 4000000
//! ```

use std::process::ExitCode;

use clap::Parser;
use ringkv_perf::memprobe::{probe, HINT_BATCH};

/// Random 8-byte loads over regions of each size, three ways, pinned to one CPU.
#[derive(Debug, Parser)]
#[command(name = "memory-probe", version)]
struct Cli {
    /// The CPU to run on (the server's).
    #[arg(long, default_value_t = 0)]
    cpu: usize,
    /// Region sizes in MiB, comma-separated (each rounded up to 2 MiB).
    #[arg(long, default_value = "8,128,1024", value_delimiter = ',')]
    mib: Vec<usize>,
    /// Loads per measurement.
    #[arg(long, default_value_t = 4_000_000)]
    loads: usize,
}

/// The largest region accepted, so a typo cannot take the machine's memory.
const MIB_MAX: usize = 16 * 1024;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(mib) = cli.mib.iter().find(|&&m| m == 0 || m > MIB_MAX) {
        eprintln!("memory-probe: --mib {mib} must be in 1..={MIB_MAX}");
        return ExitCode::from(1);
    }
    if !(1..=1_000_000_000).contains(&cli.loads) {
        eprintln!(
            "memory-probe: --loads {} must be in 1..=1000000000",
            cli.loads
        );
        return ExitCode::from(1);
    }
    if let Err(e) = ringkv_perf::pin::pin_current_thread(cli.cpu) {
        eprintln!("memory-probe: {e}");
        return ExitCode::from(1);
    }
    println!(
        "{:>8} {:>6} {:>10} {:>14} {:>16} {:>16}",
        "MiB",
        "pages",
        "huge MiB",
        "dependent ns",
        "independent ns",
        format!("{HINT_BATCH} hinted ns")
    );
    for &mib in &cli.mib {
        for huge in [true, false] {
            match probe(mib << 20, huge, cli.loads) {
                Ok(p) => println!(
                    "{:>8} {:>6} {:>10} {:>14.1} {:>16.1} {:>16.1}",
                    mib,
                    if huge { "2M" } else { "4K" },
                    p.huge_bytes >> 20,
                    p.dependent_ns,
                    p.independent_ns,
                    p.hinted_ns
                ),
                Err(e) => {
                    eprintln!("memory-probe: cannot map {mib} MiB: {e}");
                    return ExitCode::from(1);
                }
            }
        }
    }
    ExitCode::SUCCESS
}
