//! The session configuration: a TOML file (or a built-in preset) with units in
//! every field name, unknown fields refused, and every value checked up front
//! by [`Config::validate`] with a message that names the field and the allowed
//! range. Checks that need the sample rate (a band under Nyquist) happen when
//! the controller is built, with the same kind of message.

use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::event::EventKind;
use crate::sim::Preset as SimPreset;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub input: InputConfig,
    pub detector: DetectorConfig,
    #[serde(default)]
    pub trigger: TriggerConfig,
    /// The built-in simulator `run` uses when no hardware is configured.
    #[serde(default)]
    pub simulator: SimulatorConfig,
    /// Where `run` reads samples (default: the simulator).
    #[serde(default)]
    pub source: crate::runtime::config::SourceConfig,
    /// Devices driven by trigger decisions (none: decisions are only logged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<crate::runtime::config::OutputConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// Channels to process, by label or 0-based index; empty = all channels
    /// that share the first channel's rate.
    pub channels: Vec<String>,
    /// Samples per block when replaying a file (a live source sets its own).
    pub block_size: usize,
}

impl Default for InputConfig {
    fn default() -> Self {
        Self {
            channels: Vec::new(),
            block_size: 64,
        }
    }
}

/// Which detector runs, with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DetectorConfig {
    /// Band-pass → RMS envelope → robust running baseline → threshold with
    /// hysteresis and a minimum duration. The stand-in for every paradigm until
    /// the dedicated detectors exist.
    EnvelopeThreshold(EnvelopeThresholdConfig),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeThresholdConfig {
    /// What the detections are called in `events.tsv`.
    pub event: EventKind,
    pub band_low_hz: f64,
    pub band_high_hz: f64,
    /// Butterworth order (a band-pass of order N has 2N poles).
    pub filter_order: usize,
    pub envelope_window_ms: f64,
    /// Sliding window of the median/MAD baseline of the envelope.
    pub baseline_window_s: f64,
    /// No detection before the baseline has seen this much signal.
    pub warmup_s: f64,
    /// Start: envelope above median + threshold_sd × robust SD ...
    pub threshold_sd: f64,
    /// ... for at least min_duration_ms; end: back under median + end_threshold_sd × robust SD.
    pub end_threshold_sd: f64,
    pub min_duration_ms: f64,
    /// Events longer than this are closed (and flagged by their duration).
    pub max_duration_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerMode {
    /// Log detections only; no trigger decisions.
    Off,
    /// Deliver a stimulus on every accepted detection.
    Stim,
    /// Decide as for `stim`, but log as `sham` and deliver nothing.
    Sham,
    /// Per accepted detection, stim with `stim_probability`, else sham (seeded).
    Random,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TriggerConfig {
    pub mode: TriggerMode,
    pub stim_probability: f64,
    /// Stimulus onset after the deciding sample: uniform in [delay_min_ms, delay_max_ms]
    /// (equal values give a fixed delay; 100–300 ms is the classic delayed control).
    pub delay_min_ms: f64,
    pub delay_max_ms: f64,
    pub pulse_ms: f64,
    /// Minimum time between two decisions (stim or sham).
    pub refractory_ms: f64,
    /// At most this many decisions in any 60-s window.
    pub max_per_minute: u32,
    /// At most this many decisions per session.
    pub max_per_session: u32,
    /// Seed of the stim/sham draw and the random delay.
    pub seed: u64,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        Self {
            mode: TriggerMode::Stim,
            stim_probability: 0.5,
            delay_min_ms: 0.0,
            delay_max_ms: 0.0,
            pulse_ms: 1.0,
            refractory_ms: 250.0,
            max_per_minute: 60,
            max_per_session: 2000,
            seed: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    pub preset: SimPreset,
    pub rate_hz: f64,
    pub seed: u64,
    pub artifacts: bool,
    /// Scales the simulated events' amplitude; 1.0 = realistic.
    pub event_snr: f64,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            preset: SimPreset::RodentRipple,
            rate_hz: 1250.0,
            seed: 1,
            artifacts: true,
            event_snr: 1.0,
        }
    }
}

/// A config problem, naming where it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {message}")]
    Read { path: String, message: String },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config field `{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

fn invalid(field: &'static str, message: String) -> ConfigError {
    ConfigError::Invalid { field, message }
}

/// `value` must lie in `[min, max]` (and be finite).
fn check_range(field: &'static str, value: f64, min: f64, max: f64) -> Result<(), ConfigError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be between {min} and {max}, got {value}"),
        ))
    }
}

/// The built-in presets; their TOML lives in `src/presets/` and doubles as
/// the example configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    RodentRipple,
    SleepSpindle,
    SleepClas,
}

impl Preset {
    pub const ALL: [Preset; 3] = [
        Preset::RodentRipple,
        Preset::SleepSpindle,
        Preset::SleepClas,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::RodentRipple => "rodent-ripple",
            Preset::SleepSpindle => "sleep-spindle",
            Preset::SleepClas => "sleep-clas",
        }
    }

    pub fn toml(self) -> &'static str {
        match self {
            Preset::RodentRipple => include_str!("presets/rodent-ripple.toml"),
            Preset::SleepSpindle => include_str!("presets/sleep-spindle.toml"),
            Preset::SleepClas => include_str!("presets/sleep-clas.toml"),
        }
    }

    pub fn config(self) -> Config {
        // The presets are tested to parse and validate, so this cannot fail at run time.
        Config::from_toml(self.toml(), self.name()).expect("built-in preset is valid")
    }
}

impl Config {
    /// Parse and validate TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Config::from_toml(&text, &path.display().to_string())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    /// Check every field that does not depend on the sample rate.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.input.block_size == 0 || self.input.block_size > 1 << 20 {
            return Err(invalid(
                "input.block_size",
                format!(
                    "must be between 1 and 1048576 samples, got {}",
                    self.input.block_size
                ),
            ));
        }
        match &self.detector {
            DetectorConfig::EnvelopeThreshold(d) => d.validate()?,
        }
        self.trigger.validate()?;
        self.source.validate()?;
        for output in &self.outputs {
            output.validate()?;
        }
        self.simulator.validate()
    }
}

impl EnvelopeThresholdConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range("detector.band_low_hz", self.band_low_hz, 0.01, 20_000.0)?;
        check_range("detector.band_high_hz", self.band_high_hz, 0.01, 20_000.0)?;
        if self.band_high_hz <= self.band_low_hz {
            return Err(invalid(
                "detector.band_high_hz",
                format!(
                    "must be greater than detector.band_low_hz ({}), got {}",
                    self.band_low_hz, self.band_high_hz
                ),
            ));
        }
        if !(1..=8).contains(&self.filter_order) {
            return Err(invalid(
                "detector.filter_order",
                format!("must be between 1 and 8, got {}", self.filter_order),
            ));
        }
        check_range(
            "detector.envelope_window_ms",
            self.envelope_window_ms,
            0.1,
            10_000.0,
        )?;
        check_range(
            "detector.baseline_window_s",
            self.baseline_window_s,
            0.5,
            3600.0,
        )?;
        check_range("detector.warmup_s", self.warmup_s, 0.0, 3600.0)?;
        check_range("detector.threshold_sd", self.threshold_sd, 0.0, 100.0)?;
        check_range(
            "detector.end_threshold_sd",
            self.end_threshold_sd,
            -10.0,
            self.threshold_sd,
        )?;
        check_range(
            "detector.min_duration_ms",
            self.min_duration_ms,
            0.0,
            10_000.0,
        )?;
        check_range(
            "detector.max_duration_ms",
            self.max_duration_ms,
            self.min_duration_ms.max(1.0),
            60_000.0,
        )
    }
}

impl TriggerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range("trigger.stim_probability", self.stim_probability, 0.0, 1.0)?;
        check_range("trigger.delay_min_ms", self.delay_min_ms, 0.0, 10_000.0)?;
        check_range(
            "trigger.delay_max_ms",
            self.delay_max_ms,
            self.delay_min_ms,
            10_000.0,
        )?;
        check_range("trigger.pulse_ms", self.pulse_ms, 0.01, 10_000.0)?;
        check_range(
            "trigger.refractory_ms",
            self.refractory_ms,
            0.0,
            3_600_000.0,
        )?;
        if self.max_per_minute == 0 {
            return Err(invalid(
                "trigger.max_per_minute",
                "must be at least 1 (use mode = \"off\" to disable triggers)".into(),
            ));
        }
        if self.max_per_minute > 6000 {
            return Err(invalid(
                "trigger.max_per_minute",
                format!("must be at most 6000, got {}", self.max_per_minute),
            ));
        }
        Ok(())
    }
}

impl SimulatorConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range("simulator.rate_hz", self.rate_hz, 1.0, 100_000.0)?;
        check_range("simulator.event_snr", self.event_snr, 0.0, 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_validates_and_round_trips() {
        for preset in Preset::ALL {
            let config = preset.config();
            let again = Config::from_toml(&config.to_toml(), "round trip").unwrap();
            assert_eq!(config, again, "{}", preset.name());
        }
    }

    #[test]
    fn a_typo_names_the_field() {
        let text = Preset::RodentRipple
            .toml()
            .replace("threshold_sd", "treshold_sd");
        let err = Config::from_toml(&text, "rig.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rig.toml") && err.contains("treshold_sd"),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_values_name_the_field_and_range() {
        let text = Preset::RodentRipple
            .toml()
            .replace("filter_order = 4", "filter_order = 12");
        let err = Config::from_toml(&text, "rig.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "config field `detector.filter_order`: must be between 1 and 8, got 12"
        );

        let mut config = Preset::RodentRipple.config();
        config.trigger.delay_max_ms = -1.0;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("trigger.delay_max_ms"), "{err}");
        config.trigger.delay_max_ms = f64::NAN;
        assert!(config.validate().is_err());
    }
}
