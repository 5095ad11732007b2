//! The `[source]` and `[[outputs]]` sections of a config: where a live
//! session's samples come from and which devices its triggers drive.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
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

/// A device that receives trigger commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OutputConfig {
    /// A Sanworks Pulse Pal v2: one monophasic pulse of `trigger.pulse_ms`
    /// on `channel` per delivered stim (software trigger, op 77).
    PulsePal(PulsePalConfig),
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

fn invalid(field: &'static str, message: String) -> ConfigError {
    ConfigError::Invalid { field, message }
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
                if !(c.stall_ms.is_finite() && (20.0..=60_000.0).contains(&c.stall_ms)) {
                    return Err(invalid(
                        "source.stall_ms",
                        format!("must be between 20 and 60000, got {}", c.stall_ms),
                    ));
                }
                Ok(())
            }
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
                if !(1..=4).contains(&c.channel) {
                    return Err(invalid(
                        "outputs.channel",
                        format!("must be between 1 and 4, got {}", c.channel),
                    ));
                }
                if !(c.volts.is_finite() && (-10.0..=10.0).contains(&c.volts)) {
                    return Err(invalid(
                        "outputs.volts",
                        format!("must be between -10 and 10, got {}", c.volts),
                    ));
                }
                if !(c.write_timeout_ms.is_finite()
                    && (1.0..=10_000.0).contains(&c.write_timeout_ms))
                {
                    return Err(invalid(
                        "outputs.write_timeout_ms",
                        format!("must be between 1 and 10000, got {}", c.write_timeout_ms),
                    ));
                }
                Ok(())
            }
        }
    }
}
