//! `memory-probe` as a user runs it: a header, then one line per region
//! size and page size, and a clear refusal of arguments it cannot honour.

use std::process::Command;

#[test]
fn reports_each_size_on_both_page_sizes() {
    let out = Command::new(env!("CARGO_BIN_EXE_memory-probe"))
        .args(["--cpu", "0", "--mib", "2,4", "--loads", "20000"])
        .output()
        .expect("memory-probe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(lines[0][..3], ["MiB", "pages", "huge"], "{text}");
    let rows: Vec<(&str, &str)> = lines[1..].iter().map(|l| (l[0], l[1])).collect();
    assert_eq!(
        rows,
        [("2", "2M"), ("2", "4K"), ("4", "2M"), ("4", "4K")],
        "{text}"
    );
    for row in &lines[1..] {
        assert_eq!(row.len(), 6, "{text}");
        for ns in &row[3..] {
            let ns: f64 = ns.parse().expect("a figure");
            assert!(ns > 0.0, "{text}");
        }
    }
}

#[test]
fn refuses_a_cpu_it_cannot_run_on_a_zero_region_and_zero_loads() {
    for args in [
        ["--cpu", "100000", "--mib", "2", "--loads", "1000"],
        ["--cpu", "0", "--mib", "0", "--loads", "1000"],
        ["--cpu", "0", "--mib", "2", "--loads", "0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_memory-probe"))
            .args(args)
            .output()
            .expect("memory-probe runs");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("memory-probe: "));
    }
}
