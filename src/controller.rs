//! The controller owns the processing stages of one session and is the single
//! hot entry point: `process_block` runs the detector over a block of frames and
//! passes accepted detections through the trigger policy. It reads no clock,
//! does no I/O and does not allocate: everything is sized when it is built.

use crate::config::pipeline::{ConfigError, DetectorConfig, PipelineConfig};
use crate::detect::latency_probe::LatencyProbe;
use crate::detect::ripple::Ripple;
use crate::detect::slow_oscillation::SlowOscillationDetector;
use crate::detect::spindle::SpindleDetector;
use crate::detect::{DetectorOutput, Probe};
use crate::display::DisplayProbe;
use crate::event::{Event, Outbox};
use crate::time::{SampleIndex, SampleRate, MAX_CHANNEL_SAMPLES_PER_S, MAX_RATE_HZ};
use crate::trigger::{TriggerCounters, TriggerPolicy};

/// A block of interleaved frames (`channels` samples per frame) starting at sample `start`.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    pub start: SampleIndex,
    pub channels: usize,
    pub samples: &'a [f64],
}

impl Block<'_> {
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels.max(1)
    }
}

/// Input the controller refuses to process. Every fault disarms the session.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Fault {
    #[error("non-finite sample (NaN or infinity) on channel {channel} at sample {sample}")]
    NonFinite { channel: usize, sample: SampleIndex },
    #[error("block has {got} channels, the session has {expected}")]
    ChannelCount { expected: usize, got: usize },
    #[error("block of {len} samples is not a whole number of {channels}-channel frames")]
    PartialFrame { len: usize, channels: usize },
    #[error("block starts at sample {got}, before the next expected sample {expected}")]
    OutOfOrder {
        expected: SampleIndex,
        got: SampleIndex,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ControllerCounters {
    pub blocks: u64,
    pub frames: u64,
    /// Frames the source skipped (a block started after the expected sample).
    pub dropped_frames: u64,
    /// Events that did not fit the outbox of their block.
    pub outbox_overflow: u64,
}

#[derive(Debug, Clone)]
enum ActiveDetector {
    Ripple(Box<Ripple>),
    Spindle(SpindleDetector),
    /// Boxed: its filters, gate and estimators make it far larger than the others.
    SlowOscillation(Box<SlowOscillationDetector>),
    LatencyProbe(LatencyProbe),
}

#[derive(Debug, Clone)]
pub struct Controller {
    channels: usize,
    detector: ActiveDetector,
    policy: TriggerPolicy,
    /// The last frame outside post-stimulus blanking; detectors see it held
    /// while a delivered pulse's blanking interval lasts.
    held: Vec<f64>,
    next: SampleIndex,
    counters: ControllerCounters,
    adjustments: Vec<String>,
    /// Display bins for a live monitor, when one watches.
    display: Option<DisplayProbe>,
}

impl Controller {
    pub fn new(
        config: &impl PipelineConfig,
        rate: SampleRate,
        channels: usize,
    ) -> Result<Self, ConfigError> {
        let mut notes = Vec::new();
        if channels == 0 {
            return Err(ConfigError::Invalid {
                field: "input.channels",
                message: "selects no channel".into(),
            });
        }
        // Detector windows are sized by the rate: refuse before allocating them.
        if rate.hz() > MAX_RATE_HZ {
            let kind = match config.detector() {
                DetectorConfig::Ripple(_) => "ripple",
                DetectorConfig::Spindle(_) => "spindle",
                DetectorConfig::SlowOscillation(_) => "slow-oscillation",
                DetectorConfig::LatencyProbe(_) => "latency-probe",
            };
            return Err(ConfigError::Invalid {
                field: "detector.kind",
                message: format!(
                    "the {kind} detector supports sample rates up to {MAX_RATE_HZ} Hz, got {rate}"
                ),
            });
        }
        if rate.hz() * channels as f64 > MAX_CHANNEL_SAMPLES_PER_S {
            return Err(ConfigError::Invalid {
                field: "input.channels",
                message: format!(
                    "{channels} channels at {rate} are more than the {MAX_CHANNEL_SAMPLES_PER_S} channel-samples a second a session processes"
                ),
            });
        }
        let detector = match config.detector() {
            DetectorConfig::Ripple(c) => {
                ActiveDetector::Ripple(Box::new(Ripple::new(c, rate, channels)?))
            }
            DetectorConfig::Spindle(c) => {
                ActiveDetector::Spindle(SpindleDetector::new(c, rate, channels, &mut notes)?)
            }
            DetectorConfig::SlowOscillation(c) => ActiveDetector::SlowOscillation(Box::new(
                SlowOscillationDetector::new(c, rate, channels, &mut notes)?,
            )),
            DetectorConfig::LatencyProbe(c) => {
                ActiveDetector::LatencyProbe(LatencyProbe::new(c, rate, channels)?)
            }
        };
        Ok(Self {
            channels,
            detector,
            policy: TriggerPolicy::new(config.trigger(), rate),
            held: vec![0.0; channels],
            next: 0,
            counters: ControllerCounters::default(),
            adjustments: notes,
            display: None,
        })
    }

    /// Settings the detector could not apply as configured at this rate,
    /// and what it used instead (in `summary.json` as `adjustments`).
    pub fn adjustments(&self) -> &[String] {
        &self.adjustments
    }

    /// The sample index the next block is expected to start at.
    pub fn next_sample(&self) -> SampleIndex {
        self.next
    }

    pub fn counters(&self) -> ControllerCounters {
        self.counters
    }

    pub fn trigger_counters(&self) -> TriggerCounters {
        self.policy.counters()
    }

    /// Fold every frame into display bins from now on (a live monitor).
    pub fn enable_display(&mut self, mut display: DisplayProbe) {
        display.channel = self.display_channel();
        self.display = Some(display);
    }

    /// The display bins, if enabled: take the finished ones after each block.
    pub fn display(&mut self) -> Option<&mut DisplayProbe> {
        self.display.as_mut()
    }

    /// The session channel the monitor draws as the raw signal: one the
    /// detector detects on (not a ripple veto reference or speed input).
    pub fn display_channel(&self) -> usize {
        match &self.detector {
            ActiveDetector::Ripple(d) => d.first_detection_channel(),
            ActiveDetector::LatencyProbe(d) => d.channel(),
            ActiveDetector::Spindle(_) | ActiveDetector::SlowOscillation(_) => 0,
        }
    }

    /// What the detector's envelope and threshold are measured in.
    pub fn display_units(&self) -> &'static str {
        match self.detector {
            ActiveDetector::Ripple(_) => "z of the best ripple band",
            ActiveDetector::Spindle(_) => "z of relative sigma power",
            ActiveDetector::SlowOscillation(_) => "µV (trough threshold)",
            ActiveDetector::LatencyProbe(_) => "µV",
        }
    }

    /// Allow stimulus onsets only inside these `[start, end)` sample intervals
    /// (e.g. from a hypnogram), before the first block.
    pub fn restrict_stimulation_to(&mut self, intervals: Vec<(SampleIndex, SampleIndex)>) {
        self.policy.restrict_to(intervals);
    }

    /// Process one block; events go to `outbox` (which the caller clears).
    /// Deadline: must finish well within the block's own duration (1 ms blocks
    /// at 30 kHz × 64 channels is the design point). On a fault nothing of the
    /// offending frame is processed and the caller must disarm.
    pub fn process_block(&mut self, block: &Block, outbox: &mut Outbox) -> Result<(), Fault> {
        if block.channels != self.channels {
            return Err(Fault::ChannelCount {
                expected: self.channels,
                got: block.channels,
            });
        }
        if block.samples.len() % self.channels != 0 {
            return Err(Fault::PartialFrame {
                len: block.samples.len(),
                channels: self.channels,
            });
        }
        if block.start < self.next {
            return Err(Fault::OutOfOrder {
                expected: self.next,
                got: block.start,
            });
        }
        self.counters.dropped_frames += block.start - self.next;
        self.counters.blocks += 1;
        let overflow_before = outbox.overflowed;
        let Self {
            detector,
            policy,
            held,
            display,
            ..
        } = self;
        let mut result = Ok(());
        let mut n = block.start;
        for frame in block.samples.chunks_exact(block.channels) {
            if let Some(channel) = frame.iter().position(|x| !x.is_finite()) {
                result = Err(Fault::NonFinite { channel, sample: n });
                break;
            }
            if !policy.blanks(n) {
                held.copy_from_slice(frame);
            }
            let emit = |output| route(output, policy, outbox);
            match detector {
                ActiveDetector::Ripple(d) => d.process_frame(n, held, emit),
                ActiveDetector::Spindle(d) => d.process_frame(n, held, emit),
                ActiveDetector::SlowOscillation(d) => d.process_frame(n, held, emit),
                ActiveDetector::LatencyProbe(d) => d.process_frame(n, held, emit),
            }
            if let Some(display) = display {
                display.add(n, frame[display.channel], detector.probe());
            }
            n += 1;
        }
        // On a fault, the frames before it were processed and count.
        self.counters.frames += n - block.start;
        self.counters.outbox_overflow += outbox.overflowed - overflow_before;
        self.next = n;
        result
    }

    /// End of input: close any open event.
    pub fn finish(&mut self, outbox: &mut Outbox) {
        let end = self.next;
        let Self {
            detector, policy, ..
        } = self;
        let emit = |output| route(output, policy, outbox);
        match detector {
            ActiveDetector::Ripple(d) => d.finish(end, emit),
            ActiveDetector::Spindle(d) => d.finish(end, emit),
            ActiveDetector::SlowOscillation(d) => d.finish(end, emit),
            ActiveDetector::LatencyProbe(d) => d.finish(end, emit),
        }
    }
}

impl ActiveDetector {
    fn probe(&self) -> Probe {
        match self {
            ActiveDetector::Ripple(d) => d.probe(),
            ActiveDetector::Spindle(d) => d.probe(),
            ActiveDetector::SlowOscillation(d) => d.probe(),
            ActiveDetector::LatencyProbe(d) => d.probe(),
        }
    }
}

fn route(output: DetectorOutput, policy: &mut TriggerPolicy, outbox: &mut Outbox) {
    match output {
        DetectorOutput::Commit(detection) => {
            if let Some(decision) = policy.decide(&detection) {
                outbox.push(Event::Trigger(decision));
            }
            if let Some(second) = policy.take_follow_up() {
                outbox.push(Event::Trigger(second));
            }
        }
        DetectorOutput::Finish(detection) => outbox.push(Event::Detection(detection)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;

    /// A non-finite sample stops the block there: the frames before it are
    /// processed and counted, the next block is expected at the faulty frame.
    #[test]
    fn a_fault_counts_the_frames_processed_before_it() {
        let rate = SampleRate::new(250.0).unwrap();
        let mut controller = Controller::new(&Preset::SleepSpindle.config(), rate, 2).unwrap();
        let mut outbox = Outbox::with_capacity(16);
        let samples = [1.0, 2.0, 3.0, 4.0, 5.0, f64::NAN, 7.0, 8.0];
        let block = Block {
            start: 10,
            channels: 2,
            samples: &samples,
        };
        let fault = controller.process_block(&block, &mut outbox).unwrap_err();
        assert_eq!(
            fault,
            Fault::NonFinite {
                channel: 1,
                sample: 12
            }
        );
        let counters = controller.counters();
        assert_eq!((counters.blocks, counters.frames), (1, 2));
        assert_eq!(counters.dropped_frames, 10);
        assert_eq!(controller.next_sample(), 12);
    }

    /// The monitor's raw trace is a channel the ripple detector detects on,
    /// not the veto reference placed first.
    #[test]
    fn the_display_channel_is_a_detection_channel() {
        let rate = SampleRate::new(1250.0).unwrap();
        let mut config = Preset::RodentRipple.config();
        assert_eq!(
            Controller::new(&config, rate, 3).unwrap().display_channel(),
            0
        );
        let crate::config::DetectorConfig::Ripple(ripple) = &mut config.detector else {
            panic!("the ripple preset has a ripple detector");
        };
        ripple.veto.enabled = true;
        ripple.veto.channel = Some(0);
        assert_eq!(
            Controller::new(&config, rate, 3).unwrap().display_channel(),
            1
        );
    }
}
