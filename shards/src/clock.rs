//! A shard's hybrid logical clock made safe across restarts by a persisted
//! lease, so a wall clock that went back while the node was down can never
//! stamp a new write below one acknowledged before (which last-write-wins
//! would silently discard).
//!
//! Invariant: every version this shard ever stamped is `<=` the lease on
//! disk. Before stamping past the lease, the lease is moved
//! [`CLOCK_LEASE_AHEAD`] ahead and made durable (tmp + fsync + rename + fsync
//! dir, about once per lease period); at start the clock observes the lease.
//! Same idea as CockroachDB's and Spanner's persisted clock upper bounds.
//!
//! File `<data-dir>/clock-<shard>` (text):
//! ```text
//! ringkv-clock 1
//! <lease hlc, decimal u64>
//! ```

use crate::hlc::{Hlc, SessionAheadError};
use crate::limits::CLOCK_LEASE_AHEAD;
use ringkv_storage::Version;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC_LINE: &str = "ringkv-clock 1";

/// Why a version could not be stamped. Nothing was stamped.
#[derive(Debug, thiserror::Error)]
pub enum StampError {
    /// The request's session version is too far ahead.
    #[error(transparent)]
    SessionAhead(#[from] SessionAheadError),
    /// The lease could not be made durable (the write must be refused).
    #[error("cannot persist the clock lease {}: {source}", path.display())]
    Lease {
        /// The lease file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The offset of this node's wall clock from the real one, ms (test-only
/// `--clock-offset-ms`; 0 in production). Process-wide: one node per process.
static WALL_OFFSET_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Makes [`wall_ms`] read `offset_ms` off the real clock (to test clock skew).
pub fn set_wall_offset_ms(offset_ms: i64) {
    WALL_OFFSET_MS.store(offset_ms, std::sync::atomic::Ordering::Relaxed);
}

/// This node's wall clock, Unix milliseconds (the real clock plus the test offset).
pub fn wall_ms() -> u64 {
    let real = ringkv_storage::io::now_ms();
    let offset = WALL_OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed);
    real.saturating_add_signed(offset)
}

/// A hybrid logical clock with a durable upper bound.
#[derive(Debug)]
pub struct LeasedClock {
    hlc: Hlc,
    lease: u64,
    path: PathBuf,
}

impl LeasedClock {
    /// Opens the clock of one shard: reads its lease (if any) and starts above it.
    pub fn open(path: &Path, node: u32) -> Result<LeasedClock, String> {
        let mut hlc = Hlc::new(node);
        let lease = match std::fs::read_to_string(path) {
            Ok(text) => parse(&text).map_err(|r| format!("{}: {r}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        hlc.observe(Version {
            hlc: lease,
            node: 0,
        });
        Ok(LeasedClock {
            hlc,
            lease,
            path: path.to_path_buf(),
        })
    }

    /// Raises the clock to at least `seen`.
    pub fn observe(&mut self, seen: Version) {
        self.hlc.observe(seen);
    }

    /// The last hybrid timestamp stamped or observed.
    pub fn last(&self) -> u64 {
        self.hlc.last()
    }

    /// The durable upper bound of every stamp so far.
    pub fn lease(&self) -> u64 {
        self.lease
    }

    /// Stamps a version above everything before and above `session`,
    /// extending the durable lease first when needed.
    pub fn stamp(&mut self, now_ms: u64, session: Version) -> Result<Version, StampError> {
        let before = self.hlc.clone();
        let v = self.hlc.stamp(now_ms, session)?;
        if v.hlc > self.lease {
            let ahead = (CLOCK_LEASE_AHEAD.as_millis() as u64) << Version::LOGICAL_BITS;
            let lease = v.hlc.saturating_add(ahead);
            if let Err(source) = persist(&self.path, lease) {
                self.hlc = before;
                return Err(StampError::Lease {
                    path: self.path.clone(),
                    source,
                });
            }
            self.lease = lease;
        }
        Ok(v)
    }
}

fn parse(text: &str) -> Result<u64, String> {
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC_LINE) {
        return Err(format!("first line is not {MAGIC_LINE:?}"));
    }
    let v = lines.next().ok_or("missing lease line")?;
    v.trim()
        .parse()
        .map_err(|_| format!("lease {v:?} is not a number"))
}

fn persist(path: &Path, lease: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(format!("{MAGIC_LINE}\n{lease}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")).unwrap()
    }

    #[test]
    fn after_a_restart_with_the_wall_clock_set_back_stamps_stay_above_the_old_ones() {
        let dir = tmp();
        let path = dir.path().join("clock-0");
        let mut clock = LeasedClock::open(&path, 1).unwrap();
        let mut highest = Version::ZERO;
        for i in 0..1000 {
            highest = clock.stamp(10_000_000 + i, Version::ZERO).unwrap();
        }
        drop(clock);
        // Restart an hour earlier by the wall clock.
        let mut clock = LeasedClock::open(&path, 1).unwrap();
        let next = clock.stamp(10_000_000 - 3_600_000, Version::ZERO).unwrap();
        assert!(next > highest);
    }

    #[test]
    fn the_lease_is_written_rarely_and_always_covers_the_stamps() {
        let dir = tmp();
        let path = dir.path().join("clock-0");
        let mut clock = LeasedClock::open(&path, 1).unwrap();
        let first = clock.stamp(5_000, Version::ZERO).unwrap();
        let lease = clock.lease();
        assert!(lease > first.hlc);
        let second = clock.stamp(5_001, Version::ZERO).unwrap();
        assert_eq!(clock.lease(), lease, "no rewrite within the lease");
        assert!(second.hlc <= lease);
        assert_eq!(
            parse(&std::fs::read_to_string(&path).unwrap()).unwrap(),
            lease
        );
    }

    #[test]
    fn a_garbled_lease_file_is_refused() {
        let dir = tmp();
        let path = dir.path().join("clock-0");
        std::fs::write(&path, "nonsense").unwrap();
        assert!(LeasedClock::open(&path, 1).is_err());
    }
}
