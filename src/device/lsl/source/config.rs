//! The `[source] kind = "lsl"` section.

use serde::{Deserialize, Serialize};

use crate::config::pipeline::{check_range, invalid, ConfigError};

/// `[source] kind = "lsl"`: a numeric LSL stream, resolved by name, type and/or source id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LslSourceConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "type")]
    pub stream_type: Option<String>,
    #[serde(default)]
    pub source_id: Option<String>,
    /// How long to look for the stream at start.
    #[serde(default = "default_resolve_timeout_ms")]
    pub resolve_timeout_ms: f64,
    /// Expected channel count and rate: a stream that differs is refused (unchecked when absent).
    #[serde(default)]
    pub channel_count: Option<u32>,
    #[serde(default)]
    pub rate_hz: Option<f64>,
    /// Unit of the channels whose description gives none ("uV", "mV" or "V").
    #[serde(default)]
    pub unit: Option<String>,
    /// Each channel's range (±µV) in the session recording; beyond it samples clip (counted).
    #[serde(default = "default_range_uv")]
    pub range_uv: f64,
    /// A timestamp more than this many sample periods after the previous one starts a gap.
    #[serde(default = "default_gap_periods")]
    pub gap_periods: f64,
    /// No sample for this long = the stream is lost.
    #[serde(default = "default_stall_ms")]
    pub stall_ms: f64,
}

fn default_resolve_timeout_ms() -> f64 {
    5000.0
}
fn default_range_uv() -> f64 {
    100_000.0
}
fn default_gap_periods() -> f64 {
    1.5
}
fn default_stall_ms() -> f64 {
    500.0
}

impl LslSourceConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let properties = self.properties();
        if properties.is_empty() {
            return Err(invalid(
                "source.name",
                "an LSL source needs name, type or source_id to find its stream".into(),
            ));
        }
        if let Some((key, _)) = properties
            .iter()
            .find(|(_, v)| v.trim().is_empty() || v.contains('\''))
        {
            return Err(invalid(
                key_field(key),
                "must be non-empty text without a single quote".into(),
            ));
        }
        check_range(
            "source.resolve_timeout_ms",
            self.resolve_timeout_ms,
            10.0,
            600_000.0,
        )?;
        if let Some(n) = self.channel_count {
            check_range("source.channel_count", f64::from(n), 1.0, 1024.0)?;
        }
        if let Some(hz) = self.rate_hz {
            check_range("source.rate_hz", hz, 1.0, crate::time::MAX_RATE_HZ)?;
        }
        if let Some(unit) = &self.unit {
            uv_per_unit(unit).ok_or_else(|| {
                invalid(
                    "source.unit",
                    format!("must be uV, mV or V (or nV), got {unit:?}"),
                )
            })?;
        }
        check_range("source.range_uv", self.range_uv, 1.0, 1e9)?;
        check_range("source.gap_periods", self.gap_periods, 1.01, 1e6)?;
        check_range("source.stall_ms", self.stall_ms, 20.0, 60_000.0)
    }

    pub(super) fn properties(&self) -> Vec<(&'static str, &str)> {
        [
            ("name", &self.name),
            ("type", &self.stream_type),
            ("source_id", &self.source_id),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }

    /// `name 'x' and type 'EEG'`, for messages.
    pub(super) fn query(&self) -> String {
        let parts: Vec<String> = self
            .properties()
            .iter()
            .map(|(k, v)| format!("{k} '{v}'"))
            .collect();
        parts.join(" and ")
    }
}

fn key_field(key: &str) -> &'static str {
    match key {
        "name" => "source.name",
        "type" => "source.type",
        _ => "source.source_id",
    }
}

/// µV per unit of a channel unit as LSL streams write it.
pub(super) fn uv_per_unit(unit: &str) -> Option<f64> {
    match unit.trim().to_ascii_lowercase().as_str() {
        "uv" | "µv" | "μv" | "microvolt" | "microvolts" => Some(1.0),
        "mv" | "millivolt" | "millivolts" => Some(1e3),
        "v" | "volt" | "volts" => Some(1e6),
        "nv" | "nanovolt" | "nanovolts" => Some(1e-3),
        _ => None,
    }
}
