//! Causal phase estimation of a narrow-band oscillation (slow oscillations):
//! two estimators the slow-oscillation detector can use to predict when the
//! next up-state peak (phase 0°) will occur.
//!
//! - [`HalfWaveDelay`] (Ngo et al. 2013): the up-state follows the trough
//!   after the subject's typical trough→peak delay, learned online as the
//!   median of the last waves.
//! - [`Pll`] (after Santostasi et al. 2016): a second-order phase-locked loop
//!   locked to the band-passed signal; its phase and frequency extrapolate to
//!   the next target phase.
//!
//! Phase convention (as the offline Hilbert phase): 0 at the positive peak,
//! ±π at the trough, increasing with time.

use std::f64::consts::{PI, TAU};

use super::stats::median_in_place;
use super::{positive, DspError, Envelope, Ewma};
use crate::time::SampleRate;

/// Learns the trough→peak delay of recent waves; see the module docs.
#[derive(Debug, Clone)]
pub struct HalfWaveDelay {
    delays: Vec<u64>,
    next: usize,
    filled: usize,
    scratch: Vec<f64>,
    min_delay: u64,
    max_delay: u64,
    delay: u64,
}

impl HalfWaveDelay {
    /// `initial` is used until a wave has been seen; delays outside
    /// `[min, max]` samples are not half-waves of a slow oscillation and are ignored.
    pub fn new(initial: u64, min: u64, max: u64, waves: usize) -> Result<Self, DspError> {
        if waves == 0 {
            return Err(DspError::OutOfRange {
                name: "waves",
                value: 0.0,
                allowed: "at least 1",
            });
        }
        Ok(Self {
            delays: vec![0; waves],
            next: 0,
            filled: 0,
            scratch: vec![0.0; waves],
            min_delay: min,
            max_delay: max,
            delay: initial,
        })
    }

    /// Record one observed trough→peak delay (samples). Work O(waves), once per wave.
    pub fn observe(&mut self, delay: u64) {
        if !(self.min_delay..=self.max_delay).contains(&delay) {
            return;
        }
        self.delays[self.next] = delay;
        self.next = (self.next + 1) % self.delays.len();
        self.filled = (self.filled + 1).min(self.delays.len());
        let values = &mut self.scratch[..self.filled];
        for (v, &d) in values.iter_mut().zip(&self.delays) {
            *v = d as f64;
        }
        self.delay = median_in_place(values).round() as u64;
    }

    /// The current trough→peak delay estimate in samples.
    pub fn delay(&self) -> u64 {
        self.delay
    }

    /// Longest accepted trough→peak delay in samples.
    pub fn max_delay(&self) -> u64 {
        self.max_delay
    }
}

/// A second-order (proportional-integral) phase-locked loop on an
/// amplitude-normalised input; see the module docs.
#[derive(Debug, Clone)]
pub struct Pll {
    /// Phase of the current sample, in (−π, π].
    phase: f64,
    /// Radians per sample.
    omega: f64,
    omega_min: f64,
    omega_max: f64,
    kp: f64,
    ki: f64,
    amplitude: Envelope,
    /// The loop frequency carries a double-frequency ripple from the phase
    /// detector; extrapolation uses its 2-s running mean.
    omega_mean: Ewma,
}

impl Pll {
    /// Lock range `[low_hz, high_hz]`; `loop_hz` is the loop's natural
    /// frequency (how fast it follows phase changes), damping 0.7.
    pub fn new(
        low_hz: f64,
        high_hz: f64,
        loop_hz: f64,
        rate: SampleRate,
    ) -> Result<Self, DspError> {
        let per_sample = |hz: f64| TAU * hz / rate.hz();
        positive("low_hz", low_hz)?;
        positive("loop_hz", loop_hz)?;
        if !(high_hz > low_hz && high_hz < rate.nyquist_hz()) {
            return Err(DspError::OutOfRange {
                name: "high_hz",
                value: high_hz,
                allowed: "above low_hz and below Nyquist",
            });
        }
        // Phase detector gain of u·(−sin θ) for u = cos φ is 1/2.
        const DETECTOR_GAIN: f64 = 0.5;
        const DAMPING: f64 = 0.7;
        let wn = per_sample(loop_hz);
        Ok(Self {
            phase: 0.0,
            omega: per_sample((low_hz * high_hz).sqrt()),
            omega_min: per_sample(low_hz),
            omega_max: per_sample(high_hz),
            kp: 2.0 * DAMPING * wn / DETECTOR_GAIN,
            ki: wn * wn / DETECTOR_GAIN,
            // One second normalises the amplitude over about one slow-oscillation cycle.
            amplitude: Envelope::new(1000.0, rate)?,
            omega_mean: Ewma::new(2.0, rate)?,
        })
    }

    /// Take one band-passed sample, return the phase estimate at it (radians).
    #[inline]
    pub fn process(&mut self, x: f64) -> f64 {
        let rms = self.amplitude.process(x);
        let u = if rms > 0.0 {
            x / (std::f64::consts::SQRT_2 * rms)
        } else {
            0.0
        };
        let predicted = self.phase + self.omega;
        let error = -u * predicted.sin();
        self.omega = (self.omega + self.ki * error).clamp(self.omega_min, self.omega_max);
        self.omega_mean.update(self.omega);
        self.phase = wrap(predicted + self.kp * error);
        self.phase
    }

    /// Current frequency estimate in radians per sample (ripple averaged out).
    pub fn omega(&self) -> f64 {
        self.omega_mean.mean()
    }

    /// Samples from now until the phase next reaches `target` (radians).
    pub fn samples_until(&self, target: f64) -> u64 {
        let ahead = (target - self.phase).rem_euclid(TAU);
        (ahead / self.omega()).round() as u64
    }
}

/// Wrap an angle to (−π, π].
pub fn wrap(angle: f64) -> f64 {
    let a = (angle + PI).rem_euclid(TAU) - PI;
    if a == -PI {
        PI
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate() -> SampleRate {
        SampleRate::new(100.0).unwrap()
    }

    #[test]
    fn pll_locks_to_a_sine_and_predicts_its_peak() {
        let fs = rate();
        let f_hz = 0.8;
        let mut pll = Pll::new(0.5, 2.0, 0.3, fs).unwrap();
        let x = |n: u64| 50.0 * (TAU * f_hz * fs.seconds(n)).cos();
        // Stop mid-cycle (period 125 samples; peaks at multiples of 125).
        for n in 0..2950 {
            pll.process(x(n));
        }
        let hz = pll.omega() * fs.hz() / TAU;
        assert!((hz - f_hz).abs() < 0.02, "locked at {hz} Hz");
        // The next peak of cos is at the next multiple of the period.
        let now = 2949;
        let predicted = now + pll.samples_until(0.0);
        let period = fs.hz() / f_hz;
        let next_peak = ((now as f64 / period).floor() + 1.0) * period;
        assert!(
            (predicted as f64 - next_peak).abs() <= 2.0,
            "{predicted} vs {next_peak}"
        );
    }

    #[test]
    fn half_wave_delay_is_the_median_of_valid_waves() {
        let mut learner = HalfWaveDelay::new(50, 20, 100, 3).unwrap();
        assert_eq!(
            learner.delay(),
            50,
            "the initial delay until waves are learned"
        );
        for d in [40, 500, 44, 10, 42] {
            learner.observe(d);
        }
        assert_eq!(learner.delay(), 42);
        learner.observe(60);
        learner.observe(62);
        assert_eq!(learner.delay(), 60, "only the last 3 waves count");
        assert!(HalfWaveDelay::new(50, 20, 100, 0).is_err());
    }

    #[test]
    fn wrap_stays_in_range() {
        for a in [-10.0, -PI, 0.0, PI, 3.5, 100.0] {
            let w = wrap(a);
            assert!(w > -PI && w <= PI, "{a} -> {w}");
            assert!(((a - w) / TAU - ((a - w) / TAU).round()).abs() < 1e-9);
        }
    }
}
