//! The session folder's closing files: `summary.json` (the live sections
//! beside the offline ones) and `latency.tsv`.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::latency::{LatencyHistogram, LatencySummary};
use super::source_watch::SourceWatch;
use super::threads::Joined;
use super::{Ending, Shared, TriggerRecord};
use crate::config::Config;
use crate::device::DeviceTime;
use crate::io::recorder::RecordingCounters;
use crate::io::session::SessionError;
use crate::session::{Progress, Summary, SummaryParts};
use crate::time::SampleRate;

/// A live session's sections of `summary.json`.
#[derive(Debug, serde::Serialize)]
struct LiveSummary<'a> {
    latency: &'a LatencyReport,
    runtime: RuntimeCounters,
    #[serde(skip_serializing_if = "Option::is_none")]
    recording: Option<RecordingSummary>,
    /// The source's own counters (a Cyton's packets, a sound card's xruns).
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<serde_json::Value>,
    /// Each output device's own counters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    outputs: Vec<serde_json::Value>,
    /// The LSL marker outlet's stream and counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    lsl_markers: Option<serde_json::Value>,
    /// What `[realtime]` got for the processing thread.
    realtime: &'a super::realtime::RealtimeReport,
    /// The live monitor's address and what it dropped rather than wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    monitor: Option<serde_json::Value>,
}

#[derive(Debug, serde::Serialize)]
struct RuntimeCounters {
    outputs_disarmed_before_flush: bool,
    triggers_written: usize,
    triggers_suppressed_after_disarm: u64,
    triggers_withheld_unlogged: u64,
    acquisition_overrun_frames: u64,
    event_ring_full: u64,
    command_ring_full: u64,
}

#[derive(Debug, serde::Serialize)]
struct RecordingSummary {
    file: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    counters: Option<RecordingCounters>,
    /// Samples beyond the recording's range, clipped for the detectors too.
    clipped_samples: u64,
    /// Events not annotated in the recording (its queue was full).
    annotation_ring_full: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencyReport {
    pub block_processing: Option<LatencySummary>,
    pub arrival_to_command: Option<LatencySummary>,
}

pub struct LiveReport {
    pub ending: Ending,
    pub progress: Progress,
    pub wall_s: f64,
    pub latency: LatencyReport,
    pub triggers_written: usize,
    pub dir: std::path::PathBuf,
    /// Rows in the session's event log.
    pub events_logged: usize,
    /// Settings the detector adjusted to the source's rate.
    pub adjustments: Vec<String>,
    /// The session files that could not be written at the end, and why
    /// (the session itself was stopped and disarmed all the same).
    pub unwritten: Option<String>,
}

/// What the session folder's summary needs besides the threads' reports.
pub(super) struct SessionFacts<'a> {
    pub command: &'a str,
    pub config: &'a Config,
    pub description: &'a str,
    pub labels: &'a [String],
    pub rate: SampleRate,
    pub started: Instant,
    pub wall_s: f64,
    pub shared: &'a Shared,
    pub monitor: &'a SourceWatch,
    /// The live monitor's section, when one served.
    pub live_view: Option<serde_json::Value>,
    pub markers: Option<&'a crate::device::lsl::MarkerStats>,
}

/// Write `latency.tsv` and `summary.json`, and finish (or abandon) the event
/// log. Outputs are disarmed by now: a file that cannot be written is
/// reported, not returned as an error that would hide how the session ended.
pub(super) fn write_session(
    joined: Joined,
    ending: Ending,
    mut progress: Progress,
    facts: SessionFacts,
) -> LiveReport {
    let Joined {
        sinks,
        writer,
        processed,
        recording,
    } = joined;
    let shared = facts.shared;
    let mut arrival_to_command = LatencyHistogram::new();
    let mut records: Vec<TriggerRecord> = Vec::new();
    for r in &sinks {
        arrival_to_command.merge(&r.arrival_to_command);
        records.extend_from_slice(&r.records);
    }
    records.sort_by_key(|r| (r.decided_at, r.sink));
    let latency = LatencyReport {
        block_processing: processed.block_processing.summary(),
        arrival_to_command: arrival_to_command.summary(),
    };
    progress.frames_done = processed.controller.next_sample();
    progress.seconds_done = facts.rate.seconds(progress.frames_done);
    let mut unwritten = Vec::new();
    let recording = recording.map(|r| match r {
        Ok(counters) => RecordingSummary {
            file: "recording.bdf",
            counters: Some(counters),
            clipped_samples: shared.clipped_samples.load(Ordering::Relaxed),
            annotation_ring_full: shared.annotation_ring_full.load(Ordering::Relaxed),
            error: None,
        },
        Err(e) => {
            unwritten.push(format!("recording.bdf: {e}"));
            RecordingSummary {
                file: "recording.bdf",
                counters: None,
                clipped_samples: shared.clipped_samples.load(Ordering::Relaxed),
                annotation_ring_full: shared.annotation_ring_full.load(Ordering::Relaxed),
                error: Some(e),
            }
        }
    });
    let live = LiveSummary {
        latency: &latency,
        runtime: RuntimeCounters {
            outputs_disarmed_before_flush: true,
            triggers_written: records.len(),
            triggers_suppressed_after_disarm: shared.suppressed_disarmed.load(Ordering::Relaxed),
            triggers_withheld_unlogged: shared.triggers_withheld.load(Ordering::Relaxed),
            acquisition_overrun_frames: shared.overrun_frames.load(Ordering::Relaxed),
            event_ring_full: shared.event_ring_full.load(Ordering::Relaxed),
            command_ring_full: shared.command_ring_full.load(Ordering::Relaxed),
        },
        recording,
        source: facts.monitor.report(),
        outputs: sinks.iter().filter_map(|r| r.device.clone()).collect(),
        lsl_markers: facts.markers.map(|m| m.report()),
        realtime: &processed.realtime,
        monitor: facts.live_view,
    };
    let summary = Summary::new(
        SummaryParts {
            command: facts.command,
            input: facts.description,
            config: facts.config,
            rate: facts.rate,
            labels: facts.labels,
            progress: &progress,
            status: ending.status(),
            error: ending.error(),
            controller: processed.controller.counters(),
            trigger: processed.controller.trigger_counters(),
            adjustments: processed.controller.adjustments(),
            wall_s: facts.wall_s,
        },
        &[],
        live,
    );
    let dir = writer.dir().to_path_buf();
    let events_logged = writer.rows();
    // The reserve goes first: on a full disk it is what makes room for these files.
    writer.release_reserve();
    if let Err(e) = write_latency_tsv(&dir, &records, facts.started) {
        unwritten.push(e.to_string());
    }
    let closed = match ending {
        Ending::Complete | Ending::Interrupted => writer.finish(&summary),
        Ending::Device(_) | Ending::Fault(_) | Ending::Storage(_) => writer.abandon(&summary),
    };
    if let Err(e) = closed {
        unwritten.push(e.to_string());
    }
    LiveReport {
        ending,
        progress,
        wall_s: facts.wall_s,
        latency,
        triggers_written: records.len(),
        dir,
        events_logged,
        adjustments: processed.controller.adjustments().to_vec(),
        unwritten: (!unwritten.is_empty()).then(|| unwritten.join("; ")),
    }
}

/// Per delivered trigger: the deciding sample, its scheduled onset, when the
/// deciding sample arrived and when the command was written (s from the
/// session start), the difference, and for a device with its own clock the
/// planned and fired device times (µs) and their difference.
fn write_latency_tsv(
    dir: &Path,
    records: &[TriggerRecord],
    started: Instant,
) -> Result<(), SessionError> {
    let path = dir.join("latency.tsv");
    let err = |error| SessionError::Write {
        path: path.clone(),
        error,
    };
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).map_err(err)?);
    writeln!(
        f,
        "decided_at_sample\tonset_sample\tsink\tarrived_s\twritten_s\tarrival_to_command_us\tplanned_device_us\tfired_device_us\tfired_minus_planned_us"
    )
    .map_err(err)?;
    for r in records {
        let na = || "n/a".to_string();
        let (planned, fired, late) = match r.device {
            Some(DeviceTime {
                planned_us,
                fired_us,
                ..
            }) => (
                planned_us.to_string(),
                fired_us.map_or_else(na, |f| f.to_string()),
                fired_us.map_or_else(na, |f| (f as i64 - planned_us as i64).to_string()),
            ),
            None => (na(), na(), na()),
        };
        writeln!(
            f,
            "{}\t{}\t{}\t{:.6}\t{:.6}\t{:.1}\t{planned}\t{fired}\t{late}",
            r.decided_at,
            r.onset,
            r.sink,
            r.arrived.duration_since(started).as_secs_f64(),
            r.written.duration_since(started).as_secs_f64(),
            r.written.duration_since(r.arrived).as_secs_f64() * 1e6
        )
        .map_err(err)?;
    }
    f.flush().map_err(err)
}
