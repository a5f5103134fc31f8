//! What loadgen asks for: the operation mix, which keys, what values. Target-agnostic: the same
//! [`Generator`] feeds the RESP and the ringkv connections, so both see the same workload.
//!
//! Keys are `key:` followed by the key index in [`KEY_DIGITS`] decimal digits (16 bytes), as
//! YCSB's `user` + number. Values are slices of one shared pool of random printable bytes, so
//! producing a request never allocates.
//!
//! YCSB core workloads (Cooper et al., SoCC 2010; mixes as in YCSB's `workloads/workload[a-f]`):
//!
//! | name | mix | keys |
//! |---|---|---|
//! | A | 50 % read, 50 % update | zipfian |
//! | B | 95 % read, 5 % update | zipfian |
//! | C | 100 % read | zipfian |
//! | D | 95 % read, 5 % insert | latest |
//! | E | 95 % scan (1..=100 keys), 5 % insert | zipfian |
//! | F | 50 % read, 50 % read-modify-write | zipfian |
//!
//! Zipfian keys are scrambled (rank hashed onto the keyspace, as YCSB's
//! `ScrambledZipfianGenerator`), so popular keys are spread over the key range and shards.
//! Simplification: zipfian ranks are drawn over the initial keyspace even when inserts grow it.

pub mod zipf;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::limits::{
    KEYSPACE_MAX, KEY_DIGITS, KEY_SIZE_MAX, SCAN_LENGTH_MAX, VALUE_POOL_SIZE, VALUE_SIZE_MAX,
};
pub use zipf::Zipfian;

/// One kind of operation; the histograms are kept per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// GET of one key.
    Read = 0,
    /// SET of an existing key.
    Update = 1,
    /// SET of a new key (the keyspace grows).
    Insert = 2,
    /// Range scan of up to `scan_len` keys from a start key.
    Scan = 3,
    /// GET then SET of the same key; its latency spans both.
    ReadModifyWrite = 4,
}

/// Number of [`OpKind`]s (array size of per-kind tables).
pub const OP_KINDS: usize = 5;

impl OpKind {
    /// Every kind, in index order.
    pub const ALL: [OpKind; OP_KINDS] = [
        OpKind::Read,
        OpKind::Update,
        OpKind::Insert,
        OpKind::Scan,
        OpKind::ReadModifyWrite,
    ];

    /// Short name used in tables, JSON and HDR log tags.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Update => "update",
            OpKind::Insert => "insert",
            OpKind::Scan => "scan",
            OpKind::ReadModifyWrite => "rmw",
        }
    }

    /// Index into per-kind tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Relative weights of each kind; at least one is non-zero (checked by [`WorkloadSpec::validate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Mix {
    /// Weight of reads.
    pub read: u32,
    /// Weight of updates.
    pub update: u32,
    /// Weight of inserts.
    pub insert: u32,
    /// Weight of scans.
    pub scan: u32,
    /// Weight of read-modify-writes.
    pub rmw: u32,
}

impl Mix {
    fn total(&self) -> u64 {
        [self.read, self.update, self.insert, self.scan, self.rmw]
            .iter()
            .map(|&w| u64::from(w))
            .sum()
    }

    /// The kind for a draw `x` in `0..total()`.
    fn pick(&self, mut x: u64) -> OpKind {
        for (weight, kind) in [self.read, self.update, self.insert, self.scan, self.rmw]
            .iter()
            .zip(OpKind::ALL)
        {
            if x < u64::from(*weight) {
                return kind;
            }
            x -= u64::from(*weight);
        }
        // x < total() by construction, so the loop returned; reads are a safe answer regardless.
        OpKind::Read
    }
}

/// How keys are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum KeyDistribution {
    /// Every existing key equally likely.
    Uniform,
    /// Scrambled zipfian with skew `theta` (YCSB uses 0.99).
    Zipfian {
        /// Skew, `0 < theta < 1`.
        theta: f64,
    },
    /// Recently inserted keys most likely (zipfian over recency).
    Latest {
        /// Skew, `0 < theta < 1`.
        theta: f64,
    },
}

/// Size of written values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum ValueSize {
    /// Every value this many bytes.
    Fixed {
        /// Bytes.
        size: usize,
    },
    /// Uniform in `min..=max` bytes.
    Range {
        /// Smallest value size.
        min: usize,
        /// Largest value size.
        max: usize,
    },
}

impl ValueSize {
    /// Parses `100` or `64-1024`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parse = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|e| format!("value size {s:?}: {e}"))
        };
        let size = match text.split_once('-') {
            Some((a, b)) => ValueSize::Range {
                min: parse(a)?,
                max: parse(b)?,
            },
            None => ValueSize::Fixed { size: parse(text)? },
        };
        let (min, max) = match size {
            ValueSize::Fixed { size } => (size, size),
            ValueSize::Range { min, max } => (min, max),
        };
        if min > max || max > VALUE_SIZE_MAX {
            return Err(format!(
                "value size {text:?}: need min <= max <= {VALUE_SIZE_MAX}"
            ));
        }
        Ok(size)
    }
}

/// Everything that defines the requests of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadSpec {
    /// Name as given (`get`, `set`, `mixed`, `ycsb-a`, ...).
    pub name: String,
    /// Operation weights.
    pub mix: Mix,
    /// Key choice.
    pub distribution: KeyDistribution,
    /// Keys `0..keyspace` exist after the load phase.
    pub keyspace: u64,
    /// Value sizes.
    pub value_size: ValueSize,
    /// Scans read `1..=scan_length_max` keys.
    pub scan_length_max: u32,
}

impl WorkloadSpec {
    /// The workload called `name`: `get`, `set`, `mixed` (reads:updates = `ratio`), or a YCSB
    /// core workload `a`..`f` (also `ycsb-a`). `distribution` overrides the workload's default.
    pub fn named(
        name: &str,
        ratio: (u32, u32),
        distribution: Option<KeyDistribution>,
        keyspace: u64,
        value_size: ValueSize,
    ) -> Result<Self, String> {
        let zipf = KeyDistribution::Zipfian { theta: 0.99 };
        let lower = name.to_ascii_lowercase();
        let letter = lower.strip_prefix("ycsb-").unwrap_or(&lower);
        let (mix, default_distribution) = match letter {
            "get" => (
                Mix {
                    read: 1,
                    ..Mix::default()
                },
                KeyDistribution::Uniform,
            ),
            "set" => (
                Mix {
                    update: 1,
                    ..Mix::default()
                },
                KeyDistribution::Uniform,
            ),
            "mixed" => (
                Mix {
                    read: ratio.0,
                    update: ratio.1,
                    ..Mix::default()
                },
                KeyDistribution::Uniform,
            ),
            "a" => (
                Mix {
                    read: 50,
                    update: 50,
                    ..Mix::default()
                },
                zipf,
            ),
            "b" => (
                Mix {
                    read: 95,
                    update: 5,
                    ..Mix::default()
                },
                zipf,
            ),
            "c" => (
                Mix {
                    read: 100,
                    ..Mix::default()
                },
                zipf,
            ),
            "d" => (
                Mix {
                    read: 95,
                    insert: 5,
                    ..Mix::default()
                },
                KeyDistribution::Latest { theta: 0.99 },
            ),
            "e" => (
                Mix {
                    scan: 95,
                    insert: 5,
                    ..Mix::default()
                },
                zipf,
            ),
            "f" => (
                Mix {
                    read: 50,
                    rmw: 50,
                    ..Mix::default()
                },
                zipf,
            ),
            _ => {
                return Err(format!(
                    "unknown workload {name:?} (get, set, mixed, ycsb-a .. ycsb-f)"
                ))
            }
        };
        let spec = Self {
            name: name.to_string(),
            mix,
            distribution: distribution.unwrap_or(default_distribution),
            keyspace,
            value_size,
            scan_length_max: SCAN_LENGTH_MAX,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the relations the generator relies on.
    pub fn validate(&self) -> Result<(), String> {
        if self.mix.total() == 0 {
            return Err("workload mix has no operations".into());
        }
        if self.keyspace < 2 || self.keyspace > KEYSPACE_MAX / 2 {
            return Err(format!(
                "keyspace {} not in 2..={}",
                self.keyspace,
                KEYSPACE_MAX / 2
            ));
        }
        match self.distribution {
            KeyDistribution::Zipfian { theta } | KeyDistribution::Latest { theta }
                if !(theta > 0.0 && theta < 1.0) =>
            {
                Err(format!("zipfian theta {theta} not in (0, 1)"))
            }
            _ => Ok(()),
        }
    }

    /// True if the workload writes (so a durability comparison means something).
    pub fn writes(&self) -> bool {
        self.mix.update + self.mix.insert + self.mix.rmw > 0
    }
}

/// One operation to issue. Plain data: the connection renders the key and borrows the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    /// What to do.
    pub kind: OpKind,
    /// Key index (render with [`render_key`]).
    pub key: u64,
    /// Value slice of the pool (`offset`, `len`) for writes; `(0, 0)` for reads.
    pub value: (usize, usize),
    /// Keys to scan (scans only).
    pub scan_len: u32,
}

/// Writes the key for `index` into `buf` and returns it. Every key is `4 + KEY_DIGITS` bytes.
pub fn render_key(index: u64, buf: &mut [u8; KEY_SIZE_MAX]) -> &[u8] {
    buf[..4].copy_from_slice(b"key:");
    let mut rest = index;
    for slot in buf[4..4 + KEY_DIGITS].iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    &buf[..4 + KEY_DIGITS]
}

/// The shared read-only value pool: random printable bytes.
pub fn value_pool(seed: u64) -> Arc<[u8]> {
    let mut rng = SmallRng::seed_from_u64(seed);
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..VALUE_POOL_SIZE)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
        .collect()
}

/// Draws operations for one connection. Cheap to create; the zipfian table is shared.
#[derive(Debug)]
pub struct Generator {
    spec: Arc<WorkloadSpec>,
    zipf: Option<Arc<Zipfian>>,
    /// Highest key index inserted so far plus one; shared by every connection of the run.
    inserted: Arc<AtomicU64>,
    rng: SmallRng,
    mix_total: u64,
}

impl Generator {
    /// The zipfian table a spec needs (None for uniform). Build once per run.
    pub fn zipfian_for(spec: &WorkloadSpec) -> Option<Arc<Zipfian>> {
        match spec.distribution {
            KeyDistribution::Uniform => None,
            KeyDistribution::Zipfian { theta } | KeyDistribution::Latest { theta } => {
                Zipfian::new(spec.keyspace, theta).map(Arc::new)
            }
        }
    }

    /// A generator; `spec` must have passed [`WorkloadSpec::validate`].
    pub fn new(
        spec: Arc<WorkloadSpec>,
        zipf: Option<Arc<Zipfian>>,
        inserted: Arc<AtomicU64>,
        seed: u64,
    ) -> Self {
        let mix_total = spec.mix.total();
        assert!(mix_total > 0, "workload spec was not validated");
        Self {
            spec,
            zipf,
            inserted,
            rng: SmallRng::seed_from_u64(seed),
            mix_total,
        }
    }

    /// The next operation.
    pub fn next_op(&mut self) -> Op {
        let kind = self.spec.mix.pick(self.rng.gen_range(0..self.mix_total));
        let key = match kind {
            OpKind::Insert => self
                .inserted
                .fetch_add(1, Ordering::Relaxed)
                .min(KEYSPACE_MAX - 1),
            _ => self.existing_key(),
        };
        let value = match kind {
            OpKind::Update | OpKind::Insert | OpKind::ReadModifyWrite => self.value_slice(),
            OpKind::Read | OpKind::Scan => (0, 0),
        };
        let scan_len = if kind == OpKind::Scan {
            self.rng.gen_range(1..=self.spec.scan_length_max)
        } else {
            0
        };
        Op {
            kind,
            key,
            value,
            scan_len,
        }
    }

    fn existing_key(&mut self) -> u64 {
        let count = self.inserted.load(Ordering::Relaxed).max(1);
        match (self.spec.distribution, &self.zipf) {
            (KeyDistribution::Zipfian { .. }, Some(z)) => {
                let rank = z.next(&mut self.rng);
                xxhash_rust::xxh3::xxh3_64(&rank.to_le_bytes()) % self.spec.keyspace
            }
            (KeyDistribution::Latest { .. }, Some(z)) => {
                count - 1 - z.next(&mut self.rng).min(count - 1)
            }
            _ => self.rng.gen_range(0..count),
        }
    }

    fn value_slice(&mut self) -> (usize, usize) {
        draw_value(self.spec.value_size, &mut self.rng)
    }
}

/// A value of the given size as (`offset`, `len`) in the value pool.
pub fn draw_value<R: Rng>(size: ValueSize, rng: &mut R) -> (usize, usize) {
    let len = match size {
        ValueSize::Fixed { size } => size,
        ValueSize::Range { min, max } => rng.gen_range(min..=max),
    }
    .min(VALUE_SIZE_MAX);
    let offset = rng.gen_range(0..=VALUE_POOL_SIZE - len);
    (offset, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(name: &str, keyspace: u64) -> (Generator, Arc<AtomicU64>) {
        let spec =
            WorkloadSpec::named(name, (1, 1), None, keyspace, ValueSize::Fixed { size: 100 })
                .expect("valid workload");
        let spec = Arc::new(spec);
        let inserted = Arc::new(AtomicU64::new(keyspace));
        let zipf = Generator::zipfian_for(&spec);
        (Generator::new(spec, zipf, inserted.clone(), 42), inserted)
    }

    fn shares(name: &str, draws: usize) -> [f64; OP_KINDS] {
        let (mut g, _) = generator(name, 10_000);
        let mut counts = [0usize; OP_KINDS];
        for _ in 0..draws {
            counts[g.next_op().kind.index()] += 1;
        }
        counts.map(|c| c as f64 / draws as f64)
    }

    #[test]
    fn ycsb_mixes_match_the_published_proportions() {
        let draws = 100_000;
        let close = |got: f64, want: f64| (got - want).abs() < 0.01;
        let a = shares("ycsb-a", draws);
        assert!(close(a[0], 0.5) && close(a[1], 0.5), "A {a:?}");
        let b = shares("b", draws);
        assert!(close(b[0], 0.95) && close(b[1], 0.05), "B {b:?}");
        let c = shares("YCSB-C", draws);
        assert!(c[0] == 1.0, "C {c:?}");
        let d = shares("d", draws);
        assert!(close(d[0], 0.95) && close(d[2], 0.05), "D {d:?}");
        let e = shares("e", draws);
        assert!(close(e[3], 0.95) && close(e[2], 0.05), "E {e:?}");
        let f = shares("f", draws);
        assert!(close(f[0], 0.5) && close(f[4], 0.5), "F {f:?}");
    }

    #[test]
    fn unknown_workloads_and_bad_parameters_are_refused() {
        let v = ValueSize::Fixed { size: 10 };
        assert!(WorkloadSpec::named("ycsb-g", (1, 1), None, 100, v).is_err());
        assert!(WorkloadSpec::named("mixed", (0, 0), None, 100, v).is_err());
        assert!(WorkloadSpec::named(
            "a",
            (1, 1),
            Some(KeyDistribution::Zipfian { theta: 1.5 }),
            100,
            v
        )
        .is_err());
        assert!(WorkloadSpec::named("get", (1, 1), None, 1, v).is_err());
        assert!(ValueSize::parse("10-5").is_err());
        assert!(ValueSize::parse("2000000").is_err());
        assert_eq!(
            ValueSize::parse("8-16"),
            Ok(ValueSize::Range { min: 8, max: 16 })
        );
    }

    #[test]
    fn inserts_take_fresh_keys_and_latest_prefers_them() {
        let (mut g, inserted) = generator("d", 1000);
        let mut insert_keys = Vec::new();
        let mut recent_reads = 0;
        let mut reads = 0;
        for _ in 0..20_000 {
            let op = g.next_op();
            match op.kind {
                OpKind::Insert => insert_keys.push(op.key),
                OpKind::Read => {
                    reads += 1;
                    assert!(op.key < inserted.load(Ordering::Relaxed));
                    if op.key + 100 >= inserted.load(Ordering::Relaxed) {
                        recent_reads += 1;
                    }
                }
                other => panic!("workload D issued {other:?}"),
            }
        }
        let expected: Vec<u64> = (1000..1000 + insert_keys.len() as u64).collect();
        assert_eq!(insert_keys, expected, "inserts take consecutive fresh keys");
        assert!(
            recent_reads * 2 > reads,
            "latest: {recent_reads} of {reads} reads hit the newest 100 keys"
        );
    }

    #[test]
    fn uniform_keys_cover_the_keyspace_evenly() {
        let (mut g, _) = generator("get", 10);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[g.next_op().key as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn zipfian_keys_stay_in_the_keyspace_and_concentrate() {
        let (mut g, _) = generator("c", 100_000);
        let mut seen = std::collections::HashMap::new();
        for _ in 0..100_000 {
            let k = g.next_op().key;
            assert!(k < 100_000);
            *seen.entry(k).or_insert(0u32) += 1;
        }
        let mut counts: Vec<u32> = seen.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top100: u32 = counts.iter().take(100).sum();
        assert!(
            top100 > 30_000,
            "the 100 hottest keys drew {top100} of 100000"
        );
    }

    #[test]
    fn keys_render_with_fixed_width_and_values_fit_the_pool() {
        let mut buf = [0u8; KEY_SIZE_MAX];
        assert_eq!(render_key(42, &mut buf), b"key:000000000042");
        assert_eq!(render_key(KEYSPACE_MAX - 1, &mut buf), b"key:999999999999");
        let spec = WorkloadSpec::named(
            "set",
            (1, 1),
            None,
            100,
            ValueSize::Range {
                min: 1,
                max: VALUE_SIZE_MAX,
            },
        )
        .expect("valid");
        let mut g = Generator::new(Arc::new(spec), None, Arc::new(AtomicU64::new(100)), 3);
        for _ in 0..1000 {
            let (offset, len) = g.next_op().value;
            assert!(len >= 1 && offset + len <= VALUE_POOL_SIZE);
        }
    }
}
