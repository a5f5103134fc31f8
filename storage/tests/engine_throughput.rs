//! A rough throughput figure for the engine alone (not a CI test: ignored).
//! Run in release: `cargo test -p ringkv-storage --release --test engine_throughput -- --ignored --nocapture`
//! (`RINGKV_KEYS=<n>` sets the key count). 16-byte keys, 100-byte values,
//! random fill with durability `none`, then random reads.

use rand::{Rng, SeedableRng};
use ringkv_storage::engine::{Durability, Engine, Options};
use ringkv_storage::Version;
use std::time::Instant;

fn key(n: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    k[8..].copy_from_slice(&n.to_be_bytes());
    k
}

#[test]
#[ignore = "a measurement, run by hand in release"]
fn fill_random_then_read_random() {
    let keys: u64 = std::env::var("RINGKV_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500_000);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let path = dir.path().to_path_buf();
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("executor")
        .run(async move {
            let options = Options {
                durability: Durability::None,
                ..Options::default()
            };
            let engine = Engine::open(&path, options).await.expect("open");
            let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
            let value = [b'v'; 100];
            let started = Instant::now();
            for i in 0..keys {
                let n = rng.gen_range(0..keys);
                engine.put(&key(n), &value, Version { hlc: i + 1, node: 0 }, 0).await.expect("put");
            }
            let fill = started.elapsed();
            engine.flush().await.expect("flush");
            let started = Instant::now();
            let mut found = 0u64;
            for _ in 0..keys {
                let n = rng.gen_range(0..keys);
                found += u64::from(engine.get(&key(n), 0).await.expect("get").is_some());
            }
            let read = started.elapsed();
            let stats = engine.stats();
            eprintln!(
                "keys={keys} fillrandom {:.0} ops/s, readrandom {:.0} ops/s (found {found}), write_amp {:.2}, \
                 index+bloom {:.2} bytes/key, cache hit rate {:.3}, tables/level {:?}, compactions {} ({:?})",
                keys as f64 / fill.as_secs_f64(),
                keys as f64 / read.as_secs_f64(),
                stats.write_amplification,
                stats.index_bloom_bytes as f64 / stats.keys_estimate.max(1) as f64,
                stats.block_cache.hit_rate(),
                stats.tables_per_level,
                stats.compactions,
                stats.compaction_time,
            );
            engine.close().await.expect("close");
        });
}
