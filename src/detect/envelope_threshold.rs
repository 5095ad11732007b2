//! The generic envelope-threshold detector: per channel a Butterworth
//! band-pass, an RMS envelope and a robust (median/MAD) running baseline of
//! that envelope; the largest per-channel z-score drives one hysteresis state
//! machine, so an event seen on several channels is one detection.

use crate::config::{ConfigError, EnvelopeThresholdConfig};
use crate::detect::DetectorOutput;
use crate::dsp::{butterworth, Band, Envelope, RobustBaseline, SosFilter};
use crate::event::{Detection, EventKind};
use crate::time::{SampleIndex, SampleRate};

/// Points in the baseline window: plenty for a median, and one recompute stays
/// a few microseconds at any rate.
const BASELINE_POINTS: f64 = 500.0;

#[derive(Debug, Clone)]
struct ChannelStages {
    filter: SosFilter,
    envelope: Envelope,
    baseline: RobustBaseline,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Below the end threshold.
    Quiet,
    /// Above the end threshold since `start`; above the start threshold since `above_since`.
    Rising {
        start: SampleIndex,
        above_since: Option<SampleIndex>,
    },
    /// Committed; waiting for the envelope to fall back.
    InEvent { detection: Detection, peak_z: f64 },
}

#[derive(Debug, Clone)]
pub struct EnvelopeThreshold {
    kind: EventKind,
    channels: Vec<ChannelStages>,
    threshold_sd: f64,
    end_threshold_sd: f64,
    min_duration: u64,
    max_duration: u64,
    warmup: u64,
    state: State,
}

impl EnvelopeThreshold {
    pub fn new(
        config: &EnvelopeThresholdConfig,
        rate: SampleRate,
        channels: usize,
    ) -> Result<Self, ConfigError> {
        if config.band_high_hz >= rate.nyquist_hz() {
            return Err(ConfigError::Invalid {
                field: "detector.band_high_hz",
                message: format!(
                    "must be below the Nyquist frequency {} Hz of this {rate} recording, got {}",
                    rate.nyquist_hz(),
                    config.band_high_hz
                ),
            });
        }
        let band = Band::Bandpass {
            low_hz: config.band_low_hz,
            high_hz: config.band_high_hz,
        };
        let sos =
            butterworth(config.filter_order, band, rate).map_err(|e| ConfigError::Invalid {
                field: "detector.band_low_hz",
                message: e.to_string(),
            })?;
        let update_every =
            ((config.baseline_window_s * rate.hz() / BASELINE_POINTS).round() as usize).max(1);
        let stages = ChannelStages {
            filter: SosFilter::new(&sos),
            envelope: Envelope::new(config.envelope_window_ms, rate).map_err(|e| {
                ConfigError::Invalid {
                    field: "detector.envelope_window_ms",
                    message: e.to_string(),
                }
            })?,
            baseline: RobustBaseline::new(config.baseline_window_s, update_every, rate).map_err(
                |e| ConfigError::Invalid {
                    field: "detector.baseline_window_s",
                    message: e.to_string(),
                },
            )?,
        };
        Ok(Self {
            kind: config.event,
            channels: vec![stages; channels],
            threshold_sd: config.threshold_sd,
            end_threshold_sd: config.end_threshold_sd,
            min_duration: rate.samples_in_ms(config.min_duration_ms).max(1),
            max_duration: rate.samples_in_ms(config.max_duration_ms).max(1),
            warmup: rate.samples_in_s(config.warmup_s),
            state: State::Quiet,
        })
    }

    /// Process one frame (one sample per channel) at sample index `n`.
    pub fn process_frame(
        &mut self,
        n: SampleIndex,
        frame: &[f64],
        mut emit: impl FnMut(DetectorOutput),
    ) {
        let mut best_z = f64::NEG_INFINITY;
        let mut best_channel = 0;
        for (channel, (stages, &x)) in self.channels.iter_mut().zip(frame).enumerate() {
            let envelope = stages.envelope.process(stages.filter.process(x));
            stages.baseline.update(envelope);
            let spread = stages.baseline.robust_sd();
            let z = if spread > 0.0 {
                (envelope - stages.baseline.median()) / spread
            } else {
                0.0
            };
            if z > best_z {
                best_z = z;
                best_channel = channel;
            }
        }
        if n < self.warmup || !self.channels.iter().all(|c| c.baseline.is_warm()) {
            return;
        }
        self.step(n, best_z, best_channel, &mut emit);
    }

    fn step(
        &mut self,
        n: SampleIndex,
        z: f64,
        channel: usize,
        emit: &mut impl FnMut(DetectorOutput),
    ) {
        self.state = match self.state {
            State::Quiet | State::Rising { .. } if z <= self.end_threshold_sd => State::Quiet,
            State::Quiet => State::Rising {
                start: n,
                above_since: (z > self.threshold_sd).then_some(n),
            },
            State::Rising { start, above_since } => {
                let above_since = if z > self.threshold_sd {
                    above_since.or(Some(n))
                } else {
                    None
                };
                match above_since {
                    Some(since) if n + 1 - since >= self.min_duration => {
                        let detection = Detection {
                            kind: self.kind,
                            channel,
                            onset: start,
                            end: n + 1,
                            peak: n,
                            detected_at: n,
                            stim_target: None,
                            target_phase_deg: None,
                        };
                        emit(DetectorOutput::Commit(detection));
                        State::InEvent {
                            detection,
                            peak_z: z,
                        }
                    }
                    _ => State::Rising { start, above_since },
                }
            }
            State::InEvent {
                mut detection,
                mut peak_z,
            } => {
                if z > peak_z {
                    peak_z = z;
                    detection.peak = n;
                }
                if z <= self.end_threshold_sd || n + 1 - detection.onset >= self.max_duration {
                    detection.end = n + 1;
                    emit(DetectorOutput::Finish(detection));
                    State::Quiet
                } else {
                    State::InEvent { detection, peak_z }
                }
            }
        };
    }

    /// Close an event still open at the end of the input.
    pub fn finish(&mut self, end: SampleIndex, mut emit: impl FnMut(DetectorOutput)) {
        if let State::InEvent { mut detection, .. } = self.state {
            detection.end = end;
            emit(DetectorOutput::Finish(detection));
        }
        self.state = State::Quiet;
    }
}
