//! Zipfian ranks, after Gray et al., "Quickly Generating Billion-Record Synthetic Databases"
//! (SIGMOD 1994), the same algorithm YCSB's `ZipfianGenerator` uses (an idea, not its code).
//!
//! `next` returns a rank in `0..n`; rank 0 is the most popular. The probability of rank `i` is
//! proportional to `1 / (i + 1)^theta`. Invariant: `0 < theta < 1` (the closed form below divides
//! by `1 - theta`), `n >= 2`.
//!
//! `zeta(n, theta)` is summed exactly up to [`ZETA_EXACT_TERMS_MAX`] terms and the tail is
//! approximated with Euler–Maclaurin (error far below 1e-6 relative), so building a generator
//! over a billion keys takes milliseconds, not seconds.

use rand::Rng;

/// Terms of zeta summed exactly; the rest is integrated.
pub const ZETA_EXACT_TERMS_MAX: u64 = 1_000_000;

/// A zipfian rank generator over `0..n`. Immutable after construction, so one can be shared.
#[derive(Debug, Clone)]
pub struct Zipfian {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    half_pow_theta: f64,
}

/// `sum_{i=1..n} 1 / i^theta`.
pub fn zeta(n: u64, theta: f64) -> f64 {
    let exact = n.min(ZETA_EXACT_TERMS_MAX);
    let mut sum = 0.0;
    for i in 1..=exact {
        sum += (i as f64).powf(-theta);
    }
    if n > exact {
        // Euler–Maclaurin: sum_{i=m+1..n} f(i) ~ int_m^n f + (f(n) - f(m)) / 2 + (f'(n) - f'(m)) / 12.
        let m = exact as f64;
        let nf = n as f64;
        let f = |x: f64| x.powf(-theta);
        let df = |x: f64| -theta * x.powf(-theta - 1.0);
        let integral = (nf.powf(1.0 - theta) - m.powf(1.0 - theta)) / (1.0 - theta);
        sum += integral + (f(nf) - f(m)) / 2.0 + (df(nf) - df(m)) / 12.0;
    }
    sum
}

impl Zipfian {
    /// A generator over `0..n` with skew `theta`. Returns `None` unless `n >= 2` and `0 < theta < 1`.
    pub fn new(n: u64, theta: f64) -> Option<Self> {
        if n < 2 || !(theta > 0.0 && theta < 1.0) {
            return None;
        }
        let zetan = zeta(n, theta);
        let zeta2 = zeta(2, theta);
        let alpha = 1.0 / (1.0 - theta);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Some(Self {
            n,
            theta,
            alpha,
            zetan,
            eta,
            half_pow_theta: 0.5f64.powf(theta),
        })
    }

    /// The number of ranks.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The skew.
    pub fn theta(&self) -> f64 {
        self.theta
    }

    /// The next rank, in `0..n`.
    pub fn next<R: Rng>(&self, rng: &mut R) -> u64 {
        let u: f64 = rng.gen();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + self.half_pow_theta {
            return 1;
        }
        let rank = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        // Floating point can land exactly on n for u close to 1.
        rank.min(self.n - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn zeta_tail_approximation_matches_exact_sum() {
        let theta = 0.99;
        let n = ZETA_EXACT_TERMS_MAX * 3;
        let mut exact = 0.0;
        for i in 1..=n {
            exact += (i as f64).powf(-theta);
        }
        let approx = zeta(n, theta);
        assert!(
            ((approx - exact) / exact).abs() < 1e-9,
            "approx {approx} exact {exact}"
        );
    }

    #[test]
    fn zipfian_rejects_degenerate_parameters() {
        assert!(Zipfian::new(1, 0.99).is_none());
        assert!(Zipfian::new(100, 0.0).is_none());
        assert!(Zipfian::new(100, 1.0).is_none());
        assert!(Zipfian::new(100, f64::NAN).is_none());
    }

    #[test]
    fn zipfian_frequencies_follow_the_power_law() {
        let seed = 7;
        let n = 1000;
        let theta = 0.99;
        let z = Zipfian::new(n, theta).expect("valid parameters");
        let mut rng = SmallRng::seed_from_u64(seed);
        let draws = 400_000;
        let mut counts = vec![0u64; n as usize];
        for _ in 0..draws {
            let r = z.next(&mut rng);
            assert!(r < n);
            counts[r as usize] += 1;
        }
        let zetan = zeta(n, theta);
        let model = |ranks: std::ops::Range<u64>| -> f64 {
            ranks.map(|i| ((i + 1) as f64).powf(-theta)).sum::<f64>() / zetan * draws as f64
        };
        // Gray's method is exact for ranks 0 and 1 and approximates the rest with the continuous
        // inverse CDF; check the head exactly and the cumulative shape within a few percent.
        for rank in 0..2u64 {
            let expected = model(rank..rank + 1);
            let got = counts[rank as usize] as f64;
            assert!(
                (got - expected).abs() / expected < 0.03,
                "seed {seed}: rank {rank} got {got} expected {expected}"
            );
        }
        for cutoff in [10u64, 100, 500] {
            let expected = model(0..cutoff);
            let got: u64 = counts[..cutoff as usize].iter().sum();
            assert!(
                (got as f64 - expected).abs() / expected < 0.06,
                "seed {seed}: top {cutoff} got {got} expected {expected}"
            );
        }
        let head: u64 = counts[..10].iter().sum();
        let middle: u64 = counts[100..200].iter().sum();
        assert!(head > middle, "seed {seed}: head {head} middle {middle}");
    }

    #[test]
    fn zipfian_over_a_billion_keys_builds_quickly_and_stays_in_range() {
        let start = std::time::Instant::now();
        let z = Zipfian::new(1_000_000_000, 0.99).expect("valid parameters");
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..10_000 {
            assert!(z.next(&mut rng) < 1_000_000_000);
        }
    }
}
