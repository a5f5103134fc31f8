//! The hybrid logical clock of one shard: every write it stamps gets a
//! version strictly above every version it stamped or observed before, and
//! above the session version the client sent.
//!
//! `hlc = physical_ms << 16 | logical` (see `ringkv_storage::Version`). When
//! the wall clock has not advanced, the logical part counts up (and carries
//! into the physical part after 65 535 writes in one millisecond, which keeps
//! the clock monotonic). Pure: time is an argument.

use crate::limits::SESSION_AHEAD_MAX;
use ringkv_storage::Version;

/// A session version too far in the future was refused; nothing was stamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("session version {session_ms} ms is more than {ahead_max_ms} ms ahead of this node's clock ({now_ms} ms)")]
pub struct SessionAheadError {
    /// Physical part of the refused session version.
    pub session_ms: u64,
    /// This node's wall clock.
    pub now_ms: u64,
    /// The largest lead accepted.
    pub ahead_max_ms: u64,
}

/// One shard's clock. Not shared between threads.
#[derive(Debug, Clone)]
pub struct Hlc {
    node: u32,
    last: u64,
}

impl Hlc {
    /// A clock for `node` that has stamped nothing yet.
    pub fn new(node: u32) -> Self {
        Hlc { node, last: 0 }
    }

    /// Raises the clock to at least `seen` (a version read from storage or a
    /// peer), so later stamps are above it.
    pub fn observe(&mut self, seen: Version) {
        self.last = self.last.max(seen.hlc);
    }

    /// The last hybrid timestamp stamped or observed.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Stamps a new version above everything stamped or observed before and
    /// above `session`. Refuses a session more than [`SESSION_AHEAD_MAX`]
    /// ahead of `now_ms`.
    pub fn stamp(&mut self, now_ms: u64, session: Version) -> Result<Version, SessionAheadError> {
        let ahead_max_ms = SESSION_AHEAD_MAX.as_millis() as u64;
        if session.physical_ms() > now_ms.saturating_add(ahead_max_ms) {
            return Err(SessionAheadError {
                session_ms: session.physical_ms(),
                now_ms,
                ahead_max_ms,
            });
        }
        let physical = now_ms.saturating_mul(1 << Version::LOGICAL_BITS);
        let next = physical
            .max(self.last.saturating_add(1))
            .max(session.hlc.saturating_add(1));
        assert!(
            next > self.last || self.last == u64::MAX,
            "the clock never goes back"
        );
        self.last = next;
        Ok(Version {
            hlc: next,
            node: self.node,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_rise_when_the_wall_clock_stands_still() {
        let mut clock = Hlc::new(7);
        let a = clock.stamp(1_000, Version::ZERO).unwrap();
        let b = clock.stamp(1_000, Version::ZERO).unwrap();
        assert!(b > a);
        assert_eq!(a.physical_ms(), 1_000);
        assert_eq!(b.hlc - a.hlc, 1);
        assert_eq!(a.node, 7);
    }

    #[test]
    fn stamps_rise_when_the_wall_clock_goes_back() {
        let mut clock = Hlc::new(1);
        let a = clock.stamp(5_000, Version::ZERO).unwrap();
        let b = clock.stamp(4_000, Version::ZERO).unwrap();
        assert!(b > a);
    }

    #[test]
    fn stamps_are_above_the_session_and_observed_versions() {
        let mut clock = Hlc::new(1);
        let session = Version::new(2_000, 5, 9);
        let a = clock.stamp(1_990, session).unwrap();
        assert!(a > session);
        clock.observe(Version::new(2_010, 0, 3));
        let b = clock.stamp(1_990, Version::ZERO).unwrap();
        assert!(b.hlc > Version::new(2_010, 0, 3).hlc);
    }

    #[test]
    fn a_session_far_in_the_future_is_refused() {
        let mut clock = Hlc::new(1);
        let far = Version {
            hlc: u64::MAX,
            node: 0,
        };
        assert!(clock.stamp(1_000, far).is_err());
        assert_eq!(clock.last(), 0);
    }
}
