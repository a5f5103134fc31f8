//! Consistency levels: how many replicas must answer before a request does.
//!
//! With `n` replicas, QUORUM is `n/2 + 1`, so a QUORUM write and a QUORUM
//! read always share a replica (R + W > N): reads see acknowledged writes.

/// A request's consistency level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// One replica.
    One,
    /// A majority of the replicas.
    Quorum,
    /// Every replica.
    All,
}

impl Level {
    /// Replicas needed out of `replicas`: 1, `replicas/2 + 1`, `replicas`.
    /// Never 0 when `replicas > 0`; 0 only when there is no replica at all.
    pub fn required(self, replicas: usize) -> usize {
        if replicas == 0 {
            return 0;
        }
        match self {
            Level::One => 1,
            Level::Quorum => replicas / 2 + 1,
            Level::All => replicas,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Level;

    #[test]
    fn required_counts_match_the_level_and_are_never_zero() {
        let table = [
            (1, [1, 1, 1]),
            (2, [1, 2, 2]),
            (3, [1, 2, 3]),
            (4, [1, 3, 4]),
            (5, [1, 3, 5]),
            (7, [1, 4, 7]),
        ];
        for (n, want) in table {
            let got = [Level::One, Level::Quorum, Level::All].map(|l| l.required(n));
            assert_eq!(got, want, "n = {n}");
        }
        assert_eq!(Level::Quorum.required(0), 0);
    }

    #[test]
    fn quorum_reads_and_writes_overlap() {
        for n in 1..=7 {
            assert!(Level::Quorum.required(n) * 2 > n);
        }
    }
}
