//! Devices a live session reads from or writes to, one file (or folder) each
//! holding the protocol, the adapter and the config section, with an
//! emulator beside the device it emulates. This module holds the two roles
//! and what they share:
//!
//! - a **source** ([`Source`], opened as [`Opened`]) pushes frames into a
//!   [`FrameSink`], the acquisition ring the processing thread reads (from
//!   the acquisition thread, or, for the audio input, from the device's
//!   capture callback);
//! - a **trigger output** ([`TriggerOutput`]) takes scheduled
//!   [`TriggerCommand`]s on its own thread and can be disarmed.
//!
//! Adding a device: see "Adding a device" in `docs/architecture.md`.

pub mod audio;
pub mod audio_click;
pub mod audio_in;
pub mod clock_sync;
pub mod cyton;
pub mod file;
pub mod lsl;
pub mod pty;
pub mod pulsepal;
pub mod trigger_box;

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::pipeline::ConfigError;
use crate::event::TriggerDecision;
use crate::time::{SampleIndex, SampleRate};

/// A device failed in a way the session cannot carry on from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeviceError {
    #[error("{device}: cannot open {port}: {message}")]
    Open {
        device: &'static str,
        port: String,
        message: String,
    },
    #[error("{device}: disconnected ({message})")]
    Disconnected {
        device: &'static str,
        message: String,
    },
    #[error("{device}: no data for {ms} ms (stalled)")]
    Stalled { device: &'static str, ms: u64 },
    #[error("{device}: {message}")]
    Protocol {
        device: &'static str,
        message: String,
    },
}

/// Why a configured device could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Audio(#[from] audio::AudioError),
    #[error(transparent)]
    Lsl(#[from] lsl::LslError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Where a source puts frames; implemented by the runtime's acquisition ring.
pub trait FrameSink {
    /// Push interleaved frames starting at sample `start`, which arrived at
    /// `arrived`. Must not block, allocate or lock (the audio source calls
    /// it from the device's callback). Returns how many of the frames were
    /// dropped because the ring was full (the sink counts them too).
    fn push(&mut self, start: SampleIndex, samples: &[f64], arrived: Instant) -> usize;
}

/// Where a live session's samples come from: one arm per source device.
pub enum Source {
    Recording(file::RecordingSource),
    Cyton(cyton::CytonSource),
    Audio(audio_in::AudioSource),
    Lsl(lsl::LslSource),
}

impl Source {
    /// Push frames into `out` until the source ends, fails or `stop` is set
    /// (runs on the acquisition thread; the audio source hands `out` to its
    /// device callback and only watches). `out` is dropped before this
    /// returns, so nothing is pushed after.
    pub fn run(
        self,
        mut out: Box<dyn FrameSink + Send>,
        stop: &AtomicBool,
    ) -> Result<(), DeviceError> {
        match self {
            Source::Recording(r) => {
                r.run(&mut *out, stop);
                Ok(())
            }
            Source::Cyton(mut c) => c.run(&mut *out, stop),
            Source::Audio(a) => a.run(out, stop),
            Source::Lsl(mut l) => l.run(&mut *out, stop),
        }
    }
}

/// What the processing side needs to know about a source before it starts.
pub struct Opened {
    pub source: Source,
    pub rate: SampleRate,
    pub labels: Vec<String>,
    pub description: String,
    /// Largest chunk (frames) the source pushes at once.
    pub max_chunk_frames: usize,
    /// Each channel's range (±µV): the recording's scale.
    pub full_scale_uv: Vec<f64>,
}

/// Where `neuroloop run` reads samples from: one arm per source device.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceConfig {
    /// The built-in simulator (the `[simulator]` section), paced in real time.
    #[default]
    Simulator,
    /// An OpenBCI Cyton (8 channels at 250 Hz) or Cyton + Daisy (16 at 125 Hz).
    Openbci(cyton::OpenBciConfig),
    /// A sound card's input channels (an amplifier's analog outputs wired to it).
    Audio(audio_in::AudioSourceConfig),
    /// A Lab Streaming Layer stream (`device/lsl/`).
    Lsl(lsl::LslSourceConfig),
}

impl SourceConfig {
    /// Open the configured device (`None`: the simulator, which the caller
    /// builds from the `[simulator]` section).
    pub fn open(&self) -> Result<Option<Opened>, OpenError> {
        Ok(Some(match self {
            SourceConfig::Simulator => return Ok(None),
            SourceConfig::Openbci(c) => cyton::open(c)?,
            SourceConfig::Audio(c) => audio_in::open(c)?,
            SourceConfig::Lsl(c) => lsl::open_source(c)?,
        }))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            SourceConfig::Simulator => Ok(()),
            SourceConfig::Openbci(c) => c.validate(),
            SourceConfig::Audio(c) => c.validate(),
            SourceConfig::Lsl(c) => c.validate(),
        }
    }
}

fn default_stall_ms() -> f64 {
    500.0
}

/// How long a source may go quiet before it counts as lost, the same for every device.
pub(crate) fn check_stall_ms(stall_ms: f64) -> Result<(), ConfigError> {
    crate::config::pipeline::check_range("source.stall_ms", stall_ms, 20.0, 60_000.0)
}

/// A device that receives trigger commands: one arm per output device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OutputConfig {
    /// A Sanworks Pulse Pal v2: one monophasic pulse of `trigger.pulse_ms`
    /// on `channel` per delivered stim (software trigger, op 77).
    PulsePal(pulsepal::PulsePalConfig),
    /// A sound card playing the pink-noise click (`click.rs`) at the output
    /// frame that corresponds to each delivered stim's onset sample.
    AudioClick(audio_click::AudioClickConfig),
    /// The trigger box (`firmware/`): a TTL pulse (or train) on `output` at
    /// the box's clock time of each delivered stim's onset.
    TriggerBox(trigger_box::TriggerBoxConfig),
}

impl OutputConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            OutputConfig::PulsePal(c) => c.validate(),
            OutputConfig::AudioClick(c) => c.validate(),
            OutputConfig::TriggerBox(c) => c.validate(),
        }
    }
}

/// Open every configured output; `pulse_ms` is `trigger.pulse_ms`,
/// `session_rate` the source's sample rate.
pub fn open_outputs(
    outputs: &[OutputConfig],
    pulse_ms: f64,
    session_rate: SampleRate,
) -> Result<Vec<Box<dyn TriggerOutput>>, OpenError> {
    outputs
        .iter()
        .map(|o| {
            Ok(match o {
                OutputConfig::PulsePal(c) => {
                    Box::new(pulsepal::PulsePal::open(c, pulse_ms / 1000.0)?)
                        as Box<dyn TriggerOutput>
                }
                OutputConfig::AudioClick(c) => {
                    Box::new(audio_click::AudioClick::open(c, session_rate)?)
                }
                OutputConfig::TriggerBox(c) => {
                    Box::new(trigger_box::TriggerBox::open(c, pulse_ms)?)
                }
            })
        })
        .collect()
}

/// A trigger for an output: the decision, when its deciding sample arrived
/// and when (host time) the stimulus is due.
#[derive(Debug, Clone, Copy)]
pub struct TriggerCommand {
    pub decision: TriggerDecision,
    pub arrived: Instant,
    pub due: Instant,
}

/// How often an idle output is asked whether its device is still there,
/// unless it asks otherwise (`TriggerOutput::check_period`).
pub const DEFAULT_CHECK_PERIOD: Duration = Duration::from_millis(100);

/// A device that turns trigger commands into stimuli. Runs on its own thread.
pub trait TriggerOutput: Send {
    fn name(&self) -> &'static str;
    /// Deliver now. An error means the device can no longer be trusted.
    fn fire(&mut self, command: &TriggerCommand) -> Result<(), DeviceError>;
    /// Stop anything the device is playing (best effort, at shutdown).
    fn disarm(&mut self) -> Result<(), DeviceError>;
    /// True when the device times the stimulus itself from `due`, so the
    /// sink hands commands over at once instead of waiting until `due`.
    fn schedules_ahead(&self) -> bool {
        false
    }
    /// Is the device still there? Called by the output's thread about every
    /// `check_period` while no command is pending; an error ends the session
    /// like a failed `fire`, so losing an output is noticed before a stim is
    /// due. A device that needs keep-alives or clock sync does them here.
    fn check(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
    /// How often `check` should be called.
    fn check_period(&self) -> Duration {
        DEFAULT_CHECK_PERIOD
    }
    /// Device counters for `summary.json` (after `disarm`).
    fn report(&self) -> Option<serde_json::Value> {
        None
    }
    /// For a device with its own clock: per `fire`, in order, when the
    /// stimulus was planned and when the device fired it (after `disarm`).
    fn device_times(&self) -> Vec<DeviceTime> {
        Vec::new()
    }
}

/// A stimulus on a device's own clock (µs since the driver opened it, as
/// far as the device's clock runs): planned from the stim's onset through
/// the clock sync, fired as the device reported (`None`: never fired, e.g.
/// refused or cancelled by the disarm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceTime {
    pub onset: SampleIndex,
    pub planned_us: u64,
    pub fired_us: Option<u64>,
}
