//! Live sessions. Threads and what joins them:
//!
//! ```text
//!  acquisition ──SPSC ring (samples + chunk headers)──▶ processing ──SPSC ring──▶ sink thread (Pulse Pal …)
//!  (serial port / paced recording)                      (Controller::process_block) ──SPSC ring──▶ log thread (session folder)
//! ```
//!
//! Every ring is a lock-free `ringbuf` SPSC queue sized at start; producers
//! never block (a full ring is counted, never waited on) and wake their
//! consumer with `Thread::unpark`. The processing thread asks for real-time
//! priority (SCHED_FIFO) and warns when it is not permitted. The calling
//! thread runs the control plane on tokio (`control.rs`): it supervises, and
//! a stop signal, a device error or a controller fault **disarms
//! every output first** (no further trigger is written and each sink thread
//! is joined after sending its device's abort), then stops acquisition and
//! processing, then flushes the session folder, then returns the reason.
//! The live monitor (`live_view`) is fed by the processing, journal and sink
//! threads through lossy rings of their own and served on that runtime.
//!
//! Time: chunks carry the host `Instant` at which their bytes arrived; a
//! trigger command carries the arrival time of the chunk holding its deciding
//! sample, and the sink records when its bytes were written. Those two, not
//! the sample clock, are what `latency.tsv` and `summary.json` report.

pub mod config;
mod control;
mod journal;
pub mod latency;
pub mod latency_test;
mod live_view;
mod processing;
mod realtime;
mod recorder;
mod ring;
mod sinks;
mod source_watch;
mod summary;
mod threads;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::{Config, ConfigError};
use crate::controller::{Controller, Fault};
use crate::device::{DeviceError, DeviceTime, OpenError, Opened, TriggerOutput};
use crate::io::session::{SessionError, SessionWriter};
use crate::recording::{Recording, SelectError, Signal};
use crate::session::Progress;
use crate::time::SampleIndex;
pub use control::stop_on_signals;
pub use live_view::{monotonic_ns, MonitorError, MonitorSpec, DEFAULT_ADDRESS as DEFAULT_MONITOR};
use live_view::{Hello, Monitor, Watched};
use source_watch::SourceWatch;
use summary::{write_session, SessionFacts};
pub use summary::{LatencyReport, LiveReport};
use threads::{shut_down, start_threads, Common, Flags};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error(transparent)]
    Output(#[from] SessionError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Lsl(#[from] crate::device::lsl::LslError),
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// One delivered trigger as a sink saw it.
#[derive(Debug, Clone, Copy)]
pub struct TriggerRecord {
    pub sink: &'static str,
    pub decided_at: SampleIndex,
    pub onset: SampleIndex,
    pub arrived: Instant,
    pub written: Instant,
    /// On the device's clock, for devices that report it.
    pub device: Option<DeviceTime>,
}

/// Why a live session ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// The source ended or the requested duration was reached.
    Complete,
    /// Ctrl-C.
    Interrupted,
    /// A device failed (source or sink).
    Device(DeviceError),
    /// The controller refused its input.
    Fault(Fault),
    /// The session could not be recorded (event log or signal): a full disk,
    /// a folder that became unwritable.
    Storage(String),
}

impl Ending {
    fn status(&self) -> &'static str {
        match self {
            Ending::Complete => "complete",
            Ending::Interrupted => "interrupted",
            Ending::Device(_) | Ending::Fault(_) | Ending::Storage(_) => "error",
        }
    }

    /// Why the session failed; `None` when it did not.
    pub fn error(&self) -> Option<String> {
        match self {
            Ending::Complete | Ending::Interrupted => None,
            Ending::Device(e) => Some(e.to_string()),
            Ending::Fault(f) => Some(f.to_string()),
            Ending::Storage(e) => Some(format!("the session could not be recorded: {e}")),
        }
    }
}

/// Counters shared by the threads, for the summary and the status line.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    frames_done: AtomicU64,
    overrun_frames: Arc<AtomicU64>,
    event_ring_full: AtomicU64,
    command_ring_full: AtomicU64,
    suppressed_disarmed: AtomicU64,
    /// Delivered triggers never released because their row could not be logged.
    triggers_withheld: AtomicU64,
    /// Samples beyond the recording's range (clipped for the detectors too).
    clipped_samples: Arc<AtomicU64>,
    /// Events not annotated in the recording (its queue was full).
    annotation_ring_full: AtomicU64,
}

pub struct LiveSpec<'a> {
    pub command: &'a str,
    pub config: &'a Config,
    pub opened: Opened,
    pub outputs: Vec<Box<dyn TriggerOutput>>,
    pub out: &'a Path,
    /// Stop after this much signal (None: until the source ends or Ctrl-C).
    pub duration_s: Option<f64>,
    /// Serve the live monitor page.
    pub monitor: Option<MonitorSpec>,
}

/// Run a live session to its end and write its folder. `on_status` is called
/// about once a second with the counts so far.
pub fn run_live(
    spec: LiveSpec,
    stop: &AtomicBool,
    mut on_status: impl FnMut(&Progress),
) -> Result<LiveReport, RuntimeError> {
    let started = Instant::now();
    let command = spec.command;
    let config = spec.config;
    let rate = spec.opened.rate;
    let selected = select_channels(config, &spec.opened)?;
    let labels: Vec<String> = selected
        .iter()
        .map(|&i| spec.opened.labels[i].clone())
        .collect();
    let mut controller = Controller::new(config, rate, selected.len())?;
    // Listen before anything is created: a taken port fails the session at once.
    let monitor = spec.monitor.as_ref().map(Monitor::bind).transpose()?;
    let markers = config
        .lsl_markers
        .as_ref()
        .map(|c| crate::device::lsl::MarkerOutlet::open(c, started))
        .transpose()?;
    let marker_stats = markers.as_ref().map(|m| m.stats());
    let writer = SessionWriter::create(spec.out, rate, labels.clone(), &config.to_toml())?;
    let source = SourceWatch::of(&spec.opened.source);
    let description = spec.opened.description.clone();
    tracing::debug!(
        "neuroloop {} {command}: {description}, {} Hz, channels {labels:?}, {} output(s), folder {}",
        env!("CARGO_PKG_VERSION"),
        rate.hz(),
        spec.outputs.len(),
        spec.out.display()
    );

    // Before any thread starts: nothing can fail between arming and supervising.
    let runtime = control::supervisor_runtime()?;
    let flags = Flags::default();
    flags.armed.store(true, Ordering::SeqCst);
    let shared = Arc::new(Shared::default());
    let progress = Arc::new(Mutex::new(Progress::default()));
    let (notice_tx, notices) = control::notice_channel();
    // The session's warnings, for the monitor's page.
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let (mut taps, mut serving, mut farewell, mut monitor_summary) = (None, None, None, None);
    if let Some(monitor) = monitor {
        let (display, tapped, feeds) =
            monitor.tap(rate, spec.opened.max_chunk_frames, spec.outputs.len());
        let hello = Hello {
            description: description.clone(),
            rate_hz: rate.hz(),
            labels: labels.clone(),
            raw_label: labels[controller.display_channel()].clone(),
            outputs: spec.outputs.iter().map(|o| o.name()).collect(),
            units: controller.display_units(),
            bin_frames: display.bin_frames(),
            disarm: monitor.has_token(),
        };
        controller.enable_display(display);
        let watched = Watched {
            shared: shared.clone(),
            progress: progress.clone(),
            source: source.clone(),
            armed: flags.armed.clone(),
            notices: notice_tx.clone(),
            warnings: warnings.clone(),
        };
        tracing::info!("monitor: {}", monitor.url());
        monitor_summary = Some((monitor.addr(), monitor.counters()));
        let (served, bye) = monitor.serve(feeds, hello, watched);
        (serving, farewell) = (Some(served), Some(bye));
        taps = Some(tapped);
    }
    let common = Common {
        flags: &flags,
        shared: &shared,
        notices: notice_tx,
    };
    let threads = start_threads(
        spec, controller, selected, writer, markers, &progress, common, taps,
    )?;

    let ending = control::supervise(
        &runtime,
        notices,
        stop,
        |warn| source.warn(&shared, warn),
        || {
            let mut p = progress.lock().unwrap_or_else(|e| e.into_inner()).clone();
            p.frames_done = shared.frames_done.load(Ordering::Relaxed);
            p.seconds_done = rate.seconds(p.frames_done);
            on_status(&p);
        },
        |message| live_view::remember_warning(&warnings, message),
        serving,
    );
    tracing::debug!(
        "session ending ({}): disarming outputs first",
        ending.status()
    );
    let joined = shut_down(threads, &flags)?;
    tracing::debug!("outputs disarmed, threads joined");
    let wall_s = started.elapsed().as_secs_f64();
    let progress = progress.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let report = write_session(
        joined,
        ending,
        progress,
        SessionFacts {
            command,
            config,
            description: &description,
            labels: &labels,
            rate,
            started,
            wall_s,
            shared: &shared,
            monitor: &source,
            live_view: monitor_summary.map(|(addr, counters)| live_view::report(addr, &counters)),
            markers: marker_stats.as_deref(),
        },
    );
    if let Some(farewell) = farewell {
        farewell.send(&runtime, &report);
    }
    Ok(report)
}

/// Resolve the configured channels against the source's labels.
fn select_channels(config: &Config, opened: &Opened) -> Result<Vec<usize>, RuntimeError> {
    let probe = Recording {
        signals: opened
            .labels
            .iter()
            .map(|l| Signal {
                label: l.clone(),
                unit: "uV".into(),
                rate: opened.rate,
                samples: Vec::new(),
            })
            .collect(),
        annotations: Vec::new(),
    };
    Ok(probe.select(&config.input.selectors())?)
}

fn thread_panicked(which: &str) -> RuntimeError {
    RuntimeError::Thread(std::io::Error::other(format!(
        "the {which} thread panicked"
    )))
}
