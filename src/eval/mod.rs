//! Scoring of a session's `events.tsv` against ground truth, by the rules of
//! `EVALUATION.md`:
//! - ripples: a detection is a hit if its causal `detected_at` falls inside a
//!   true ripple (one-to-one, earliest first); latency = detected_at − onset;
//!   stim timing = stim onset − nearest true ripple peak;
//! - spindles (and any interval event): one-to-one matching at IoU ≥ 0.2, best
//!   overlap first; latency = detected_at − matched true onset;
//! - spindle commits (the closed-loop score): every commit is a moment a
//!   stimulus could fire; it hits inside a true spindle (one-to-one, earliest first).
//!
//! Parsing works on text, so this module does no I/O.

pub mod hypnogram;
pub mod phase;
pub mod round_trip;
pub mod tables;

pub use tables::{EventRow, TruthRow};

/// An interval in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub onset_s: f64,
    pub end_s: f64,
}

impl Interval {
    pub fn iou(&self, other: &Interval) -> f64 {
        let inter = (self.end_s.min(other.end_s) - self.onset_s.max(other.onset_s)).max(0.0);
        let union = (self.end_s.max(other.end_s) - self.onset_s.min(other.onset_s)).max(0.0);
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }
}

/// Merge overlapping intervals (the union of several experts' scorings).
pub fn union_of(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.sort_by(|a, b| a.onset_s.total_cmp(&b.onset_s));
    let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
    for iv in intervals {
        match merged.last_mut() {
            Some(last) if iv.onset_s <= last.end_s => last.end_s = last.end_s.max(iv.end_s),
            _ => merged.push(iv),
        }
    }
    merged
}

/// Precision, recall and F1 from counts (0 where undefined).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Detection3 {
    pub truth: usize,
    pub detected: usize,
    pub hits: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Detection3 {
    pub fn from_counts(truth: usize, detected: usize, hits: usize) -> Self {
        let ratio = |a: usize, b: usize| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        let precision = ratio(hits, detected);
        let recall = ratio(hits, truth);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Self {
            truth,
            detected,
            hits,
            precision,
            recall,
            f1,
        }
    }
}

/// Median and 90th percentile (nearest rank), `None` for no data.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Spread {
    pub n: usize,
    pub median: f64,
    pub p90: f64,
}

/// Quantile `q` of non-empty ascending `sorted` values by nearest rank.
pub(crate) fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

pub fn spread(values: &[f64]) -> Option<Spread> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    Some(Spread {
        n: v.len(),
        median,
        p90: nearest_rank(&v, 0.9),
    })
}

/// When hits were decided relative to their ripple's peak (largest envelope
/// amplitude): the latency measure that does not depend on where the truth's
/// onset is drawn.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PeakTiming {
    pub hits: usize,
    pub decided_before_peak: usize,
    pub within_15ms: usize,
    pub within_50ms: usize,
    pub share_decided_before_peak: f64,
    pub share_within_15ms: f64,
    pub share_within_50ms: f64,
    /// detected_at − true peak of hits, in ms (negative: before the peak).
    pub offset_ms: Option<Spread>,
}

impl PeakTiming {
    fn from_offsets(offsets_ms: &[f64]) -> Self {
        let count = |keep: &dyn Fn(f64) -> bool| offsets_ms.iter().filter(|&&o| keep(o)).count();
        let share = |n: usize| {
            if offsets_ms.is_empty() {
                0.0
            } else {
                n as f64 / offsets_ms.len() as f64
            }
        };
        let (before, within_15ms, within_50ms) = (
            count(&|o| o < 0.0),
            count(&|o| o.abs() <= 15.0),
            count(&|o| o.abs() <= 50.0),
        );
        Self {
            hits: offsets_ms.len(),
            decided_before_peak: before,
            within_15ms,
            within_50ms,
            share_decided_before_peak: share(before),
            share_within_15ms: share(within_15ms),
            share_within_50ms: share(within_50ms),
            offset_ms: spread(offsets_ms),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RippleScore {
    pub detection: Detection3,
    /// detected_at − true onset of hits, in ms.
    pub latency_ms: Option<Spread>,
    /// detected_at of hits against their ripple's peak.
    pub decision_vs_peak: PeakTiming,
    pub false_positives: usize,
    pub minutes: f64,
    pub false_positives_per_min: f64,
    pub stims: usize,
    /// Delivered stims whose onset is within ±50 ms of a true ripple peak.
    pub stims_within_50ms: usize,
    pub share_stims_within_50ms: f64,
    /// Stim onset − nearest true ripple peak, in ms.
    pub stim_offset_ms: Option<Spread>,
}

/// Stim onset − nearest of `peaks_s`, in ms, for every stim (none without peaks).
pub fn stim_offsets_ms(stims: &[EventRow], peaks_s: &[f64]) -> Vec<f64> {
    stims
        .iter()
        .filter_map(|s| {
            peaks_s
                .iter()
                .map(|p| (s.onset_s - p) * 1000.0)
                .min_by(|a, b| a.abs().total_cmp(&b.abs()))
        })
        .collect()
}

/// Score ripple detections (`detected_at` required) and delivered stims.
pub fn score_ripples(
    truth: &[TruthRow],
    detections: &[EventRow],
    stims: &[EventRow],
    minutes: f64,
) -> RippleScore {
    let mut truth: Vec<&TruthRow> = truth.iter().collect();
    truth.sort_by(|a, b| a.onset_s.total_cmp(&b.onset_s));
    let mut order: Vec<&EventRow> = detections.iter().collect();
    order.sort_by(|a, b| a.decision_time_s().total_cmp(&b.decision_time_s()));
    let mut taken = vec![false; truth.len()];
    let mut latencies = Vec::new();
    let mut peak_offsets = Vec::new();
    for det in order {
        let t = det.decision_time_s();
        let hit = truth
            .iter()
            .enumerate()
            .find(|(i, r)| !taken[*i] && r.onset_s <= t && t < r.onset_s + r.duration_s);
        if let Some((i, r)) = hit {
            taken[i] = true;
            latencies.push((t - r.onset_s) * 1000.0);
            peak_offsets.push((t - r.peak_s) * 1000.0);
        }
    }
    let hits = latencies.len();
    let peaks: Vec<f64> = truth.iter().map(|r| r.peak_s).collect();
    let offsets = stim_offsets_ms(stims, &peaks);
    let within = offsets.iter().filter(|o| o.abs() <= 50.0).count();
    let false_positives = detections.len() - hits;
    RippleScore {
        detection: Detection3::from_counts(truth.len(), detections.len(), hits),
        latency_ms: spread(&latencies),
        decision_vs_peak: PeakTiming::from_offsets(&peak_offsets),
        false_positives,
        minutes,
        false_positives_per_min: if minutes > 0.0 {
            false_positives as f64 / minutes
        } else {
            0.0
        },
        stims: stims.len(),
        stims_within_50ms: within,
        share_stims_within_50ms: if stims.is_empty() {
            0.0
        } else {
            within as f64 / stims.len() as f64
        },
        stim_offset_ms: spread(&offsets),
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IntervalScore {
    pub detection: Detection3,
    pub min_iou: f64,
    /// detected_at − matched true onset, in ms, of matches with a detected_at.
    pub latency_ms: Option<Spread>,
}

/// One-to-one matching at IoU ≥ `min_iou`, best overlap first.
pub fn score_intervals(truth: &[Interval], detections: &[EventRow], min_iou: f64) -> IntervalScore {
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, t) in truth.iter().enumerate() {
        for (j, d) in detections.iter().enumerate() {
            let iou = t.iou(&d.interval());
            if iou >= min_iou {
                pairs.push((iou, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut truth_taken = vec![false; truth.len()];
    let mut det_taken = vec![false; detections.len()];
    let (mut hits, mut latencies) = (0, Vec::new());
    for (_, i, j) in pairs {
        if !truth_taken[i] && !det_taken[j] {
            truth_taken[i] = true;
            det_taken[j] = true;
            hits += 1;
            // An event logged without a commit has no decision time.
            if let Some(t) = detections[j].detected_at_s {
                latencies.push((t - truth[i].onset_s) * 1000.0);
            }
        }
    }
    IntervalScore {
        detection: Detection3::from_counts(truth.len(), detections.len(), hits),
        min_iou,
        latency_ms: spread(&latencies),
    }
}

/// The closed-loop score of commits (`EVALUATION.md`): each commit time is
/// a moment a locked stimulus could fire; it hits when it falls inside a true
/// interval not hit before (one-to-one, earliest first).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CommitScore {
    /// truth = true intervals, detected = commits, hits = commits inside one.
    pub commits: Detection3,
    /// Commit time − true onset of hits, in ms.
    pub latency_ms: Option<Spread>,
}

/// Score commit times (s) against true intervals.
pub fn score_commits(truth: &[Interval], commits_s: &[f64]) -> CommitScore {
    let mut truth: Vec<&Interval> = truth.iter().collect();
    truth.sort_by(|a, b| a.onset_s.total_cmp(&b.onset_s));
    let mut commits = commits_s.to_vec();
    commits.sort_by(f64::total_cmp);
    let mut taken = vec![false; truth.len()];
    let mut latencies = Vec::new();
    for t in commits {
        let hit = truth
            .iter()
            .enumerate()
            .find(|(i, r)| !taken[*i] && r.onset_s <= t && t < r.end_s);
        if let Some((i, r)) = hit {
            taken[i] = true;
            latencies.push((t - r.onset_s) * 1000.0);
        }
    }
    CommitScore {
        commits: Detection3::from_counts(truth.len(), commits_s.len(), latencies.len()),
        latency_ms: spread(&latencies),
    }
}

/// Which rules score a session's detections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    Ripple,
    Spindle,
}

impl Rules {
    /// Spindle rules if the session logged spindles, ripple rules otherwise.
    pub fn for_events(events: &[EventRow]) -> Self {
        if events.iter().any(|e| e.trial_type == "spindle") {
            Rules::Spindle
        } else {
            Rules::Ripple
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Rules::Ripple => "ripple",
            Rules::Spindle => "spindle",
        }
    }
}

/// The score `neuroloop eval` prints (and `neuroloop report` tabulates): ripple
/// rows and delivered stims against ripple truth, or spindle rows (event F1)
/// and every spindle-kind commit (closed-loop score) against the union of the
/// spindle truth.
pub fn score_session(
    rules: Rules,
    events: &[EventRow],
    truth: &[TruthRow],
    minutes: f64,
) -> Result<serde_json::Value, serde_json::Error> {
    let rows = |kind: &str| -> Vec<EventRow> {
        events
            .iter()
            .filter(|e| e.trial_type == kind)
            .cloned()
            .collect()
    };
    match rules {
        Rules::Ripple => {
            let truth: Vec<TruthRow> = truth
                .iter()
                .filter(|t| t.trial_type == "ripple")
                .cloned()
                .collect();
            serde_json::to_value(score_ripples(
                &truth,
                &rows("ripple"),
                &rows("stim"),
                minutes,
            ))
        }
        Rules::Spindle => {
            let truth = union_of(
                truth
                    .iter()
                    .filter(|t| t.trial_type == "spindle")
                    .map(|t| t.interval())
                    .collect(),
            );
            let mut report = serde_json::to_value(score_intervals(&truth, &rows("spindle"), 0.2))?;
            // Every spindle-kind row with a commit time could have fired a stim.
            let commits: Vec<f64> = events
                .iter()
                .filter(|e| e.trial_type == "spindle" || e.trial_type.starts_with("spindle_"))
                .filter_map(|e| e.detected_at_s)
                .collect();
            report["closed_loop"] = serde_json::to_value(score_commits(&truth, &commits))?;
            Ok(report)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(onset_s: f64, duration_s: f64) -> TruthRow {
        TruthRow {
            onset_s,
            duration_s,
            peak_s: onset_s + duration_s / 2.0,
            trial_type: "ripple".into(),
        }
    }

    fn det(onset_s: f64, duration_s: f64, detected_at_s: f64) -> EventRow {
        EventRow {
            onset_s,
            duration_s,
            trial_type: "ripple".into(),
            detected_at_s: Some(detected_at_s),
            decided_at_s: None,
            peak_s: None,
        }
    }

    #[test]
    fn ripple_hits_are_one_to_one_and_causal() {
        let t = [truth(1.0, 0.1), truth(2.0, 0.05)];
        let d = [
            det(0.99, 0.1, 1.02), // hit, latency 20 ms
            det(1.0, 0.1, 1.05),  // same ripple again: false positive
            det(1.95, 0.1, 2.06), // committed after the ripple ended: miss + FP
            det(5.0, 0.1, 5.01),  // nothing there
        ];
        let stims = [det(1.02, 0.001, 1.02), det(5.01, 0.001, 5.01)];
        let s = score_ripples(&t, &d, &stims, 0.5);
        assert_eq!(s.detection.hits, 1);
        assert_eq!(s.false_positives, 3);
        assert_eq!(s.false_positives_per_min, 6.0);
        assert!((s.latency_ms.unwrap().median - 20.0).abs() < 1e-9);
        // The hit's peak is at 1.05 s: decided 30 ms before it.
        let peak = &s.decision_vs_peak;
        assert_eq!((peak.hits, peak.decided_before_peak), (1, 1));
        assert_eq!((peak.within_15ms, peak.within_50ms), (0, 1));
        assert!((peak.offset_ms.unwrap().median + 30.0).abs() < 1e-9);
        assert_eq!(s.stims_within_50ms, 1);
        assert_eq!(s.share_stims_within_50ms, 0.5);
        assert!((s.detection.recall - 0.5).abs() < 1e-12);
        assert!((s.detection.precision - 0.25).abs() < 1e-12);
    }

    /// Decisions against the peak: before it (negative offsets), within
    /// ±15 ms and ±50 ms, each counted on the hits only.
    #[test]
    fn peak_timing_counts_hits_by_offset() {
        let t: Vec<TruthRow> = [(1.0, 1.05), (2.0, 2.02), (3.0, 3.01), (4.0, 4.09)]
            .iter()
            .map(|&(onset_s, peak_s)| TruthRow {
                onset_s,
                duration_s: 0.1,
                peak_s,
                trial_type: "ripple".into(),
            })
            .collect();
        // Offsets from the peaks: -40, +10, -5 and -70 ms; one false positive.
        let d = [1.01, 2.03, 3.005, 4.02, 6.0].map(|at| det(at, 0.05, at));
        let p = score_ripples(&t, &d, &[], 1.0).decision_vs_peak;
        assert_eq!(p.hits, 4);
        assert_eq!(p.decided_before_peak, 3);
        assert_eq!((p.within_15ms, p.within_50ms), (2, 3));
        assert_eq!(p.share_decided_before_peak, 0.75);
        assert!((p.offset_ms.unwrap().median + 22.5).abs() < 1e-9);
        let none = score_ripples(&t, &[], &[], 1.0).decision_vs_peak;
        assert_eq!((none.hits, none.share_decided_before_peak), (0, 0.0));
        assert!(none.offset_ms.is_none());
    }

    #[test]
    fn iou_matching_takes_best_overlap_first() {
        let t = [
            Interval {
                onset_s: 0.0,
                end_s: 1.0,
            },
            Interval {
                onset_s: 0.9,
                end_s: 1.9,
            },
        ];
        // The first detection, [0.6, 1.6], passes the threshold with both truths
        // (IoU 0.25 with the first, 0.54 with the second); matching best overlap
        // first gives it the second, leaving the first truth to the second
        // detection (IoU 0.5). Taking the first passing pair in truth order
        // would give the first truth to it and leave 1 hit.
        let d = [det(0.6, 1.0, 1.0), det(0.0, 0.5, 0.3)];
        let s = score_intervals(&t, &d, 0.2);
        assert_eq!(s.detection.hits, 2);
        let below = score_intervals(&t, &[det(0.0, 0.1, 0.1)], 0.2);
        assert_eq!(below.detection.hits, 0, "IoU 0.1 must not match");
    }

    #[test]
    fn commits_hit_once_inside_a_spindle_earliest_first() {
        let iv = |onset_s, end_s| Interval { onset_s, end_s };
        let truth = [iv(10.0, 11.0), iv(20.0, 21.0), iv(30.0, 31.0)];
        // 10.3 hits the first spindle, 10.6 is a second commit on it (a false
        // positive), 11.0 is at its end (outside), 20.2 hits the second, 25 is
        // between spindles; the third spindle is missed. Given out of order.
        let s = score_commits(&truth, &[20.2, 10.6, 25.0, 10.3, 11.0]);
        assert_eq!(s.commits.hits, 2);
        assert_eq!(s.commits.detected, 5);
        assert!((s.commits.precision - 0.4).abs() < 1e-12);
        assert!((s.commits.recall - 2.0 / 3.0).abs() < 1e-12);
        let latency = s.latency_ms.unwrap();
        assert_eq!(latency.n, 2);
        assert!((latency.median - 250.0).abs() < 1e-6, "{latency:?}");
        assert!(score_commits(&truth, &[]).latency_ms.is_none());
    }

    #[test]
    fn union_merges_overlaps_only() {
        let u = union_of(vec![
            Interval {
                onset_s: 3.0,
                end_s: 4.0,
            },
            Interval {
                onset_s: 0.0,
                end_s: 1.0,
            },
            Interval {
                onset_s: 0.5,
                end_s: 2.0,
            },
        ]);
        assert_eq!(
            u,
            vec![
                Interval {
                    onset_s: 0.0,
                    end_s: 2.0
                },
                Interval {
                    onset_s: 3.0,
                    end_s: 4.0
                }
            ]
        );
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let s = spread(&[5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0]).unwrap();
        assert_eq!((s.median, s.p90), (5.5, 9.0));
        assert!(spread(&[]).is_none());
    }
}
