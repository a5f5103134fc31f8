//! Choosing the next compaction job (pure: table metadata in, a job out).
//!
//! Each level gets a score: L0 by file count (`count / level0_trigger`), L1
//! and deeper by size (`bytes / target`, target = level1_size * ratio^(n-1)).
//! The level with the highest score >= 1 is compacted:
//! - L0: every L0 table (they overlap each other) plus the L1 tables their key
//!   range overlaps, into L1.
//! - Ln: one table, chosen round-robin after the key where the last Ln job
//!   stopped (LevelDB's compaction pointer), plus the Ln+1 tables it overlaps.
//!
//! The last level ([`LEVEL_COUNT`] - 1) has no target and is never an input.

use crate::types::TableMeta;

/// Number of levels, L0 included.
pub const LEVEL_COUNT: usize = 7;

/// The knobs of leveled compaction (from the engine's options).
#[derive(Clone, Copy, Debug)]
pub struct LevelConfig {
    /// L0 file count that triggers an L0 -> L1 compaction.
    pub level0_trigger: usize,
    /// Target size of L1 in bytes.
    pub level1_size: u64,
    /// Each level's target is this many times the one above.
    pub level_size_ratio: u64,
}

/// One compaction: merge `inputs` (from `input_level`) with `overlapping`
/// (from `output_level`) into new tables at `output_level`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Level the inputs come from.
    pub input_level: u32,
    /// Level the outputs go to (`input_level + 1`).
    pub output_level: u32,
    /// Tables taken from `input_level`.
    pub inputs: Vec<TableMeta>,
    /// Tables of `output_level` whose key range overlaps the inputs.
    pub overlapping: Vec<TableMeta>,
    /// No table lies below `output_level`: tombstones may be dropped.
    pub bottommost: bool,
}

impl Job {
    /// Every table the job reads.
    pub fn all_inputs(&self) -> impl Iterator<Item = &TableMeta> {
        self.inputs.iter().chain(self.overlapping.iter())
    }

    /// Bytes the job reads.
    pub fn input_bytes(&self) -> u64 {
        self.all_inputs().map(|t| t.size).sum()
    }
}

/// Target size in bytes of level `level` (>= 1); `u64::MAX` for the last level.
pub fn level_target(config: &LevelConfig, level: usize) -> u64 {
    if level == 0 || level >= LEVEL_COUNT - 1 {
        return u64::MAX;
    }
    let mut target = config.level1_size.max(1);
    for _ in 1..level {
        target = target.saturating_mul(config.level_size_ratio.max(2));
    }
    target
}

/// The next job, or `None` when every level is within its target.
/// `levels[n]` holds the tables of level n (L1 and deeper sorted by smallest
/// key); `cursors[n]` is the largest key of the last job taken from level n.
pub fn pick(levels: &[Vec<TableMeta>], config: &LevelConfig, cursors: &[Vec<u8>]) -> Option<Job> {
    let mut best: Option<(f64, usize)> = None;
    for level in 0..levels.len().min(LEVEL_COUNT - 1) {
        let score = score(levels, config, level);
        if score >= 1.0 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, level));
        }
    }
    let (_, level) = best?;
    let inputs = if level == 0 {
        levels[0].clone()
    } else {
        vec![round_robin(&levels[level], cursors.get(level).map(Vec::as_slice))?.clone()]
    };
    let (smallest, largest) = key_range(&inputs)?;
    let output = level + 1;
    let overlapping = levels
        .get(output)
        .map(|tables| {
            tables
                .iter()
                .filter(|t| overlaps(t, smallest, largest))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let bottommost = levels.iter().skip(output + 1).all(Vec::is_empty);
    Some(Job {
        input_level: level as u32,
        output_level: output as u32,
        inputs,
        overlapping,
        bottommost,
    })
}

fn score(levels: &[Vec<TableMeta>], config: &LevelConfig, level: usize) -> f64 {
    let tables = &levels[level];
    if tables.is_empty() {
        return 0.0;
    }
    if level == 0 {
        return tables.len() as f64 / config.level0_trigger.max(1) as f64;
    }
    let bytes: u64 = tables.iter().map(|t| t.size).sum();
    bytes as f64 / level_target(config, level) as f64
}

/// The first table whose smallest key is after `cursor`, wrapping to the first.
fn round_robin<'a>(tables: &'a [TableMeta], cursor: Option<&[u8]>) -> Option<&'a TableMeta> {
    let after = cursor.and_then(|c| tables.iter().find(|t| t.smallest_key.as_slice() > c));
    after.or_else(|| tables.first())
}

fn key_range(tables: &[TableMeta]) -> Option<(&[u8], &[u8])> {
    let smallest = tables.iter().map(|t| t.smallest_key.as_slice()).min()?;
    let largest = tables.iter().map(|t| t.largest_key.as_slice()).max()?;
    Some((smallest, largest))
}

/// Whether `table`'s key range intersects `[smallest, largest]`.
pub fn overlaps(table: &TableMeta, smallest: &[u8], largest: &[u8]) -> bool {
    table.smallest_key.as_slice() <= largest && table.largest_key.as_slice() >= smallest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Version;

    const CONFIG: LevelConfig = LevelConfig {
        level0_trigger: 4,
        level1_size: 1000,
        level_size_ratio: 10,
    };

    fn t(id: u64, level: u32, size: u64, smallest: &str, largest: &str) -> TableMeta {
        TableMeta {
            id,
            level,
            size,
            entry_count: 1,
            tombstone_count: 0,
            smallest_key: smallest.as_bytes().to_vec(),
            largest_key: largest.as_bytes().to_vec(),
            max_version: Version::ZERO,
        }
    }

    fn levels(tables: Vec<TableMeta>) -> Vec<Vec<TableMeta>> {
        let mut out = vec![Vec::new(); LEVEL_COUNT];
        for table in tables {
            out[table.level as usize].push(table);
        }
        out
    }

    #[test]
    fn targets_grow_by_the_ratio_and_the_last_level_has_none() {
        assert_eq!(level_target(&CONFIG, 1), 1000);
        assert_eq!(level_target(&CONFIG, 3), 100_000);
        assert_eq!(level_target(&CONFIG, LEVEL_COUNT - 1), u64::MAX);
    }

    #[test]
    fn nothing_is_picked_when_every_level_is_within_target() {
        let l = levels(vec![t(1, 0, 10, "a", "z"), t(2, 1, 900, "a", "m")]);
        assert_eq!(pick(&l, &CONFIG, &[]), None);
    }

    #[test]
    fn level0_at_trigger_takes_all_its_tables_and_overlapping_level1_tables() {
        let l = levels(vec![
            t(1, 0, 10, "c", "d"),
            t(2, 0, 10, "a", "b"),
            t(3, 0, 10, "e", "f"),
            t(4, 0, 10, "b", "e"),
            t(5, 1, 100, "a", "a"),
            t(6, 1, 100, "g", "h"),
            t(7, 2, 100, "a", "z"),
        ]);
        let job = pick(&l, &CONFIG, &[]).expect("level 0 is at its trigger");
        assert_eq!((job.input_level, job.output_level), (0, 1));
        assert_eq!(
            job.inputs.iter().map(|t| t.id).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(
            job.overlapping.iter().map(|t| t.id).collect::<Vec<_>>(),
            vec![5]
        );
        assert!(!job.bottommost, "level 2 holds data below the output");
    }

    #[test]
    fn an_oversized_level_gives_one_table_round_robin_after_the_cursor() {
        let l = levels(vec![
            t(1, 1, 600, "a", "c"),
            t(2, 1, 600, "d", "f"),
            t(3, 2, 10, "b", "b"),
            t(4, 2, 10, "e", "e"),
        ]);
        let first = pick(&l, &CONFIG, &[]).expect("level 1 is over target");
        assert_eq!(first.inputs[0].id, 1);
        assert_eq!(
            first.overlapping.iter().map(|t| t.id).collect::<Vec<_>>(),
            vec![3]
        );
        assert!(first.bottommost);
        let cursors = vec![Vec::new(), b"c".to_vec()];
        let second = pick(&l, &CONFIG, &cursors).expect("still over target");
        assert_eq!(second.inputs[0].id, 2);
        assert_eq!(
            second.overlapping.iter().map(|t| t.id).collect::<Vec<_>>(),
            vec![4]
        );
        let wrapped = pick(&l, &CONFIG, &[Vec::new(), b"f".to_vec()]).expect("still over target");
        assert_eq!(wrapped.inputs[0].id, 1);
    }

    #[test]
    fn the_most_urgent_level_goes_first() {
        let l = levels(vec![
            t(1, 0, 10, "a", "b"),
            t(2, 0, 10, "a", "b"),
            t(3, 0, 10, "a", "b"),
            t(4, 0, 10, "a", "b"),
            t(5, 1, 5000, "a", "z"),
        ]);
        let job = pick(&l, &CONFIG, &[]).expect("both levels are over");
        assert_eq!(job.input_level, 1, "L1 at 5x target beats L0 at 1x trigger");
    }

    #[test]
    fn the_last_level_is_never_an_input() {
        let l = levels(vec![t(1, (LEVEL_COUNT - 1) as u32, u64::MAX / 2, "a", "z")]);
        assert_eq!(pick(&l, &CONFIG, &[]), None);
    }
}
