//! `ringkv`: the node binary. `ringkv serve` starts a node (see
//! docs/operations.md); errors are reported as one message and exit status 1,
//! never as a backtrace.

mod config;
mod dev_cluster;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (its `malloc_conf` symbol, named
/// `_rjem_malloc_conf` with tikv-jemallocator's prefix; `_RJEM_MALLOC_CONF`
/// in the environment still overrides them):
/// - `oversize_threshold:0`: by default an allocation over 8 MiB comes from
///   an arena that returns it to the kernel (`madvise`) the moment it is
///   freed, in the freeing thread: a shard spent up to 31 ms in one such call,
///   the p99 of an open-loop SET run.
/// - `background_thread:true`: unused pages are returned by jemalloc's own
///   threads, not inline in a shard's allocations.
#[used]
#[export_name = "_rjem_malloc_conf"]
static JEMALLOC_CONF: JemallocConf =
    JemallocConf(c"oversize_threshold:0,background_thread:true".as_ptr());

/// A `const char *` that may sit in a `static`.
#[repr(transparent)]
struct JemallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a 'static C string literal that nothing writes;
// jemalloc only reads it.
unsafe impl Sync for JemallocConf {}

/// ringkv: a thread-per-core, replicated key-value store.
#[derive(Parser)]
#[command(name = "ringkv", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a node (one shard per CPU by default) and serve until SIGTERM/SIGINT.
    Serve {
        /// TOML config file; flags override its settings.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        settings: Box<config::Settings>,
    },
    /// Start a local N-node cluster on loopback (each node its own `ringkv serve`
    /// process); stops them all on Ctrl-C or SIGTERM.
    DevCluster(dev_cluster::DevCluster),
}

fn init_logging(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::try_new(l),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    }
    .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // On a failed write (a closed log pipe) tracing-subscriber would
        // report it with `eprintln!`, which panics when stderr is that same
        // closed pipe: the signal thread died that way at the next log line,
        // and the node never stopped. A lost log line is the lesser harm.
        .log_internal_errors(false)
        .init();
}

fn serve(config_file: Option<PathBuf>, flags: config::Settings) -> Result<(), String> {
    let file = match &config_file {
        Some(path) => config::Settings::from_file(path)?,
        None => config::Settings::default(),
    };
    let settings = file.overridden_by(flags);
    init_logging(settings.log_level.as_deref());
    let node = settings.resolve()?;
    tracing::info!(
        data_dir = %node.data_dir.display(),
        shards = node.shards,
        durability = ?node.durability,
        memtable_mib = node.memtable_size >> 20,
        "starting ringkv {}",
        env!("CARGO_PKG_VERSION")
    );
    ringkv_shards::run(node).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, settings } => serve(config, *settings),
        Command::DevCluster(args) => dev_cluster::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("ringkv: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
