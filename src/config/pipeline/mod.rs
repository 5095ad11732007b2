//! The sections the pure pipeline reads (the detector and the trigger
//! policy) and the config error type: here the detector's choice and the
//! checks every section uses, in `ripple.rs` and `sleep.rs` the detectors'
//! sections, in `trigger.rs` the trigger policy's. This module depends on
//! nothing but serde, so `detect/`, `trigger/` and `controller.rs` depend on neither the
//! devices, the runtime, the simulator nor the command line that the
//! top-level [`super::Config`] brings together.

mod ripple;
mod sleep;
mod trigger;

pub use ripple::*;
pub use sleep::*;
pub use trigger::*;

use serde::{Deserialize, Serialize};

/// Which detector runs, with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DetectorConfig {
    /// Sharp-wave ripples (rodent CA1): band-pass envelopes per channel or as
    /// a root-sum-square consensus, k-of-n voting, noise veto and brain-state gating.
    Ripple(Box<RippleConfig>),
    /// Sleep spindles (A7-like): sigma-band power against a running baseline,
    /// relative sigma power and sigma/broadband correlation.
    Spindle(SpindleConfig),
    /// Slow-oscillation up-state targeting: a stimulus scheduled at a target phase.
    SlowOscillation(SlowOscillationConfig),
    /// `latency-test`: a probe stimulus every `interval_ms`, timed until it
    /// comes back on a looped-back input channel.
    LatencyProbe(LatencyProbeConfig),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyProbeConfig {
    /// Position (0-based) among the processed channels of the looped-back input.
    pub channel: usize,
    /// Time from one probe to the next (and never while the line is still high).
    pub interval_ms: f64,
    /// |x| above this on `channel` means the pulse came back.
    pub threshold_uv: f64,
    /// A probe not back within this is counted as lost.
    pub timeout_ms: f64,
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

pub(crate) fn invalid(field: &'static str, message: String) -> ConfigError {
    ConfigError::Invalid { field, message }
}

/// `value` must lie in `[min, max]` (and be finite).
pub(crate) fn check_range(
    field: &'static str,
    value: f64,
    min: f64,
    max: f64,
) -> Result<(), ConfigError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be between {min} and {max}, got {value}"),
        ))
    }
}

/// A band `(low, high)` of positive frequencies with low < high.
pub(super) fn check_band(
    low: (&'static str, f64),
    high: (&'static str, f64),
) -> Result<(), ConfigError> {
    check_range(low.0, low.1, 0.01, 20_000.0)?;
    check_range(high.0, high.1, 0.01, 20_000.0)?;
    if high.1 <= low.1 {
        return Err(invalid(
            high.0,
            format!("must be greater than {} ({}), got {}", low.0, low.1, high.1),
        ));
    }
    Ok(())
}

pub(super) fn check_order(field: &'static str, order: usize) -> Result<(), ConfigError> {
    if (1..=8).contains(&order) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be between 1 and 8, got {order}"),
        ))
    }
}

impl LatencyProbeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        // 10 ms: the trigger policy allows at most 6000 decisions a minute.
        check_range("detector.interval_ms", self.interval_ms, 10.0, 60_000.0)?;
        check_range("detector.threshold_uv", self.threshold_uv, 0.0, 1e9)?;
        check_range(
            "detector.timeout_ms",
            self.timeout_ms,
            1.0,
            self.interval_ms,
        )
    }
}

impl DetectorConfig {
    /// Check every field that does not depend on the sample rate.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            DetectorConfig::Ripple(d) => d.validate(),
            DetectorConfig::Spindle(d) => d.validate(),
            DetectorConfig::SlowOscillation(d) => d.validate(),
            DetectorConfig::LatencyProbe(d) => d.validate(),
        }
    }
}

/// What the controller is built from: the detector and the trigger policy
/// (implemented by the top-level [`super::Config`]).
pub trait PipelineConfig {
    fn detector(&self) -> &DetectorConfig;
    fn trigger(&self) -> &TriggerConfig;
}
