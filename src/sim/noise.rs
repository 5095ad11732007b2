//! Streaming 1/f^alpha ("pink-ish") background noise at any sample rate.
//!
//! White gaussian noise passes through a cascade of first-order shelving
//! sections whose poles are spaced geometrically (three per decade) between a
//! low and a high corner. Between a pole and its zero each section falls at
//! 20 dB/decade; placing the zero `r^(alpha/2)` above the pole (r = pole
//! spacing) gives an average power slope of `-alpha` over the whole range, at a
//! cost of two multiply-adds per section and sample. Below the low corner the
//! spectrum is flat (no drift), above the high corner it is a white floor.

use std::f64::consts::TAU;

use crate::rng::Rng;
use crate::time::SampleRate;

/// Poles per decade: three keeps the slope within about ±0.5 dB of a straight line.
const SECTIONS_PER_DECADE: f64 = 3.0;

/// One matched-z first-order shelf with unity gain at DC.
#[derive(Debug, Clone, Copy)]
struct Shelf {
    pole: f64,
    zero: f64,
    gain: f64,
}

impl Shelf {
    fn new(pole_hz: f64, zero_hz: f64, rate: SampleRate) -> Self {
        let pole = (-TAU * pole_hz / rate.hz()).exp();
        let zero = (-TAU * zero_hz / rate.hz()).exp();
        Self {
            pole,
            zero,
            gain: (1.0 - pole) / (1.0 - zero),
        }
    }

    /// |H(e^{jω})|² at normalised angular frequency `omega`.
    fn power_gain(&self, omega: f64) -> f64 {
        let cos = omega.cos();
        let numerator = 1.0 - 2.0 * self.zero * cos + self.zero * self.zero;
        let denominator = 1.0 - 2.0 * self.pole * cos + self.pole * self.pole;
        self.gain * self.gain * numerator / denominator
    }
}

/// Coefficients of a 1/f^alpha shaping filter for one sample rate.
#[derive(Debug, Clone)]
pub struct ColoredNoiseDesign {
    shelves: Vec<Shelf>,
    rate: SampleRate,
}

impl ColoredNoiseDesign {
    /// Power slope `-alpha` (0..=2) between `corner_low_hz` and `corner_high_hz`;
    /// the high corner is capped at 0.45 × the sample rate.
    pub fn new(alpha: f64, corner_low_hz: f64, corner_high_hz: f64, rate: SampleRate) -> Self {
        let alpha = alpha.clamp(0.0, 2.0);
        let corner_high_hz = corner_high_hz.min(0.45 * rate.hz());
        let spacing = 10f64.powf(1.0 / SECTIONS_PER_DECADE);
        let mut shelves = Vec::new();
        let mut pole_hz = corner_low_hz;
        while pole_hz < corner_high_hz {
            let zero_hz = (pole_hz * spacing.powf(alpha / 2.0)).min(0.49 * rate.hz());
            shelves.push(Shelf::new(pole_hz, zero_hz, rate));
            pole_hz *= spacing;
        }
        Self { shelves, rate }
    }

    /// Power gain |H(f)|² of the shaping filter at `freq_hz`.
    pub fn power_gain(&self, freq_hz: f64) -> f64 {
        let omega = TAU * freq_hz / self.rate.hz();
        self.shelves.iter().map(|s| s.power_gain(omega)).product()
    }

    /// RMS in the band [`low_hz`, `high_hz`] of the output for unit-variance white input
    /// (numerical integral of the one-sided PSD `2 |H(f)|² / rate`).
    pub fn band_rms(&self, low_hz: f64, high_hz: f64) -> f64 {
        const STEPS: usize = 4000;
        let high_hz = high_hz.min(self.rate.nyquist_hz());
        if high_hz <= low_hz {
            return 0.0;
        }
        let step_hz = (high_hz - low_hz) / STEPS as f64;
        let mut integral = 0.0;
        for k in 0..=STEPS {
            let weight = if k == 0 || k == STEPS { 0.5 } else { 1.0 };
            integral += weight * self.power_gain(low_hz + k as f64 * step_hz);
        }
        (integral * step_hz * 2.0 / self.rate.hz()).sqrt()
    }
}

/// Running state of one shaping filter.
#[derive(Debug, Clone)]
pub struct ColoredNoise {
    design: ColoredNoiseDesign,
    /// Per shelf: previous input and previous output.
    state: Vec<(f64, f64)>,
}

impl ColoredNoise {
    pub fn new(design: ColoredNoiseDesign) -> Self {
        let state = vec![(0.0, 0.0); design.shelves.len()];
        Self { design, state }
    }

    /// Shape one white sample.
    #[inline]
    pub fn next(&mut self, white: f64) -> f64 {
        let mut x = white;
        for (shelf, (x_prev, y_prev)) in self.design.shelves.iter().zip(self.state.iter_mut()) {
            let y = shelf.gain * (x - shelf.zero * *x_prev) + shelf.pole * *y_prev;
            *x_prev = x;
            *y_prev = y;
            x = y;
        }
        x
    }
}

/// How to render a multi-channel background.
#[derive(Debug, Clone)]
pub struct BackgroundSpec {
    /// Power-law exponent per channel.
    pub alpha_per_channel: Vec<f64>,
    pub corner_low_hz: f64,
    pub corner_high_hz: f64,
    /// Share of variance common to all channels (0..=1): volume conduction.
    pub shared_fraction: f64,
    /// Reference band and the RMS (µV) each channel should have in it.
    pub reference_band_hz: (f64, f64),
    pub reference_rms_uv_per_channel: Vec<f64>,
}

/// Partly correlated 1/f^alpha noise on several channels, generated block by
/// block: the filters and the random stream carry over from one block to the next.
pub struct BackgroundNoise {
    designs: Vec<ColoredNoiseDesign>,
    white_sd: Vec<f64>,
    filters: Vec<ColoredNoise>,
    shared_weight: f64,
    private_weight: f64,
    rng: Rng,
}

impl BackgroundNoise {
    /// The background of a `samples`-frame recording, drawing its white noise
    /// from `rng`: it keeps a copy of `rng` and advances `rng` past every draw
    /// it will make (one shared and one private gaussian per channel and frame),
    /// so what `rng` draws next does not depend on how the background is rendered.
    pub fn new(spec: &BackgroundSpec, rate: SampleRate, samples: usize, rng: &mut Rng) -> Self {
        let designs: Vec<ColoredNoiseDesign> = spec
            .alpha_per_channel
            .iter()
            .map(|&alpha| {
                ColoredNoiseDesign::new(alpha, spec.corner_low_hz, spec.corner_high_hz, rate)
            })
            .collect();
        let (band_low, band_high) = spec.reference_band_hz;
        let white_sd: Vec<f64> = designs
            .iter()
            .zip(&spec.reference_rms_uv_per_channel)
            .map(|(design, &target)| target / design.band_rms(band_low, band_high))
            .collect();
        let shared_fraction = spec.shared_fraction.clamp(0.0, 1.0);
        let filters = designs.iter().cloned().map(ColoredNoise::new).collect();
        let own_rng = rng.clone();
        rng.skip_gaussians((designs.len() as u64 + 1) * samples as u64);
        Self {
            designs,
            white_sd,
            filters,
            shared_weight: shared_fraction.sqrt(),
            private_weight: (1.0 - shared_fraction).sqrt(),
            rng: own_rng,
        }
    }

    /// Expected RMS (µV) of channel `channel` in the band [`low_hz`, `high_hz`].
    pub fn band_rms_uv(&self, channel: usize, low_hz: f64, high_hz: f64) -> f64 {
        self.white_sd[channel] * self.designs[channel].band_rms(low_hz, high_hz)
    }

    /// Overwrite the first `frames` samples of each channel of `block` (one
    /// `Vec` per channel) with the next `frames` frames of the background.
    pub fn render(&mut self, block: &mut [Vec<f64>], frames: usize) {
        // Frame-major: one shared draw per frame feeds every channel.
        for i in 0..frames {
            let shared = self.rng.gaussian();
            for ((channel, filter), white_sd) in
                block.iter_mut().zip(&mut self.filters).zip(&self.white_sd)
            {
                let white = self.shared_weight * shared + self.private_weight * self.rng.gaussian();
                channel[i] = white_sd * filter.next(white);
            }
        }
    }
}

/// Keeps a steady tone only if it is comfortably below Nyquist, so that nothing
/// the simulator synthesises analytically can alias (e.g. beta or mains at 50 Hz).
pub fn representable(freq_hz: f64, rate: SampleRate) -> bool {
    freq_hz > 0.0 && freq_hz < 0.45 * rate.hz()
}

/// A one-pole high-pass used to shape muscle (EMG) noise.
#[derive(Debug, Clone, Copy)]
pub struct OnePoleHighPass {
    coefficient: f64,
    x_prev: f64,
    y_prev: f64,
}

impl OnePoleHighPass {
    pub fn new(cutoff_hz: f64, rate: SampleRate) -> Self {
        let rc = 1.0 / (TAU * cutoff_hz);
        let dt = 1.0 / rate.hz();
        Self {
            coefficient: rc / (rc + dt),
            x_prev: 0.0,
            y_prev: 0.0,
        }
    }

    #[inline]
    pub fn next(&mut self, x: f64) -> f64 {
        let y = self.coefficient * (self.y_prev + x - self.x_prev);
        self.x_prev = x;
        self.y_prev = y;
        y
    }
}

/// A one-pole low-pass used to band-limit muscle (EMG) noise.
#[derive(Debug, Clone, Copy)]
pub struct OnePoleLowPass {
    coefficient: f64,
    y_prev: f64,
}

impl OnePoleLowPass {
    pub fn new(cutoff_hz: f64, rate: SampleRate) -> Self {
        Self {
            coefficient: 1.0 - (-TAU * cutoff_hz / rate.hz()).exp(),
            y_prev: 0.0,
        }
    }

    #[inline]
    pub fn next(&mut self, x: f64) -> f64 {
        self.y_prev += self.coefficient * (x - self.y_prev);
        self.y_prev
    }
}

/// White noise band-limited by one-pole filters to roughly [`high_pass_hz`,
/// `low_pass_hz`] (low-pass capped below Nyquist), drawn sample by sample.
/// Muscle and movement artifacts are built from it.
#[derive(Debug, Clone)]
pub struct BandNoise {
    rng: Rng,
    high_pass: OnePoleHighPass,
    low_pass: OnePoleLowPass,
}

impl BandNoise {
    pub fn new(rng: Rng, rate: SampleRate, high_pass_hz: f64, low_pass_hz: f64) -> Self {
        Self {
            rng,
            high_pass: OnePoleHighPass::new(high_pass_hz, rate),
            low_pass: OnePoleLowPass::new(low_pass_hz.min(0.45 * rate.hz()), rate),
        }
    }

    #[inline]
    pub fn next(&mut self) -> f64 {
        self.low_pass.next(self.high_pass.next(self.rng.gaussian()))
    }

    /// RMS of the next `samples` values (drawn and discarded).
    pub fn rms_of_next(&mut self, samples: usize) -> f64 {
        let sum_of_squares: f64 = (0..samples)
            .map(|_| {
                let value = self.next();
                value * value
            })
            .sum();
        (sum_of_squares / samples.max(1) as f64).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Averaged periodogram (Hann window, no overlap): one-sided PSD per bin.
    fn welch_psd(x: &[f64], segment: usize) -> Vec<f64> {
        use rustfft::{num_complex::Complex, FftPlanner};
        let fft = FftPlanner::new().plan_fft_forward(segment);
        let window: Vec<f64> = (0..segment)
            .map(|i| 0.5 - 0.5 * (TAU * i as f64 / segment as f64).cos())
            .collect();
        let mut psd = vec![0.0; segment / 2];
        let mut count = 0;
        for chunk in x.chunks_exact(segment) {
            let mut buf: Vec<Complex<f64>> = chunk
                .iter()
                .zip(&window)
                .map(|(v, w)| Complex::new(v * w, 0.0))
                .collect();
            fft.process(&mut buf);
            for (p, b) in psd.iter_mut().zip(&buf) {
                *p += b.norm_sqr();
            }
            count += 1;
        }
        psd.iter_mut().for_each(|p| *p /= count as f64);
        psd
    }

    fn log_log_slope(psd: &[f64], bin_hz: f64, low_hz: f64, high_hz: f64) -> f64 {
        let points: Vec<(f64, f64)> = psd
            .iter()
            .enumerate()
            .map(|(k, &p)| (k as f64 * bin_hz, p))
            .filter(|&(f, _)| f >= low_hz && f <= high_hz)
            .map(|(f, p)| (f.ln(), p.ln()))
            .collect();
        let n = points.len() as f64;
        let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
        let cov: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
        let var: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
        cov / var
    }

    /// `samples` frames of `spec`'s background in one block, and the generator.
    fn render_whole(
        spec: &BackgroundSpec,
        rate: SampleRate,
        samples: usize,
        rng: &mut Rng,
    ) -> (BackgroundNoise, Vec<Vec<f64>>) {
        let mut background = BackgroundNoise::new(spec, rate, samples, rng);
        let mut channels = vec![vec![0.0; samples]; spec.alpha_per_channel.len()];
        background.render(&mut channels, samples);
        (background, channels)
    }

    #[test]
    fn rendered_noise_has_the_designed_slope_and_level() {
        let rate = SampleRate::new(2000.0).unwrap();
        for alpha in [1.0, 1.5, 2.0] {
            let spec = BackgroundSpec {
                alpha_per_channel: vec![alpha],
                corner_low_hz: 0.5,
                corner_high_hz: 5000.0,
                shared_fraction: 0.0,
                reference_band_hz: (1.0, 100.0),
                reference_rms_uv_per_channel: vec![100.0],
            };
            let mut rng = Rng::new(3);
            let (background, channels) = render_whole(&spec, rate, 400_000, &mut rng);
            let segment = 4096;
            let psd = welch_psd(&channels[0], segment);
            let slope = log_log_slope(&psd, rate.hz() / segment as f64, 5.0, 500.0);
            assert!((slope + alpha).abs() < 0.15, "alpha {alpha}: slope {slope}");
            // Level: the measured total RMS matches the design's full-band RMS.
            let x = &channels[0];
            let rms = (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt();
            let expected = background.band_rms_uv(0, 0.0, rate.nyquist_hz());
            assert!(
                (rms / expected - 1.0).abs() < 0.15,
                "alpha {alpha}: rms {rms} vs {expected}"
            );
        }
    }

    #[test]
    fn shared_fraction_sets_channel_correlation() {
        let rate = SampleRate::new(1000.0).unwrap();
        let spec = BackgroundSpec {
            alpha_per_channel: vec![1.5, 1.5],
            corner_low_hz: 0.5,
            corner_high_hz: 5000.0,
            shared_fraction: 0.6,
            reference_band_hz: (1.0, 100.0),
            reference_rms_uv_per_channel: vec![100.0, 100.0],
        };
        let (_, channels) = render_whole(&spec, rate, 200_000, &mut Rng::new(9));
        let (a, b) = (&channels[0], &channels[1]);
        let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f64>();
        let correlation = dot(a, b) / (dot(a, a) * dot(b, b)).sqrt();
        assert!((correlation - 0.6).abs() < 0.1, "correlation {correlation}");
    }

    #[test]
    fn high_pass_blocks_dc() {
        let rate = SampleRate::new(250.0).unwrap();
        let mut hp = OnePoleHighPass::new(20.0, rate);
        let last = (0..1000).map(|_| hp.next(1.0)).last().unwrap_or(1.0);
        assert!(last.abs() < 1e-6);
    }
}
