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
//!
//! Time: chunks carry the host `Instant` at which their bytes arrived; a
//! trigger command carries the arrival time of the chunk holding its deciding
//! sample, and the sink records when its bytes were written. Those two, not
//! the sample clock, are what `latency.tsv` and `summary.json` report.

pub mod config;
mod control;
pub mod latency;
pub mod latency_test;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::click::ClickSpec;
use crate::config::{Config, ConfigError};
use crate::controller::{Block, Controller, Fault};
use crate::event::{Event, Outbox, TriggerDecision};
use crate::io::audio;
use crate::io::openbci::{self, CytonCounters, DeviceError, FrameSink, Framer};
use crate::io::pulsepal;
use crate::io::session::{SessionError, SessionWriter};
use crate::recording::{Recording, SelectError, Signal};
use crate::session::{count, summary_json, Progress, SummaryParts, OUTBOX_CAPACITY};
use crate::time::{SampleIndex, SampleRate};
pub use control::stop_on_signals;
use control::Notice;
use latency::{LatencyHistogram, LatencySummary};

/// Events buffered between the processing and the log thread.
const EVENT_RING: usize = 1 << 16;
/// Trigger commands buffered per sink.
const COMMAND_RING: usize = 1024;
/// The acquisition ring holds this much signal, or `MIN_RING_FRAMES`
/// frames (and chunks) if that is more, to ride out scheduling gaps.
const SAMPLE_RING_S: f64 = 2.0;
const MIN_RING_FRAMES: usize = 1 << 16;

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
    Audio(#[from] crate::io::audio::AudioError),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// Header of a chunk of frames in the sample ring.
#[derive(Debug, Clone, Copy)]
struct ChunkHeader {
    start: SampleIndex,
    frames: usize,
    arrived: Instant,
}

/// The producer side of the acquisition ring.
pub struct RingWriter {
    samples: HeapProd<f64>,
    headers: HeapProd<ChunkHeader>,
    channels: usize,
    consumer: Thread,
    overrun_frames: Arc<AtomicU64>,
}

impl FrameSink for RingWriter {
    fn push(&mut self, start: SampleIndex, samples: &[f64], arrived: Instant) {
        let frames = samples.len() / self.channels;
        if self.samples.vacant_len() < samples.len() || self.headers.is_full() {
            // Processing is behind: drop the chunk; the controller sees the gap.
            self.overrun_frames
                .fetch_add(frames as u64, Ordering::Relaxed);
            return;
        }
        self.samples.push_slice(samples);
        let _ = self.headers.try_push(ChunkHeader {
            start,
            frames,
            arrived,
        });
        self.consumer.unpark();
    }
}

/// A recording served as a live source: blocks of `block` frames paced at
/// `speed` × real time (the simulator's `run`, or a file).
pub struct RecordingSource {
    frames: Vec<f64>,
    channels: usize,
    rate: SampleRate,
    block: usize,
    speed: f64,
}

impl RecordingSource {
    fn run(&self, out: &mut RingWriter, stop: &AtomicBool) {
        let started = Instant::now();
        let total = self.frames.len() / self.channels;
        let mut start = 0;
        while start < total && !stop.load(Ordering::Relaxed) {
            let n = self.block.min(total - start);
            let due = Duration::from_secs_f64(self.rate.seconds((start + n) as u64) / self.speed);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            let samples = &self.frames[start * self.channels..(start + n) * self.channels];
            out.push(start as u64, samples, Instant::now());
            start += n;
        }
    }
}

/// An OpenBCI Cyton on a serial port, configured and streaming.
pub struct CytonSource {
    port: Box<dyn serialport::SerialPort>,
    framer: Framer,
    stall: Duration,
    pub counters: Arc<CytonCounters>,
}

/// A sound card's input stream: the cpal callback fills a ring (see
/// `io/audio.rs`); the acquisition thread scales the chosen channels to µV.
pub struct AudioSource {
    input: audio::AudioInput,
    /// Device channel of each source channel.
    channels: Vec<usize>,
    uv_per_full_scale: f64,
    stall: Duration,
}

impl AudioSource {
    /// Move captured frames, scaled to µV, into `out` until `stop` is set,
    /// the stream fails, or no data arrives for the stall time.
    pub fn run(&mut self, out: &mut dyn FrameSink, stop: &AtomicBool) -> Result<(), DeviceError> {
        self.input.wake_current_thread();
        let mut raw = vec![0.0f32; self.input.max_chunk_samples()];
        let stride = self.input.device_channels();
        let mut chunk = vec![0.0; raw.len() / stride * self.channels.len()];
        let mut last_data = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let mut got_any = false;
            while let Some((head, samples)) = self.input.pop(&mut raw) {
                let mut frames = 0;
                for (src, dst) in samples
                    .chunks_exact(stride)
                    .zip(chunk.chunks_exact_mut(self.channels.len()))
                {
                    for (d, &c) in dst.iter_mut().zip(&self.channels) {
                        *d = f64::from(src[c]) * self.uv_per_full_scale;
                    }
                    frames += 1;
                }
                out.push(
                    head.start,
                    &chunk[..frames * self.channels.len()],
                    head.arrived,
                );
                got_any = true;
            }
            if let Some(message) = self.input.fatal_error() {
                return Err(DeviceError::Disconnected {
                    device: "audio",
                    message,
                });
            }
            let now = Instant::now();
            if got_any {
                last_data = now;
            } else if now.duration_since(last_data) > self.stall {
                return Err(DeviceError::Stalled {
                    device: "audio",
                    ms: self.stall.as_millis() as u64,
                });
            }
            // The callback unparks this thread when it queues data.
            std::thread::park_timeout(self.stall / 4);
        }
        Ok(())
    }
}

/// Where a live session's samples come from.
pub enum Source {
    Recording(RecordingSource),
    Cyton(CytonSource),
    Audio(AudioSource),
}

/// What the processing side needs to know about a source before it starts.
pub struct Opened {
    pub source: Source,
    pub rate: SampleRate,
    pub labels: Vec<String>,
    pub description: String,
    /// Largest chunk (frames) the source pushes at once.
    pub max_chunk_frames: usize,
}

/// The simulator (or any recording) as a paced source over its signals.
pub fn recording_source(
    recording: &Recording,
    block: usize,
    speed: f64,
    description: String,
) -> Result<Opened, RuntimeError> {
    let signals = &recording.signals;
    let first = signals.first().ok_or(SelectError::Empty)?;
    Ok(Opened {
        rate: first.rate,
        labels: signals.iter().map(|s| s.label.trim().to_string()).collect(),
        description,
        max_chunk_frames: block,
        source: Source::Recording(RecordingSource {
            frames: recording.interleaved(),
            channels: signals.len(),
            rate: first.rate,
            block,
            speed,
        }),
    })
}

/// Open a Cyton and set its mode and gains; the acquisition thread starts the stream.
pub fn open_cyton(c: &config::OpenBciConfig) -> Result<Opened, RuntimeError> {
    let open_err = |message: String| DeviceError::Open {
        device: "openbci",
        port: c.port.clone(),
        message,
    };
    let mut port = serialport::new(&c.port, 115_200)
        .timeout(Duration::from_millis(10))
        .open()
        .map_err(|e| open_err(e.to_string()))?;
    openbci::configure(&mut port, c.daisy, c.gain)?;
    let channels = openbci::channels(c.daisy);
    let framer = Framer::new(c.daisy, c.gain);
    let rate = SampleRate::new(framer.rate_hz()).expect("constant rate");
    Ok(Opened {
        rate,
        labels: (1..=channels).map(|k| format!("ch{k}")).collect(),
        description: format!(
            "OpenBCI Cyton{} on {} (gain {})",
            if c.daisy { " + Daisy" } else { "" },
            c.port,
            c.gain
        ),
        max_chunk_frames: openbci::MAX_FRAMES_PER_READ,
        source: Source::Cyton(CytonSource {
            port,
            framer,
            stall: Duration::from_secs_f64(c.stall_ms / 1000.0),
            counters: Arc::new(CytonCounters::default()),
        }),
    })
}

/// Open a sound card's input and start capturing into its ring.
pub fn open_audio(c: &config::AudioSourceConfig) -> Result<Opened, RuntimeError> {
    let input = audio::AudioInput::open(&audio::AudioInputSpec {
        device: c.device.clone(),
        device_channels: c.stream_channels(),
        rate_hz: c.rate_hz,
        period_frames: c.period_frames,
    })?;
    let rate = SampleRate::new(f64::from(c.rate_hz)).map_err(|e| ConfigError::Invalid {
        field: "source.rate_hz",
        message: e.to_string(),
    })?;
    let description = format!(
        "audio input {} ({}, channels {:?} of {}, {} V full scale)",
        input.device,
        input.sample_format,
        c.channels,
        c.stream_channels(),
        c.volts_per_full_scale
    );
    Ok(Opened {
        rate,
        labels: c.channels.iter().map(|k| format!("in{k}")).collect(),
        description,
        max_chunk_frames: c.period_frames as usize,
        source: Source::Audio(AudioSource {
            input,
            channels: c.channels.iter().map(|&k| usize::from(k)).collect(),
            uv_per_full_scale: c.volts_per_full_scale * 1e6,
            stall: Duration::from_secs_f64(c.stall_ms / 1000.0),
        }),
    })
}

/// A trigger for a sink: the decision, when its deciding sample arrived and
/// when (host time) the stimulus is due.
#[derive(Debug, Clone, Copy)]
pub struct TriggerCommand {
    pub decision: TriggerDecision,
    pub arrived: Instant,
    pub due: Instant,
}

/// A device that turns trigger commands into stimuli. Runs on its own thread.
pub trait TriggerOutput: Send {
    fn name(&self) -> &'static str;
    /// Deliver now. An error means the device can no longer be trusted.
    fn fire(&mut self, command: &TriggerCommand) -> Result<(), DeviceError>;
    /// Stop anything the device is playing (best effort, at shutdown).
    fn disarm(&mut self) -> Result<(), DeviceError>;
    /// True when the device times the stimulus itself from `due`, so the
    /// sink hands commands over at once instead of waiting until `due`.
    fn schedules_ahead(&self) -> bool {
        false
    }
    /// Called when no command is waiting (at least every 20 ms): a device
    /// that needs keep-alives or clock sync does it here. An error means the
    /// device can no longer be trusted.
    fn idle(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
    /// Device counters for `summary.json` (after `disarm`).
    fn report(&self) -> Option<serde_json::Value> {
        None
    }
    /// For a device with its own clock: per `fire`, in order, when the
    /// stimulus was planned and when the device fired it (after `disarm`).
    fn device_times(&self) -> Vec<DeviceTime> {
        Vec::new()
    }
}

/// A stimulus on a device's own clock (µs since the driver opened it, as
/// far as the device's clock runs): planned from the stim's onset through
/// the clock sync, fired as the device reported (`None`: never fired, e.g.
/// refused or cancelled by the disarm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceTime {
    pub onset: SampleIndex,
    pub planned_us: u64,
    pub fired_us: Option<u64>,
}

/// A sound card playing the click at the output frame of each stim's onset.
pub struct AudioClick {
    output: audio::ClickOutput,
    latency_configured: bool,
}

impl AudioClick {
    pub fn open(
        c: &config::AudioClickConfig,
        session_rate: SampleRate,
    ) -> Result<Self, audio::AudioError> {
        let spec = audio::ClickOutputSpec {
            device: c.device.clone(),
            rate_hz: c.rate_hz,
            channels: c.channels,
            period_frames: c.period_frames,
            click: ClickSpec {
                duration_ms: c.click_ms,
                ramp_ms: c.ramp_ms,
                level_dbfs: c.level_dbfs,
                ..ClickSpec::default()
            },
            device_latency: c
                .device_latency_ms
                .map(|ms| Duration::from_secs_f64(ms / 1000.0)),
            max_clock_error_ms: c.max_clock_error_ms,
            session_rate_hz: session_rate.hz(),
        };
        Ok(Self {
            output: audio::ClickOutput::open(&spec)?,
            latency_configured: c.device_latency_ms.is_some(),
        })
    }
}

impl TriggerOutput for AudioClick {
    fn name(&self) -> &'static str {
        "audio-click"
    }
    fn fire(&mut self, command: &TriggerCommand) -> Result<(), DeviceError> {
        self.output
            .schedule(audio::ClickCommand {
                onset: command.decision.onset,
                due: command.due,
            })
            .map_err(|e| DeviceError::Disconnected {
                device: "audio-click",
                message: e.to_string(),
            })
    }
    fn disarm(&mut self) -> Result<(), DeviceError> {
        self.output.disarm();
        Ok(())
    }
    fn schedules_ahead(&self) -> bool {
        true
    }
    fn report(&self) -> Option<serde_json::Value> {
        let c = &self.output.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let errors = self
            .output
            .errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        Some(serde_json::json!({
            "kind": "audio-click",
            "device": self.output.device,
            "click_frames": self.output.click_frames,
            "device_latency_source": if self.latency_configured { "configured" } else { "measured" },
            "backend_delay_ms_last": get(&c.backend_delay_ns_last) as f64 / 1e6,
            "backend_delay_ms_max": get(&c.backend_delay_ns_max) as f64 / 1e6,
            "frames_written": get(&c.frames_written),
            "clicks_started": get(&c.clicks_started),
            "late_clicks": get(&c.late_clicks),
            "late_frames_max": get(&c.late_frames_max),
            "clicks_dropped": get(&c.clicks_dropped),
            "reanchors": get(&c.reanchors),
            "underruns": get(&c.underruns),
            "stream_errors": get(&c.stream_errors),
            "errors": errors,
        }))
    }
}

/// Pulse Pal v2 on a serial port.
pub struct PulsePal {
    port: Box<dyn serialport::SerialPort>,
    message: [u8; 3],
}

impl PulsePal {
    pub fn open(c: &config::PulsePalConfig, pulse_s: f64) -> Result<Self, DeviceError> {
        let mut port = serialport::new(&c.port, 115_200)
            .timeout(Duration::from_secs_f64(c.write_timeout_ms / 1000.0))
            .open()
            .map_err(|e| DeviceError::Open {
                device: "pulse-pal",
                port: c.port.clone(),
                message: e.to_string(),
            })?;
        pulsepal::connect(&mut port, c.channel, c.volts, pulse_s)?;
        Ok(Self {
            port,
            message: pulsepal::trigger_message(c.channel),
        })
    }
}

fn sink_err(e: std::io::Error) -> DeviceError {
    let message = if e.kind() == std::io::ErrorKind::TimedOut {
        "stopped accepting data (write timed out)".to_string()
    } else {
        e.to_string()
    };
    DeviceError::Disconnected {
        device: "pulse-pal",
        message,
    }
}

impl TriggerOutput for PulsePal {
    fn name(&self) -> &'static str {
        "pulse-pal"
    }
    fn fire(&mut self, _command: &TriggerCommand) -> Result<(), DeviceError> {
        self.port.write_all(&self.message).map_err(sink_err)?;
        self.port.flush().map_err(sink_err)
    }
    fn disarm(&mut self) -> Result<(), DeviceError> {
        self.port
            .write_all(&[pulsepal::OP_MENU, pulsepal::OP_ABORT])
            .map_err(sink_err)
    }
}

/// Open every configured output; `session_rate` is the source's sample rate.
pub fn open_outputs(
    config: &Config,
    session_rate: SampleRate,
) -> Result<Vec<Box<dyn TriggerOutput>>, RuntimeError> {
    let pulse_s = config.trigger.pulse_ms / 1000.0;
    config
        .outputs
        .iter()
        .map(|o| match o {
            config::OutputConfig::PulsePal(c) => {
                Ok(Box::new(PulsePal::open(c, pulse_s)?) as Box<dyn TriggerOutput>)
            }
            config::OutputConfig::AudioClick(c) => {
                Ok(Box::new(AudioClick::open(c, session_rate)?) as Box<dyn TriggerOutput>)
            }
            config::OutputConfig::TriggerBox(c) => Ok(Box::new(
                crate::device::trigger_box::TriggerBox::open(c, config.trigger.pulse_ms)?,
            ) as Box<dyn TriggerOutput>),
        })
        .collect()
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
}

impl Ending {
    fn status(&self) -> &'static str {
        match self {
            Ending::Complete => "complete",
            Ending::Interrupted => "interrupted",
            Ending::Device(_) | Ending::Fault(_) => "error",
        }
    }

    /// Why the session failed; `None` when it did not.
    pub fn error(&self) -> Option<String> {
        match self {
            Ending::Complete | Ending::Interrupted => None,
            Ending::Device(e) => Some(e.to_string()),
            Ending::Fault(f) => Some(f.to_string()),
        }
    }
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
}

/// Counters shared by the threads, for the summary and the status line.
#[derive(Debug, Default)]
struct Shared {
    frames_done: AtomicU64,
    overrun_frames: Arc<AtomicU64>,
    event_ring_full: AtomicU64,
    command_ring_full: AtomicU64,
    suppressed_disarmed: AtomicU64,
}

pub struct LiveSpec<'a> {
    pub command: &'a str,
    pub config: &'a Config,
    pub opened: Opened,
    pub outputs: Vec<Box<dyn TriggerOutput>>,
    pub out: &'a Path,
    /// Stop after this much signal (None: until the source ends or Ctrl-C).
    pub duration_s: Option<f64>,
    pub realtime_priority: bool,
}

struct SinkReport {
    records: Vec<TriggerRecord>,
    arrival_to_command: LatencyHistogram,
    device: Option<serde_json::Value>,
}

struct ProcessingReport {
    controller: Controller,
    block_processing: LatencyHistogram,
}

/// Ask for SCHED_FIFO on the calling thread.
fn request_realtime_priority() -> Result<(), std::io::Error> {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: plain syscall on the current thread with a valid parameter.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, RuntimeError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(RuntimeError::Thread)
}

/// Run a live session to its end and write its folder. `on_status` is called
/// about once a second with the counts so far.
pub fn run_live(
    spec: LiveSpec,
    stop: &AtomicBool,
    mut on_status: impl FnMut(&Progress),
) -> Result<LiveReport, RuntimeError> {
    let LiveSpec {
        command,
        config,
        opened,
        outputs,
        out,
        duration_s,
        realtime_priority,
    } = spec;
    let started = Instant::now();
    let rate = opened.rate;
    // Resolve the configured channels against the source's labels.
    let probe = Recording {
        signals: opened
            .labels
            .iter()
            .map(|l| Signal {
                label: l.clone(),
                unit: "uV".into(),
                rate,
                samples: Vec::new(),
            })
            .collect(),
        annotations: Vec::new(),
    };
    let selected = probe.select(&config.input.selectors())?;
    let labels: Vec<String> = selected.iter().map(|&i| opened.labels[i].clone()).collect();
    let source_channels = opened.labels.len();
    let mut controller = Controller::new(config, rate, selected.len())?;
    let writer = SessionWriter::create(out, rate, labels.clone(), &config.to_toml())?;
    let limit = duration_s.map(|s| rate.samples_in_s(s));

    let (notice_tx, notices) = control::notice_channel();
    let shared = Arc::new(Shared::default());
    let armed = Arc::new(AtomicBool::new(true));
    let stop_sinks = Arc::new(AtomicBool::new(false));
    let stop_acquisition = Arc::new(AtomicBool::new(false));
    let stop_processing = Arc::new(AtomicBool::new(false));
    let source_done = Arc::new(AtomicBool::new(false));
    let stop_log = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Mutex::new(Progress::default()));

    // Log thread: events → session folder.
    let (mut event_tx, mut event_rx) = HeapRb::<Event>::new(EVENT_RING).split();
    let log_thread = {
        let (stop_log, progress) = (stop_log.clone(), progress.clone());
        let mut writer = writer;
        spawn(
            "neuroloop-log",
            move || -> Result<SessionWriter, SessionError> {
                let mut batch = Vec::with_capacity(1024);
                loop {
                    let finished = stop_log.load(Ordering::Acquire);
                    while let Some(e) = event_rx.try_pop() {
                        batch.push(e);
                    }
                    if !batch.is_empty() {
                        writer.write_events(&batch)?;
                        writer.flush()?;
                        let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
                        count(&mut p, &batch);
                        batch.clear();
                    }
                    if finished {
                        return Ok(writer);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            },
        )?
    };

    // Sink threads.
    let mut sink_producers: Vec<(HeapProd<TriggerCommand>, Thread)> = Vec::new();
    let mut sink_threads = Vec::new();
    let capacity = config.trigger.max_per_session as usize + 1;
    for mut output in outputs {
        let (tx, mut rx): (HeapProd<TriggerCommand>, HeapCons<TriggerCommand>) =
            HeapRb::new(COMMAND_RING).split();
        let (armed, stop_sinks, shared, notice_tx) = (
            armed.clone(),
            stop_sinks.clone(),
            shared.clone(),
            notice_tx.clone(),
        );
        let name = output.name();
        let ahead = output.schedules_ahead();
        let handle = spawn(&format!("neuroloop-{name}"), move || {
            let mut report = SinkReport {
                records: Vec::with_capacity(capacity),
                arrival_to_command: LatencyHistogram::new(),
                device: None,
            };
            while !stop_sinks.load(Ordering::Acquire) {
                let Some(cmd) = rx.try_pop() else {
                    if let Err(e) = output.idle() {
                        let _ = notice_tx.send(Notice::Device(e));
                        break;
                    }
                    std::thread::park_timeout(Duration::from_millis(20));
                    continue;
                };
                if let Some(wait) = cmd.due.checked_duration_since(Instant::now()) {
                    if !ahead {
                        std::thread::sleep(wait);
                    }
                }
                if !armed.load(Ordering::SeqCst) {
                    shared.suppressed_disarmed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if let Err(e) = output.fire(&cmd) {
                    let _ = notice_tx.send(Notice::Device(e));
                    break;
                }
                let written = Instant::now();
                report
                    .arrival_to_command
                    .record(written.duration_since(cmd.arrived));
                if report.records.len() < report.records.capacity() {
                    report.records.push(TriggerRecord {
                        sink: name,
                        decided_at: cmd.decision.decided_at,
                        onset: cmd.decision.onset,
                        arrived: cmd.arrived,
                        written,
                        device: None,
                    });
                }
            }
            // Best effort: the device may be the thing that failed.
            let _ = output.disarm();
            report.device = output.report();
            for (r, t) in report.records.iter_mut().zip(output.device_times()) {
                debug_assert_eq!(r.onset, t.onset);
                r.device = Some(t);
            }
            report
        })?;
        sink_producers.push((tx, handle.thread().clone()));
        sink_threads.push(handle);
    }

    // Processing thread.
    let ring_frames = ((rate.hz() * SAMPLE_RING_S).ceil() as usize).max(MIN_RING_FRAMES);
    let (sample_tx, mut sample_rx) =
        HeapRb::<f64>::new((ring_frames + opened.max_chunk_frames) * source_channels).split();
    let (header_tx, mut header_rx) = HeapRb::<ChunkHeader>::new(ring_frames).split();
    let processing_thread = {
        let (stop_processing, source_done, shared, notice_tx) = (
            stop_processing.clone(),
            source_done.clone(),
            shared.clone(),
            notice_tx.clone(),
        );
        let max_chunk = opened.max_chunk_frames;
        spawn("neuroloop-processing", move || {
            if realtime_priority {
                if let Err(e) = request_realtime_priority() {
                    let _ = notice_tx.send(Notice::Warning(format!(
                        "processing thread runs without real-time priority (SCHED_FIFO refused: {e})"
                    )));
                }
            }
            let mut raw = vec![0.0; max_chunk * source_channels];
            let mut block = vec![0.0; max_chunk * selected.len()];
            let mut outbox = Outbox::with_capacity(OUTBOX_CAPACITY);
            let mut hist = LatencyHistogram::new();
            let sample_period_s = 1.0 / rate.hz();
            let mut faulted = false;
            loop {
                let Some(h) = header_rx.try_pop() else {
                    if stop_processing.load(Ordering::Acquire) {
                        break;
                    }
                    if source_done.load(Ordering::Acquire) && header_rx.is_empty() {
                        let _ = notice_tx.send(Notice::SourceEnded);
                        break;
                    }
                    std::thread::park_timeout(Duration::from_millis(10));
                    continue;
                };
                let raw = &mut raw[..h.frames * source_channels];
                sample_rx.pop_slice(raw);
                if limit.is_some_and(|l| h.start >= l) {
                    let _ = notice_tx.send(Notice::Limit);
                    break;
                }
                let mut frames = h.frames;
                if let Some(limit) = limit {
                    frames = frames.min(limit.saturating_sub(h.start) as usize);
                }
                let channels = selected.len();
                for (dst, src) in block
                    .chunks_exact_mut(channels)
                    .zip(raw.chunks_exact(source_channels))
                    .take(frames)
                {
                    for (d, &i) in dst.iter_mut().zip(&selected) {
                        *d = src[i];
                    }
                }
                outbox.clear();
                let data = Block {
                    start: h.start,
                    channels,
                    samples: &block[..frames * channels],
                };
                let t0 = Instant::now();
                let result = controller.process_block(&data, &mut outbox);
                hist.record(t0.elapsed());
                for event in outbox.events() {
                    if let Event::Trigger(d) = event {
                        if d.delivered {
                            let ahead_s = (d.onset - d.decided_at) as f64 * sample_period_s;
                            let cmd = TriggerCommand {
                                decision: *d,
                                arrived: h.arrived,
                                due: h.arrived + Duration::from_secs_f64(ahead_s),
                            };
                            for (tx, thread) in &mut sink_producers {
                                if tx.try_push(cmd).is_err() {
                                    shared.command_ring_full.fetch_add(1, Ordering::Relaxed);
                                }
                                thread.unpark();
                            }
                        }
                    }
                    if event_tx.try_push(*event).is_err() {
                        shared.event_ring_full.fetch_add(1, Ordering::Relaxed);
                    }
                }
                shared
                    .frames_done
                    .store(controller.next_sample(), Ordering::Relaxed);
                if let Err(fault) = result {
                    let _ = notice_tx.send(Notice::Fault(fault));
                    faulted = true;
                    break;
                }
                if limit.is_some_and(|l| controller.next_sample() >= l) {
                    let _ = notice_tx.send(Notice::Limit);
                    break;
                }
            }
            if !faulted {
                outbox.clear();
                controller.finish(&mut outbox);
                for event in outbox.events() {
                    if event_tx.try_push(*event).is_err() {
                        shared.event_ring_full.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            ProcessingReport {
                controller,
                block_processing: hist,
            }
        })?
    };

    // Acquisition thread.
    let cyton_counters = match &opened.source {
        Source::Cyton(c) => Some(c.counters.clone()),
        Source::Recording(_) | Source::Audio(_) => None,
    };
    let audio_input = match &opened.source {
        Source::Audio(a) => Some((
            a.input.counters.clone(),
            a.input.errors.clone(),
            a.input.device.clone(),
        )),
        Source::Recording(_) | Source::Cyton(_) => None,
    };
    let acquisition_thread = {
        let mut ring = RingWriter {
            samples: sample_tx,
            headers: header_tx,
            channels: source_channels,
            consumer: processing_thread.thread().clone(),
            overrun_frames: shared.overrun_frames.clone(),
        };
        let (stop_acquisition, source_done, notice_tx) = (
            stop_acquisition.clone(),
            source_done.clone(),
            notice_tx.clone(),
        );
        let source = opened.source;
        spawn("neuroloop-acquisition", move || {
            let result = match source {
                Source::Recording(r) => {
                    r.run(&mut ring, &stop_acquisition);
                    Ok(())
                }
                Source::Cyton(mut c) => c
                    .port
                    .write_all(&[openbci::CMD_START])
                    .map_err(|e| DeviceError::Disconnected {
                        device: "openbci",
                        message: e.to_string(),
                    })
                    .and_then(|()| {
                        openbci::acquire(
                            &mut c.port,
                            &mut c.framer,
                            &mut ring,
                            c.stall,
                            &stop_acquisition,
                            &c.counters,
                        )
                    })
                    .inspect(|_| {
                        let _ = c.port.write_all(&[openbci::CMD_STOP]);
                    }),
                Source::Audio(mut a) => a.run(&mut ring, &stop_acquisition),
            };
            if let Err(e) = result {
                let _ = notice_tx.send(Notice::Device(e));
            }
            source_done.store(true, Ordering::Release);
            ring.consumer.unpark();
        })?
    };
    drop(notice_tx);

    // Supervise (control plane, on tokio).
    let ending = control::supervise(
        notices,
        stop,
        |warn| {
            let at = shared.frames_done.load(Ordering::Relaxed);
            if let Some(c) = &cyton_counters {
                for (key, value, what) in [
                    (
                        "garbage",
                        c.garbage_bytes.load(Ordering::Relaxed),
                        "skipped garbage bytes and resynchronised",
                    ),
                    (
                        "dropped",
                        c.dropped_packets.load(Ordering::Relaxed),
                        "packets lost (sample counter skipped); the gap is counted, not filled",
                    ),
                ] {
                    if value > 0 {
                        warn(
                            key.into(),
                            format!(
                                "openbci: {what} (first seen by sample {at}; totals in summary.json)"
                            ),
                        );
                    }
                }
            }
            if let Some((c, _, device)) = &audio_input {
                if c.xruns.load(Ordering::Relaxed) > 0
                    || c.ring_overrun_frames.load(Ordering::Relaxed) > 0
                {
                    warn(
                        "audio-xrun".into(),
                        format!("audio input {device}: overrun, frames lost (first seen by sample {at}; totals in summary.json)"),
                    );
                }
            }
            if shared.overrun_frames.load(Ordering::Relaxed) > 0 {
                warn(
                    "overrun".into(),
                    format!(
                        "processing fell behind acquisition; frames dropped (first by sample {at})"
                    ),
                );
            }
        },
        || {
            let mut p = progress.lock().unwrap_or_else(|e| e.into_inner()).clone();
            p.frames_done = shared.frames_done.load(Ordering::Relaxed);
            p.seconds_done = rate.seconds(p.frames_done);
            on_status(&p);
        },
    )?;

    // 1. Disarm every output and wait until no sink can write again.
    armed.store(false, Ordering::SeqCst);
    stop_sinks.store(true, Ordering::Release);
    let mut sink_reports = Vec::new();
    for handle in sink_threads {
        handle.thread().unpark();
        sink_reports.push(handle.join().map_err(|_| thread_panicked("sink"))?);
    }
    // 2. Stop acquisition and processing.
    stop_acquisition.store(true, Ordering::Release);
    acquisition_thread
        .join()
        .map_err(|_| thread_panicked("acquisition"))?;
    stop_processing.store(true, Ordering::Release);
    processing_thread.thread().unpark();
    let processed = processing_thread
        .join()
        .map_err(|_| thread_panicked("processing"))?;
    // 3. Flush the session folder.
    stop_log.store(true, Ordering::Release);
    let writer = log_thread.join().map_err(|_| thread_panicked("log"))??;
    let wall_s = started.elapsed().as_secs_f64();

    let mut arrival_to_command = LatencyHistogram::new();
    let mut records: Vec<TriggerRecord> = Vec::new();
    for r in &sink_reports {
        arrival_to_command.merge(&r.arrival_to_command);
        records.extend_from_slice(&r.records);
    }
    records.sort_by_key(|r| (r.decided_at, r.sink));
    write_latency_tsv(writer.dir(), &records, started)?;
    let latency = LatencyReport {
        block_processing: processed.block_processing.summary(),
        arrival_to_command: arrival_to_command.summary(),
    };
    let mut progress = progress.lock().unwrap_or_else(|e| e.into_inner()).clone();
    progress.frames_done = processed.controller.next_sample();
    progress.seconds_done = rate.seconds(progress.frames_done);
    let mut summary = summary_json(SummaryParts {
        command,
        input: &opened.description,
        config,
        rate,
        labels: &labels,
        progress: &progress,
        status: ending.status(),
        error: ending.error(),
        controller: processed.controller.counters(),
        trigger: processed.controller.trigger_counters(),
        wall_s,
    });
    summary["latency"] = serde_json::to_value(&latency).expect("serialises");
    summary["runtime"] = serde_json::json!({
        "outputs_disarmed_before_flush": true,
        "triggers_written": records.len(),
        "triggers_suppressed_after_disarm": shared.suppressed_disarmed.load(Ordering::Relaxed),
        "acquisition_overrun_frames": shared.overrun_frames.load(Ordering::Relaxed),
        "event_ring_full": shared.event_ring_full.load(Ordering::Relaxed),
        "command_ring_full": shared.command_ring_full.load(Ordering::Relaxed),
    });
    if let Some(c) = &cyton_counters {
        summary["source"] = c.snapshot();
    }
    if let Some((c, errors, device)) = &audio_input {
        let mut source = c.snapshot();
        source["device"] = device.clone().into();
        source["errors"] = errors.lock().map(|e| e.clone()).unwrap_or_default().into();
        summary["source"] = source;
    }
    let devices: Vec<_> = sink_reports
        .iter()
        .filter_map(|r| r.device.clone())
        .collect();
    if !devices.is_empty() {
        summary["outputs"] = serde_json::Value::Array(devices);
    }
    let dir = writer.dir().to_path_buf();
    match ending {
        Ending::Complete | Ending::Interrupted => writer.finish(&summary)?,
        Ending::Device(_) | Ending::Fault(_) => writer.abandon(&summary)?,
    };
    Ok(LiveReport {
        ending,
        progress,
        wall_s,
        latency,
        triggers_written: records.len(),
        dir,
    })
}

fn thread_panicked(which: &str) -> RuntimeError {
    RuntimeError::Thread(std::io::Error::other(format!(
        "the {which} thread panicked"
    )))
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
    let err = |source| SessionError::Write {
        path: path.clone(),
        source,
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
