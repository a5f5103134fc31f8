//! Fuzzes `decode_request`: any bytes give Ok or Err, never a panic; a decoded
//! frame never claims more than the buffer; a decoded request re-encodes to a
//! frame that decodes to the same request (DECR aside: it decodes to INCR).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_net::client_frame::{decode_request, encode_request, Decoded, Resync};

fuzz_target!(|data: &[u8]| {
    let max = 64 * 1024;
    let mut at = 0;
    while at < data.len() {
        match decode_request(&data[at..], max) {
            Ok(Decoded::Frame { frame: (header, request), len }) => {
                assert!(len <= data.len() - at);
                let mut out = Vec::new();
                encode_request(&header, &request, &mut out);
                match decode_request(&out, usize::MAX) {
                    Ok(Decoded::Frame { frame, len }) => {
                        assert_eq!(len, out.len());
                        assert_eq!(frame, (header, request));
                    }
                    other => panic!("re-encoded request did not decode: {other:?}"),
                }
                at += len;
            }
            Ok(Decoded::Incomplete { needed }) => {
                assert!(needed >= 1);
                break;
            }
            Err(e) => match e.resync {
                Resync::Skip(n) => {
                    assert!(n >= 1 && n <= data.len() - at);
                    at += n;
                }
                Resync::Close => break,
            },
        }
    }
});
