//! Waveform building blocks shared by the presets: envelopes, bursts, steady
//! tones and bookkeeping of occupied time intervals. Every waveform is an
//! analytic function of time in seconds, evaluated at the sample instants, so
//! event times do not depend on the sample rate.

use std::f64::consts::{FRAC_PI_2, TAU};

use super::layers::Layers;
use super::noise::BandNoise;
use crate::rng::Rng;

/// Waxing–waning envelope: an asymmetric gaussian peaking (value 1) at `peak_s`,
/// with its edge value subtracted so it reaches exactly 0 at `onset_s` and `end_s`
/// (no step, hence no broadband click).
#[derive(Debug, Clone, Copy)]
pub struct BurstEnvelope {
    pub onset_s: f64,
    pub peak_s: f64,
    pub end_s: f64,
}

impl BurstEnvelope {
    /// Standard deviations between the peak and each edge.
    const EDGE_SD: f64 = 2.5;

    pub fn at(&self, t: f64) -> f64 {
        if t <= self.onset_s || t >= self.end_s {
            return 0.0;
        }
        let half_width = if t < self.peak_s {
            self.peak_s - self.onset_s
        } else {
            self.end_s - self.peak_s
        };
        let z = Self::EDGE_SD * (t - self.peak_s) / half_width;
        let edge = Self::edge_value();
        (((-0.5 * z * z).exp() - edge) / (1.0 - edge)).max(0.0)
    }

    fn edge_value() -> f64 {
        (-0.5 * Self::EDGE_SD * Self::EDGE_SD).exp()
    }

    /// The share (0..=1) of each half-width over which the envelope is at
    /// least `fraction` (0..=1) of its peak: the interval is
    /// `peak − w·(peak − onset) .. peak + w·(end − peak)`.
    pub fn width_fraction_above(fraction: f64) -> f64 {
        let edge = Self::edge_value();
        let level = fraction.clamp(0.0, 1.0) * (1.0 - edge) + edge;
        (-2.0 * level.ln()).max(0.0).sqrt() / Self::EDGE_SD
    }
}

/// A trapezoid with raised-cosine edges: 0 before `onset_s`, rising to 1 over
/// `rise_s`, holding for `hold_s`, falling to 0 over `fall_s`.
#[derive(Debug, Clone, Copy)]
pub struct SmoothPlateau {
    pub onset_s: f64,
    pub rise_s: f64,
    pub hold_s: f64,
    pub fall_s: f64,
}

impl SmoothPlateau {
    pub fn end_s(&self) -> f64 {
        self.onset_s + self.rise_s + self.hold_s + self.fall_s
    }

    pub fn at(&self, t: f64) -> f64 {
        let since = t - self.onset_s;
        if since <= 0.0 || t >= self.end_s() {
            0.0
        } else if since < self.rise_s {
            raised_cosine(since / self.rise_s)
        } else if since < self.rise_s + self.hold_s {
            1.0
        } else {
            raised_cosine(1.0 - (since - self.rise_s - self.hold_s) / self.fall_s)
        }
    }
}

/// 0 at `x = 0`, 1 at `x = 1`, flat at both ends.
fn raised_cosine(x: f64) -> f64 {
    let s = (FRAC_PI_2 * x.clamp(0.0, 1.0)).sin();
    s * s
}

/// Weight (0..=1) of an epoch [`start_s`, `end_s`) at time `t`, with raised-cosine
/// ramps of `ramp_s` (shortened for short epochs) at both ends.
pub fn epoch_weight(t: f64, start_s: f64, end_s: f64, ramp_s: f64) -> f64 {
    let ramp_s = ramp_s.min(0.5 * (end_s - start_s));
    if t < start_s || t >= end_s || ramp_s <= 0.0 {
        return if t >= start_s && t < end_s { 1.0 } else { 0.0 };
    }
    raised_cosine(((t - start_s) / ramp_s).min((end_s - t) / ramp_s))
}

/// Add `amplitude × gain[c] × envelope(t) × sin(2π f (t − peak) + phase)` to each channel.
pub fn add_burst(
    layers: &mut Layers,
    gains: &[f64],
    envelope: BurstEnvelope,
    freq_hz: f64,
    phase: f64,
    amplitude: f64,
) {
    layers.add(gains, envelope.onset_s, envelope.end_s, move |t| {
        amplitude * envelope.at(t) * (TAU * freq_hz * (t - envelope.peak_s) + phase).sin()
    });
}

/// Add `gain[c] × envelope(t) × noise` over [`start_s`, `end_s`) to each
/// channel, the noise drawn from `rng` and band-limited to `band_hz` (high-pass,
/// low-pass), scaled to unit RMS over the interval. `rng` is advanced past the
/// noise's draws now; the layer draws them again from a copy as it renders.
pub fn add_noise_burst(
    layers: &mut Layers,
    gains: &[f64],
    start_s: f64,
    end_s: f64,
    rng: &mut Rng,
    band_hz: (f64, f64),
    envelope: impl Fn(f64) -> f64 + Send + 'static,
) {
    let samples = layers.span(start_s, end_s).len();
    let mut noise = BandNoise::new(rng.clone(), layers.rate(), band_hz.0, band_hz.1);
    let rms = noise.clone().rms_of_next(samples);
    rng.skip_gaussians(samples as u64);
    layers.add(gains, start_s, end_s, move |t| {
        let value = noise.next();
        envelope(t) * if rms > 0.0 { value / rms } else { value }
    });
}

/// Per-channel gains for one event: the strongest channel has gain 1, the others
/// between `weakest` and 1 (the event's stated amplitude is the strongest channel's).
pub fn channel_gains(rng: &mut Rng, channels: usize, weakest: f64) -> Vec<f64> {
    let mut gains: Vec<f64> = (0..channels).map(|_| rng.range(weakest, 1.0)).collect();
    let strongest = gains.iter().cloned().fold(f64::MIN, f64::max);
    gains.iter_mut().for_each(|g| *g /= strongest);
    gains
}

/// Time intervals already taken by events that others must not overlap.
#[derive(Debug, Default, Clone)]
pub struct Occupied(Vec<(f64, f64)>);

impl Occupied {
    pub fn add(&mut self, start_s: f64, end_s: f64) {
        self.0.push((start_s, end_s));
    }

    /// Whether [`start_s`, `end_s`] widened by `margin_s` touches any taken interval.
    pub fn overlaps(&self, start_s: f64, end_s: f64, margin_s: f64) -> bool {
        self.0
            .iter()
            .any(|&(s, e)| start_s - margin_s < e && end_s + margin_s > s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_envelope_is_zero_at_edges_and_one_at_peak() {
        let envelope = BurstEnvelope {
            onset_s: 1.0,
            peak_s: 1.03,
            end_s: 1.1,
        };
        assert_eq!(envelope.at(1.0), 0.0);
        assert_eq!(envelope.at(1.1), 0.0);
        assert!((envelope.at(1.03) - 1.0).abs() < 1e-12);
        assert!(envelope.at(1.02) < 1.0 && envelope.at(1.05) < 1.0);
        assert!(envelope.at(1.0005) < 0.01, "no step at the onset");
        for fraction in [0.1, 0.25, 0.5, 0.9] {
            let w = BurstEnvelope::width_fraction_above(fraction);
            let (start, end) = (1.03 - w * 0.03, 1.03 + w * 0.07);
            assert!(1.0 < start && start < 1.03 && 1.03 < end && end < 1.1);
            assert!((envelope.at(start) - fraction).abs() < 1e-9, "{fraction}");
            assert!((envelope.at(end) - fraction).abs() < 1e-9, "{fraction}");
        }
        assert!((BurstEnvelope::width_fraction_above(0.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn plateau_and_epoch_weight_shapes() {
        let plateau = SmoothPlateau {
            onset_s: 0.0,
            rise_s: 0.1,
            hold_s: 0.2,
            fall_s: 0.3,
        };
        assert_eq!(plateau.at(0.0), 0.0);
        assert!((plateau.at(0.05) - 0.5).abs() < 1e-12);
        assert_eq!(plateau.at(0.2), 1.0);
        assert!((plateau.end_s() - 0.6).abs() < 1e-12);
        assert_eq!(plateau.at(0.6), 0.0);
        assert_eq!(epoch_weight(5.0, 0.0, 10.0, 1.0), 1.0);
        assert!((epoch_weight(0.5, 0.0, 10.0, 1.0) - 0.5).abs() < 1e-12);
        assert_eq!(epoch_weight(10.0, 0.0, 10.0, 1.0), 0.0);
    }

    #[test]
    fn occupied_intervals_respect_margin() {
        let mut taken = Occupied::default();
        taken.add(1.0, 2.0);
        assert!(taken.overlaps(1.5, 1.6, 0.0));
        assert!(!taken.overlaps(2.2, 2.5, 0.1));
        assert!(taken.overlaps(2.05, 2.5, 0.1));
    }
}
