//! Clock sync by two-way time transfer: a device clock modelled as the host
//! clock plus an offset that drifts linearly, estimated from round trips.
//!
//! A round trip leaves the host at `t0`, reaches the device at `rx`, leaves
//! it at `tx` and comes back at `t1` (host times in µs of the host's clock,
//! device times in µs of the device's). Whatever the delays, the offset
//! (device − host) at that time lies between `tx − t1` (the reply took no
//! time) and `rx − t0` (the request took none). Delays are a fixed minimum
//! plus queueing and scheduling that only ever add, and lopsidedly (a busy
//! host delays its writes more than its reads, say). So the estimate does
//! not average round trips, it follows their fastest ones: the drift is the
//! mean slope of the line that stays under every `rx − t0` and is highest
//! in the middle of the window and of the line that stays above every
//! `tx − t1` and is lowest there (edges of the convex hulls; Moon, Skelly
//! and Towsley 1999); the offset is the midpoint between the lowest
//! `rx − t0` and the highest `tx − t1` of the latest round trips, drift
//! removed (the mapping is used just after them, so an error of the drift
//! costs little). It is exact when the two directions share their minimum
//! delay, whatever their distributions above it; otherwise it is off by half
//! the difference of the minima, which no round trip can reveal.

use std::collections::VecDeque;

use serde::Serialize;

/// One round trip: host `t0` and `t1`, device `rx` and `tx`, all in µs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundTrip {
    pub t0: f64,
    pub rx: f64,
    pub tx: f64,
    pub t1: f64,
}

/// Round trips kept: the window the drift is fitted over.
const WINDOW: usize = 64;
/// Round trips the offset is taken from (the drift from all of them).
const RECENT: usize = 16;
/// Periodic round trips after which the back-to-back ones are forgotten.
const PERIODIC_ENOUGH: usize = 8;

/// Offset = `offset_us + slope · (t − t_ref)` at host time `t`.
#[derive(Debug, Clone, Copy)]
struct Line {
    t_ref: f64,
    offset_us: f64,
    slope: f64,
}

impl Line {
    fn at(&self, t: f64) -> f64 {
        self.offset_us + self.slope * (t - self.t_ref)
    }
}

/// A round trip as the fit sees it.
#[derive(Debug, Clone, Copy)]
struct Trip {
    /// Host time of its middle.
    t: f64,
    /// `rx − t0` and `tx − t1`: the offset plus the request's delay, minus
    /// the reply's.
    up: f64,
    down: f64,
    back_to_back: bool,
}

#[derive(Debug, Default)]
pub struct ClockSync {
    /// Oldest first.
    trips: VecDeque<Trip>,
    line: Option<Line>,
}

/// How well the model fits, for `summary.json` and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SyncSummary {
    pub round_trips: usize,
    /// The faster half of the round trips (least delay), whose midpoints
    /// the residual is measured on.
    pub used: usize,
    /// RMS and largest distance of those midpoints from the model: the
    /// scatter the model leaves, not its error (see the module's doc).
    pub residual_rms_us: f64,
    pub residual_max_us: f64,
    pub drift_ppm: f64,
    /// The shortest round trip less the device's turnaround.
    pub min_delay_us: f64,
}

impl ClockSync {
    /// A round trip of the periodic kind.
    pub fn add(&mut self, r: RoundTrip) {
        self.push(r, false);
        let periodic = self.trips.iter().filter(|t| !t.back_to_back).count();
        if periodic >= PERIODIC_ENOUGH {
            self.trips.retain(|t| !t.back_to_back);
        }
        self.line = Some(self.fit());
    }

    /// A round trip sent as soon as the previous one came back (the burst
    /// that syncs a device before it is armed). Such round trips meet other
    /// delays than periodic ones (a thread that has just read a reply writes
    /// sooner than one woken by a timer: tens of µs on a loaded machine), so
    /// they would tilt the drift; they are forgotten once
    /// [`PERIODIC_ENOUGH`] periodic ones are in.
    pub fn add_back_to_back(&mut self, r: RoundTrip) {
        self.push(r, true);
        self.line = Some(self.fit());
    }

    fn push(&mut self, r: RoundTrip, back_to_back: bool) {
        self.trips.push_back(Trip {
            t: (r.t0 + r.t1) / 2.0,
            up: r.rx - r.t0,
            down: r.tx - r.t1,
            back_to_back,
        });
        if self.trips.len() > WINDOW {
            self.trips.pop_front();
        }
    }

    fn fit(&self) -> Line {
        let n = self.trips.len() as f64;
        let t_ref = self.trips.iter().map(|s| s.t).sum::<f64>() / n;
        let below: Vec<(f64, f64)> = self.trips.iter().map(|s| (s.t, s.up)).collect();
        // The line above every tx − t1 is the one under every t1 − tx.
        let above: Vec<(f64, f64)> = self.trips.iter().map(|s| (s.t, -s.down)).collect();
        let (_, high_slope) = support_from_below(&below, t_ref);
        let (_, low_slope) = support_from_below(&above, t_ref);
        let slope = (high_slope - low_slope) / 2.0;
        // The offset from the latest round trips, drift removed: the
        // mapping is used just after them, and a slope error then costs
        // little.
        let recent = self.trips.len().saturating_sub(RECENT);
        let t_ref = self.trips.iter().skip(recent).map(|s| s.t).sum::<f64>()
            / (self.trips.len() - recent) as f64;
        let detrended = |v: f64, t: f64| v - slope * (t - t_ref);
        let high = self
            .trips
            .iter()
            .skip(recent)
            .map(|s| detrended(s.up, s.t))
            .fold(f64::INFINITY, f64::min);
        let low = self
            .trips
            .iter()
            .skip(recent)
            .map(|s| detrended(s.down, s.t))
            .fold(f64::NEG_INFINITY, f64::max);
        Line {
            t_ref,
            offset_us: (high + low) / 2.0,
            slope,
        }
    }

    /// Device µs at host time `t` (µs), once a round trip has completed.
    pub fn device_us(&self, t: f64) -> Option<f64> {
        self.line.map(|l| t + l.at(t))
    }

    pub fn summary(&self) -> SyncSummary {
        let delay = |s: &Trip| s.up - s.down;
        let mut delays: Vec<f64> = self.trips.iter().map(delay).collect();
        delays.sort_by(f64::total_cmp);
        let cut = delays
            .get(delays.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or(0.0);
        let residuals: Vec<f64> = match self.line {
            Some(l) => self
                .trips
                .iter()
                .filter(|s| delay(s) <= cut)
                .map(|s| (s.up + s.down) / 2.0 - l.at(s.t))
                .collect(),
            None => Vec::new(),
        };
        let n = residuals.len().max(1) as f64;
        SyncSummary {
            round_trips: self.trips.len(),
            used: residuals.len(),
            residual_rms_us: (residuals.iter().map(|r| r * r).sum::<f64>() / n).sqrt(),
            residual_max_us: residuals.iter().fold(0.0, |m, r| m.max(r.abs())),
            drift_ppm: self.line.map_or(0.0, |l| l.slope * 1e6),
            min_delay_us: delays.first().copied().unwrap_or(f64::NAN),
        }
    }
}

/// The line under every point (in increasing `t`) that is highest at `t`
/// (within their span): its value there and its slope. It is the edge of
/// the points' lower convex hull over `t`; one point gives a flat line.
fn support_from_below(points: &[(f64, f64)], t: f64) -> (f64, f64) {
    let mut hull: Vec<(f64, f64)> = Vec::with_capacity(points.len());
    for &p in points {
        while let [.., a, b] = hull[..] {
            // Drop b unless a → b → p turns left (b lies below a → p).
            if (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0) > 0.0 {
                break;
            }
            hull.pop();
        }
        hull.push(p);
    }
    for edge in hull.windows(2) {
        let (a, b) = (edge[0], edge[1]);
        if b.0 >= t {
            let slope = (b.1 - a.1) / (b.0 - a.0);
            return (a.1 + slope * (t - a.0), slope);
        }
    }
    (hull[0].1, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Round trips every `period_us` against a device clock `offset + drift·t`,
    /// each direction a minimum delay plus exponential queueing of the given
    /// means, and now and then a stall of milliseconds.
    fn exchanges(
        n: usize,
        period_us: f64,
        offset: f64,
        drift: f64,
        queueing: (f64, f64),
        seed: u64,
    ) -> Vec<RoundTrip> {
        let mut rng = Rng::new(seed);
        let mut delay = |mean: f64| {
            let stall = if rng.chance(0.05) { 3000.0 } else { 0.0 };
            2000.0 + rng.exponential(mean) + stall
        };
        (0..n)
            .map(|i| {
                let t0 = 1e6 + i as f64 * period_us;
                let request = delay(queueing.0);
                let turnaround = 280.0;
                let reply = delay(queueing.1);
                let device = |host: f64| host + offset + drift * host;
                let rx = device(t0 + request);
                RoundTrip {
                    t0,
                    rx,
                    tx: rx + turnaround,
                    t1: t0 + request + turnaround + reply,
                }
            })
            .collect()
    }

    fn error_at(sync: &ClockSync, t: f64, offset: f64, drift: f64) -> f64 {
        sync.device_us(t).unwrap() - (t + offset + drift * t)
    }

    #[test]
    fn one_round_trip_gives_the_midpoint() {
        let mut s = ClockSync::default();
        s.add(RoundTrip {
            t0: 100.0,
            rx: 1150.0,
            tx: 1160.0,
            t1: 130.0,
        });
        // offset between 1160 − 130 = 1030 and 1150 − 100 = 1050
        assert_eq!(s.device_us(200.0), Some(1240.0));
        assert_eq!(s.summary().drift_ppm, 0.0);
    }

    #[test]
    fn lopsided_queueing_does_not_bias_the_offset() {
        // Requests queue four times longer than replies on average; the
        // minimum delay is the same both ways.
        for (seed, drift) in [(1, 100e-6), (2, -100e-6), (3, 0.0)] {
            let trips = exchanges(40, 100_000.0, 5_000.0, drift, (80.0, 20.0), seed);
            let mut s = ClockSync::default();
            for r in &trips {
                s.add(*r);
            }
            let now = trips.last().unwrap().t1 + 100_000.0;
            let err = error_at(&s, now, 5_000.0, drift);
            let summary = s.summary();
            assert!(err.abs() < 10.0, "seed {seed}: {err} µs, {summary:?}");
            assert!(
                (summary.drift_ppm - drift * 1e6).abs() < 3.0,
                "seed {seed}: {summary:?}"
            );
        }
    }

    #[test]
    fn back_to_back_round_trips_are_forgotten_once_periodic_ones_are_in() {
        // The burst is 40 µs faster one way: kept, it would tilt the drift.
        let drift = 100e-6;
        let mut s = ClockSync::default();
        for mut r in exchanges(12, 8_000.0, 5_000.0, drift, (1.0, 1.0), 4) {
            r.rx -= 40.0;
            s.add_back_to_back(r);
        }
        let periodic: Vec<RoundTrip> = exchanges(30, 100_000.0, 5_000.0, drift, (1.0, 1.0), 5)
            .into_iter()
            .map(|r| RoundTrip {
                t0: r.t0 + 200_000.0,
                rx: r.rx + 200_000.0 * (1.0 + drift),
                tx: r.tx + 200_000.0 * (1.0 + drift),
                t1: r.t1 + 200_000.0,
            })
            .collect();
        for (k, r) in periodic.iter().enumerate() {
            s.add(*r);
            assert_eq!(
                s.summary().round_trips,
                if k + 1 < PERIODIC_ENOUGH {
                    13 + k
                } else {
                    k + 1
                }
            );
        }
        assert!(
            (s.summary().drift_ppm - 100.0).abs() < 1.0,
            "{:?}",
            s.summary()
        );
    }

    #[test]
    fn the_support_line_is_the_hull_edge_over_the_point() {
        let points = [(0.0, 5.0), (1.0, 1.0), (2.0, 4.0), (3.0, 3.0), (4.0, 9.0)];
        // lower hull: (0,5) (1,1) (3,3) (4,9)
        assert_eq!(support_from_below(&points, 2.0), (2.0, 1.0));
        assert_eq!(support_from_below(&points, 0.5), (3.0, -4.0));
        assert_eq!(support_from_below(&[(1.0, 7.0)], 1.0), (7.0, 0.0));
    }
}
