//! Regression tests: crafted (checksummed, hence "valid") WAL bytes and file
//! names that once made `Wal::open` overflow an LSN or a segment id. Each
//! must now be refused as corruption, never a panic or a wrapped number.

use super::record::{begin_frame, finish_frame, WAL_MAGIC};
use super::{batch, segment_file_name, Durability, Wal, WalOptions, KIND_BATCH, KIND_SEGMENT_END};
use crate::error::Error;
use crate::limits::{LSN_MAX, WAL_SEGMENT_ID_MAX, WAL_SEGMENT_SIZE_MIN};
use crate::types::{Record, Version};
use std::path::Path;

fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("executor")
        .run(fut)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")).expect("tempdir")
}

fn options() -> WalOptions {
    WalOptions {
        segment_size: WAL_SEGMENT_SIZE_MIN,
        durability: Durability::Sync,
        ..WalOptions::default()
    }
}

/// Appends a checksummed frame of `kind` for segment `id` carrying `seq`.
fn frame(out: &mut Vec<u8>, kind: u8, id: u64, seq: u64) {
    let start = begin_frame(out);
    if kind == KIND_BATCH {
        let r = Record::put(Version::new(1, 0, 1), b"v".to_vec(), 0);
        batch::encode(&[(b"k", (&r).into())], out);
    }
    finish_frame(out, start, WAL_MAGIC, kind, id, seq);
}

/// Writes segment `id` holding `bytes`, zero-padded to the segment size.
fn write_segment(dir: &Path, id: u64, mut bytes: Vec<u8>) {
    std::fs::create_dir_all(dir.join("wal")).expect("mkdir");
    bytes.resize(WAL_SEGMENT_SIZE_MIN as usize, 0);
    std::fs::write(dir.join("wal").join(segment_file_name(id)), bytes).expect("write");
}

async fn open(dir: &Path, retired: u64) -> crate::Result<(Wal, Vec<u64>)> {
    let mut lsns = Vec::new();
    let wal = Wal::open(dir, options(), retired, |lsn, _| {
        lsns.push(lsn);
        Ok(())
    })
    .await?;
    Ok((wal, lsns))
}

fn expect_corruption(r: crate::Result<(Wal, Vec<u64>)>, needle: &str) {
    match r {
        Err(Error::Corruption { reason, .. }) => {
            assert!(
                reason.contains(needle),
                "reason {reason:?} lacks {needle:?}"
            )
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok((_, lsns)) => panic!("expected corruption, replayed {lsns:?}"),
    }
}

#[test]
fn a_batch_with_the_largest_lsn_is_corruption_not_an_overflow() {
    // Once: accepted, then `Wal::open` computed the next LSN `u64::MAX + 1`.
    let dir = tempdir();
    let mut bytes = Vec::new();
    frame(&mut bytes, KIND_BATCH, 1, u64::MAX);
    write_segment(dir.path(), 1, bytes);
    run(async { expect_corruption(open(dir.path(), 0).await, "over the limit") });
}

#[test]
fn a_batch_after_lsn_max_is_corruption_not_a_wrapped_lsn() {
    // The limit holds for a frame that follows its predecessor correctly.
    let dir = tempdir();
    let mut bytes = Vec::new();
    frame(&mut bytes, KIND_BATCH, 1, LSN_MAX);
    frame(&mut bytes, KIND_BATCH, 1, LSN_MAX + 1);
    write_segment(dir.path(), 1, bytes);
    run(async { expect_corruption(open(dir.path(), 0).await, "over the limit") });
}

#[test]
fn a_segment_end_with_a_huge_lsn_is_corruption() {
    let dir = tempdir();
    let mut bytes = Vec::new();
    frame(&mut bytes, KIND_SEGMENT_END, 1, u64::MAX);
    write_segment(dir.path(), 1, bytes);
    write_segment(dir.path(), 2, Vec::new());
    run(async { expect_corruption(open(dir.path(), 0).await, "over the limit") });
}

#[test]
fn lsn_max_itself_is_accepted_and_continued() {
    let dir = tempdir();
    let mut bytes = Vec::new();
    frame(&mut bytes, KIND_BATCH, 1, LSN_MAX);
    write_segment(dir.path(), 1, bytes);
    run(async {
        let (wal, lsns) = open(dir.path(), 0).await.expect("open");
        assert_eq!(lsns, vec![LSN_MAX]);
        let r = Record::tombstone(Version::new(2, 0, 1));
        assert_eq!(
            wal.append(&[(b"k", (&r).into())]).expect("append"),
            LSN_MAX + 1
        );
        wal.close().await.expect("close");
    });
}

#[test]
fn a_segment_named_with_the_largest_id_is_corruption_not_an_overflow() {
    // Once: the next segment id `u64::MAX + 1` overflowed on open.
    let dir = tempdir();
    let mut bytes = Vec::new();
    frame(&mut bytes, KIND_SEGMENT_END, u64::MAX, 0);
    write_segment(dir.path(), u64::MAX, bytes);
    run(async {
        expect_corruption(open(dir.path(), 0).await, "segment id");
        // Retired through the one before it: refused before the listing.
        expect_corruption(open(dir.path(), u64::MAX - 1).await, "over the limit");
    });
}

#[test]
fn retired_through_the_largest_id_is_refused() {
    let dir = tempdir();
    run(async {
        expect_corruption(open(dir.path(), u64::MAX).await, "over the limit");
        expect_corruption(
            open(dir.path(), WAL_SEGMENT_ID_MAX + 1).await,
            "over the limit",
        );
    });
}

#[test]
fn a_spare_named_with_the_largest_number_does_not_overflow_the_spare_counter() {
    // Once: `next_spare += 1` overflowed when a spare was next prepared.
    let dir = tempdir();
    std::fs::create_dir_all(dir.path().join("wal")).expect("mkdir");
    let name = format!("fresh-{}.spare", u64::MAX);
    std::fs::write(dir.path().join("wal").join(name), b"wrong size").expect("write");
    run(async {
        let (wal, _) = open(dir.path(), 0).await.expect("open");
        // Past half a segment: a spare is prepared under the next name.
        let r = Record::put(Version::new(1, 0, 1), vec![7; 1024], 0);
        for _ in 0..10 {
            let lsn = wal.append(&[(b"k", (&r).into())]).expect("append");
            wal.commit(lsn).await.expect("commit");
        }
        let lsn = wal.append(&[(b"k", (&r).into())]).expect("append");
        wal.commit(lsn).await.expect("commit");
        wal.close().await.expect("close");
    });
}

#[test]
fn crafted_candidate_frames_after_a_bad_record_cannot_make_the_scan_quadratic() {
    // Once: every header (one per 32 bytes, right segment id, bad checksum,
    // a payload reaching the end of the file) was checksummed in full: about
    // size^2 / 64 bytes, terabytes for a 64 MiB segment. Now capped.
    let dir = tempdir();
    let size = 256 * 1024usize;
    let mut bytes = vec![0u8; size];
    for at in (0..size - 32).step_by(32) {
        let h = &mut bytes[at..at + 32];
        h[0..4].copy_from_slice(&WAL_MAGIC);
        h[4..8].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        h[8..16].copy_from_slice(&1u64.to_le_bytes());
        h[16..24].copy_from_slice(&1u64.to_le_bytes());
        h[24..28].copy_from_slice(&((size - at - 32) as u32).to_le_bytes());
        h[28] = KIND_BATCH;
    }
    std::fs::create_dir_all(dir.path().join("wal")).expect("mkdir");
    std::fs::write(dir.path().join("wal").join(segment_file_name(1)), bytes).expect("write");
    run(async { expect_corruption(open(dir.path(), 0).await, "gave up") });
}
