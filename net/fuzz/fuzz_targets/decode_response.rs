//! Fuzzes `decode_response`: any bytes give Ok or Err, never a panic; a decoded
//! frame never claims more than the buffer and re-encodes to the same response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_net::client_frame::{decode_response, encode_response, Decoded};

fuzz_target!(|data: &[u8]| {
    let max = 64 * 1024;
    let mut at = 0;
    while at < data.len() {
        match decode_response(&data[at..], max) {
            Ok(Decoded::Frame { frame: (id, response), len }) => {
                assert!(len <= data.len() - at);
                let mut out = Vec::new();
                encode_response(id, &response, &mut out);
                match decode_response(&out, usize::MAX) {
                    Ok(Decoded::Frame { frame, .. }) => assert_eq!(frame, (id, response)),
                    other => panic!("re-encoded response did not decode: {other:?}"),
                }
                at += len;
            }
            Ok(Decoded::Incomplete { .. }) | Err(_) => break,
        }
    }
});
