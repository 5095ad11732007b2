//! Latency histograms that record without allocating (`hdrhistogram`, sized
//! at start: 1 ns to 60 s at 3 significant digits), so p50/p99/max of block
//! processing and arrival→command can be kept on the realtime threads.

use std::time::Duration;

use hdrhistogram::Histogram;

/// The largest latency recorded as is; longer ones are counted at this value.
const MAX_NS: u64 = 60_000_000_000;

#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    ns: Histogram<u64>,
    /// The exact maximum (the histogram's is rounded to its precision).
    max_ns: u64,
}

/// Percentiles of a histogram, in microseconds (to 0.1 %).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        Self {
            ns: Histogram::new_with_bounds(1, MAX_NS, 3).expect("valid constant bounds"),
            max_ns: 0,
        }
    }

    pub fn record(&mut self, d: Duration) {
        let ns = d.as_nanos().min(u128::from(MAX_NS)) as u64;
        self.max_ns = self
            .max_ns
            .max(d.as_nanos().min(u128::from(u64::MAX)) as u64);
        self.ns.saturating_record(ns.max(1));
    }

    /// Add another histogram's counts to this one.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Same bounds on both sides: cannot fail.
        let _ = self.ns.add(&other.ns);
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    pub fn summary(&self) -> Option<LatencySummary> {
        let us = |ns: u64| ns as f64 / 1000.0;
        (!self.ns.is_empty()).then(|| LatencySummary {
            count: self.ns.len(),
            p50_us: us(self.ns.value_at_quantile(0.5)),
            p99_us: us(self.ns.value_at_quantile(0.99)),
            max_us: us(self.max_ns),
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
            h.record(Duration::from_micros(us));
        }
        h.record(Duration::from_millis(250));
        let s = h.summary().unwrap();
        assert_eq!(s.count, 101);
        // Within the histogram's 3 significant digits.
        assert!((s.p50_us - 51.0).abs() <= 0.051, "{s:?}");
        assert!((s.p99_us - 100.0).abs() <= 0.1, "{s:?}");
        assert_eq!(s.max_us, 250_000.0);
        let mut other = LatencyHistogram::new();
        other.record(Duration::from_secs(120));
        h.merge(&other);
        let s = h.summary().unwrap();
        assert_eq!((s.count, s.max_us), (102, 120e6));
    }
}
