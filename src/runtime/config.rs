//! The `[source]` and `[[outputs]]` sections of a config: where a live
//! session's samples come from and which devices its triggers drive.

use serde::{Deserialize, Serialize};

use crate::config::{check_range, invalid, ConfigError};
use crate::io::openbci::GAINS;

/// Where `neuroloop run` reads samples from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceConfig {
    /// The built-in simulator (the `[simulator]` section), paced in real time.
    #[default]
    Simulator,
    /// An OpenBCI Cyton (8 channels at 250 Hz) or Cyton + Daisy (16 at 125 Hz).
    Openbci(OpenBciConfig),
    /// A sound card's input channels (an amplifier's analog outputs wired to it).
    Audio(AudioSourceConfig),
    /// A Lab Streaming Layer stream (`device/lsl.rs`).
    Lsl(crate::device::lsl::LslSourceConfig),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSourceConfig {
    /// ALSA PCM name as `neuroloop devices` lists it; the default device if absent.
    #[serde(default)]
    pub device: Option<String>,
    /// Device channels to use, 0-based; they become the source's channels `in0`, `in1`, ….
    #[serde(default = "default_input_channels")]
    pub channels: Vec<u16>,
    /// Channels the stream is opened with; the highest used index + 1 if absent.
    #[serde(default)]
    pub device_channels: Option<u16>,
    #[serde(default = "default_audio_rate_hz")]
    pub rate_hz: u32,
    /// Frames per callback requested from the device (its period).
    #[serde(default = "default_period_frames")]
    pub period_frames: u32,
    /// The voltage at the sound card input that reads as digital full scale
    /// (±1.0); samples become µV as `sample × volts_per_full_scale × 1e6`.
    /// Include the amplifier's gain: an amplifier of gain 1000 feeding a card
    /// whose full scale is 1 V gives 0.001.
    pub volts_per_full_scale: f64,
    /// Longest silence tolerated before the device counts as lost.
    #[serde(default = "default_stall_ms")]
    pub stall_ms: f64,
}

impl AudioSourceConfig {
    /// Channels the stream is opened with.
    pub fn stream_channels(&self) -> u16 {
        self.device_channels
            .unwrap_or_else(|| self.channels.iter().max().map_or(1, |&c| c + 1))
    }
}

fn default_input_channels() -> Vec<u16> {
    vec![0]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBciConfig {
    /// Serial port, e.g. `/dev/ttyUSB0`.
    pub port: String,
    #[serde(default)]
    pub daisy: bool,
    /// Gain set on every channel at start (1, 2, 4, 6, 8, 12 or 24).
    #[serde(default = "default_gain")]
    pub gain: u8,
    /// Longest silence tolerated before the device counts as stalled.
    #[serde(default = "default_stall_ms")]
    pub stall_ms: f64,
}

fn default_gain() -> u8 {
    24
}
fn default_stall_ms() -> f64 {
    500.0
}

/// The `[recording]` section: a live session records its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Write `recording.bdf`: every source channel as the detectors received
    /// it, replayable bit for bit (`neuroloop replay SESSION_DIR`).
    pub enabled: bool,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// A device that receives trigger commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OutputConfig {
    /// A Sanworks Pulse Pal v2: one monophasic pulse of `trigger.pulse_ms`
    /// on `channel` per delivered stim (software trigger, op 77).
    PulsePal(PulsePalConfig),
    /// A sound card playing the pink-noise click (`click.rs`) at the output
    /// frame that corresponds to each delivered stim's onset sample.
    AudioClick(AudioClickConfig),
    /// The trigger box (`firmware/`): a TTL pulse (or train) on `output` at
    /// the box's clock time of each delivered stim's onset.
    TriggerBox(crate::device::trigger_box::TriggerBoxConfig),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioClickConfig {
    /// ALSA PCM name as `neuroloop devices` lists it; the default device if absent.
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default = "default_audio_rate_hz")]
    pub rate_hz: u32,
    /// Output channels; the click plays on all of them.
    #[serde(default = "default_audio_channels")]
    pub channels: u16,
    /// Frames per callback requested from the device (its period).
    #[serde(default = "default_period_frames")]
    pub period_frames: u32,
    /// RMS of the click's plateau relative to full scale.
    #[serde(default = "default_level_dbfs")]
    pub level_dbfs: f64,
    #[serde(default = "default_click_ms")]
    pub click_ms: f64,
    #[serde(default = "default_ramp_ms")]
    pub ramp_ms: f64,
    /// From a frame written to it being heard; measured from the backend's
    /// stream timestamps when absent.
    #[serde(default)]
    pub device_latency_ms: Option<f64>,
    /// Largest disagreement between the sample→frame map and the host clock
    /// before the map is re-anchored (see `io/audio.rs`).
    #[serde(default = "default_max_clock_error_ms")]
    pub max_clock_error_ms: f64,
}

fn default_audio_rate_hz() -> u32 {
    48_000
}
fn default_audio_channels() -> u16 {
    2
}
fn default_period_frames() -> u32 {
    256
}
fn default_level_dbfs() -> f64 {
    -20.0
}
fn default_click_ms() -> f64 {
    50.0
}
fn default_ramp_ms() -> f64 {
    5.0
}
fn default_max_clock_error_ms() -> f64 {
    5.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PulsePalConfig {
    pub port: String,
    /// Output channel 1–4.
    #[serde(default = "default_channel")]
    pub channel: u8,
    /// Pulse amplitude, −10 to 10 V.
    #[serde(default = "default_volts")]
    pub volts: f64,
    /// A trigger write that does not complete within this is a sink fault.
    #[serde(default = "default_write_timeout_ms")]
    pub write_timeout_ms: f64,
    /// How often an idle Pulse Pal is asked for its handshake, so a lost or
    /// hung device ends the session before the next stim is due (0: never; a
    /// closed port is then noticed at the next trigger). A stim decided during
    /// a check waits for its round trip (about 1 ms over USB).
    #[serde(default = "default_check_period_ms")]
    pub check_period_ms: f64,
}

fn default_channel() -> u8 {
    1
}
fn default_volts() -> f64 {
    5.0
}
fn default_write_timeout_ms() -> f64 {
    50.0
}
fn default_check_period_ms() -> f64 {
    1000.0
}

/// How long a source may go quiet before it counts as lost, the same for every device.
fn check_stall_ms(stall_ms: f64) -> Result<(), ConfigError> {
    check_range("source.stall_ms", stall_ms, 20.0, 60_000.0)
}

impl SourceConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            SourceConfig::Simulator => Ok(()),
            SourceConfig::Openbci(c) => {
                if c.port.trim().is_empty() {
                    return Err(invalid("source.port", "must name a serial port".into()));
                }
                if !GAINS.iter().any(|(g, _)| *g == c.gain) {
                    return Err(invalid(
                        "source.gain",
                        format!("must be one of 1, 2, 4, 6, 8, 12, 24, got {}", c.gain),
                    ));
                }
                check_stall_ms(c.stall_ms)
            }
            SourceConfig::Audio(c) => {
                if c.device.as_deref().is_some_and(|d| d.trim().is_empty()) {
                    return Err(invalid("source.device", "must name a device".into()));
                }
                if c.channels.is_empty() {
                    return Err(invalid(
                        "source.channels",
                        "must list at least one channel".into(),
                    ));
                }
                let stream = c.stream_channels();
                check_range("source.device_channels", f64::from(stream), 1.0, 64.0)?;
                if let Some(&bad) = c.channels.iter().find(|&&ch| ch >= stream) {
                    return Err(invalid(
                        "source.channels",
                        format!("channel {bad} is beyond the {stream} device channels"),
                    ));
                }
                check_range("source.rate_hz", f64::from(c.rate_hz), 8000.0, 384_000.0)?;
                check_range(
                    "source.period_frames",
                    f64::from(c.period_frames),
                    16.0,
                    16384.0,
                )?;
                if !(c.volts_per_full_scale.is_finite() && c.volts_per_full_scale > 0.0) {
                    return Err(invalid(
                        "source.volts_per_full_scale",
                        format!(
                            "must be a positive number of volts, got {}",
                            c.volts_per_full_scale
                        ),
                    ));
                }
                check_stall_ms(c.stall_ms)
            }
            SourceConfig::Lsl(c) => c.validate(),
        }
    }
}

impl OutputConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            OutputConfig::PulsePal(c) => {
                if c.port.trim().is_empty() {
                    return Err(invalid("outputs.port", "must name a serial port".into()));
                }
                check_range("outputs.channel", f64::from(c.channel), 1.0, 4.0)?;
                check_range("outputs.volts", c.volts, -10.0, 10.0)?;
                check_range(
                    "outputs.write_timeout_ms",
                    c.write_timeout_ms,
                    1.0,
                    10_000.0,
                )?;
                if c.check_period_ms != 0.0 {
                    check_range(
                        "outputs.check_period_ms",
                        c.check_period_ms,
                        100.0,
                        60_000.0,
                    )?;
                }
                Ok(())
            }
            OutputConfig::AudioClick(c) => {
                if c.device.as_deref().is_some_and(|d| d.trim().is_empty()) {
                    return Err(invalid("outputs.device", "must name a device".into()));
                }
                check_range("outputs.rate_hz", f64::from(c.rate_hz), 8000.0, 384_000.0)?;
                check_range("outputs.channels", f64::from(c.channels), 1.0, 32.0)?;
                check_range(
                    "outputs.period_frames",
                    f64::from(c.period_frames),
                    16.0,
                    16384.0,
                )?;
                check_range("outputs.level_dbfs", c.level_dbfs, -120.0, -3.0)?;
                check_range("outputs.click_ms", c.click_ms, 1.0, 1000.0)?;
                check_range("outputs.ramp_ms", c.ramp_ms, 0.0, c.click_ms / 2.0)?;
                if let Some(l) = c.device_latency_ms {
                    check_range("outputs.device_latency_ms", l, 0.0, 1000.0)?;
                }
                check_range("outputs.max_clock_error_ms", c.max_clock_error_ms, 0.1, 1e6)
            }
            OutputConfig::TriggerBox(c) => c.validate(),
        }
    }
}
