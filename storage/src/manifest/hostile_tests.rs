//! Regression tests: crafted manifest bytes and `CURRENT` contents that once
//! overflowed a file id or a manifest number. Each is now refused.

use super::record::{apply_edit, decode_edits, encode_edits};
use super::{Manifest, ManifestEdit, ManifestState, CURRENT_FILE_NAME};
use crate::error::Error;
use crate::limits::{FILE_ID_MAX, MANIFEST_NUMBER_MAX, WAL_SEGMENT_ID_MAX};
use crate::types::{TableMeta, Version};

fn table(id: u64) -> TableMeta {
    TableMeta {
        id,
        level: 0,
        size: 4096,
        entry_count: 1,
        tombstone_count: 0,
        smallest_key: b"a".to_vec(),
        largest_key: b"b".to_vec(),
        max_version: Version::new(1, 0, 1),
    }
}

fn encoded(edits: &[ManifestEdit]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_edits(edits, &mut out);
    out
}

#[test]
fn adding_a_table_with_the_largest_id_is_refused_not_an_overflow() {
    // Once: `next_file_id = max(next, id + 1)` overflowed on `u64::MAX`.
    let mut state = ManifestState::default();
    let err = apply_edit(&mut state, &ManifestEdit::AddTable(table(u64::MAX))).unwrap_err();
    assert!(err.contains("over the limit"), "{err}");
    assert_eq!(
        state,
        ManifestState::default(),
        "a refused edit changes nothing"
    );
    apply_edit(&mut state, &ManifestEdit::AddTable(table(FILE_ID_MAX))).unwrap();
    assert_eq!(state.next_file_id, FILE_ID_MAX + 1);
}

#[test]
fn decoding_edits_with_ids_over_the_limits_is_an_error_at_the_id() {
    for (edit, what) in [
        (ManifestEdit::AddTable(table(FILE_ID_MAX + 1)), "file id"),
        (
            ManifestEdit::RemoveTable {
                id: u64::MAX,
                level: 0,
            },
            "file id",
        ),
        (ManifestEdit::NextFileId(u64::MAX), "file id"),
        (
            ManifestEdit::WalRetiredThrough(WAL_SEGMENT_ID_MAX + 1),
            "WAL segment id",
        ),
    ] {
        let bytes = encoded(std::slice::from_ref(&edit));
        let (at, reason) = decode_edits(&bytes).unwrap_err();
        // count u32, tag u8, then the id.
        assert_eq!(at, 5, "{edit:?}: {reason}");
        assert!(reason.contains(what), "{edit:?}: {reason}");
        let mut state = ManifestState::default();
        assert!(apply_edit(&mut state, &edit).is_err(), "{edit:?} applied");
    }
    let at_limits = [
        ManifestEdit::AddTable(table(FILE_ID_MAX)),
        ManifestEdit::NextFileId(FILE_ID_MAX),
        ManifestEdit::WalRetiredThrough(WAL_SEGMENT_ID_MAX),
    ];
    assert_eq!(decode_edits(&encoded(&at_limits)).unwrap(), at_limits);
}

#[test]
fn current_naming_the_largest_manifest_number_is_corruption() {
    // Once: the next log switch computed `number + 1` and overflowed.
    let dir = tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")).unwrap();
    glommio::LocalExecutorBuilder::default()
        .make()
        .unwrap()
        .run(async {
            crate::io::prepare_dir(dir.path(), true).await.unwrap();
            for number in [u64::MAX, MANIFEST_NUMBER_MAX + 1] {
                let mut current = format!("MANIFEST-{number:020}\n").into_bytes();
                current.resize(4096, 0);
                std::fs::write(dir.path().join(CURRENT_FILE_NAME), &current).unwrap();
                match Manifest::open(dir.path()).await {
                    Err(Error::Corruption { reason, .. }) => {
                        assert!(reason.contains("over the limit"), "{reason}")
                    }
                    Err(e) => panic!("expected corruption, got {e}"),
                    Ok(_) => panic!("CURRENT naming {number} accepted"),
                }
            }
        });
}
