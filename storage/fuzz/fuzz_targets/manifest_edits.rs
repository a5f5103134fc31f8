//! Fuzzes `manifest::record::decode_edits` and applying the decoded edits to
//! a state: never a panic; decoded edits re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_storage::manifest::record::{apply_record, decode_edits, encode_edits};
use ringkv_storage::manifest::ManifestState;

fuzz_target!(|data: &[u8]| {
    let Ok(edits) = decode_edits(data) else {
        return;
    };
    let mut out = Vec::new();
    encode_edits(&edits, &mut out);
    assert_eq!(out, data);
    let mut state = ManifestState::default();
    let _ = apply_record(&mut state, &edits);
    // Applied twice: the second application must refuse or succeed, never panic.
    let _ = apply_record(&mut state, &edits);
});
