//! loadgen as a user runs it: the real binary against the in-process echo baseline on
//! loopback, over RESP and over ringkv's binary protocol (shard-aware path: HELLO, then the shard
//! port). Bounded: every run is about a second or a fixed request count.

use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use ringkv_perf::echo::framing::{Canned, Protocol};
use ringkv_perf::echo::server::serve;

struct Echo {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Echo {
    fn start(ringkv: bool) -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
        let port = listener.local_addr().expect("bound").port();
        let protocol = if ringkv {
            Protocol::Ringkv { port }
        } else {
            Protocol::Resp
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || serve(listener, Canned::new(protocol, 100), flag));
        Echo {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn loadgen(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .arg("--quiet")
        .output()
        .expect("run loadgen");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

#[test]
fn closed_loop_over_resp_completes_requests_without_errors() {
    let echo = Echo::start(false);
    let target = format!("redis://127.0.0.1:{}", echo.port);
    let (code, json, stderr) = loadgen(&[
        "--target",
        &target,
        "--workload",
        "ycsb-b",
        "-c",
        "4",
        "-P",
        "8",
        "--duration",
        "1",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let run = &json["phases"][0];
    assert!(run["requests"].as_u64().expect("requests") > 1000, "{json}");
    assert_eq!(run["errors"], 0);
    let ops: Vec<&str> = run["ops"]
        .as_array()
        .expect("ops")
        .iter()
        .map(|o| o["op"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ops, ["read", "update", "all"]);
}

#[test]
fn ringkv_protocol_run_stops_at_the_request_budget_after_a_load_phase() {
    let echo = Echo::start(true);
    let target = format!("ringkv://127.0.0.1:{}", echo.port);
    let (code, json, stderr) = loadgen(&[
        "--target",
        &target,
        "--workload",
        "ycsb-a",
        "--keyspace",
        "2000",
        "--load",
        "-c",
        "3",
        "-P",
        "4",
        "--requests",
        "5000",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let phases = json["phases"].as_array().expect("phases");
    assert_eq!(phases[0]["phase"], "load");
    assert_eq!(phases[0]["requests"], 2000, "every key inserted once");
    assert_eq!(phases[1]["requests"], 5000, "the budget is exact");
}

#[test]
fn open_loop_holds_the_requested_rate() {
    let echo = Echo::start(false);
    let target = format!("redis://127.0.0.1:{}", echo.port);
    let (code, json, stderr) = loadgen(&[
        "--target",
        &target,
        "--rate",
        "2000",
        "-c",
        "4",
        "--duration",
        "1.5",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let requests = json["phases"][0]["requests"].as_u64().expect("requests");
    assert!(
        (2700..=3100).contains(&requests),
        "1.5 s at 2000/s sent {requests}"
    );
}

/// A pipelined open loop waits for "an answer or the next send time", so a
/// receive is often cut short by the timer: the ringkv connection must not
/// lose track of what it has in flight when that happens.
#[test]
fn a_pipelined_open_loop_over_the_ringkv_protocol_keeps_every_answer() {
    let echo = Echo::start(true);
    let target = format!("ringkv://127.0.0.1:{}", echo.port);
    let (code, json, stderr) = loadgen(&[
        "--target",
        &target,
        "--rate",
        "40000",
        "-c",
        "4",
        "-P",
        "16",
        "--duration",
        "1.5",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let run = &json["phases"][0];
    assert_eq!(run["errors"], 0, "{json}");
    let requests = run["requests"].as_u64().expect("requests");
    assert!(
        requests > 40_000,
        "1.5 s at 40000/s completed only {requests}"
    );
}

/// A send quantum batches a connection's due requests into fewer writes, and the wait it adds is
/// measured: latency still counts from each request's intended send time, so with a 2 ms
/// quantum the median request waits about 1 ms in the client and the report shows it.
#[test]
fn an_open_loop_send_quantum_keeps_the_rate_and_charges_its_wait() {
    let echo = Echo::start(true);
    let target = format!("ringkv://127.0.0.1:{}", echo.port);
    let (code, json, stderr) = loadgen(&[
        "--target",
        &target,
        "--rate",
        "40000",
        "--send-quantum-us",
        "2000",
        "-c",
        "4",
        "-P",
        "64",
        "--duration",
        "1.5",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let run = &json["phases"][0];
    assert_eq!(run["errors"], 0, "{json}");
    let requests = run["requests"].as_u64().expect("requests");
    assert!(
        requests > 40_000,
        "1.5 s at 40000/s completed only {requests}"
    );
    let p50 = run["ops"][0]["p50_us"].as_f64().expect("p50");
    assert!(
        p50 >= 400.0,
        "a 2 ms send quantum must show in the latency measured from the intended send times: p50 {p50} us"
    );
}

#[test]
fn unsupported_operations_and_unreachable_targets_fail_the_run() {
    let echo = Echo::start(false);
    let target = format!("redis://127.0.0.1:{}", echo.port);
    let (code, _, stderr) = loadgen(&[
        "--target",
        &target,
        "--workload",
        "ycsb-e",
        "--duration",
        "1",
    ]);
    assert_eq!(
        code, 2,
        "scans over RESP are errors past the threshold: {stderr}"
    );
    assert!(stderr.contains("scan"), "{stderr}");
    let free = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("bound")
        .port();
    let (code, _, stderr) = loadgen(&[
        "--target",
        &format!("redis://127.0.0.1:{free}"),
        "--duration",
        "1",
    ]);
    assert_eq!(code, 1, "{stderr}");
    let (code, _, _) = loadgen(&["--target", "http://x:1"]);
    assert_eq!(code, 1);
}
