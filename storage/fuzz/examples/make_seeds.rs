//! Writes a seed corpus for every target (valid encodings made by the real
//! encoders), so the fuzzers start past the structure checks:
//! `cargo run --release --example make_seeds` (see run.sh).

// Linked for the coverage callbacks the instrumented build references.
extern crate libfuzzer_sys;

use ringkv_storage::manifest::record::encode_edits;
use ringkv_storage::manifest::ManifestEdit;
use ringkv_storage::sstable::block::BlockBuilder;
use ringkv_storage::sstable::bloom::{key_hash, Bloom};
use ringkv_storage::sstable::footer::{Footer, Properties, Section};
use ringkv_storage::sstable::index::Index;
use ringkv_storage::sstable::Compression;
use ringkv_storage::wal::batch;
use ringkv_storage::wal::record::{begin_frame, finish_frame, WAL_MAGIC};
use ringkv_storage::{Record, RecordRef, TableMeta, Version};
use std::path::Path;

fn records(n: u64) -> Vec<(Vec<u8>, Record)> {
    (0..n)
        .map(|i| {
            let key = format!("key{i:04}").into_bytes();
            let version = Version::new(i + 1, 0, 1);
            let record = match i % 3 {
                0 => Record::put(version, vec![i as u8; (i % 50) as usize], 0),
                1 => Record::put(version, b"value".to_vec(), 1_700_000_000_000 + i),
                _ => Record::tombstone(version),
            };
            (key, record)
        })
        .collect()
}

fn save(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(d.join(name), bytes).expect("write");
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for n in [1u64, 5, 40] {
        let recs = records(n);
        for (c, compression) in [(0, Compression::None), (1, Compression::Lz4)] {
            let mut b = BlockBuilder::new();
            for (k, r) in &recs {
                b.add(k, r);
            }
            let mut out = vec![c];
            b.finish(compression, &mut out);
            save(&dir, "sstable_block", &format!("n{n}c{c}"), &out);
        }
        let mut index = Index::new();
        for (i, (k, _)) in recs.iter().enumerate() {
            index.push(k, 4096 * (1 + i % 3));
        }
        let mut out = index.data_end().to_le_bytes().to_vec();
        index.encode(&mut out);
        save(&dir, "sstable_index", &format!("n{n}"), &out);
        let hashes: Vec<u64> = recs.iter().map(|(k, _)| key_hash(k)).collect();
        let mut out = Vec::new();
        Bloom::build(&hashes, 10).encode(&mut out);
        save(&dir, "sstable_bloom", &format!("n{n}"), &out);
        let props = Properties {
            entry_count: n,
            tombstone_count: n / 3,
            max_version: Version::new(n, 0, 1),
            smallest_key: recs[0].0.clone(),
            largest_key: recs[recs.len() - 1].0.clone(),
        };
        let footer = Footer {
            data_end: 8192,
            index: Section {
                offset: 8192,
                len: 100,
                crc: 1,
            },
            bloom: Section {
                offset: 8292,
                len: 200,
                crc: 2,
            },
            props: Section {
                offset: 8492,
                len: 60,
                crc: 3,
            },
        };
        let mut out = 12289u64.to_le_bytes().to_vec();
        out.extend_from_slice(&footer.encode());
        props.encode(&mut out);
        save(&dir, "sstable_footer", &format!("n{n}"), &out);
        let refs: Vec<(&[u8], RecordRef<'_>)> =
            recs.iter().map(|(k, r)| (k.as_slice(), r.into())).collect();
        let mut out = Vec::new();
        batch::encode(&refs, &mut out);
        save(&dir, "wal_batch", &format!("n{n}"), &out);
        let mut frame = vec![1u8];
        let start = begin_frame(&mut frame);
        frame.extend_from_slice(&out);
        finish_frame(&mut frame, start, WAL_MAGIC, 1, 7, n);
        save(&dir, "wal_frame", &format!("n{n}"), &frame);
        let mut edits: Vec<ManifestEdit> = (0..n)
            .map(|i| {
                ManifestEdit::AddTable(TableMeta {
                    id: i + 1,
                    level: (i % 4) as u32,
                    size: 4096 * (i + 1),
                    entry_count: i + 1,
                    tombstone_count: i / 2,
                    smallest_key: b"a".to_vec(),
                    largest_key: format!("z{i}").into_bytes(),
                    max_version: Version::new(i, 0, 1),
                })
            })
            .collect();
        edits.push(ManifestEdit::RemoveTable { id: 1, level: 0 });
        edits.push(ManifestEdit::NextFileId(n + 10));
        edits.push(ManifestEdit::WalRetiredThrough(n));
        let mut out = Vec::new();
        encode_edits(&edits, &mut out);
        save(&dir, "manifest_edits", &format!("n{n}"), &out);
    }
}
