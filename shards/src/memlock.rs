//! The RLIMIT_MEMLOCK check run before any executor starts.
//!
//! glommio locks memory for its io_uring rings and registered buffers and
//! refuses to start a reactor below [`MEMLOCK_BYTES_MIN`]; without this check
//! the node would die with a backtrace from inside glommio. When the soft
//! limit is low but the hard limit allows more, the soft limit is raised
//! first (an unprivileged process may do so).

use crate::error::Error;
use crate::limits::MEMLOCK_BYTES_MIN;

/// What the memlock limit looked like and what was done about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemlockReport {
    /// Soft limit in bytes before the check (`u64::MAX` = unlimited).
    pub soft_before: u64,
    /// Soft limit in bytes after the check.
    pub soft_after: u64,
    /// Whether the process may lock memory beyond the limit (CAP_IPC_LOCK).
    pub privileged: bool,
}

fn as_bytes(limit: libc::rlim_t) -> u64 {
    if limit == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        limit
    }
}

/// Ensures the soft RLIMIT_MEMLOCK is at least `needed` bytes, raising it
/// towards the hard limit if needed. Fails with [`Error::MemlockTooLow`]
/// (naming the limit seen, the limit needed and the fix) when it cannot.
pub fn ensure_memlock(needed: u64) -> Result<MemlockReport, Error> {
    let needed = needed.max(MEMLOCK_BYTES_MIN);
    // SAFETY: getrlimit writes into a struct we own.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    if rc != 0 {
        return Err(Error::Startup(format!(
            "getrlimit(RLIMIT_MEMLOCK) failed: {}",
            std::io::Error::last_os_error()
        )));
    }
    let soft_before = as_bytes(lim.rlim_cur);
    let hard = as_bytes(lim.rlim_max);
    // SAFETY: geteuid has no preconditions. Root holds CAP_IPC_LOCK in the
    // usual setups, which lifts the accounting of registered buffers.
    let privileged = unsafe { libc::geteuid() } == 0;
    let mut soft_after = soft_before;
    if soft_before < needed && hard > soft_before {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads a struct we own; raising soft up to hard is allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
            soft_after = hard;
        }
    }
    if soft_after < needed {
        return Err(Error::MemlockTooLow {
            seen: soft_after,
            needed,
        });
    }
    Ok(MemlockReport {
        soft_before,
        soft_after,
        privileged,
    })
}

/// Bytes of locked memory that `shards` executors with `io_memory` bytes of
/// registered buffers each would like (three rings register the buffers).
pub fn memlock_wanted(shards: u32, io_memory: usize) -> u64 {
    u64::from(shards) * (io_memory as u64) * 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_limit_seen_the_limit_needed_and_the_fix() {
        let text = Error::MemlockTooLow {
            seen: 64 * 1024,
            needed: 512 * 1024,
        }
        .to_string();
        assert!(text.contains("65536"), "{text}");
        assert!(text.contains("524288"), "{text}");
        assert!(text.contains("ulimit -l unlimited"), "{text}");
        assert!(text.contains("LimitMEMLOCK=infinity"), "{text}");
    }

    #[test]
    fn the_current_limit_passes_the_minimum() {
        // The test machines run with at least glommio's minimum, or glommio
        // itself could not run the other tests.
        let report = ensure_memlock(MEMLOCK_BYTES_MIN).unwrap();
        assert!(report.soft_after >= MEMLOCK_BYTES_MIN);
    }
}
