//! `storage-bench`: ringkv's storage engine against RocksDB's `db_bench`, same
//! workload, same run, same disk.
//!
//! Workload (db_bench's names): `fillrandom` (`--num` puts of 16-byte keys
//! drawn uniformly from `[0, num)`, 100-byte values, no WAL sync — ringkv
//! durability `none`, db_bench's default `sync=0`), then untimed flush and
//! full compaction, then `readrandom` twice with a large block cache (the
//! second pass is reported as "warm"), then `readrandom` with a small block
//! cache after reopening ("cold"). Both engines use direct I/O for reads,
//! flushes and compactions, no compression, 10 bloom bits per key, one
//! foreground thread (ringkv: one glommio executor doing everything; RocksDB:
//! one client thread plus its own background threads).
//!
//! Keys are encoded like db_bench's: the number as 8 big-endian bytes padded
//! with `'0'` to the key size. Every ringkv read is checked against the set of
//! keys written; a wrong answer is counted and reported.
//!
//! Output: a table of ops/s, p50 and p99 (microseconds) per workload and
//! engine, the in-memory index + bloom bytes per key, and as the last line
//! `fillrandom_ratio=X readrandom_ratio=Y` (ringkv / RocksDB ops/s; the read
//! ratio is the warm one, the cold one is printed on the line above).

use clap::Parser;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use ringkv_storage::cache::BlockCache;
use ringkv_storage::engine::{Durability, Engine, Options};
use ringkv_storage::sstable::{Table, TableOptions, TableWriter};
use ringkv_storage::{Record, Version};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

type BoxError = Box<dyn std::error::Error>;

#[derive(Parser, Debug, Clone)]
#[command(
    about = "ringkv storage engine vs RocksDB db_bench: fillrandom, readrandom warm and cold"
)]
struct Args {
    /// Number of keys (fillrandom puts; key range of the reads).
    #[arg(long, default_value_t = 5_000_000)]
    num: u64,
    /// Reads per readrandom pass with the warm cache.
    #[arg(long, default_value_t = 1_000_000)]
    reads: u64,
    /// Reads of the cold (small cache) readrandom pass.
    #[arg(long, default_value_t = 200_000)]
    cold_reads: u64,
    /// Key size in bytes (at least 8).
    #[arg(long, default_value_t = 16)]
    key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Block cache for the warm reads, MiB (both engines).
    #[arg(long, default_value_t = 1024)]
    warm_cache_mb: usize,
    /// Block cache for the cold reads, MiB (both engines).
    #[arg(long, default_value_t = 8)]
    cold_cache_mb: usize,
    /// Memtable / write buffer size, MiB (both engines).
    #[arg(long, default_value_t = 64)]
    memtable_mb: usize,
    /// Working directory on the disk under test (not tmpfs); emptied first.
    #[arg(long, default_value = "target/storage-bench")]
    dir: PathBuf,
    /// Path of RocksDB's db_bench (Debian: rocksdb-tools).
    #[arg(long, default_value = "db_bench")]
    db_bench: String,
    /// Do not run db_bench even if it is installed.
    #[arg(long)]
    skip_rocksdb: bool,
    /// Measure only the SSTable layer (no engine, no RocksDB): write `num`
    /// sorted keys into one table, then random gets with the warm and the
    /// cold cache. Prints no ratio line.
    #[arg(long)]
    table_only: bool,
    /// Microseconds the executor spins waiting for I/O completions before it
    /// parks (glommio `spin_before_park`; thread-per-core servers poll). 0 parks at once.
    #[arg(long, default_value_t = 0)]
    spin_us: u64,
    /// Seed of the key sequence.
    #[arg(long, default_value_t = 301)]
    seed: u64,
}

/// One measured phase.
#[derive(Clone, Copy, Debug, Default)]
struct Phase {
    ops_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Results {
    fill: Phase,
    warm: Phase,
    cold: Phase,
}

fn encode_key(n: u64, key_size: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&n.to_be_bytes());
    out.resize(key_size.max(8), b'0');
}

struct Recorder {
    hist: Histogram<u64>,
    start: Instant,
    ops: u64,
}

impl Recorder {
    fn new() -> Self {
        Recorder {
            // 1 ns .. 60 s, 3 significant digits.
            hist: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds"),
            start: Instant::now(),
            ops: 0,
        }
    }

    fn record(&mut self, d: Duration) {
        self.hist.saturating_record(d.as_nanos().max(1) as u64);
        self.ops += 1;
    }

    fn finish(&self) -> Phase {
        let secs = self.start.elapsed().as_secs_f64();
        Phase {
            ops_per_sec: self.ops as f64 / secs,
            p50_us: self.hist.value_at_quantile(0.50) as f64 / 1000.0,
            p99_us: self.hist.value_at_quantile(0.99) as f64 / 1000.0,
        }
    }
}

fn options(args: &Args, cache_mb: usize) -> Options {
    Options {
        durability: Durability::None,
        block_cache_size: cache_mb << 20,
        // db_bench runs without RocksDB's row cache: compare like with like.
        row_cache_size: 0,
        memtable_size: args.memtable_mb << 20,
        require_direct_io: true,
        ..Options::default()
    }
}

async fn read_pass(
    engine: &Engine,
    args: &Args,
    written: &[u64],
    reads: u64,
    seed: u64,
) -> Result<(Phase, u64, u64), BoxError> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut key = Vec::with_capacity(args.key_size);
    let mut rec = Recorder::new();
    let (mut found, mut wrong) = (0u64, 0u64);
    let now = ringkv_storage::io::now_ms();
    for _ in 0..reads {
        let n = rng.gen_range(0..args.num);
        encode_key(n, args.key_size, &mut key);
        let t = Instant::now();
        let got = engine.get(&key, now).await?;
        rec.record(t.elapsed());
        let present = written[(n / 64) as usize] & (1 << (n % 64)) != 0;
        if got.is_some() {
            found += 1;
        }
        if got.is_some() != present
            || got
                .as_ref()
                .and_then(|r| r.value.as_ref())
                .is_some_and(|v| v.len() != args.value_size)
        {
            wrong += 1;
        }
    }
    Ok((rec.finish(), found, wrong))
}

async fn run_ringkv(args: Args) -> Result<(Results, f64), BoxError> {
    let dir = args.dir.join("ringkv");
    let _ = std::fs::remove_dir_all(&dir);
    ringkv_storage::io::prepare_dir(&dir, true).await?;
    let engine = Engine::open(&dir, options(&args, args.warm_cache_mb)).await?;

    let mut rng = rand::rngs::SmallRng::seed_from_u64(args.seed);
    let pool: Vec<u8> = (0..(1 << 20) + args.value_size)
        .map(|_| rng.gen())
        .collect();
    let mut written = vec![0u64; (args.num as usize).div_ceil(64)];
    let mut key = Vec::with_capacity(args.key_size);
    let mut rec = Recorder::new();
    for i in 0..args.num {
        let n = rng.gen_range(0..args.num);
        encode_key(n, args.key_size, &mut key);
        let at = rng.gen_range(0..1 << 20);
        let value = &pool[at..at + args.value_size];
        let t = Instant::now();
        engine
            .put(
                &key,
                value,
                Version {
                    hlc: i + 1,
                    node: 1,
                },
                0,
            )
            .await?;
        rec.record(t.elapsed());
        written[(n / 64) as usize] |= 1 << (n % 64);
    }
    let fill = rec.finish();
    eprintln!("ringkv fillrandom: {:.0} ops/s", fill.ops_per_sec);

    let t = Instant::now();
    engine.flush().await?;
    engine.compact().await?;
    let stats = engine.stats();
    let distinct: u64 = written.iter().map(|w| u64::from(w.count_ones())).sum();
    let bytes_per_key = stats.index_bloom_bytes as f64 / distinct.max(1) as f64;
    eprintln!(
        "ringkv fillrandom {:.1} s + flush and compact {:.1} s; tables per level {:?}, bytes per level {:?}, write amplification {:.2}, \
         index+bloom {} bytes for {distinct} distinct keys ({bytes_per_key:.2} bytes/key)",
        args.num as f64 / fill.ops_per_sec,
        t.elapsed().as_secs_f64(),
        stats.tables_per_level,
        stats.bytes_per_level,
        stats.write_amplification,
        stats.index_bloom_bytes
    );

    let (first, _, wrong1) = read_pass(&engine, &args, &written, args.reads, args.seed + 1).await?;
    let (warm, found, wrong2) =
        read_pass(&engine, &args, &written, args.reads, args.seed + 2).await?;
    let cache = engine.stats().block_cache;
    eprintln!(
        "ringkv readrandom warm: first pass {:.0} ops/s, second {:.0} ops/s ({found} of {} found), cache {cache:?}",
        first.ops_per_sec, warm.ops_per_sec, args.reads
    );
    engine.close().await?;

    let engine = Engine::open(&dir, options(&args, args.cold_cache_mb)).await?;
    let (cold, found, wrong3) =
        read_pass(&engine, &args, &written, args.cold_reads, args.seed + 3).await?;
    let cache = engine.stats().block_cache;
    eprintln!(
        "ringkv readrandom cold: {:.0} ops/s ({found} of {} found), {:.2} block reads per get, cache {cache:?}",
        cold.ops_per_sec,
        args.cold_reads,
        cache.misses as f64 / args.cold_reads.max(1) as f64
    );
    engine.close().await?;
    let wrong = wrong1 + wrong2 + wrong3;
    if wrong > 0 {
        return Err(format!("ringkv returned {wrong} wrong answers").into());
    }
    Ok((Results { fill, warm, cold }, bytes_per_key))
}

/// Parses db_bench output: for each `name : ... ops/sec` line, the ops/s and
/// the P50/P99 of the `Percentiles:` line that follows it.
fn parse_db_bench(out: &str, name: &str) -> Vec<Phase> {
    let mut phases = Vec::new();
    let mut current: Option<Phase> = None;
    for line in out.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with(name) && trimmed.contains("ops/sec") {
            if let Some(p) = current.take() {
                phases.push(p);
            }
            let words: Vec<&str> = trimmed.split_whitespace().collect();
            let ops = words
                .iter()
                .position(|w| w.starts_with("ops/sec"))
                .and_then(|i| words.get(i.wrapping_sub(1)))
                .and_then(|w| w.parse::<f64>().ok())
                .unwrap_or(0.0);
            current = Some(Phase {
                ops_per_sec: ops,
                ..Phase::default()
            });
        } else if trimmed.starts_with("Percentiles:") {
            if let Some(p) = current.as_mut() {
                let words: Vec<&str> = trimmed.split_whitespace().collect();
                let value = |tag: &str| {
                    words
                        .iter()
                        .position(|w| *w == tag)
                        .and_then(|i| words.get(i + 1))
                        .and_then(|w| w.parse::<f64>().ok())
                        .unwrap_or(0.0)
                };
                p.p50_us = value("P50:");
                p.p99_us = value("P99:");
            }
        }
    }
    phases.extend(current);
    phases
}

/// Runs db_bench once. Each invocation gets its own `seed`: db_bench seeds its
/// key stream from `--seed` alone, so a read pass with the fill's seed would
/// read exactly the keys written (all found) instead of uniform random keys.
fn db_bench(
    args: &Args,
    benchmarks: &str,
    cache_mb: usize,
    reads: u64,
    existing: bool,
    seed: u64,
) -> Result<String, BoxError> {
    let db = args.dir.join("rocksdb");
    let mut cmd = Command::new(&args.db_bench);
    cmd.arg(format!("--db={}", db.display()))
        .arg(format!("--benchmarks={benchmarks}"))
        .arg(format!("--num={}", args.num))
        .arg(format!("--reads={reads}"))
        .arg(format!("--key_size={}", args.key_size))
        .arg(format!("--value_size={}", args.value_size))
        .arg(format!("--cache_size={}", cache_mb << 20))
        .arg(format!("--write_buffer_size={}", args.memtable_mb << 20))
        .arg(format!("--use_existing_db={}", u8::from(existing)))
        .arg(format!("--seed={seed}"))
        .args([
            "--threads=1",
            "--use_direct_reads=1",
            "--use_direct_io_for_flush_and_compaction=1",
            "--compression_type=none",
            "--bloom_bits=10",
            "--histogram=1",
            "--sync=0",
            "--disable_wal=0",
            "--statistics=0",
        ]);
    eprintln!("running {cmd:?}");
    let out = cmd.output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "db_bench failed ({}): {}\n{text}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(text)
}

fn run_rocksdb(args: &Args) -> Result<Results, BoxError> {
    let _ = std::fs::remove_dir_all(args.dir.join("rocksdb"));
    let fill_out = db_bench(
        args,
        "fillrandom,compact",
        args.warm_cache_mb,
        args.reads,
        false,
        args.seed,
    )?;
    let fill = parse_db_bench(&fill_out, "fillrandom")
        .first()
        .copied()
        .ok_or("no fillrandom result in db_bench output")?;
    let warm_out = db_bench(
        args,
        "readrandom,readrandom",
        args.warm_cache_mb,
        args.reads,
        true,
        args.seed + 2,
    )?;
    let warm = parse_db_bench(&warm_out, "readrandom")
        .last()
        .copied()
        .ok_or("no readrandom result in db_bench output")?;
    let cold_out = db_bench(
        args,
        "readrandom",
        args.cold_cache_mb,
        args.cold_reads,
        true,
        args.seed + 3,
    )?;
    let cold = parse_db_bench(&cold_out, "readrandom")
        .last()
        .copied()
        .ok_or("no readrandom result in db_bench output")?;
    for line in fill_out.lines().filter(|l| l.starts_with("compact")) {
        eprintln!("rocksdb {line}");
    }
    for line in warm_out
        .lines()
        .chain(cold_out.lines())
        .filter(|l| l.starts_with("readrandom"))
    {
        eprintln!("rocksdb {line}");
    }
    Ok(Results { fill, warm, cold })
}

fn db_bench_available(path: &str) -> bool {
    Command::new(path).arg("--help").output().is_ok()
}

fn row(workload: &str, engine: &str, p: &Phase) {
    println!(
        "{workload:<18} {engine:<8} {:>12.0} {:>10.2} {:>10.2}",
        p.ops_per_sec, p.p50_us, p.p99_us
    );
}

/// SSTable layer alone: one table of `num` sorted keys, random gets.
async fn run_table_only(args: Args) -> Result<(), BoxError> {
    let dir = args.dir.join("table");
    let _ = std::fs::remove_dir_all(&dir);
    ringkv_storage::io::prepare_dir(&dir, true).await?;
    let path = dir.join(ringkv_storage::sstable::table_file_name(1));
    let mut rng = rand::rngs::SmallRng::seed_from_u64(args.seed);
    let file = ringkv_storage::io::DirectFile::create_new(&path).await?;
    let mut writer = TableWriter::new(file, 1, 1, TableOptions::default());
    let mut key = Vec::new();
    let t = Instant::now();
    for n in 0..args.num {
        encode_key(n, args.key_size, &mut key);
        let value: Vec<u8> = (0..args.value_size).map(|_| rng.gen()).collect();
        writer
            .add(
                &key,
                &Record::put(
                    Version {
                        hlc: n + 1,
                        node: 1,
                    },
                    value,
                    0,
                ),
            )
            .await?;
    }
    let meta = writer.finish().await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "table write: {} entries, {} bytes in {secs:.2} s ({:.0} entries/s, {:.0} MB/s)",
        meta.entry_count,
        meta.size,
        meta.entry_count as f64 / secs,
        meta.size as f64 / secs / 1e6
    );
    println!(
        "{:<18} {:>12} {:>10} {:>10}",
        "table get", "ops/s", "p50_us", "p99_us"
    );
    for (name, cache_mb, reads) in [
        ("warm_first", args.warm_cache_mb, args.reads),
        ("warm", args.warm_cache_mb, args.reads),
        ("cold", args.cold_cache_mb, args.cold_reads),
    ] {
        let cache = Rc::new(BlockCache::new(cache_mb << 20));
        let table = Table::open(&path, 1, 1, Rc::clone(&cache)).await?;
        if name == "warm" {
            // Warm the cache with a full pass first.
            for n in 0..args.num {
                encode_key(n, args.key_size, &mut key);
                table.get(&key).await?;
            }
        }
        let mut rec = Recorder::new();
        for _ in 0..reads {
            let n = rng.gen_range(0..args.num);
            encode_key(n, args.key_size, &mut key);
            let t = Instant::now();
            let got = table.get(&key).await?;
            rec.record(t.elapsed());
            if got.is_none() {
                return Err(format!("wrong answer for key {n}").into());
            }
        }
        let p = rec.finish();
        println!(
            "{name:<18} {:>12.0} {:>10.2} {:>10.2}   cache {:?}",
            p.ops_per_sec,
            p.p50_us,
            p.p99_us,
            cache.stats()
        );
        if name == "cold" {
            println!(
                "index+bloom: {} bytes for {} keys = {:.2} bytes/key",
                table.memory_bytes(),
                args.num,
                table.memory_bytes() as f64 / args.num as f64
            );
        }
        table.close().await?;
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    assert!(args.key_size >= 8, "keys hold an 8-byte number");
    std::fs::create_dir_all(&args.dir)?;
    let dir: &Path = &args.dir;
    if !ringkv_storage::io::direct_io_supported(dir)? {
        return Err(format!(
            "{} is on tmpfs; use a directory on a real disk",
            dir.display()
        )
        .into());
    }
    if args.table_only {
        return glommio::LocalExecutorBuilder::default()
            .name("storage-bench")
            .make()?
            .run(run_table_only(args.clone()));
    }
    let ringkv_args = args.clone();
    let (ours, bytes_per_key) = glommio::LocalExecutorBuilder::default()
        .name("storage-bench")
        .spin_before_park(Duration::from_micros(args.spin_us))
        .make()?
        .run(run_ringkv(ringkv_args))?;
    let theirs = if !args.skip_rocksdb && db_bench_available(&args.db_bench) {
        Some(run_rocksdb(&args)?)
    } else {
        eprintln!(
            "db_bench not run (--skip-rocksdb or not installed: apt-get install rocksdb-tools)"
        );
        None
    };

    println!();
    println!(
        "storage-bench: num={} reads={} cold_reads={} key={}B value={}B warm_cache={}MiB cold_cache={}MiB memtable={}MiB",
        args.num, args.reads, args.cold_reads, args.key_size, args.value_size, args.warm_cache_mb, args.cold_cache_mb, args.memtable_mb
    );
    println!(
        "{:<18} {:<8} {:>12} {:>10} {:>10}",
        "workload", "engine", "ops/s", "p50_us", "p99_us"
    );
    let pairs = [
        ("fillrandom", ours.fill, theirs.map(|t| t.fill)),
        ("readrandom_warm", ours.warm, theirs.map(|t| t.warm)),
        ("readrandom_cold", ours.cold, theirs.map(|t| t.cold)),
    ];
    for (name, o, t) in &pairs {
        row(name, "ringkv", o);
        if let Some(t) = t {
            row(name, "rocksdb", t);
        }
    }
    println!("ringkv index+bloom bytes/key: {bytes_per_key:.2}");
    let ratio = |o: &Phase, t: Option<Phase>| t.map_or(f64::NAN, |t| o.ops_per_sec / t.ops_per_sec);
    println!(
        "readrandom_cold_ratio={:.2}",
        ratio(&ours.cold, theirs.map(|t| t.cold))
    );
    println!(
        "fillrandom_ratio={:.2} readrandom_ratio={:.2}",
        ratio(&ours.fill, theirs.map(|t| t.fill)),
        ratio(&ours.warm, theirs.map(|t| t.warm))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_bench_output_is_parsed() {
        let out = "readrandom   :       4.123 micros/op 242543 ops/sec 4.1 seconds 1000000 operations; (632000 of 1000000 found)\n\
                   Microseconds per read:\nCount: 1000000 Average: 4.1227  StdDev: 38.12\n\
                   Percentiles: P50: 2.32 P75: 3.12 P99: 8.47 P99.9: 36.56 P99.99: 160.16\n\
                   readrandom   :       2.000 micros/op 500000 ops/sec 2.0 seconds 1000000 operations;\n\
                   Percentiles: P50: 1.50 P75: 2.00 P99: 4.00 P99.9: 9.00\n";
        let phases = parse_db_bench(out, "readrandom");
        assert_eq!(phases.len(), 2);
        assert_eq!(phases[0].ops_per_sec, 242543.0);
        assert_eq!((phases[1].p50_us, phases[1].p99_us), (1.5, 4.0));
    }

    #[test]
    fn keys_are_encoded_like_db_bench() {
        let mut k = Vec::new();
        encode_key(0x0102, 16, &mut k);
        assert_eq!(k, b"\0\0\0\0\0\0\x01\x0200000000");
    }
}
