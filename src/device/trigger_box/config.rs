//! The trigger box's `[[outputs]] kind = "trigger-box"` section.

use serde::{Deserialize, Serialize};

use crate::config::pipeline::{check_range, invalid, ConfigError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerBoxConfig {
    /// Serial port, e.g. `/dev/ttyUSB0` (`neuroloop devices` lists the boxes).
    pub port: String,
    /// Output 1–4 (BNC 1–4; pins D4–D7).
    #[serde(default = "default_output")]
    pub output: u8,
    /// Pulse width; `trigger.pulse_ms` if absent.
    #[serde(default)]
    pub width_ms: Option<f64>,
    /// Pulses per stim (a train), `interval_ms` apart (start to start).
    #[serde(default = "default_count")]
    pub count: u16,
    #[serde(default)]
    pub interval_ms: f64,
    /// The host sends a heartbeat this often while idle.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: f64,
    /// With no frame from the host for this long, the box disarms itself.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u16,
    /// How long to wait for the box to answer after opening the port (an
    /// Arduino resets when its port opens and boots for about a second).
    #[serde(default = "default_hello_timeout_ms")]
    pub hello_timeout_ms: f64,
    /// One clock-sync round trip this often.
    #[serde(default = "default_sync_interval_ms")]
    pub sync_interval_ms: f64,
}

fn default_output() -> u8 {
    1
}
fn default_count() -> u16 {
    1
}
fn default_heartbeat_ms() -> f64 {
    100.0
}
fn default_timeout_ms() -> u16 {
    500
}
fn default_hello_timeout_ms() -> f64 {
    3000.0
}
fn default_sync_interval_ms() -> f64 {
    250.0
}

impl TriggerBoxConfig {
    /// A config for `port` with every default.
    pub fn new(port: &str) -> Self {
        Self {
            port: port.into(),
            output: default_output(),
            width_ms: None,
            count: default_count(),
            interval_ms: 0.0,
            heartbeat_ms: default_heartbeat_ms(),
            timeout_ms: default_timeout_ms(),
            hello_timeout_ms: default_hello_timeout_ms(),
            sync_interval_ms: default_sync_interval_ms(),
        }
    }

    /// Checks what the host can; the box's own limits are checked against
    /// its HELLO reply when it is opened.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.port.trim().is_empty() {
            return Err(invalid("outputs.port", "must name a serial port".into()));
        }
        check_range("outputs.output", f64::from(self.output), 1.0, 4.0)?;
        if let Some(w) = self.width_ms {
            check_range("outputs.width_ms", w, 0.001, 10_000.0)?;
        }
        check_range("outputs.count", f64::from(self.count), 1.0, 1000.0)?;
        if self.count > 1 {
            check_range("outputs.interval_ms", self.interval_ms, 0.001, 60_000.0)?;
        }
        check_range(
            "outputs.timeout_ms",
            f64::from(self.timeout_ms),
            20.0,
            5000.0,
        )?;
        check_range(
            "outputs.heartbeat_ms",
            self.heartbeat_ms,
            5.0,
            f64::from(self.timeout_ms) / 3.0,
        )?;
        check_range(
            "outputs.hello_timeout_ms",
            self.hello_timeout_ms,
            10.0,
            60_000.0,
        )?;
        check_range(
            "outputs.sync_interval_ms",
            self.sync_interval_ms,
            10.0,
            60_000.0,
        )
    }
}
