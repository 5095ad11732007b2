//! Slow-oscillation up-state targeting (closed-loop auditory stimulation).
//!
//! The channels' mean is band-passed (causal Butterworth, default 0.5–2 Hz).
//! A trough of the band-passed signal (seen one sample late, as a local
//! minimum) below the negative threshold, while the sleep gate is open,
//! commits a detection whose `stim_target` is the predicted sample of the
//! target phase (default 0° = the up-state peak), from one of three estimators
//! (see `dsp::phase`). With `zero-crossing-delay` the commit waits for the
//! upward zero crossing after the trough, so the prediction spans a quarter
//! rather than half a cycle. The detection finishes at the following up-state
//! peak (or `max_delay_ms` after the commit); every half-wave from a trough
//! below threshold to its peak teaches the half-wave and crossing→peak delays.

use std::f64::consts::PI;

use crate::config::{invalid, ConfigError, PhaseEstimator, SlowOscillationConfig};
use crate::detect::sleep_gate::SleepGate;
use crate::detect::{bandpass, robust_baseline, DetectorOutput};
use crate::dsp::{HalfWaveDelay, Pll, RobustBaseline, SosFilter};
use crate::event::{Detection, EventKind};
use crate::time::{SampleIndex, SampleRate};

/// Updates per second of the adaptive-threshold baseline.
const BASELINE_UPDATES_PER_S: f64 = 4.0;

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
    spread: RobustBaseline,
    target_phase_deg: f64,
    /// The same in radians.
    target_rad: f64,
    negative_threshold_uv: f64,
    adaptive_threshold_sd: f64,
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
}

impl SlowOscillationDetector {
    pub fn new(
        config: &SlowOscillationConfig,
        rate: SampleRate,
        _channels: usize,
    ) -> Result<Self, ConfigError> {
        let filter = bandpass(
            config.filter_order,
            config.band_low_hz,
            config.band_high_hz,
            rate,
            "detector.band_high_hz",
        )?;
        Ok(Self {
            filter,
            gate: SleepGate::new(&config.gate, rate)?,
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
            spread: robust_baseline(
                config.baseline_window_s,
                BASELINE_UPDATES_PER_S,
                rate,
                "detector.baseline_window_s",
            )?,
            target_phase_deg: config.target_phase_deg,
            target_rad: config.target_phase_deg.to_radians(),
            negative_threshold_uv: config.negative_threshold_uv,
            adaptive_threshold_sd: config.adaptive_threshold_sd,
            warmup: rate.samples_in_s(config.warmup_s),
            previous: [0.0; 2],
            last_trough: None,
            last_up_crossing: None,
            armed_trough: None,
            down_crossing: 0,
            open: None,
        })
    }

    /// The trough threshold in µV at this moment (fixed, or adaptive if deeper).
    fn threshold_uv(&self) -> f64 {
        let adaptive = -self.adaptive_threshold_sd * self.spread.robust_sd();
        self.negative_threshold_uv.min(adaptive)
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
        let y = self.filter.process(x);
        if self.estimator == PhaseEstimator::Pll {
            self.pll.process(y);
        }
        if self.adaptive_threshold_sd > 0.0 {
            self.spread.update(y);
        }
        let [y1, y2] = self.previous;
        self.previous = [y, y1];
        if n < 2 {
            return;
        }
        if y1 >= 0.0 && y < 0.0 {
            self.down_crossing = n;
        }
        if y1 < 0.0 && y >= 0.0 {
            if self.last_trough.is_some() {
                self.last_up_crossing = Some(n);
            }
            if let Some(trough) = self.armed_trough.take() {
                if allowed {
                    // The crossing is −90°, the learned delay reaches 0°.
                    let delay = self.rising_quarter.delay() as f64 * self.zero_crossing_delay_scale;
                    let ahead = (delay * (1.0 + self.target_rad / (PI / 2.0)))
                        .round()
                        .max(0.0) as u64;
                    self.commit(n, trough, n + ahead, &mut emit);
                }
            }
        }
        let extremum_at = n - 1;
        if y1 > y2 && y1 >= y && y1 > 0.0 {
            self.on_peak(extremum_at, &mut emit);
        }
        if y1 < y2 && y1 <= y && y1 < self.threshold_uv() {
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
            PhaseEstimator::ZeroCrossingDelay => {
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
    use crate::config::{DetectorConfig, Preset};
    use std::f64::consts::TAU;

    #[test]
    fn zero_crossing_delay_commits_at_the_crossing_and_targets_the_peak() {
        let DetectorConfig::SlowOscillation(mut config) = Preset::SleepClas.config().detector
        else {
            unreachable!("sleep-clas is a slow-oscillation preset")
        };
        config.estimator = PhaseEstimator::ZeroCrossingDelay;
        config.zero_crossing_delay_scale = 1.0;
        config.gate.enabled = false;
        let rate = SampleRate::new(100.0).unwrap();
        let mut detector = SlowOscillationDetector::new(&config, rate, 1).unwrap();
        // 0.8 Hz, 100 µV: peaks every 125 samples, upward crossings 31 samples before them.
        let x = |n: u64| 100.0 * (TAU * 0.8 * rate.seconds(n)).cos();
        let mut commits = Vec::new();
        for n in 0..6000 {
            detector.process_frame(n, &[x(n)], |out| {
                if let DetectorOutput::Commit(d) = out {
                    commits.push(d);
                }
            });
        }
        assert!(commits.len() > 30, "{} commits", commits.len());
        for d in &commits[2..] {
            let to_crossing = (d.detected_at + 31) % 125;
            assert!(
                to_crossing <= 3 || to_crossing >= 122,
                "commit at {}",
                d.detected_at
            );
            let from_peak = d.stim_target.unwrap() % 125;
            assert!(
                from_peak <= 3 || from_peak >= 122,
                "target {}",
                d.stim_target.unwrap()
            );
        }
    }
}
