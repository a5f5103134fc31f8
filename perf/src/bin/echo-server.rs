//! `echo-server`: the echo baseline (see `ringkv_perf::echo`). Answers every RESP or ringkv
//! request with a canned reply of the real size, doing no work. Runs until killed.
//!
//! ```text
//! echo-server --port 7100 --protocol resp --cpu 0 --value-size 100
//! ```

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;
use ringkv_perf::echo::framing::{Canned, Protocol};
use ringkv_perf::echo::server::serve;
use ringkv_perf::limits::VALUE_SIZE_MAX;

/// Canned-reply io_uring server: the machine's loopback and syscall limit.
#[derive(Debug, Parser)]
#[command(name = "echo-server", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Port to listen on.
    #[arg(long)]
    port: u16,
    /// resp or ringkv.
    #[arg(long, default_value = "resp")]
    protocol: String,
    /// Size of the value a GET returns.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// CPU to pin the server thread to.
    #[arg(long)]
    cpu: Option<usize>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let protocol = match cli.protocol.as_str() {
        "resp" | "redis" => Protocol::Resp,
        "ringkv" => Protocol::Ringkv { port: cli.port },
        other => {
            eprintln!("echo-server: --protocol {other:?}: resp or ringkv");
            return ExitCode::from(1);
        }
    };
    if cli.value_size > VALUE_SIZE_MAX {
        eprintln!(
            "echo-server: --value-size {} over {VALUE_SIZE_MAX}",
            cli.value_size
        );
        return ExitCode::from(1);
    }
    if let Some(cpu) = cli.cpu {
        if let Err(e) = ringkv_perf::pin::pin_current_thread(cpu) {
            eprintln!("echo-server: {e}");
            return ExitCode::from(1);
        }
    }
    let listener = match TcpListener::bind((cli.bind.as_str(), cli.port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo-server: bind {}:{}: {e}", cli.bind, cli.port);
            return ExitCode::from(1);
        }
    };
    eprintln!("echo-server: {} on {}:{}", cli.protocol, cli.bind, cli.port);
    match serve(
        listener,
        Canned::new(protocol, cli.value_size),
        Arc::new(AtomicBool::new(false)),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo-server: {e}");
            ExitCode::from(1)
        }
    }
}
