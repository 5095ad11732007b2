//! Synthetic EEG/LFP with ground truth, deterministic from a seed.
//!
//! [`SimStream`] schedules a [`Preset`]'s recording at any sample rate the
//! preset supports, holds the list of true events ([`TruthEvent`]) and renders
//! the signals (µV) block by block, with memory independent of the length;
//! [`simulate`] collects a whole [`Recording`] from it.
//! Pure code: no file system, threads or clocks; the caller writes files.
//!
//! Determinism: all randomness comes from [`crate::rng::Rng`] (xoshiro256**), split
//! into independent streams. The event schedule (and thus the truth table)
//! comes from its own stream and does not depend on the sample rate; noise is
//! drawn from another stream. Same [`SimSpec`] → bit-identical output, whatever
//! the block size (see [`layers`] for how).
//!
//! Conventions of the truth table: `channel` is `all` (every event is on every
//! channel with a per-channel gain; the strongest channel has gain 1 and the
//! stated `amplitude_uv` is that channel's). `amplitude_uv` is zero-to-peak of
//! the envelope unless the parameter is named `ptp_uv`. Events with a flat
//! envelope (epochs, mains, clipping, sleep stages) have `peak_s` at their midpoint.

pub mod layers;
mod noise;
mod rodent;
mod sleep;
pub mod truth;
mod waves;

use std::fmt;

use crate::recording::{Recording, Signal};
use crate::time::SampleRate;
use layers::{LayerRenderer, Layers};
use noise::BackgroundNoise;
pub use truth::{truth_to_tsv, TruthEvent};

/// The longest simulation accepted (48 h).
pub const MAX_DURATION_S: f64 = 48.0 * 3600.0;
/// Most channels accepted.
pub const MAX_CHANNELS: usize = 256;
/// Most samples (all channels together) [`simulate`] holds in memory: 2^29 f64
/// = 4 GiB. [`SimStream`] has no such limit.
pub const MAX_TOTAL_SAMPLES: u64 = 1 << 29;
/// Unit of every simulated signal.
pub const UNIT: &str = "uV";
/// Largest event SNR scale accepted.
pub const MAX_EVENT_SNR: f64 = 100.0;

/// What kind of recording to simulate (named `rodent-ripple` and `sleep` on
/// the command line and in configs).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Rodent hippocampal CA1 LFP: theta/immobility epochs, sharp-wave ripples,
    /// and (with artifacts) EMG, fast-gamma, mains and clipping distractors.
    RodentRipple,
    /// Human sleep EEG: hypnogram of 30-s epochs with spindles, K-complexes,
    /// slow oscillations, REM sawtooth waves and eye movements.
    Sleep,
}

impl Preset {
    /// The preset's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::RodentRipple => "rodent-ripple",
            Preset::Sleep => "sleep",
        }
    }

    /// Lowest sample rate (Hz) at which the preset's events are representable.
    pub fn min_rate_hz(self) -> f64 {
        match self {
            Preset::RodentRipple => 1000.0,
            Preset::Sleep => 50.0,
        }
    }

    /// Default sample rate (Hz): a common LFP rate, a common EEG amplifier rate.
    pub fn default_rate_hz(self) -> f64 {
        match self {
            Preset::RodentRipple => 1250.0,
            Preset::Sleep => 250.0,
        }
    }

    /// Default channel count.
    pub fn default_channels(self) -> usize {
        match self {
            Preset::RodentRipple => 4,
            Preset::Sleep => 2,
        }
    }

    /// Label of channel `index`: `CA1-0`.. for rodent; `C3-A2`, `Cz-A1`, then `EEG-2`.. for sleep.
    pub fn channel_label(self, index: usize) -> String {
        match (self, index) {
            (Preset::RodentRipple, i) => format!("CA1-{i}"),
            (Preset::Sleep, 0) => "C3-A2".to_string(),
            (Preset::Sleep, 1) => "Cz-A1".to_string(),
            (Preset::Sleep, i) => format!("EEG-{i}"),
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that determines a simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSpec {
    pub preset: Preset,
    pub duration_s: f64,
    pub seed: u64,
    pub rate: SampleRate,
    /// Number of channels (preset default via [`SimSpec::new`]).
    pub channels: usize,
    /// Add distractors and artifacts (EMG, fast gamma, mains, clipping; eye and movement).
    pub artifacts: bool,
    /// Scales ripple and spindle amplitudes (not sharp waves); 1.0 = realistic default.
    pub event_snr: f64,
}

impl SimSpec {
    /// A spec with the preset's default channels, artifacts on and `event_snr` 1.0.
    pub fn new(preset: Preset, duration_s: f64, seed: u64, rate: SampleRate) -> Self {
        Self {
            preset,
            duration_s,
            seed,
            rate,
            channels: preset.default_channels(),
            artifacts: true,
            event_snr: 1.0,
        }
    }

    /// Check the spec and return the number of samples per channel.
    fn validate(&self) -> Result<usize, SimError> {
        if self.rate.hz() < self.preset.min_rate_hz() {
            return Err(SimError::RateTooLow {
                preset: self.preset,
                rate: self.rate,
                min_hz: self.preset.min_rate_hz(),
            });
        }
        if !(self.duration_s.is_finite()
            && self.duration_s > 0.0
            && self.duration_s <= MAX_DURATION_S)
        {
            return Err(SimError::BadDuration(self.duration_s));
        }
        if self.channels == 0 || self.channels > MAX_CHANNELS {
            return Err(SimError::BadChannelCount(self.channels));
        }
        if !(self.event_snr.is_finite() && (0.0..=MAX_EVENT_SNR).contains(&self.event_snr)) {
            return Err(SimError::BadEventSnr(self.event_snr));
        }
        let samples = self.rate.samples_in_s(self.duration_s).max(1);
        usize::try_from(samples).map_err(|_| SimError::TooLarge {
            channels: self.channels,
            samples,
        })
    }
}

/// A rendered recording with its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    pub recording: Recording,
    /// True events sorted by onset.
    pub truth: Vec<TruthEvent>,
}

/// Why a simulation could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error(
        "sample rate {rate} is too low for the {preset} preset: it needs at least {min_hz} Hz"
    )]
    RateTooLow {
        preset: Preset,
        rate: SampleRate,
        min_hz: f64,
    },
    #[error("duration_s must be a finite number of seconds greater than 0 and at most {MAX_DURATION_S}, got {0}")]
    BadDuration(f64),
    #[error("channels must be between 1 and {MAX_CHANNELS}, got {0}")]
    BadChannelCount(usize),
    #[error("event_snr must be a finite number between 0 and {MAX_EVENT_SNR}, got {0}")]
    BadEventSnr(f64),
    #[error("simulation too large: {channels} channel(s) x {samples} samples exceeds {MAX_TOTAL_SAMPLES} samples; shorten duration_s or lower the rate")]
    TooLarge { channels: usize, samples: u64 },
}

/// What a preset schedules before rendering: the background, the layers on
/// it, and the truth (in scheduling order).
struct Plan {
    background: BackgroundNoise,
    layers: Layers,
    truth: Vec<TruthEvent>,
}

/// A simulation rendered block by block. Its memory is the schedule (a few
/// hundred bytes per true event) and the caller's block, whatever the length.
pub struct SimStream {
    spec: SimSpec,
    truth: Vec<TruthEvent>,
    background: BackgroundNoise,
    layers: LayerRenderer,
    samples: usize,
    next_sample: usize,
}

impl SimStream {
    /// Check the spec and schedule the whole recording (the truth is known
    /// from here on; no sample is rendered yet).
    pub fn new(spec: &SimSpec) -> Result<Self, SimError> {
        let samples = spec.validate()?;
        let Plan {
            background,
            layers,
            mut truth,
        } = match spec.preset {
            Preset::RodentRipple => rodent::plan(spec, samples),
            Preset::Sleep => sleep::plan(spec, samples),
        };
        truth.sort_by(|a, b| a.onset_s.total_cmp(&b.onset_s));
        Ok(Self {
            spec: spec.clone(),
            truth,
            background,
            layers: LayerRenderer::new(layers),
            samples,
            next_sample: 0,
        })
    }

    /// True events sorted by onset.
    pub fn truth(&self) -> &[TruthEvent] {
        &self.truth
    }

    /// Samples per channel of the whole recording.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// The channels' labels, in order.
    pub fn labels(&self) -> Vec<String> {
        (0..self.spec.channels)
            .map(|index| self.spec.preset.channel_label(index))
            .collect()
    }

    /// Render the next `max_frames` frames (fewer at the end) into `block`,
    /// one `Vec` per channel, replacing its contents. Returns the number of
    /// frames rendered: 0 once the whole recording has been.
    pub fn render_next(&mut self, max_frames: usize, block: &mut Vec<Vec<f64>>) -> usize {
        let frames = max_frames.min(self.samples - self.next_sample);
        block.resize_with(self.spec.channels, Vec::new);
        for channel in block.iter_mut() {
            channel.clear();
            channel.resize(frames, 0.0);
        }
        self.background.render(block, frames);
        self.layers.render(block, self.next_sample, frames);
        self.next_sample += frames;
        frames
    }
}

/// Render the recording and truth a spec describes, all in memory.
pub fn simulate(spec: &SimSpec) -> Result<Simulation, SimError> {
    let samples = spec.validate()?;
    if (samples as u64).saturating_mul(spec.channels as u64) > MAX_TOTAL_SAMPLES {
        return Err(SimError::TooLarge {
            channels: spec.channels,
            samples: samples as u64,
        });
    }
    let mut stream = SimStream::new(spec)?;
    /// Frames rendered at a time, then appended to the whole channels.
    const BLOCK_FRAMES: usize = 1 << 16;
    let mut channels = vec![Vec::with_capacity(samples); spec.channels];
    let mut block = Vec::new();
    while stream.render_next(BLOCK_FRAMES, &mut block) > 0 {
        for (channel, rendered) in channels.iter_mut().zip(&block) {
            channel.extend_from_slice(rendered);
        }
    }
    let signals = channels
        .into_iter()
        .zip(stream.labels())
        .map(|(samples, label)| Signal {
            label,
            unit: UNIT.to_string(),
            rate: spec.rate,
            samples,
        })
        .collect();
    Ok(Simulation {
        recording: Recording {
            signals,
            annotations: Vec::new(),
        },
        truth: stream.truth,
    })
}

/// Random streams: fixed ids so adding a stream never shifts another.
const STREAM_SCHEDULE: u64 = 1;
const STREAM_NOISE: u64 = 2;

/// A truth row on all channels.
fn event_on_all(
    trial_type: &str,
    onset_s: f64,
    duration_s: f64,
    peak_s: f64,
    parameters: &[(&str, f64)],
) -> TruthEvent {
    TruthEvent {
        onset_s,
        duration_s,
        peak_s,
        trial_type: trial_type.to_string(),
        channel: "all".to_string(),
        parameters: parameters
            .iter()
            .map(|&(key, value)| (key.to_string(), value))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(hz: f64) -> SampleRate {
        SampleRate::new(hz).unwrap()
    }

    #[test]
    fn rejects_bad_specs_with_messages_naming_the_field() {
        let rodent = SimSpec::new(Preset::RodentRipple, 10.0, 1, rate(500.0));
        let error = simulate(&rodent).unwrap_err();
        assert!(matches!(error, SimError::RateTooLow { .. }));
        assert!(error.to_string().contains("rodent-ripple") && error.to_string().contains("1000"));
        let sleep = SimSpec::new(Preset::Sleep, 10.0, 1, rate(40.0));
        assert!(matches!(simulate(&sleep), Err(SimError::RateTooLow { .. })));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e9] {
            let spec = SimSpec {
                duration_s: bad,
                ..SimSpec::new(Preset::Sleep, 1.0, 1, rate(100.0))
            };
            let error = simulate(&spec).unwrap_err();
            assert!(error.to_string().contains("duration_s"), "{error}");
        }
        let spec = SimSpec {
            channels: 0,
            ..SimSpec::new(Preset::Sleep, 1.0, 1, rate(100.0))
        };
        assert!(simulate(&spec)
            .unwrap_err()
            .to_string()
            .contains("channels"));
        let spec = SimSpec {
            event_snr: f64::NAN,
            ..SimSpec::new(Preset::Sleep, 1.0, 1, rate(100.0))
        };
        assert!(simulate(&spec)
            .unwrap_err()
            .to_string()
            .contains("event_snr"));
        let spec = SimSpec::new(Preset::RodentRipple, 40_000.0, 1, rate(30_000.0));
        assert!(matches!(simulate(&spec), Err(SimError::TooLarge { .. })));
    }

    #[test]
    fn presets_label_channels() {
        let sim = simulate(&SimSpec::new(Preset::Sleep, 5.0, 3, rate(100.0))).unwrap();
        assert_eq!(sim.recording.labels(), vec!["C3-A2", "Cz-A1"]);
        assert_eq!(sim.recording.signals[0].samples.len(), 500);
        let sim = simulate(&SimSpec::new(Preset::RodentRipple, 2.0, 3, rate(1250.0))).unwrap();
        assert_eq!(
            sim.recording.labels(),
            vec!["CA1-0", "CA1-1", "CA1-2", "CA1-3"]
        );
        assert_eq!(sim.recording.signals[3].unit, "uV");
    }
}
