//! Driving one session: a streaming reader hands blocks of a recording (a
//! file, or the simulator's output) as it reads them; each is pushed through
//! the [`Controller`] at its own start sample and its events written to a
//! session folder, so memory does not grow with the recording's length.
//! `replay` runs as fast as possible; `replay --realtime` paces blocks at the
//! recording's rate, which is the only place the wall clock is read (to pace
//! and to measure, never to decide). `run` goes through
//! [`crate::runtime::run_live`] instead and shares the summary and counts.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::{Config, ConfigError};
use crate::controller::{Block, Controller, ControllerCounters, Fault};
use crate::event::{Event, Outbox};
use crate::io::session::{SessionError, SessionWriter};
use crate::io::{FileError, SignalReader};
use crate::time::SampleRate;
use crate::trigger::TriggerCounters;

/// Outbox capacity per block (replay and live): far above what any detector emits per block.
pub(crate) const OUTBOX_CAPACITY: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SessionRunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The controller cannot run on this input (its rate, its channel count):
    /// the message names the file, the signal and where its rate comes from.
    #[error("{input}: {error}")]
    Setup { input: String, error: ConfigError },
    #[error(transparent)]
    Input(#[from] FileError),
    #[error("{error}; outputs disarmed, session stopped (partial events kept in {dir})")]
    InputFailed { error: Box<FileError>, dir: String },
    #[error(transparent)]
    Output(#[from] SessionError),
    #[error("{fault}; outputs disarmed, session stopped (partial events kept in {dir})")]
    Fault { fault: Fault, dir: String },
}

/// Where a session's samples come from.
pub struct SessionInput<'a> {
    /// The recording, with the signals to process selected.
    pub source: &'a mut dyn SignalReader,
    /// Human-readable description of the source (a path, or the simulator spec).
    pub description: String,
    /// If set, stimuli only inside these `[start, end)` sample intervals (a hypnogram gate).
    pub stim_allowed: Option<Vec<(crate::time::SampleIndex, crate::time::SampleIndex)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    AsFastAsPossible,
    RealTime,
}

/// Counts reported while a session runs.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub frames_done: u64,
    pub seconds_done: f64,
    pub counts: BTreeMap<&'static str, u64>,
}

/// What a finished session reports.
#[derive(Debug, Clone)]
pub struct SessionReport {
    pub progress: Progress,
    pub interrupted: bool,
    pub wall_s: f64,
    /// Settings the detector adjusted to the recording's rate (see `Controller::adjustments`).
    pub adjustments: Vec<String>,
}

/// Run a whole session and write its folder. `stop` ends it early (Ctrl-C);
/// `on_progress` is called about every 0.25 s of input. A read error part way
/// ends the session like a fault: partial events kept, no `events.tsv`.
pub fn run_session(
    command: &str,
    input: SessionInput,
    config: &Config,
    out: &Path,
    pacing: Pacing,
    stop: &AtomicBool,
    mut on_progress: impl FnMut(&Progress),
) -> Result<SessionReport, SessionRunError> {
    let SessionInput {
        source,
        description,
        stim_allowed,
    } = input;
    let info = source.info().clone();
    let selection = source.selection().to_vec();
    let Some(&first) = selection.first() else {
        return Err(FileError::BadOption {
            path: info.path.clone(),
            problem: "no signal selected".into(),
        }
        .into());
    };
    let rate = info.signals[first].rate;
    let channels = selection.len();
    // The floating-point mode of the live processing thread, so that a
    // replay decides bit for bit as the session did.
    let _denormals = config
        .realtime
        .flush_denormals
        .then(crate::dsp::FlushDenormals::new);
    let mut controller =
        Controller::new(config, rate, channels).map_err(|error| SessionRunError::Setup {
            input: info.describe_rate(first),
            error,
        })?;
    if let Some(allowed) = stim_allowed {
        controller.restrict_stimulation_to(allowed);
    }
    let labels: Vec<String> = selection
        .iter()
        .map(|&i| info.signals[i].label.trim().to_string())
        .collect();
    let mut writer = SessionWriter::create(out, rate, labels.clone(), &config.to_toml())?;

    let mut block = vec![0.0; config.input.block_size * channels];
    let mut outbox = Outbox::with_capacity(OUTBOX_CAPACITY);
    let mut progress = Progress::default();
    let progress_every = rate.samples_in_s(0.25).max(1);
    let mut next_progress = 0;
    let started = Instant::now();
    let mut interrupted = false;
    let summary = |progress: &Progress,
                   status: &str,
                   error: Option<String>,
                   controller: &Controller,
                   wall_s: f64| {
        let summary = Summary::new(
            SummaryParts {
                command,
                input: &description,
                config,
                rate,
                labels: &labels,
                progress,
                status,
                error,
                controller: controller.counters(),
                trigger: controller.trigger_counters(),
                adjustments: controller.adjustments(),
                wall_s,
            },
            &info.notices,
            (),
        );
        serde_json::to_value(summary).expect("the summary serialises")
    };

    // A failed session keeps its partial events and a summary saying why; returns the folder.
    let abandon = |writer: SessionWriter,
                   progress: &Progress,
                   controller: &Controller,
                   error: String|
     -> Result<String, SessionError> {
        let wall_s = started.elapsed().as_secs_f64();
        writer.abandon(&summary(progress, "error", Some(error), controller, wall_s))?;
        Ok(out.display().to_string())
    };

    loop {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        let read = match source.read_block(&mut block) {
            Ok(Some(read)) => read,
            Ok(None) => break,
            Err(error) => {
                let dir = abandon(writer, &progress, &controller, error.to_string())?;
                return Err(SessionRunError::InputFailed {
                    error: Box::new(error),
                    dir,
                });
            }
        };
        let end = read.start + read.frames as u64;
        if pacing == Pacing::RealTime {
            let due = Duration::from_secs_f64(rate.seconds(end));
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        outbox.clear();
        let data = Block {
            start: read.start,
            channels,
            samples: &block[..read.frames * channels],
        };
        if let Err(fault) = controller.process_block(&data, &mut outbox) {
            writer.write_events(outbox.events())?;
            let dir = abandon(writer, &progress, &controller, fault.to_string())?;
            return Err(SessionRunError::Fault { fault, dir });
        }
        count(&mut progress, outbox.events());
        writer.write_events(outbox.events())?;
        if pacing == Pacing::RealTime {
            writer.flush()?;
        }
        progress.frames_done = end;
        progress.seconds_done = rate.seconds(end);
        if end >= next_progress {
            on_progress(&progress);
            next_progress = end + progress_every;
        }
    }
    outbox.clear();
    controller.finish(&mut outbox);
    count(&mut progress, outbox.events());
    writer.write_events(outbox.events())?;
    on_progress(&progress);
    let wall_s = started.elapsed().as_secs_f64();
    let status = if interrupted {
        "interrupted"
    } else {
        "complete"
    };
    writer.finish(&summary(&progress, status, None, &controller, wall_s))?;
    Ok(SessionReport {
        progress,
        interrupted,
        wall_s,
        adjustments: controller.adjustments().to_vec(),
    })
}

pub(crate) fn count<'a>(progress: &mut Progress, events: impl IntoIterator<Item = &'a Event>) {
    for event in events {
        let key = match event {
            Event::Detection(d) => d.kind.trial_type(),
            Event::Trigger(t) => t.trial_type(),
        };
        *progress.counts.entry(key).or_default() += 1;
    }
}

/// What every `summary.json` has: how the session ended, what it read, what
/// it found and decided, its settings.
pub(crate) struct SummaryParts<'a> {
    pub command: &'a str,
    /// Description of the source.
    pub input: &'a str,
    pub config: &'a Config,
    pub rate: SampleRate,
    pub labels: &'a [String],
    pub progress: &'a Progress,
    pub status: &'a str,
    pub error: Option<String>,
    pub controller: ControllerCounters,
    pub trigger: TriggerCounters,
    pub adjustments: &'a [String],
    pub wall_s: f64,
}

/// `summary.json`.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Summary<'a, Live: serde::Serialize> {
    status: &'a str,
    error: Option<String>,
    neuroloop_version: &'static str,
    command: &'a str,
    input: &'a str,
    rate_hz: f64,
    channels: &'a [String],
    samples: u64,
    duration_s: f64,
    counts: &'a BTreeMap<&'static str, u64>,
    per_minute: BTreeMap<&'static str, f64>,
    trigger: TriggerCounters,
    controller: ControllerCounters,
    adjustments: &'a [String],
    processing: Processing,
    settings: &'a Config,
    /// What the reader tolerated (replay).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    input_notices: &'a [String],
    /// A live session's own sections.
    #[serde(flatten)]
    live: Live,
}

#[derive(Debug, serde::Serialize)]
struct Processing {
    wall_s: f64,
    realtime_factor: f64,
}

impl<'a, Live: serde::Serialize> Summary<'a, Live> {
    pub fn new(p: SummaryParts<'a>, input_notices: &'a [String], live: Live) -> Self {
        let minutes = p.progress.seconds_done / 60.0;
        let rate = |n: u64| {
            if minutes > 0.0 {
                n as f64 / minutes
            } else {
                0.0
            }
        };
        Self {
            status: p.status,
            error: p.error,
            neuroloop_version: env!("CARGO_PKG_VERSION"),
            command: p.command,
            input: p.input,
            rate_hz: p.rate.hz(),
            channels: p.labels,
            samples: p.progress.frames_done,
            duration_s: p.progress.seconds_done,
            counts: &p.progress.counts,
            per_minute: p
                .progress
                .counts
                .iter()
                .map(|(k, &v)| (*k, rate(v)))
                .collect(),
            trigger: p.trigger,
            controller: p.controller,
            adjustments: p.adjustments,
            processing: Processing {
                wall_s: p.wall_s,
                realtime_factor: if p.wall_s > 0.0 {
                    p.progress.seconds_done / p.wall_s
                } else {
                    0.0
                },
            },
            settings: p.config,
            input_notices,
            live,
        }
    }
}
