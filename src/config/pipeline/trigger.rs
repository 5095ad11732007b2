//! `[trigger]`: the trigger policy shared by every paradigm.

use serde::{Deserialize, Serialize};

use super::{check_range, invalid, ConfigError};

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

/// What one accepted detection schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StimSequence {
    /// One stimulus.
    Single,
    /// Ngo et al. 2013: a second click `second_click_after_ms` after the first;
    /// the refractory period then counts from the second.
    TwoClick,
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
    /// After each delivered pulse's onset the detector sees the last clean
    /// frame held for this long, so the stimulus artifact cannot re-trigger.
    pub blanking_ms: f64,
    pub sequence: StimSequence,
    /// Second click of a two-click sequence, after the first (Ngo: 1075 ms).
    pub second_click_after_ms: f64,
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
            blanking_ms: 0.0,
            sequence: StimSequence::Single,
            second_click_after_ms: 1075.0,
        }
    }
}

impl TriggerConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("trigger.stim_probability", self.stim_probability, 0.0, 1.0)?;
        check_range("trigger.delay_min_ms", self.delay_min_ms, 0.0, 10_000.0)?;
        check_range(
            "trigger.delay_max_ms",
            self.delay_max_ms,
            self.delay_min_ms,
            10_000.0,
        )?;
        check_range("trigger.pulse_ms", self.pulse_ms, 0.01, 10_000.0)?;
        check_range("trigger.blanking_ms", self.blanking_ms, 0.0, 10_000.0)?;
        check_range(
            "trigger.refractory_ms",
            self.refractory_ms,
            0.0,
            3_600_000.0,
        )?;
        check_range(
            "trigger.second_click_after_ms",
            self.second_click_after_ms,
            self.pulse_ms,
            60_000.0,
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
