//! Driving one session: a recording (a file, or the simulator's output) is cut
//! into blocks, pushed through the [`Controller`] and its events written to a
//! session folder. `replay` runs as fast as possible; `replay --realtime` paces
//! blocks at the recording's rate, which is the only place the wall clock is
//! read (to pace and to measure, never to decide). `run` goes through
//! [`crate::runtime::run_live`] instead and shares the summary and counts.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::{Config, ConfigError};
use crate::controller::{Block, Controller, ControllerCounters, Fault};
use crate::event::{Event, Outbox};
use crate::io::session::{SessionError, SessionWriter};
use crate::recording::Recording;
use crate::time::SampleRate;
use crate::trigger::TriggerCounters;

/// Outbox capacity per block (replay and live): far above what any detector emits per block.
pub(crate) const OUTBOX_CAPACITY: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SessionRunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Output(#[from] SessionError),
    #[error("{fault}; outputs disarmed, session stopped (partial events kept in {dir})")]
    Fault { fault: Fault, dir: String },
}

/// Where a session's samples come from, for the summary.
pub struct SessionInput<'a> {
    pub recording: &'a Recording,
    /// Signals to process (all at one rate), as from `Recording::select`.
    pub signals: Vec<usize>,
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
}

/// Run a whole session and write its folder. `stop` ends it early (Ctrl-C);
/// `on_progress` is called about every 0.25 s of input.
pub fn run_session(
    command: &str,
    input: &SessionInput,
    config: &Config,
    out: &Path,
    pacing: Pacing,
    stop: &AtomicBool,
    mut on_progress: impl FnMut(&Progress),
) -> Result<SessionReport, SessionRunError> {
    let signals: Vec<&crate::recording::Signal> = input
        .signals
        .iter()
        .map(|&i| &input.recording.signals[i])
        .collect();
    let rate = signals[0].rate;
    let channels = signals.len();
    let frames_total = signals.iter().map(|s| s.samples.len()).min().unwrap_or(0) as u64;
    let mut controller = Controller::new(config, rate, channels)?;
    if let Some(allowed) = &input.stim_allowed {
        controller.restrict_stimulation_to(allowed.clone());
    }
    let labels: Vec<String> = signals.iter().map(|s| s.label.trim().to_string()).collect();
    let mut writer = SessionWriter::create(out, rate, labels.clone(), &config.to_toml())?;

    let block_size = config.input.block_size;
    let mut block = vec![0.0; block_size * channels];
    let mut outbox = Outbox::with_capacity(OUTBOX_CAPACITY);
    let mut progress = Progress::default();
    let progress_every = rate.samples_in_s(0.25).max(1);
    let mut next_progress = 0;
    let started = Instant::now();
    let mut interrupted = false;
    let mut start = 0u64;
    let summary = |progress: &Progress,
                   status: &str,
                   error: Option<String>,
                   controller: &Controller,
                   wall_s: f64| {
        summary_json(SummaryParts {
            command,
            input: &input.description,
            config,
            rate,
            labels: &labels,
            progress,
            status,
            error,
            controller: controller.counters(),
            trigger: controller.trigger_counters(),
            wall_s,
        })
    };

    while start < frames_total {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        let frames = (frames_total - start).min(block_size as u64) as usize;
        for (f, frame) in block.chunks_exact_mut(channels).take(frames).enumerate() {
            for (slot, signal) in frame.iter_mut().zip(&signals) {
                *slot = signal.samples[start as usize + f];
            }
        }
        if pacing == Pacing::RealTime {
            let due = Duration::from_secs_f64(rate.seconds(start + frames as u64));
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        outbox.clear();
        let data = Block {
            start,
            channels,
            samples: &block[..frames * channels],
        };
        if let Err(fault) = controller.process_block(&data, &mut outbox) {
            writer.write_events(outbox.events())?;
            let dir = out.display().to_string();
            let s = summary(
                &progress,
                "error",
                Some(fault.to_string()),
                &controller,
                started.elapsed().as_secs_f64(),
            );
            writer.abandon(&s)?;
            return Err(SessionRunError::Fault { fault, dir });
        }
        count(&mut progress, outbox.events());
        writer.write_events(outbox.events())?;
        if pacing == Pacing::RealTime {
            writer.flush()?;
        }
        start += frames as u64;
        progress.frames_done = start;
        progress.seconds_done = rate.seconds(start);
        if start >= next_progress {
            on_progress(&progress);
            next_progress = start + progress_every;
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
    pub wall_s: f64,
}

pub(crate) fn summary_json(p: SummaryParts) -> serde_json::Value {
    let minutes = p.progress.seconds_done / 60.0;
    let per_minute: BTreeMap<&str, f64> = p
        .progress
        .counts
        .iter()
        .map(|(k, v)| {
            (
                *k,
                if minutes > 0.0 {
                    *v as f64 / minutes
                } else {
                    0.0
                },
            )
        })
        .collect();
    serde_json::json!({
        "status": p.status,
        "error": p.error,
        "neuroloop_version": env!("CARGO_PKG_VERSION"),
        "command": p.command,
        "input": p.input,
        "rate_hz": p.rate.hz(),
        "channels": p.labels,
        "samples": p.progress.frames_done,
        "duration_s": p.progress.seconds_done,
        "counts": p.progress.counts,
        "per_minute": per_minute,
        "trigger": p.trigger,
        "controller": p.controller,
        "processing": {
            "wall_s": p.wall_s,
            "realtime_factor": if p.wall_s > 0.0 { p.progress.seconds_done / p.wall_s } else { 0.0 },
        },
        "settings": serde_json::to_value(p.config).expect("config serialises"),
    })
}
