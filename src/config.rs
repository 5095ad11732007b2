//! The session configuration: a TOML file (or a built-in preset) with units in
//! every field name, unknown fields refused, and every value checked up front
//! by [`Config::validate`] with a message that names the field and the allowed
//! range. Checks that need the sample rate (a band under Nyquist) happen when
//! the controller is built, with the same kind of message.

use serde::{Deserialize, Serialize};
use std::path::Path;

pub mod pipeline;

pub use pipeline::*;

use crate::recording::ChannelSelector;
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
    pub source: crate::device::SourceConfig,
    /// Devices driven by trigger decisions (none: decisions are only logged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<crate::device::OutputConfig>,
    /// What a live session records besides its events.
    #[serde(default)]
    pub recording: crate::runtime::config::RecordingConfig,
    /// Send every logged event as a marker on a Lab Streaming Layer stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsl_markers: Option<crate::device::lsl::LslMarkersConfig>,
    /// Scheduling and memory of the processing thread.
    #[serde(default)]
    pub realtime: RealtimeConfig,
}

/// The `[realtime]` section: how the processing thread of a live session is
/// scheduled. Each setting the system refuses (no permission, no such CPU)
/// is a warning and an entry in `summary.json`, not an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RealtimeConfig {
    /// SCHED_FIFO priority (1-99) of the processing thread; 0 leaves it to
    /// the normal scheduler. Needs root, CAP_SYS_NICE or an rtprio limit.
    pub priority: u8,
    /// Pin the processing thread to this CPU (0-based); none: the OS places it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<usize>,
    /// Lock the process's pages in RAM (`mlockall`) once the processing
    /// thread has allocated its buffers, so none is paged out mid-session.
    pub lock_memory: bool,
    /// Flush subnormal floats to zero (FTZ/DAZ) on the processing thread;
    /// a replay of the session does the same, so events stay bit-identical.
    pub flush_denormals: bool,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            priority: 10,
            cpu: None,
            lock_memory: false,
            flush_denormals: true,
        }
    }
}

impl RealtimeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.priority > 99 {
            return Err(invalid(
                "realtime.priority",
                format!(
                    "must be a SCHED_FIFO priority 1-99, or 0 for none, got {}",
                    self.priority
                ),
            ));
        }
        Ok(())
    }
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

impl InputConfig {
    /// `channels` as selectors: an index when the text is a number, else a label.
    pub fn selectors(&self) -> Vec<ChannelSelector> {
        let parse = |c: &String| c.parse().unwrap_or_else(|never| match never {});
        self.channels.iter().map(parse).collect()
    }
}

impl Default for InputConfig {
    fn default() -> Self {
        Self {
            channels: Vec::new(),
            block_size: 64,
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
    /// Channels to simulate; the preset's own number if absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<usize>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            preset: SimPreset::RodentRipple,
            rate_hz: 1250.0,
            seed: 1,
            artifacts: true,
            event_snr: 1.0,
            channels: None,
        }
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

/// The top-level sections of a config (the fields of [`Config`]).
const SECTIONS: [&str; 9] = [
    "input",
    "detector",
    "trigger",
    "simulator",
    "source",
    "outputs",
    "recording",
    "lsl_markers",
    "realtime",
];

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

impl PipelineConfig for Config {
    fn detector(&self) -> &DetectorConfig {
        &self.detector
    }
    fn trigger(&self) -> &TriggerConfig {
        &self.trigger
    }
}

impl Config {
    /// Parse and validate TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse {
            path: origin.to_string(),
            message: message.trim().replace('\n', " "),
        };
        // A misspelt section is named before serde meets its consequences
        // (`[detektor]` would otherwise read as a missing `kind`).
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| parse_error(e.to_string()))?;
        if let Some(unknown) = table.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
            let hint = SECTIONS
                .iter()
                .find(|s| edit_distance(s, unknown) <= 2)
                .map(|s| format!(" (did you mean [{s}]?)"))
                .unwrap_or_default();
            return Err(parse_error(format!(
                "unknown section [{unknown}]{hint}; a config has {}",
                SECTIONS.map(|s| format!("[{s}]")).join(", ")
            )));
        }
        let config: Config = toml::from_str(text).map_err(|e| parse_error(e.to_string()))?;
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
        self.detector.validate()?;
        self.trigger.validate()?;
        self.source.validate()?;
        for output in &self.outputs {
            output.validate()?;
        }
        if let Some(markers) = &self.lsl_markers {
            markers.validate()?;
        }
        self.realtime.validate()?;
        self.simulator.validate()
    }
}

impl SimulatorConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range("simulator.rate_hz", self.rate_hz, 1.0, 100_000.0)?;
        check_range("simulator.event_snr", self.event_snr, 0.0, 100.0)?;
        if let Some(channels) = self.channels {
            check_range("simulator.channels", channels as f64, 1.0, 256.0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_validates_and_round_trips() {
        for &preset in <Preset as clap::ValueEnum>::value_variants() {
            let config = preset.config();
            let again = Config::from_toml(&config.to_toml(), "round trip").unwrap();
            assert_eq!(config, again, "{}", preset.name());
        }
    }

    #[test]
    fn realtime_settings_are_checked_and_typos_named() {
        let preset = Preset::RodentRipple.toml();
        let with = |section: &str| Config::from_toml(&format!("{preset}\n{section}"), "rig.toml");
        let c = with("[realtime]\npriority = 0\ncpu = 1\nlock_memory = true").unwrap();
        assert_eq!(
            (c.realtime.priority, c.realtime.cpu, c.realtime.lock_memory),
            (0, Some(1), true)
        );
        assert!(c.realtime.flush_denormals, "on unless turned off");
        let e = with("[realtime]\npriority = 100").unwrap_err().to_string();
        assert!(e.contains("realtime.priority") && e.contains("1-99"), "{e}");
        let e = with("[realtime]\nlock_memmory = true")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lock_memmory"), "{e}");
    }

    /// `SECTIONS` lists exactly the fields of `Config`, so the early check
    /// of section names can neither refuse a real section nor miss one.
    #[test]
    fn sections_are_the_config_fields() {
        let mut config = Preset::RodentRipple.config();
        config.outputs = vec![crate::device::OutputConfig::PulsePal(
            toml::from_str("port = \"/dev/null\"").unwrap(),
        )];
        config.lsl_markers = Some(toml::from_str("").unwrap());
        let table: toml::Table = config.to_toml().parse().unwrap();
        let mut keys: Vec<&str> = table.keys().map(String::as_str).collect();
        let mut sections = SECTIONS.to_vec();
        keys.sort_unstable();
        sections.sort_unstable();
        assert_eq!(keys, sections);
        assert_eq!(edit_distance("detektor", "detector"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn spindle_commit_rule_refuses_a_commit_delay() {
        let mut config = Preset::SleepSpindle.config();
        let DetectorConfig::Spindle(spindle) = &mut config.detector else {
            panic!("sleep-spindle runs the spindle detector");
        };
        spindle.commit_after_ms = 150.0;
        let err = Config::from_toml(&config.to_toml(), "rig.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("detector.commit_after_ms"), "{err}");
        let DetectorConfig::Spindle(spindle) = &mut config.detector else {
            unreachable!()
        };
        spindle.commit = None;
        Config::from_toml(&config.to_toml(), "rig.toml").unwrap();
    }

    /// Gate and veto options that contradict each other are refused, naming the field.
    #[test]
    fn contradicting_gate_options_name_the_field() {
        let refusal = |edit: &dyn Fn(&mut RippleConfig)| {
            let mut config = Preset::RodentRipple.config();
            let DetectorConfig::Ripple(ripple) = &mut config.detector else {
                panic!("rodent-ripple runs the ripple detector");
            };
            edit(ripple);
            config.validate().unwrap_err().to_string()
        };
        type Edit<'a> = &'a dyn Fn(&mut RippleConfig);
        let cases: [(Edit, &str); 5] = [
            (
                &|r| r.state.delta_high_hz = 6.0,
                "detector.state.delta_high_hz",
            ),
            (&|r| r.state.ratio_open = 2.0, "detector.state.ratio_open"),
            (
                &|r| {
                    r.state.enabled = false;
                    r.state.speed_channel = Some(3);
                },
                "detector.state.speed_channel",
            ),
            (
                &|r| {
                    r.veto.enabled = false;
                    r.veto.channel = Some(3);
                },
                "detector.veto.channel",
            ),
            (
                &|r| {
                    r.state.speed_channel = Some(3);
                    r.veto.channel = Some(3);
                },
                "detector.state.speed_channel",
            ),
        ];
        for (edit, field) in cases {
            let err = refusal(edit);
            assert!(err.contains(&format!("`{field}`")), "{err}");
        }
        // Each stage with its own input is fine.
        let mut config = Preset::RodentRipple.config();
        let DetectorConfig::Ripple(ripple) = &mut config.detector else {
            unreachable!()
        };
        ripple.state.speed_channel = Some(3);
        ripple.veto.channel = Some(2);
        config.validate().unwrap();
    }

    #[test]
    fn slow_oscillation_echt_section_and_estimator_must_agree() {
        let with_echt = |estimator: &str| {
            Preset::SleepClas
                .toml()
                .replace("estimator = \"zero-crossing-delay\"", estimator)
                .replace(
                    "\n[detector.gate]",
                    "\n[detector.echt]\nlow_hz = 0.5\nhigh_hz = 2.0\nwindow_s = 2.0\n\n[detector.gate]",
                )
        };
        for (text, field) in [
            (with_echt("estimator = \"pll\""), "detector.echt"),
            (
                Preset::SleepClas
                    .toml()
                    .replace("\"zero-crossing-delay\"", "\"echt\""),
                "detector.echt",
            ),
            (
                with_echt("estimator = \"echt\"").replace("high_hz = 2.0", "high_hz = 0.4"),
                "detector.echt.high_hz",
            ),
        ] {
            let err = Config::from_toml(&text, "so.toml").unwrap_err().to_string();
            assert!(err.contains(&format!("`{field}`")), "{err}");
        }
        Config::from_toml(&with_echt("estimator = \"echt\""), "so.toml").unwrap();
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
            .replace("filter_order = 2", "filter_order = 12");
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
