//! Latency histograms that record without allocating: fixed 1-µs bins up to
//! 100 ms plus an overflow count and the exact maximum, so p50/p99/max of
//! block processing and arrival→command can be kept on the realtime threads.

use std::time::Duration;

const BINS_US: usize = 100_000;

#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    bins: Vec<u32>,
    overflow: u64,
    count: u64,
    max_ns: u64,
}

/// Percentiles of a histogram, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// Values above 100 ms (counted, only the maximum is exact).
    pub over_100ms: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        Self {
            bins: vec![0; BINS_US],
            overflow: 0,
            count: 0,
            max_ns: 0,
        }
    }

    pub fn record(&mut self, d: Duration) {
        let ns = d.as_nanos().min(u64::MAX as u128) as u64;
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
        match self.bins.get_mut((ns / 1000) as usize) {
            Some(bin) => *bin = bin.saturating_add(1),
            None => self.overflow += 1,
        }
    }

    /// Add another histogram's counts to this one.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.bins.iter_mut().zip(&other.bins) {
            *a = a.saturating_add(*b);
        }
        self.overflow += other.overflow;
        self.count += other.count;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// The upper edge (µs) of the bin holding quantile `q`.
    fn quantile_us(&self, q: f64) -> f64 {
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (us, &n) in self.bins.iter().enumerate() {
            seen += n as u64;
            if seen >= rank {
                return ((us + 1) as f64).min(self.max_ns as f64 / 1000.0);
            }
        }
        self.max_ns as f64 / 1000.0
    }

    pub fn summary(&self) -> Option<LatencySummary> {
        (self.count > 0).then(|| LatencySummary {
            count: self.count,
            p50_us: self.quantile_us(0.5),
            p99_us: self.quantile_us(0.99),
            max_us: self.max_ns as f64 / 1000.0,
            over_100ms: self.overflow,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = LatencyHistogram::new();
        assert!(h.summary().is_none());
        for us in 1..=100u64 {
            h.record(Duration::from_nanos(us * 1000 - 500));
        }
        h.record(Duration::from_millis(250));
        let s = h.summary().unwrap();
        assert_eq!(s.count, 101);
        assert_eq!(s.p50_us, 51.0);
        assert_eq!(s.p99_us, 100.0);
        assert_eq!(s.max_us, 250_000.0);
        assert_eq!(s.over_100ms, 1);
    }
}
