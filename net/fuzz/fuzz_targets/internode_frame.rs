//! Fuzzes internode `decode_frame` through a `FrameBuffer`: any bytes give a
//! frame, "incomplete" or an error, never a panic. When the first byte is odd
//! the first frame's checksum is fixed up, so bytecheck is reached. A decoded
//! batch deserializes, re-encodes and decodes to the same batch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_net::internode::{decode_frame, encode_frame, Batch, FrameBuffer, FRAME_HEADER_SIZE};

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    if bytes.first().is_some_and(|b| b & 1 == 1) && bytes.len() >= FRAME_HEADER_SIZE {
        let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let end = FRAME_HEADER_SIZE.saturating_add(len);
        if end <= bytes.len() {
            let crc = crc32c::crc32c(&bytes[FRAME_HEADER_SIZE..end]);
            bytes[4..8].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let mut buf = FrameBuffer::new();
    buf.spare(bytes.len())[..bytes.len()].copy_from_slice(&bytes);
    buf.filled(bytes.len());
    loop {
        match decode_frame(buf.bytes()) {
            Ok(Some((archived, len))) => {
                assert!(len <= buf.len() && len % 16 == 0);
                let batch = Batch::from_archived(archived).expect("a valid archive deserializes");
                let mut out = Vec::new();
                encode_frame(&batch, &mut out).expect("a decoded batch re-encodes");
                let mut again = FrameBuffer::new();
                again.spare(out.len())[..out.len()].copy_from_slice(&out);
                again.filled(out.len());
                match decode_frame(again.bytes()) {
                    Ok(Some((a, l))) => {
                        assert_eq!(l, out.len());
                        assert_eq!(Batch::from_archived(a).expect("deserializes"), batch);
                    }
                    other => panic!("re-encoded batch did not decode: {other:?}"),
                }
                buf.consume(len);
            }
            Ok(None) | Err(_) => break,
        }
    }
});
