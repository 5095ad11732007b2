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
//! - [`Echt`] (Schreglmann et al. 2021): the endpoint-corrected Hilbert
//!   transform of the last window of raw samples gives the phase and frequency
//!   at the newest sample.
//!
//! Phase convention (as the offline Hilbert phase): 0 at the positive peak,
//! ±π at the trough, increasing with time.

use std::f64::consts::{PI, TAU};
use std::sync::Arc;

use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};

use super::Sos;
use super::{positive, DspError, Envelope, Ewma, RecentValues};
use crate::time::SampleRate;

/// Learns the trough→peak delay of recent waves; see the module docs.
#[derive(Debug, Clone)]
pub struct HalfWaveDelay {
    delays: RecentValues,
    min_delay: u64,
    max_delay: u64,
    delay: u64,
}

impl HalfWaveDelay {
    /// `initial` is used until a wave has been seen; delays outside
    /// `[min, max]` samples are not half-waves of a slow oscillation and are ignored.
    pub fn new(initial: u64, min: u64, max: u64, waves: usize) -> Result<Self, DspError> {
        Ok(Self {
            delays: RecentValues::new(waves).map_err(|_| DspError::OutOfRange {
                name: "waves",
                value: waves as f64,
                allowed: "at least 1",
            })?,
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
        self.delays.push(delay as f64);
        if let Some(median) = self.delays.median() {
            self.delay = median.round() as u64;
        }
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

/// Endpoint-corrected Hilbert transform (Schreglmann et al. 2021): the FFT of
/// the last window of samples, its negative frequencies dropped (analytic
/// signal) and every bin weighted by the frequency response of a causal
/// band-pass, so the newest sample's phase is that of a causal filter's output
/// without its delay distortion at the window's end. Computed on demand (an
/// FFT pair per call, into preallocated buffers); samples are pushed every tick.
#[derive(Clone)]
pub struct Echt {
    window: Vec<f64>,
    next: usize,
    forward: Arc<dyn Fft<f64>>,
    inverse: Arc<dyn Fft<f64>>,
    buffer: Vec<Complex64>,
    scratch: Vec<Complex64>,
    /// Analytic-signal weight times the band-pass response, per bin.
    weights: Vec<Complex64>,
    /// Samples over which the frequency is measured from the phase advance.
    frequency_lag: usize,
    omega_min: f64,
    omega_max: f64,
}

impl std::fmt::Debug for Echt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Echt")
            .field("window", &self.window.len())
            .finish_non_exhaustive()
    }
}

impl Echt {
    /// `band` is the causal band-pass whose response corrects the endpoint
    /// (its pass band `[low_hz, high_hz]` also bounds the frequency estimate);
    /// `window_s` of samples are transformed.
    pub fn new(
        band: &Sos,
        low_hz: f64,
        high_hz: f64,
        window_s: f64,
        rate: SampleRate,
    ) -> Result<Self, DspError> {
        let len = super::window_samples("window_s", window_s, window_s, rate)?;
        let frequency_lag = (rate.hz() / high_hz / 8.0).round().max(1.0) as usize;
        if len < 4 * frequency_lag {
            return Err(DspError::OutOfRange {
                name: "window_s",
                value: window_s,
                allowed: "at least half a period of the band's upper edge",
            });
        }
        let mut planner = FftPlanner::new();
        let (forward, inverse) = (planner.plan_fft_forward(len), planner.plan_fft_inverse(len));
        let scratch_len = forward
            .get_inplace_scratch_len()
            .max(inverse.get_inplace_scratch_len());
        let weights = (0..len)
            .map(|k| {
                let analytic = if k == 0 || 2 * k == len {
                    1.0
                } else if 2 * k < len {
                    2.0
                } else {
                    0.0
                };
                // Divided by len: rustfft's inverse is unnormalised.
                response(band, TAU * k as f64 / len as f64) * (analytic / len as f64)
            })
            .collect();
        Ok(Self {
            window: vec![0.0; len],
            next: 0,
            forward,
            inverse,
            buffer: vec![Complex64::new(0.0, 0.0); len],
            scratch: vec![Complex64::new(0.0, 0.0); scratch_len],
            weights,
            frequency_lag,
            omega_min: TAU * low_hz / rate.hz(),
            omega_max: TAU * high_hz / rate.hz(),
        })
    }

    #[inline]
    pub fn push(&mut self, x: f64) {
        self.window[self.next] = x;
        self.next = (self.next + 1) % self.window.len();
    }

    /// Phase (radians, 0 = peak) at the newest sample and frequency (radians
    /// per sample, within the band) from the phase advance over the last
    /// eighth of a period of the upper band edge.
    pub fn estimate(&mut self) -> (f64, f64) {
        let (older, newer) = self.window.split_at(self.next);
        for (b, &x) in self.buffer.iter_mut().zip(newer.iter().chain(older)) {
            *b = Complex64::new(x, 0.0);
        }
        self.forward
            .process_with_scratch(&mut self.buffer, &mut self.scratch);
        for (b, w) in self.buffer.iter_mut().zip(&self.weights) {
            *b *= w;
        }
        self.inverse
            .process_with_scratch(&mut self.buffer, &mut self.scratch);
        let len = self.buffer.len();
        let (last, earlier) = (
            self.buffer[len - 1],
            self.buffer[len - 1 - self.frequency_lag],
        );
        let advance = wrap((last * earlier.conj()).arg());
        let omega = (advance / self.frequency_lag as f64).clamp(self.omega_min, self.omega_max);
        (last.arg(), omega)
    }
}

/// Frequency response of `sos` at `omega` radians per sample.
fn response(sos: &Sos, omega: f64) -> Complex64 {
    let z1 = Complex64::from_polar(1.0, -omega);
    let z2 = z1 * z1;
    sos.sections()
        .iter()
        .map(|&[b0, b1, b2, _, a1, a2]| (z1 * b1 + z2 * b2 + b0) / (z1 * a1 + z2 * a2 + 1.0))
        .product()
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
    fn echt_gives_the_phase_and_frequency_at_the_newest_sample() {
        let fs = rate();
        let (low_hz, high_hz) = (0.6, 1.4);
        let band =
            crate::dsp::butterworth(2, crate::dsp::Band::Bandpass { low_hz, high_hz }, fs).unwrap();
        let mut echt = Echt::new(&band, low_hz, high_hz, 2.0, fs).unwrap();
        let f_hz = 0.9;
        let phase_at = |n: u64| TAU * f_hz * fs.seconds(n);
        let (mut worst_phase, mut worst_hz): (f64, f64) = (0.0, 0.0);
        for n in 0..2000u64 {
            // A DC offset too: the band-pass response removes it.
            echt.push(60.0 * phase_at(n).cos() + 20.0);
            if n >= 200 && n % 7 == 0 {
                let (phase, omega) = echt.estimate();
                worst_phase = worst_phase.max(wrap(phase - phase_at(n)).abs());
                worst_hz = worst_hz.max((omega * fs.hz() / TAU - f_hz).abs());
            }
        }
        // scipy gives the same transform a worst error of 0.175 rad here.
        assert!(worst_phase < 0.18, "worst phase error {worst_phase} rad");
        assert!(worst_hz < 0.15, "worst frequency error {worst_hz} Hz");
        assert!(Echt::new(&band, low_hz, high_hz, 0.01, fs).is_err());
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
