//! Offline slow-oscillation phase of stimuli, as `EVALUATION.md` prescribes:
//! angle(hilbert(sosfiltfilt(4th-order Butterworth 0.5–2 Hz))) at each stim
//! onset, 0° = positive peak (up-state), ±180° = trough. The zero-phase filter
//! runs forward then backward over the whole recording with odd-extension
//! padding of scipy's default length (scipy also sets steady-state initial
//! conditions; the two differ only within a few seconds of the ends). The
//! analytic signal comes from an FFT (rustfft), as `scipy.signal.hilbert`.

use std::f64::consts::PI;

use rustfft::{num_complex::Complex64, FftPlanner};

use crate::dsp::{butterworth, filter_zero_phase, Band, DesignError};
use crate::time::SampleRate;

/// Zero-phase SO band-pass followed by the Hilbert phase, in radians per sample.
pub fn offline_phase(samples: &[f64], rate: SampleRate) -> Result<Vec<f64>, DesignError> {
    let sos = butterworth(
        4,
        Band::Bandpass {
            low_hz: 0.5,
            high_hz: 2.0,
        },
        rate,
    )?;
    // scipy: padlen = 3 * (2 * sections + 1), no section here has a zero b2/a2.
    let pad = (3 * (2 * sos.sections().len() + 1)).min(samples.len().saturating_sub(1));
    let n = samples.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut x: Vec<f64> = Vec::with_capacity(n + 2 * pad);
    x.extend((1..=pad).rev().map(|i| 2.0 * samples[0] - samples[i]));
    x.extend_from_slice(samples);
    x.extend((1..=pad).map(|i| 2.0 * samples[n - 1] - samples[n - 1 - i]));
    filter_zero_phase(&sos, &mut x);
    let filtered = &x[pad..pad + n];

    let mut spectrum: Vec<Complex64> = filtered.iter().map(|&v| Complex64::new(v, 0.0)).collect();
    let mut planner = FftPlanner::new();
    planner.plan_fft_forward(n).process(&mut spectrum);
    // Analytic signal: keep DC (and Nyquist for even n), double positive frequencies, drop negative.
    for (k, c) in spectrum.iter_mut().enumerate() {
        let weight = if k == 0 || (n % 2 == 0 && k == n / 2) {
            1.0
        } else if k < n.div_ceil(2) {
            2.0
        } else {
            0.0
        };
        *c *= weight;
    }
    planner.plan_fft_inverse(n).process(&mut spectrum);
    Ok(spectrum.iter().map(|c| c.im.atan2(c.re)).collect())
}

/// The offline SO phase (radians) at each of `onsets_s`, of the one signal
/// `samples`; onsets past its end are left out.
pub fn phases_at(
    samples: &[f64],
    rate: SampleRate,
    onsets_s: &[f64],
) -> Result<Vec<f64>, DesignError> {
    let phase = offline_phase(samples, rate)?;
    Ok(onsets_s
        .iter()
        .filter_map(|&t| phase.get(rate.index_at(t) as usize).copied())
        .collect())
}

/// Phase accuracy of a set of stims against a target phase.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PhaseScore {
    pub stims: usize,
    pub target_deg: f64,
    /// Circular mean of (phase − target), in (−180, 180].
    pub mean_error_deg: f64,
    /// Vector strength (mean resultant length), 0–1.
    pub r: f64,
    /// √(−2 ln R), in degrees.
    pub circular_sd_deg: f64,
    /// Share of stims within ±90° of the target (the half cycle around it).
    pub share_in_half_cycle: f64,
}

/// Score stim phases (radians) against `target_deg`; `None` if there are no stims.
pub fn score_phases(phases: &[f64], target_deg: f64) -> Option<PhaseScore> {
    if phases.is_empty() {
        return None;
    }
    let target = target_deg.to_radians();
    let (mut sin, mut cos, mut inside) = (0.0, 0.0, 0usize);
    for &p in phases {
        let error = crate::dsp::phase::wrap(p - target);
        sin += error.sin();
        cos += error.cos();
        if error.abs() <= PI / 2.0 {
            inside += 1;
        }
    }
    let count = phases.len() as f64;
    let r = (sin * sin + cos * cos).sqrt() / count;
    Some(PhaseScore {
        stims: phases.len(),
        target_deg,
        mean_error_deg: sin.atan2(cos).to_degrees(),
        r,
        circular_sd_deg: (-2.0 * r.max(1e-300).ln()).sqrt().to_degrees(),
        share_in_half_cycle: inside as f64 / count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::TAU;

    #[test]
    fn phase_of_a_slow_sine_is_zero_at_its_peaks() {
        let rate = SampleRate::new(100.0).unwrap();
        let f_hz = 0.8;
        let x: Vec<f64> = (0..6000)
            .map(|n| {
                70.0 * (TAU * f_hz * rate.seconds(n)).cos()
                    + 5.0 * (TAU * 12.0 * rate.seconds(n)).sin()
            })
            .collect();
        let phase = offline_phase(&x, rate).unwrap();
        let period = rate.hz() / f_hz;
        for k in 5..40 {
            let peak = (k as f64 * period).round() as usize;
            let trough = ((k as f64 + 0.5) * period).round() as usize;
            assert!(phase[peak].abs() < 0.05, "peak {k}: {}", phase[peak]);
            assert!(
                phase[trough].abs() > PI - 0.05,
                "trough {k}: {}",
                phase[trough]
            );
        }
    }

    #[test]
    fn scores_circular_statistics() {
        let s = score_phases(&[0.1, -0.1, 0.3, -0.3], 0.0).unwrap();
        assert!(s.mean_error_deg.abs() < 1e-9);
        assert!(s.r > 0.95 && s.share_in_half_cycle == 1.0);
        let s = score_phases(&[PI - 0.1, -PI + 0.1], 180.0).unwrap();
        assert!(s.mean_error_deg.abs() < 1e-9, "wraps around ±180");
        let s = score_phases(&[0.0, PI], 0.0).unwrap();
        assert!(s.r < 1e-9 && s.share_in_half_cycle == 0.5);
        assert!(score_phases(&[], 0.0).is_none());
    }
}
