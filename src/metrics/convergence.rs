//! Convergence arithmetic: from the times at which machines reached a
//! version, the time by which 50, 90, 99 and 100 % of them had.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a population converged on a version after a reference event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Convergence {
    /// Machines counted.
    pub population: usize,
    /// Of those, how many reached it by the end.
    pub reached: usize,
    /// Seconds after the reference event until half had; `None`: never.
    pub t50_s: Option<f64>,
    /// Until 90 %.
    pub t90_s: Option<f64>,
    /// Until 99 %.
    pub t99_s: Option<f64>,
    /// Until every one.
    pub t100_s: Option<f64>,
}

impl Convergence {
    /// The figure for a percentile (50, 90, 99, 100).
    pub fn t(&self, pct: u8) -> Option<f64> {
        match pct {
            50 => self.t50_s,
            90 => self.t90_s,
            99 => self.t99_s,
            _ => self.t100_s,
        }
    }
}

/// `delays`: for each machine of the population, how long after the
/// reference it reached the version (`None`: never).
pub fn converge(delays: &[Option<Duration>]) -> Convergence {
    let mut reached: Vec<Duration> = delays.iter().flatten().copied().collect();
    reached.sort();
    let n = delays.len();
    let t = |pct: f64| -> Option<f64> {
        if n == 0 {
            return None;
        }
        // The smallest k with k / n >= pct: the k-th machine to arrive.
        let k = ((pct * n as f64) - 1e-9).ceil().max(1.0) as usize;
        reached.get(k - 1).map(Duration::as_secs_f64)
    };
    Convergence {
        population: n,
        reached: reached.len(),
        t50_s: t(0.50),
        t90_s: t(0.90),
        t99_s: t(0.99),
        t100_s: t(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_the_kth_arrival() {
        let d: Vec<Option<Duration>> = (1..=10).map(|s| Some(Duration::from_secs(s))).collect();
        let c = converge(&d);
        assert_eq!(
            (c.t50_s, c.t90_s, c.t99_s, c.t100_s),
            (Some(5.0), Some(9.0), Some(10.0), Some(10.0))
        );
        assert_eq!(c.reached, 10);
    }

    #[test]
    fn machines_that_never_arrive_leave_the_top_percentiles_open() {
        let mut d: Vec<Option<Duration>> = (1..=95).map(|s| Some(Duration::from_secs(s))).collect();
        d.extend([None; 5]);
        let c = converge(&d);
        assert_eq!(c.t50_s, Some(50.0));
        assert_eq!(c.t90_s, Some(90.0));
        assert_eq!(c.t99_s, None);
        assert_eq!(c.t100_s, None);
        assert_eq!((c.population, c.reached), (100, 95));
        assert_eq!(converge(&[]).t50_s, None);
    }
}
