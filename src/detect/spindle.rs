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
//! Optional early commit (`[detector.early_commit]`): the 300-ms correlation
//! is the last start condition to pass, ~350 ms after the experts' onset, so a
//! fast sigma envelope (order-1 band-pass, short window) crossing a higher z
//! with looser relative-power and correlation floors commits first; the start
//! conditions must follow within `confirm_within_ms` and then settle the
//! event's boundaries as without it.
//!
//! Every commit is visible in the output: a committed event dropped as too
//! short, or an early commit never confirmed, is finished as
//! `EventKind::SpindleDropped` (its commit may have fired a stimulus).

use crate::config::{ConfigError, SpindleConfig};
use crate::detect::{bandpass, below_nyquist, robust_baseline, DetectorOutput, POWER_FLOOR};
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
}

/// The early commit's sigma envelope: its own band-pass and window, z-scored
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
    /// The fast sigma envelope's z (NaN without an early commit).
    fast_z: f64,
}

impl ChannelStages {
    fn process(&mut self, x: f64) -> Features {
        let s = self.sigma.process(x);
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

/// Thresholds of the early commit, in samples where they are durations.
#[derive(Debug, Clone, Copy)]
struct EarlyRule {
    z_threshold_sd: f64,
    rel_threshold_sd: f64,
    corr_threshold: f64,
    confirm_within: u64,
    half_window: u64,
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
    early: Option<EarlyRule>,
    /// An early commit waiting for the start conditions.
    pending: Option<Detection>,
}

impl SpindleDetector {
    pub fn new(
        config: &SpindleConfig,
        rate: SampleRate,
        channels: usize,
    ) -> Result<Self, ConfigError> {
        let broad_high_hz = below_nyquist(config.broad_high_hz, rate);
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
                "detector.sigma_high_hz",
            )?,
            broad: bandpass(
                config.filter_order,
                config.broad_low_hz,
                broad_high_hz,
                rate,
                "detector.broad_high_hz",
            )?,
            sigma_power: window()?,
            broad_power: window()?,
            cross: window()?,
            abs_baseline: baseline()?,
            rel_baseline: baseline()?,
            fast: match &config.early_commit {
                Some(early) => Some(FastSigma {
                    sigma: bandpass(
                        early.filter_order,
                        config.sigma_low_hz,
                        config.sigma_high_hz,
                        rate,
                        "detector.sigma_high_hz",
                    )?,
                    power: MovingMean::new(early.window_ms, rate)
                        .map_err(|e| invalid("detector.early_commit.window_ms", e))?,
                    baseline: baseline()?,
                }),
                None => None,
            },
        };
        let early = config.early_commit.as_ref().map(|e| EarlyRule {
            z_threshold_sd: e.z_threshold_sd,
            rel_threshold_sd: e.rel_threshold_sd,
            corr_threshold: e.corr_threshold,
            confirm_within: rate.samples_in_ms(e.confirm_within_ms),
            half_window: rate.samples_in_ms(e.window_ms / 2.0),
        });
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
            early,
            pending: None,
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
        if n < self.warmup || !self.channels.iter().all(|c| c.rel_baseline.is_warm()) {
            return;
        }
        self.step(n, features, channel, &mut emit);
    }

    fn starts(&self, f: &Features) -> bool {
        f.abs_z > self.abs_threshold_sd
            && f.rel_z > self.rel_threshold_sd
            && f.corr > self.corr_threshold
    }

    fn commits_early(&self, f: &Features) -> bool {
        self.early.is_some_and(|e| {
            f.fast_z > e.z_threshold_sd && f.rel_z > e.rel_threshold_sd && f.corr > e.corr_threshold
        })
    }

    fn step(
        &mut self,
        n: SampleIndex,
        f: Features,
        channel: usize,
        emit: &mut impl FnMut(DetectorOutput),
    ) {
        let starts = self.starts(&f);
        if let (State::Quiet, None, Some(early)) = (self.state, self.pending, self.early) {
            if !starts && self.commits_early(&f) {
                let onset = n.saturating_sub(early.half_window);
                let detection = Detection::committed(EventKind::Spindle, channel, onset, n);
                emit(DetectorOutput::Commit(detection));
                self.pending = Some(detection);
            }
        }
        self.state = match self.state {
            State::Quiet if starts => State::Rising { start: n },
            State::Quiet => State::Quiet,
            State::Rising { .. } if !starts => State::Quiet,
            State::Rising { start } if self.pending.is_some() || n - start >= self.commit_after => {
                let onset = start.saturating_sub(self.half_window);
                let detection = match self.pending.take() {
                    // Already committed (and possibly triggered) early.
                    Some(early) => Detection { onset, ..early },
                    None => {
                        let detection = Detection::committed(EventKind::Spindle, channel, onset, n);
                        emit(DetectorOutput::Commit(detection));
                        detection
                    }
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
        if let (State::Quiet, Some(pending), Some(early)) = (self.state, self.pending, self.early) {
            if n - pending.detected_at >= early.confirm_within {
                self.pending = None;
                emit(DetectorOutput::Finish(Detection {
                    kind: EventKind::SpindleDropped,
                    ..pending
                }));
            }
        }
    }

    fn close(&self, mut detection: Detection, emit: &mut impl FnMut(DetectorOutput)) {
        if detection.end - detection.onset < self.min_duration {
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
        if let Some(pending) = self.pending.take() {
            emit(DetectorOutput::Finish(Detection {
                kind: EventKind::SpindleDropped,
                ..pending
            }));
        }
        self.state = State::Quiet;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DetectorConfig, Preset};
    use crate::sim::{simulate, Preset as SimPreset, SimSpec};

    /// The preset's spindle config, and every output of the detector over a
    /// simulated night (all channels).
    fn run(early: bool) -> Vec<DetectorOutput> {
        let DetectorConfig::Spindle(mut config) = Preset::SleepSpindle.config().detector else {
            panic!("sleep-spindle runs the spindle detector");
        };
        assert!(config.early_commit.is_some(), "the preset commits early");
        if !early {
            config.early_commit = None;
        }
        let rate = SampleRate::new(SimPreset::Sleep.default_rate_hz()).unwrap();
        let sim = simulate(&SimSpec::new(SimPreset::Sleep, 300.0, 3, rate)).unwrap();
        let signals = &sim.recording.signals;
        let mut detector = SpindleDetector::new(&config, rate, signals.len()).unwrap();
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
    fn every_commit_is_finished_once_as_spindle_or_dropped() {
        for early in [false, true] {
            let outputs = run(early);
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
                    DetectorOutput::Finish(d) => Some(d.detected_at),
                    _ => None,
                })
                .collect();
            finishes.sort_unstable();
            assert_eq!(commits, finishes, "early commit {early}");
            assert!(!finished(&outputs, EventKind::Spindle).is_empty());
            assert!(!finished(&outputs, EventKind::SpindleDropped).is_empty());
        }
    }

    #[test]
    fn early_commit_keeps_the_spindles_and_commits_them_sooner() {
        let (late, early) = (run(false), run(true));
        let (late, early) = (
            finished(&late, EventKind::Spindle),
            finished(&early, EventKind::Spindle),
        );
        let bounds = |ds: &[Detection]| ds.iter().map(|d| (d.onset, d.end)).collect::<Vec<_>>();
        assert_eq!(bounds(&late), bounds(&early));
        assert!(late
            .iter()
            .zip(&early)
            .all(|(l, e)| e.detected_at <= l.detected_at));
        let sooner = late
            .iter()
            .zip(&early)
            .filter(|(l, e)| e.detected_at < l.detected_at)
            .count();
        assert!(
            sooner * 4 >= late.len(),
            "{sooner} of {} sooner",
            late.len()
        );
    }
}
