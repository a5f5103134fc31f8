//! Fuzzes the RESP request path: any bytes give commands, `Incomplete` or a
//! protocol error, never a panic; a command never claims more than the
//! buffer; every parsed command goes through `Command::parse` without
//! panicking; and a command parsed from an array re-encodes to bytes that
//! parse to the same arguments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_net::resp::{parse_command, Command, Decoded, RespLimits};

fuzz_target!(|data: &[u8]| {
    let limits = RespLimits {
        bulk_size_max: 4096,
        args_max: 64,
        command_size_max: 64 * 1024,
        ..RespLimits::default()
    };
    let mut at = 0;
    while at < data.len() {
        match parse_command(&data[at..], &limits) {
            Ok(Decoded::Frame { frame, len }) => {
                assert!(len >= 1 && len <= data.len() - at);
                let _ = Command::parse(&frame);
                let mut out = format!("*{}\r\n", frame.len()).into_bytes();
                for arg in frame.iter() {
                    out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                    out.extend_from_slice(arg);
                    out.extend_from_slice(b"\r\n");
                }
                if !frame.is_empty() {
                    match parse_command(&out, &RespLimits::default()) {
                        Ok(Decoded::Frame { frame: again, len }) => {
                            assert_eq!(len, out.len());
                            assert_eq!(again, frame);
                        }
                        other => panic!("re-encoded command did not parse: {other:?}"),
                    }
                }
                at += len;
            }
            Ok(Decoded::Incomplete { needed }) => {
                assert!(needed >= 1);
                break;
            }
            Err(e) => {
                let _ = e.redis_message();
                break;
            }
        }
    }
});
