//! Fuzzes `wal::batch::decode` (the payload of a WAL batch frame): never a
//! panic; a decoded batch is within the limits and re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_storage::limits::{BATCH_ENTRIES_MAX, KEY_SIZE_MAX, VALUE_SIZE_MAX};
use ringkv_storage::wal::batch::{decode, encode};
use ringkv_storage::RecordRef;

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = decode(data) else {
        return;
    };
    assert!(entries.len() <= BATCH_ENTRIES_MAX);
    let refs: Vec<(&[u8], RecordRef<'_>)> =
        entries.iter().map(|(k, r)| (k.as_slice(), r.into())).collect();
    for (k, r) in &refs {
        assert!(k.len() <= KEY_SIZE_MAX);
        assert!(r.value.map_or(0, <[u8]>::len) <= VALUE_SIZE_MAX);
    }
    let mut out = Vec::new();
    encode(&refs, &mut out);
    assert_eq!(out, data);
});
