//! Slow-oscillation up-state targeting (closed-loop auditory stimulation).
//!
//! The channels' mean is band-passed (causal Butterworth, default 0.5–2 Hz).
//! A trough of the band-passed signal (seen one sample late, as a local
//! minimum) below the negative threshold, while the sleep gate is open,
//! commits a detection whose `stim_target` is the predicted sample of the
//! target phase (default 0° = the up-state peak), from one of four estimators
//! (see `dsp::phase`). With `zero-crossing-delay` and `echt` the commit waits
//! for the upward zero crossing after the trough, so the prediction spans a
//! quarter rather than half a cycle. The threshold is fixed or, with
//! `trough_percentile`, a percentile of the troughs of recent half-waves seen
//! while the gate was open (never shallower than the fixed one, its floor).
//! The detection finishes at the following up-state peak (or `max_delay_ms`
//! after the commit); every half-wave from a trough below threshold to its
//! peak teaches the half-wave and crossing→peak delays.

use std::f64::consts::PI;

use crate::config::pipeline::{invalid, ConfigError, PhaseEstimator, SlowOscillationConfig};
use crate::detect::sleep_gate::SleepGate;
use crate::detect::{bandpass, bandpass_design, DetectorOutput, Probe};
use crate::dsp::phase::wrap;
use crate::dsp::{Echt, HalfWaveDelay, Pll, RecentValues, SosFilter};
use crate::event::{Detection, EventKind};
use crate::time::{SampleIndex, SampleRate};

#[derive(Debug, Clone)]
pub struct SlowOscillationDetector {
    filter: SosFilter,
    gate: SleepGate,
    estimator: PhaseEstimator,
    half_wave: HalfWaveDelay,
    /// Upward zero crossing → peak delay of recent deep waves.
    rising_quarter: HalfWaveDelay,
    zero_crossing_delay_scale: f64,
    pll: Pll,
    echt: Option<Echt>,
    target_phase_deg: f64,
    /// The same in radians.
    target_rad: f64,
    negative_threshold_uv: f64,
    /// Troughs of recent half-waves (gate open) and the percentile (0–1) of
    /// them a trough must pass; `None` for a fixed threshold.
    troughs: Option<(RecentValues, f64)>,
    /// The threshold in force (µV).
    threshold_uv: f64,
    /// Lowest band-passed value of the current negative half-wave.
    half_wave_min: f64,
    /// Slow-oscillation half-wave length range, in samples.
    half_wave_range: (u64, u64),
    warmup: u64,
    /// The last two band-passed samples (n−1, n−2).
    previous: [f64; 2],
    /// Last trough below threshold (gate open or not), for learning the half-wave delay.
    last_trough: Option<SampleIndex>,
    /// Upward zero crossing after a trough below threshold, for learning the crossing→peak delay.
    last_up_crossing: Option<SampleIndex>,
    /// A trough (gate open) waiting for its upward zero crossing (zero-crossing-delay estimator).
    armed_trough: Option<SampleIndex>,
    /// Start of the current negative half-wave (last downward zero crossing).
    down_crossing: SampleIndex,
    /// A committed detection waiting for its up-state peak.
    open: Option<Detection>,
    /// The sleep gate allowed stimulation at the last sample.
    allowed: bool,
}

impl SlowOscillationDetector {
    pub fn new(
        config: &SlowOscillationConfig,
        rate: SampleRate,
        _channels: usize,
        notes: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        let filter = bandpass(
            config.filter_order,
            config.band_low_hz,
            config.band_high_hz,
            rate,
            ["detector.band_low_hz", "detector.band_high_hz"],
        )?;
        Ok(Self {
            filter,
            gate: SleepGate::new(&config.gate, rate, notes)?,
            estimator: config.estimator,
            half_wave: HalfWaveDelay::new(
                rate.samples_in_ms(config.initial_delay_ms),
                rate.samples_in_ms(config.min_delay_ms),
                rate.samples_in_ms(config.max_delay_ms),
                config.learn_waves,
            )
            .map_err(|e| invalid("detector.learn_waves", e.to_string()))?,
            // The rising quarter-wave spans half the half-wave's range.
            rising_quarter: HalfWaveDelay::new(
                rate.samples_in_ms(config.initial_delay_ms / 2.0),
                rate.samples_in_ms(config.min_delay_ms / 2.0),
                rate.samples_in_ms(config.max_delay_ms / 2.0),
                config.learn_waves,
            )
            .map_err(|e| invalid("detector.learn_waves", e.to_string()))?,
            zero_crossing_delay_scale: config.zero_crossing_delay_scale,
            pll: Pll::new(
                config.band_low_hz,
                config.band_high_hz,
                config.pll_loop_hz,
                rate,
            )
            .map_err(|e| invalid("detector.pll_loop_hz", e.to_string()))?,
            echt: match &config.echt {
                Some(echt) if config.estimator == PhaseEstimator::Echt => {
                    let band = bandpass_design(
                        2,
                        echt.low_hz,
                        echt.high_hz,
                        rate,
                        ["detector.echt.low_hz", "detector.echt.high_hz"],
                    )?;
                    Some(
                        Echt::new(&band, echt.low_hz, echt.high_hz, echt.window_s, rate)
                            .map_err(|e| invalid("detector.echt.window_s", e.to_string()))?,
                    )
                }
                _ => None,
            },
            target_phase_deg: config.target_phase_deg,
            target_rad: config.target_phase_deg.to_radians(),
            negative_threshold_uv: config.negative_threshold_uv,
            troughs: if config.trough_percentile > 0.0 {
                let recent = RecentValues::new(config.trough_waves)
                    .map_err(|e| invalid("detector.trough_waves", e.to_string()))?;
                Some((recent, config.trough_percentile / 100.0))
            } else {
                None
            },
            threshold_uv: config.negative_threshold_uv,
            half_wave_min: 0.0,
            // A half-wave spans the trough→peak delay's range.
            half_wave_range: (
                rate.samples_in_ms(config.min_delay_ms),
                rate.samples_in_ms(config.max_delay_ms),
            ),
            warmup: rate.samples_in_s(config.warmup_s),
            previous: [0.0; 2],
            last_trough: None,
            last_up_crossing: None,
            armed_trough: None,
            down_crossing: 0,
            open: None,
            allowed: false,
        })
    }

    /// Learn the trough of a slow-oscillation half-wave that just ended.
    fn learn_trough(&mut self, half_wave: u64) {
        let (shortest, longest) = self.half_wave_range;
        if let Some((recent, percentile)) = &mut self.troughs {
            if (shortest..=longest).contains(&half_wave) {
                recent.push(self.half_wave_min);
                let adaptive = recent.quantile(*percentile).unwrap_or(f64::NEG_INFINITY);
                self.threshold_uv = self.negative_threshold_uv.min(adaptive);
            }
        }
    }

    /// Process one frame (one sample per channel) at sample index `n`.
    pub fn process_frame(
        &mut self,
        n: SampleIndex,
        frame: &[f64],
        mut emit: impl FnMut(DetectorOutput),
    ) {
        let x = frame.iter().sum::<f64>() / frame.len().max(1) as f64;
        let allowed = self.gate.process(n, x);
        self.allowed = allowed;
        let y = self.filter.process(x);
        if self.estimator == PhaseEstimator::Pll {
            self.pll.process(y);
        }
        if let Some(echt) = &mut self.echt {
            echt.push(x);
        }
        let [y1, y2] = self.previous;
        self.previous = [y, y1];
        if n < 2 {
            return;
        }
        self.half_wave_min = self.half_wave_min.min(y);
        if y1 >= 0.0 && y < 0.0 {
            self.down_crossing = n;
            self.half_wave_min = y;
        }
        if y1 < 0.0 && y >= 0.0 {
            if allowed {
                self.learn_trough(n - self.down_crossing);
            }
            if self.last_trough.is_some() {
                self.last_up_crossing = Some(n);
            }
            if let Some(trough) = self.armed_trough.take() {
                if allowed {
                    let ahead = self.samples_to_target_after_crossing();
                    self.commit(n, trough, n + ahead, &mut emit);
                }
            }
        }
        let extremum_at = n - 1;
        if y1 > y2 && y1 >= y && y1 > 0.0 {
            self.on_peak(extremum_at, &mut emit);
        }
        if y1 < y2 && y1 <= y && y1 < self.threshold_uv {
            self.last_trough = Some(extremum_at);
            if allowed && n >= self.warmup {
                self.on_deep_trough(n, extremum_at, &mut emit);
            }
        }
        if let Some(open) = self.open {
            if n >= open.detected_at + self.half_wave.max_delay() {
                self.finish_open(n, &mut emit);
            }
        }
    }

    /// The band-passed signal against the trough threshold in force (µV).
    pub fn probe(&self) -> Probe {
        Probe {
            band: self.previous[0],
            envelope: self.previous[0],
            threshold: self.threshold_uv,
            gated: !self.allowed,
            vetoed: false,
        }
    }

    /// Samples from an upward zero crossing to the target phase.
    fn samples_to_target_after_crossing(&mut self) -> u64 {
        let ahead = match &mut self.echt {
            Some(echt) => {
                // Already past the target: stimulate now.
                let (phase, omega) = echt.estimate();
                wrap(self.target_rad - phase).max(0.0) / omega
            }
            None => {
                // The crossing is −90°, the learned delay reaches 0°.
                let delay = self.rising_quarter.delay() as f64 * self.zero_crossing_delay_scale;
                delay * (1.0 + self.target_rad / (PI / 2.0))
            }
        };
        ahead.round().max(0.0) as u64
    }

    fn on_peak(&mut self, peak: SampleIndex, emit: &mut impl FnMut(DetectorOutput)) {
        if let Some(trough) = self.last_trough.take() {
            self.half_wave.observe(peak - trough);
        }
        if let Some(crossing) = self.last_up_crossing.take() {
            self.rising_quarter.observe(peak - crossing);
        }
        if let Some(mut open) = self.open.take() {
            open.end = peak + 1;
            emit(DetectorOutput::Finish(open));
        }
    }

    fn on_deep_trough(
        &mut self,
        n: SampleIndex,
        trough: SampleIndex,
        emit: &mut impl FnMut(DetectorOutput),
    ) {
        if self.open.is_some() || self.armed_trough.is_some() {
            // A deeper trough in the same half-wave: keep the first one.
            return;
        }
        let stim_target = match self.estimator {
            PhaseEstimator::HalfWaveDelay => {
                // Delay learned to the peak (0°); other targets scale by the
                // half-cycle (trough = −180° → peak = 0°).
                let delay = self.half_wave.delay() as f64;
                trough + (delay * (1.0 + self.target_rad / PI)).round().max(0.0) as u64
            }
            PhaseEstimator::Pll => n + self.pll.samples_until(self.target_rad),
            PhaseEstimator::ZeroCrossingDelay | PhaseEstimator::Echt => {
                self.armed_trough = Some(trough);
                return;
            }
        };
        self.commit(n, trough, stim_target, emit);
    }

    /// Commit a detection at `n` for the wave whose trough was at `trough`.
    fn commit(
        &mut self,
        n: SampleIndex,
        trough: SampleIndex,
        stim_target: SampleIndex,
        emit: &mut impl FnMut(DetectorOutput),
    ) {
        let onset = self.down_crossing.min(trough);
        let detection = Detection {
            peak: trough,
            stim_target: Some(stim_target.max(n)),
            target_phase_deg: Some(self.target_phase_deg),
            ..Detection::committed(EventKind::SlowOscillation, 0, onset, n)
        };
        emit(DetectorOutput::Commit(detection));
        self.open = Some(detection);
    }

    fn finish_open(&mut self, end: SampleIndex, emit: &mut impl FnMut(DetectorOutput)) {
        if let Some(mut open) = self.open.take() {
            open.end = end;
            emit(DetectorOutput::Finish(open));
        }
    }

    /// Close an event still open at the end of the input.
    pub fn finish(&mut self, end: SampleIndex, mut emit: impl FnMut(DetectorOutput)) {
        self.finish_open(end, &mut emit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DetectorConfig, EchtConfig, Preset};
    use std::f64::consts::TAU;

    /// The preset's config without the online gate, with `change` applied.
    fn config(change: impl FnOnce(&mut SlowOscillationConfig)) -> SlowOscillationConfig {
        let DetectorConfig::SlowOscillation(mut config) = Preset::SleepClas.config().detector
        else {
            unreachable!("sleep-clas is a slow-oscillation preset")
        };
        config.gate.enabled = false;
        change(&mut config);
        config
    }

    /// Every commit over 60 s at 100 Hz of `x(n)`.
    fn commits(config: &SlowOscillationConfig, x: impl Fn(u64) -> f64) -> Vec<Detection> {
        let rate = SampleRate::new(100.0).unwrap();
        let mut detector = SlowOscillationDetector::new(config, rate, 1, &mut Vec::new()).unwrap();
        let mut commits = Vec::new();
        for n in 0..6000 {
            detector.process_frame(n, &[x(n)], |out| {
                if let DetectorOutput::Commit(d) = out {
                    commits.push(d);
                }
            });
        }
        commits
    }

    /// A 0.8-Hz cosine of `amplitude_uv` at 100 Hz: peaks every 125 samples,
    /// upward crossings 31 samples before them.
    fn slow_wave(amplitude_uv: f64) -> impl Fn(u64) -> f64 {
        move |n| amplitude_uv * (TAU * 0.8 * n as f64 / 100.0).cos()
    }

    /// On [`slow_wave`]`(100.0)`: after two waves of warm-up, every commit
    /// within 3 samples of an upward crossing and every target within
    /// `peak_tolerance` samples of a peak (125 samples a cycle).
    fn assert_commits_at_crossings_targeting_peaks(
        config: &SlowOscillationConfig,
        peak_tolerance: u64,
    ) {
        let commits = commits(config, slow_wave(100.0));
        assert!(commits.len() > 30, "{} commits", commits.len());
        let near = |n: u64, tolerance: u64| n % 125 <= tolerance || n % 125 >= 125 - tolerance;
        for d in &commits[2..] {
            assert!(near(d.detected_at + 31, 3), "commit at {}", d.detected_at);
            let target = d.stim_target.unwrap();
            assert!(near(target, peak_tolerance), "target {target}");
        }
    }

    #[test]
    fn zero_crossing_delay_commits_at_the_crossing_and_targets_the_peak() {
        let config = config(|c| {
            c.estimator = PhaseEstimator::ZeroCrossingDelay;
            c.zero_crossing_delay_scale = 1.0;
        });
        assert_commits_at_crossings_targeting_peaks(&config, 3);
    }

    #[test]
    fn echt_commits_at_the_crossing_and_targets_the_peak() {
        let config = config(|c| {
            c.estimator = PhaseEstimator::Echt;
            // Centred on the wave: the transform's endpoint error is smallest.
            c.echt = Some(EchtConfig {
                low_hz: 0.6,
                high_hz: 1.4,
                window_s: 2.0,
            });
        });
        // Within 35° of the peak: the transform's phase and frequency at the
        // window's end are off by up to ~10° and ~15 % on a pure tone
        // (dsp::phase tests), and the remaining quarter cycle is timed from both.
        assert_commits_at_crossings_targeting_peaks(&config, 12);
    }

    #[test]
    fn trough_percentile_follows_the_waves_down_to_its_floor() {
        let fixed = config(|c| c.negative_threshold_uv = -60.0);
        let adaptive = config(|c| {
            c.negative_threshold_uv = -20.0;
            c.trough_percentile = 50.0;
        });
        // 40-µV waves: under the fixed threshold, adaptive passes them.
        assert!(commits(&fixed, slow_wave(40.0)).is_empty());
        assert!(commits(&adaptive, slow_wave(40.0)).len() > 30);
        // 15-µV waves: the floor holds.
        assert!(commits(&adaptive, slow_wave(15.0)).is_empty());
        // Alternating 40- and 80-µV waves: only the deeper half passes.
        let mixed = |n: u64| slow_wave(if (n / 125) % 2 == 0 { 40.0 } else { 80.0 })(n);
        let deep = commits(&adaptive, mixed);
        assert!((20..=26).contains(&deep.len()), "{} commits", deep.len());
    }
}
