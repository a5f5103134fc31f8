//! `stall-probe` as a user runs it: one line per CPU and the verdict line.

use std::process::Command;

#[test]
fn reports_each_cpu_and_a_verdict_for_both_goals() {
    let out = Command::new(env!("CARGO_BIN_EXE_stall-probe"))
        .args(["--cpus", "0", "--seconds", "0.2"])
        .output()
        .expect("stall-probe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("stall-probe: cpu 0: 0.2 s spun;"),
        "{text}"
    );
    assert!(lines[0].contains(", past 2 ms:"), "{text}");
    assert!(lines[1].contains("p99 < 1 ms"), "{text}");
    assert!(lines[1].contains("p99.9 < 2 ms"), "{text}");
}

#[test]
fn refuses_a_cpu_it_cannot_run_on_and_a_bad_duration() {
    for args in [
        ["--cpus", "100000", "--seconds", "0.1"],
        ["--cpus", "0", "--seconds", "0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_stall-probe"))
            .args(args)
            .output()
            .expect("stall-probe runs");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("stall-probe: "));
    }
}
