//! Streaming sleep-spindle detector in the spirit of A7 (Lacourse et al. 2019).
//!
//! Per channel, over a sliding `window_ms` window:
//! - absolute sigma power: log10 of the mean square of the 11–16 Hz band;
//! - relative sigma power: log10(sigma power / broadband power);
//! - sigma/broadband correlation: how much of the broadband signal the sigma
//!   oscillation explains (a spindle is a sigma burst, not broadband noise).
//!
//! The two power features are z-scored against causal median/MAD baselines
//! (`baseline_window_s`). An event starts when all three exceed their
//! thresholds, commits once they have held for `commit_after_ms`, ends when
//! the relative power drops under `end_rel_threshold_sd`, and is logged only
//! if it lasted `min_duration_ms` (events are closed at `max_duration_ms`).
//! The channel with the highest relative-power z drives one state machine.
//!
//! Spindle-locked commits (`[detector.commit]`): a stimulus locked to
//! spindles fires at a commit, so commits come from a rule of their own,
//! apart from the boundaries: a fast sigma envelope (order-1 band-pass, short
//! window) above its z threshold with the relative power and correlation
//! above theirs, held for `hold_ms`. Each commit is logged as
//! `EventKind::SpindleCommit`; the events are then logged uncommitted (their
//! boundaries only: no stimulus fires on them) and short ones are not logged.
//! Without the rule every event commits at its start (after
//! `commit_after_ms`), and a committed event dropped as too short is finished
//! as `EventKind::SpindleDropped` (its commit may have fired a stimulus).

use crate::config::pipeline::{ConfigError, SpindleCommit, SpindleConfig};
use crate::detect::{bandpass, below_nyquist, robust_baseline, DetectorOutput, Probe, POWER_FLOOR};
use crate::dsp::{MovingMean, RobustBaseline, SosFilter};
use crate::event::{Detection, EventKind};
use crate::time::{SampleIndex, SampleRate};

/// Baseline updates per second: the baselines follow minutes-scale drifts.
const BASELINE_UPDATES_PER_S: f64 = 10.0;

#[derive(Debug, Clone)]
struct ChannelStages {
    sigma: SosFilter,
    broad: SosFilter,
    sigma_power: MovingMean,
    broad_power: MovingMean,
    cross: MovingMean,
    abs_baseline: RobustBaseline,
    rel_baseline: RobustBaseline,
    fast: Option<FastSigma>,
    /// This sample of the sigma band (for the monitor).
    sigma_now: f64,
}

/// The commit rule's sigma envelope: its own band-pass and window, z-scored
/// against its own baseline.
#[derive(Debug, Clone)]
struct FastSigma {
    sigma: SosFilter,
    power: MovingMean,
    baseline: RobustBaseline,
}

impl FastSigma {
    fn process(&mut self, x: f64) -> f64 {
        let s = self.sigma.process(x);
        let power = self.power.process(s * s).max(POWER_FLOOR).log10();
        self.baseline.update(power);
        z_score(power, &self.baseline)
    }
}

/// The features of one sample on one channel.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Features {
    abs_z: f64,
    rel_z: f64,
    corr: f64,
    /// The fast sigma envelope's z (NaN without a commit rule).
    fast_z: f64,
}

impl ChannelStages {
    fn process(&mut self, x: f64) -> Features {
        let s = self.sigma.process(x);
        self.sigma_now = s;
        let b = self.broad.process(x);
        let sigma_power = self.sigma_power.process(s * s).max(POWER_FLOOR);
        let broad_power = self.broad_power.process(b * b).max(POWER_FLOOR);
        let cross = self.cross.process(s * b);
        let fast_z = self.fast.as_mut().map_or(f64::NAN, |f| f.process(x));
        let abs = sigma_power.log10();
        let rel = (sigma_power / broad_power).log10();
        self.abs_baseline.update(abs);
        self.rel_baseline.update(rel);
        Features {
            abs_z: z_score(abs, &self.abs_baseline),
            rel_z: z_score(rel, &self.rel_baseline),
            corr: cross / (sigma_power * broad_power).sqrt(),
            fast_z,
        }
    }
}

fn z_score(x: f64, baseline: &RobustBaseline) -> f64 {
    let spread = baseline.robust_sd();
    if spread > 0.0 {
        (x - baseline.median()) / spread
    } else {
        0.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Quiet,
    /// Start conditions hold since `start`; not yet committed.
    Rising {
        start: SampleIndex,
    },
    /// Committed; waiting for the relative power to fall back.
    InEvent {
        detection: Detection,
        peak_z: f64,
    },
}

/// The commit rule, durations in samples, and its state.
#[derive(Debug, Clone, Copy)]
struct CommitRule {
    z_threshold_sd: f64,
    rel_threshold_sd: f64,
    corr_threshold: f64,
    hold: u64,
    rearm: u64,
    /// Consecutive samples the rule has held.
    held: u64,
    /// Consecutive samples the rule has failed.
    failed: u64,
    armed: bool,
}

impl CommitRule {
    fn new(config: &SpindleCommit, rate: SampleRate) -> Self {
        let rearm = rate.samples_in_ms(config.rearm_ms);
        Self {
            z_threshold_sd: config.z_threshold_sd,
            rel_threshold_sd: config.rel_threshold_sd,
            corr_threshold: config.corr_threshold,
            hold: rate.samples_in_ms(config.hold_ms).max(1),
            rearm,
            held: 0,
            failed: rearm,
            armed: true,
        }
    }

    /// Take one sample's features; true when a commit is due at it.
    fn commits(&mut self, f: &Features) -> bool {
        if f.fast_z > self.z_threshold_sd
            && f.rel_z > self.rel_threshold_sd
            && f.corr > self.corr_threshold
        {
            self.held += 1;
            self.failed = 0;
        } else {
            self.held = 0;
            self.failed = self.failed.saturating_add(1);
            self.armed |= self.failed >= self.rearm;
        }
        let due = self.armed && self.held >= self.hold;
        self.armed &= !due;
        due
    }
}

#[derive(Debug, Clone)]
pub struct SpindleDetector {
    channels: Vec<ChannelStages>,
    abs_threshold_sd: f64,
    rel_threshold_sd: f64,
    corr_threshold: f64,
    end_rel_threshold_sd: f64,
    commit_after: u64,
    min_duration: u64,
    max_duration: u64,
    warmup: u64,
    /// The features describe the window ending at the current sample, i.e.
    /// they lag the signal by half a window: boundaries are moved back by this.
    half_window: u64,
    state: State,
    commit: Option<CommitRule>,
    /// The channel with the highest relative z and its z, this sample.
    best: (usize, f64),
}

impl SpindleDetector {
    pub fn new(
        config: &SpindleConfig,
        rate: SampleRate,
        channels: usize,
        notes: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        let broad_high_hz =
            below_nyquist("detector.broad_high_hz", config.broad_high_hz, rate, notes);
        let invalid = |field, e: crate::dsp::DspError| ConfigError::Invalid {
            field,
            message: e.to_string(),
        };
        let baseline = || {
            robust_baseline(
                config.baseline_window_s,
                BASELINE_UPDATES_PER_S,
                rate,
                "detector.baseline_window_s",
            )
        };
        let window = || {
            MovingMean::new(config.window_ms, rate).map_err(|e| invalid("detector.window_ms", e))
        };
        let stages = ChannelStages {
            sigma: bandpass(
                config.filter_order,
                config.sigma_low_hz,
                config.sigma_high_hz,
                rate,
                ["detector.sigma_low_hz", "detector.sigma_high_hz"],
            )?,
            broad: bandpass(
                config.filter_order,
                config.broad_low_hz,
                broad_high_hz,
                rate,
                ["detector.broad_low_hz", "detector.broad_high_hz"],
            )?,
            sigma_power: window()?,
            broad_power: window()?,
            cross: window()?,
            abs_baseline: baseline()?,
            rel_baseline: baseline()?,
            fast: match &config.commit {
                Some(commit) => Some(FastSigma {
                    sigma: bandpass(
                        commit.filter_order,
                        config.sigma_low_hz,
                        config.sigma_high_hz,
                        rate,
                        ["detector.sigma_low_hz", "detector.sigma_high_hz"],
                    )?,
                    power: MovingMean::new(commit.window_ms, rate)
                        .map_err(|e| invalid("detector.commit.window_ms", e))?,
                    baseline: baseline()?,
                }),
                None => None,
            },
            sigma_now: 0.0,
        };
        Ok(Self {
            channels: vec![stages; channels],
            abs_threshold_sd: config.abs_threshold_sd,
            rel_threshold_sd: config.rel_threshold_sd,
            corr_threshold: config.corr_threshold,
            end_rel_threshold_sd: config.end_rel_threshold_sd,
            commit_after: rate.samples_in_ms(config.commit_after_ms),
            min_duration: rate.samples_in_ms(config.min_duration_ms).max(1),
            max_duration: rate.samples_in_ms(config.max_duration_ms).max(1),
            warmup: rate.samples_in_s(config.warmup_s),
            half_window: rate.samples_in_ms(config.window_ms / 2.0),
            state: State::Quiet,
            commit: config.commit.as_ref().map(|c| CommitRule::new(c, rate)),
            best: (0, 0.0),
        })
    }

    /// Process one frame (one sample per channel) at sample index `n`.
    pub fn process_frame(
        &mut self,
        n: SampleIndex,
        frame: &[f64],
        mut emit: impl FnMut(DetectorOutput),
    ) {
        let mut best: Option<(usize, Features)> = None;
        for (channel, (stages, &x)) in self.channels.iter_mut().zip(frame).enumerate() {
            let features = stages.process(x);
            if best.map_or(true, |(_, b)| features.rel_z > b.rel_z) {
                best = Some((channel, features));
            }
        }
        let Some((channel, features)) = best else {
            return;
        };
        self.best = (channel, features.rel_z);
        if n < self.warmup || !self.channels.iter().all(|c| c.rel_baseline.is_warm()) {
            return;
        }
        self.step(n, features, channel, &mut emit);
    }

    /// The sigma band and relative sigma z of the best channel, against the
    /// start threshold on that z.
    pub fn probe(&self) -> Probe {
        let (channel, rel_z) = self.best;
        Probe {
            band: self.channels.get(channel).map_or(0.0, |c| c.sigma_now),
            envelope: rel_z,
            threshold: self.rel_threshold_sd,
            gated: false,
            vetoed: false,
        }
    }

    fn starts(&self, f: &Features) -> bool {
        f.abs_z > self.abs_threshold_sd
            && f.rel_z > self.rel_threshold_sd
            && f.corr > self.corr_threshold
    }

    fn step(
        &mut self,
        n: SampleIndex,
        f: Features,
        channel: usize,
        emit: &mut impl FnMut(DetectorOutput),
    ) {
        if let Some(rule) = &mut self.commit {
            if rule.commits(&f) {
                let onset = (n + 1).saturating_sub(rule.hold);
                let commit = Detection::committed(EventKind::SpindleCommit, channel, onset, n);
                emit(DetectorOutput::Commit(commit));
                emit(DetectorOutput::Finish(commit));
            }
        }
        let starts = self.starts(&f);
        self.state = match self.state {
            State::Quiet if starts => State::Rising { start: n },
            State::Quiet => State::Quiet,
            State::Rising { .. } if !starts => State::Quiet,
            State::Rising { start } if n - start >= self.commit_after => {
                let onset = start.saturating_sub(self.half_window);
                let detection = if self.commit.is_some() {
                    Detection::uncommitted(EventKind::Spindle, channel, onset, n)
                } else {
                    let detection = Detection::committed(EventKind::Spindle, channel, onset, n);
                    emit(DetectorOutput::Commit(detection));
                    detection
                };
                State::InEvent {
                    detection,
                    peak_z: f.rel_z,
                }
            }
            rising @ State::Rising { .. } => rising,
            State::InEvent {
                mut detection,
                mut peak_z,
            } => {
                if f.rel_z > peak_z {
                    peak_z = f.rel_z;
                    detection.peak = n;
                }
                if f.rel_z <= self.end_rel_threshold_sd
                    || n + 1 - detection.onset >= self.max_duration
                {
                    detection.end = (n + 1).saturating_sub(self.half_window);
                    self.close(detection, emit);
                    State::Quiet
                } else {
                    State::InEvent { detection, peak_z }
                }
            }
        };
    }

    /// Log a finished event: a short one as dropped if it was committed (its
    /// commit may have fired a stimulus), not at all otherwise.
    fn close(&self, mut detection: Detection, emit: &mut impl FnMut(DetectorOutput)) {
        if detection.end - detection.onset < self.min_duration {
            if !detection.committed {
                return;
            }
            detection.kind = EventKind::SpindleDropped;
        }
        emit(DetectorOutput::Finish(detection));
    }

    /// Close an event still open at the end of the input.
    pub fn finish(&mut self, end: SampleIndex, mut emit: impl FnMut(DetectorOutput)) {
        if let State::InEvent { mut detection, .. } = self.state {
            detection.end = end;
            self.close(detection, &mut emit);
        }
        self.state = State::Quiet;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DetectorConfig, Preset};
    use crate::sim::{simulate, Preset as SimPreset, SimSpec};

    /// The preset's spindle config (with or without its commit rule), and
    /// every output of the detector over a simulated night (all channels).
    fn run(commit_rule: bool) -> Vec<DetectorOutput> {
        let DetectorConfig::Spindle(mut config) = Preset::SleepSpindle.config().detector else {
            panic!("sleep-spindle runs the spindle detector");
        };
        assert!(config.commit.is_some(), "the preset has a commit rule");
        if !commit_rule {
            config.commit = None;
        }
        let rate = SampleRate::new(SimPreset::Sleep.default_rate_hz()).unwrap();
        let sim = simulate(&SimSpec::new(SimPreset::Sleep, 300.0, 3, rate)).unwrap();
        let signals = &sim.recording.signals;
        let mut detector =
            SpindleDetector::new(&config, rate, signals.len(), &mut Vec::new()).unwrap();
        let mut outputs = Vec::new();
        let mut frame = vec![0.0; signals.len()];
        for n in 0..signals[0].samples.len() {
            frame
                .iter_mut()
                .zip(signals)
                .for_each(|(x, s)| *x = s.samples[n]);
            detector.process_frame(n as u64, &frame, |o| outputs.push(o));
        }
        detector.finish(signals[0].samples.len() as u64, |o| outputs.push(o));
        outputs
    }

    fn finished(outputs: &[DetectorOutput], kind: EventKind) -> Vec<Detection> {
        outputs
            .iter()
            .filter_map(|o| match o {
                DetectorOutput::Finish(d) if d.kind == kind => Some(*d),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_commit_is_finished_once_and_only_commits_are_committed() {
        for commit_rule in [false, true] {
            let outputs = run(commit_rule);
            let commits: Vec<u64> = outputs
                .iter()
                .filter_map(|o| match o {
                    DetectorOutput::Commit(d) => Some(d.detected_at),
                    _ => None,
                })
                .collect();
            let mut finishes: Vec<u64> = outputs
                .iter()
                .filter_map(|o| match o {
                    DetectorOutput::Finish(d) if d.committed => Some(d.detected_at),
                    _ => None,
                })
                .collect();
            finishes.sort_unstable();
            assert_eq!(commits, finishes, "commit rule {commit_rule}");
            let spindles = finished(&outputs, EventKind::Spindle);
            assert!(!spindles.is_empty());
            assert!(spindles.iter().all(|d| d.committed != commit_rule));
            let (dropped, locked) = (
                finished(&outputs, EventKind::SpindleDropped),
                finished(&outputs, EventKind::SpindleCommit),
            );
            assert_eq!(dropped.is_empty(), commit_rule, "commit rule {commit_rule}");
            assert_eq!(locked.is_empty(), !commit_rule, "commit rule {commit_rule}");
        }
    }

    #[test]
    fn the_commit_rule_changes_no_spindle_and_commits_inside_them() {
        let (alone, with_rule) = (run(false), run(true));
        let bounds = |outputs: &[DetectorOutput]| {
            finished(outputs, EventKind::Spindle)
                .iter()
                .map(|d| (d.onset, d.end))
                .collect::<Vec<_>>()
        };
        assert_eq!(bounds(&alone), bounds(&with_rule));
        // Most spindle-locked commits fall inside a detected spindle.
        let spindles = bounds(&with_rule);
        let commits = finished(&with_rule, EventKind::SpindleCommit);
        let inside = commits
            .iter()
            .filter(|c| {
                spindles
                    .iter()
                    .any(|&(a, b)| (a..b).contains(&c.detected_at))
            })
            .count();
        assert!(
            inside * 4 >= commits.len() * 3,
            "{inside} of {} commits inside spindles",
            commits.len()
        );
    }

    #[test]
    fn commit_rule_holds_then_waits_to_rearm() {
        let rate = SampleRate::new(100.0).unwrap();
        let config = SpindleCommit {
            filter_order: 1,
            window_ms: 80.0,
            z_threshold_sd: 1.0,
            rel_threshold_sd: 0.6,
            corr_threshold: 0.7,
            hold_ms: 30.0,
            rearm_ms: 50.0,
        };
        let mut rule = CommitRule::new(&config, rate);
        let spindle_like = Features {
            abs_z: 0.0,
            rel_z: 1.0,
            corr: 0.8,
            fast_z: 2.0,
        };
        let weak_corr = Features {
            corr: 0.5,
            ..spindle_like
        };
        // Held 3 samples: commits at the third, then not again while it holds.
        let mut due: Vec<bool> = (0..10).map(|_| rule.commits(&spindle_like)).collect();
        assert_eq!(
            due,
            [false, false, true, false, false, false, false, false, false, false]
        );
        // Fails 4 samples (< 5 to rearm), holds again: no commit.
        due = (0..4).map(|_| rule.commits(&weak_corr)).collect();
        due.extend((0..5).map(|_| rule.commits(&spindle_like)));
        assert!(due.iter().all(|d| !d));
        // Fails 5 samples: rearmed, commits after 3 more.
        due = (0..5).map(|_| rule.commits(&weak_corr)).collect();
        due.extend((0..3).map(|_| rule.commits(&spindle_like)));
        assert_eq!(due.iter().position(|&d| d), Some(7));
    }
}
