//! What a random memory access costs on this machine: a load that waits
//! (each address depends on the last load), loads that overlap, and loads
//! hinted a batch ahead, over a region of a given size on 4 KiB or 2 MiB
//! pages. A store's point lookups are chains of such loads (an index bucket,
//! then the entry it names), so these figures bound what hints can win.

use std::time::Instant;

/// Loads hinted together, then read, in [`Probe::hinted_ns`] (a batch of
/// pipelined requests is about this size).
pub const HINT_BATCH: usize = 16;

const LINE: usize = 64;
const HUGE_PAGE: usize = 2 << 20;

/// Nanoseconds per load of one region, measured three ways.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// Each load's address depends on the previous load: full latency.
    pub dependent_ns: f64,
    /// Independent loads: as many in flight as the core allows.
    pub independent_ns: f64,
    /// [`HINT_BATCH`] addresses hinted, then loaded: the pattern of a
    /// batch's prefetch.
    pub hinted_ns: f64,
    /// Bytes of the region the kernel backed with huge pages.
    pub huge_bytes: usize,
}

/// An anonymous mapping, unmapped on drop.
struct Region {
    base: *mut u8,
    mapped: usize,
    start: usize,
    len: usize,
}

impl Region {
    /// `len` bytes aligned to a huge page, advised for huge pages or
    /// against them, and written once so every page is present.
    fn new(len: usize, huge: bool) -> std::io::Result<Region> {
        let mapped = len + HUGE_PAGE;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = base.cast::<u8>();
        let start = (base as usize).next_multiple_of(HUGE_PAGE) - base as usize;
        let mut region = Region {
            base,
            mapped,
            start,
            len,
        };
        let advice = if huge {
            libc::MADV_HUGEPAGE
        } else {
            libc::MADV_NOHUGEPAGE
        };
        // SAFETY: advice on a range inside the mapping; it changes no contents.
        // Failure (no THP support) only means 4 KiB pages, which the probe reports.
        unsafe { libc::madvise(region.ptr().cast(), len, advice) };
        region.words_mut().fill(1);
        Ok(region)
    }

    fn ptr(&self) -> *mut u8 {
        self.base.wrapping_add(self.start)
    }

    fn words(&self) -> &[u64] {
        // SAFETY: `len` bytes from the huge-page-aligned start lie inside the
        // mapping, which lives as long as `self`; u64 alignment holds.
        unsafe { std::slice::from_raw_parts(self.ptr().cast::<u64>(), self.len / 8) }
    }

    fn words_mut(&mut self) -> &mut [u64] {
        // SAFETY: as in `words`, and `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr().cast::<u64>(), self.len / 8) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.base.cast(), self.mapped) };
    }
}

/// Anonymous huge-page bytes of this process (`AnonHugePages` of
/// `/proc/self/smaps_rollup`; 0 when unreadable).
fn anon_huge_bytes() -> usize {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Line-start word indexes spread at random over `words` words (xorshift,
/// seeded: runs repeat).
fn random_lines(words: usize, count: usize) -> Vec<usize> {
    let lines = (words * 8 / LINE).max(1);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % lines as u64) as usize * (LINE / 8)
        })
        .collect()
}

#[inline(always)]
fn hint(p: *const u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it never faults and changes no state.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

fn ns_per(start: Instant, loads: usize) -> f64 {
    start.elapsed().as_secs_f64() * 1e9 / loads as f64
}

/// Measures `loads` random loads over a region of `bytes` (at least one
/// huge page), on huge pages when `huge`.
pub fn probe(bytes: usize, huge: bool, loads: usize) -> std::io::Result<Probe> {
    let bytes = bytes.max(HUGE_PAGE).next_multiple_of(HUGE_PAGE);
    let loads = loads.max(HINT_BATCH).next_multiple_of(HINT_BATCH);
    let huge_before = anon_huge_bytes();
    let region = Region::new(bytes, huge)?;
    let huge_bytes = anon_huge_bytes().saturating_sub(huge_before).min(bytes);
    let words = region.words();
    let at = random_lines(words.len(), loads);

    // Dependent: every word holds 1, so `v & 1` is 1 and the next index
    // (the same line, one word on) cannot be known before the load returns.
    let start = Instant::now();
    let mut v = 0u64;
    for &i in &at {
        v = words[i | (v & 1) as usize];
    }
    let dependent_ns = ns_per(start, loads);
    std::hint::black_box(v);

    let start = Instant::now();
    let mut sum = 0u64;
    for &i in &at {
        sum = sum.wrapping_add(words[i]);
    }
    let independent_ns = ns_per(start, loads);
    std::hint::black_box(sum);

    let start = Instant::now();
    let mut sum = 0u64;
    for batch in at.chunks_exact(HINT_BATCH) {
        for &i in batch {
            hint(words.as_ptr().wrapping_add(i));
        }
        for &i in batch {
            sum = sum.wrapping_add(words[i]);
        }
    }
    let hinted_ns = ns_per(start, loads);
    std::hint::black_box(sum);

    Ok(Probe {
        dependent_ns,
        independent_ns,
        hinted_ns,
        huge_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_lines_start_lines_inside_the_region() {
        let words = 3 * 1024 * 1024 / 8;
        let at = random_lines(words, 10_000);
        assert!(at.iter().all(|&i| i % (LINE / 8) == 0 && i + 1 < words));
        let distinct: std::collections::HashSet<_> = at.iter().collect();
        assert!(distinct.len() > 9_000, "{} distinct lines", distinct.len());
    }

    #[test]
    fn a_probe_measures_every_way_over_a_small_region() {
        let p = probe(4 << 20, false, 20_000).unwrap();
        for ns in [p.dependent_ns, p.independent_ns, p.hinted_ns] {
            assert!(ns.is_finite() && ns > 0.0, "{p:?}");
        }
        assert!(p.huge_bytes <= 4 << 20, "{p:?}");
    }
}
