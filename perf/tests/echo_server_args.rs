//! `echo-server` refuses what it cannot honour with a message and exit
//! code 1, before it binds a port.

use std::process::Command;

#[test]
fn refuses_a_cpu_it_cannot_run_on_and_an_unknown_protocol() {
    for args in [
        ["--port", "0", "--cpu", "100000", "--protocol", "resp"],
        ["--port", "0", "--cpu", "0", "--protocol", "memcached"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_echo-server"))
            .args(args)
            .output()
            .expect("echo-server runs");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("echo-server: "),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
