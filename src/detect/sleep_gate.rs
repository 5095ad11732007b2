//! The online sleep-depth gate: slow-oscillation stimulation is only allowed
//! in deep-sleep-like signal. Deep NREM sleep has high delta (0.5–4 Hz) and low
//! beta (16–30 Hz) power; wake and REM have relatively more beta, movement and
//! muscle artifacts have large amplitudes or beta power. So the gate:
//! - opens when 10·log10(delta / beta power) over `window_s` rises above
//!   `open_db` and closes when it falls under `close_db` (hysteresis, so it
//!   does not flicker at the boundary);
//! - is held closed for `artifact_hold_s` after any raw sample beyond
//!   ±`artifact_uv` or a 1-s beta RMS above `artifact_beta_uv`.

use crate::config::pipeline::{invalid, ConfigError, SleepGateConfig};
use crate::detect::{bandpass, below_nyquist, POWER_FLOOR};
use crate::dsp::{Envelope, MovingMean, SosFilter};
use crate::time::{SampleIndex, SampleRate};

#[derive(Debug, Clone)]
pub struct SleepGate {
    enabled: bool,
    delta: SosFilter,
    beta: SosFilter,
    delta_power: MovingMean,
    beta_power: MovingMean,
    beta_rms_1s: Envelope,
    open_db: f64,
    close_db: f64,
    artifact_uv: f64,
    artifact_beta_uv: f64,
    artifact_hold: u64,
    /// No opening before the power windows have filled.
    warm_at: SampleIndex,
    deep: bool,
    blocked_until: SampleIndex,
}

impl SleepGate {
    /// `notes` receives any band edge lowered to fit the rate.
    pub fn new(
        config: &SleepGateConfig,
        rate: SampleRate,
        notes: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        let filter = |low_hz, high_hz: f64, field| bandpass(2, low_hz, high_hz, rate, field);
        let beta_high_hz = below_nyquist(
            "detector.gate.beta_high_hz",
            config.beta_high_hz,
            rate,
            notes,
        );
        let window_ms = config.window_s * 1000.0;
        let window = || {
            MovingMean::new(window_ms, rate)
                .map_err(|e| invalid("detector.gate.window_s", e.to_string()))
        };
        Ok(Self {
            enabled: config.enabled,
            delta: filter(
                config.delta_low_hz,
                config.delta_high_hz,
                ["detector.gate.delta_low_hz", "detector.gate.delta_high_hz"],
            )?,
            beta: filter(
                config.beta_low_hz,
                beta_high_hz,
                ["detector.gate.beta_low_hz", "detector.gate.beta_high_hz"],
            )?,
            delta_power: window()?,
            beta_power: window()?,
            beta_rms_1s: Envelope::new(1000.0, rate)
                .map_err(|e| invalid("detector.gate.window_s", e.to_string()))?,
            open_db: config.open_db,
            close_db: config.close_db,
            artifact_uv: config.artifact_uv,
            artifact_beta_uv: config.artifact_beta_uv,
            artifact_hold: rate.samples_in_s(config.artifact_hold_s),
            warm_at: rate.samples_in_s(config.window_s),
            deep: false,
            blocked_until: 0,
        })
    }

    /// Take raw sample `x` at `n`; returns whether stimulation is allowed at `n`.
    #[inline]
    pub fn process(&mut self, n: SampleIndex, x: f64) -> bool {
        if !self.enabled {
            return true;
        }
        let d = self.delta.process(x);
        let b = self.beta.process(x);
        let delta_power = self.delta_power.process(d * d).max(POWER_FLOOR);
        let beta_power = self.beta_power.process(b * b).max(POWER_FLOOR);
        let beta_rms = self.beta_rms_1s.process(b);
        if x.abs() > self.artifact_uv || beta_rms > self.artifact_beta_uv {
            self.blocked_until = n + self.artifact_hold;
        }
        let ratio_db = 10.0 * (delta_power / beta_power).log10();
        self.deep = if self.deep {
            ratio_db >= self.close_db
        } else {
            ratio_db > self.open_db
        };
        n >= self.warm_at && self.deep && n >= self.blocked_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::TAU;

    #[test]
    fn opens_on_slow_waves_closes_on_beta_and_artifacts() {
        let rate = SampleRate::new(100.0).unwrap();
        let mut gate = SleepGate::new(&SleepGateConfig::default(), rate, &mut Vec::new()).unwrap();
        let t = |n: u64| rate.seconds(n);
        let slow = |n: u64| 60.0 * (TAU * 1.0 * t(n)).sin() + 2.0 * (TAU * 20.0 * t(n)).sin();
        let awake = |n: u64| 10.0 * (TAU * 1.0 * t(n)).sin() + 8.0 * (TAU * 20.0 * t(n)).sin();
        let open_at = |gate: &mut SleepGate, from: u64, to: u64, f: &dyn Fn(u64) -> f64| {
            (from..to).map(|n| gate.process(n, f(n))).last().unwrap()
        };
        assert!(
            !open_at(&mut gate, 0, 500, &slow),
            "closed while warming up"
        );
        assert!(open_at(&mut gate, 500, 3000, &slow));
        assert!(!open_at(&mut gate, 3000, 6000, &awake));
        assert!(open_at(&mut gate, 6000, 9000, &slow));
        gate.process(9000, 1000.0);
        assert!(
            !open_at(&mut gate, 9001, 9400, &slow),
            "held after an artifact"
        );
        assert!(open_at(&mut gate, 9400, 10_500, &slow));
    }

    #[test]
    fn flat_clipped_and_rescaled_input_close_or_keep_it_as_documented() {
        let rate = SampleRate::new(100.0).unwrap();
        let t = |n: u64| rate.seconds(n);
        let slow = |n: u64| 60.0 * (TAU * 1.0 * t(n)).sin() + 2.0 * (TAU * 20.0 * t(n)).sin();
        let run = |x: &dyn Fn(u64) -> f64| {
            let mut gate =
                SleepGate::new(&SleepGateConfig::default(), rate, &mut Vec::new()).unwrap();
            (0..12_000u64)
                .map(|n| gate.process(n, x(n)))
                .collect::<Vec<bool>>()
        };
        // Flat: both powers sit at the floor (0 dB), the gate never opens.
        assert!(run(&|_| 0.0).iter().all(|open| !open));
        // Stuck at +800 µV for 10 s (40–50 s): closed from the first stuck
        // sample until 5 s after the last, open again 10 s later.
        let clipped = run(&|n| {
            if (4000..5000).contains(&n) {
                800.0
            } else {
                slow(n)
            }
        });
        assert!(clipped[3990]);
        assert!(clipped[4000..5500].iter().all(|open| !open));
        assert!(clipped[7000..].iter().all(|&open| open));
        // A gain step (×0.25 or ×4 at 40 s) leaves the delta/beta ratio as it
        // was: open throughout while the samples stay under the artifact limit.
        for gain in [0.25, 4.0] {
            let rescaled = run(&|n| if n >= 4000 { gain * slow(n) } else { slow(n) });
            assert!(rescaled[1000..].iter().all(|&open| open), "gain {gain}");
        }
        // ×10 puts 600-µV samples past the 400-µV artifact limit: held closed.
        let loud = run(&|n| if n >= 4000 { 10.0 * slow(n) } else { slow(n) });
        assert!(loud[4100..].iter().all(|open| !open));
    }
}
