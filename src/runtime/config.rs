//! The runtime's config sections (device sections live with their devices
//! in `device/`).

use serde::{Deserialize, Serialize};

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
