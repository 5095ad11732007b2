//! `neuroloop latency-test`: a live session whose detector is the loop-back
//! probe (`detect::latency_probe`), with the trigger policy set so that every
//! probe fires at once, and the round trip it measured read back from the
//! session's `events.tsv` into `summary.json`.

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, DetectorConfig, StimSequence, TriggerMode};
use crate::device::SourceConfig;
use crate::eval::round_trip::{round_trip, RoundTrip};
use crate::eval::tables::{parse_events, TableError};
use crate::io::session::SessionError;
use crate::io::write_atomically;
use crate::time::SampleRate;

#[derive(Debug, thiserror::Error)]
pub enum LatencyTestError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Write(#[from] SessionError),
    #[error("{path} is not valid JSON: {source}")]
    Summary {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// A rig config made ready for `probes` probes, and how long to run.
#[derive(Debug, Clone)]
pub struct LatencyTest {
    pub config: Config,
    /// Time for every probe to go out and come back or time out; the session
    /// stops before the next one would go out.
    pub duration_s: f64,
}

/// The rig's `[source]`, `[[outputs]]` and `[detector] kind = "latency-probe"`,
/// with the trigger policy set to fire every probe at its deciding sample: stim
/// mode, no delay, no blanking (it would hide the returning pulse), no
/// refractory period (the probe spaces itself), one pulse per probe, and a cap
/// of `probes`.
pub fn prepare(rig: &Config, probes: u32) -> Result<LatencyTest, ConfigError> {
    let DetectorConfig::LatencyProbe(probe) = &rig.detector else {
        return Err(ConfigError::Invalid {
            field: "detector.kind",
            message: "latency-test needs kind = \"latency-probe\"".into(),
        });
    };
    if matches!(rig.source, SourceConfig::Simulator) {
        return Err(ConfigError::Invalid {
            field: "source.kind",
            message: "latency-test needs a device source whose input is wired to an output".into(),
        });
    }
    if rig.outputs.is_empty() {
        return Err(ConfigError::Invalid {
            field: "outputs",
            message: "latency-test needs an output device wired back into the input".into(),
        });
    }
    if probes == 0 {
        return Err(ConfigError::Invalid {
            field: "probes",
            message: "must be at least 1".into(),
        });
    }
    let mut config = rig.clone();
    let t = &mut config.trigger;
    t.mode = TriggerMode::Stim;
    t.delay_min_ms = 0.0;
    t.delay_max_ms = 0.0;
    t.blanking_ms = 0.0;
    t.refractory_ms = 0.0;
    t.sequence = StimSequence::Single;
    t.max_per_minute = 6000;
    t.max_per_session = probes;
    config.validate()?;
    // Probe k goes out at k × interval and is over by k × interval + timeout.
    let duration_ms =
        probes as f64 * probe.interval_ms + (probe.timeout_ms + probe.interval_ms) / 2.0;
    Ok(LatencyTest {
        config,
        duration_s: duration_ms / 1000.0,
    })
}

/// Read the round trip from a finished session folder and add it to its
/// `summary.json` (as `round_trip`).
pub fn record_round_trip(dir: &Path, rate: SampleRate) -> Result<RoundTrip, LatencyTestError> {
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).map_err(|source| LatencyTestError::Read { path, source })
    };
    let events_path = dir.join("events.tsv");
    let events = read(events_path.clone())?;
    let rows = parse_events(&events, &events_path.display().to_string())?;
    let result = round_trip(&rows, rate);
    let summary_path = dir.join("summary.json");
    let mut summary: serde_json::Value = serde_json::from_str(&read(summary_path.clone())?)
        .map_err(|source| LatencyTestError::Summary {
            path: summary_path.clone(),
            source,
        })?;
    summary["round_trip"] = serde_json::to_value(&result).expect("serialises");
    let text = serde_json::to_string_pretty(&summary).expect("serialises");
    write_atomically(&summary_path, text.as_bytes()).map_err(SessionError::from)?;
    Ok(result)
}
