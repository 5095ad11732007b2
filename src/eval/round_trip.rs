//! The round trip a `latency-test` session measured: each `latency_probe`
//! row's duration is the time from the probe's deciding sample to the first
//! sample where the stimulus came back on the looped-back input. Only probes
//! whose stimulus was delivered (a `stim` row decided at the probe's sample)
//! count as sent; a sent probe with a `latency_probe_lost` row is lost.

use crate::eval::{nearest_rank, EventRow};
use crate::time::SampleRate;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RoundTripPercentiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RoundTrip {
    pub probes_sent: usize,
    pub returned: usize,
    pub lost: usize,
    /// Probes the trigger policy did not deliver (e.g. the session cap).
    pub not_delivered: usize,
    pub samples: Option<RoundTripPercentiles>,
    pub ms: Option<RoundTripPercentiles>,
    /// Every returned probe's round trip, in samples, in probe order.
    pub round_trips_samples: Vec<u64>,
}

pub fn round_trip(rows: &[EventRow], rate: SampleRate) -> RoundTrip {
    let sample = |s: f64| rate.samples_in_s(s);
    let mut delivered: Vec<u64> = rows
        .iter()
        .filter(|r| r.trial_type == "stim")
        .map(|r| sample(r.decision_time_s()))
        .collect();
    delivered.sort_unstable();
    let mut probes: Vec<(u64, Option<u64>)> = rows
        .iter()
        .filter_map(|r| match r.trial_type.as_str() {
            "latency_probe" => Some((sample(r.decision_time_s()), Some(sample(r.duration_s)))),
            "latency_probe_lost" => Some((sample(r.decision_time_s()), None)),
            _ => None,
        })
        .collect();
    probes.sort_unstable();
    let (sent, not_delivered): (Vec<_>, Vec<_>) = probes
        .iter()
        .partition(|(at, _)| delivered.binary_search(at).is_ok());
    let round_trips_samples: Vec<u64> = sent.iter().filter_map(|(_, rt)| *rt).collect();
    let mut sorted: Vec<f64> = round_trips_samples.iter().map(|&s| s as f64).collect();
    sorted.sort_by(f64::total_cmp);
    let samples = (!sorted.is_empty()).then(|| RoundTripPercentiles {
        p50: nearest_rank(&sorted, 0.5),
        p99: nearest_rank(&sorted, 0.99),
        max: sorted[sorted.len() - 1],
    });
    let to_ms = |s: f64| s * 1000.0 / rate.hz();
    RoundTrip {
        probes_sent: sent.len(),
        returned: round_trips_samples.len(),
        lost: sent.len() - round_trips_samples.len(),
        not_delivered: not_delivered.len(),
        ms: samples.map(|p| RoundTripPercentiles {
            p50: to_ms(p.p50),
            p99: to_ms(p.p99),
            max: to_ms(p.max),
        }),
        samples,
        round_trips_samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, at_s: f64, duration_s: f64) -> EventRow {
        let detection = kind.starts_with("latency");
        EventRow {
            onset_s: at_s,
            duration_s,
            trial_type: kind.into(),
            detected_at_s: detection.then_some(at_s),
            decided_at_s: (!detection).then_some(at_s),
            peak_s: None,
        }
    }

    #[test]
    fn counts_and_percentiles_of_delivered_probes() {
        let rate = SampleRate::new(250.0).unwrap();
        let mut rows = Vec::new();
        // 100 delivered probes returning after 1..=100 samples (4 ms each).
        for k in 1..=100u64 {
            let at = k as f64;
            rows.push(row("stim", at, 0.004));
            rows.push(row("latency_probe", at, k as f64 / 250.0));
        }
        rows.push(row("stim", 200.0, 0.004));
        rows.push(row("latency_probe_lost", 200.0, 0.2));
        // Refused by the policy: no stim row.
        rows.push(row("latency_probe_lost", 300.0, 0.2));
        let r = round_trip(&rows, rate);
        assert_eq!(
            (r.probes_sent, r.returned, r.lost, r.not_delivered),
            (101, 100, 1, 1)
        );
        let s = r.samples.unwrap();
        assert_eq!((s.p50, s.p99, s.max), (50.0, 99.0, 100.0));
        assert_eq!(r.ms.unwrap().p50, 200.0);
        assert_eq!(r.round_trips_samples[..3], [1, 2, 3]);
    }
}
